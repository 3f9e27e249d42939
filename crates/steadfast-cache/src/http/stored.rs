//! A response as the cache keeps it, and its binary form in the shared tier.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::AGE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::codec::{Codec, CodecError};
use crate::Lifetime;

/// A buffered response with what the cache needs to answer from it: when it was stored, its
/// lifetime, and the request header values its `Vary` names.
///
/// Cheap to clone (one reference count). It is the value type of the
/// [`TieredCache`](crate::TieredCache) under a [`ResponseCacheLayer`](super::ResponseCacheLayer).
#[derive(Clone)]
pub struct StoredResponse(pub(crate) Arc<Parts>);

pub(crate) struct Parts {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// Wall-clock milliseconds when the response came from the origin.
    pub(crate) stored_at_ms: u64,
    /// The response's `Age` when it arrived, in seconds.
    pub(crate) initial_age: u64,
    pub(crate) lifetime: Lifetime,
    /// A random number drawn when the response was stored under its URI: the keys of its
    /// variants (other values of the headers `Vary` names) include it, so dropping the URI's
    /// entry orphans every variant at once.
    pub(crate) generation: u64,
    /// The headers `Vary` names, with the request's values they had (`None`: absent).
    pub(crate) vary: Vec<(HeaderName, Option<HeaderValue>)>,
    /// What the cache does with it: store it, share it with the other callers of the load,
    /// or neither (answered only to the request that loaded it).
    pub(crate) disposition: Disposition,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disposition {
    Store,
    /// Not stored, but every caller waiting on the load may have it (a failure response).
    Share,
    /// Not stored, and only for the request that loaded it (private, no-store, too large…).
    Own,
}

impl StoredResponse {
    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The headers an answer carries: the origin's, with the `Age` and `Cache-Status` fields
    /// the cache writes on each answer.
    #[must_use]
    pub fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.0.body
    }

    /// How long it is fresh and may be served stale, as stored (already capped by the cache).
    #[must_use]
    pub fn lifetime(&self) -> Lifetime {
        self.0.lifetime
    }

    /// Its age in seconds at wall-clock time `now_ms`, as the `Age` header gives it.
    #[must_use]
    pub fn age(&self, now_ms: u64) -> u64 {
        self.0
            .initial_age
            .saturating_add(now_ms.saturating_sub(self.0.stored_at_ms) / 1000)
    }

    pub(crate) fn stored(&self) -> bool {
        self.0.disposition == Disposition::Store
    }
}

impl fmt::Debug for StoredResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredResponse")
            .field("status", &self.0.status)
            .field("headers", &self.0.headers.len())
            .field("body", &self.0.body.len())
            .field("lifetime", &self.0.lifetime)
            .field("vary", &self.0.vary)
            .finish_non_exhaustive()
    }
}

/// The shared tier's form of a [`StoredResponse`]: a small versioned binary format, so bodies
/// stay bytes (no base64) and a malformed entry is refused field by field.
///
/// ```
/// use steadfast_cache::codec::Codec;
/// use steadfast_cache::http::{ResponseCodec, StoredResponse};
///
/// let refused: Result<StoredResponse, _> = ResponseCodec.decode(b"not a response");
/// assert!(refused.is_err());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ResponseCodec;

const MAGIC: &[u8; 4] = b"SFR\x01";
/// No response the cache stores has more headers than this; more is a corrupt entry.
const MAX_FIELDS: usize = 1024;

impl Codec<StoredResponse> for ResponseCodec {
    fn encode(&self, value: &StoredResponse, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let parts = &value.0;
        if parts.headers.len() > MAX_FIELDS || parts.vary.len() > MAX_FIELDS {
            return Err(CodecError::new("too many header fields to store"));
        }
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&parts.status.as_u16().to_be_bytes());
        for number in [
            parts.stored_at_ms,
            parts.initial_age,
            millis(parts.lifetime.ttl()),
            millis(parts.lifetime.stale_while_revalidate_window()),
            millis(parts.lifetime.stale_if_error_window()),
            parts.generation,
        ] {
            out.extend_from_slice(&number.to_be_bytes());
        }
        put_len(out, parts.vary.len())?;
        for (name, value) in &parts.vary {
            put_bytes(out, name.as_str().as_bytes())?;
            match value {
                Some(value) => {
                    out.push(1);
                    put_bytes(out, value.as_bytes())?;
                }
                None => out.push(0),
            }
        }
        let origin = |name: &HeaderName| !is_answer_field(name);
        put_len(
            out,
            parts.headers.keys().filter(|name| origin(name)).count(),
        )?;
        for (name, value) in parts.headers.iter().filter(|(name, _)| origin(name)) {
            put_bytes(out, name.as_str().as_bytes())?;
            put_bytes(out, value.as_bytes())?;
        }
        put_bytes(out, &parts.body)
    }

    fn decode(&self, bytes: &[u8]) -> Result<StoredResponse, CodecError> {
        decode(bytes).map_err(CodecError::new)
    }
}

