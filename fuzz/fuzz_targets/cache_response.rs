//! Arbitrary bytes as a stored HTTP response read from the shared tier, and as a
//! `Cache-Control` field: a response that encodes and decodes back to itself, or an error;
//! directives or none; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steadfast_cache::codec::Codec;
use steadfast_cache::http::{CacheControl, ResponseCodec};

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = ResponseCodec.decode(data) {
        let mut bytes = Vec::new();
        ResponseCodec.encode(&response, &mut bytes).unwrap();
        let back = ResponseCodec.decode(&bytes).unwrap();
        assert_eq!(back.status(), response.status());
        assert_eq!(back.headers(), response.headers());
        assert_eq!(back.body(), response.body());
    }
    let mut directives = CacheControl::default();
    directives.parse(data);
});
