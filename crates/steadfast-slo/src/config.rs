//! SLOs, composites and budget policies from a config file (TOML or JSON).
//!
//! ```
//! use steadfast_fallback::Degrader;
//! use steadfast_slo::config::SetConfig;
//!
//! let config = SetConfig::from_toml(r#"
//!     [[slo]]
//!     name = "checkout"
//!     service = "shop"
//!     objective = 0.999
//!     period = "30d"
//!     latency_threshold = "300ms"
//!
//!     [[slo]]
//!     name = "search_p95"
//!     objective = 0.99
//!     period = "month"
//!     percentile = { quantile = 0.95, threshold = "250ms" }
//!
//!     [[policy]]
//!     slo = "checkout"
//!     switch = "recommendations"
//!     level = 1
//!     when = "page"
//!     hold = "10m"
//! "#).unwrap();
//! let set = config.build(&Degrader::new()).unwrap();
//! assert_eq!(set.slos().len(), 2);
//! ```

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use steadfast_core::Clock;
use steadfast_fallback::Degrader;

use crate::burn::{BurnWindow, Severity};
use crate::composite::Composite;
use crate::error::ConfigError;
use crate::policy::{BudgetPolicy, Trigger};
use crate::set::SloSet;
use crate::time::{Maintenance, Period};
use crate::Slo;

/// A file's SLOs, composites and policies.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SetConfig {
    /// The SLOs.
    #[serde(default)]
    pub slo: Vec<SloConfig>,
    /// Composites of them.
    #[serde(default)]
    pub composite: Vec<Composite>,
    /// Budget policies.
    #[serde(default)]
    pub policy: Vec<PolicyConfig>,
}

/// One SLO, as a file declares it. Only `name` is required; the rest default as
/// [`Slo::builder`] does.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SloConfig {
    /// The name.
    pub name: String,
    /// The service.
    #[serde(default)]
    pub service: Option<String>,
    /// The objective, a fraction (default 0.999).
    #[serde(default)]
    pub objective: Option<f64>,
    /// `"30d"` (any duration: rolling), `"month"` or `"week"` (calendar).
    #[serde(default)]
    pub period: Option<String>,
    /// A call is good only within this time.
    #[serde(default, with = "humantime_serde::option")]
    pub latency_threshold: Option<Duration>,
    /// Makes it a latency SLI.
    #[serde(default)]
    pub percentile: Option<PercentileConfig>,
    /// Counts downtime minutes.
    #[serde(default)]
    pub downtime: Option<DowntimeConfig>,
    /// The freeze threshold (default 0.1).
    #[serde(default)]
    pub freeze_below: Option<f64>,
    /// The burn-rate signals (default the workbook's four).
    #[serde(default)]
    pub windows: Option<Vec<BurnWindow>>,
    /// Maintenance windows.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceConfig>,
}

/// A latency SLI's quantile and threshold.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PercentileConfig {
    /// The quantile (0.95).
    pub quantile: f64,
    /// Its threshold (`"300ms"`).
    #[serde(with = "humantime_serde")]
    pub threshold: Duration,
}

/// Downtime-minute counting.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DowntimeConfig {
    /// A minute is down past this error rate.
    pub error_rate: f64,
    /// Down minutes count in runs at least this long.
    pub min_minutes: u32,
}

/// A maintenance window, in RFC 3339 times (`2026-11-22T02:00:00Z`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MaintenanceConfig {
    /// Its start.
    pub start: String,
    /// Its end.
    pub end: String,
}

/// A budget policy, as a file declares it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// The SLO whose signals it follows.
    pub slo: String,
    /// The degradation switch it sets.
    pub switch: String,
    /// The level it sets.
    pub level: u8,
    /// `"page"`, `"ticket"`, `"freeze"`, or a signal's name (default `"page"`).
    #[serde(default)]
    pub when: Option<String>,
    /// The least time the switch stays set (default 5 minutes).
    #[serde(default, with = "humantime_serde::option")]
    pub hold: Option<Duration>,
}

impl SetConfig {
    /// Parses TOML.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] with the path to the bad value.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Parses JSON.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] with the line and column of the bad value.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        serde_json::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))
    }

    /// Builds the set on the real clock, its policies flipping `degrader`'s switches.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] of any SLO, composite or policy.
    pub fn build(&self, degrader: &Degrader) -> Result<SloSet, ConfigError> {
        self.build_with(degrader, &Clock::new(), SystemTime::now())
    }

    /// Builds the set on `clock`, whose current reading stands for `now` (for tests).
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_with(
        &self,
        degrader: &Degrader,
        clock: &Clock,
        now: SystemTime,
    ) -> Result<SloSet, ConfigError> {
        let mut set = SloSet::builder();
        for slo in &self.slo {
            set = set.slo(slo.builder()?.clock(clock.clone()).start_at(now).build()?);
        }
        for composite in &self.composite {
            set = set.composite(composite.clone());
        }
        for policy in &self.policy {
            let trigger = match policy.when.as_deref().unwrap_or("page") {
                "page" => Trigger::Severity(Severity::Page),
                "ticket" => Trigger::Severity(Severity::Ticket),
                "freeze" => Trigger::Freeze,
                signal => Trigger::Signal(signal.to_owned()),
            };
            let mut built =
                BudgetPolicy::new(degrader, policy.switch.clone(), policy.level).on(trigger);
            if let Some(hold) = policy.hold {
                built = built.hold(hold);
            }
            set = set.policy(policy.slo.clone(), built);
        }
        set.build()
    }
}

impl SloConfig {
    fn builder(&self) -> Result<crate::SloBuilder, ConfigError> {
        let mut builder = Slo::builder(self.name.clone());
        if let Some(service) = &self.service {
            builder = builder.service(service.clone());
        }
        if let Some(objective) = self.objective {
            builder = builder.objective(objective);
        }
        if let Some(period) = &self.period {
            builder = builder.period(parse_period(period)?);
        }
        if let Some(threshold) = self.latency_threshold {
            builder = builder.latency_threshold(threshold);
        }
        if let Some(p) = self.percentile {
            builder = builder.percentile(p.quantile, p.threshold);
        }
        if let Some(d) = self.downtime {
            builder = builder.downtime(d.error_rate, d.min_minutes);
        }
        if let Some(freeze) = self.freeze_below {
            builder = builder.freeze_below(freeze);
        }
        if let Some(windows) = &self.windows {
            builder = builder.windows(windows.clone());
        }
        for window in &self.maintenance {
            let at = |text: &str| {
                humantime::parse_rfc3339_weak(text).map_err(|_| {
                    ConfigError::Parse(format!(
                        "maintenance time {text:?} of SLO {:?} is not RFC 3339",
                        self.name
                    ))
                })
            };
            builder = builder.maintenance(Maintenance::new(at(&window.start)?, at(&window.end)?)?);
        }
        Ok(builder)
    }
}

fn parse_period(text: &str) -> Result<Period, ConfigError> {
    match text {
        "month" => Ok(Period::Month),
        "week" => Ok(Period::Week),
        _ => humantime::parse_duration(text)
            .map(Period::Rolling)
            .map_err(|_| {
                ConfigError::Parse(format!(
                    "period {text:?} is not \"month\", \"week\" or a duration like \"30d\""
                ))
            }),
    }
}
