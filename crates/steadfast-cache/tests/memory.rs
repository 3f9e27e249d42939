//! The cache without a shared tier: single-flight, the stale windows, negative entries, jitter,
//! load timeouts, panics, cancelled callers, superseded loads, batch reads and bad settings.
//! Freshness runs on a mock clock; load timeouts on Tokio's paused time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use steadfast_breaker::{CircuitBreaker, State};
use steadfast_cache::{Admit, BuildError, Error, Source, Stale, Status, TieredCache};
use steadfast_core::{Clock, MockClock, Reason};
use tokio::sync::Notify;

#[derive(Debug, PartialEq, Eq)]
struct DbError(&'static str);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for DbError {}

const TTL: Duration = Duration::from_secs(60);

fn cache(
    configure: impl FnOnce(
        steadfast_cache::Builder<u64, String>,
    ) -> steadfast_cache::Builder<u64, String>,
) -> (TieredCache<u64, String>, MockClock) {
    let (clock, mock) = Clock::mock();
    let cache = configure(TieredCache::builder("test").ttl(TTL).clock(clock))
        .build()
        .expect("a valid cache");
    (cache, mock)
}

/// A loader answering `value`, counting its calls.
fn counted(
    calls: &Arc<AtomicUsize>,
    value: &'static str,
) -> impl FnOnce() -> std::future::Ready<Result<String, DbError>> + Send + 'static {
    let calls = calls.clone();
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(value.to_owned()))
    }
}

/// A loader that counts its call, then answers `value` once `gate` is notified.
fn gated(
    calls: &Arc<AtomicUsize>,
    gate: &Arc<Notify>,
    value: &'static str,
) -> impl FnOnce() -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<String, DbError>> + Send>,
> + Send
       + 'static {
    let (calls, gate) = (calls.clone(), gate.clone());
    move || {
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            gate.notified().await;
            Ok(value.to_owned())
        })
    }
}

