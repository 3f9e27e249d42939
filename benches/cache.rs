//! Criterion benchmarks of a Steadfast `TieredCache` hit in L1, next to raw moka (its L1),
//! quick_cache and the cache crates a Tower service would otherwise use.
//!
//! Run them all with `cargo bench -p steadfast-benches --bench cache`. `BENCHMARKS.md` at the
//! repository root holds results and explains how to read them (section `Cache`).
//!
//! Every cache holds the same thing: keys `0..1000` (`u64`, or their decimal text where a crate
//! only takes string keys), each with the same 32-byte text as its value, as an `Arc<String>`
//! wherever the crate stores a value of our type (an entry's clone is then one reference
//! count, as a real cache of shared values would have it). Capacity 10 000 everywhere, a TTL
//! of 60 s where the crate has one. Every cache is filled before timing and every timed read
//! is a hit, which the benchmark checks (before timing, or by counting loads across it). No
//! metrics recorder is installed, so the `metrics` macros reach the no-op recorder. Futures
//! are polled by hand with a no-op waker, as in the other benchmarks: every hit measured here
//! completes in one poll (a pending one panics), so no runtime is in the timed loop.
//!
//! Groups:
//!
//! - `hit`: one hot key, read again and again from one thread.
//!   - `moka`: `moka::sync::Cache::get` on a cache built with the capacity alone: the baseline
//!     of the goal. `moka_ttl`: the same with a TTL. `moka_as_l1`: moka configured as the
//!     `TieredCache` configures its L1 (a TTL, an eviction listener) over an entry of the same
//!     shape (the value, five times, a flag and a reason), read with the same freshness check;
//!     this separates what moka's configuration costs from what our wrapper costs.
//!   - `quick_cache`: `quick_cache::sync::Cache::get`, the bar for a raw concurrent hit.
//!   - `steadfast_peek`: `TieredCache::peek`; `steadfast_get_with`: `TieredCache::get_with`
//!     with a loader that panics if called, its future polled once.
//!   - `cached_macro` and `cached_concurrent`: functions memoized by cached's `#[cached]`
//!     (an LRU with TTL behind a mutex) and `#[concurrent_cached]` (its sharded store).
//!   - `multi_tier_cache_get`: multi-tier-cache's `CacheManager::get` with its moka tier alone
//!     (no Redis), which answers the stored bytes; `multi_tier_cache_typed` its typed
//!     `get_or_compute_typed::<String>`, which deserializes them from JSON on every hit.
//!   - `service_bare`, `tower_resilience_cache`: a `u64` request through tower-resilience's
//!     `CacheLayer` (key = the request), driven by hand as in `benches/breaker.rs`
//!     (`poll_ready`, `call`, one poll); `service_bare` is the inner service alone.
//!   - `http_bare`, `hitbox`: `GET /products/42` through hitbox-tower's layer over its moka
//!     backend (key = the path's id), against the inner HTTP service alone. hitbox caches
//!     whole HTTP responses, so this is not the same work as the rest: see `BENCHMARKS.md`.
//! - `hit_spread`: the same reads cycling over all 1 000 keys (keys made before timing), for
//!   moka, quick_cache and ours: a hit whose entry is not always in the CPU's nearest cache.
//! - `threads`: one thread against two, reading the same hot key (`same_key`) or one key of
//!   their own each (`own_key`), through moka and through `TieredCache::get_with`; the
//!   estimate is wall-clock time per read over all threads, so the inverse is throughput.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use steadfast_benches::{call_once, parallel, poll_once};

mod cache_http;
use cache_http::{hitbox_call, hitbox_service, http_origin, http_request, HttpBody, ORIGIN_CALLS};

use bytes::Bytes;
use cached::macros::{cached, concurrent_cached};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use steadfast::cache::{L1Kind, Source, TieredCache};
use tower::{service_fn, Layer, Service};

/// Entries in every cache.
pub(crate) const CAPACITY: u64 = 10_000;
/// Keys `0..KEYS` are filled before timing.
pub(crate) const KEYS: u64 = 1_000;
/// The key of the single-key entries.
pub(crate) const HOT: u64 = 42;
/// The TTL of every cache that has one: far longer than a run.
pub(crate) const TTL: Duration = Duration::from_secs(60);
/// Every entry's value, 32 bytes.
pub(crate) const TEXT: &str = "teapot, stoneware, 1.2 l, white.";

type Value = Arc<String>;

