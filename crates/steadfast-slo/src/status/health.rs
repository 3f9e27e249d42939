//! One number per service, 0 to 100, to rank the status page: who is hurting most.

use steadfast_breaker::State;

use crate::burn::Severity;
use crate::report::SloReport;

/// Weight of the budget part.
const BUDGET_WEIGHT: f64 = 0.4;
/// Weight of the breaker part.
const BREAKER_WEIGHT: f64 = 0.3;
/// Weight of the signal part.
const SIGNAL_WEIGHT: f64 = 0.3;

/// A service's health: the score and the three parts it is made of (see [`health_score`] for
/// the formula).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Health {
    /// 0 to 100, one decimal: lower is worse.
    pub score: f64,
    /// The least budget left among the service's SLOs, 0 to 1.
    pub budget: f64,
    /// The mean worth of the service's breakers, 0 to 1.
    pub breakers: f64,
    /// 0 with a page signal firing, 0.5 with only ticket signals, 1 with none.
    pub signals: f64,
}

impl Health {
    /// The health of a service with these SLO reports and these breaker worths (each 0 to 1,
    /// see [`breaker_worth`]).
    pub fn of<'a>(
        slos: impl IntoIterator<Item = &'a SloReport>,
        breakers: impl IntoIterator<Item = f64>,
    ) -> Self {
        let mut budget: f64 = 1.0;
        let mut signals: f64 = 1.0;
        for report in slos {
            budget = budget.min(unit(report.budget.remaining));
            for signal in report.signals.iter().filter(|signal| signal.firing) {
                signals = signals.min(match signal.severity {
                    Severity::Page => 0.0,
                    Severity::Ticket => 0.5,
                });
            }
        }
        let (sum, count) = breakers
            .into_iter()
            .fold((0.0, 0_u32), |(sum, count), worth| {
                (sum + unit(worth), count + 1)
            });
        let breakers = if count == 0 {
            1.0
        } else {
            sum / f64::from(count)
        };
        Self::from_parts(budget, breakers, signals)
    }

    /// The health made of three parts, each clamped to `0..=1`.
    #[must_use]
    pub fn from_parts(budget: f64, breakers: f64, signals: f64) -> Self {
        let (budget, breakers, signals) = (unit(budget), unit(breakers), unit(signals));
        let blend = BUDGET_WEIGHT * budget + BREAKER_WEIGHT * breakers + SIGNAL_WEIGHT * signals;
        Self {
            score: (blend * 1000.0).round() / 10.0,
            budget,
            breakers,
            signals,
        }
    }
}

/// What one breaker adds to a service's health: 1 when calls pass (closed, disabled,
/// metrics-only), 0.5 while it probes (half-open), 0 when it refuses (open, forced open).
#[must_use]
pub const fn breaker_worth(state: State) -> f64 {
    match state {
        State::Closed | State::Disabled | State::MetricsOnly => 1.0,
        State::HalfOpen => 0.5,
        State::Open | State::ForcedOpen => 0.0,
    }
}

/// The health score, 0 to 100, of a service with these SLO reports and breakers in these
/// states ([`Health::of`] gives the parts too).
///
/// The score blends three parts, each from 0 (as bad as it gets) to 1 (fine):
///
/// - **budget**: the least error budget left among the service's SLOs, each clamped to
///   `0..=1` (an overspent budget counts as 0, a reading that is not a number as 0 too);
///   1 for a service with no SLO.
/// - **breakers**: the mean over the service's breakers of 1 for closed, disabled and
///   metrics-only, 0.5 for half-open, 0 for open and forced open; 1 for a service with no
///   breaker. A keyed registry counts as one breaker, worth the mean over its keys.
/// - **signals**: 0 if a page signal of one of its SLOs fires, 0.5 if only ticket signals
///   fire, 1 if none does.
///
/// `score = 100 × (0.4 × budget + 0.3 × breakers + 0.3 × signals)`, rounded to one decimal.
///
/// The budget weighs most because it is what the users felt over the whole period; breakers and
/// signals say what is going wrong now.
///
/// ```
/// use steadfast_breaker::State;
/// use steadfast_slo::status::{health_score, Health};
///
/// // No SLO, one breaker open and one closed: budget 1, breakers 0.5, signals 1.
/// assert_eq!(health_score([], [State::Open, State::Closed]), 85.0);
/// assert_eq!(Health::from_parts(0.25, 1.0, 0.5).score, 55.0);
/// ```
pub fn health_score<'a>(
    slos: impl IntoIterator<Item = &'a SloReport>,
    breakers: impl IntoIterator<Item = State>,
) -> f64 {
    Health::of(slos, breakers.into_iter().map(breaker_worth)).score
}

