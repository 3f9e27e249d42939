//! Arbitrary bytes into the key parser and the record decoder: a value or a typed error,
//! never a panic. The cargo-fuzz targets `idempotency_key` and `idempotency_record` try the
//! same on a nightly toolchain.

use proptest::prelude::*;
use steadfast_idempotency::record::{Completed, Payload, Record, StoredResponse};
use steadfast_idempotency::{Fingerprint, IdempotencyKey, MAX_KEY_LEN};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn keys_from_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(key) = IdempotencyKey::parse(&bytes) {
            prop_assert!(!key.as_str().is_empty());
            prop_assert!(key.as_str().len() <= MAX_KEY_LEN);
            prop_assert!(key.as_str().bytes().all(|b| (0x20..=0x7e).contains(&b)));
        }
    }

    #[test]
    fn bare_keys_round_trip_through_quoting(key in "[!#-\\[\\]-~]{1,255}") {
        let bare = IdempotencyKey::parse(key.as_bytes()).unwrap();
        // The class holds no quote and no backslash: quoting needs no escapes.
        let quoted = format!("\"{key}\"");
        prop_assert_eq!(IdempotencyKey::parse(quoted.as_bytes()).unwrap(), bare);
    }

    #[test]
    fn records_from_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Record::decode(&bytes);
        let mut prefixed = b"SFI1".to_vec();
        prefixed.extend_from_slice(&bytes);
        if let Ok(record) = Record::decode(&prefixed) {
            prop_assert_eq!(Record::decode(&record.encode()), Ok(record));
        }
    }

    #[test]
    fn records_round_trip_and_every_cut_is_refused(
        status in 100u16..600,
        headers in proptest::collection::vec(("[a-z-]{1,20}", proptest::collection::vec(any::<u8>(), 0..40)), 0..8),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        flip in any::<prop::sample::Index>(),
    ) {
        let record = Record::Completed(Completed {
            fingerprint: Fingerprint::of(&body),
            payload: Payload::Response(StoredResponse {
                status,
                headers: headers.into_iter().map(|(name, value)| (name, value.into())).collect(),
                body: body.into(),
                trailers: Vec::new(),
            }),
        });
        let bytes = record.encode();
        prop_assert_eq!(Record::decode(&bytes), Ok(record.clone()));
        let cut = flip.index(bytes.len());
        prop_assert!(Record::decode(&bytes[..cut]).is_err());
        // A flipped byte either still decodes (a value changed) or is refused; never a panic.
        let mut corrupt = bytes.to_vec();
        corrupt[cut] ^= 0xff;
        let _ = Record::decode(&corrupt);
    }
}
