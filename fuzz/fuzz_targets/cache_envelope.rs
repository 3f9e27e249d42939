//! Arbitrary bytes as what Redis holds under a cache key, and as a message on the notice
//! channel: an entry or notice that encodes back to the same bytes, or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steadfast_cache::envelope::Envelope;
use steadfast_cache::notice::Notice;

fuzz_target!(|data: &[u8]| {
    if let Ok((envelope, payload)) = Envelope::decode(data) {
        assert!(envelope.written_ms <= envelope.fresh_until_ms);
        assert!(envelope.fresh_until_ms <= envelope.stale_until_ms);
        let mut bytes = Vec::new();
        envelope.encode_header(&mut bytes);
        bytes.extend_from_slice(payload);
        assert_eq!(bytes, data);
    }
    if let Some(notice) = Notice::decode(data) {
        assert_eq!(notice.encode(), data);
    }
});
