//! `Cache-Control` as RFC 9111 and RFC 5861 define it: the directives of a request or a
//! response, read from every `Cache-Control` field of a header map.
//!
//! ```
//! use http::HeaderMap;
//! use steadfast_cache::http::CacheControl;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("cache-control", "public, max-age=60, stale-if-error=600".parse().unwrap());
//! let directives = CacheControl::from_headers(&headers);
//! assert_eq!(directives.max_age, Some(60));
//! assert_eq!(directives.stale_if_error, Some(600));
//! assert!(!directives.no_store);
//! ```

use http::header::CACHE_CONTROL;
use http::HeaderMap;

/// The largest delta-seconds value, as RFC 9111 §1.2.2 caps one that overflows.
const MAX_SECONDS: u64 = 2_147_483_648;

/// The directives of one message. Unknown directives are ignored, as the RFC asks; a
/// repeated directive keeps its most restrictive (smallest) value; a qualified `private` or
/// `no-cache` (`private="set-cookie"`) is read as the unqualified one, which is stricter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheControl {
    /// `no-store`: nothing of this exchange is stored.
    pub no_store: bool,
    /// `no-cache`: a stored response is not used without asking the origin.
    pub no_cache: bool,
    /// `private`: for one user's cache only, never a shared one.
    pub private: bool,
    /// `public`: storable by shared caches even where they would not store by default.
    pub public: bool,
    /// `must-revalidate` or `proxy-revalidate`: never served stale.
    pub must_revalidate: bool,
    /// `only-if-cached` (request): answer from the cache or with 504.
    pub only_if_cached: bool,
    /// `max-age`, in seconds.
    pub max_age: Option<u64>,
    /// `s-maxage` (response), in seconds: the shared caches' `max-age`.
    pub s_maxage: Option<u64>,
    /// `min-fresh` (request), in seconds.
    pub min_fresh: Option<u64>,
    /// `stale-while-revalidate` (response, RFC 5861), in seconds.
    pub stale_while_revalidate: Option<u64>,
    /// `stale-if-error` (RFC 5861), in seconds.
    pub stale_if_error: Option<u64>,
}

impl CacheControl {
    /// The directives of every `Cache-Control` field in `headers`.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let mut directives = Self::default();
        for value in headers.get_all(CACHE_CONTROL) {
            directives.parse(value.as_bytes());
        }
        directives
    }

    /// Adds the directives of one field value. Any bytes are accepted: what is not a
    /// directive is skipped.
    pub fn parse(&mut self, field: &[u8]) {
        for part in split_outside_quotes(field) {
            let part = trim(part);
            if part.is_empty() {
                continue;
            }
            let (name, value) = match part.iter().position(|&b| b == b'=') {
                Some(at) => (trim(&part[..at]), Some(unquote(trim(&part[at + 1..])))),
                None => (part, None),
            };
            let is = |directive: &str| name.eq_ignore_ascii_case(directive.as_bytes());
            if is("no-store") {
                self.no_store = true;
            } else if is("no-cache") {
                self.no_cache = true;
            } else if is("private") {
                self.private = true;
            } else if is("public") {
                self.public = true;
            } else if is("must-revalidate") || is("proxy-revalidate") {
                self.must_revalidate = true;
            } else if is("only-if-cached") {
                self.only_if_cached = true;
            } else if is("max-age") {
                // An invalid age makes the response stale (RFC 9111 §4.2.1): zero.
                keep_least(&mut self.max_age, seconds(value).unwrap_or(0));
            } else if is("s-maxage") {
                keep_least(&mut self.s_maxage, seconds(value).unwrap_or(0));
            } else if is("min-fresh") {
                if let Some(value) = seconds(value) {
                    keep_least(&mut self.min_fresh, value);
                }
            } else if is("stale-while-revalidate") {
                if let Some(value) = seconds(value) {
                    keep_least(&mut self.stale_while_revalidate, value);
                }
            } else if is("stale-if-error") {
                if let Some(value) = seconds(value) {
                    keep_least(&mut self.stale_if_error, value);
                }
            }
        }
    }
}

fn keep_least(slot: &mut Option<u64>, value: u64) {
    *slot = Some(slot.map_or(value, |held| held.min(value)));
}

/// Delta-seconds: ASCII digits only, capped rather than overflowing.
fn seconds(value: Option<&[u8]>) -> Option<u64> {
    let value = value?;
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |sum, digit| {
        sum.saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
            .min(MAX_SECONDS)
    }))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |at| at + 1);
    &bytes[start..end.max(start)]
}

fn unquote(bytes: &[u8]) -> &[u8] {
    match bytes {
        [b'"', inner @ .., b'"'] => inner,
        _ => bytes,
    }
}

/// Splits a field at commas that are not inside a quoted string (`private="a, b"` is one
/// directive).
fn split_outside_quotes(field: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut quoted = false;
    let mut escaped = false;
    field.split(move |&b| {
        if escaped {
            escaped = false;
            return false;
        }
        match b {
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b',' if !quoted => return true,
            _ => {}
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> CacheControl {
        let mut directives = CacheControl::default();
        directives.parse(text.as_bytes());
        directives
    }

    #[test]
    fn reads_the_directives() {
        let d = parse("Public, MAX-AGE=60 , s-maxage=\"30\", stale-while-revalidate=5");
        assert!(d.public);
        assert_eq!(d.max_age, Some(60));
        assert_eq!(d.s_maxage, Some(30));
        assert_eq!(d.stale_while_revalidate, Some(5));
        let d = parse("private=\"set-cookie, x-user\", no-cache");
        assert!(d.private && d.no_cache);
        assert_eq!(d.max_age, None);
    }

    #[test]
    fn invalid_and_repeated_values() {
        assert_eq!(parse("max-age=abc").max_age, Some(0));
        assert_eq!(parse("max-age=-1").max_age, Some(0));
        assert_eq!(parse("max-age=60, max-age=10").max_age, Some(10));
        assert_eq!(
            parse("max-age=99999999999999999999999").max_age,
            Some(MAX_SECONDS)
        );
        assert_eq!(parse("stale-if-error=x").stale_if_error, None);
        assert_eq!(parse(",,, ,"), CacheControl::default());
        assert!(parse("must-revalidate").must_revalidate);
        assert!(parse("proxy-revalidate").must_revalidate);
    }
}
