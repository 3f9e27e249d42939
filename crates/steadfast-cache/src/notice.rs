//! Invalidation notices: what one instance tells the others when it writes or deletes a key.
//!
//! ```text
//! "SFN" 1 | instance id (8 bytes) | op (1 byte: b'p' put, b'd' delete, b'a' all keys)
//!         | cache name length (2 bytes) | cache name | key text (the rest, UTF-8)
//! ```
//!
//! Every instance sharing a tier hears every notice on the tier's channel; the cache name says
//! whose L1 it is for, and the instance id lets the sender skip its own.
//!
//! ```
//! use steadfast_cache::notice::{Notice, Op};
//!
//! let notice = Notice { instance: 7, op: Op::Delete, cache: "products", key: "42" };
//! let bytes = notice.encode();
//! assert_eq!(Notice::decode(&bytes), Some(notice));
//! assert_eq!(Notice::decode(b"hello"), None);
//! ```

const MAGIC: &[u8; 4] = b"SFN\x01";

/// What happened to the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new value was written.
    Put,
    /// The key was deleted.
    Delete,
    /// Every key of the cache was invalidated.
    All,
}

/// One notice, borrowed from its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice<'a> {
    /// The sending instance's random id.
    pub instance: u64,
    /// What happened.
    pub op: Op,
    /// The cache's name.
    pub cache: &'a str,
    /// The key's text form (empty for [`Op::All`]).
    pub key: &'a str,
}

impl<'a> Notice<'a> {
    /// The notice's bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let name = self.cache.as_bytes();
        let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        let mut out = Vec::with_capacity(15 + name.len() + self.key.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.instance.to_be_bytes());
        out.push(match self.op {
            Op::Put => b'p',
            Op::Delete => b'd',
            Op::All => b'a',
        });
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(&name[..usize::from(name_len)]);
        out.extend_from_slice(self.key.as_bytes());
        out
    }

    /// Reads a notice; `None` for anything else.
    #[must_use]
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(MAGIC)?;
        let (instance, rest) = rest.split_first_chunk::<8>()?;
        let (&op, rest) = rest.split_first()?;
        let op = match op {
            b'p' => Op::Put,
            b'd' => Op::Delete,
            b'a' => Op::All,
            _ => return None,
        };
        let (name_len, rest) = rest.split_first_chunk::<2>()?;
        let name_len = usize::from(u16::from_be_bytes(*name_len));
        if rest.len() < name_len {
            return None;
        }
        let (cache, key) = rest.split_at(name_len);
        Some(Notice {
            instance: u64::from_be_bytes(*instance),
            op,
            cache: std::str::from_utf8(cache).ok()?,
            key: std::str::from_utf8(key).ok()?,
        })
    }
}
