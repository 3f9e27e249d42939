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
//! | `steadfast_cache_hits_total` | counter | `cache`, `tier` (`l1`, `l2`) | fresh answers from a tier |
//! | `steadfast_cache_misses_total` | counter | `cache`, `tier` | lookups a tier could not answer fresh |
//! | `steadfast_cache_stale_total` | counter | `cache`, `why` (`revalidate`, `error`) | stale answers served |
//! | `steadfast_cache_loads_total` | counter | `cache`, `outcome` (`ok`, `error`, `timeout`, `panic`) | loader runs |
//! | `steadfast_cache_load_seconds` | histogram | `cache` | loader run time, seconds |
//! | `steadfast_cache_evictions_total` | counter | `cache`, `cause` (`size`, `expired`) | L1 entries evicted |
//! | `steadfast_cache_invalidations_sent_total` | counter | `cache` | writes and deletes told to other instances |
//! | `steadfast_cache_invalidations_received_total` | counter | `cache` | such notices applied to this instance's L1 |
//! | `steadfast_cache_corrupt_total` | counter | `cache` | L2 entries or notices that did not decode (read as misses) |
//! | `steadfast_cache_remote_errors_total` | counter | `cache` | L2 calls that failed, timed out or were refused by its breaker |
//! | `steadfast_cache_resyncs_total` | counter | `cache` | times L1 was marked for revalidation after the invalidation feed reconnected |
//! | `steadfast_slo_events_total` | counter | `slo` | events the SLO counted (calls; minutes with calls for a latency SLO), maintenance excluded |
//! | `steadfast_slo_errors_total` | counter | `slo` | the bad ones among them |
//! | `steadfast_slo_downtime_minutes_total` | counter | `slo` | minutes counted down (in runs of at least the minimum length) |
//! | `steadfast_slo_budget_remaining_ratio` | gauge | `slo` | error budget left over the period: 1 untouched, 0 spent, negative overspent |
//! | `steadfast_slo_burn_rate` | gauge | `slo`, `window` (`5m`, `1h`, ...) | budget burn rate over a window: 1 spends the budget exactly over the period |
//! | `steadfast_slo_signal` | gauge | `slo`, `signal`, `severity` (`page`, `ticket`) | 1 while a burn-rate signal fires |
//! | `steadfast_slo_signal_changes_total` | counter | `slo`, `signal` (or `freeze`), `to` (`firing`, `clear`) | signal changes, counted the moment an evaluation sees them |
//! | `steadfast_slo_latency_seconds` | gauge | `slo`, `quantile` | a latency SLO's quantile over the last five minutes, seconds |
//! | `steadfast_slo_freeze` | gauge | none | 1 while some SLO's budget left is under its freeze threshold: deploys should wait |
//! | `steadfast_slo_health_score` | gauge | `service` | a service's health, 0 to 100 (see the status board) |
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

/// Counter: fresh answers from a cache tier.
pub const CACHE_HITS: &str = "steadfast_cache_hits_total";
/// Counter: lookups a cache tier could not answer fresh.
pub const CACHE_MISSES: &str = "steadfast_cache_misses_total";
/// Counter: stale answers a cache served.
pub const CACHE_STALE: &str = "steadfast_cache_stale_total";
/// Counter: loader runs of a cache.
pub const CACHE_LOADS: &str = "steadfast_cache_loads_total";
/// Histogram: loader run time, in seconds.
pub const CACHE_LOAD_SECONDS: &str = "steadfast_cache_load_seconds";
/// Counter: L1 entries evicted.
pub const CACHE_EVICTIONS: &str = "steadfast_cache_evictions_total";
/// Counter: invalidation notices sent to other instances.
pub const CACHE_INVALIDATIONS_SENT: &str = "steadfast_cache_invalidations_sent_total";
/// Counter: invalidation notices received and applied.
pub const CACHE_INVALIDATIONS_RECEIVED: &str = "steadfast_cache_invalidations_received_total";
/// Counter: L2 entries or notices that did not decode.
pub const CACHE_CORRUPT: &str = "steadfast_cache_corrupt_total";
/// Counter: L2 calls that failed, timed out or were refused by the tier's breaker.
pub const CACHE_REMOTE_ERRORS: &str = "steadfast_cache_remote_errors_total";
/// Counter: L1 marked for revalidation after the invalidation feed reconnected.
pub const CACHE_RESYNCS: &str = "steadfast_cache_resyncs_total";

