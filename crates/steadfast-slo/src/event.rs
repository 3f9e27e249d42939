//! What an SLO tells its listeners when a signal changes.

use std::sync::Arc;
use std::time::SystemTime;

use crate::burn::Severity;

/// A change of an SLO's signals, delivered to [`Listener`](steadfast_core::Listener)s of the
/// [`SloSet`](crate::SloSet) the moment an evaluation sees it, and counted in
/// `steadfast_slo_signal_changes_total`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SloEvent {
    /// The SLO.
    pub slo: Arc<str>,
    /// What changed.
    pub kind: SloEventKind,
    /// The budget left when it changed (1 untouched, 0 spent).
    pub budget_remaining: f64,
    /// When the evaluation saw it.
    pub at: SystemTime,
}

/// What changed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SloEventKind {
    /// A burn-rate signal started firing.
    Fired {
        /// The signal's name.
        signal: String,
        /// Who is told.
        severity: Severity,
        /// The burn rate over its long window.
        long_rate: f64,
        /// The burn rate over its short window.
        short_rate: f64,
    },
    /// A burn-rate signal stopped firing.
    Cleared {
        /// The signal's name.
        signal: String,
        /// Who was told.
        severity: Severity,
    },
    /// The budget left fell under the freeze threshold: deploys should wait.
    Frozen,
    /// The budget left is back over the freeze threshold.
    Thawed,
}
