//! Where records live: [`MemoryStore`] (the default) and, with feature `redis`, `RedisStore`.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};
use steadfast_core::BoxError;

use crate::record::{Completed, DecodeError, Record, Token};
use crate::{Fingerprint, IdempotencyKey};

mod memory;
pub use memory::MemoryStore;

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisStore;

/// The store's name for a record: the caller's scope and key, hashed, under a hash tag.
///
/// Hashing bounds the length and keeps attacker-chosen bytes out of the store's key space;
/// the braces make the record's keys one Redis Cluster slot.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreKey(String);

impl StoreKey {
    /// The record key of `key` within `scope` (the caller's identity: a principal, a tenant).
    #[must_use]
    pub fn new(scope: &str, key: &IdempotencyKey) -> Self {
        let digest = Sha256::new()
            .chain_update((scope.len() as u64).to_be_bytes())
            .chain_update(scope.as_bytes())
            .chain_update(key.as_str().as_bytes())
            .finalize();
        let mut name = String::with_capacity(24 + 32);
        name.push_str("steadfast:idem:{");
        for byte in &digest[..16] {
            name.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            name.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
        }
        name.push('}');
        Self(name)
    }

    /// The name as the store sees it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a claim found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key was free: this caller holds it, under this fencing token, for the lease.
    Acquired(Token),
    /// Another call holds the key, for a request with this fingerprint.
    InFlight(Fingerprint),
    /// The key is done: replay this (if the fingerprint matches).
    Completed(Completed),
}

/// A store that failed.
#[derive(Debug)]
pub enum StoreError {
    /// The store could not be reached, or answered an error.
    Unavailable(BoxError),
    /// A record's bytes are not a record (a foreign writer, corruption): counted and refused.
    Corrupt(DecodeError),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(error) => {
                write!(f, "the idempotency store is unavailable: {error}")
            }
            StoreError::Corrupt(error) => write!(f, "an idempotency record is corrupt: {error}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Unavailable(error) => Some(&**error),
            StoreError::Corrupt(error) => Some(error),
        }
    }
}

/// A record store. Every operation is atomic on its key.
pub trait Store: Clone + Send + Sync + 'static {
    /// Claims `key` for a request with `fingerprint`, for `lease`: [`Claim::Acquired`] if the
    /// key was free (an in-progress record is written, expiring after the lease), otherwise
    /// what holds it.
    fn claim(
        &self,
        key: &StoreKey,
        fingerprint: Fingerprint,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Completes `key` with `completed`, kept for `retention`, if the claim under `token`
    /// still holds it, or nobody does (its lease ran out and no one claimed it since).
    /// `Ok(false)`: a newer claim or a completion holds the key, and nothing was written.
    fn complete(
        &self,
        key: &StoreKey,
        token: Token,
        completed: &Completed,
        retention: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Releases `key` if the claim under `token` still holds it, so a retry runs again.
    fn release(
        &self,
        key: &StoreKey,
        token: Token,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The record of `key`, if any.
    fn get(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;
}
