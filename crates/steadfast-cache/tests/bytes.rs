//! Arbitrary bytes into the envelope and notice decoders: a value or an error, never a panic.
//! Whatever Redis holds under a cache key, or sends on the notice channel, may have been written
//! by another program or another version. The cargo-fuzz target `cache_envelope` tries the same
//! on a nightly toolchain.

use proptest::prelude::*;
use steadfast_cache::envelope::{Envelope, EnvelopeError, HEADER_LEN};
use steadfast_cache::notice::{Notice, Op};

/// An envelope whose times are in order (written ≤ fresh until ≤ stale until), as the cache
/// writes them.
fn envelope() -> impl Strategy<Value = Envelope> {
    (any::<bool>(), any::<[u64; 3]>()).prop_map(|(negative, mut times)| {
        times.sort_unstable();
        Envelope {
            negative,
            written_ms: times[0],
            fresh_until_ms: times[1],
            stale_until_ms: times[2],
        }
    })
}

fn encoded(envelope: &Envelope, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    envelope.encode_header(&mut bytes);
    bytes.extend_from_slice(payload);
    bytes
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![Just(Op::Put), Just(Op::Delete), Just(Op::All)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn envelopes_from_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        check_envelope(&bytes)?;
        // Past the magic and version, so the header checks behind them are reached too.
        let mut prefixed = b"SFC\x01".to_vec();
        prefixed.extend_from_slice(&bytes);
        check_envelope(&prefixed)?;
    }

    #[test]
    fn envelopes_round_trip(
        envelope in envelope(),
        payload in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let bytes = encoded(&envelope, &payload);
        prop_assert_eq!(bytes.len(), HEADER_LEN + payload.len());
        let (read, rest) = Envelope::decode(&bytes).unwrap();
        prop_assert_eq!(read, envelope);
        prop_assert_eq!(rest, &payload[..]);
    }

    #[test]
    fn a_flipped_magic_is_foreign(
        envelope in envelope(),
        at in 0usize..3,
        flip in 1u8..=255,
    ) {
        let mut bytes = encoded(&envelope, b"{}");
        bytes[at] ^= flip;
        prop_assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::Foreign));
    }

    #[test]
    fn an_unknown_version_is_refused(envelope in envelope(), version in any::<u8>()) {
        prop_assume!(version != 1);
        let mut bytes = encoded(&envelope, b"{}");
        bytes[3] = version;
        prop_assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::Version(version)));
    }

    #[test]
    fn unknown_flag_bits_are_refused(envelope in envelope(), flags in any::<u8>()) {
        prop_assume!(flags & !1 != 0);
        let mut bytes = encoded(&envelope, b"{}");
        bytes[4] = flags;
        prop_assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::Flags(flags)));
    }

    #[test]
    fn times_out_of_order_are_refused(
        negative in any::<bool>(),
        times in any::<[u64; 3]>(),
    ) {
        let [written_ms, fresh_until_ms, stale_until_ms] = times;
        prop_assume!(fresh_until_ms > stale_until_ms || written_ms > fresh_until_ms);
        let envelope = Envelope { negative, written_ms, fresh_until_ms, stale_until_ms };
        let bytes = encoded(&envelope, b"{}");
        prop_assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::Times));
    }

    #[test]
    fn a_cut_header_is_refused(envelope in envelope(), cut in 0usize..HEADER_LEN) {
        let bytes = encoded(&envelope, b"{\"price\":12}");
        let refused = Envelope::decode(&bytes[..cut]);
        // Three bytes or fewer cannot even show the magic and version.
        let expected = if cut < 4 { EnvelopeError::Foreign } else { EnvelopeError::Truncated };
        prop_assert_eq!(refused, Err(expected));
    }

    #[test]
    fn a_flipped_byte_is_read_or_refused(
        envelope in envelope(),
        payload in proptest::collection::vec(any::<u8>(), 0..32),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bytes = encoded(&envelope, &payload);
        let at = at.index(bytes.len());
        bytes[at] ^= flip;
        check_envelope(&bytes)?;
    }

    #[test]
    fn notices_from_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        check_notice(&bytes)?;
        let mut prefixed = b"SFN\x01".to_vec();
        prefixed.extend_from_slice(&bytes);
        check_notice(&prefixed)?;
    }

    #[test]
    fn notices_round_trip(
        instance in any::<u64>(),
        op in op(),
        cache in "\\PC{0,64}",
        key in "\\PC{0,128}",
    ) {
        let notice = Notice { instance, op, cache: &cache, key: &key };
        let bytes = notice.encode();
        prop_assert_eq!(Notice::decode(&bytes), Some(notice));
    }

    #[test]
    fn a_cut_notice_is_refused_or_names_a_shorter_key(
        instance in any::<u64>(),
        op in op(),
        cache in "[a-z:-]{1,40}",
        key in "\\PC{0,64}",
        cut in any::<prop::sample::Index>(),
    ) {
        let notice = Notice { instance, op, cache: &cache, key: &key };
        let bytes = notice.encode();
        let cut = cut.index(bytes.len());
        // Magic, instance, op, the name's length and the name: a cut among them is refused.
        let header = 4 + 8 + 1 + 2 + cache.len();
        match Notice::decode(&bytes[..cut]) {
            None => prop_assert!(cut < header || !key.is_char_boundary(cut - header)),
            // The key is the rest of the message, so a cut in it reads as a shorter key: the
            // transport (Redis pub/sub) delivers whole messages.
            Some(read) => {
                prop_assert!(cut >= header);
                prop_assert_eq!(read.cache, &cache[..]);
                prop_assert_eq!(read.key, &key[..cut - header]);
            }
        }
    }

    #[test]
    fn a_flipped_notice_byte_is_read_or_refused(
        instance in any::<u64>(),
        op in op(),
        cache in "[a-z:-]{1,40}",
        key in "\\PC{0,64}",
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut bytes = Notice { instance, op, cache: &cache, key: &key }.encode();
        let at = at.index(bytes.len());
        bytes[at] ^= flip;
        check_notice(&bytes)?;
        if at < 4 {
            prop_assert_eq!(Notice::decode(&bytes), None);
        }
    }
}

