//! Arbitrary bytes as a stored idempotency record: a record that encodes back to itself, or
//! a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steadfast_idempotency::record::Record;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::decode(data) {
        assert_eq!(Record::decode(&record.encode()), Ok(record));
    }
});
