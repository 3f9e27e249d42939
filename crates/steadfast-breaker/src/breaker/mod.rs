//! The breaker itself: a cheap handle over shared, lock-free state.
//!
//! The parts: [`builder`] (configuration), `inner` (the shared state and its reads),
//! `admission` (may a call go ahead), `record` (outcomes, trip rules, probes), `control`
//! (manual states), `rate` (exact thresholds) and `ticket` (what a call carries).

mod admission;
mod builder;
mod control;
mod inner;
mod rate;
mod record;
mod ticket;

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use steadfast_core::{Classify, Outcome};

pub use builder::Builder;
pub(crate) use inner::Inner;
pub(crate) use ticket::Ticket;

use crate::config::{Config, ConfigError};
use crate::future::Admission;
use crate::{nested, Error, Rejected, State};

/// A circuit breaker: a cheap, cloneable handle to one shared state.
///
/// Every clone, every layer made from it and every service those layers wrap share the same
/// counters, so an axum router that clones a route's service per request still has one breaker.
/// The handle also steers the breaker by hand ([`CircuitBreaker::force_open`],
/// [`CircuitBreaker::open_for`], [`CircuitBreaker::half_open`], [`CircuitBreaker::disable`],
/// [`CircuitBreaker::metrics_only`], [`CircuitBreaker::reset`]) and reads it
/// ([`CircuitBreaker::state`], [`CircuitBreaker::snapshot`]).
///
/// ```
/// use std::time::Duration;
/// use steadfast_breaker::{CircuitBreaker, State};
/// use steadfast_core::Clock;
///
/// let (clock, time) = Clock::mock();
/// let breaker = CircuitBreaker::builder("inventory")
///     .consecutive_failures(3)
///     .open_duration(Duration::from_secs(5))
///     .clock(clock)
///     .build()
///     .unwrap();
///
/// for _ in 0..3 {
///     let _ = breaker.call(|| Err::<(), _>("connection refused"));
/// }
/// assert_eq!(breaker.state(), State::Open);
/// let refused = breaker.call(|| Ok::<_, &str>(())).unwrap_err();
/// assert_eq!(refused.rejected().unwrap().retry_after(), Some(Duration::from_secs(5)));
///
/// time.advance(Duration::from_secs(5));
/// assert_eq!(breaker.state(), State::HalfOpen); // a probe is due, no call needed to say so
/// for _ in 0..3 {
///     breaker.call(|| Ok::<_, &str>(())).unwrap();
/// }
/// assert_eq!(breaker.state(), State::Closed);
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    pub(crate) inner: Arc<Inner>,
}

/// What an open-duration function ([`Builder::open_duration_fn`]) knows when it chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenContext {
    /// The state being left: closed (a rule tripped) or half-open (a probe failed).
    pub from: State,
    /// Probes that failed in a row, this one included (0 when tripping from closed).
    pub failed_probes: u32,
    /// The configured `open_duration`.
    pub base: Duration,
}

impl OpenContext {
    pub(crate) const fn new(from: State, failed_probes: u32, base: Duration) -> Self {
        Self {
            from,
            failed_probes,
            base,
        }
    }
}

/// A point-in-time reading of a breaker.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Snapshot {
    /// The breaker's name.
    pub name: String,
    /// Its state as of the reading: an open period that has passed reads as half-open, and a
    /// half-open period past its cap as open, whether or not a call has come since.
    pub state: State,
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window.
    pub slow_calls: u64,
    /// Failures over calls in the window (0 when empty).
    pub failure_rate: f64,
    /// Slow calls over calls in the window (0 when empty).
    pub slow_call_rate: f64,
    /// Failures in a row (tracked only with the consecutive-failures rule).
    pub consecutive_failures: u32,
    /// Calls refused since the breaker was built.
    pub rejected: u64,
    /// While open: how long until the breaker probes.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde::option"))]
    pub retry_after: Option<Duration>,
    /// While half-open: probes admitted and succeeded so far.
    pub probes: Option<(u32, u32)>,
}

