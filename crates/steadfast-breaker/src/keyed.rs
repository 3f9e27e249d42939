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

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::Gauge;
use steadfast_core::metrics::{BREAKER_KEYS, LABEL_BREAKER};
use steadfast_core::AnyError;

use crate::breaker::Builder;
use crate::future::Admission;
use crate::mode::Typed;
use crate::service::BreakerProvider;
use crate::{CircuitBreaker, CircuitBreakerLayer, ConfigError, Rejected, Snapshot};

/// A bounded map from keys to breakers, all built from one template.
///
/// Cheap to clone; clones share the map. Each key's breaker is named `"{template}/{key}"` in
/// events and snapshots, but reports its metrics under the template's name: metric series must
/// not multiply with keys that callers choose.
pub struct BreakerRegistry<K> {
    inner: Arc<RegistryInner<K>>,
}

struct RegistryInner<K> {
    breakers: moka::sync::Cache<K, CircuitBreaker>,
    template: Builder,
    keys: Gauge,
    /// Breakers made minus breakers evicted, for the keys gauge.
    alive: Arc<AtomicI64>,
}

/// moka refuses idle times over 1000 years; a breaker has no use for more than 100.
const MAX_IDLE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl<K> Clone for BreakerRegistry<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K> BreakerRegistry<K>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
{
    /// A registry of at most `max_keys` breakers built from `template`; a key unused for
    /// `idle` is dropped.
    ///
    /// # Errors
    ///
    /// The template's [`ConfigError`], or one for a zero `max_keys` or `idle`.
    pub fn new(template: Builder, max_keys: u64, idle: Duration) -> Result<Self, ConfigError> {
        template.validate()?;
        if max_keys == 0 {
            return Err(ConfigError::OutOfRange {
                field: "max_keys",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        if idle.is_zero() || idle > MAX_IDLE {
            return Err(ConfigError::OutOfRange {
                field: "idle",
                value: format!("{idle:?}"),
                expected: "a duration above zero and at most 100 years",
            });
        }
        let keys = metrics::gauge!(BREAKER_KEYS, LABEL_BREAKER => template.name().to_owned());
        let alive = Arc::new(AtomicI64::new(0));
        let breakers = moka::sync::Cache::builder()
            .max_capacity(max_keys)
            .time_to_idle(idle)
            .eviction_listener({
                let alive = alive.clone();
                let keys = keys.clone();
                move |_key, _breaker, _cause| {
                    let now = alive.fetch_sub(1, Ordering::Relaxed) - 1;
                    keys.set(now.max(0) as f64);
                }
            })
            .build();
        Ok(Self {
            inner: Arc::new(RegistryInner {
                breakers,
                template,
                keys,
                alive,
            }),
        })
    }

    /// The breaker for `key`, made on first use.
    pub fn get(&self, key: K) -> CircuitBreaker {
        if let Some(breaker) = self.inner.breakers.get(&key) {
            return breaker;
        }
        self.inner.breakers.get_with(key, || {
            let alive = self.inner.alive.fetch_add(1, Ordering::Relaxed) + 1;
            self.inner.keys.set(alive as f64);
            self.inner.template.for_key().build_validated()
        })
    }

    /// The breaker for `key`, if one exists.
    pub fn peek(&self, key: &K) -> Option<CircuitBreaker> {
        self.inner.breakers.get(key)
    }

    /// Forgets the breaker for `key`; the next call makes a fresh, closed one.
    pub fn remove(&self, key: &K) {
        self.inner.breakers.invalidate(key);
    }

    /// How many breakers the registry holds (moka's estimate, exact once pending work is done).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.inner.breakers.run_pending_tasks();
        self.inner.breakers.entry_count()
    }

    /// Whether the registry holds no breaker.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of every breaker, for status pages.
    #[must_use]
    pub fn snapshots(&self) -> Vec<(K, Snapshot)> {
        self.inner
            .breakers
            .iter()
            .map(|(key, breaker)| ((*key).clone(), breaker.snapshot()))
            .collect()
    }
}

impl<K> fmt::Debug for BreakerRegistry<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRegistry")
            .field("template", &self.inner.template.name())
            .field("keys", &self.inner.breakers.entry_count())
            .finish()
    }
}

/// The [`BreakerProvider`] of keyed layers: a registry and a key extractor.
#[derive(Clone)]
pub struct Keyed<K, X> {
    registry: BreakerRegistry<K>,
    extractor: X,
}

impl<K, X> Keyed<K, X> {
    /// The registry.
    pub const fn registry(&self) -> &BreakerRegistry<K> {
        &self.registry
    }
}

impl<K, X, Req> BreakerProvider<Req> for Keyed<K, X>
where
    K: Hash + Eq + Clone + fmt::Display + Send + Sync + 'static,
    X: Fn(&Req) -> K + Clone,
{
    type Handle = CircuitBreaker;

    fn admit(&self, request: &Req) -> Result<Admission<CircuitBreaker>, Rejected> {
        Admission::new(self.registry.get((self.extractor)(request)))
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
    pub const fn keyed(registry: BreakerRegistry<K>, extractor: X) -> Self {
        Self {
            provider: Keyed {
                registry,
                extractor,
            },
            classifier: AnyError,
            mode: Typed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_bounded() {
        let registry = BreakerRegistry::<u32>::new(
            CircuitBreaker::builder("tenant").consecutive_failures(1),
            100,
            Duration::from_secs(60),
        )
        .unwrap();
        for key in 0..10_000 {
            let _ = registry.get(key);
        }
        assert!(registry.len() <= 100, "{} breakers", registry.len());
        assert_eq!(registry.get(7).name(), "tenant");
    }

    #[test]
    fn keys_gauge_follows_evictions() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let registry = metrics::with_local_recorder(&recorder, || {
            BreakerRegistry::<u32>::new(
                CircuitBreaker::builder("gauge").consecutive_failures(1),
                100,
                Duration::from_secs(60),
            )
            .unwrap()
        });
        for key in 0..3 {
            let _ = registry.get(key);
        }
        registry.remove(&1);
        let _ = registry.len(); // runs moka's pending work, and with it the eviction listener
        let keys = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find(|(key, ..)| key.key().name() == "steadfast_breaker_keys")
            .map(|(.., value)| value);
        assert!(
            matches!(keys, Some(DebugValue::Gauge(value)) if value.into_inner() == 2.0),
            "{keys:?}"
        );
    }

    #[test]
    fn bad_bounds_are_errors() {
        let template = CircuitBreaker::builder("x");
        assert!(BreakerRegistry::<u32>::new(template.clone(), 0, Duration::from_secs(1)).is_err());
        assert!(BreakerRegistry::<u32>::new(template.clone(), 1, Duration::ZERO).is_err());
        assert!(BreakerRegistry::<u32>::new(template.clone(), 1, Duration::MAX).is_err());
        assert!(
            BreakerRegistry::<u32>::new(template.failure_rate(7.0), 1, Duration::from_secs(1))
                .is_err()
        );
    }
}