fn failing() -> impl FnOnce() -> std::future::Ready<Result<String, DbError>> + Send + 'static {
    || std::future::ready(Err(DbError("database down")))
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_misses_run_the_loader_once() {
    let (cache, _clock) = cache(|builder| builder);
    let calls = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..1000 {
        let cache = cache.clone();
        let calls = calls.clone();
        readers.push(tokio::spawn(async move {
            cache
                .get_with(7, move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, DbError>("row 7".to_owned())
                })
                .await
        }));
    }
    for reader in readers {
        let cached = reader.await.expect("no panic").expect("a value");
        assert_eq!(*cached, "row 7");
        assert!(!cached.is_stale());
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.peek(&7).as_deref(), Some("row 7"));
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_goes_away_does_not_cancel_the_load() {
    let (cache, _clock) = cache(|builder| builder);
    let gate = Arc::new(Notify::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let loader = gated(&calls, &gate, "loaded");
    let first = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_with(1, loader).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let second = tokio::spawn({
        let cache = cache.clone();
        let calls = calls.clone();
        async move { cache.get_with(1, counted(&calls, "second loader")).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    // The client of the first caller disconnects.
    first.abort();
    assert!(first.await.is_err_and(|error| error.is_cancelled()));
    gate.notify_one();
    let answer = second.await.expect("no panic").expect("a value");
    assert_eq!(
        *answer, "loaded",
        "the second caller got the first caller's load"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.peek(&1).as_deref(), Some("loaded"));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_loader_is_cut_off_at_the_load_timeout() {
    let (cache, clock) = cache(|builder| {
        builder
            .load_timeout(Duration::from_secs(2))
            .stale_if_error(Duration::from_secs(600))
    });
    let hang = || std::future::pending::<Result<String, DbError>>();
    let started = tokio::time::Instant::now();
    let error = cache.get_with(1, hang).await.expect_err("nothing to serve");
    assert!(matches!(error, Error::TimedOut(after) if after == Duration::from_secs(2)));
    assert_eq!(error.reason(), Reason::Timeout);
    assert_eq!(started.elapsed(), Duration::from_secs(2));

    // With a stale value in hand, the timeout answers it, marked.
    let calls = Arc::new(AtomicUsize::new(0));
    cache
        .get_with(2, counted(&calls, "old"))
        .await
        .expect("loaded");
    clock.advance(TTL + Duration::from_secs(1));
    let stale = cache.get_with(2, hang).await.expect("stale-if-error");
    assert_eq!(*stale, "old");
    assert_eq!(
        stale.status(),
        Status::Stale(Stale::LoadFailed(Reason::Timeout))
    );
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_serves_the_old_value_marked_then_gives_up_at_its_end() {
    let (cache, clock) = cache(|builder| builder.stale_if_error(Duration::from_secs(300)));
    let calls = Arc::new(AtomicUsize::new(0));
    cache
        .get_with(1, counted(&calls, "v1"))
        .await
        .expect("loaded");

    clock.advance(TTL + Duration::from_secs(1));
    let stale = cache.get_with(1, failing()).await.expect("stale-if-error");
    assert_eq!(*stale, "v1");
    assert!(stale.is_stale());
    assert_eq!(
        stale.status(),
        Status::Stale(Stale::LoadFailed(Reason::Error))
    );
    assert_eq!(stale.source(), Source::L1);

    // For a second after the failure, reads answer the stale value without loading again.
    let quiet = cache
        .get_with(1, counted(&calls, "not yet"))
        .await
        .expect("stale");
    assert_eq!(
        (quiet.as_str(), quiet.status()),
        ("v1", Status::Stale(Stale::LoadFailed(Reason::Error)))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Recovered: the load succeeds and the entry is fresh again.
    clock.advance(Duration::from_secs(1));
    let fresh = cache
        .get_with(1, counted(&calls, "v2"))
        .await
        .expect("loaded");
    assert_eq!((fresh.as_str(), fresh.status()), ("v2", Status::Fresh));

    // Past the stale-if-error window, a failure is an error.
    clock.advance(TTL + Duration::from_secs(301));
    let error = cache
        .get_with(1, failing())
        .await
        .expect_err("too old to serve");
    assert!(matches!(&error, Error::Load(inner) if **inner == DbError("database down")));
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_in_the_loader_is_told_as_breaker_open() {
    let (cache, clock) = cache(|builder| builder.stale_if_error(Duration::from_secs(300)));
    let calls = Arc::new(AtomicUsize::new(0));
    cache
        .get_with(1, counted(&calls, "v1"))
        .await
        .expect("loaded");
    clock.advance(TTL + Duration::from_secs(1));

    let breaker = CircuitBreaker::builder("db")
        .initial_state(State::ForcedOpen)
        .build()
        .expect("a breaker");
    let rejected = breaker.try_acquire().expect_err("forced open");
    let stale = cache
        .get_with(1, move || async move { Err::<String, _>(rejected) })
        .await
        .expect("stale-if-error");
    assert_eq!(
        stale.status(),
        Status::Stale(Stale::LoadFailed(Reason::BreakerOpen))
    );

    // Boxed errors are read through their source chain.
    let rejected = breaker.try_acquire().expect_err("forced open");
    let stale = cache
        .get_with(1, move || async move {
            Err::<String, Box<dyn std::error::Error + Send + Sync>>(Box::new(rejected))
        })
        .await
        .expect("stale-if-error");
    assert_eq!(
        stale.status(),
        Status::Stale(Stale::LoadFailed(Reason::BreakerOpen))
    );
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let (cache, clock) = cache(|builder| builder.stale_while_revalidate(Duration::from_secs(30)));
    let calls = Arc::new(AtomicUsize::new(0));
    cache
        .get_with(1, counted(&calls, "v1"))
        .await
        .expect("loaded");
    clock.advance(TTL + Duration::from_secs(5));

    let gate = Arc::new(Notify::new());
    let slow = gated(&calls, &gate, "v2");
    let stale = cache.get_with(1, slow).await.expect("served stale");
    assert_eq!(*stale, "v1");
    assert_eq!(stale.status(), Status::Stale(Stale::Revalidating));
    // Readers meanwhile get the stale value too, without another load.
    let again = cache
        .get_with(1, counted(&calls, "v3"))
        .await
        .expect("served stale");
    assert_eq!(*again, "v1");
    tokio::task::yield_now().await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "v1 and one refresh");

    gate.notify_one();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let fresh = cache
        .get_with(1, counted(&calls, "v4"))
        .await
        .expect("fresh");
    assert_eq!((fresh.as_str(), fresh.status()), ("v2", Status::Fresh));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn not_found_is_cached_for_the_negative_ttl_only() {
    let (clock, mock) = Clock::mock();
    let cache: TieredCache<u64, Option<String>> = TieredCache::builder("negative")
        .ttl(TTL)
        .negative_ttl(Duration::from_secs(5))
        .admit(Admit::option)
        .clock(clock)
        .build()
        .expect("a valid cache");
    let calls = Arc::new(AtomicUsize::new(0));
    let missing = || {
        let calls = calls.clone();
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<Option<String>, DbError>(None)
        }
    };
    for _ in 0..10 {
        assert_eq!(*cache.get_with(9, missing()).await.expect("loaded"), None);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one lookup per negative TTL"
    );
    mock.advance(Duration::from_secs(6));
    cache.get_with(9, missing()).await.expect("loaded");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Without a negative TTL, "not found" is never kept.
    let (clock, _mock) = Clock::mock();
    let plain: TieredCache<u64, Option<String>> = TieredCache::builder("plain")
        .admit(Admit::option)
        .clock(clock)
        .build()
        .expect("a valid cache");
    calls.store(0, Ordering::SeqCst);
    for _ in 0..3 {
        plain.get_with(9, missing()).await.expect("loaded");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_predicate_decides_what_is_kept() {
    let (cache, _clock) = cache(|builder| {
        builder.admit(|value: &String| {
            if value.is_empty() {
                Admit::Skip
            } else {
                Admit::Value
            }
        })
    });
    let calls = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let answer = cache
            .get_with(1, counted(&calls, ""))
            .await
            .expect("loaded");
        assert_eq!(answer.source(), Source::Loader);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "empty values are answered, not kept"
    );
    cache
        .get_with(2, counted(&calls, "kept"))
        .await
        .expect("loaded");
    cache
        .get_with(2, counted(&calls, "kept"))
        .await
        .expect("hit");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_expiries_below_the_ttl() {
    let (cache, clock) = cache(|builder| builder.jitter(0.5));
    let calls = Arc::new(AtomicUsize::new(0));
    for key in 0..200 {
        cache
            .get_with(key, counted(&calls, "v"))
            .await
            .expect("loaded");
    }
    // Each TTL is between 30 s and 60 s; at 45 s about half are still fresh.
    clock.advance(Duration::from_secs(45));
    let fresh = (0..200).filter(|key| cache.peek(key).is_some()).count();
    assert!((20..180).contains(&fresh), "{fresh} of 200 fresh at 45 s");
    clock.advance(Duration::from_secs(15));
    assert_eq!((0..200).filter(|key| cache.peek(key).is_some()).count(), 0);
    // Never beyond the TTL, never below half of it.
    let (cache, clock) = self::cache(|builder| builder.jitter(0.5));
    for key in 0..200 {
        cache
            .get_with(key, counted(&calls, "v"))
            .await
            .expect("loaded");
    }
    clock.advance(Duration::from_secs(29));
    assert_eq!(
        (0..200).filter(|key| cache.peek(key).is_some()).count(),
        200
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_loader_fails_its_callers_and_leaves_the_key_usable() {
    let (cache, _clock) = cache(|builder| builder);
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_with(1, || async {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        if std::hint::black_box(true) {
                            panic!("loader bug");
                        }
                        Ok::<String, DbError>(String::new())
                    })
                    .await
            })
        })
        .collect();
    for waiter in waiters {
        let answer = waiter.await.expect("the caller does not panic");
        assert!(matches!(answer, Err(Error::Panicked)));
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let answer = cache
        .get_with(1, counted(&calls, "ok"))
        .await
        .expect("loaded");
    assert_eq!(*answer, "ok");
}

#[tokio::test(start_paused = true)]
async fn a_write_during_a_load_wins_over_the_loaded_value() {
    let (cache, _clock) = cache(|builder| builder);
    let gate = Arc::new(Notify::new());
    let slow = gated(&Arc::default(), &gate, "read before the write");
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_with(1, slow).await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    cache
        .insert(1, "written".to_owned())
        .await
        .expect("memory only");
    gate.notify_one();
    let answer = reader.await.expect("no panic").expect("a value");
    assert_eq!(*answer, "read before the write", "the waiter gets its load");
    assert_eq!(
        cache.peek(&1).as_deref(),
        Some("written"),
        "but the write stays"
    );

    cache.invalidate(&1).await.expect("memory only");
    assert_eq!(cache.peek(&1), None);
}

#[tokio::test(start_paused = true)]
async fn get_many_loads_only_what_is_missing_in_one_call() {
    let (cache, clock) = cache(|builder| builder.stale_if_error(Duration::from_secs(300)));
    cache
        .insert(1, "one".to_owned())
        .await
        .expect("memory only");
    cache
        .insert(2, "two".to_owned())
        .await
        .expect("memory only");
    let asked = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let loader = |asked: Arc<parking_lot::Mutex<Vec<Vec<u64>>>>| {
        move |keys: Vec<u64>| async move {
            asked.lock().push(keys.clone());
            // Key 4 does not exist.
            Ok::<_, DbError>(
                keys.into_iter()
                    .filter(|key| *key != 4)
                    .map(|key| (key, format!("loaded {key}")))
                    .collect::<HashMap<_, _>>(),
            )
        }
    };
    let found = cache
        .get_many([1, 2, 3, 4, 3], loader(asked.clone()))
        .await
        .expect("values");
    assert_eq!(asked.lock().as_slice(), [vec![3, 4]]);
    assert_eq!(found.len(), 3);
    assert_eq!(
        (found[&1].as_str(), found[&1].source()),
        ("one", Source::L1)
    );
    assert_eq!(
        (found[&3].as_str(), found[&3].source()),
        ("loaded 3", Source::Loader)
    );
    assert!(!found.contains_key(&4));

    // All present: the loader is not called at all.
    let found = cache
        .get_many([1, 2, 3], loader(asked.clone()))
        .await
        .expect("values");
    assert_eq!(found.len(), 3);
    assert_eq!(asked.lock().len(), 1);

    // The database fails: stale values are answered, marked; a key with none fails the batch.
    clock.advance(TTL + Duration::from_secs(1));
    let fail = |_: Vec<u64>| async { Err::<HashMap<u64, String>, _>(DbError("down")) };
    let found = cache.get_many([1, 3], fail).await.expect("stale values");
    assert!(found
        .values()
        .all(|value| value.status() == Status::Stale(Stale::LoadFailed(Reason::Error))));
    assert!(cache.get_many([1, 5], fail).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_distinct_keys_stays_within_the_capacity() {
    let (cache, _clock) = cache(|builder| builder.max_capacity(100));
    let calls = Arc::new(AtomicUsize::new(0));
    for key in 0..5_000 {
        cache
            .get_with(key, counted(&calls, "v"))
            .await
            .expect("loaded");
    }
    // moka applies evictions in batches; reading settles them.
    for _ in 0..64 {
        let _ = cache.peek(&0);
    }
    tokio::task::yield_now().await;
    assert!(cache.l1_len() <= 200, "{} entries", cache.l1_len());
}

#[test]
fn bad_settings_are_refused_with_what_is_wrong() {
    let build = |configure: fn(
        steadfast_cache::Builder<u64, String>,
    ) -> steadfast_cache::Builder<u64, String>| {
        configure(TieredCache::builder("ok"))
            .build()
            .map(|_| ())
            .unwrap_err()
    };
    for name in ["", "has space", "brace{", "brace}", "tab\t", "a:b"] {
        assert!(matches!(
            TieredCache::<u64, String>::builder(name).build(),
            Err(BuildError::Name(_))
        ));
    }
    assert!(matches!(
        build(|b| b.ttl(Duration::ZERO)),
        BuildError::Invalid(_)
    ));
    assert!(matches!(build(|b| b.jitter(1.0)), BuildError::Invalid(_)));
    assert!(matches!(
        build(|b| b.jitter(f64::NAN)),
        BuildError::Invalid(_)
    ));
    assert!(matches!(build(|b| b.jitter(-0.1)), BuildError::Invalid(_)));
    assert!(matches!(
        build(|b| b.max_capacity(0)),
        BuildError::Invalid(_)
    ));
    assert!(matches!(
        build(|b| b.load_timeout(Duration::ZERO)),
        BuildError::Invalid(_)
    ));
    let message = build(|b| b.ttl(Duration::ZERO)).to_string();
    assert!(message.contains("TTL"), "{message}");
}

/// Polls a future to its end on this thread, outside any Tokio runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(output) => return output,
            std::task::Poll::Pending => std::thread::park_timeout(Duration::from_millis(50)),
        }
    }
}

#[test]
fn a_miss_outside_a_tokio_runtime_fails_and_never_hangs() {
    let cache: TieredCache<u64, String> = TieredCache::builder("no-runtime")
        .build()
        .expect("a valid cache");
    for _ in 0..2 {
        let answer = block_on(cache.get_with(1, || async { Ok::<_, DbError>("v".to_owned()) }));
        assert!(matches!(answer, Err(Error::Panicked)));
    }
}

#[tokio::test(start_paused = true)]
async fn the_quick_l1_gives_the_same_answers() {
    let (cache, clock) = cache(|builder| {
        builder
            .l1(steadfast_cache::L1Kind::Quick)
            .max_capacity(100)
            .stale_if_error(Duration::from_secs(300))
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..200)
        .map(|_| {
            let (cache, calls) = (cache.clone(), calls.clone());
            tokio::spawn(async move {
                cache
                    .get_with(1, move || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        Ok::<_, DbError>("v1".to_owned())
                    })
                    .await
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(*reader.await.expect("no panic").expect("a value"), "v1");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    clock.advance(TTL + Duration::from_secs(1));
    assert_eq!(cache.peek(&1), None, "past its TTL, not fresh");
    let stale = cache.get_with(1, failing()).await.expect("stale-if-error");
    assert_eq!(
        stale.status(),
        Status::Stale(Stale::LoadFailed(Reason::Error))
    );
    cache.invalidate(&1).await.expect("memory only");
    assert_eq!(cache.peek(&1), None);
    for key in 0..5_000 {
        cache
            .get_with(key, counted(&calls, "v"))
            .await
            .expect("loaded");
    }
    assert!(cache.l1_len() <= 100, "{} entries", cache.l1_len());
}

#[tokio::test(start_paused = true)]
async fn stats_count_fresh_hits_misses_and_stale_answers() {
    let (cache, clock) = cache(|builder| builder.stale_if_error(Duration::from_secs(300)));
    let calls = Arc::new(AtomicUsize::new(0));
    assert_eq!(cache.stats().hit_rate(), None, "no lookup yet");

    // A miss that loads, then two L1 hits and a fresh peek.
    cache
        .get_with(1, counted(&calls, "v1"))
        .await
        .expect("loaded");
    for _ in 0..2 {
        let hit = cache
            .get_with(1, counted(&calls, "not loaded"))
            .await
            .expect("a hit");
        assert_eq!(hit.source(), Source::L1);
    }
    assert_eq!(cache.peek(&1).as_deref(), Some("v1"));
    // A peek that finds nothing is a miss too.
    assert_eq!(cache.peek(&2), None);
    // A batch: key 1 is a hit, key 3 a miss (repeats are read once).
    let loaded = cache
        .get_many([1, 3, 3], |keys| async move {
            Ok::<_, DbError>(keys.into_iter().map(|key| (key, "v".to_owned())).collect())
        })
        .await
        .expect("loaded");
    assert_eq!(loaded.len(), 2);

    let mut expected = steadfast_cache::Stats::default();
    expected.fresh = 4;
    expected.misses = 3;
    assert_eq!(cache.stats(), expected);
    assert_eq!(cache.stats().lookups(), 7);

    // Past the TTL a failed load answers the stale value: a miss, and a stale answer. The
    // read after it answers stale at once (no load): one more of each.
    clock.advance(TTL + Duration::from_secs(1));
    for _ in 0..2 {
        let stale = cache.get_with(1, failing()).await.expect("stale-if-error");
        assert!(stale.is_stale());
    }
    // Not fresh, so a peek misses, and serves nothing stale.
    assert_eq!(cache.peek(&1), None);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    expected.stale = 2;
    expected.misses = 6;
    let stats = cache.stats();
    assert_eq!(stats, expected);
    assert_eq!(stats.l2, 0, "no shared tier");
    assert_eq!(stats.lookups(), 10);
    let rate = stats.hit_rate().expect("lookups were made");
    assert!(
        (rate - 0.6).abs() < 1e-9,
        "(4 fresh + 2 stale) / 10: {rate}"
    );
    // Clones share the cache, and its counts.
    assert_eq!(cache.clone().stats(), stats);
}