impl CircuitBreaker {
    /// Starts a breaker named `name` (used in metrics, events and errors) with the default
    /// config: trip at 50% failures over at least 20 calls in a 10-second window; stay open
    /// 30 seconds; close after 3 successful probes.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name.into())
    }

    /// Builds a breaker from a config, for instance one loaded from a file.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first value that cannot work.
    pub fn from_config(name: impl Into<String>, config: Config) -> Result<Self, ConfigError> {
        Self::builder(name).config(config).build()
    }

    /// The breaker's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The configuration the breaker was built from (what a file could hold: a clock,
    /// listener or open-duration function set on the builder is not part of it).
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The state now: an open period that has passed reads as half-open (a probe is due), and
    /// a half-open period past its cap as open — at once, without waiting for a call.
    ///
    /// Reading a half-open period past its cap completes its move to open (one
    /// compare-and-swap, with its event), since nothing can undo it. An open period that has
    /// passed is only *shown* as half-open: probing starts with the first call, so a status
    /// page polling a quiet dependency does not start half-open periods.
    #[must_use]
    pub fn state(&self) -> State {
        let word = self.inner.state.load();
        match word.state() {
            State::Open | State::HalfOpen => self.inner.effective().1,
            state => state,
        }
    }

    /// A Tower layer that wraps services in this breaker (every `Err` is a failure; see
    /// [`CircuitBreakerLayer`](crate::CircuitBreakerLayer) for other classifiers and modes).
    ///
    /// Calls hold the breaker through striped handles, one per core, so that concurrent
    /// calls, and services cloned per request as axum does, write no reference count shared
    /// by every thread. [`CircuitBreaker::leak`] and [`CircuitBreaker::static_layer`] go one
    /// step further and write none at all.
    #[must_use]
    pub fn layer(&self) -> crate::CircuitBreakerLayer {
        crate::CircuitBreakerLayer::new(self.clone())
    }

    /// Keeps the breaker for the rest of the process and returns a `'static` reference to it.
    ///
    /// A breaker per dependency, built at startup, lives that long anyway. A `'static` breaker
    /// makes the cheapest layer ([`CircuitBreaker::static_layer`]): each call holds a plain
    /// reference, which saves the two atomic writes per call of a counted handle (on a line of
    /// the calling core's own; see `BENCHMARKS.md`). The memory, a few kilobytes, is never
    /// freed: do not leak breakers made per request or per key.
    #[must_use]
    pub fn leak(self) -> &'static CircuitBreaker {
        Box::leak(Box::new(self))
    }

    /// The layer of a `'static` breaker: see [`CircuitBreaker::leak`].
    ///
    /// ```
    /// use steadfast_breaker::CircuitBreaker;
    /// use tower::{service_fn, ServiceBuilder};
    ///
    /// let breaker = CircuitBreaker::builder("search").build().unwrap().leak();
    /// let service = ServiceBuilder::new()
    ///     .layer(breaker.static_layer())
    ///     .service(service_fn(|q: String| async move { Ok::<_, std::io::Error>(q.len()) }));
    /// # let _ = service;
    /// ```
    #[must_use]
    pub fn static_layer(
        &'static self,
    ) -> crate::CircuitBreakerLayer<
        steadfast_core::AnyError,
        crate::mode::Typed,
        &'static CircuitBreaker,
    > {
        crate::CircuitBreakerLayer::from_static(self)
    }

    /// Asks to make a call. Record the outcome on the [`Permit`]; a permit dropped unrecorded
    /// counts as the [`DropPolicy`](crate::DropPolicy) says (by default: a slow call if it
    /// ran past the slow-call threshold, otherwise nothing).
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the breaker is open, forced open, or half-open with every probe slot
    /// taken.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        Admission::new(self).map(Permit)
    }

    /// Runs `f` through the breaker: every `Err` is a failure.
    ///
    /// # Errors
    ///
    /// [`Error::Rejected`] when the breaker refuses, [`Error::Inner`] when `f` fails.
    pub fn call<T, E>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, Error<E>> {
        self.call_with(&steadfast_core::AnyError, f)
    }

    /// Runs `f` through the breaker, classifying its result with `classify`.
    ///
    /// # Errors
    ///
    /// [`Error::Rejected`] when the breaker refuses, [`Error::Inner`] when `f` fails.
    pub fn call_with<T, E, C>(
        &self,
        classify: &C,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, Error<E>>
    where
        C: Classify<T, E>,
    {
        let permit = self.try_acquire().inspect_err(|_| nested::refused())?;
        let before = nested::refusals();
        let result = f();
        let outcome = permit.0.nested(classify.classify(result.as_ref()), before);
        permit.record(outcome);
        result.map_err(Error::Inner)
    }

    /// Awaits `future` through the breaker: every `Err` is a failure. Dropped before it ends
    /// (a timeout around it, a task cancelled), the call counts as the
    /// [`DropPolicy`](crate::DropPolicy) says.
    ///
    /// ```
    /// use steadfast_breaker::CircuitBreaker;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let breaker = CircuitBreaker::builder("ledger").build().unwrap();
    /// let balance = breaker.call_async(async { Ok::<_, std::io::Error>(42) }).await;
    /// assert_eq!(balance.unwrap(), 42);
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Rejected`] when the breaker refuses, [`Error::Inner`] when the future fails.
    pub async fn call_async<T, E, F>(&self, future: F) -> Result<T, Error<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        self.call_async_with(&steadfast_core::AnyError, future)
            .await
    }

    /// Awaits `future` through the breaker, classifying its result with `classify`.
    ///
    /// # Errors
    ///
    /// [`Error::Rejected`] when the breaker refuses, [`Error::Inner`] when the future fails.
    pub async fn call_async_with<T, E, F, C>(&self, classify: &C, future: F) -> Result<T, Error<E>>
    where
        F: Future<Output = Result<T, E>>,
        C: Classify<T, E>,
    {
        let mut permit = self.try_acquire().inspect_err(|_| nested::refused())?.0;
        let mut future = pin!(future);
        std::future::poll_fn(|cx| {
            let before = nested::refusals();
            let Poll::Ready(result) = future.as_mut().poll(cx) else {
                return Poll::Pending;
            };
            let outcome = permit.nested(classify.classify(result.as_ref()), before);
            permit.record(outcome);
            Poll::Ready(result.map_err(Error::Inner))
        })
        .await
    }

    /// Forces the breaker open: every call is refused until [`CircuitBreaker::reset`]. Does
    /// nothing if it is forced open already.
    pub fn force_open(&self) {
        self.inner.set_manual(State::ForcedOpen);
    }

    /// Opens the breaker for `duration` (from a millisecond to about 8.7 years); then it
    /// probes as after a trip. An open breaker keeps its period and only moves its end.
    pub fn open_for(&self, duration: Duration) {
        self.inner.open_for(duration);
    }

    /// Opens the breaker until `instant` (at least a millisecond from now); see
    /// [`CircuitBreaker::open_for`].
    pub fn open_until(&self, instant: Instant) {
        self.inner
            .open_for(instant.saturating_duration_since(Instant::now()));
    }

    /// Starts a half-open period now: the next calls are probes. Does nothing if the breaker
    /// is half-open already.
    pub fn half_open(&self) {
        self.inner.half_open();
    }

    /// Disables the breaker: every call passes and nothing is counted, until
    /// [`CircuitBreaker::reset`]. Does nothing if it is disabled already.
    pub fn disable(&self) {
        self.inner.set_manual(State::Disabled);
    }

    /// Counts and reports outcomes but never trips, until [`CircuitBreaker::reset`]. Useful to
    /// try a new config against live traffic. Does nothing if it is in that mode already.
    pub fn metrics_only(&self) {
        self.inner.set_manual(State::MetricsOnly);
    }

    /// Closes the breaker with an empty window, from any other state. A closed breaker is left
    /// as it is (its window and the calls in flight keep counting).
    pub fn reset(&self) {
        self.inner.set_manual(State::Closed);
    }

    /// Reads the state (as [`CircuitBreaker::state`] does), the window's totals, refusals and
    /// the time until half-open.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    /// How much this breaker's state is worth keeping when a keyed registry must evict:
    /// 0 for a clean closed breaker (nothing lost by forgetting it), 1 for a closed one with
    /// failures or slow calls in its window, 2 for one that is open, half-open or set by hand.
    pub(crate) fn retention(&self) -> u8 {
        use std::sync::atomic::Ordering;
        let inner = &self.inner;
        if !inner.state.load().is_closed() {
            return 2;
        }
        if inner.consecutive.load(Ordering::Relaxed) != 0 {
            return 1;
        }
        let totals = inner.window.totals(inner.clock.recent());
        u8::from(totals.failures != 0 || totals.slow != 0)
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.inner.name)
            .field("state", &self.state())
            .finish()
    }
}

/// Leave to make one call, from [`CircuitBreaker::try_acquire`]: the sync form of the
/// [`Admission`] a response future holds, with the same drop rule.
#[must_use = "a permit records nothing unless its outcome is given"]
#[derive(Debug)]
pub struct Permit<'a>(Admission<&'a CircuitBreaker>);

impl Permit<'_> {
    /// Records the call's outcome, timing it (for the slow-call rule) on the breaker's clock.
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        self.0.record(outcome);
    }

    /// Records the call's outcome with its duration measured elsewhere (a client library's own
    /// timing, say), for the slow-call rule.
    pub fn record_elapsed(mut self, outcome: Outcome, elapsed: Duration) {
        self.0.record_elapsed(outcome, elapsed);
    }

    /// Records a success.
    #[inline]
    pub fn success(self) {
        self.record(Outcome::Success);
    }

    /// Records a failure.
    #[inline]
    pub fn failure(self) {
        self.record(Outcome::Failure);
    }
}
