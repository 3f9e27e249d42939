//! The versioned envelope every L2 entry travels in.
//!
//! ```text
//! offset  size  field
//!      0     3  magic "SFC"
//!      3     1  format version (1)
//!      4     1  flags (bit 0: a negative entry, "not found"); other bits must be zero
//!      5     8  written at, milliseconds since the Unix epoch, big-endian
//!     13     8  fresh until, same unit
//!     21     8  stale until, same unit (at or after fresh until)
//!     29     …  the codec's payload
//! ```
//!
//! Times are wall-clock milliseconds because instances share them: each instance turns them
//! back into its own monotonic clock when it fills its L1. Anything else under a cache key (a
//! foreign writer, a newer format, truncated bytes) decodes to an [`EnvelopeError`], which the
//! cache counts and reads as a miss.
//!
//! ```
//! use steadfast_cache::envelope::{Envelope, EnvelopeError};
//!
//! let envelope = Envelope { negative: false, written_ms: 1_000, fresh_until_ms: 61_000,
//!     stale_until_ms: 121_000 };
//! let mut bytes = Vec::new();
//! envelope.encode_header(&mut bytes);
//! bytes.extend_from_slice(b"{\"price\":12}");
//! let (read, payload) = Envelope::decode(&bytes).unwrap();
//! assert_eq!(read, envelope);
//! assert_eq!(payload, b"{\"price\":12}");
//! assert_eq!(Envelope::decode(b"GIF89a"), Err(EnvelopeError::Foreign));
//! ```

use std::fmt;

const MAGIC: &[u8; 3] = b"SFC";
const VERSION: u8 = 1;
const NEGATIVE: u8 = 1;
/// The header's length; the payload starts here.
pub const HEADER_LEN: usize = 29;

/// An entry's header: its kind and its times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// A cached "not found" (see [`Admit::Negative`](crate::Admit::Negative)).
    pub negative: bool,
    /// When the entry was written, in milliseconds since the Unix epoch.
    pub written_ms: u64,
    /// Until when the entry is fresh.
    pub fresh_until_ms: u64,
    /// Until when the entry may be served stale.
    pub stale_until_ms: u64,
}

impl Envelope {
    /// Appends the header's 29 bytes to `out`; the payload follows.
    pub fn encode_header(&self, out: &mut Vec<u8>) {
        out.reserve(HEADER_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(if self.negative { NEGATIVE } else { 0 });
        out.extend_from_slice(&self.written_ms.to_be_bytes());
        out.extend_from_slice(&self.fresh_until_ms.to_be_bytes());
        out.extend_from_slice(&self.stale_until_ms.to_be_bytes());
    }

    /// Reads the header and answers it with the payload.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError`] for bytes that are not an entry of this format.
    pub fn decode(bytes: &[u8]) -> Result<(Envelope, &[u8]), EnvelopeError> {
        if bytes.len() < 4 || &bytes[..3] != MAGIC {
            return Err(EnvelopeError::Foreign);
        }
        if bytes[3] != VERSION {
            return Err(EnvelopeError::Version(bytes[3]));
        }
        if bytes.len() < HEADER_LEN {
            return Err(EnvelopeError::Truncated);
        }
        let flags = bytes[4];
        if flags & !NEGATIVE != 0 {
            return Err(EnvelopeError::Flags(flags));
        }
        let time = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(word)
        };
        let envelope = Envelope {
            negative: flags & NEGATIVE != 0,
            written_ms: time(5),
            fresh_until_ms: time(13),
            stale_until_ms: time(21),
        };
        if envelope.fresh_until_ms > envelope.stale_until_ms
            || envelope.written_ms > envelope.fresh_until_ms
        {
            return Err(EnvelopeError::Times);
        }
        Ok((envelope, &bytes[HEADER_LEN..]))
    }
}

/// Bytes under a cache key that are not an entry this version can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// No `SFC` magic: something else wrote this key.
    Foreign,
    /// A format version this build does not know (a newer instance wrote it).
    Version(u8),
    /// Shorter than the header.
    Truncated,
    /// Flag bits this version does not know.
    Flags(u8),
    /// Times out of order (fresh after stale, or written after fresh).
    Times,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Foreign => f.write_str("not a cache entry (no SFC magic)"),
            EnvelopeError::Version(version) => {
                write!(f, "cache entry format version {version} is not known here")
            }
            EnvelopeError::Truncated => f.write_str("cache entry shorter than its header"),
            EnvelopeError::Flags(flags) => write!(f, "cache entry has unknown flags {flags:#04x}"),
            EnvelopeError::Times => f.write_str("cache entry times are out of order"),
        }
    }
}

impl std::error::Error for EnvelopeError {}