fn value() -> Value {
    Arc::new(TEXT.to_owned())
}

/// The loader of every timed `get_with`: a hit must not call it.
pub(crate) fn no_load() -> Ready<Result<Value, Infallible>> {
    panic!("a fresh L1 hit does not load")
}

fn moka_plain() -> moka::sync::Cache<u64, Value> {
    let cache = moka::sync::Cache::builder().max_capacity(CAPACITY).build();
    for key in 0..KEYS {
        cache.insert(key, value());
    }
    cache
}

/// moka with a TTL alone over plain values: how much of [`moka_as_l1`] the TTL is.
fn moka_ttl() -> moka::sync::Cache<u64, Value> {
    let cache = moka::sync::Cache::builder()
        .max_capacity(CAPACITY)
        .time_to_live(TTL)
        .build();
    for key in 0..KEYS {
        cache.insert(key, value());
    }
    cache
}

/// An entry shaped like the `TieredCache`'s L1 entry: the value, a flag, five times and a
/// one-byte reason.
#[derive(Clone)]
struct ShapedEntry {
    value: Value,
    negative: bool,
    fresh_until: u64,
    revalidate_until: u64,
    stale_until: u64,
    epoch: u64,
    quiet_until: u64,
    failure: u8,
}

/// moka configured as the `TieredCache` configures its L1: a capacity, one TTL for every
/// entry (the cache's TTL plus its stale windows) and an eviction listener that counts.
fn moka_as_l1() -> moka::sync::Cache<u64, ShapedEntry> {
    let evicted = Arc::new(AtomicU64::new(0));
    let cache = moka::sync::Cache::builder()
        .max_capacity(CAPACITY)
        .time_to_live(TTL)
        .eviction_listener(move |_key, _value, _cause| {
            evicted.fetch_add(1, Ordering::Relaxed);
        })
        .build();
    for key in 0..KEYS {
        cache.insert(
            key,
            ShapedEntry {
                value: value(),
                negative: false,
                fresh_until: u64::MAX,
                revalidate_until: u64::MAX,
                stale_until: u64::MAX,
                epoch: 0,
                quiet_until: 0,
                failure: 0,
            },
        );
    }
    cache
}

/// A read of [`moka_as_l1`] the way a `TieredCache` hit reads its L1: moka clones the entry
/// out, the freshness check reads the time (one atomic load, as the coarse clock costs), and
/// the value is moved out of the entry.
#[inline(always)]
fn shaped_get(cache: &moka::sync::Cache<u64, ShapedEntry>, key: &u64) -> Option<Value> {
    let entry = cache.get(key)?;
    let now = NOW.load(Ordering::Relaxed);
    let fresh = now < entry.fresh_until && entry.epoch == 0;
    let quiet = now < entry.quiet_until && entry.failure != 0;
    (fresh && !quiet && !entry.negative && now < entry.stale_until.min(entry.revalidate_until))
        .then_some(entry.value)
}

/// The time [`shaped_get`] reads.
static NOW: AtomicU64 = AtomicU64::new(1);

fn quick() -> quick_cache::sync::Cache<u64, Value> {
    let cache = quick_cache::sync::Cache::new(CAPACITY as usize);
    for key in 0..KEYS {
        cache.insert(key, value());
    }
    cache
}

pub(crate) fn steadfast() -> TieredCache<u64, Value> {
    steadfast_on(L1Kind::Moka)
}

fn steadfast_on(kind: L1Kind) -> TieredCache<u64, Value> {
    let cache = TieredCache::builder("bench")
        .l1(kind)
        .max_capacity(CAPACITY)
        .ttl(TTL)
        .build()
        .expect("a valid cache");
    for key in 0..KEYS {
        // Without a shared tier the insert completes at once.
        poll_once(cache.insert(key, value())).expect("no shared tier to fail");
    }
    let hit = poll_once(cache.get_with(HOT, no_load)).expect("a hit");
    assert_eq!(hit.source(), Source::L1);
    cache
}

/// cached's `#[cached]`: an LRU with a TTL behind a mutex, in a static.
#[cached(max_size = 10_000, ttl_secs = 60)]
fn cached_macro(key: u64) -> Value {
    black_box(key);
    value()
}

/// cached's `#[concurrent_cached]`: its sharded LRU with a TTL, in a static.
#[concurrent_cached(max_size = 10_000, ttl_secs = 60)]
fn cached_concurrent(key: u64) -> Value {
    black_box(key);
    value()
}

