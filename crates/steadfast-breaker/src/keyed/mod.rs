//! Keyed breakers: one breaker per key (host, route, tenant), in a bounded registry.
//!
//! A dependency is rarely all up or all down: one host of a pool fails, one tenant's shard is
//! slow. A keyed layer picks a breaker per request from a key extractor, so one bad key trips
//! alone. The registry is bounded (moka: size-bounded with idle expiry), so keys chosen by an
//! attacker cannot grow memory; an evicted key starts again closed.
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
//!     10_000,
//!     Duration::from_secs(600),
//! )
//! .unwrap();
//!
//! // The request is "host/path"; the key is the host.
//! let host = |request: &&'static str| request.split('/').next().unwrap_or_default().to_owned();
//! let service = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::keyed(registry.clone(), host))
//!     .service(service_fn(|request: &'static str| async move {
//!         if request.starts_with("bad") { Err("refused") } else { Ok("ok") }
//!     }));
//!
//! for _ in 0..2 {
//!     let _ = service.clone().oneshot("bad.example/x").await;
//! }
//! assert_eq!(registry.get("bad.example".to_owned()).state(), State::Open);
//! assert_eq!(registry.get("good.example".to_owned()).state(), State::Closed);
//! assert!(service.clone().oneshot("good.example/y").await.is_ok());
//! # }
//! ```

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
        let breaker = CircuitBreaker::builder("steadfast-unkeyed")
            .consecutive_failures(1)
            .build()
            .expect("a valid config");
        breaker.disable();
        breaker
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
        let out_of_range = |result: Result<BreakerRegistry<u32>, crate::ConfigError>, name| {
            matches!(result, Err(crate::ConfigError::OutOfRange { field, .. }) if field == name)
        };
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
