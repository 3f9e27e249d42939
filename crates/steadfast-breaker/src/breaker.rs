//! The breaker itself: a cheap handle over shared, lock-free state.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use steadfast_core::{Classify, Clock, Outcome};

use crate::config::{Config, ConfigError, WindowConfig};
use crate::event::{BreakerListener, Event, EventKind, Metrics};
use crate::future::Admission;
use crate::state::{ms_until, Probes, StateCell, Word, GEN_BITS, GEN_MASK, MAX_TIME_MS};
use crate::window::{default_stripes, CountWindow, TimeWindow, Totals, Window};
use crate::{Error, Rejected, State};

const NANOS_PER_MS: u64 = 1_000_000;

/// A circuit breaker: a cheap, cloneable handle to one shared state.
///
/// Every clone, every layer made from it and every service those layers wrap share the same
/// counters, so an axum router that clones a route's service per request still has one breaker.
/// The handle also steers the breaker by hand ([`CircuitBreaker::force_open`],
/// [`CircuitBreaker::disable`], [`CircuitBreaker::metrics_only`], [`CircuitBreaker::reset`])
/// and reads it ([`CircuitBreaker::snapshot`]).
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
/// for _ in 0..3 {
///     breaker.call(|| Ok::<_, &str>(())).unwrap();
/// }
/// assert_eq!(breaker.state(), State::Closed);
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    state: CachePadded<StateCell>,
    probes: CachePadded<Probes>,
    consecutive: CachePadded<AtomicU32>,
    open_streak: AtomicU32,
    window: Window,
    rules: Rules,
    open: OpenPolicy,
    probe_limit: u32,
    max_half_open_ms: Option<u64>,
    clock: Clock,
    name: Box<str>,
    listener: Option<Arc<BreakerListener>>,
    metrics: Metrics,
}

struct Rules {
    failure_rate: Option<f64>,
    minimum_calls: u64,
    /// The slow-call threshold in the ticket's time units.
    slow_threshold_units: Option<u64>,
    slow_rate: Option<f64>,
    /// Time calls with the coarse clock: the threshold is at least `COARSE_TIMING_FROM`.
    coarse_timing: bool,
    consecutive: Option<u32>,
}

/// Slow-call thresholds from this length are timed with the coarse clock, whose error (about a
/// millisecond) is then at most 2% of the threshold.
const COARSE_TIMING_FROM: Duration = Duration::from_millis(50);

struct OpenPolicy {
    base: Duration,
    multiplier: f64,
    max: Duration,
    jitter: f64,
}

impl OpenPolicy {
    /// The length of the open period after `streak` failed probes in a row.
    fn duration(&self, streak: u32) -> Duration {
        let grown = self.base.as_secs_f64() * self.multiplier.powi(streak.min(64) as i32);
        let mut secs = grown.min(self.max.as_secs_f64());
        if self.jitter > 0.0 {
            secs *= 1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0);
        }
        Duration::from_secs_f64(secs.max(0.001))
    }
}

/// What a call was admitted as, carried from admission to recording, in one word:
/// `[start: 41][generation: 21][kind: 2]`, the start in units of 1024 ns.
///
/// One word moves in a register; a struct of mixed-width fields was written to the stack field
/// by field and read back whole, which stalls store forwarding on every call.
#[derive(Clone, Copy)]
pub(crate) struct Ticket(u64);

const KIND_BITS: u32 = 2;
const START_SHIFT: u32 = KIND_BITS + GEN_BITS;
/// Call times are kept in units of 2^10 ns, about a microsecond: 41 bits of them wrap after
/// 26 days, far beyond any call worth timing.
const TIME_UNIT_SHIFT: u32 = 10;
const START_MASK: u64 = (1 << (64 - START_SHIFT)) - 1;

impl Ticket {
    #[inline]
    fn new(kind: TicketKind, generation: u32, start_ns: u64) -> Self {
        Self(
            kind as u64
                | (u64::from(generation) & GEN_MASK) << KIND_BITS
                | ((start_ns >> TIME_UNIT_SHIFT) & START_MASK) << START_SHIFT,
        )
    }

    #[inline]
    fn kind(self) -> TicketKind {
        match self.0 & ((1 << KIND_BITS) - 1) {
            0 => TicketKind::Counted,
            1 => TicketKind::Probe,
            _ => TicketKind::Untracked,
        }
    }

