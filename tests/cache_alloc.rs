//! The cache's L1 hit adds no allocation to moka's: a counting global allocator watches
//! `get_with` hits (polled once: a fresh hit is ready at once) and `peek`, beside raw moka
//! gets of the same pattern.
//!
//! moka runs its housekeeping (draining read buffers, applying expiry) on the reading thread
//! now and then, and that allocates a little, amortized over many reads: so the test compares
//! with raw moka rather than asserting zero, and bounds both per read.
//!
//! Run it with `cargo test --features full --test cache_alloc`.
#![cfg(feature = "cache")]

#[path = "support/counting.rs"]
mod counting;

use std::sync::Arc;
use std::time::Duration;

use counting::{allocations, now};
use steadfast::cache::{Source, TieredCache};

const KEYS: u64 = 64;
const READS: u64 = 20_000;

/// Allocations of `READS` reads, after as many reads of warm-up.
fn count(mut read: impl FnMut(u64) -> bool) -> u64 {
    for round in 0..READS {
        assert!(read(round % KEYS));
    }
    let before = allocations();
    for round in 0..READS {
        assert!(read(round % KEYS));
    }
    allocations() - before
}

#[test]
fn an_l1_hit_adds_no_allocation_to_mokas() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let cache: TieredCache<u64, Arc<str>> = TieredCache::builder("alloc")
        .build()
        .expect("a valid cache");
    let raw: moka::sync::Cache<u64, Arc<str>> = moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(60))
        .build();
    runtime.block_on(async {
        for key in 0..KEYS {
            raw.insert(key, Arc::from("a product"));
            cache
                .insert(key, Arc::from("a product"))
                .await
                .expect("memory only");
        }
    });

    let moka = count(|key| raw.get(&key).is_some());
    let peek = count(|key| cache.peek(&key).is_some());
    let get_with = count(|key| {
        let answer = now(cache.get_with(key, || async {
            Err::<Arc<str>, std::io::Error>(std::io::Error::other("a hit never loads"))
        }))
        .expect("a hit");
        answer.source() == Source::L1
    });
    eprintln!("allocations per {READS} reads: moka {moka}, peek {peek}, get_with {get_with}");
    // Housekeeping only: far below one allocation per read, and none of the cache's own (a
    // few of slack: housekeeping runs on a timer as well as on buffer fills).
    assert!(moka <= READS / 50, "moka itself: {moka}");
    assert!(peek <= moka + 8, "peek: {peek} against moka's {moka}");
    assert!(
        get_with <= moka + 8,
        "get_with: {get_with} against moka's {moka}"
    );
}