/// Decodes `bytes` as an envelope; what decodes must encode back to the same bytes, with times
/// in order.
fn check_envelope(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok((envelope, payload)) = Envelope::decode(bytes) {
        prop_assert!(envelope.written_ms <= envelope.fresh_until_ms);
        prop_assert!(envelope.fresh_until_ms <= envelope.stale_until_ms);
        prop_assert_eq!(encoded(&envelope, payload), bytes);
    }
    Ok(())
}

/// Decodes `bytes` as a notice; what decodes must encode back to the same bytes.
fn check_notice(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Some(notice) = Notice::decode(bytes) {
        prop_assert_eq!(notice.encode(), bytes);
    }
    Ok(())
}

/// Arbitrary bytes as a stored HTTP response from the shared tier, and as a `Cache-Control`
/// field: a response or an error, directives or none, never a panic.
#[cfg(feature = "http")]
mod http {
    use proptest::prelude::*;
    use steadfast_cache::codec::Codec;
    use steadfast_cache::http::{CacheControl, ResponseCodec, StoredResponse};

    fn same(a: &StoredResponse, b: &StoredResponse) -> bool {
        a.status() == b.status()
            && a.headers() == b.headers()
            && a.body() == b.body()
            && a.lifetime() == b.lifetime()
    }

    proptest! {
        #[test]
        fn response_decoder_never_panics(
            tail in proptest::collection::vec(any::<u8>(), 0..512),
            magic in any::<bool>(),
        ) {
            // Past the magic half the time, so the fields behind it are tried too.
            let mut bytes = if magic { b"SFR\x01".to_vec() } else { Vec::new() };
            bytes.extend_from_slice(&tail);
            if let Ok(response) = ResponseCodec.decode(&bytes) {
                let mut again = Vec::new();
                ResponseCodec.encode(&response, &mut again).unwrap();
                let back = ResponseCodec.decode(&again).unwrap();
                prop_assert!(same(&response, &back));
            }
        }

        #[test]
        fn a_response_survives_a_cut_or_a_flipped_byte(
            status in 200u16..600,
            headers in proptest::collection::vec(("[a-z][a-z0-9-]{0,12}", "[ -~]{0,24}"), 0..6),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let mut bytes = b"SFR\x01".to_vec();
            bytes.extend_from_slice(&status.to_be_bytes());
            bytes.extend_from_slice(&[0; 48]);
            bytes.extend_from_slice(&0u32.to_be_bytes());
            bytes.extend_from_slice(&u32::try_from(headers.len()).unwrap().to_be_bytes());
            for (name, value) in &headers {
                for part in [name.as_bytes(), value.trim().as_bytes()] {
                    bytes.extend_from_slice(&u32::try_from(part.len()).unwrap().to_be_bytes());
                    bytes.extend_from_slice(part);
                }
            }
            bytes.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
            bytes.extend_from_slice(&body);
            let response = ResponseCodec.decode(&bytes);
            prop_assert!(response.is_ok(), "{:?}", response.err());
            let response = response.unwrap();
            prop_assert_eq!(response.body().as_ref(), &body[..]);
            let cut = cut.index(bytes.len());
            prop_assert!(ResponseCodec.decode(&bytes[..cut]).is_err());
            let mut flipped = bytes.clone();
            let at = flip.index(flipped.len());
            flipped[at] ^= 0xff;
            let _ = ResponseCodec.decode(&flipped);
        }

        #[test]
        fn cache_control_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut directives = CacheControl::default();
            directives.parse(&bytes);
            if let Some(age) = directives.max_age {
                prop_assert!(age <= 2_147_483_648);
            }
        }
    }
}
