//! Stored records and their bytes: a versioned, length-prefixed encoding whose decoder refuses
//! anything malformed with a typed error, never a panic.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::Fingerprint;

/// The first bytes of every record: a name and the format's version.
const MAGIC: &[u8; 4] = b"SFI1";
/// The most headers a stored response keeps.
pub const MAX_HEADERS: usize = 256;
/// The longest stored header name or value, in bytes.
pub const MAX_HEADER_LEN: usize = 8 * 1024;
/// The longest stored body or value, in bytes (the layer's own limit is usually far lower).
pub const MAX_BODY_LEN: usize = 64 * 1024 * 1024;

/// A claim's fencing token: a finisher whose token is no longer the record's cannot write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub(crate) u64);

impl Token {
    /// A fresh random token, never zero.
    pub(crate) fn fresh() -> Self {
        Token(fastrand::u64(1..))
    }

    /// The token's value.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// A response kept for replay: status, allow-listed headers, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// The status code.
    pub status: u16,
    /// The headers kept, in order.
    pub headers: Vec<(String, Bytes)>,
    /// The body.
    pub body: Bytes,
    /// The trailers (gRPC keeps its status there), in order.
    pub trailers: Vec<(String, Bytes)>,
}

/// What a completed key replays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// An HTTP response.
    Response(StoredResponse),
    /// A business call's result, serialized.
    Value(Bytes),
}

/// A key whose first call finished: the request's fingerprint and what to replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    /// The fingerprint of the request that completed it.
    pub fingerprint: Fingerprint,
    /// What it answered.
    pub payload: Payload,
}

/// A record as a store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// Claimed, running: the claim's token and the request's fingerprint.
    InProgress {
        /// The fencing token of the claim.
        token: Token,
        /// The fingerprint of the claiming request.
        fingerprint: Fingerprint,
    },
    /// Finished.
    Completed(Completed),
}

/// Bytes that are not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a Steadfast record, or another version of the format.
    Magic,
    /// The bytes end before the record does.
    Truncated,
    /// A kind byte the format does not know.
    Kind(u8),
    /// A length over its limit.
    TooLong,
    /// A header name that is not UTF-8.
    HeaderName,
    /// Bytes after the record's end.
    Trailing,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Magic => "not a Steadfast idempotency record (magic or version)",
            DecodeError::Truncated => "the record is truncated",
            DecodeError::Kind(_) => "the record has an unknown kind",
            DecodeError::TooLong => "a length in the record is over its limit",
            DecodeError::HeaderName => "a stored header name is not UTF-8",
            DecodeError::Trailing => "bytes follow the record's end",
        })
    }
}

impl std::error::Error for DecodeError {}

impl Record {
    /// The record's bytes.
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        out.put_slice(MAGIC);
        match self {
            Record::InProgress { token, fingerprint } => {
                out.put_u8(0);
                out.put_slice(fingerprint.as_bytes());
                out.put_u64(token.0);
            }
            Record::Completed(completed) => {
                out.put_u8(1);
                out.put_slice(completed.fingerprint.as_bytes());
                match &completed.payload {
                    Payload::Response(response) => {
                        out.put_u8(0);
                        out.put_u16(response.status);
                        put_pairs(&mut out, &response.headers);
                        put_chunk(&mut out, &response.body);
                        put_pairs(&mut out, &response.trailers);
                    }
                    Payload::Value(value) => {
                        out.put_u8(1);
                        put_chunk(&mut out, value);
                    }
                }
            }
        }
        out.freeze()
    }

    /// Reads a record back.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] for anything that is not a whole, well-formed record.
    pub fn decode(mut bytes: &[u8]) -> Result<Self, DecodeError> {
        let buf = &mut bytes;
        if take(buf, 4)? != MAGIC {
            return Err(DecodeError::Magic);
        }
        let kind = u8_of(buf)?;
        let fingerprint = Fingerprint::from_bytes(
            take(buf, 32)?
                .try_into()
                .map_err(|_| DecodeError::Truncated)?,
        );
        let record = match kind {
            0 => {
                need(buf, 8)?;
                Record::InProgress {
                    token: Token(buf.get_u64()),
                    fingerprint,
                }
            }
            1 => {
                let payload = match u8_of(buf)? {
                    0 => {
                        need(buf, 2)?;
                        let status = buf.get_u16();
                        let headers = pairs(buf)?;
                        let body = Bytes::copy_from_slice(chunk(buf, MAX_BODY_LEN)?);
                        let trailers = pairs(buf)?;
                        Payload::Response(StoredResponse {
                            status,
                            headers,
                            body,
                            trailers,
                        })
                    }
                    1 => Payload::Value(Bytes::copy_from_slice(chunk(buf, MAX_BODY_LEN)?)),
                    other => return Err(DecodeError::Kind(other)),
                };
                Record::Completed(Completed {
                    fingerprint,
                    payload,
                })
            }
            other => return Err(DecodeError::Kind(other)),
        };
        if !buf.is_empty() {
            return Err(DecodeError::Trailing);
        }
        Ok(record)
    }

    /// The fingerprint of the request that made the record.
    #[must_use]
    pub const fn fingerprint(&self) -> &Fingerprint {
        match self {
            Record::InProgress { fingerprint, .. } => fingerprint,
            Record::Completed(completed) => &completed.fingerprint,
        }
    }
}

