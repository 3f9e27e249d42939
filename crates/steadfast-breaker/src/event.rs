//! Breaker events, to a listener and to `metrics`.

use std::fmt;
use std::time::Duration;

use metrics::{Counter, Gauge};
use steadfast_core::metrics::{
    BREAKER_REJECTED, BREAKER_SLOW_CALLS, BREAKER_STATE, BREAKER_TRANSITIONS, LABEL_BREAKER,
    LABEL_FROM, LABEL_TO,
};
use steadfast_core::Listener;

use crate::State;

/// Something that happened to a breaker.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event<'a> {
    /// The breaker's name.
    pub breaker: &'a str,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to a breaker.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// The breaker changed state.
    Transition {
        /// The state it left.
        from: State,
        /// The state it entered.
        to: State,
    },
    /// A call was refused.
    Rejected {
        /// The state that refused it.
        state: State,
    },
    /// A call took at least the slow-call threshold.
    SlowCall {
        /// How long it took.
        elapsed: Duration,
    },
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            EventKind::Transition { from, to } => {
                write!(f, "breaker {}: {from} -> {to}", self.breaker)
            }
            EventKind::Rejected { state } => {
                write!(f, "breaker {}: call rejected ({state})", self.breaker)
            }
            EventKind::SlowCall { elapsed } => {
                write!(f, "breaker {}: slow call ({elapsed:?})", self.breaker)
            }
        }
    }
}

/// A listener of breaker events; any `Fn(&Event<'_>) + Send + Sync + 'static` is one.
pub type BreakerListener = dyn for<'a> Listener<Event<'a>>;

/// Metric handles, registered once when the breaker is built so that the hot path never
/// hashes a name.
pub(crate) struct Metrics {
    label: String,
    state: Gauge,
    rejected: Counter,
    slow: Counter,
}

impl Metrics {
    /// Registers the handles; `shared` breakers (the keys of a registry) report under one label
    /// and leave the state gauge alone until they change state.
    pub(crate) fn register(label: String, shared: bool) -> Self {
        let metrics = Self {
            state: metrics::gauge!(BREAKER_STATE, LABEL_BREAKER => label.clone()),
            rejected: metrics::counter!(BREAKER_REJECTED, LABEL_BREAKER => label.clone()),
            slow: metrics::counter!(BREAKER_SLOW_CALLS, LABEL_BREAKER => label.clone()),
            label,
        };
        if !shared {
            metrics.state.set(f64::from(State::Closed.as_code()));
        }
        metrics
    }

    #[inline]
    pub(crate) fn rejected(&self) {
        self.rejected.increment(1);
    }

    pub(crate) fn slow_call(&self) {
        self.slow.increment(1);
    }

    pub(crate) fn transition(&self, from: State, to: State) {
        self.state.set(f64::from(to.as_code()));
        metrics::counter!(
            BREAKER_TRANSITIONS,
            LABEL_BREAKER => self.label.clone(),
            LABEL_FROM => from.as_str(),
            LABEL_TO => to.as_str()
        )
        .increment(1);
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}
