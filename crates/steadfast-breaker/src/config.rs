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
/// A field left out of a file keeps its [default](Config::default). The optional fields (the
/// trip rules, `backoff`, `max_half_open`, `stripes`) also take `"none"` or `false` (or JSON
/// `null`) to switch them off: TOML has no null, and without this a file could not turn off
/// the default failure-rate rule or the default cap on half-open time. Serializing writes an
/// unset field as `"none"`, so a config written out and read back is the same config.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use steadfast_breaker::{CircuitBreaker, Config};
///
/// // Trip on five failures in a row only: the default 50% failure-rate rule is switched off.
/// let config: Config = toml::from_str(r#"
///     failure_rate = "none"
///     consecutive_failures = 5
///     open_duration = "10s"
///     backoff = { multiplier = 2.0, max = "5m" }
///     max_half_open = false
/// "#).unwrap();
/// assert_eq!(config.failure_rate, None);
/// assert_eq!(config.max_half_open, None);
///
/// // Written out, an unset field says so, and reads back the same.
/// let written = toml::to_string(&config).unwrap();
/// assert!(written.contains(r#"failure_rate = "none""#));
/// assert_eq!(toml::from_str::<Config>(&written).unwrap(), config);
///
/// let breaker = CircuitBreaker::from_config("payments", config).unwrap();
/// assert_eq!(breaker.name(), "payments");
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[non_exhaustive]
pub struct Config {
    /// Trip when at least this fraction of calls in the window failed (0 < rate ≤ 1).
    /// On by default at 0.5; `None` (`"none"` or `false` in a file) switches the rule off.
    #[cfg_attr(feature = "serde", serde(with = "none_or"))]
    pub failure_rate: Option<f64>,
    /// The rate rules apply only once the window holds this many calls, so that one failure
    /// among the first few calls does not count as a 100% failure rate. Must be one a window
    /// can reach: at most a count window's size; at most a million calls per millisecond of a
    /// time window's size (see [`ConfigError::MinimumCallsUnreachable`]).
    pub minimum_calls: u32,
    /// Trip when too many calls are slow. Off by default.
    #[cfg_attr(feature = "serde", serde(with = "none_or"))]
    pub slow_calls: Option<SlowCalls>,
    /// Trip after this many failures in a row, whatever the window says. Off by default.
    #[cfg_attr(feature = "serde", serde(with = "none_or"))]
    pub consecutive_failures: Option<u32>,
    /// Which calls the rate rules look at.
    pub window: WindowConfig,
    /// How long the breaker stays open before it probes.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub open_duration: Duration,
    /// Let the open duration grow each time a probe fails. Off by default.
    #[cfg_attr(feature = "serde", serde(with = "none_or"))]
    pub backoff: Option<Backoff>,
    /// Spread open durations by up to this fraction either way (0 ≤ jitter < 1), so that many
    /// instances do not probe a recovering dependency at the same instant.
    pub jitter: f64,
    /// How many probe calls half-open admits; all must succeed to close.
    pub half_open_probes: u32,
    /// Give up on probes that take longer than this and open again, so that a probe that
    /// hangs cannot hold the breaker half-open (refusing everything else) for ever. 60 seconds
    /// by default; `None` waits for the probes however long they take.
    #[cfg_attr(feature = "serde", serde(with = "none_or::duration"))]
    pub max_half_open: Option<Duration>,
    /// Counter stripes, a power of two; by default (`None`) the machine's parallelism (one for
    /// the breakers of a keyed registry).
    #[cfg_attr(feature = "serde", serde(with = "none_or"))]
    pub stripes: Option<usize>,
    /// The state a new breaker starts in. Every state is allowed:
    ///
    /// - [`State::Closed`] (the default): calls pass and are counted from the start.
    /// - [`State::Open`]: the breaker starts an open period of `open_duration`, as if it had
    ///   just tripped, then probes: for a dependency known to be down at startup.
    /// - [`State::HalfOpen`]: the breaker starts probing: the first `half_open_probes` calls
    ///   are probes, and decide between closed and open.
    /// - [`State::Disabled`], [`State::ForcedOpen`], [`State::MetricsOnly`]: the breaker starts
    ///   in that hand-set state and stays there until changed by hand, as if the matching
    ///   method had been called at startup.
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
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
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
    /// Trip at 50% failures over at least 20 calls in a 10-second window of 10 buckets; stay
    /// open 30 seconds; close after 3 successful probes, and open again if they take more than
    /// 60 seconds; start closed; count a dropped call only if it was slow.
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
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct SlowCalls {
    /// A call this long or longer is slow (10 µs to 7 days: calls are timed to about a
    /// microsecond, on a clock that wraps after 26 days).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub threshold: Duration,
    /// The fraction of slow calls that trips the breaker (0 < rate ≤ 1).
    pub rate: f64,
}

/// Which calls the rate rules look at.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
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
        /// More buckets slide more smoothly but cost more to sum when a rule is checked.
        buckets: u32,
    },
    /// The last `calls` calls.
    Count {
        /// How many calls the window holds (1 to 1,000,000).
        calls: u32,
    },
}

