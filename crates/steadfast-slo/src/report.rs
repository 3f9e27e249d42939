//! Point-in-time readings of an SLO: what the status page and the JSON routes show.

use std::time::Duration;

use crate::burn::Severity;

/// What an SLO reads as now. Made by [`Slo::report`](crate::Slo::report).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SloReport {
    /// The SLO's name.
    pub name: String,
    /// The service it belongs to, for grouping on the status page and the health score.
    pub service: Option<String>,
    /// `events` (good calls over calls) or `latency` (good minutes over minutes with traffic,
    /// a minute being good when its quantile is within the threshold).
    pub kind: &'static str,
    /// The objective, a fraction (0.999 for 99.9 %).
    pub objective: f64,
    /// The period, as people say it: `30d rolling`, `calendar month`, `calendar week`.
    pub period: String,
    /// Good events in the period so far (maintenance excluded).
    pub good: u64,
    /// All events in the period so far (maintenance excluded).
    pub total: u64,
    /// Good over total in the period; `None` before the first event.
    pub attained: Option<f64>,
    /// The error budget.
    pub budget: Budget,
    /// The burn rate over every window a signal uses, shortest first.
    pub burn_rates: Vec<BurnRate>,
    /// Every burn-rate signal and whether it fires.
    pub signals: Vec<SignalReport>,
    /// Downtime minutes, when the SLO counts them.
    pub downtime: Option<Downtime>,
    /// The latency quantile, for a latency SLO.
    pub latency: Option<LatencyReport>,
    /// Whether the budget left is under the freeze threshold: deploys should wait.
    pub freeze: bool,
}

/// The error budget of a period: how many bad events the objective allows, and how many are
/// left.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Budget {
    /// Bad events the objective allows over the events so far: `(1 - objective) * total`.
    pub allowed: f64,
    /// Bad events so far.
    pub spent: u64,
    /// `allowed - spent`; negative once overspent.
    pub remaining_events: f64,
    /// `1 - spent / allowed`: 1 untouched, 0 spent, negative overspent. 1 with no events.
    pub remaining: f64,
}

/// The burn rate over one window.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BurnRate {
    /// The window, as Prometheus writes it (`5m`, `1h`).
    pub window: String,
    /// Its length.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub length: Duration,
    /// Bad over total in the window, divided by `1 - objective`; 0 with no events.
    pub rate: f64,
    /// Events in the window.
    pub total: u64,
    /// Bad events in the window.
    pub bad: u64,
}

/// One burn-rate signal's state.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SignalReport {
    /// The signal's name (`page_1h`).
    pub name: String,
    /// Who is told.
    pub severity: Severity,
    /// Whether it fires.
    pub firing: bool,
    /// The factor both windows must pass.
    pub factor: f64,
    /// The burn rate over the long window.
    pub long_rate: f64,
    /// The burn rate over the short window.
    pub short_rate: f64,
    /// How long it has fired, or how long since it cleared; `None` if it never changed.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde::option"))]
    pub for_duration: Option<Duration>,
}

/// Minutes up and down, as SLA reports count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Downtime {
    /// Minutes of the period counted down: in a run of at least the minimum length of minutes
    /// whose error rate passed the threshold.
    pub down_minutes: u64,
    /// Minutes of the period (since the SLO began) neither down nor in maintenance.
    pub up_minutes: u64,
}

/// A latency SLO's quantile.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct LatencyReport {
    /// The quantile (0.95 for p95).
    pub quantile: f64,
    /// The threshold it must stay within.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub threshold: Duration,
    /// The quantile over the last five minutes; `None` without traffic.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde::option"))]
    pub last_5m: Option<Duration>,
    /// The quantile over the last hour; `None` without traffic.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde::option"))]
    pub last_1h: Option<Duration>,
}
