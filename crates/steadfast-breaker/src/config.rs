//! Breaker configuration: validated builders, and serde for configs loaded from files.

use std::fmt;
use std::time::Duration;

use crate::state::{MAX_PROBES, MAX_TIME_MS};
use crate::State;

/// Everything that shapes a breaker's behaviour.
///
/// Build one with [`CircuitBreaker::builder`](crate::CircuitBreaker::builder), or, with the
/// `serde` feature, deserialize it (durations are human-readable: `"30s"`, `"250ms"`). Values are
/// checked when the breaker is built; a bad value is a [`ConfigError`], never a panic.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use steadfast_breaker::{CircuitBreaker, Config};
///
/// let config: Config = serde_json::from_str(r#"{
///     "failure_rate": 0.25,
///     "minimum_calls": 50,
///     "window": { "time": { "size": "30s", "buckets": 30 } },
///     "open_duration": "10s",
///     "backoff": { "multiplier": 2.0, "max": "5m" }
/// }"#).unwrap();
/// let breaker = CircuitBreaker::from_config("payments", config).unwrap();
/// assert_eq!(breaker.name(), "payments");
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Config {
    /// Trip when at least this fraction of calls in the window failed (0 < rate ≤ 1).
    pub failure_rate: Option<f64>,
    /// The rate rules apply only once the window holds this many calls.
    pub minimum_calls: u32,
    /// Trip when too many calls are slow.
    pub slow_calls: Option<SlowCalls>,
    /// Trip after this many failures in a row, whatever the window says.
    pub consecutive_failures: Option<u32>,
    /// Which calls the rate rules look at.
    pub window: WindowConfig,
    /// How long the breaker stays open before it probes.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub open_duration: Duration,
    /// Let the open duration grow each time a probe fails.
    pub backoff: Option<Backoff>,
    /// Spread open durations by up to this fraction either way (0 ≤ jitter < 1), so that many
    /// instances do not probe a recovering dependency at the same instant.
    pub jitter: f64,
    /// How many probe calls half-open admits; all must succeed to close.
    pub half_open_probes: u32,
    /// Give up on probes that take longer than this and open again.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde::option"))]
    pub max_half_open: Option<Duration>,
    /// Counter stripes, a power of two; by default the machine's parallelism (one for the
    /// breakers of a keyed registry).
    pub stripes: Option<usize>,
    /// The state a new breaker starts in.
    pub initial_state: State,
    /// What a call dropped before it finished (an outer timeout, a client that went away)
    /// counts as.
    pub on_drop: DropPolicy,
    /// Count a refusal by another Steadfast breaker nested inside this one as a failure of
    /// this one. Off by default: a global breaker around per-host breakers should not trip
    /// because one host's breaker is open.
    pub count_nested_refusals: bool,
}

/// What a call dropped before it finished counts as.
///
/// A dependency that hangs never answers; if the caller's timeout sits outside the breaker,
/// the breaker only ever sees the call dropped. Counting nothing then would leave it closed
/// while every call times out. (A timeout inside the breaker, see
/// [`CircuitBreakerLayer::timeout`](crate::CircuitBreakerLayer::timeout), sees a failure
/// instead, and is the better order.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum DropPolicy {
    /// A dropped call counts as nothing; a dropped probe frees its slot.
    Ignore,
    /// A dropped call that ran at least the slow-call threshold counts as a slow call (and a
    /// slow probe opens the breaker again); one that ended sooner counts as nothing. Without a
    /// slow-call rule this is [`DropPolicy::Ignore`].
    #[default]
    CountSlow,
    /// Every dropped call counts as a failure: for clients where a drop can only mean the
    /// dependency took too long. Not for servers, where clients go away on their own.
    Failure,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            failure_rate: Some(0.5),
            minimum_calls: 20,
            slow_calls: None,
            consecutive_failures: None,
            window: WindowConfig::default(),
            open_duration: Duration::from_secs(30),
            backoff: None,
            jitter: 0.0,
            half_open_probes: 3,
            max_half_open: Some(Duration::from_secs(60)),
            stripes: None,
            initial_state: State::Closed,
            on_drop: DropPolicy::CountSlow,
            count_nested_refusals: false,
        }
    }
}

/// The slow-call rule: trip when at least `rate` of the calls took `threshold` or longer.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct SlowCalls {
    /// A call this long or longer is slow.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub threshold: Duration,
    /// The fraction of slow calls that trips the breaker (0 < rate ≤ 1).
    pub rate: f64,
}

/// Which calls the rate rules look at.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(rename_all = "snake_case", deny_unknown_fields)
)]
pub enum WindowConfig {
    /// The calls of the last `size`, in `buckets` buckets: the window slides one bucket at a time.
    Time {
        /// How far back the window reaches.
        #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
        size: Duration,
        /// How many buckets the window is cut into (1 to 1000, each at least a millisecond).
        buckets: u32,
    },
    /// The last `calls` calls.
    Count {
        /// How many calls the window holds (1 to 1,000,000).
        calls: u32,
    },
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig::Time {
            size: Duration::from_secs(10),
            buckets: 10,
        }
    }
}