impl Default for WindowConfig {
    /// The last 10 seconds, in 10 buckets of a second.
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
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Backoff {
    /// Growth per failed probe (at least 1).
    pub multiplier: f64,
    /// The longest open period (at least `open_duration`).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max: Duration,
}

/// serde for the optional fields of [`Config`]: a value, or `"none"`, `false` or `null` for
/// `None`; `None` is written as `"none"`.
///
/// Why not plain `Option`: TOML has no null, so a file could not switch off a field whose
/// default is `Some` (the failure-rate rule, the half-open cap). And `false` reads naturally
/// for a rule that is off. One visitor serves every field: it sees what the file holds, takes
/// `"none"`, `false` and null itself, and hands anything else to the field's own
/// `Deserialize`, so numbers, structs and (through `none_or::duration`)
/// human-readable durations all keep their usual form and errors.
#[cfg(feature = "serde")]
mod none_or {
    use std::fmt;
    use std::marker::PhantomData;
    use std::time::Duration;

    use serde::de::{self, value, Deserialize, Deserializer, IntoDeserializer, Visitor};
    use serde::{Serialize, Serializer};

    /// The word for "off".
    pub(super) const NONE: &str = "none";

    /// Writes `Some(value)` as the value, `None` as `"none"`.
    pub(super) fn serialize<T, S>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize,
        S: Serializer,
    {
        match value {
            Some(value) => value.serialize(serializer),
            None => serializer.serialize_str(NONE),
        }
    }

    /// Reads `"none"`, `false`, null or unit as `None`, anything else as `Some` of a `T`.
    pub(super) fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        // Only a self-describing format can say whether it holds a word or a value; TOML and
        // JSON both can.
        deserializer.deserialize_any(NoneOr(PhantomData))
    }

    /// The same for durations, written human-readable (`"30s"`) as `humantime_serde` does.
    pub(super) mod duration {
        use super::{Deserializer, Duration, Serializer};
        use humantime_serde::Serde;

        pub(in crate::config) fn serialize<S: Serializer>(
            value: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            super::serialize(&value.map(Serde::from), serializer)
        }

