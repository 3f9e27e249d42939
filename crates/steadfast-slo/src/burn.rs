//! Multi-window, multi-burn-rate signals, as the Google SRE workbook sets them out.

use std::fmt;
use std::time::Duration;

/// How urgent a signal is: who is told when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Severity {
    /// Wake someone: the budget goes in hours at this rate.
    Page,
    /// A ticket for working hours: the budget goes in days.
    Ticket,
}

impl Severity {
    /// The severity in `snake_case`, as labels spell it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One burn-rate signal: it fires while the error budget burns faster than `factor` times the
/// sustainable rate over **both** the long and the short window, and clears as soon as either
/// stops (in practice the short one, which recovers first).
///
/// A burn rate of 1 spends exactly the whole budget over the SLO's period; 14.4 over one hour
/// spends 2 % of a 30-day budget in that hour.
///
/// ```
/// use std::time::Duration;
/// use steadfast_slo::{BurnWindow, Severity};
///
/// let defaults = BurnWindow::defaults();
/// assert_eq!(defaults[0].name, "page_1h");
/// assert_eq!(defaults[0].factor, 14.4);
/// assert_eq!(defaults[0].long, Duration::from_secs(3600));
/// assert_eq!(defaults[0].short, Duration::from_secs(300));
/// assert_eq!(defaults[3].severity, Severity::Ticket);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct BurnWindow {
    /// The signal's name, used in events, metric labels and alert names: `[a-z0-9_]`, at most
    /// 32 bytes.
    pub name: String,
    /// Who is told.
    pub severity: Severity,
    /// The burn rate that must be passed, a multiple of the sustainable rate.
    pub factor: f64,
    /// The long window: the signal is significant (enough budget is spent).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub long: Duration,
    /// The short window: the burn is still going on (the signal clears soon after it stops).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub short: Duration,
}

impl BurnWindow {
    /// A signal named `name`.
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        severity: Severity,
        factor: f64,
        long: Duration,
        short: Duration,
    ) -> Self {
        Self {
            name: name.into(),
            severity,
            factor,
            long,
            short,
        }
    }

    /// The workbook's four: 14.4× over 1 h and 5 min and 6× over 6 h and 30 min (page);
    /// 3× over 1 d and 2 h and 1× over 3 d and 6 h (ticket).
    #[must_use]
    pub fn defaults() -> Vec<BurnWindow> {
        const MIN: u64 = 60;
        const HOUR: u64 = 60 * MIN;
        let w = |name: &str, severity, factor, long: u64, short: u64| {
            BurnWindow::new(
                name,
                severity,
                factor,
                Duration::from_secs(long),
                Duration::from_secs(short),
            )
        };
        vec![
            w("page_1h", Severity::Page, 14.4, HOUR, 5 * MIN),
            w("page_6h", Severity::Page, 6.0, 6 * HOUR, 30 * MIN),
            w("ticket_1d", Severity::Ticket, 3.0, 24 * HOUR, 2 * HOUR),
            w("ticket_3d", Severity::Ticket, 1.0, 72 * HOUR, 6 * HOUR),
        ]
    }
}

/// A window's length as Prometheus and labels write it: `5m`, `1h`, `3d`, `90s`.
#[must_use]
pub fn window_label(window: Duration) -> String {
    let secs = window.as_secs();
    if secs != 0 && secs % 86_400 == 0 {
        format!("{}d", secs / 86_400)
    } else if secs != 0 && secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs != 0 && secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(window_label(Duration::from_secs(300)), "5m");
        assert_eq!(window_label(Duration::from_secs(3600)), "1h");
        assert_eq!(window_label(Duration::from_secs(6 * 3600)), "6h");
        assert_eq!(window_label(Duration::from_secs(3 * 86_400)), "3d");
        assert_eq!(window_label(Duration::from_secs(90)), "90s");
    }
}