/// Counts the loads of the cached functions above, to check that timed reads are hits.
static CACHED_LOADS: AtomicU64 = AtomicU64::new(0);

fn fill_cached() {
    for key in 0..KEYS {
        CACHED_LOADS.fetch_add(1, Ordering::Relaxed);
        cached_macro_prime_cache(key);
        cached_concurrent_prime_cache(key);
    }
}

fn multi_tier() -> multi_tier_cache::CacheManager {
    use multi_tier_cache::{CacheManager, CacheStrategy, CacheTier, L1Cache, MokaCacheConfig};

    let l1 = L1Cache::new(MokaCacheConfig {
        max_capacity: CAPACITY,
        time_to_live: TTL,
        time_to_idle: TTL,
    })
    .expect("an L1 tier");
    let manager =
        CacheManager::new_with_tiers(vec![CacheTier::new(Arc::new(l1), 1, false, 1, 1.0)], None)
            .expect("one tier");
    // The JSON text of the value (a string with nothing to escape), as its typed API stores it.
    let stored = Bytes::from(format!("\"{TEXT}\""));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        for key in 0..KEYS {
            manager
                .set_with_strategy(&key.to_string(), stored.clone(), CacheStrategy::Custom(TTL))
                .await
                .expect("an in-memory write");
        }
    });
    manager
}

fn tower_resilience(
) -> impl Service<u64, Response = Value, Error = tower_resilience_cache::CacheError<Infallible>> {
    let layer = tower_resilience_cache::CacheLayer::builder()
        .max_size(CAPACITY as usize)
        .ttl(TTL)
        .key_extractor(|request: &u64| *request)
        .build()
        .expect("a valid layer");
    let mut service = layer.layer(service_fn(|_: u64| {
        ORIGIN_CALLS.fetch_add(1, Ordering::Relaxed);
        ready(Ok::<Value, Infallible>(value()))
    }));
    for key in 0..KEYS {
        call_once(&mut service, key).expect("a load");
    }
    service
}

/// Group `hit`.
fn hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit");

    let moka = moka_plain();
    group.bench_function("moka", |b| b.iter(|| black_box(moka.get(black_box(&HOT)))));
    drop(moka);

    let moka = moka_ttl();
    group.bench_function("moka_ttl", |b| {
        b.iter(|| black_box(moka.get(black_box(&HOT))))
    });
    drop(moka);

    let moka = moka_as_l1();
    assert!(shaped_get(&moka, &HOT).is_some());
    group.bench_function("moka_as_l1", |b| {
        b.iter(|| black_box(shaped_get(&moka, black_box(&HOT))))
    });
    drop(moka);

    let quick = quick();
    group.bench_function("quick_cache", |b| {
        b.iter(|| black_box(quick.get(black_box(&HOT))))
    });
    drop(quick);

    let cache = steadfast();
    group.bench_function("steadfast_peek", |b| {
        b.iter(|| black_box(cache.peek(black_box(&HOT))))
    });
    group.bench_function("steadfast_get_with", |b| {
        b.iter(|| black_box(poll_once(cache.get_with(black_box(HOT), no_load))))
    });
    drop(cache);

    let cache = steadfast_on(L1Kind::Quick);
    group.bench_function("steadfast_quick_peek", |b| {
        b.iter(|| black_box(cache.peek(black_box(&HOT))))
    });
    group.bench_function("steadfast_quick_get_with", |b| {
        b.iter(|| black_box(poll_once(cache.get_with(black_box(HOT), no_load))))
    });
    drop(cache);

    fill_cached();
    let loads = CACHED_LOADS.load(Ordering::Relaxed);
    group.bench_function("cached_macro", |b| {
        b.iter(|| black_box(cached_macro(black_box(HOT))))
    });
    group.bench_function("cached_concurrent", |b| {
        b.iter(|| black_box(cached_concurrent(black_box(HOT))))
    });
    assert_eq!(CACHED_LOADS.load(Ordering::Relaxed), loads);

    let manager = multi_tier();
    let key = HOT.to_string();
    assert!(poll_once(manager.get(&key)).expect("a read").is_some());
    group.bench_function("multi_tier_cache_get", |b| {
        b.iter(|| black_box(poll_once(manager.get(black_box(&key)))))
    });
    group.bench_function("multi_tier_cache_typed", |b| {
        b.iter(|| {
            black_box(poll_once(manager.get_or_compute_typed::<String, _, _>(
                black_box(&key),
                multi_tier_cache::CacheStrategy::Custom(TTL),
                || async { panic!("a hit does not compute") },
            )))
        })
    });
    assert_eq!(manager.get_stats().misses, 0);
    drop(manager);

    let mut bare = service_fn(|_: u64| ready(Ok::<Value, Infallible>(value())));
    group.bench_function("service_bare", |b| {
        b.iter(|| black_box(call_once(&mut bare, black_box(HOT))))
    });
    let mut service = tower_resilience();
    let calls = ORIGIN_CALLS.load(Ordering::Relaxed);
    group.bench_function("tower_resilience_cache", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(HOT))))
    });
    assert_eq!(ORIGIN_CALLS.load(Ordering::Relaxed), calls);
    drop(service);

    let mut bare = http_origin::<HttpBody>();
    group.bench_function("http_bare", |b| {
        b.iter(|| black_box(call_once(&mut bare, http_request(black_box(HOT)))))
    });
    let mut service = hitbox_service();
    for key in 0..KEYS {
        hitbox_call(&mut service, key);
    }
    let status = hitbox_call(&mut service, HOT).headers()["x-cache-status"].clone();
    assert_eq!(status, "HIT");
    let calls = ORIGIN_CALLS.load(Ordering::Relaxed);
    group.bench_function("hitbox", |b| {
        b.iter(|| black_box(hitbox_call(&mut service, black_box(HOT))))
    });
    assert_eq!(ORIGIN_CALLS.load(Ordering::Relaxed), calls);

    group.finish();
}

