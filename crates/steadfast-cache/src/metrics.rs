//! The cache's metric handles, registered once when the cache is built.

use metrics::{Counter, Histogram, Label};
use steadfast_core::metrics as names;

#[derive(Clone)]
pub(crate) struct Metrics {
    pub(crate) hits_l1: Counter,
    pub(crate) hits_l2: Counter,
    pub(crate) misses_l1: Counter,
    pub(crate) misses_l2: Counter,
    pub(crate) stale_revalidate: Counter,
    pub(crate) stale_error: Counter,
    pub(crate) loads_ok: Counter,
    pub(crate) loads_error: Counter,
    pub(crate) loads_timeout: Counter,
    pub(crate) loads_panic: Counter,
    pub(crate) load_seconds: Histogram,
    pub(crate) evicted_size: Counter,
    pub(crate) evicted_expired: Counter,
    pub(crate) sent: Counter,
    pub(crate) received: Counter,
    pub(crate) corrupt: Counter,
    pub(crate) remote_errors: Counter,
    pub(crate) resyncs: Counter,
}

impl Metrics {
    pub(crate) fn new(cache: &str) -> Self {
        let base = || vec![Label::new(names::LABEL_CACHE, cache.to_owned())];
        let with = |name: &'static str, value: &'static str| {
            let mut labels = base();
            labels.push(Label::new(name, value));
            labels
        };
        let counter = |name: &'static str, labels: Vec<Label>| metrics::counter!(name, labels);
        Self {
            hits_l1: counter(names::CACHE_HITS, with(names::LABEL_TIER, "l1")),
            hits_l2: counter(names::CACHE_HITS, with(names::LABEL_TIER, "l2")),
            misses_l1: counter(names::CACHE_MISSES, with(names::LABEL_TIER, "l1")),
            misses_l2: counter(names::CACHE_MISSES, with(names::LABEL_TIER, "l2")),
            stale_revalidate: counter(names::CACHE_STALE, with(names::LABEL_WHY, "revalidate")),
            stale_error: counter(names::CACHE_STALE, with(names::LABEL_WHY, "error")),
            loads_ok: counter(names::CACHE_LOADS, with(names::LABEL_OUTCOME, "ok")),
            loads_error: counter(names::CACHE_LOADS, with(names::LABEL_OUTCOME, "error")),
            loads_timeout: counter(names::CACHE_LOADS, with(names::LABEL_OUTCOME, "timeout")),
            loads_panic: counter(names::CACHE_LOADS, with(names::LABEL_OUTCOME, "panic")),
            load_seconds: metrics::histogram!(names::CACHE_LOAD_SECONDS, base()),
            evicted_size: counter(names::CACHE_EVICTIONS, with(names::LABEL_CAUSE, "size")),
            evicted_expired: counter(names::CACHE_EVICTIONS, with(names::LABEL_CAUSE, "expired")),
            sent: counter(names::CACHE_INVALIDATIONS_SENT, base()),
            received: counter(names::CACHE_INVALIDATIONS_RECEIVED, base()),
            corrupt: counter(names::CACHE_CORRUPT, base()),
            remote_errors: counter(names::CACHE_REMOTE_ERRORS, base()),
            resyncs: counter(names::CACHE_RESYNCS, base()),
        }
    }
}
