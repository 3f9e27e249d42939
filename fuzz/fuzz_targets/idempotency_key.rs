//! Arbitrary bytes as an `Idempotency-Key` header value: a key within the limits, or a typed
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steadfast_idempotency::{IdempotencyKey, MAX_KEY_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = IdempotencyKey::parse(data) {
        assert!(!key.as_str().is_empty() && key.as_str().len() <= MAX_KEY_LEN);
    }
});