/// Group `hit_spread`.
fn hit_spread(c: &mut Criterion) {
    let mut group = c.benchmark_group("hit_spread");
    let keys: Vec<u64> = (0..KEYS).collect();
    let mut next = keys.iter().cycle();

    let moka = moka_plain();
    group.bench_function("moka", |b| {
        b.iter(|| black_box(moka.get(next.next().expect("endless"))))
    });
    drop(moka);

    let quick = quick();
    group.bench_function("quick_cache", |b| {
        b.iter(|| black_box(quick.get(next.next().expect("endless"))))
    });
    drop(quick);

    let cache = steadfast();
    group.bench_function("steadfast_peek", |b| {
        b.iter(|| black_box(cache.peek(next.next().expect("endless"))))
    });
    group.bench_function("steadfast_get_with", |b| {
        b.iter(|| {
            let key = *next.next().expect("endless");
            black_box(poll_once(cache.get_with(key, no_load)))
        })
    });
    drop(cache);

    let cache = steadfast_on(L1Kind::Quick);
    group.bench_function("steadfast_quick_get_with", |b| {
        b.iter(|| {
            let key = *next.next().expect("endless");
            black_box(poll_once(cache.get_with(key, no_load)))
        })
    });

    group.finish();
}

/// Group `threads`.
fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("threads");
    group.sample_size(30);

    let moka = moka_plain();
    let caches = [
        ("steadfast", steadfast()),
        ("steadfast_quick", steadfast_on(L1Kind::Quick)),
    ];
    for (name, own_key) in [("same_key", false), ("own_key", true)] {
        for n in [1, 2] {
            group.bench_with_input(BenchmarkId::new(format!("moka_{name}"), n), &n, |b, &n| {
                b.iter_custom(|iters| {
                    let thread = AtomicU64::new(0);
                    parallel(n, iters, || {
                        let key = if own_key {
                            HOT + thread.fetch_add(1, Ordering::Relaxed)
                        } else {
                            HOT
                        };
                        let moka = &moka;
                        move || {
                            black_box(moka.get(black_box(&key)));
                        }
                    })
                })
            });
            for (label, cache) in &caches {
                group.bench_with_input(
                    BenchmarkId::new(format!("{label}_{name}"), n),
                    &n,
                    |b, &n| {
                        b.iter_custom(|iters| {
                            let thread = AtomicU64::new(0);
                            parallel(n, iters, || {
                                let key = if own_key {
                                    HOT + thread.fetch_add(1, Ordering::Relaxed)
                                } else {
                                    HOT
                                };
                                move || {
                                    black_box(poll_once(cache.get_with(black_box(key), no_load)))
                                        .expect("a hit");
                                }
                            })
                        })
                    },
                );
            }
        }
    }

    group.finish();
}

criterion_group!(benches, hit, hit_spread, threads, cache_http::http_hit);
criterion_main!(benches);
