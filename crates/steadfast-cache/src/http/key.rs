//! Cache keys of responses, and the `Vary` match (RFC 9111 §4.1).
//!
//! A key is `GET <path?query>`, then ` <n>:<scope>` for a scoped caller; a variant's key adds
//! the stored response's generation and the request's value of every header its `Vary` names,
//! each length-prefixed, so no two requests that differ share a key. Targets, scopes and
//! header values over their limits are not cached under, so a key's length is bounded
//! whatever a client sends.

use std::fmt::Write;

use http::{HeaderMap, HeaderValue, Uri};

use super::stored::StoredResponse;

/// Requests with a longer target are not cached: a key's length stays bounded whatever a
/// client sends.
pub(crate) const MAX_TARGET: usize = 4096;

pub(crate) fn target(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |pq| pq.as_str())
}

pub(crate) fn primary(uri: &Uri, scope: Option<&str>) -> String {
    let mut key = String::new();
    write_primary(&mut key, uri, scope);
    key
}

/// Writes the key of `uri` in `scope` into `key` (a reused buffer, on the hit path).
pub(crate) fn write_primary(key: &mut String, uri: &Uri, scope: Option<&str>) {
    let target = target(uri);
    key.reserve(4 + target.len() + scope.map_or(0, |s| s.len() + 8));
    key.push_str("GET ");
    key.push_str(target);
    if let Some(scope) = scope {
        let _ = write!(key, " {}:{scope}", scope.len());
    }
}

/// A scope longer than this is not cached under: the key stays bounded.
pub(crate) const MAX_SCOPE: usize = 256;
/// A request header value `Vary` names that is longer than this is not cached under.
const MAX_VARY_VALUE: usize = 1024;

/// The key of the variant of `stored` that `headers` select; `None` when a value is too long
/// to key by.
pub(crate) fn variant(
    primary: &str,
    stored: &StoredResponse,
    headers: &HeaderMap,
) -> Option<String> {
    let mut key = String::with_capacity(primary.len() + 64);
    key.push_str(primary);
    let _ = write!(key, " v{:x}", stored.0.generation);
    for (name, _) in &stored.0.vary {
        match combined(headers, name) {
            Some(value) if value.len() > MAX_VARY_VALUE => return None,
            Some(value) => {
                // Header values are visible ASCII or opaque bytes; the key is text, so bytes
                // outside ASCII are written escaped.
                let text = value.as_bytes().escape_ascii().to_string();
                let _ = write!(key, " {}:{text}", text.len());
            }
            None => key.push_str(" -"),
        }
    }
    Some(key)
}

/// Every value of `name` in `headers`, joined with `, ` as one field value.
pub(crate) fn combined(headers: &HeaderMap, name: &http::HeaderName) -> Option<HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(first.clone());
    };
    let mut joined = first.as_bytes().to_vec();
    for value in std::iter::once(second).chain(values) {
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&joined).ok()
}

/// Whether the request's headers have the values the stored response was selected with.
pub(crate) fn matches(stored: &StoredResponse, headers: &HeaderMap) -> bool {
    stored.0.vary.iter().all(|(name, held)| {
        let value = combined(headers, name);
        match (held, value) {
            (None, None) => true,
            (Some(held), Some(value)) => normalized(held) == normalized(&value),
            _ => false,
        }
    })
}

/// A value with whitespace around its commas dropped, as RFC 9111 §4.1 allows a cache to
/// normalize before comparing.
fn normalized(value: &HeaderValue) -> Vec<u8> {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .collect::<Vec<_>>()
        .join(&b","[..])
}
