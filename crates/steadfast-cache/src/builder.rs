//! Building a cache: its name, sizes, times, rules and optional shared tier.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use steadfast_breaker::CircuitBreaker;
use steadfast_core::Clock;

use crate::cache::{wall_ms, Inner, Remote, Timebase, Timebases};
use crate::codec::{Codec, Json};
use crate::error::BuildError;
use crate::l1::{L1Kind, L1};
use crate::metrics::Metrics;
use crate::remote::{Listener, RemoteTier};
use crate::{CacheKey, TieredCache};

/// The longest duration a setting takes: far beyond any sensible TTL, well inside what
/// moka and `Instant` arithmetic accept.
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How long a load (with its wait for another instance) may take at most: the shared tier's
/// write versions outlive it, which is what lets a fill tell an older load from a newer write.
const MAX_LOAD: Duration = Duration::from_secs(3600);

/// What becomes of a loaded value: the business's rule, per cache (see [`Builder::admit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Cache it for the TTL, with its stale windows.
    Value,
    /// Cache it as a "not found" for the negative TTL (no stale windows): a burst of lookups of
    /// a missing row reaches the database once per negative TTL, not once per lookup.
    Negative,
    /// Answer it but do not cache it.
    Skip,
    /// Cache it for its own times (an HTTP response's `max-age`, say), each capped by the
    /// cache's setting of the same name: the cache's settings stay the bound on how long
    /// anything is kept. A zero TTL is [`Skip`](Admit::Skip).
    For(Lifetime),
}

/// A value's own times, for [`Admit::For`].
///
/// ```
/// use std::time::Duration;
/// use steadfast_cache::Lifetime;
///
/// let lifetime = Lifetime::new(Duration::from_secs(60)).stale_if_error(Duration::from_secs(600));
/// assert_eq!(lifetime.ttl(), Duration::from_secs(60));
/// assert_eq!(lifetime.stale_while_revalidate_window(), Duration::ZERO);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetime {
    ttl: Duration,
    stale_while_revalidate: Duration,
    stale_if_error: Duration,
}

impl Lifetime {
    /// Fresh for `ttl`, with no stale windows.
    #[must_use]
    pub const fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
        }
    }

    /// Served past its TTL for `window` while a background load refreshes it.
    #[must_use]
    pub const fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = window;
        self
    }

    /// Served past its TTL for `window` when its reload fails.
    #[must_use]
    pub const fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// How long the value is fresh.
    #[must_use]
    pub const fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The stale-while-revalidate window.
    #[must_use]
    pub const fn stale_while_revalidate_window(&self) -> Duration {
        self.stale_while_revalidate
    }

    /// The stale-if-error window.
    #[must_use]
    pub const fn stale_if_error_window(&self) -> Duration {
        self.stale_if_error
    }
}

impl Admit {
    /// The rule for `Option` values: `Some` is a value, `None` a negative entry.
    pub fn option<T>(value: &Option<T>) -> Admit {
        if value.is_some() {
            Admit::Value
        } else {
            Admit::Negative
        }
    }
}

/// The times and limits of a cache.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    pub(crate) ttl: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
    pub(crate) jitter: f64,
    pub(crate) load_timeout: Duration,
    pub(crate) lock_wait: Duration,
    pub(crate) lock_poll: Duration,
    pub(crate) retry_after_error: Duration,
}

/// The shared tier and the codec of its values, until the cache is built.
type RemoteParts<V> = (Arc<dyn RemoteTier>, Arc<dyn Codec<V>>);

pub(crate) type AdmitFnRef<V> = Arc<dyn Fn(&V) -> Admit + Send + Sync>;

/// Builds a [`TieredCache`]; from [`TieredCache::builder`].
#[must_use]
pub struct Builder<K, V> {
    name: String,
    capacity: u64,
    l1: L1Kind,
    policy: Policy,
    admit: Option<AdmitFnRef<V>>,
    clock: Option<Clock>,
    remote: Option<RemoteParts<V>>,
    remote_timeout: Duration,
    remote_breaker: Option<CircuitBreaker>,
    _key: std::marker::PhantomData<fn(K)>,
}

impl<K, V> std::fmt::Debug for Builder<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("policy", &self.policy)
            .field("remote", &self.remote.is_some())
            .finish_non_exhaustive()
    }
}