/// `value` clamped to `0..=1`; a value that is not a number counts as 0, the worst, so that
/// a broken reading never makes a service look healthier than it is.
fn unit(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::{Budget, SignalReport};

    /// A report with `remaining` budget left and these signals firing.
    pub(crate) fn report(
        name: &str,
        service: &str,
        remaining: f64,
        firing: &[Severity],
    ) -> SloReport {
        SloReport {
            name: name.to_owned(),
            service: Some(service.to_owned()),
            kind: "events",
            objective: 0.999,
            period: "30d rolling".to_owned(),
            good: 9990,
            total: 10_000,
            attained: Some(0.999),
            budget: Budget {
                allowed: 10.0,
                spent: 0,
                remaining_events: remaining * 10.0,
                remaining,
            },
            burn_rates: Vec::new(),
            signals: firing
                .iter()
                .enumerate()
                .map(|(i, &severity)| SignalReport {
                    name: format!("{}_{i}", severity.as_str()),
                    severity,
                    firing: true,
                    factor: 14.4,
                    long_rate: 20.0,
                    short_rate: 30.0,
                    for_duration: None,
                })
                .collect(),
            downtime: None,
            latency: None,
            freeze: remaining < 0.1,
        }
    }

    #[test]
    fn nothing_registered_is_full_health() {
        assert_eq!(health_score([], []), 100.0);
    }

    #[test]
    fn breakers_alone() {
        // 100 × (0.4 + 0.3 × 0.5 + 0.3) = 85
        assert_eq!(health_score([], [State::Open, State::Closed]), 85.0);
        // (1 + 0.5 + 0 + 1) / 4 = 0.625 → 100 × (0.4 + 0.1875 + 0.3) = 88.75 → 88.8
        assert_eq!(
            health_score(
                [],
                [
                    State::MetricsOnly,
                    State::HalfOpen,
                    State::ForcedOpen,
                    State::Disabled
                ]
            ),
            88.8
        );
        assert_eq!(health_score([], [State::Open]), 70.0);
    }

    #[test]
    fn the_least_budget_counts_and_is_clamped() {
        let a = report("a", "s", 0.8, &[]);
        let b = report("b", "s", 0.25, &[]);
        // 100 × (0.4 × 0.25 + 0.3 + 0.3) = 70
        assert_eq!(health_score([&a, &b], []), 70.0);
        let overspent = report("c", "s", -3.0, &[]);
        assert_eq!(health_score([&a, &overspent], []), 60.0);
        let broken = report("d", "s", f64::NAN, &[]);
        assert_eq!(health_score([&broken], []), 60.0);
        let generous = report("e", "s", 7.0, &[]);
        assert_eq!(health_score([&generous], []), 100.0);
    }

    #[test]
    fn a_page_outweighs_a_ticket() {
        let ticket = report("a", "s", 1.0, &[Severity::Ticket]);
        let page = report("b", "s", 1.0, &[Severity::Page]);
        // 100 × (0.4 + 0.3 + 0.3 × 0.5) = 85
        assert_eq!(health_score([&ticket], []), 85.0);
        assert_eq!(health_score([&ticket, &page], []), 70.0);
        assert_eq!(health_score([&page, &ticket], []), 70.0);
    }

    #[test]
    fn all_parts_together() {
        let slo = report("a", "s", 0.5, &[Severity::Ticket, Severity::Ticket]);
        // 100 × (0.4 × 0.5 + 0.3 × 0.5 + 0.3 × 0.5) = 50
        let health = Health::of([&slo], [0.0, 1.0]);
        assert_eq!(health.score, 50.0);
        assert_eq!(
            (health.budget, health.breakers, health.signals),
            (0.5, 0.5, 0.5)
        );
        // 100 × (0.4 × 0.123 + 0.3 × 1/3 + 0.3 × 0) = 4.92 + 10 = 14.92 → 14.9
        let paging = report("b", "s", 0.123, &[Severity::Page]);
        assert_eq!(
            health_score([&paging], [State::Open, State::Open, State::Closed]),
            14.9
        );
    }

    #[test]
    fn parts_are_clamped() {
        let health = Health::from_parts(2.0, -1.0, f64::NAN);
        assert_eq!(
            (health.budget, health.breakers, health.signals),
            (1.0, 0.0, 0.0)
        );
        assert_eq!(health.score, 40.0);
    }
}