    #[inline]
    fn generation(self) -> u32 {
        ((self.0 >> KIND_BITS) & GEN_MASK) as u32
    }

    /// Time units from the call's start to `now_ns`, modulo the 41-bit range.
    #[inline]
    fn elapsed_units(self, now_ns: u64) -> u64 {
        let now = (now_ns >> TIME_UNIT_SHIFT) & START_MASK;
        now.wrapping_sub(self.0 >> START_SHIFT) & START_MASK
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("kind", &self.kind())
            .field("generation", &self.generation())
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum TicketKind {
    /// Closed or metrics-only: the outcome goes into the window.
    Counted,
    /// A half-open probe.
    Probe,
    /// Disabled: nothing is recorded.
    Untracked,
}

/// A point-in-time reading of a breaker.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Snapshot {
    /// The breaker's name.
    pub name: String,
    /// Its state.
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
    /// While open: how long until the breaker probes.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde::option"))]
    pub retry_after: Option<Duration>,
    /// While half-open: probes admitted and succeeded so far.
    pub probes: Option<(u32, u32)>,
}

/// Builds a [`CircuitBreaker`]; every setter maps to a [`Config`] field.
#[derive(Clone)]
#[must_use]
pub struct Builder {
    name: String,
    /// The `breaker` label of the metrics, when it differs from the name: keyed breakers all
    /// report under their template's name, so that keys chosen by callers cannot grow the
    /// number of metric series without bound.
    metric_label: Option<String>,
    config: Config,
    clock: Option<Clock>,
    listener: Option<Arc<BreakerListener>>,
}

impl fmt::Debug for BreakerListenerSlot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}
struct BreakerListenerSlot<'a>(&'a Option<Arc<BreakerListener>>);

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("listener", &BreakerListenerSlot(&self.listener))
            .finish()
    }
}

