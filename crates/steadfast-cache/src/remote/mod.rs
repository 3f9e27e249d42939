//! The shared tier: what a [`TieredCache`](crate::TieredCache) needs from a store that every
//! instance sees, and its Redis implementation.
//!
//! The cache calls a tier through its own breaker and timeout (see
//! [`Builder::remote_timeout`](crate::Builder::remote_timeout)), so an implementation needs none
//! of its own; it answers errors, and the cache decides what a failed call means (for a read: go
//! on with L1 and the loader).
//!
//! Keys given to a tier are whole entry keys (`sf:{cache:key}`). A tier keeps beside each entry
//! a *version* that every [`put`](RemoteTier::put) and [`delete`](RemoteTier::delete) changes,
//! and a *load lock*; both may live under keys derived from the entry key, which must hash to
//! the entry's slot (the `{…}` hash tag does that on Redis Cluster).

#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisTier, DEFAULT_CHANNEL};

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;
use std::time::Duration;

use bytes::Bytes;

use crate::error::RemoteError;

/// A boxed future: tier calls are off the hot path (an L1 hit never makes one), and boxing
/// keeps [`RemoteTier`] usable as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the tier holds under one entry key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The entry's bytes, if any.
    pub value: Option<Bytes>,
    /// The key's write version as read with the value, to hand back to
    /// [`fill`](RemoteTier::fill).
    pub version: Version,
    /// Whether another instance holds the key's load lock.
    pub locked: bool,
}

/// An opaque write version: what the tier read, to compare when filling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Version(pub Option<Bytes>);

/// A loaded value to write unless the key was written or deleted since `version` was read.
#[derive(Clone, Debug)]
pub struct Fill {
    /// The entry key.
    pub key: String,
    /// The envelope's bytes.
    pub value: Bytes,
    /// How long the tier keeps it (its stale-until).
    pub ttl: Duration,
    /// The version read before the load.
    pub version: Version,
}

/// What a tier tells the caches listening to it.
#[derive(Clone, Copy, Debug)]
pub enum Incoming<'a> {
    /// A notice another instance published (see [`notice`](crate::notice)).
    Notice(&'a [u8]),
    /// The feed of notices reconnected: notices sent while it was down are lost.
    Reconnected,
}

/// A cache listening to a tier's notices. The tier holds it weakly: a dropped cache stops
/// listening.
pub trait Listener: Send + Sync {
    /// Called for every notice and reconnection, in order, on the tier's listening task. Keep it
    /// short; it must not block.
    fn hear(&self, incoming: Incoming<'_>);
}

/// A store shared by every instance: Redis, or anything with the same few operations.
///
/// The cache asks its breaker before it calls a method, and drops the returned future when the
/// call times out: do the work inside the future, so that a timed-out call stops with it.
pub trait RemoteTier: Send + Sync + 'static {
    /// Reads entries with their versions and lock flags, in the order of `keys`. One round trip
    /// for all keys where the store allows it.
    fn fetch<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<Vec<Fetched>, RemoteError>>;

    /// Writes loaded values, each only if its key's version is still the one read before the
    /// load (so a slow loader never writes an older value over a newer one). Answers how many
    /// were written.
    fn fill<'a>(&'a self, fills: &'a [Fill]) -> BoxFuture<'a, Result<usize, RemoteError>>;

    /// Writes a value and changes the key's version.
    fn put<'a>(
        &'a self,
        key: &'a str,
        value: Bytes,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), RemoteError>>;

    /// Deletes an entry and changes the key's version.
    fn delete<'a>(&'a self, keys: &'a [String]) -> BoxFuture<'a, Result<(), RemoteError>>;

    /// Takes the key's load lock for `ttl` if nobody holds it. Answers whether it was taken.
    fn lock<'a>(
        &'a self,
        key: &'a str,
        token: u64,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, RemoteError>>;

    /// Gives the load lock back if `token` still holds it.
    fn unlock<'a>(&'a self, key: &'a str, token: u64) -> BoxFuture<'a, Result<(), RemoteError>>;

    /// Sends a notice to every instance listening to this tier (this one included: listeners
    /// skip their own).
    fn publish(&self, notice: Bytes) -> BoxFuture<'_, Result<(), RemoteError>>;

    /// Registers a listener for notices and reconnections. A tier without a notice feed does
    /// nothing here, and instances then learn of each other's writes only through TTLs.
    fn listen(&self, listener: Weak<dyn Listener>);
}
