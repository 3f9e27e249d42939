//! The builder: every setter maps to a [`Config`] field, plus what a file cannot hold (a clock,
//! a listener, a function choosing open durations).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use steadfast_core::Clock;

use super::inner::{Inner, OpenPolicy, Rules};
use super::{CircuitBreaker, OpenContext};
use crate::config::{Config, ConfigError, DropPolicy, WindowConfig};
use crate::event::{BreakerListener, Event, Metrics};
use crate::window::{default_stripes, CountWindow, TimeWindow, Window};
use crate::State;

/// Chooses the length of each open period; see [`Builder::open_duration_fn`].
pub(crate) type OpenDurationFn = dyn Fn(&OpenContext) -> Duration + Send + Sync;

/// Builds a [`CircuitBreaker`]; every setter maps to a [`Config`] field.
#[derive(Clone)]
#[must_use]
pub struct Builder {
    pub(super) name: String,
    /// The `breaker` label of the metrics, when it differs from the name: keyed breakers all
    /// report under their template's name, so that keys chosen by callers cannot grow the
    /// number of metric series without bound.
    metric_label: Option<String>,
    config: Config,
    clock: Option<Clock>,
    listener: Option<Arc<BreakerListener>>,
    open_duration_fn: Option<Arc<OpenDurationFn>>,
}

struct Present(bool);

impl fmt::Debug for Present {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "Some(..)" } else { "None" })
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("listener", &Present(self.listener.is_some()))
            .field(
                "open_duration_fn",
                &Present(self.open_duration_fn.is_some()),
            )
            .finish()
    }
}

impl Builder {
    pub(super) fn new(name: String) -> Self {
        Self {
            name,
            metric_label: None,
            config: Config::default(),
            clock: None,
            listener: None,
            open_duration_fn: None,
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Trip when at least `rate` (0 < rate ≤ 1) of the calls in the window failed. A rate
    /// exactly at the threshold trips: `0.55` trips at 55 failures in 100 calls.
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

    /// Chooses each open period's length with `f`, as Polly's break-duration generator does;
    /// it replaces `open_duration`, backoff and jitter. `f` runs on the thread that trips the
    /// breaker, once per trip; its result is kept between a millisecond and the longest
    /// duration a config accepts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast_breaker::{CircuitBreaker, OpenContext};
    ///
    /// // 1 s, 2 s, 4 s… after failed probes in a row, up to a minute.
    /// let breaker = CircuitBreaker::builder("search")
    ///     .open_duration_fn(|context: &OpenContext| {
    ///         Duration::from_secs(1 << context.failed_probes.min(6)).min(Duration::from_secs(60))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # let _ = breaker;
    /// ```
    pub fn open_duration_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&OpenContext) -> Duration + Send + Sync + 'static,
    {
        self.open_duration_fn = Some(Arc::new(f));
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

    /// The longest half-open may last: past it, the breaker is open again, and a probe still
    /// running can no longer close it.
    pub fn max_half_open(mut self, max: Option<Duration>) -> Self {
        self.config.max_half_open = max;
        self
    }

    /// Counter stripes (a power of two).
    pub fn stripes(mut self, stripes: usize) -> Self {
        self.config.stripes = Some(stripes);
        self
    }

    /// The state the breaker starts in: closed by default. `Open` starts an open period of
    /// `open_duration`, as if it had just tripped (for a dependency known to be down at
    /// startup); `HalfOpen` starts probing.
    pub fn initial_state(mut self, state: State) -> Self {
        self.config.initial_state = state;
        self
    }

    /// What a call dropped before it finished counts as; see [`DropPolicy`].
    pub fn on_drop(mut self, policy: DropPolicy) -> Self {
        self.config.on_drop = policy;
        self
    }

    /// Counts refusals of Steadfast breakers nested inside this one as failures (off by
    /// default); see [`Config::count_nested_refusals`].
    pub fn count_nested_refusals(mut self, count: bool) -> Self {
        self.config.count_nested_refusals = count;
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
        let open = OpenPolicy {
            base: config.open_duration,
            multiplier: config.backoff.map_or(1.0, |b| b.multiplier),
            max: config.backoff.map_or(config.open_duration, |b| b.max),
            jitter: config.jitter,
            function: self.open_duration_fn,
        };
        let metrics = match self.metric_label {
            Some(label) => Metrics::register(label, true),
            None => Metrics::register(self.name.clone(), false),
        };
        let inner = Inner::new(
            self.name.into_boxed_str(),
            Rules::new(&config),
            window,
            stripes,
            open,
            self.clock.unwrap_or_default(),
            self.listener,
            metrics,
            config,
        );
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