impl Builder {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Trip when at least `rate` (0 < rate ≤ 1) of the calls in the window failed.
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.config.failure_rate = Some(rate);
        self
    }

    /// No failure-rate rule (another rule must be set).
    pub fn no_failure_rate(mut self) -> Self {
        self.config.failure_rate = None;
        self
    }

    /// The rate rules apply once the window holds this many calls.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.config.minimum_calls = calls;
        self
    }

    /// Trip when at least `rate` of the calls took `threshold` or longer. Turns on call timing.
    pub fn slow_calls(mut self, threshold: Duration, rate: f64) -> Self {
        self.config.slow_calls = Some(crate::SlowCalls { threshold, rate });
        self
    }

    /// Trip after `failures` failures in a row.
    pub fn consecutive_failures(mut self, failures: u32) -> Self {
        self.config.consecutive_failures = Some(failures);
        self
    }

    /// A time window of `size`, sliding by `size / buckets`.
    pub fn time_window(mut self, size: Duration, buckets: u32) -> Self {
        self.config.window = WindowConfig::Time { size, buckets };
        self
    }

    /// A window of the last `calls` calls.
    pub fn count_window(mut self, calls: u32) -> Self {
        self.config.window = WindowConfig::Count { calls };
        self
    }

    /// How long the breaker stays open before it probes.
    pub fn open_duration(mut self, duration: Duration) -> Self {
        self.config.open_duration = duration;
        self
    }

    /// Grow the open duration by `multiplier` per failed probe, up to `max`.
    pub fn backoff(mut self, multiplier: f64, max: Duration) -> Self {
        self.config.backoff = Some(crate::Backoff { multiplier, max });
        self
    }

    /// Spread open durations by up to `fraction` either way.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.config.jitter = fraction;
        self
    }

    /// How many probes half-open admits.
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.config.half_open_probes = probes;
        self
    }

    /// The longest half-open may last before the breaker gives up on its probes and opens.
    pub fn max_half_open(mut self, max: Option<Duration>) -> Self {
        self.config.max_half_open = max;
        self
    }

    /// Counter stripes (a power of two).
    pub fn stripes(mut self, stripes: usize) -> Self {
        self.config.stripes = Some(stripes);
        self
    }

    /// The clock; [`Clock::mock`] makes transitions testable without sleeping.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// A listener for transitions, rejections and slow calls.
    pub fn listener<L>(mut self, listener: L) -> Self
    where
        L: for<'a> steadfast_core::Listener<Event<'a>>,
    {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Checks the configuration and builds the breaker.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first value that cannot work.
    pub fn build(self) -> Result<CircuitBreaker, ConfigError> {
        self.config.validate()?;
        Ok(self.build_validated())
    }

    /// The configured name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.config.validate()
    }

    /// Builds from a config that has passed [`Config::validate`].
    pub(crate) fn build_validated(self) -> CircuitBreaker {
        let config = self.config;
        let stripes = config.stripes.unwrap_or_else(default_stripes);
        let window = match config.window {
            WindowConfig::Time { size, buckets } => {
                let bucket_ns = (size.as_nanos() / u128::from(buckets)) as u64;
                Window::Time(TimeWindow::new(bucket_ns, buckets, stripes))
            }
            WindowConfig::Count { calls } => Window::Count(CountWindow::new(calls)),
        };
        let open = match config.backoff {
            Some(backoff) => OpenPolicy {
                base: config.open_duration,
                multiplier: backoff.multiplier,
                max: backoff.max,
                jitter: config.jitter,
            },
            None => OpenPolicy {
                base: config.open_duration,
                multiplier: 1.0,
                max: config.open_duration,
                jitter: config.jitter,
            },
        };
        let name = self.name.into_boxed_str();
        let inner = Inner {
            state: CachePadded::new(StateCell::new(Word::initial(State::Closed))),
            probes: CachePadded::new(Probes::new()),
            consecutive: CachePadded::new(AtomicU32::new(0)),
            open_streak: AtomicU32::new(0),
            window,
            rules: Rules {
                failure_rate: config.failure_rate,
                minimum_calls: u64::from(config.minimum_calls),
                slow_threshold_units: config
                    .slow_calls
                    .map(|s| (s.threshold.as_nanos() as u64) >> TIME_UNIT_SHIFT),
                slow_rate: config.slow_calls.map(|s| s.rate),
                coarse_timing: config
                    .slow_calls
                    .is_some_and(|s| s.threshold >= COARSE_TIMING_FROM),
                consecutive: config.consecutive_failures,
            },
            open,
            probe_limit: config.half_open_probes,
            max_half_open_ms: config.max_half_open.map(|d| d.as_millis() as u64),
            clock: self.clock.unwrap_or_default(),
            metrics: match self.metric_label {
                Some(label) => Metrics::register(label, true),
                None => Metrics::register(name.to_string(), false),
            },
            name,
            listener: self.listener,
        };
        CircuitBreaker {
            inner: Arc::new(inner),
        }
    }

    /// The builder of one keyed breaker: the template's name and metric label, and one
    /// counter stripe unless the template chose: a key sees a fraction of the traffic, and
    /// stripes cost memory per key.
    pub(crate) fn for_key(&self) -> Self {
        let mut builder = Self {
            metric_label: Some(self.name.clone()),
            ..self.clone()
        };
        if builder.config.stripes.is_none() {
            builder.config.stripes = Some(1);
        }
        builder
    }

    /// The clock breakers from this builder will read.
    pub(crate) fn configured_clock(&self) -> Clock {
        self.clock.clone().unwrap_or_default()
    }
}

