//! The cache's statistics reach the `metrics` recorder: hits and misses, loads by outcome and
//! their time, stale answers, evictions, under the names `steadfast_core::metrics` documents.

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use steadfast_cache::TieredCache;
use steadfast_core::Clock;

type Taken = Vec<(metrics_util::CompositeKey, DebugValue)>;

/// Everything recorded so far (a snapshot drains what it reads).
fn take(snapshotter: &Snapshotter) -> Taken {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect()
}

/// The counter `name` with `labels` (and the cache's own label), 0 when never registered.
fn counter(taken: &Taken, name: &str, labels: &[(&str, &str)]) -> u64 {
    taken
        .iter()
        .filter(|(key, _)| {
            let key = key.key();
            key.name() == name
                && key
                    .labels()
                    .any(|label| label.key() == "cache" && label.value() == "stats")
                && labels.iter().all(|(want, value)| {
                    key.labels()
                        .any(|label| label.key() == *want && label.value() == *value)
                })
        })
        .map(|(_, value)| match value {
            DebugValue::Counter(count) => *count,
            DebugValue::Histogram(samples) => samples.len() as u64,
            DebugValue::Gauge(_) => panic!("{name} is a gauge"),
        })
        .sum()
}

#[tokio::test(start_paused = true)]
async fn reads_loads_and_stale_answers_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (clock, mock) = Clock::mock();
    // Handles are registered when the cache is built: later increments reach this recorder
    // from any thread.
    let cache: TieredCache<u64, String> = metrics::with_local_recorder(&recorder, || {
        TieredCache::builder("stats")
            .ttl(Duration::from_secs(10))
            .stale_if_error(Duration::from_secs(100))
            .max_capacity(10)
            .clock(clock)
            .build()
            .expect("a valid cache")
    });
    let ok = || async { Ok::<_, std::io::Error>("v".to_owned()) };
    let fail = || async { Err::<String, _>(std::io::Error::other("down")) };

    cache.get_with(1, ok).await.expect("loaded");
    cache.get_with(1, ok).await.expect("hit");
    cache.get_with(1, ok).await.expect("hit");
    mock.advance(Duration::from_secs(11));
    assert!(cache.get_with(1, fail).await.expect("stale").is_stale());
    assert!(cache.get_with(2, fail).await.is_err());

    let taken = take(&snapshotter);
    let count = |name: &str, labels: &[(&str, &str)]| counter(&taken, name, labels);
    assert_eq!(count("steadfast_cache_load_seconds", &[]), 3);
    assert_eq!(count("steadfast_cache_hits_total", &[("tier", "l1")]), 2);
    assert_eq!(count("steadfast_cache_misses_total", &[("tier", "l1")]), 3);
    assert_eq!(
        count("steadfast_cache_loads_total", &[("outcome", "ok")]),
        1
    );
    assert_eq!(
        count("steadfast_cache_loads_total", &[("outcome", "error")]),
        2
    );
    assert_eq!(count("steadfast_cache_stale_total", &[("why", "error")]), 1);

    // A flood of keys past the capacity: evictions are counted by cause.
    for key in 100..1_100 {
        cache.get_with(key, ok).await.expect("loaded");
    }
    for _ in 0..64 {
        let _ = cache.peek(&100);
    }
    let taken = take(&snapshotter);
    assert!(
        counter(
            &taken,
            "steadfast_cache_evictions_total",
            &[("cause", "size")]
        ) > 0
    );
}
