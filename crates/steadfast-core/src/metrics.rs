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
//! | `steadfast_fallback_total` | counter | `fallback`, `reason` | calls answered by a fallback (counted when the fallback is called) |
//! | `steadfast_fallback_failures_total` | counter | `fallback`, `reason` | fallbacks that failed too |
//! | `steadfast_degradation_level` | gauge | `switch` | a degradation switch's level |
//! | `steadfast_degradation_flips_total` | counter | `switch`, `source`, `who` | level changes (`who` cut to 64 bytes; the free-text `why` is in the flip's event, not a label) |
//! | `steadfast_degradation_reload_failures_total` | counter | none | config files refused whole |
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

/// Counter: calls answered by a fallback, counted when the fallback is called.
pub const FALLBACKS: &str = "steadfast_fallback_total";
/// Counter: fallbacks that failed too.
pub const FALLBACK_FAILURES: &str = "steadfast_fallback_failures_total";
/// Gauge: a degradation switch's level.
pub const DEGRADATION_LEVEL: &str = "steadfast_degradation_level";
/// Counter: level changes of a degradation switch.
pub const DEGRADATION_FLIPS: &str = "steadfast_degradation_flips_total";
/// Counter: degradation config files refused whole.
pub const DEGRADATION_RELOAD_FAILURES: &str = "steadfast_degradation_reload_failures_total";

/// Label: the fallback's name.
pub const LABEL_FALLBACK: &str = "fallback";
/// Label: why a fallback answered.
pub const LABEL_REASON: &str = "reason";
/// Label: a degradation switch's name.
pub const LABEL_SWITCH: &str = "switch";
/// Label: where a flip came from (`code`, `config`, `admin`, `budget`).
pub const LABEL_SOURCE: &str = "source";
/// Label: who flipped a switch.
pub const LABEL_WHO: &str = "who";

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
    describe_counter!(
        FALLBACKS,
        "Answers given by a fallback instead of the inner service."
    );
    describe_counter!(FALLBACK_FAILURES, "Fallbacks that failed too.");
    describe_gauge!(
        DEGRADATION_LEVEL,
        "Degradation switch level: 0 full service, higher sheds more."
    );
    describe_counter!(DEGRADATION_FLIPS, "Level changes of a degradation switch.");
    describe_counter!(
        DEGRADATION_RELOAD_FAILURES,
        "Degradation config files refused whole; the old settings stay."
    );
}