/// `Age` and `Cache-Status`: written by the cache on each answer, never stored as the
/// origin's.
fn is_answer_field(name: &HeaderName) -> bool {
    name == AGE || name == super::answer::CACHE_STATUS
}

/// Puts placeholders for `Age` and `Cache-Status` into a stored response's headers (dropping
/// any the origin sent): an answer then clones the map and replaces their values in place,
/// where appending two fields to a clone would grow it.
pub(crate) fn reserve_answer_fields(headers: &mut HeaderMap) {
    headers.insert(AGE, HeaderValue::from_static("0"));
    headers.insert(
        super::answer::CACHE_STATUS.clone(),
        HeaderValue::from_static("-"),
    );
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), CodecError> {
    let len = u32::try_from(len).map_err(|_| CodecError::new("a field over 4 GiB"))?;
    out.extend_from_slice(&len.to_be_bytes());
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), CodecError> {
    put_len(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Ok(())
}

/// Why bytes are not a stored response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    Magic,
    Truncated,
    Status,
    HeaderName,
    HeaderValue,
    TooManyFields,
    Trailing,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Magic => "not a stored response (magic or format version)",
            DecodeError::Truncated => "stored response cut short",
            DecodeError::Status => "stored response with an invalid status",
            DecodeError::HeaderName => "stored response with an invalid header name",
            DecodeError::HeaderValue => "stored response with an invalid header value",
            DecodeError::TooManyFields => "stored response with too many header fields",
            DecodeError::Trailing => "bytes after a stored response",
        })
    }
}

impl std::error::Error for DecodeError {}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut word = [0; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(word))
    }

    fn len(&mut self) -> Result<usize, DecodeError> {
        let mut word = [0; 4];
        word.copy_from_slice(self.take(4)?);
        usize::try_from(u32::from_be_bytes(word)).map_err(|_| DecodeError::Truncated)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.len()?;
        self.take(len)
    }

    fn count(&mut self) -> Result<usize, DecodeError> {
        let count = self.len()?;
        if count > MAX_FIELDS {
            return Err(DecodeError::TooManyFields);
        }
        Ok(count)
    }
}

fn name(bytes: &[u8]) -> Result<HeaderName, DecodeError> {
    HeaderName::from_bytes(bytes).map_err(|_| DecodeError::HeaderName)
}

fn value(bytes: &[u8]) -> Result<HeaderValue, DecodeError> {
    HeaderValue::from_bytes(bytes).map_err(|_| DecodeError::HeaderValue)
}

fn decode(bytes: &[u8]) -> Result<StoredResponse, DecodeError> {
    let mut reader = Reader(bytes);
    if reader.take(4)? != MAGIC {
        return Err(DecodeError::Magic);
    }
    let status = reader.take(2)?;
    let status = StatusCode::from_u16(u16::from_be_bytes([status[0], status[1]]))
        .map_err(|_| DecodeError::Status)?;
    let stored_at_ms = reader.u64()?;
    let initial_age = reader.u64()?;
    let lifetime = Lifetime::new(Duration::from_millis(reader.u64()?))
        .stale_while_revalidate(Duration::from_millis(reader.u64()?))
        .stale_if_error(Duration::from_millis(reader.u64()?));
    let generation = reader.u64()?;
    let count = reader.count()?;
    let mut vary = Vec::with_capacity(count);
    for _ in 0..count {
        let header = name(reader.bytes()?)?;
        let held = match reader.take(1)? {
            [0] => None,
            [1] => Some(value(reader.bytes()?)?),
            _ => return Err(DecodeError::HeaderValue),
        };
        vary.push((header, held));
    }
    let count = reader.count()?;
    let mut headers = HeaderMap::with_capacity(count);
    for _ in 0..count {
        let header = name(reader.bytes()?)?;
        headers.append(header, value(reader.bytes()?)?);
    }
    reserve_answer_fields(&mut headers);
    let body = Bytes::copy_from_slice(reader.bytes()?);
    if !reader.0.is_empty() {
        return Err(DecodeError::Trailing);
    }
    Ok(StoredResponse(Arc::new(Parts {
        status,
        headers,
        body,
        stored_at_ms,
        initial_age,
        lifetime,
        generation,
        vary,
        disposition: Disposition::Store,
    })))
}