/// Open durations that grow: each time a probe fails, the next open period is `multiplier`
/// times the last, up to `max`. Closing starts over from the base duration.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Backoff {
    /// Growth per failed probe (at least 1).
    pub multiplier: f64,
    /// The longest open period.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max: Duration,
}

/// A configuration value that cannot work.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is outside the range its field accepts.
    OutOfRange {
        /// The field, as named in [`Config`].
        field: &'static str,
        /// The value given.
        value: String,
        /// What the field accepts.
        expected: &'static str,
    },
    /// No trip rule is set: the breaker could never open.
    NoTripRule,
    /// A count window smaller than `minimum_calls`: the rate rules could never apply.
    WindowSmallerThanMinimum {
        /// The window's size in calls.
        window: u32,
        /// The configured minimum.
        minimum_calls: u32,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::OutOfRange {
                field,
                value,
                expected,
            } => write!(
                f,
                "invalid circuit breaker config: `{field}` is {value}, expected {expected}"
            ),
            ConfigError::NoTripRule => f.write_str(
                "invalid circuit breaker config: no trip rule (set failure_rate, slow_calls or consecutive_failures)",
            ),
            ConfigError::WindowSmallerThanMinimum {
                window,
                minimum_calls,
            } => write!(
                f,
                "invalid circuit breaker config: a window of {window} calls never reaches minimum_calls = {minimum_calls}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

fn out_of_range(
    field: &'static str,
    value: impl fmt::Debug,
    expected: &'static str,
) -> ConfigError {
    ConfigError::OutOfRange {
        field,
        value: format!("{value:?}"),
        expected,
    }
}

fn check_rate(field: &'static str, rate: f64) -> Result<(), ConfigError> {
    if rate.is_finite() && rate > 0.0 && rate <= 1.0 {
        Ok(())
    } else {
        Err(out_of_range(
            field,
            rate,
            "a fraction greater than 0 and at most 1",
        ))
    }
}

/// Times in the state word wrap at 2^40 ms and compare over half of that; a quarter leaves room
/// for jitter, which may stretch a duration by almost 2×.
const MAX_DURATION: Duration = Duration::from_millis(MAX_TIME_MS / 4);

fn check_duration(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() || value > MAX_DURATION {
        Err(out_of_range(
            field,
            value,
            "a duration above zero and below 8 years",
        ))
    } else {
        Ok(())
    }
}

/// Calls are timed to about a microsecond, in a range that wraps after 26 days.
const MIN_SLOW_THRESHOLD: Duration = Duration::from_micros(10);
const MAX_SLOW_THRESHOLD: Duration = Duration::from_secs(7 * 24 * 3600);

impl Config {
    /// Checks every value; [`CircuitBreaker::from_config`](crate::CircuitBreaker::from_config)
    /// calls this for you.
    ///
    /// # Errors
    ///
    /// The first value that cannot work, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(rate) = self.failure_rate {
            check_rate("failure_rate", rate)?;
        }
        if self.minimum_calls == 0 {
            return Err(out_of_range("minimum_calls", 0, "at least 1"));
        }
        if let Some(slow) = self.slow_calls {
            if !(MIN_SLOW_THRESHOLD..=MAX_SLOW_THRESHOLD).contains(&slow.threshold) {
                return Err(out_of_range(
                    "slow_calls.threshold",
                    slow.threshold,
                    "from 10 µs to 7 days",
                ));
            }
            check_rate("slow_calls.rate", slow.rate)?;
        }
        if self.consecutive_failures == Some(0) {
            return Err(out_of_range("consecutive_failures", 0, "at least 1"));
        }
        if self.failure_rate.is_none()
            && self.slow_calls.is_none()
            && self.consecutive_failures.is_none()
        {
            return Err(ConfigError::NoTripRule);
        }
        match self.window {
            WindowConfig::Time { size, buckets } => {
                check_duration("window.time.size", size)?;
                if !(1..=1000).contains(&buckets) {
                    return Err(out_of_range("window.time.buckets", buckets, "1 to 1000"));
                }
                if size / buckets < Duration::from_millis(1) {
                    return Err(out_of_range(
                        "window.time.size",
                        size,
                        "at least one millisecond per bucket",
                    ));
                }
            }
            WindowConfig::Count { calls } => {
                if !(1..=1_000_000).contains(&calls) {
                    return Err(out_of_range("window.count.calls", calls, "1 to 1000000"));
                }
                let rate_rules = self.failure_rate.is_some() || self.slow_calls.is_some();
                if rate_rules && calls < self.minimum_calls {
                    return Err(ConfigError::WindowSmallerThanMinimum {
                        window: calls,
                        minimum_calls: self.minimum_calls,
                    });
                }
            }
        }
        check_duration("open_duration", self.open_duration)?;
        if let Some(backoff) = self.backoff {
            if !(backoff.multiplier.is_finite() && backoff.multiplier >= 1.0) {
                return Err(out_of_range(
                    "backoff.multiplier",
                    backoff.multiplier,
                    "a finite number of at least 1",
                ));
            }
            check_duration("backoff.max", backoff.max)?;
            if backoff.max < self.open_duration {
                return Err(out_of_range(
                    "backoff.max",
                    backoff.max,
                    "at least open_duration",
                ));
            }
        }
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            return Err(out_of_range(
                "jitter",
                self.jitter,
                "a fraction from 0 up to (not including) 1",
            ));
        }
        if !(1..=MAX_PROBES).contains(&self.half_open_probes) {
            return Err(out_of_range(
                "half_open_probes",
                self.half_open_probes,
                "1 to 1048575",
            ));
        }
        if let Some(max) = self.max_half_open {
            check_duration("max_half_open", max)?;
        }
        if let Some(stripes) = self.stripes {
            if !(stripes.is_power_of_two() && stripes <= 256) {
                return Err(out_of_range(
                    "stripes",
                    stripes,
                    "a power of two from 1 to 256",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_typed_errors() {
        let bad = |f: fn(&mut Config)| {
            let mut config = Config::default();
            f(&mut config);
            config.validate().unwrap_err()
        };
        assert!(matches!(
            bad(|c| c.failure_rate = Some(f64::NAN)),
            ConfigError::OutOfRange {
                field: "failure_rate",
                ..
            }
        ));
        assert!(matches!(
            bad(|c| c.failure_rate = Some(1.5)),
            ConfigError::OutOfRange {
                field: "failure_rate",
                ..
            }
        ));
        assert!(matches!(
            bad(|c| c.minimum_calls = 0),
            ConfigError::OutOfRange {
                field: "minimum_calls",
                ..
            }
        ));
        assert_eq!(bad(|c| c.failure_rate = None), ConfigError::NoTripRule);
        assert!(matches!(
            bad(|c| c.window = WindowConfig::Time {
                size: Duration::from_millis(5),
                buckets: 10
            }),
            ConfigError::OutOfRange {
                field: "window.time.size",
                ..
            }
        ));
        assert_eq!(
            bad(|c| c.window = WindowConfig::Count { calls: 5 }),
            ConfigError::WindowSmallerThanMinimum {
                window: 5,
                minimum_calls: 20
            }
        );
        assert!(matches!(
            bad(|c| c.open_duration = Duration::ZERO),
            ConfigError::OutOfRange {
                field: "open_duration",
                ..
            }
        ));
        assert!(matches!(
            bad(|c| c.backoff = Some(Backoff {
                multiplier: 0.5,
                max: Duration::from_secs(60)
            })),
            ConfigError::OutOfRange {
                field: "backoff.multiplier",
                ..
            }
        ));
        assert!(matches!(
            bad(|c| c.jitter = 1.0),
            ConfigError::OutOfRange {
                field: "jitter",
                ..
            }
        ));
        assert!(matches!(
            bad(|c| c.half_open_probes = 0),
            ConfigError::OutOfRange {
                field: "half_open_probes",
                ..
            }
        ));
        assert!(matches!(
            bad(|c| c.slow_calls = Some(SlowCalls {
                threshold: Duration::from_nanos(500),
                rate: 0.5
            })),
            ConfigError::OutOfRange {
                field: "slow_calls.threshold",
                ..
            }
        ));
        assert!(matches!(
            bad(|c| c.slow_calls = Some(SlowCalls {
                threshold: Duration::from_secs(30 * 86_400),
                rate: 0.5
            })),
            ConfigError::OutOfRange {
                field: "slow_calls.threshold",
                ..
            }
        ));
        assert!(matches!(
            bad(|c| c.open_duration = Duration::from_secs(10 * 365 * 86_400)),
            ConfigError::OutOfRange {
                field: "open_duration",
                ..
            }
        ));
        assert!(matches!(
            bad(|c| c.stripes = Some(3)),
            ConfigError::OutOfRange {
                field: "stripes",
                ..
            }
        ));
        let message = bad(|c| c.jitter = -0.1).to_string();
        assert!(message.contains("`jitter` is -0.1"), "{message}");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_fields() {
        let config: Config = serde_json::from_str(
            r#"{"consecutive_failures": 5, "window": {"count": {"calls": 100}}, "max_half_open": null}"#,
        )
        .unwrap();
        assert_eq!(config.consecutive_failures, Some(5));
        assert_eq!(config.window, WindowConfig::Count { calls: 100 });
        assert_eq!(config.max_half_open, None);
        assert_eq!(config.failure_rate, Some(0.5));
        config.validate().unwrap();
        assert!(serde_json::from_str::<Config>(r#"{"failure_rat": 0.5}"#).is_err());
        let invalid: Config = serde_json::from_str(r#"{"failure_rate": 2.0}"#).unwrap();
        assert!(invalid.validate().is_err());
    }
}
