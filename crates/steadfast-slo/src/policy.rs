//! Budget policies: the loop closing by itself.

use std::fmt;
use std::time::Duration;

use steadfast_fallback::{Degrader, Flip, Source};

use crate::burn::Severity;
use crate::report::SloReport;

/// What makes a [`BudgetPolicy`] act.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Trigger {
    /// Any signal of this severity fires.
    Severity(Severity),
    /// The signal of this name fires.
    Signal(String),
    /// The freeze signal is raised (the budget is nearly spent).
    Freeze,
}

impl Trigger {
    fn holds(&self, report: &SloReport) -> bool {
        match self {
            Trigger::Severity(severity) => report
                .signals
                .iter()
                .any(|s| s.firing && s.severity == *severity),
            Trigger::Signal(name) => report.signals.iter().any(|s| s.firing && s.name == *name),
            Trigger::Freeze => report.freeze,
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Severity(severity) => write!(f, "a {severity} signal"),
            Trigger::Signal(name) => write!(f, "signal {name}"),
            Trigger::Freeze => f.write_str("the freeze signal"),
        }
    }
}

/// When an SLO's chosen signal fires, set a degradation switch to a level; when it clears and
/// the hold time has passed, set the switch back.
///
/// The flip comes from [`Source::Budget`] and names the SLO, so the degradation history and the
/// `steadfast_degradation_flips_total{source="budget"}` metric say who shed what and why.
///
/// - It only raises: a switch already at or above the level is left alone, and not lowered later.
/// - It does not fight people: if someone changed the switch while the policy held it, the
///   policy lets go without setting it back.
/// - The hold time counts from the flip, so a burn that comes and goes does not flap the switch.
///
/// ```
/// use std::time::Duration;
/// use steadfast_fallback::Degrader;
/// use steadfast_slo::{BudgetPolicy, Severity};
///
/// let degrader = Degrader::new();
/// let policy = BudgetPolicy::new(&degrader, "recommendations", 1)
///     .on_severity(Severity::Page)
///     .hold(Duration::from_secs(600));
/// assert_eq!(policy.switch(), "recommendations");
/// ```
#[derive(Clone)]
pub struct BudgetPolicy {
    pub(crate) degrader: Degrader,
    pub(crate) switch: String,
    pub(crate) level: u8,
    pub(crate) trigger: Trigger,
    pub(crate) hold: Duration,
}

impl BudgetPolicy {
    /// Sets `switch` of `degrader` to `level` while a page signal fires; holds it at least
    /// five minutes.
    #[must_use]
    pub fn new(degrader: &Degrader, switch: impl Into<String>, level: u8) -> Self {
        Self {
            degrader: degrader.clone(),
            switch: switch.into(),
            level,
            trigger: Trigger::Severity(Severity::Page),
            hold: Duration::from_secs(300),
        }
    }

    /// Acts on any signal of `severity`.
    #[must_use]
    pub fn on_severity(mut self, severity: Severity) -> Self {
        self.trigger = Trigger::Severity(severity);
        self
    }

    /// Acts on the signal named `signal`.
    #[must_use]
    pub fn on_signal(mut self, signal: impl Into<String>) -> Self {
        self.trigger = Trigger::Signal(signal.into());
        self
    }

    /// Acts on the freeze signal.
    #[must_use]
    pub fn on_freeze(mut self) -> Self {
        self.trigger = Trigger::Freeze;
        self
    }

    /// Acts on `trigger`.
    #[must_use]
    pub fn on(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// The least time the switch stays set once flipped (default five minutes).
    #[must_use]
    pub fn hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }

    /// The switch's name.
    #[must_use]
    pub fn switch(&self) -> &str {
        &self.switch
    }

    /// The level it sets.
    #[must_use]
    pub fn level(&self) -> u8 {
        self.level
    }

    /// What makes it act.
    #[must_use]
    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }
}

impl fmt::Debug for BudgetPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetPolicy")
            .field("switch", &self.switch)
            .field("level", &self.level)
            .field("trigger", &self.trigger)
            .field("hold", &self.hold)
            .finish()
    }
}

/// A policy bound to an SLO, with what it holds.
pub(crate) struct Bound {
    pub(crate) slo: String,
    pub(crate) policy: BudgetPolicy,
    /// While the policy holds the switch: when it flipped (monotonic ns) and the level it left.
    held: Option<(u64, u8)>,
}

impl Bound {
    pub(crate) fn new(slo: String, policy: BudgetPolicy) -> Self {
        Self {
            slo,
            policy,
            held: None,
        }
    }

    /// While held: the level the switch had before this policy raised it.
    pub(crate) fn held_from(&self) -> Option<u8> {
        self.held.map(|(_, before)| before)
    }

    /// Another policy let go of this switch while this one holds it: its earlier level is the
    /// one to return to.
    pub(crate) fn inherit(&mut self, before: u8) {
        if let Some((_, held)) = &mut self.held {
            *held = (*held).min(before);
        }
    }

    /// Acts on a fresh report; `now` is monotonic nanoseconds. `others_hold` says whether
    /// another policy holds the same switch. Returns the level to hand over when this policy
    /// lets go while another holds it.
    pub(crate) fn step(&mut self, report: &SloReport, now: u64, others_hold: bool) -> Option<u8> {
        let policy = &self.policy;
        let wanted = policy.trigger.holds(report);
        let switch = policy.degrader.switch(&policy.switch).ok()?;
        match self.held {
            None if wanted => {
                if switch.level() >= policy.level {
                    return None;
                }
                let flip = Flip::new(
                    format!("slo:{}", self.slo),
                    format!("{} fires for SLO {}", policy.trigger, self.slo),
                )
                .from_source(Source::Budget);
                // The level the flip left, read in the same step as the write.
                if let Ok(before) = policy.degrader.set(&policy.switch, policy.level, flip) {
                    self.held = Some((now, before));
                }
                None
            }
            Some((since, before)) if !wanted => {
                let hold = u64::try_from(policy.hold.as_nanos()).unwrap_or(u64::MAX);
                if now.saturating_sub(since) < hold {
                    return None;
                }
                self.held = None;
                if others_hold {
                    // Another policy holds it higher or as high: it returns it, to our level.
                    return Some(before);
                }
                if switch.level() == policy.level {
                    let flip = Flip::new(
                        format!("slo:{}", self.slo),
                        format!("{} cleared for SLO {}", policy.trigger, self.slo),
                    )
                    .from_source(Source::Budget);
                    let _ = policy.degrader.set(&policy.switch, before, flip);
                }
                None
            }
            _ => None,
        }
    }
}