        pub(in crate::config) fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            super::deserialize::<Serde<Duration>, D>(deserializer)
                .map(|value| value.map(Serde::into_inner))
        }
    }

    struct NoneOr<T>(PhantomData<T>);

    /// A scalar the field's type refused: say that the off words were also on offer, so that a
    /// misspelled `"none"` is not reported as only "expected f64".
    fn or_off<E: de::Error>(error: E) -> E {
        // Some formats end their messages with a newline.
        let error = error.to_string();
        E::custom(format_args!(
            "{}, or \"{NONE}\" (or false) to switch it off",
            error.trim_end()
        ))
    }

    impl<'de, T: Deserialize<'de>> Visitor<'de> for NoneOr<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a value, or \"{NONE}\" (or false) to switch it off")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            if v {
                T::deserialize(v.into_deserializer())
                    .map(Some)
                    .map_err(or_off)
            } else {
                Ok(None)
            }
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v == NONE {
                Ok(None)
            } else {
                T::deserialize(value::StrDeserializer::<E>::new(v))
                    .map(Some)
                    .map_err(or_off)
            }
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            if v == NONE {
                Ok(None)
            } else {
                T::deserialize(value::BorrowedStrDeserializer::<E>::new(v))
                    .map(Some)
                    .map_err(or_off)
            }
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            if v == NONE {
                Ok(None)
            } else {
                T::deserialize(value::StringDeserializer::<E>::new(v))
                    .map(Some)
                    .map_err(or_off)
            }
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(Some)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(Some)
        }

        fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(Some)
        }

        fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(Some)
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            T::deserialize(v.into_deserializer()).map(Some)
        }

        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(value::MapAccessDeserializer::new(map)).map(Some)
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            T::deserialize(value::SeqAccessDeserializer::new(seq)).map(Some)
        }

        fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
            T::deserialize(value::EnumAccessDeserializer::new(data)).map(Some)
        }
    }
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
        /// What the field accepts, with its exact limits.
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
    /// A time window too short to ever hold `minimum_calls` calls: the rate rules could
    /// never apply.
    ///
    /// A time window is taken to hold at most a million calls per millisecond of its size
    /// (whole milliseconds): far more than any one breaker sees, so this only catches a
    /// `minimum_calls` that is a mistake, such as a count of calls given for a tiny window.
    MinimumCallsUnreachable {
        /// The configured minimum.
        minimum_calls: u32,
        /// The most calls the window can hold.
        limit: u64,
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
            ConfigError::MinimumCallsUnreachable {
                minimum_calls,
                limit,
            } => write!(
                f,
                "invalid circuit breaker config: a time window holding at most {limit} calls \
                 (a million per millisecond) never reaches minimum_calls = {minimum_calls}"
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

// Each limit comes with the words of its error message. `ConfigError::OutOfRange::expected` is
// a `&'static str`, so the numbers are written out; the test `messages_state_the_limits` checks
// every message against its constant.

/// Times in the state word wrap at 2^40 ms and compare over half of that; a quarter leaves room
/// for jitter, which may stretch a duration by almost 2×. 2^38 − 1 ms.
const MAX_DURATION: Duration = Duration::from_millis(MAX_TIME_MS / 4);
const DURATION_RANGE: &str = "a duration above zero and at most 274877906943ms (about 8.7 years)";

/// Calls are timed to about a microsecond, in a range that wraps after 26 days.
const MIN_SLOW_THRESHOLD: Duration = Duration::from_micros(10);
const MAX_SLOW_THRESHOLD: Duration = Duration::from_secs(7 * 24 * 3600);
const SLOW_THRESHOLD_RANGE: &str = "a duration from 10us to 604800s (7 days), both included";

/// The time window's bucket index has 10 bits.
const MAX_BUCKETS: u32 = 1000;
const BUCKETS_RANGE: &str = "1 to 1000";
/// Each bucket at least this long: bucket times come from a millisecond clock.
const MIN_BUCKET: Duration = Duration::from_millis(1);
const BUCKET_WIDTH_RANGE: &str = "at least 1ms per bucket";

/// A count window keeps a byte per call: a million is a megabyte per breaker.
const MAX_COUNT_WINDOW: u32 = 1_000_000;
const COUNT_WINDOW_RANGE: &str = "1 to 1000000";

/// How many calls a time window is taken to hold per millisecond of its size, at most: far
/// beyond any one breaker, so the bound only catches mistakes.
const MAX_CALLS_PER_MS: u64 = 1_000_000;

const PROBES_RANGE: &str = "1 to 1048575";

/// More stripes than this buy nothing on any machine yet and cost memory per breaker.
const MAX_STRIPES: usize = 256;
const STRIPES_RANGE: &str = "a power of two from 1 to 256";

fn check_duration(field: &'static str, value: Duration) -> Result<(), ConfigError> {
    if value.is_zero() || value > MAX_DURATION {
        Err(out_of_range(field, value, DURATION_RANGE))
    } else {
        Ok(())
    }
}

impl Config {
    /// Checks every value; [`CircuitBreaker::from_config`](crate::CircuitBreaker::from_config)
    /// calls this for you.
    ///
    /// The limits:
    ///
    /// - rates (`failure_rate`, `slow_calls.rate`): greater than 0 and at most 1;
    /// - `minimum_calls`: at least 1, and (when a rate rule is on) reachable by the window: at
    ///   most a count window's size, at most a million per millisecond of a time window's size;
    /// - `slow_calls.threshold`: 10 µs to 7 days;
    /// - `consecutive_failures`: at least 1;
    /// - at least one trip rule;
    /// - a time window: 1 to 1000 buckets of at least a millisecond each; a count window: 1 to
    ///   1,000,000 calls;
    /// - durations (`open_duration`, `window.time.size`, `backoff.max`, `max_half_open`): above
    ///   zero and at most 2^38 − 1 ms (about 8.7 years), so that deadlines fit the breaker's
    ///   state word even when jitter stretches them;
    /// - `backoff.multiplier` at least 1, `backoff.max` at least `open_duration`;
    /// - `jitter`: 0 up to (not including) 1;
    /// - `half_open_probes`: 1 to 1,048,575 (the probe counters have 20 bits);
    /// - `stripes`: a power of two from 1 to 256.
    ///
    /// Every `initial_state` is allowed.
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
                    SLOW_THRESHOLD_RANGE,
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
        // `minimum_calls` only gates the rate rules: with consecutive failures alone, a window
        // that never fills up is fine.
        let rate_rules = self.failure_rate.is_some() || self.slow_calls.is_some();
        match self.window {
            WindowConfig::Time { size, buckets } => {
                check_duration("window.time.size", size)?;
                if !(1..=MAX_BUCKETS).contains(&buckets) {
                    return Err(out_of_range("window.time.buckets", buckets, BUCKETS_RANGE));
                }
                if size / buckets < MIN_BUCKET {
                    return Err(out_of_range("window.time.size", size, BUCKET_WIDTH_RANGE));
                }
                let limit = u64::try_from(size.as_millis())
                    .unwrap_or(u64::MAX)
                    .saturating_mul(MAX_CALLS_PER_MS);
                if rate_rules && u64::from(self.minimum_calls) > limit {
                    return Err(ConfigError::MinimumCallsUnreachable {
                        minimum_calls: self.minimum_calls,
                        limit,
                    });
                }
            }
            WindowConfig::Count { calls } => {
                if !(1..=MAX_COUNT_WINDOW).contains(&calls) {
                    return Err(out_of_range(
                        "window.count.calls",
                        calls,
                        COUNT_WINDOW_RANGE,
                    ));
                }
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
                PROBES_RANGE,
            ));
        }
        if let Some(max) = self.max_half_open {
            check_duration("max_half_open", max)?;
        }
        if let Some(stripes) = self.stripes {
            if !(stripes.is_power_of_two() && stripes <= MAX_STRIPES) {
                return Err(out_of_range("stripes", stripes, STRIPES_RANGE));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(f: impl FnOnce(&mut Config)) -> ConfigError {
        let mut config = Config::default();
        f(&mut config);
        config.validate().unwrap_err()
    }

    fn good(f: impl FnOnce(&mut Config)) {
        let mut config = Config::default();
        f(&mut config);
        config.validate().unwrap();
    }

    /// The `expected` of the error, which must be an `OutOfRange` of `field`.
    fn expected(error: ConfigError, field: &str) -> &'static str {
        match error {
            ConfigError::OutOfRange {
                field: f, expected, ..
            } if f == field => expected,
            other => panic!("expected OutOfRange of {field}, got {other:?}"),
        }
    }

    #[test]
    fn default_is_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn bad_values_are_typed_errors() {
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

    #[test]
    fn minimum_calls_must_be_reachable_by_a_count_window() {
        let window = |calls| WindowConfig::Count { calls };
        // Exactly the window's size is reachable; one more is not.
        good(|c| {
            c.window = window(100);
            c.minimum_calls = 100;
        });
        assert_eq!(
            bad(|c| {
                c.window = window(100);
                c.minimum_calls = 101;
            }),
            ConfigError::WindowSmallerThanMinimum {
                window: 100,
                minimum_calls: 101
            }
        );
        // The slow-call rule is a rate rule too.
        assert_eq!(
            bad(|c| {
                c.failure_rate = None;
                c.slow_calls = Some(SlowCalls {
                    threshold: Duration::from_secs(1),
                    rate: 0.5,
                });
                c.window = window(100);
                c.minimum_calls = 101;
            }),
            ConfigError::WindowSmallerThanMinimum {
                window: 100,
                minimum_calls: 101
            }
        );
        // Without a rate rule, minimum_calls gates nothing.
        good(|c| {
            c.failure_rate = None;
            c.consecutive_failures = Some(3);
            c.window = window(100);
            c.minimum_calls = 101;
        });
    }

    #[test]
    fn minimum_calls_must_be_reachable_by_a_time_window() {
        let window = |ms| WindowConfig::Time {
            size: Duration::from_millis(ms),
            buckets: 1,
        };
        // A million calls per millisecond: 2 ms hold 2,000,000 calls, not one more.
        good(|c| {
            c.window = window(2);
            c.minimum_calls = 2_000_000;
        });
        assert_eq!(
            bad(|c| {
                c.window = window(2);
                c.minimum_calls = 2_000_001;
            }),
            ConfigError::MinimumCallsUnreachable {
                minimum_calls: 2_000_001,
                limit: 2_000_000
            }
        );
        // Whole milliseconds: 2.9 ms count as 2.
        assert!(matches!(
            bad(|c| {
                c.window = WindowConfig::Time {
                    size: Duration::from_micros(2_900),
                    buckets: 1,
                };
                c.minimum_calls = 2_000_001;
            }),
            ConfigError::MinimumCallsUnreachable {
                limit: 2_000_000,
                ..
            }
        ));
        // The largest minimum fits any window of 4.3 seconds or more.
        good(|c| {
            c.window = WindowConfig::Time {
                size: Duration::from_millis(4_295),
                buckets: 10,
            };
            c.minimum_calls = u32::MAX;
        });
        // Without a rate rule, minimum_calls gates nothing.
        good(|c| {
            c.failure_rate = None;
            c.consecutive_failures = Some(3);
            c.window = window(2);
            c.minimum_calls = u32::MAX;
        });
        let message = bad(|c| {
            c.window = window(2);
            c.minimum_calls = 2_000_001;
        })
        .to_string();
        assert!(message.contains("at most 2000000 calls"), "{message}");
        assert!(message.contains("minimum_calls = 2000001"), "{message}");
    }

    #[test]
    fn messages_state_the_limits() {
        // Each limit is accepted, the next value is refused, and the refusal names the limit
        // as the constant has it.
        let max_ms = MAX_DURATION.as_millis();
        assert_eq!(max_ms, (1 << 38) - 1);
        let years = MAX_DURATION.as_secs_f64() / (365.25 * 86_400.0);
        for text in [
            format!("at most {max_ms}ms"),
            format!("about {years:.1} years"),
        ] {
            assert!(DURATION_RANGE.contains(&text), "{DURATION_RANGE} / {text}");
        }
        let too_long = MAX_DURATION + Duration::from_nanos(1);
        good(|c| c.open_duration = MAX_DURATION);
        let error = bad(|c| c.open_duration = too_long);
        assert_eq!(expected(error, "open_duration"), DURATION_RANGE);
        good(|c| {
            c.max_half_open = Some(MAX_DURATION);
            c.window = WindowConfig::Time {
                size: MAX_DURATION,
                buckets: MAX_BUCKETS,
            };
            c.backoff = Some(Backoff {
                multiplier: 2.0,
                max: MAX_DURATION,
            });
        });
        let error = bad(|c| c.max_half_open = Some(too_long));
        assert_eq!(expected(error, "max_half_open"), DURATION_RANGE);
        let error = bad(|c| {
            c.window = WindowConfig::Time {
                size: too_long,
                buckets: 10,
            }
        });
        assert_eq!(expected(error, "window.time.size"), DURATION_RANGE);
        let error = bad(|c| {
            c.backoff = Some(Backoff {
                multiplier: 2.0,
                max: too_long,
            })
        });
        assert_eq!(expected(error, "backoff.max"), DURATION_RANGE);
        let message = bad(|c| c.open_duration = Duration::ZERO).to_string();
        assert!(message.contains(DURATION_RANGE), "{message}");

        assert_eq!(MIN_SLOW_THRESHOLD.as_nanos() % 1_000, 0);
        assert_eq!(MAX_SLOW_THRESHOLD.subsec_nanos(), 0);
        assert_eq!(MAX_SLOW_THRESHOLD.as_secs(), 7 * 86_400);
        let text = format!(
            "from {}us to {}s (7 days)",
            MIN_SLOW_THRESHOLD.as_micros(),
            MAX_SLOW_THRESHOLD.as_secs()
        );
        assert!(
            SLOW_THRESHOLD_RANGE.contains(&text),
            "{SLOW_THRESHOLD_RANGE}"
        );
        let slow = |threshold| {
            move |c: &mut Config| {
                c.slow_calls = Some(SlowCalls {
                    threshold,
                    rate: 0.5,
                })
            }
        };
        good(slow(MIN_SLOW_THRESHOLD));
        good(slow(MAX_SLOW_THRESHOLD));
        for threshold in [
            MIN_SLOW_THRESHOLD - Duration::from_nanos(1),
            MAX_SLOW_THRESHOLD + Duration::from_nanos(1),
        ] {
            let error = bad(slow(threshold));
            assert_eq!(
                expected(error, "slow_calls.threshold"),
                SLOW_THRESHOLD_RANGE
            );
        }

        assert_eq!(BUCKETS_RANGE, format!("1 to {MAX_BUCKETS}"));
        let buckets = |buckets| {
            move |c: &mut Config| {
                c.window = WindowConfig::Time {
                    size: Duration::from_secs(10),
                    buckets,
                }
            }
        };
        good(buckets(MAX_BUCKETS));
        for n in [0, MAX_BUCKETS + 1] {
            let error = bad(buckets(n));
            assert_eq!(expected(error, "window.time.buckets"), BUCKETS_RANGE);
        }
        assert!(BUCKET_WIDTH_RANGE.contains(&format!("{}ms", MIN_BUCKET.as_millis())));
        good(|c| {
            c.minimum_calls = 1;
            c.window = WindowConfig::Time {
                size: MIN_BUCKET * 10,
                buckets: 10,
            };
        });
        let error = bad(|c| {
            c.window = WindowConfig::Time {
                size: MIN_BUCKET * 10 - Duration::from_nanos(1),
                buckets: 10,
            }
        });
        assert_eq!(expected(error, "window.time.size"), BUCKET_WIDTH_RANGE);

        assert_eq!(COUNT_WINDOW_RANGE, format!("1 to {MAX_COUNT_WINDOW}"));
        good(|c| {
            c.window = WindowConfig::Count {
                calls: MAX_COUNT_WINDOW,
            }
        });
        for calls in [0, MAX_COUNT_WINDOW + 1] {
            let error = bad(|c| c.window = WindowConfig::Count { calls });
            assert_eq!(expected(error, "window.count.calls"), COUNT_WINDOW_RANGE);
        }

        assert_eq!(PROBES_RANGE, format!("1 to {MAX_PROBES}"));
        good(|c| c.half_open_probes = MAX_PROBES);
        for probes in [0, MAX_PROBES + 1] {
            let error = bad(|c| c.half_open_probes = probes);
            assert_eq!(expected(error, "half_open_probes"), PROBES_RANGE);
        }

        assert_eq!(
            STRIPES_RANGE,
            format!("a power of two from 1 to {MAX_STRIPES}")
        );
        assert!(MAX_STRIPES.is_power_of_two());
        good(|c| c.stripes = Some(1));
        good(|c| c.stripes = Some(MAX_STRIPES));
        for stripes in [0, 3, MAX_STRIPES * 2] {
            let error = bad(|c| c.stripes = Some(stripes));
            assert_eq!(expected(error, "stripes"), STRIPES_RANGE);
        }
    }

    #[test]
    fn every_initial_state_is_valid() {
        for state in [
            State::Closed,
            State::Open,
            State::HalfOpen,
            State::Disabled,
            State::ForcedOpen,
            State::MetricsOnly,
        ] {
            good(|c| c.initial_state = state);
        }
    }
}

#[cfg(all(test, feature = "serde"))]
mod serde_tests {
    use super::*;
    use proptest::prelude::*;

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
        let error = toml::from_str::<Config>("stripe = 4")
            .unwrap_err()
            .to_string();
        assert!(error.contains("stripe"), "{error}");
    }

    /// Every optional field, in TOML and in JSON: `"none"`, `false` and (JSON) `null` switch
    /// it off, a value sets it, and leaving it out keeps the default.
    #[test]
    fn optional_fields_take_none_false_and_values() {
        let off = Config {
            failure_rate: None,
            slow_calls: None,
            consecutive_failures: None,
            backoff: None,
            max_half_open: None,
            stripes: None,
            ..Config::default()
        };
        let fields = [
            "failure_rate",
            "slow_calls",
            "consecutive_failures",
            "backoff",
            "max_half_open",
            "stripes",
        ];
        for word in [r#""none""#, "false"] {
            let file: String = fields.iter().map(|f| format!("{f} = {word}\n")).collect();
            assert_eq!(toml::from_str::<Config>(&file).unwrap(), off, "{file}");
        }
        for word in [r#""none""#, "false", "null"] {
            let body: Vec<String> = fields.iter().map(|f| format!(r#""{f}": {word}"#)).collect();
            let json = format!("{{{}}}", body.join(", "));
            assert_eq!(
                serde_json::from_str::<Config>(&json).unwrap(),
                off,
                "{json}"
            );
        }

        let on: Config = toml::from_str(
            r#"
            failure_rate = 0.25
            slow_calls = { threshold = "800ms", rate = 0.5 }
            consecutive_failures = 5
            backoff = { multiplier = 2.0, max = "5m" }
            max_half_open = "90s"
            stripes = 4
            "#,
        )
        .unwrap();
        let expected = Config {
            failure_rate: Some(0.25),
            slow_calls: Some(SlowCalls {
                threshold: Duration::from_millis(800),
                rate: 0.5,
            }),
            consecutive_failures: Some(5),
            backoff: Some(Backoff {
                multiplier: 2.0,
                max: Duration::from_secs(300),
            }),
            max_half_open: Some(Duration::from_secs(90)),
            stripes: Some(4),
            ..Config::default()
        };
        assert_eq!(on, expected);
        let json = r#"{"failure_rate": 0.25, "slow_calls": {"threshold": "800ms", "rate": 0.5},
            "consecutive_failures": 5, "backoff": {"multiplier": 2.0, "max": "5m"},
            "max_half_open": "90s", "stripes": 4}"#;
        assert_eq!(serde_json::from_str::<Config>(json).unwrap(), expected);

        // A whole number is a rate too, as it was before.
        let one: Config = toml::from_str("failure_rate = 1").unwrap();
        assert_eq!(one.failure_rate, Some(1.0));

        assert_eq!(toml::from_str::<Config>("").unwrap(), Config::default());
        assert_eq!(
            serde_json::from_str::<Config>("{}").unwrap(),
            Config::default()
        );
    }

    /// The guide's example: a search breaker that trips on failures in a row and slow calls
    /// only, which before `"none"` silently kept the 50% failure-rate rule.
    #[test]
    fn a_file_can_switch_off_the_default_failure_rate() {
        let config: Config = toml::from_str(
            r#"
            failure_rate = "none"
            consecutive_failures = 5
            slow_calls = { threshold = "800ms", rate = 0.5 }
            window = { count = { calls = 100 } }
            "#,
        )
        .unwrap();
        assert_eq!(config.failure_rate, None);
        config.validate().unwrap();
    }

    #[test]
    fn misspelled_words_name_what_is_accepted() {
        for (field, value) in [
            ("failure_rate", r#""nope""#),
            ("slow_calls", r#""nope""#),
            ("consecutive_failures", r#""nope""#),
            ("backoff", r#""nope""#),
            ("max_half_open", r#""nope""#),
            ("stripes", r#""nope""#),
            ("failure_rate", "true"),
            ("max_half_open", r#""None""#),
        ] {
            let toml_error = toml::from_str::<Config>(&format!("{field} = {value}"))
                .unwrap_err()
                .to_string();
            let json_error = serde_json::from_str::<Config>(&format!(r#"{{"{field}": {value}}}"#))
                .unwrap_err()
                .to_string();
            for error in [toml_error, json_error] {
                assert!(
                    error.contains(r#"or "none" (or false) to switch it off"#),
                    "{error}"
                );
            }
        }
        let error = toml::from_str::<Config>(r#"failure_rate = "nope""#)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(r#"string "nope", expected f64, or "none" (or false) to switch it off"#),
            "{error}"
        );
        let error = toml::from_str::<Config>(r#"max_half_open = "nope""#)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(r#"expected a duration, or "none""#),
            "{error}"
        );
        // Errors inside a value are the value's own.
        let error = toml::from_str::<Config>(r#"slow_calls = { threshold = "1s", rat = 0.5 }"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("rat"), "{error}");
        let error = toml::from_str::<Config>("stripes = -1")
            .unwrap_err()
            .to_string();
        assert!(error.contains("-1"), "{error}");
    }

    fn round_trips(config: &Config) {
        let toml_text = toml::to_string(config).unwrap();
        assert_eq!(
            &toml::from_str::<Config>(&toml_text).unwrap(),
            config,
            "{toml_text}"
        );
        let json = serde_json::to_string(config).unwrap();
        assert_eq!(
            &serde_json::from_str::<Config>(&json).unwrap(),
            config,
            "{json}"
        );
    }

    fn all_on() -> Config {
        Config {
            failure_rate: Some(0.25),
            minimum_calls: 50,
            slow_calls: Some(SlowCalls {
                threshold: Duration::from_micros(1_500),
                rate: 0.75,
            }),
            consecutive_failures: Some(7),
            window: WindowConfig::Count { calls: 500 },
            open_duration: Duration::from_millis(2_500),
            backoff: Some(Backoff {
                multiplier: 1.5,
                max: Duration::from_secs(3_600),
            }),
            jitter: 0.1,
            half_open_probes: 5,
            max_half_open: Some(Duration::from_secs(90)),
            stripes: Some(8),
            initial_state: State::HalfOpen,
            on_drop: DropPolicy::Failure,
            count_nested_refusals: true,
        }
    }

    fn all_off() -> Config {
        Config {
            failure_rate: None,
            slow_calls: None,
            consecutive_failures: Some(3),
            backoff: None,
            max_half_open: None,
            stripes: None,
            on_drop: DropPolicy::Ignore,
            ..Config::default()
        }
    }

    #[test]
    fn default_all_on_and_all_off_round_trip() {
        for config in [Config::default(), all_on(), all_off()] {
            config.validate().unwrap();
            round_trips(&config);
        }
        let written = toml::to_string(&all_off()).unwrap();
        for field in [
            "failure_rate",
            "slow_calls",
            "backoff",
            "max_half_open",
            "stripes",
        ] {
            assert!(
                written.contains(&format!("{field} = \"none\"")),
                "{written}"
            );
        }
        let json = serde_json::to_value(all_off()).unwrap();
        assert_eq!(json["failure_rate"], "none");
        assert_eq!(json["consecutive_failures"], 3);
        assert_eq!(json["on_drop"], "ignore");
        // Written durations are human-readable.
        let json = serde_json::to_value(all_on()).unwrap();
        assert_eq!(json["open_duration"], "2s 500ms");
        assert_eq!(json["window"]["count"]["calls"], 500);
    }

    fn duration() -> impl Strategy<Value = Duration> {
        (0..=MAX_DURATION.as_secs(), 0..1_000_000_000u32)
            .prop_map(|(secs, nanos)| Duration::new(secs, nanos))
    }

    /// Fractions of a few digits: what configs hold, and what every float parser reads back
    /// exactly.
    fn fraction() -> impl Strategy<Value = f64> {
        (0..=10_000u32).prop_map(|n| f64::from(n) / 10_000.0)
    }

    fn state() -> impl Strategy<Value = State> {
        prop_oneof![
            Just(State::Closed),
            Just(State::Open),
            Just(State::HalfOpen),
            Just(State::Disabled),
            Just(State::ForcedOpen),
            Just(State::MetricsOnly),
        ]
    }

    fn drop_policy() -> impl Strategy<Value = DropPolicy> {
        prop_oneof![
            Just(DropPolicy::Ignore),
            Just(DropPolicy::CountSlow),
            Just(DropPolicy::Failure),
        ]
    }

    fn window() -> impl Strategy<Value = WindowConfig> {
        prop_oneof![
            (duration(), any::<u32>())
                .prop_map(|(size, buckets)| WindowConfig::Time { size, buckets }),
            any::<u32>().prop_map(|calls| WindowConfig::Count { calls }),
        ]
    }

    /// Any config the formats can hold, valid or not: round trips must not depend on
    /// validation. (Integers stay within TOML's i64; floats are finite.)
    fn config() -> impl Strategy<Value = Config> {
        let rules = (
            prop::option::of(fraction()),
            any::<u32>(),
            prop::option::of(
                (duration(), fraction())
                    .prop_map(|(threshold, rate)| SlowCalls { threshold, rate }),
            ),
            prop::option::of(any::<u32>()),
            window(),
        );
        let open = (
            duration(),
            prop::option::of((1..=100u32, duration()).prop_map(|(m, max)| Backoff {
                multiplier: f64::from(m) / 4.0,
                max,
            })),
            fraction(),
            any::<u32>(),
            prop::option::of(duration()),
            prop::option::of(0..=1usize << 20),
        );
        let start = (state(), drop_policy(), any::<bool>());
        (rules, open, start).prop_map(
            |(
                (failure_rate, minimum_calls, slow_calls, consecutive_failures, window),
                (open_duration, backoff, jitter, half_open_probes, max_half_open, stripes),
                (initial_state, on_drop, count_nested_refusals),
            )| Config {
                failure_rate,
                minimum_calls,
                slow_calls,
                consecutive_failures,
                window,
                open_duration,
                backoff,
                jitter,
                half_open_probes,
                max_half_open,
                stripes,
                initial_state,
                on_drop,
                count_nested_refusals,
            },
        )
    }

    proptest! {
        #[test]
        fn any_config_round_trips_through_toml_and_json(config in config()) {
            round_trips(&config);
        }
    }
}
