//! A two-tier cache for the slow dependency behind a service: moka in process (L1), Redis
//! shared by every instance (L2), your loader behind both.
//!
//! ```
//! use std::time::Duration;
//! use steadfast_cache::{Source, TieredCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cache: TieredCache<u64, String> = TieredCache::builder("products")
//!     .ttl(Duration::from_secs(60))
//!     .stale_if_error(Duration::from_secs(3600))
//!     .build()
//!     .unwrap();
//!
//! let product = cache
//!     .get_with(42, || async { Ok::<_, std::io::Error>("teapot".to_owned()) })
//!     .await
//!     .unwrap();
//! assert_eq!(*product, "teapot");
//! assert_eq!(product.source(), Source::Loader);
//!
//! // The second read is an L1 hit: the loader is not called.
//! let again = cache
//!     .get_with(42, || async { unreachable!("a fresh hit does not load") as Result<String, std::io::Error> })
//!     .await
//!     .unwrap();
//! assert_eq!(again.source(), Source::L1);
//! # }
//! ```
//!
//! # The read path
//!
//! [`TieredCache::get_with`] answers a fresh L1 entry at once: one moka lookup (which clones
//! the value: keep large values in an `Arc`) and one clock read, no lock, and no allocation
//! beyond moka's own housekeeping. Otherwise it starts (or joins) the key's *load*, which runs on
//! its own task:
//!
//! 1. **L2**: one round trip reads the entry, the key's write version and its load lock. A
//!    fresh entry fills L1 and answers.
//! 2. **The lock across instances**: the first instance to miss takes the key's lock and
//!    loads; the others look for its value every few milliseconds, and load themselves only if
//!    the lock goes away without one or the [wait](Builder::lock_wait) runs out.
//! 3. **The loader**, cut off at the [load timeout](Builder::load_timeout). (A caller waits
//!    at most the L2 calls' timeouts, the lock wait and the load timeout together.) Its value answers
//!    every caller waiting on the key, fills L1 at once and then L2 — unless a write or
//!    invalidation of the key came after the load started: then the value is answered but not
//!    stored, so a slow loader never writes an older value over a newer one.
//!
//! So a thousand callers missing one key make one loader call in the process, and with Redis,
//! one in the fleet.
//!
//! # Freshness
//!
//! Each entry is fresh until its TTL (shortened by the [jitter](Builder::jitter)), then
//! - within [stale-while-revalidate](Builder::stale_while_revalidate): answered at once,
//!   marked [`Stale::Revalidating`], while a background load refreshes it;
//! - within [stale-if-error](Builder::stale_if_error): loaded again, and answered marked
//!   [`Stale::LoadFailed`] if the load fails, times out, or the loader's breaker is open.
//!   For a while after such a failure ([`retry_after_error`](Builder::retry_after_error)),
//!   reads answer the stale value at once instead of each trying a load.
//!   The breaker's refusal is told apart (`Reason::BreakerOpen`) when the loader's error is
//!   the breaker's [`Rejected`](steadfast_breaker::Rejected) itself or a boxed error whose
//!   `source()` chain holds it (`breaker.layer().boxed_errors()`); a typed
//!   `steadfast_breaker::Error<E>` reads as `Reason::Error`.
//!
//! An entry marked for revalidation after a resync (below) is not fresh even within its TTL;
//! until its TTL ends it is still a stale value to answer, marked, if its reload fails.
//!
//! What is stored at all is the business's rule ([`Builder::admit`]): values, "not found" as a
//! negative entry with its own TTL, never errors, or any predicate.
//!
//! # The shared tier, when Redis is in trouble
//!
//! Every L2 call goes through a circuit breaker and a [timeout](Builder::remote_timeout): a
//! Redis that is slow costs a read at most the timeout, and one that is down costs nothing once
//! the breaker opens. Reads then go on with L1 and the loader; they never fail because of L2.
//!
//! Writes ([`insert`](TieredCache::insert), [`invalidate`](TieredCache::invalidate)) go to L2
//! and publish a [`notice`] that drops the key from every other instance's L1. Notices
//! sent while an instance's feed is down are lost, so when the feed reconnects the instance
//! marks all of its L1 for revalidation: no entry from before is served as fresh again.
//!
//! Values cross the wire in a versioned [`envelope`] with a pluggable [`codec`];
//! bytes that are not an entry read as a miss and are counted, never a panic.
//!
//! # Where it sits
//!
//! For a client: fallback → **cache** → breaker → timeout → the client. The cache sits outside
//! the dependency's breaker so that it can answer stale while the breaker is open, and inside
//! the fallback so that a fallback's answer is never stored.
//!
//! # Metrics
//!
//! Hits and misses per tier, loads by outcome and their time, stale answers, evictions,
//! notices sent and received, corrupt entries, L2 errors and resyncs: see
//! [`steadfast_core::metrics`] for names and labels. The cache also keeps its own hit counts,
//! read with [`TieredCache::stats`] whether or not a recorder is installed.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod batch;
mod builder;
mod cache;
mod cached;
pub mod codec;
pub mod envelope;
mod error;
mod flight;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod key;
mod l1;
mod metrics;
pub mod notice;
pub mod remote;
mod stats;

pub use builder::{Admit, Builder, Lifetime};
pub use cache::{GetWith, TieredCache};
pub use cached::{Cached, Source, Stale, Status};
pub use error::{BuildError, Error, RemoteError};
pub use key::CacheKey;
pub use l1::L1Kind;
pub use stats::Stats;

/// The Redis client the [`RedisTier`](remote::RedisTier) is built from, so that its version is
/// the one this crate was built with.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use fred;