impl CircuitBreaker {
    /// Starts a breaker named `name` (used in metrics, events and errors) with the default
    /// config: trip at 50% failures over at least 20 calls in a 10-second window; stay open
    /// 30 seconds; close after 3 successful probes.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder {
            name: name.into(),
            metric_label: None,
            config: Config::default(),
            clock: None,
            listener: None,
        }
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

    /// The current state.
    #[must_use]
    pub fn state(&self) -> State {
        self.inner.state.load().state()
    }

    /// A Tower layer that wraps services in this breaker (every `Err` is a failure; see
    /// [`CircuitBreakerLayer`](crate::CircuitBreakerLayer) for other classifiers and modes).
    ///
    /// Each admitted call holds a clone of the breaker's `Arc` until it ends. For a breaker
    /// that lives as long as the process, [`CircuitBreaker::leak`] and
    /// [`CircuitBreaker::static_layer`] avoid that reference count and its contention.
    #[must_use]
    pub fn layer(&self) -> crate::CircuitBreakerLayer {
        crate::CircuitBreakerLayer::new(self.clone())
    }

    /// Keeps the breaker for the rest of the process and returns a `'static` reference to it.
    ///
    /// A breaker per dependency, built at startup, lives that long anyway. A `'static` breaker
    /// makes the cheapest layer ([`CircuitBreaker::static_layer`]): each call holds a plain
    /// reference instead of a counted one, which saves two atomic writes per call to a cache
    /// line every thread shares (see `BENCHMARKS.md`). The memory, a few kilobytes, is never
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
    /// counts as neither success nor failure.
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
        let permit = self.try_acquire()?;
        let result = f();
        permit.record(classify.classify(result.as_ref()));
        result.map_err(Error::Inner)
    }

    /// Forces the breaker open: every call is refused until [`CircuitBreaker::reset`].
    pub fn force_open(&self) {
        self.inner.set_manual(State::ForcedOpen);
    }

    /// Disables the breaker: every call passes and nothing is counted, until
    /// [`CircuitBreaker::reset`].
    pub fn disable(&self) {
        self.inner.set_manual(State::Disabled);
    }

    /// Counts and reports outcomes but never trips, until [`CircuitBreaker::reset`]. Useful to
    /// try a new config against live traffic.
    pub fn metrics_only(&self) {
        self.inner.set_manual(State::MetricsOnly);
    }

    /// Closes the breaker with an empty window, whatever its state.
    pub fn reset(&self) {
        self.inner.set_manual(State::Closed);
    }

    /// Reads the state, the window's totals and the time until half-open.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.inner.snapshot()
    }

    /// How much this breaker's state is worth keeping when a keyed registry must evict:
    /// 0 for a clean closed breaker (nothing lost by forgetting it), 1 for a closed one with
    /// failures or slow calls in its window, 2 for one that is open, half-open or set by hand.
    pub(crate) fn retention(&self) -> u8 {
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
    /// Records the call's outcome.
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        self.0.record(outcome);
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

impl Inner {
    #[inline]
    fn now_ms(&self) -> u64 {
        self.clock.recent() / NANOS_PER_MS
    }

    #[inline]
    fn start_time(&self) -> u64 {
        match self.rules.slow_threshold_units {
            None => 0,
            Some(_) => self.call_time(),
        }
    }

    /// The time used to measure calls: the coarse clock where its millisecond is small next to
    /// the slow-call threshold (it is one load; the precise clock can cost tens of nanoseconds),
    /// the precise clock otherwise.
    #[inline]
    fn call_time(&self) -> u64 {
        if self.rules.coarse_timing {
            self.clock.recent()
        } else {
            self.clock.now()
        }
    }

    /// Admission. Closed costs one atomic load (and a clock read only with slow-call timing).
    #[inline]
    pub(crate) fn acquire(&self) -> Result<Ticket, Rejected> {
        let word = self.state.load();
        if word.is_closed() {
            return Ok(Ticket::new(
                TicketKind::Counted,
                word.generation(),
                self.start_time(),
            ));
        }
        self.acquire_other(word)
    }

    #[inline(never)]
    fn acquire_other(&self, mut word: Word) -> Result<Ticket, Rejected> {
        loop {
            let ticket = |kind| Ticket::new(kind, word.generation(), self.start_time());
            match word.state() {
                State::Closed | State::MetricsOnly => return Ok(ticket(TicketKind::Counted)),
                State::Disabled => return Ok(ticket(TicketKind::Untracked)),
                State::ForcedOpen => return Err(self.reject(State::ForcedOpen, None)),
                State::Open => {
                    let now = self.now_ms();
                    if let Some(wait) = ms_until(word.time_ms(), now) {
                        return Err(self.reject(State::Open, Some(Duration::from_millis(wait))));
                    }
                    // Zero means "no deadline", so a deadline that wraps to zero moves by 1 ms.
                    let deadline = self
                        .max_half_open_ms
                        .map_or(0, |max| ((now + max.max(1)) & MAX_TIME_MS).max(1));
                    let next = word.next(State::HalfOpen, deadline);
                    if self.state.transition(word, next) {
                        self.announce(State::Open, State::HalfOpen);
                        word = next;
                    } else {
                        word = self.state.load();
                    }
                }
                State::HalfOpen => {
                    let deadline = word.time_ms();
                    if deadline != 0 && ms_until(deadline, self.now_ms()).is_none() {
                        // The probes took too long: treat it as a failed probe.
                        self.open(word);
                        word = self.state.load();
                        continue;
                    }
                    let generation = word.generation();
                    let is_current = || self.state.load().generation() == generation;
                    if self
                        .probes
                        .try_admit(generation, self.probe_limit, is_current)
                    {
                        return Ok(ticket(TicketKind::Probe));
                    }
                    return Err(self.reject(State::HalfOpen, None));
                }
            }
        }
    }

    #[inline]
    fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        self.metrics.rejected();
        if let Some(listener) = &self.listener {
            listener.on_event(&Event {
                breaker: &self.name,
                kind: EventKind::Rejected { state },
            });
        }
        Rejected::new(state, retry_after)
    }

    /// Whether the call of `ticket` was slow; reads the clock only when slow-call timing is on.
    #[inline]
    fn is_slow(&self, ticket: Ticket) -> bool {
        let Some(threshold) = self.rules.slow_threshold_units else {
            return false;
        };
        // Compared in whole units: a call at the threshold is slow wherever its start fell
        // within a unit.
        let units = ticket.elapsed_units(self.call_time());
        if units < threshold {
            return false;
        }
        let elapsed = units << TIME_UNIT_SHIFT;
        self.metrics.slow_call();
        if let Some(listener) = &self.listener {
            listener.on_event(&Event {
                breaker: &self.name,
                kind: EventKind::SlowCall {
                    elapsed: Duration::from_nanos(elapsed),
                },
            });
        }
        true
    }

    #[inline]
    pub(crate) fn record(&self, ticket: Ticket, outcome: Outcome) {
        match ticket.kind() {
            TicketKind::Counted => self.record_counted(ticket, outcome),
            TicketKind::Probe => self.record_probe(ticket, outcome),
            TicketKind::Untracked => {}
        }
    }

    /// A call that ended without an outcome (dropped, cancelled): frees its probe slot.
    pub(crate) fn release(&self, ticket: Ticket) {
        if ticket.kind() == TicketKind::Probe {
            self.probes.release(ticket.generation());
        }
    }

    #[inline]
    fn record_counted(&self, ticket: Ticket, outcome: Outcome) {
        if outcome == Outcome::Ignored {
            return;
        }
        let slow = self.is_slow(ticket);
        let word = self.state.load();
        if word.generation() != ticket.generation() {
            // Admitted before a transition: its outcome belongs to a period that is over.
            return;
        }
        let now = self.clock.recent();
        let failure = outcome == Outcome::Failure;
        self.window.record(now, failure, slow);
        if failure {
            let in_a_row = match self.rules.consecutive {
                // The counter itself wraps (after 4 billion failures in metrics-only mode);
                // the count in a row saturates.
                Some(_) => self
                    .consecutive
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1),
                None => 0,
            };
            self.evaluate(word, now, in_a_row);
        } else {
            // Only write when there is something to clear, so that successes on many threads
            // keep the line shared instead of bouncing it between cores.
            if self.rules.consecutive.is_some() && self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            if slow {
                self.evaluate(word, now, 0);
            }
        }
    }

    /// Checks the trip rules after a failure or a slow call.
    #[cold]
    fn evaluate(&self, word: Word, now_ns: u64, in_a_row: u32) {
        if !word.is_closed() {
            // Metrics-only: counted, never tripped.
            return;
        }
        let trip = self
            .rules
            .consecutive
            .is_some_and(|limit| in_a_row >= limit)
            || self.rate_rules_trip(self.window.totals(now_ns));
        if trip {
            self.open(word);
        }
    }

    fn rate_rules_trip(&self, totals: Totals) -> bool {
        if totals.calls < self.rules.minimum_calls || totals.calls == 0 {
            return false;
        }
        let calls = totals.calls as f64;
        self.rules
            .failure_rate
            .is_some_and(|rate| totals.failures as f64 >= rate * calls)
            || self
                .rules
                .slow_rate
                .is_some_and(|rate| totals.slow as f64 >= rate * calls)
    }

    /// Opens from closed or half-open; the open period grows with failed probes in a row.
    fn open(&self, word: Word) -> bool {
        let from = word.state();
        let streak = if from == State::HalfOpen {
            self.open_streak.load(Ordering::Relaxed).saturating_add(1)
        } else {
            0
        };
        let duration = self.open.duration(streak);
        let until = self.now_ms() + (duration.as_millis() as u64).max(1);
        if !self.state.transition(word, word.next(State::Open, until)) {
            return false;
        }
        self.open_streak.store(streak, Ordering::Relaxed);
        self.announce(from, State::Open);
        true
    }

    fn record_probe(&self, ticket: Ticket, outcome: Outcome) {
        let slow = outcome != Outcome::Ignored && self.is_slow(ticket);
        let word = self.state.load();
        if word.state() != State::HalfOpen || word.generation() != ticket.generation() {
            return;
        }
        match outcome {
            Outcome::Ignored => self.probes.release(ticket.generation()),
            Outcome::Failure => {
                self.open(word);
            }
            Outcome::Success if slow => {
                self.open(word);
            }
            Outcome::Success => {
                if self.probes.succeed(ticket.generation()) >= self.probe_limit {
                    // Nothing records into the window while half-open, so it can be cleared
                    // before the breaker closes.
                    self.window.reset();
                    self.consecutive.store(0, Ordering::Relaxed);
                    if self.state.transition(word, word.next(State::Closed, 0)) {
                        self.open_streak.store(0, Ordering::Relaxed);
                        self.announce(State::HalfOpen, State::Closed);
                    }
                }
            }
        }
    }

    fn set_manual(&self, to: State) {
        loop {
            let word = self.state.load();
            if to == State::Closed {
                self.window.reset();
                self.consecutive.store(0, Ordering::Relaxed);
                self.open_streak.store(0, Ordering::Relaxed);
            }
            if self.state.transition(word, word.next(to, 0)) {
                self.announce(word.state(), to);
                return;
            }
        }
    }

    fn announce(&self, from: State, to: State) {
        self.metrics.transition(from, to);
        if let Some(listener) = &self.listener {
            listener.on_event(&Event {
                breaker: &self.name,
                kind: EventKind::Transition { from, to },
            });
        }
    }

    fn snapshot(&self) -> Snapshot {
        let word = self.state.load();
        let now_ns = self.clock.recent();
        let totals = self.window.totals(now_ns);
        let rate = |part: u64| {
            if totals.calls == 0 {
                0.0
            } else {
                part as f64 / totals.calls as f64
            }
        };
        let state = word.state();
        Snapshot {
            name: self.name.to_string(),
            state,
            calls: totals.calls,
            failures: totals.failures,
            slow_calls: totals.slow,
            failure_rate: rate(totals.failures),
            slow_call_rate: rate(totals.slow),
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            retry_after: (state == State::Open).then(|| {
                Duration::from_millis(ms_until(word.time_ms(), now_ns / NANOS_PER_MS).unwrap_or(0))
            }),
            probes: (state == State::HalfOpen).then(|| self.probes.counts(word.generation())),
        }
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("name", &self.name)
            .field("state", &self.state.load())
            .field("window", &self.window)
            .field("listener", &BreakerListenerSlot(&self.listener))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_saturate_instead_of_overflowing() {
        let breaker = CircuitBreaker::builder("overflow")
            .no_failure_rate()
            .consecutive_failures(3)
            .build()
            .unwrap();
        breaker.metrics_only();
        breaker
            .inner
            .consecutive
            .store(u32::MAX - 1, Ordering::Relaxed);
        for _ in 0..3 {
            breaker.try_acquire().unwrap().failure();
        }
        assert_eq!(breaker.state(), State::MetricsOnly);
    }

    #[test]
    fn ticket_round_trips() {
        let ticket = Ticket::new(TicketKind::Probe, 0x1F_FFFF, 123 << TIME_UNIT_SHIFT);
        assert_eq!(ticket.kind(), TicketKind::Probe);
        assert_eq!(ticket.generation(), 0x1F_FFFF);
        assert_eq!(ticket.elapsed_units(200 << TIME_UNIT_SHIFT), 77);
        // Start times wrap; elapsed time does not notice.
        let late = Ticket::new(TicketKind::Counted, 1, (START_MASK - 1) << TIME_UNIT_SHIFT);
        assert_eq!(late.elapsed_units((START_MASK + 4) << TIME_UNIT_SHIFT), 5);
    }
}
