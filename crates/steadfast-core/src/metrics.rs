//! The names and labels Steadfast exports through the [`metrics`] facade.
//!
//! Install a recorder (for example `metrics-exporter-prometheus`) **before** building layers:
//! each middleware registers its handles once, when it is built, so that the hot path only
//! touches a handle and never hashes a name. Call [`describe`] once to attach help texts.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `steadfast_breaker_state` | gauge | `breaker` | 0 closed, 1 open, 2 half-open, 3 disabled, 4 forced open, 5 metrics only |
//! | `steadfast_breaker_transitions_total` | counter | `breaker`, `from`, `to` | state transitions |
//! | `steadfast_breaker_rejected_total` | counter | `breaker` | calls refused while open or half-open |
//! | `steadfast_breaker_slow_calls_total` | counter | `breaker` | calls slower than the slow-call threshold |
//! | `steadfast_breaker_keys` | gauge | `breaker` | breakers alive in a keyed registry |
//!
//! The breakers of a keyed registry all report under the registry's name, never under their
//! keys: keys come from requests, and metric series must not multiply with them. Their state
//! gauge therefore shows the last transition of any key; per-key states are in the registry's
//! snapshots.
//!
//! ```
//! steadfast_core::metrics::describe();
//! assert_eq!(steadfast_core::metrics::BREAKER_STATE, "steadfast_breaker_state");
//! ```

/// Gauge: the state of a breaker, as a number (see the table above).
pub const BREAKER_STATE: &str = "steadfast_breaker_state";
/// Counter: state transitions of a breaker.
pub const BREAKER_TRANSITIONS: &str = "steadfast_breaker_transitions_total";
/// Counter: calls a breaker refused.
pub const BREAKER_REJECTED: &str = "steadfast_breaker_rejected_total";
/// Counter: calls slower than the breaker's slow-call threshold.
pub const BREAKER_SLOW_CALLS: &str = "steadfast_breaker_slow_calls_total";
/// Gauge: the number of breakers alive in a keyed registry.
pub const BREAKER_KEYS: &str = "steadfast_breaker_keys";

/// Label: the breaker's name.
pub const LABEL_BREAKER: &str = "breaker";
/// Label: the state a transition left.
pub const LABEL_FROM: &str = "from";
/// Label: the state a transition entered.
pub const LABEL_TO: &str = "to";

/// Registers the help text of every Steadfast metric with the installed recorder.
pub fn describe() {
    use ::metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 disabled, 4 forced open, 5 metrics only."
    );
    describe_counter!(BREAKER_TRANSITIONS, "Circuit breaker state transitions.");
    describe_counter!(
        BREAKER_REJECTED,
        "Calls refused by an open or half-open circuit breaker."
    );
    describe_counter!(
        BREAKER_SLOW_CALLS,
        "Calls slower than the circuit breaker's slow-call threshold."
    );
    describe_gauge!(BREAKER_KEYS, "Breakers alive in a keyed breaker registry.");
}
