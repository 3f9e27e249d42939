//! Errors of SLO definitions.

use std::fmt;

/// An SLO definition, a policy or a config file that cannot be used.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A name that is empty, over 64 bytes, or has characters other than `[A-Za-z0-9_:-]`
    /// (names become metric labels and alert labels).
    Name(String),
    /// An objective outside (0, 1), for example 99.9 where 0.999 was meant.
    Objective(f64),
    /// A rolling period of zero or over 93 days.
    Period,
    /// A burn-rate window that is zero, over the history kept, or whose short window is not
    /// shorter than its long one; or a factor that is not a positive number.
    Window(String),
    /// A quantile outside (0, 1), a zero threshold, or a latency threshold beside a percentile
    /// (a percentile SLI has its own threshold).
    Latency,
    /// A downtime error rate outside [0, 1) or a zero run length.
    Downtime,
    /// A maintenance window that does not end after it starts, or lasts over 93 days.
    Maintenance,
    /// A freeze threshold outside [0, 1].
    Freeze(f64),
    /// Two SLOs with one name in a set.
    Duplicate(String),
    /// A policy or composite naming an SLO the set does not have.
    UnknownSlo(String),
    /// A policy's switch name refused by the degrader, a level of 0 (a policy that never
    /// acts), or a signal its SLO does not have.
    Switch(String),
    /// A composite's weights that are not positive.
    Weight,
    /// A config file that does not parse, with the path to the bad value.
    #[cfg(feature = "serde")]
    Parse(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Name(name) => write!(
                f,
                "invalid SLO name {name:?}: use 1 to 64 of [A-Za-z0-9_:-]"
            ),
            ConfigError::Objective(objective) => write!(
                f,
                "objective {objective} is not a fraction between 0 and 1 (write 0.999 for 99.9 %)"
            ),
            ConfigError::Period => {
                f.write_str("a rolling period must be between 1 minute and 93 days")
            }
            ConfigError::Window(why) => write!(f, "invalid burn-rate window: {why}"),
            ConfigError::Latency => f.write_str(
                "a latency SLI needs a quantile between 0 and 1 and a non-zero threshold, and no \
                 latency_threshold beside it",
            ),
            ConfigError::Downtime => f.write_str(
                "a downtime SLI needs an error rate in [0, 1) and a run of at least one minute",
            ),
            ConfigError::Maintenance => f.write_str(
                "a maintenance window must end after it starts and last at most 93 days",
            ),
            ConfigError::Freeze(value) => {
                write!(
                    f,
                    "freeze threshold {value} is not a fraction between 0 and 1"
                )
            }
            ConfigError::Duplicate(name) => write!(f, "two SLOs are named {name:?}"),
            ConfigError::UnknownSlo(name) => write!(f, "no SLO named {name:?}"),
            ConfigError::Switch(why) => write!(f, "invalid degradation switch: {why}"),
            ConfigError::Weight => f.write_str("composite weights must be positive numbers"),
            #[cfg(feature = "serde")]
            ConfigError::Parse(why) => write!(f, "invalid SLO config: {why}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Checks a name used as a metric label.
pub(crate) fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Name(name.to_owned()))
    }
}
