//! Arbitrary bytes as a fallback config file, TOML and JSON: a config or a typed error naming
//! the field, never a panic; a config that parses must also build a table's checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steadfast_fallback::config::FallbackConfig;
use steadfast_fallback::Degrader;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for parsed in [FallbackConfig::from_toml(text), FallbackConfig::from_json(text)] {
        if let Ok(config) = parsed {
            let degrader = Degrader::new();
            // A parsed config was validated: applying it can only fail on the switch bound.
            let _ = degrader.apply(&config, "fuzz");
        }
    }
});
