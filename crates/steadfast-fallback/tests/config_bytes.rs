//! Config files from arbitrary bytes: a config or a typed error, never a panic, and a refused
//! file leaves every switch as it was. The fuzz target `fallback_config` tries the same on a
//! nightly toolchain.
#![cfg(feature = "serde")]

use proptest::prelude::*;
use steadfast_fallback::config::FallbackConfig;
use steadfast_fallback::Degrader;

fn check(text: &str) {
    let degrader = Degrader::new();
    degrader
        .set(
            "recommendations",
            2,
            steadfast_fallback::Flip::new("test", "before"),
        )
        .unwrap();
    for parsed in [
        FallbackConfig::from_toml(text),
        FallbackConfig::from_json(text),
    ] {
        match parsed {
            Ok(config) => {
                degrader.apply(&config, "proptest").unwrap();
                let expected = config.switches.get("recommendations").copied().unwrap_or(2);
                assert_eq!(
                    degrader.switch("recommendations").unwrap().level(),
                    expected
                );
            }
            Err(error) => {
                assert!(!error.to_string().is_empty());
                assert_eq!(degrader.switch("recommendations").unwrap().level(), 2);
            }
        }
        degrader
            .set(
                "recommendations",
                2,
                steadfast_fallback::Flip::new("test", "reset"),
            )
            .unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn config_shaped_text(
        name in "[a-z\\- .é]{0,12}",
        level in -5i32..400,
        key in "(GET |POST |get )?/?[a-z{}/ ]{0,10}",
        reason in "(breaker_open|timeout|overload|error|failure_response|switch|open|)",
    ) {
        let text = format!(
            "[switches]\n\"{name}\" = {level}\n\n[endpoints.\"{key}\"]\nfallback = \"f\"\non = [\"{reason}\"]\nswitch = \"{name}\"\nlevel = {level}\n"
        );
        check(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Configs built directly, good and bad names mixed: applied whole or not at all.
    #[test]
    fn applied_whole_or_not_at_all(
        switches in proptest::collection::btree_map("[a-c]{1,2}|[a-c ]{1,3}", any::<u8>(), 0..6),
    ) {
        let degrader = Degrader::new();
        let flip = steadfast_fallback::Flip::new("test", "before");
        for name in ["a", "b", "c", "ab"] {
            degrader.set(name, 7, flip.clone()).unwrap();
        }
        let before = degrader.levels();
        let config = FallbackConfig { switches: switches.clone(), ..FallbackConfig::default() };
        match degrader.apply(&config, "proptest") {
            Ok(_) => {
                for (name, level) in &switches {
                    prop_assert_eq!(degrader.switch(name).unwrap().level(), *level);
                }
            }
            Err(error) => {
                prop_assert!(error.field().starts_with("switches."), "{}", error);
                prop_assert_eq!(degrader.levels(), before);
            }
        }
    }
}
