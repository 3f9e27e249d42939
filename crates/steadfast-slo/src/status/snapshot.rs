//! What a snapshot of the board holds: the types `GET /status.json` serializes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use steadfast_breaker::{Snapshot, State};

use super::{html, Health};
use crate::burn::Severity;
use crate::report::SloReport;

/// Everything the board knew at one moment. Serializes (feature `serde`) as `GET
/// /status.json` shows it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Status {
    /// When the snapshot was taken (RFC 3339, UTC, in JSON).
    #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_time"))]
    pub generated_at: SystemTime,
    /// Whether any SLO asks deploys to wait (its budget is under its freeze threshold).
    pub freeze: bool,
    /// Every service named by a registration, lowest health first.
    pub services: Vec<ServiceStatus>,
    /// Breakers, and the worst keys of each registry: refusing first, then half-open, then
    /// the rest in registration order.
    pub breakers: Vec<BreakerStatus>,
    /// Totals of each keyed registry.
    pub registries: Vec<RegistryStatus>,
    /// Every degradation switch, highest level first.
    pub switches: Vec<SwitchStatus>,
    /// The last [`FLIPS_SHOWN`](super::FLIPS_SHOWN) flips of any switch, newest first.
    pub flips: Vec<FlipStatus>,
    /// Every SLO report, the one in most trouble first.
    pub slos: Vec<SloReport>,
    /// Every cache, in registration order.
    pub caches: Vec<CacheStatus>,
}

impl Status {
    /// The status as a self-contained HTML page (what `GET /` serves, less the link to the
    /// JSON): inline CSS, no script, every name escaped, reloading itself every 5 seconds.
    #[must_use]
    pub fn html(&self) -> String {
        html::render(self, None)
    }
}

/// One service: its health and what it is made of.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ServiceStatus {
    /// The service's name, as registrations and SLO reports give it.
    pub name: String,
    /// Its health score and the parts of it.
    pub health: Health,
    /// SLOs reporting for it.
    pub slos: usize,
    /// Its breakers, each live key of a registry counted.
    pub breakers: usize,
    /// Of those, how many refuse calls (open or forced open).
    pub breakers_open: usize,
    /// The burn-rate signals of its SLOs that fire.
    pub firing: Vec<Firing>,
}

/// A burn-rate signal that fires.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Firing {
    /// The SLO.
    pub slo: String,
    /// The signal (`page_1h`).
    pub signal: String,
    /// Who is told.
    pub severity: Severity,
}

/// One breaker, or one key of a registry.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BreakerStatus {
    /// The breaker's name (a registry's breakers share the template's).
    pub name: String,
    /// The service it was registered under.
    pub service: String,
    /// The key, for a breaker of a registry.
    pub key: Option<String>,
    /// Its state, as [`CircuitBreaker::state`](steadfast_breaker::CircuitBreaker::state) reads it.
    pub state: State,
    /// Failures over calls in the window.
    pub failure_rate: f64,
    /// Slow calls over calls in the window.
    pub slow_call_rate: f64,
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Calls refused since the breaker was built.
    pub rejected: u64,
    /// While open: how long until it probes (half-open).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde::option"))]
    pub retry_after: Option<Duration>,
}

impl BreakerStatus {
    pub(super) fn new(service: &str, key: Option<String>, snapshot: Snapshot) -> Self {
        Self {
            name: snapshot.name,
            service: service.to_owned(),
            key,
            state: snapshot.state,
            failure_rate: snapshot.failure_rate,
            slow_call_rate: snapshot.slow_call_rate,
            calls: snapshot.calls,
            failures: snapshot.failures,
            rejected: snapshot.rejected,
            retry_after: snapshot.retry_after,
        }
    }
}

/// The totals of a keyed registry, whose rows show only its worst keys.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RegistryStatus {
    /// Its breakers' name, read from a live key's breaker: `None` while no key is live.
    pub name: Option<String>,
    /// The service it was registered under.
    pub service: String,
    /// Live (not idle) keys.
    pub keys: usize,
    /// Keys open or forced open.
    pub open: usize,
    /// Keys half-open.
    pub half_open: usize,
    /// Keys shown in [`Status::breakers`].
    pub shown: usize,
}

/// A degradation switch.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SwitchStatus {
    /// The switch's name.
    pub name: String,
    /// Its level: 0 is full service.
    pub level: u8,
}

/// A switch changed level.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FlipStatus {
    /// The switch.
    pub switch: String,
    /// The level it left.
    pub from: u8,
    /// The level it entered.
    pub to: u8,
    /// Who flipped it.
    pub who: String,
    /// Why.
    pub why: String,
    /// Where the flip came from: `code`, `config`, `admin` or `budget`.
    pub source: &'static str,
    /// When (RFC 3339, UTC, in JSON).
    #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_time"))]
    pub at: SystemTime,
}

/// A cache's hits and misses since it was built.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CacheStatus {
    /// The cache's name.
    pub name: String,
    /// The service it was registered under.
    pub service: String,
    /// Lookups answered without waiting for the loader, fresh or stale, over lookups;
    /// `None` before the first lookup.
    pub hit_rate: Option<f64>,
    /// Lookups: fresh answers and misses.
    pub lookups: u64,
    /// Lookups answered fresh, from L1 or L2.
    pub fresh: u64,
    /// Of the fresh answers, those that came from L2.
    pub l2: u64,
    /// Stale values served (those lookups count among the misses too).
    pub stale: u64,
    /// Lookups not answered fresh: loaded, answered stale, or failed.
    pub misses: u64,
}

#[cfg(feature = "serde")]
fn serialize_time<S: serde::Serializer>(
    time: &SystemTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*time))
}

/// `time` as RFC 3339 in UTC to the second (`2025-03-01T14:05:09Z`); times before 1970 read
/// as its first second.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, on the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