fn put_pairs(out: &mut BytesMut, pairs: &[(String, Bytes)]) {
    let pairs = &pairs[..pairs.len().min(MAX_HEADERS)];
    out.put_u16(pairs.len() as u16);
    for (name, value) in pairs {
        put_chunk(out, name.as_bytes());
        put_chunk(out, value);
    }
}

fn pairs(buf: &mut &[u8]) -> Result<Vec<(String, Bytes)>, DecodeError> {
    need(buf, 2)?;
    let count = usize::from(buf.get_u16());
    if count > MAX_HEADERS {
        return Err(DecodeError::TooLong);
    }
    let mut pairs = Vec::with_capacity(count);
    for _ in 0..count {
        let name = chunk(buf, MAX_HEADER_LEN)?;
        let name = std::str::from_utf8(name)
            .map_err(|_| DecodeError::HeaderName)?
            .to_owned();
        let value = Bytes::copy_from_slice(chunk(buf, MAX_HEADER_LEN)?);
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn put_chunk(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(bytes.len() as u32);
    out.put_slice(bytes);
}

fn need(buf: &&[u8], len: usize) -> Result<(), DecodeError> {
    if buf.len() < len {
        Err(DecodeError::Truncated)
    } else {
        Ok(())
    }
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], DecodeError> {
    need(buf, len)?;
    let (head, rest) = buf.split_at(len);
    *buf = rest;
    Ok(head)
}

fn u8_of(buf: &mut &[u8]) -> Result<u8, DecodeError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

fn chunk<'a>(buf: &mut &'a [u8], limit: usize) -> Result<&'a [u8], DecodeError> {
    need(buf, 4)?;
    let len = buf.get_u32() as usize;
    if len > limit {
        return Err(DecodeError::TooLong);
    }
    take(buf, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let fingerprint = Fingerprint::of(b"request");
        let records = [
            Record::InProgress {
                token: Token(7),
                fingerprint,
            },
            Record::Completed(Completed {
                fingerprint,
                payload: Payload::Response(StoredResponse {
                    status: 201,
                    headers: vec![(
                        "content-type".into(),
                        Bytes::from_static(b"application/json"),
                    )],
                    body: Bytes::from_static(b"{\"id\":1}"),
                    trailers: vec![("grpc-status".into(), Bytes::from_static(b"0"))],
                }),
            }),
            Record::Completed(Completed {
                fingerprint,
                payload: Payload::Value(Bytes::from_static(b"42")),
            }),
        ];
        for record in records {
            let bytes = record.encode();
            assert_eq!(Record::decode(&bytes), Ok(record.clone()));
            for cut in 0..bytes.len() {
                assert!(Record::decode(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert_eq!(Record::decode(&longer), Err(DecodeError::Trailing));
        }
        assert_eq!(Record::decode(b"SFI2...."), Err(DecodeError::Magic));
    }
}
