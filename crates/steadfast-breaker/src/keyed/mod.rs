//! Keyed breakers: one breaker per key (host, route, tenant), in a bounded registry.
//!
//! A dependency is rarely all up or all down: one host of a pool fails, one tenant's shard is
//! slow. A keyed layer picks a breaker per request from a key extractor, so one bad key trips
//! alone. The [`BreakerRegistry`] holds at most `max_keys` breakers and forgets keys left idle,
//! so keys chosen by an attacker cannot grow memory; and when it must make room, it keeps the
//! breakers that have learned something (see [Eviction](#eviction)).
//!
//! ```
//! use std::time::Duration;
//! use steadfast_breaker::{keyed::BreakerRegistry, CircuitBreaker, CircuitBreakerLayer, State};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = BreakerRegistry::<String>::new(
//!     CircuitBreaker::builder("upstream").consecutive_failures(2),
//!     10_000,                   // at most this many breakers
//!     Duration::from_secs(600), // a key unused this long is forgotten
//! )
//! .unwrap();
//!
//! // The request is "host/path"; the key is the host, and a request without one goes
//! // through no breaker (the extractor may return `K` or `Option<K>`).
//! let service = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::keyed(registry.clone(), |request: &&'static str| {
//!         request.split_once('/').map(|(host, _)| host.to_owned())
//!     }))
//!     .service(service_fn(|request: &'static str| async move {
//!         if request.starts_with("bad") { Err("refused") } else { Ok("ok") }
//!     }));
//!
//! for _ in 0..2 {
//!     let _ = service.clone().oneshot("bad.example/x").await;
//! }
//! let bad = registry.get("bad.example".to_owned());
//! assert_eq!(bad.state(), State::Open);
//! assert_eq!(bad.name(), "upstream"); // every key's breaker carries the template's name
//! assert!(service.clone().oneshot("bad.example/y").await.unwrap_err().is_rejected());
//! assert!(service.clone().oneshot("good.example/y").await.is_ok());
//!
//! // Keys appear in the snapshots, for status pages.
//! let mut keys: Vec<String> = registry.snapshots().into_iter().map(|(key, _)| key).collect();
//! keys.sort();
//! assert_eq!(keys, ["bad.example", "good.example"]);
//! # }
//! ```
//!
//! # Keys
//!
//! A key is any `Hash + Eq + Clone + Send + Sync + 'static` value: a `String`, an id, a
//! `(String, u16)` host and port. Keys name no breaker and no metric series: every key's
//! breaker reports under the template's name, so series do not multiply with keys that callers
//! choose, and the registry's gauge `steadfast_breaker_keys` counts the keys held.
//!
//! The extractor is any `Fn(&Req) -> K` or `Fn(&Req) -> Option<K>` (see [`IntoKey`]); `None`
//! sends the request through no breaker, and records nothing. A closure's argument type is
//! inferred from [`CircuitBreakerLayer::keyed`], so none needs a cast to a `fn` type.
//!
//! # Eviction
//!
//! The registry is split into shards (a power of two, about four per core), each with a share
//! of `max_keys` and a lock of its own; the shares add up to `max_keys` exactly. When a new key
//! comes to a full shard, one entry goes:
//!
//! 1. The registry samples 8 entries of the shard at random (a shard of at most 32 entries is
//!    scanned whole).
//! 2. An entry idle for longer than `idle` goes first, whatever its state.
//! 3. Otherwise the entry with the lowest *retention*, then the least recently used, goes.
//!    Retention is 0 for a clean closed breaker, 1 for a closed one with failures or slow calls
//!    in its window or failures in a row, 2 for one that is open, half-open or set by hand.
//! 4. While every entry sampled has a retention of 1 or more, it samples again, up to 4 rounds
//!    (32 entries), then settles for the lowest it saw.
//!
//! Why: forgetting a clean closed breaker loses nothing, as a fresh one is the same; forgetting
//! one with state loses what it learned. A cache that evicts by recency or frequency alone
//! loses it exactly when it matters: with `max_keys` at 1,000, a failing host called once in
//! every 5,000 calls of a flood of one-shot keys has its breaker evicted between any two of its
//! calls, starts closed each time, and never opens. Here the flood's clean breakers evict each
//! other, and the host's breaker, holding failures, stays until its rule opens it.
//!
//! What this guarantees, and what not: a breaker with state is evicted only when (nearly) every
//! entry sampled from its shard also has state, that is when clean breakers are rare there (32
//! samples all miss a fraction `f` of clean entries with odds of `(1 - f)^32`). An attacker
//! whose own keys all fail makes every breaker one with state, and then a real key's breaker
//! competes with them on class (an open breaker outranks breakers with mere failures in their
//! window) and on recency: a key used more often than the flood keys stays, one used more rarely
//! may go. A shard of capacity one (a registry with fewer keys than shards: about four per core)
//! keeps only its last key. Give `max_keys` room for the keys worth keeping and the flood you
//! expect.
//!
//! # Idle keys
//!
//! A key unused for longer than `idle` is forgotten: its next use makes a fresh breaker in its
//! place, [`BreakerRegistry::peek`] and [`BreakerRegistry::snapshots`] skip it, a miss that
//! samples it removes it, and [`BreakerRegistry::sweep`] removes every such key (run it from a
//! timer so that a registry whose traffic stops gives its memory back). Time is kept in coarse
//! ticks of about a second, so a key is forgotten between `idle` and `idle` plus two seconds
//! after its last use.
//!
//! # Costs
//!
//! A lookup of a known key hashes it (foldhash, seeded per registry, so that callers cannot aim
//! keys at one shard), takes its shard's read lock, clones the breaker's `Arc`, and writes the
//! time of use at most once a second. A new key builds its breaker outside any lock, then takes
//! the shard's write lock to insert it, evicting if the shard is full.
//!
//! Each key costs about **2 KB** with the default window (10 buckets) and one counter stripe,
//! the keyed default: 1,980 bytes allocated per `u64` key, measured by counting allocations
//! (the `memory_per_key` test). Of that, the breaker's shared state (its `Arc`) takes 1,408
//! bytes, mostly cache-line padding: the state word, the probe slots and the failure run sit on
//! lines of their own, 128 bytes each, and the window's inline part takes 384; the window's
//! buckets take 384 more (10 buckets in 3 lines of 128 bytes; 128 more per 4 more buckets per
//! stripe), the refused-call counter 128, and the map entry about 48 plus the key's own heap
//! data. A registry of `max_keys = 100_000` thus holds about 200 MB at most.