impl<K, V> Builder<K, V>
where
    K: CacheKey,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            capacity: 10_000,
            l1: L1Kind::Moka,
            policy: Policy {
                ttl: Duration::from_secs(60),
                negative_ttl: Duration::ZERO,
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                jitter: 0.0,
                load_timeout: Duration::from_secs(10),
                lock_wait: Duration::from_secs(10),
                lock_poll: Duration::from_millis(10),
                retry_after_error: Duration::from_secs(1),
            },
            admit: None,
            clock: None,
            remote: None,
            remote_timeout: Duration::from_millis(100),
            remote_breaker: None,
            _key: std::marker::PhantomData,
        }
    }

    /// The most entries L1 holds (10 000 by default); past it, the least recently used go.
    pub fn max_capacity(mut self, entries: u64) -> Self {
        self.capacity = entries;
        self
    }

    /// The in-process store ([`L1Kind::Moka`] by default; [`L1Kind::Quick`] for the cheapest
    /// hit).
    pub fn l1(mut self, kind: L1Kind) -> Self {
        self.l1 = kind;
        self
    }

    /// How long an entry is fresh (60 s by default).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.policy.ttl = ttl;
        self
    }

    /// How long a negative entry ([`Admit::Negative`]) is kept. Zero, the default, keeps none.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.policy.negative_ttl = ttl;
        self
    }

    /// For how long past its TTL an entry is still served while a background load refreshes
    /// it (RFC 5861's stale-while-revalidate). Zero by default.
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.policy.stale_while_revalidate = window;
        self
    }

    /// For how long past its TTL an entry is served when the load fails, times out or its
    /// breaker is open (RFC 5861's stale-if-error). Zero by default.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.policy.stale_if_error = window;
        self
    }

    /// Shortens each entry's TTL by a random fraction up to `fraction` (0 to 1, 0 by default),
    /// so that entries loaded together do not all expire, and reload, together. The TTL stays
    /// an upper bound.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.policy.jitter = fraction;
        self
    }

    /// After a failed load answered a stale value, for how long reads answer it at once, marked
    /// stale, before one of them tries a load again (1 s by default). Without it, every read of
    /// a key during an outage would start a load of its own and wait for it to fail.
    pub fn retry_after_error(mut self, wait: Duration) -> Self {
        self.policy.retry_after_error = wait;
        self
    }

    /// How long a load may take (10 s by default). Past it the load is dropped and the read
    /// fails, or answers stale-if-error: a loader that hangs never holds its callers.
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.policy.load_timeout = timeout;
        self
    }

    /// Which loaded values are cached: every value by default; see [`Admit`].
    ///
    /// ```
    /// # use std::time::Duration;
    /// use steadfast_cache::{Admit, TieredCache};
    ///
    /// // `None` ("no such product") is cached for 5 seconds, a product for a minute.
    /// let cache: TieredCache<u64, Option<String>> = TieredCache::builder("products")
    ///     .negative_ttl(Duration::from_secs(5))
    ///     .admit(Admit::option)
    ///     .build()
    ///     .unwrap();
    /// # let _ = cache;
    /// ```
    pub fn admit(mut self, rule: impl Fn(&V) -> Admit + Send + Sync + 'static) -> Self {
        self.admit = Some(Arc::new(rule));
        self
    }

    /// The clock that decides freshness (for tests: [`Clock::mock`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Adds a shared tier, with values in JSON ([`Json`]).
    pub fn remote(self, tier: impl RemoteTier) -> Self
    where
        V: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.remote_with_codec(tier, Json)
    }

    /// Adds a shared tier with a codec of your choice.
    pub fn remote_with_codec(mut self, tier: impl RemoteTier, codec: impl Codec<V>) -> Self {
        self.remote = Some((Arc::new(tier), Arc::new(codec)));
        self
    }

    /// How long one call to the shared tier may take (100 ms by default). A slow Redis then
    /// costs a read at most this before it goes on to the loader.
    pub fn remote_timeout(mut self, timeout: Duration) -> Self {
        self.remote_timeout = timeout;
        self
    }

    /// The breaker in front of the shared tier. By default: open after 5 consecutive failures,
    /// probing again after 1 s, so a Redis that is down costs reads nothing at all.
    pub fn remote_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.remote_breaker = Some(breaker);
        self
    }

    /// How long an instance waits for another instance's load of the same key before loading
    /// itself (10 s by default, the default load timeout: a slow database should not turn the
    /// waiters into a stampede), and how often it looks for the value meanwhile (10 ms). The
    /// wait ends early when the other instance gives its lock back without a value.
    pub fn lock_wait(mut self, wait: Duration, poll: Duration) -> Self {
        self.policy.lock_wait = wait;
        self.policy.lock_poll = poll;
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for a bad name or a setting out of range.
    pub fn build(self) -> Result<TieredCache<K, V>, BuildError> {
        let name = self.name;
        if name.is_empty()
            || name.len() > 200
            || name
                .chars()
                .any(|c| matches!(c, '{' | '}' | ':') || c.is_whitespace() || c.is_control())
        {
            return Err(BuildError::Name(name));
        }
        let policy = self.policy;
        if policy.ttl.is_zero() {
            return Err(BuildError::Invalid("the TTL must be above zero"));
        }
        if !(0.0..1.0).contains(&policy.jitter) {
            return Err(BuildError::Invalid("jitter must be at least 0 and below 1"));
        }
        if policy.load_timeout.is_zero() {
            return Err(BuildError::Invalid("the load timeout must be above zero"));
        }
        if self.remote_timeout.is_zero() {
            return Err(BuildError::Invalid("the remote timeout must be above zero"));
        }
        let durations = [
            policy.ttl,
            policy.negative_ttl,
            policy.stale_while_revalidate,
            policy.stale_if_error,
            policy.load_timeout,
            policy.lock_wait,
            policy.retry_after_error,
            self.remote_timeout,
        ];
        if durations.iter().any(|duration| *duration > MAX_DURATION) {
            return Err(BuildError::Invalid("durations are limited to ten years"));
        }
        if policy.load_timeout.saturating_add(policy.lock_wait) > MAX_LOAD {
            return Err(BuildError::Invalid(
                "the load timeout and the lock wait must add up to an hour at most",
            ));
        }
        if policy.lock_poll.is_zero() {
            return Err(BuildError::Invalid(
                "the lock poll interval must be above zero",
            ));
        }
        if self.capacity == 0 {
            return Err(BuildError::Invalid("the capacity must be above zero"));
        }
        let custom_clock = self.clock.is_some();
        let clock = self.clock.unwrap_or_default();
        let metrics = Metrics::new(&name);
        let remote = match self.remote {
            Some((tier, codec)) => {
                let breaker = match self.remote_breaker {
                    Some(breaker) => breaker,
                    None => CircuitBreaker::builder(format!("cache-l2:{name}"))
                        .consecutive_failures(5)
                        .open_duration(Duration::from_secs(1))
                        .build()
                        .map_err(|error| BuildError::Breaker(error.to_string()))?,
                };
                Some(Remote {
                    tier,
                    codec,
                    breaker,
                    timeout: self.remote_timeout,
                })
            }
            None => None,
        };
        let lifetime = policy.ttl.saturating_add(
            policy
                .stale_while_revalidate
                .max(policy.stale_if_error)
                .max(policy.negative_ttl.saturating_sub(policy.ttl)),
        );
        // moka's expiry only reclaims memory (reads check each entry's own times): one
        // cache-wide lifetime, the longest any entry can be served, keeps its housekeeping
        // cheaper than a per-entry timer wheel.
        let l1 = L1::new(self.l1, self.capacity, lifetime, &metrics);
        let timebase = if custom_clock {
            Timebases::Fixed(Timebase {
                wall_ms: wall_ms(),
                clock_ns: clock.now(),
            })
        } else {
            Timebases::Live
        };
        let inner = Arc::new(Inner {
            prefix: format!("sf:{{{name}:"),
            name: Arc::from(name),
            l1,
            policy,
            admit: self.admit,
            clock,
            epoch: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            flights: Mutex::new(std::collections::HashMap::new()),
            remote,
            metrics,
            stats: crate::stats::Counters::new(),
            timebase,
            instance: fastrand::u64(..),
        });
        if let Some(remote) = &inner.remote {
            let listener: Arc<dyn Listener> = inner.clone();
            remote.tier.listen(Arc::downgrade(&listener));
        }
        Ok(TieredCache { inner })
    }
}