/// Counter: events an SLO counted, maintenance excluded.
pub const SLO_EVENTS: &str = "steadfast_slo_events_total";
/// Counter: bad events an SLO counted.
pub const SLO_ERRORS: &str = "steadfast_slo_errors_total";
/// Counter: minutes an SLO counted down.
pub const SLO_DOWNTIME_MINUTES: &str = "steadfast_slo_downtime_minutes_total";
/// Gauge: the error budget left over the period, a fraction.
pub const SLO_BUDGET_REMAINING: &str = "steadfast_slo_budget_remaining_ratio";
/// Gauge: the budget burn rate over a window.
pub const SLO_BURN_RATE: &str = "steadfast_slo_burn_rate";
/// Gauge: 1 while a burn-rate signal fires.
pub const SLO_SIGNAL: &str = "steadfast_slo_signal";
/// Counter: signal changes.
pub const SLO_SIGNAL_CHANGES: &str = "steadfast_slo_signal_changes_total";
/// Gauge: a latency SLO's quantile over the last five minutes, in seconds.
pub const SLO_LATENCY: &str = "steadfast_slo_latency_seconds";
/// Gauge: 1 while deploys should wait for some SLO's budget.
pub const SLO_FREEZE: &str = "steadfast_slo_freeze";
/// Gauge: a service's health score, 0 to 100.
pub const SLO_HEALTH_SCORE: &str = "steadfast_slo_health_score";

/// Label: the SLO's name.
pub const LABEL_SLO: &str = "slo";
/// Label: a burn-rate signal's name.
pub const LABEL_SIGNAL: &str = "signal";
/// Label: a signal's severity (`page`, `ticket`).
pub const LABEL_SEVERITY: &str = "severity";
/// Label: a window's length (`5m`, `1h`).
pub const LABEL_WINDOW: &str = "window";
/// Label: a quantile (`0.95`).
pub const LABEL_QUANTILE: &str = "quantile";
/// Label: a service's name.
pub const LABEL_SERVICE: &str = "service";

/// Label: the cache's name.
pub const LABEL_CACHE: &str = "cache";
/// Label: a cache tier (`l1`, `l2`).
pub const LABEL_TIER: &str = "tier";
/// Label: why a stale answer was served (`revalidate`, `error`).
pub const LABEL_WHY: &str = "why";
/// Label: how a loader run ended.
pub const LABEL_OUTCOME: &str = "outcome";
/// Label: why an entry was evicted.
pub const LABEL_CAUSE: &str = "cause";

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
    describe_counter!(CACHE_HITS, "Fresh answers from a cache tier.");
    describe_counter!(CACHE_MISSES, "Lookups a cache tier could not answer fresh.");
    describe_counter!(CACHE_STALE, "Stale answers a cache served, by why.");
    describe_counter!(CACHE_LOADS, "Cache loader runs, by outcome.");
    ::metrics::describe_histogram!(
        CACHE_LOAD_SECONDS,
        ::metrics::Unit::Seconds,
        "Cache loader run time."
    );
    describe_counter!(
        CACHE_EVICTIONS,
        "In-process cache entries evicted, by cause."
    );
    describe_counter!(
        CACHE_INVALIDATIONS_SENT,
        "Cache writes and deletes told to other instances."
    );
    describe_counter!(
        CACHE_INVALIDATIONS_RECEIVED,
        "Cache invalidation notices from other instances, applied."
    );
    describe_counter!(
        CACHE_CORRUPT,
        "Shared-tier cache entries or notices that did not decode; read as misses."
    );
    describe_counter!(
        CACHE_REMOTE_ERRORS,
        "Shared-tier cache calls that failed, timed out or were refused by its breaker."
    );
    describe_counter!(
        CACHE_RESYNCS,
        "In-process caches marked for revalidation after their invalidation feed reconnected."
    );
    describe_counter!(
        SLO_EVENTS,
        "Events an SLO counted (calls, or minutes with calls for a latency SLO), maintenance excluded."
    );
    describe_counter!(SLO_ERRORS, "Bad events an SLO counted.");
    describe_counter!(SLO_DOWNTIME_MINUTES, "Minutes an SLO counted down.");
    describe_gauge!(
        SLO_BUDGET_REMAINING,
        "Error budget left over the SLO's period: 1 untouched, 0 spent, negative overspent."
    );
    describe_gauge!(
        SLO_BURN_RATE,
        "Error budget burn rate over a window: 1 spends the budget exactly over the period."
    );
    describe_gauge!(SLO_SIGNAL, "1 while a burn-rate signal fires.");
    describe_counter!(SLO_SIGNAL_CHANGES, "Burn-rate signal and freeze changes.");
    describe_gauge!(
        SLO_LATENCY,
        ::metrics::Unit::Seconds,
        "A latency SLO's quantile over the last five minutes."
    );
    describe_gauge!(
        SLO_FREEZE,
        "1 while some SLO's error budget is nearly spent: deploys should wait."
    );
    describe_gauge!(SLO_HEALTH_SCORE, "A service's health score, 0 to 100.");
}