mod registry;

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::OnceLock;

use steadfast_core::AnyError;

use crate::future::Admission;
use crate::mode::Typed;
use crate::service::BreakerProvider;
use crate::{CircuitBreaker, CircuitBreakerLayer, Rejected};

pub use registry::BreakerRegistry;

/// What a key extractor returns: a key, or `Option<K>` where `None` sends the request through
/// no breaker at all.
///
/// Implemented for `K` itself and for `Option<K>`, so an extractor can return either.
pub trait IntoKey<K> {
    /// The key, if the request has one.
    fn into_key(self) -> Option<K>;
}

impl<K> IntoKey<K> for K {
    #[inline]
    fn into_key(self) -> Option<K> {
        Some(self)
    }
}

impl<K> IntoKey<K> for Option<K> {
    #[inline]
    fn into_key(self) -> Option<K> {
        self
    }
}

/// The [`BreakerProvider`] of keyed layers: a registry and a key extractor.
pub struct Keyed<K, X> {
    registry: BreakerRegistry<K>,
    extractor: X,
}

impl<K, X> Keyed<K, X> {
    /// The registry.
    pub const fn registry(&self) -> &BreakerRegistry<K> {
        &self.registry
    }

    /// The key extractor.
    pub const fn extractor(&self) -> &X {
        &self.extractor
    }
}

impl<K, X: Clone> Clone for Keyed<K, X> {
    fn clone(&self) -> Self {
        Self {
            registry: self.registry.clone(),
            extractor: self.extractor.clone(),
        }
    }
}

/// What a call through a keyed layer holds until it ends: its key's breaker, or, for a request
/// without a key, the process-wide disabled breaker that records nothing.
#[derive(Clone, Debug)]
pub enum KeyedHandle {
    /// The breaker of the request's key.
    Key(CircuitBreaker),
    /// The request had no key: a disabled breaker, shared by the whole process, that admits
    /// every call and counts none.
    Unkeyed(&'static CircuitBreaker),
}

impl Borrow<CircuitBreaker> for KeyedHandle {
    #[inline]
    fn borrow(&self) -> &CircuitBreaker {
        match self {
            Self::Key(breaker) => breaker,
            Self::Unkeyed(breaker) => breaker,
        }
    }
}

/// The breaker of requests without a key: disabled, so it admits every call, records nothing
/// and never changes again; all threads only read it.
fn passthrough() -> &'static CircuitBreaker {
    static PASSTHROUGH: OnceLock<CircuitBreaker> = OnceLock::new();
    PASSTHROUGH.get_or_init(|| {
        // Disabled from the start: it records nothing and emits no transition.
        CircuitBreaker::builder("steadfast-unkeyed")
            .consecutive_failures(1)
            .initial_state(crate::State::Disabled)
            .build()
            .expect("a valid config")
    })
}

impl<K, X, O, Req> BreakerProvider<Req> for Keyed<K, X>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    X: Fn(&Req) -> O + Clone,
    O: IntoKey<K>,
{
    type Handle = KeyedHandle;

    #[inline]
    fn admit(&self, request: &Req) -> Result<Admission<KeyedHandle>, Rejected> {
        match (self.extractor)(request).into_key() {
            Some(key) => Admission::new(KeyedHandle::Key(self.registry.get(key))),
            None => Admission::new(KeyedHandle::Unkeyed(passthrough())),
        }
    }
}

impl<K, X> fmt::Debug for Keyed<K, X> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// A layer with one breaker per key.
pub type KeyedCircuitBreakerLayer<K, X, C = AnyError, M = Typed> =
    CircuitBreakerLayer<C, M, Keyed<K, X>>;

impl<K, X> CircuitBreakerLayer<AnyError, Typed, Keyed<K, X>> {
    /// A layer that picks each request's breaker from `registry` by `extractor(&request)`.
    ///
    /// The extractor returns a key `K`, or an `Option<K>` whose `None` lets the request
    /// through no breaker at all (see [`IntoKey`]). A closure's argument type is inferred
    /// from this bound, so `|request: &Request<Body>| ...` needs no cast to a `fn` type.
    pub const fn keyed<Req, O>(registry: BreakerRegistry<K>, extractor: X) -> Self
    where
        X: Fn(&Req) -> O,
        O: IntoKey<K>,
    {
        Self {
            provider: Keyed {
                registry,
                extractor,
            },
            classifier: AnyError,
            mode: Typed,
            timeout: crate::timeout::NoTimeout,
        }
    }
}

impl<K, X: Clone> crate::service::MakeProvider for Keyed<K, X> {
    type Provider = Self;

    fn make_provider(&self) -> Self {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn keys_gauge_follows_inserts_evictions_and_removals() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        // The debugging recorder zeroes a gauge when it reads it; the registry only adds to
        // and takes from its gauge, so the reads add up to its value.
        let total = std::cell::Cell::new(0.0);
        let gauge = || {
            let read = snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .find(|(key, ..)| key.key().name() == "steadfast_breaker_keys")
                .and_then(|(.., value)| match value {
                    DebugValue::Gauge(value) => Some(value.into_inner()),
                    _ => None,
                })
                .expect("the keys gauge");
            total.set(total.get() + read);
            Some(total.get())
        };
        let (clock, time) = steadfast_core::Clock::mock();
        let registry = metrics::with_local_recorder(&recorder, || {
            BreakerRegistry::<u32>::new(
                CircuitBreaker::builder("gauge")
                    .consecutive_failures(1)
                    .clock(clock),
                100,
                Duration::from_secs(60),
            )
            .unwrap()
        });
        for key in 0..3 {
            let _ = registry.get(key);
        }
        assert_eq!(gauge(), Some(3.0));
        registry.remove(&1);
        registry.remove(&1);
        assert_eq!(gauge(), Some(2.0));
        // Evictions: the registry stays full at 100.
        for key in 0..1000 {
            let _ = registry.get(key);
        }
        assert_eq!(registry.len(), 100);
        assert_eq!(gauge(), Some(100.0));
        // Idle entries swept; an idle entry replaced in place does not count twice.
        time.advance(Duration::from_secs(120));
        let _ = registry.get(5000);
        let _ = registry.get(5000);
        registry.sweep();
        assert_eq!(registry.len(), 1);
        assert_eq!(gauge(), Some(1.0));
        // The last clone's drop takes its keys off the gauge.
        let clone = registry.clone();
        drop(registry);
        assert_eq!(gauge(), Some(1.0));
        drop(clone);
        assert_eq!(gauge(), Some(0.0));
    }

    #[test]
    fn bad_bounds_are_errors() {
        let template = CircuitBreaker::builder("x");
        let out_of_range = |result: Result<BreakerRegistry<u32>, crate::ConfigError>, name| matches!(result, Err(crate::ConfigError::OutOfRange { field, .. }) if field == name);
        assert!(out_of_range(
            BreakerRegistry::new(template.clone(), 0, Duration::from_secs(1)),
            "max_keys"
        ));
        assert!(out_of_range(
            BreakerRegistry::new(template.clone(), 1, Duration::ZERO),
            "idle"
        ));
        assert!(out_of_range(
            BreakerRegistry::new(template.clone(), 1, Duration::MAX),
            "idle"
        ));
        assert!(BreakerRegistry::<u32>::new(
            template.clone(),
            1,
            Duration::from_secs(100 * 365 * 24 * 3600)
        )
        .is_ok());
        assert!(
            BreakerRegistry::<u32>::new(template.failure_rate(7.0), 1, Duration::from_secs(1))
                .is_err()
        );
    }

    #[test]
    fn unkeyed_calls_share_one_disabled_breaker() {
        let handle = KeyedHandle::Unkeyed(passthrough());
        let breaker: &CircuitBreaker = handle.borrow();
        assert_eq!(breaker.state(), crate::State::Disabled);
        assert!(std::ptr::eq(breaker, passthrough()));
    }
}
