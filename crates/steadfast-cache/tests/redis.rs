//! The cache with its Redis tier, against real servers the test support spawns on free
//! loopback ports: two instances sharing one server (one load for a thousand misses, writes
//! seen by the other within 100 ms, slow loaders that must not overwrite newer writes), the
//! server killed, restarted and slowed, corrupt bytes, `MGET` counted by the server, and a
//! three-node cluster.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::config::Config;
use steadfast_cache::remote::RedisTier;
use steadfast_cache::{Source, Status, TieredCache};
#[allow(unused_imports)]
use steadfast_test_support::redis::RedisCluster;
use steadfast_test_support::redis::{client_builder, RedisServer};
use tokio::sync::Notify;

async fn connect(config: Config) -> (Client, SubscriberClient) {
    let client = client_builder(config.clone(), Duration::from_millis(500))
        .build()
        .expect("a client");
    let subscriber = client_builder(config, Duration::from_millis(500))
        .build_subscriber_client()
        .expect("a subscriber");
    client.init().await.expect("connect to the test server");
    subscriber.init().await.expect("connect the subscriber");
    (client, subscriber)
}

/// One instance: its own clients, its own L1, the shared tier.
async fn instance(config: Config, name: &str) -> TieredCache<u64, String> {
    let (client, subscriber) = connect(config).await;
    let tier = RedisTier::with_notices(client, subscriber)
        .await
        .expect("subscribe to notices");
    TieredCache::builder(name)
        .ttl(Duration::from_secs(60))
        .stale_if_error(Duration::from_secs(600))
        .remote(tier)
        .build()
        .expect("a valid cache")
}

fn counted(
    calls: &Arc<AtomicUsize>,
    value: String,
) -> impl FnOnce() -> std::future::Ready<Result<String, std::io::Error>> + Send + 'static {
    let calls = calls.clone();
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(value))
    }
}

/// Waits until `check` holds, polling every 5 ms; panics after `limit`. Answers the time taken.
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// A thousand concurrent misses on one key, half on each instance: one loader call in all.
async fn thundering_herd(a: &TieredCache<u64, String>, b: &TieredCache<u64, String>, key: u64) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for index in 0..1000 {
        let cache = if index % 2 == 0 { a.clone() } else { b.clone() };
        let calls = calls.clone();
        readers.push(tokio::spawn(async move {
            cache
                .get_with(key, move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, std::io::Error>(format!("row {key}"))
                })
                .await
        }));
    }
    for reader in readers {
        let answer = reader.await.expect("no panic").expect("a value");
        assert_eq!(*answer, format!("row {key}"));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one load across both instances"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_a_thousand_misses_one_load() {
    let server = RedisServer::start();
    let a = instance(server.config(), "herd").await;
    let b = instance(server.config(), "herd").await;
    thundering_herd(&a, &b, 1).await;
    // Both L1s hold it now: no more loads, no more round trips.
    let gets = server.calls("mget");
    for cache in [&a, &b] {
        let calls = Arc::new(AtomicUsize::new(0));
        let answer = cache
            .get_with(1, counted(&calls, "again".into()))
            .await
            .expect("hit");
        assert_eq!(answer.source(), Source::L1);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
    assert_eq!(server.calls("mget"), gets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_in_one_instance_reaches_the_other_within_100ms() {
    let server = RedisServer::start();
    let a = instance(server.config(), "products").await;
    let b = instance(server.config(), "products").await;
    let calls = Arc::new(AtomicUsize::new(0));
    a.get_with(5, counted(&calls, "v1".into()))
        .await
        .expect("loaded");
    // A's fill and unlock run after its callers have their answer.
    within(Duration::from_secs(1), async || {
        server.cli(&["exists", "sf:{products:5}"]).trim() == "1"
            && server.cli(&["exists", "sf:{products:5}:l"]).trim() == "0"
    })
    .await;
    // An L2 hit is one round trip: one MGET reads the entry, its version and its lock.
    let commands = server.total_calls();
    let from_l2 = b
        .get_with(5, counted(&calls, "never".into()))
        .await
        .expect("L2 hit");
    assert_eq!((from_l2.as_str(), from_l2.source()), ("v1", Source::L2));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        server.total_calls() - commands,
        1,
        "one command for an L2 hit"
    );

    a.insert(5, "v2".into()).await.expect("written and told");
    let took = within(Duration::from_millis(100), async || {
        let answer = b
            .get_with(5, counted(&calls, "never".into()))
            .await
            .expect("a value");
        answer.as_str() == "v2"
    })
    .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the new value came from L2, not a load"
    );
    eprintln!("the write reached the other instance in {took:?}");

    a.invalidate(&5).await.expect("deleted and told");
    within(Duration::from_millis(100), async || b.peek(&5).is_none()).await;
    let reloaded = b
        .get_with(5, counted(&calls, "v3".into()))
        .await
        .expect("loaded");
    assert_eq!(
        (reloaded.as_str(), reloaded.source()),
        ("v3", Source::Loader)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loader_never_overwrites_a_newer_write() {
    let server = RedisServer::start();
    let a = instance(server.config(), "race").await;
    let b = instance(server.config(), "race").await;
    let gate = Arc::new(Notify::new());
    let slow = {
        let gate = gate.clone();
        move || async move {
            gate.notified().await;
            Ok::<_, std::io::Error>("read before the write".to_owned())
        }
    };
    let reader = tokio::spawn({
        let a = a.clone();
        async move { a.get_with(9, slow).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    b.insert(9, "written".into())
        .await
        .expect("written and told");
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.notify_one();
    reader.await.expect("no panic").expect("a value");
    tokio::time::sleep(Duration::from_millis(50)).await;

    // A third instance, with an empty L1, reads what Redis holds.
    let c = instance(server.config(), "race").await;
    let calls = Arc::new(AtomicUsize::new(0));
    let held = c
        .get_with(9, counted(&calls, "never".into()))
        .await
        .expect("L2 hit");
    assert_eq!((held.as_str(), held.source()), ("written", Source::L2));
    assert_eq!(
        a.peek(&9),
        None,
        "A's stale load did not fill its L1 either"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_reads_go_on_and_after_restart_old_entries_are_not_fresh() {
    let mut server = RedisServer::start();
    let a = instance(server.config(), "outage").await;
    let calls = Arc::new(AtomicUsize::new(0));
    a.get_with(1, counted(&calls, "before".into()))
        .await
        .expect("loaded");

    server.kill();
    let started = Instant::now();
    for round in 0..50u64 {
        // The cached key keeps answering from L1; new keys go to the loader.
        let hit = a
            .get_with(1, counted(&calls, "never".into()))
            .await
            .expect("no failed read");
        assert_eq!((hit.as_str(), hit.source()), ("before", Source::L1));
        let key = 100 + round;
        let miss = a
            .get_with(key, counted(&calls, format!("loaded {key}")))
            .await
            .expect("no failed read");
        assert_eq!(miss.source(), Source::Loader);
    }
    // Each L2 call is cut at 100 ms, and the breaker stops them after five failures.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.peek(&1).as_deref(), Some("before"));

    server.restart();
    // The notice feed reconnects: entries from before may have missed notices.
    within(Duration::from_secs(10), async || a.peek(&1).is_none()).await;
    // The tier is back (once its breaker lets a probe through): values reach L2 again.
    let written = within(Duration::from_secs(10), async || {
        a.insert(2, "after".into()).await.is_ok()
    })
    .await;
    eprintln!("the tier took writes again after {written:?}");
    let b = instance(server.config(), "outage").await;
    let seen = b
        .get_with(2, counted(&calls, "never".into()))
        .await
        .expect("a value");
    assert_eq!((seen.as_str(), seen.source()), ("after", Source::L2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_costs_a_read_at_most_the_tier_timeout() {
    let server = RedisServer::start();
    let a = instance(server.config(), "slow").await;
    let calls = Arc::new(AtomicUsize::new(0));
    server.pause(1_500);
    let started = Instant::now();
    let answer = a
        .get_with(1, counted(&calls, "loaded".into()))
        .await
        .expect("no failed read");
    let took = started.elapsed();
    assert_eq!(answer.source(), Source::Loader);
    assert!(took < Duration::from_millis(400), "a read took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_foreign_bytes_in_redis_read_as_a_miss() {
    let server = RedisServer::start();
    let a = instance(server.config(), "corrupt").await;
    let calls = Arc::new(AtomicUsize::new(0));
    // Not an envelope; an envelope of an unknown version; an envelope whose payload is not JSON.
    let header = |version: u8| {
        let mut bytes = b"SFC".to_vec();
        bytes.push(version);
        bytes.push(0);
        bytes.extend_from_slice(&[0; 24]);
        bytes
    };
    let mut bad_payload = header(1);
    bad_payload.extend_from_slice(b"{not json");
    let values: [&[u8]; 3] = [b"hello, world", &header(9), &bad_payload];
    let (raw, _subscriber) = connect(server.config()).await;
    for (key, value) in values.into_iter().enumerate() {
        let () = raw
            .set(
                format!("sf:{{corrupt:{key}}}"),
                bytes::Bytes::copy_from_slice(value),
                None,
                None,
                false,
            )
            .await
            .expect("written straight into Redis");
        let answer = a
            .get_with(key as u64, counted(&calls, format!("good {key}")))
            .await
            .expect("a miss, then a load");
        assert_eq!(answer.source(), Source::Loader);
        assert_eq!(*answer, format!("good {key}"));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // The load replaced the bad bytes: another instance reads the good value.
    let b = instance(server.config(), "corrupt").await;
    let read = b
        .get_with(0, counted(&calls, "never".into()))
        .await
        .expect("L2 hit");
    assert_eq!((read.as_str(), read.source()), ("good 0", Source::L2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_of_n_keys_is_one_mget() {
    let server = RedisServer::start();
    let a = instance(server.config(), "batch").await;
    let b = instance(server.config(), "batch").await;
    for key in 0..40u64 {
        a.insert(key, format!("v{key}")).await.expect("written");
    }
    let before = server.calls("mget");
    let asked = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let found = b
        .get_many(0..50u64, {
            let asked = asked.clone();
            move |keys: Vec<u64>| async move {
                asked.lock().push(keys.clone());
                Ok::<_, std::io::Error>(
                    keys.into_iter()
                        .map(|key| (key, format!("loaded {key}")))
                        .collect::<HashMap<_, _>>(),
                )
            }
        })
        .await
        .expect("values");
    assert_eq!(server.calls("mget") - before, 1, "one MGET for fifty keys");
    assert_eq!(asked.lock().as_slice(), [(40..50).collect::<Vec<u64>>()]);
    assert_eq!(found.len(), 50);
    assert!((0..40).all(|key| found[&key].source() == Source::L2));
    assert!((40..50).all(|key| found[&key].source() == Source::Loader));
    assert!(found.values().all(|value| value.status() == Status::Fresh));
    // The loaded ones reached L2: a third instance finds all fifty there.
    let c = instance(server.config(), "batch").await;
    let again = c
        .get_many(0..50u64, |_keys: Vec<u64>| async {
            Err::<HashMap<u64, String>, _>(std::io::Error::other("not called"))
        })
        .await
        .expect("all in L2");
    assert_eq!(again.len(), 50);

    // A batch larger than a chunk: one MGET per 128 keys, each under the tier's timeout.
    let d = instance(server.config(), "batch").await;
    let before = server.calls("mget");
    let found = d
        .get_many(0..300u64, |keys: Vec<u64>| async move {
            Ok::<_, std::io::Error>(
                keys.into_iter()
                    .map(|key| (key, format!("loaded {key}")))
                    .collect::<HashMap<_, _>>(),
            )
        })
        .await
        .expect("values");
    assert_eq!(found.len(), 300);
    assert_eq!(server.calls("mget") - before, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_code_on_a_three_node_cluster() {
    let cluster = RedisCluster::start();
    let a = instance(cluster.config(), "clustered").await;
    let b = instance(cluster.config(), "clustered").await;
    thundering_herd(&a, &b, 1).await;

    for key in 0..30u64 {
        a.insert(key + 100, format!("v{key}"))
            .await
            .expect("written");
    }
    let counts = cluster.key_counts();
    assert!(
        counts.iter().all(|&count| count > 0),
        "keys spread over every node: {counts:?}"
    );
    let found = b
        .get_many(100..130u64, |_keys: Vec<u64>| async {
            Err::<HashMap<u64, String>, _>(std::io::Error::other("not called"))
        })
        .await
        .expect("every key from L2");
    assert_eq!(found.len(), 30);

    // Notices cross the cluster too.
    let calls = Arc::new(AtomicUsize::new(0));
    b.get_with(100, counted(&calls, "never".into()))
        .await
        .expect("hit");
    a.insert(100, "changed".into())
        .await
        .expect("written and told");
    within(Duration::from_millis(500), async || {
        b.get_with(100, counted(&calls, "never".into()))
            .await
            .is_ok_and(|answer| answer.as_str() == "changed")
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_an_l2_answer_as_fresh_not_as_a_miss() {
    let server = RedisServer::start();
    let a = instance(server.config(), "stats").await;
    let b = instance(server.config(), "stats").await;
    let calls = Arc::new(AtomicUsize::new(0));
    a.get_with(1, counted(&calls, "row 1".into()))
        .await
        .expect("loaded");
    a.insert(2, "row 2".into()).await.expect("written");

    // B's L1 misses both; L2 answers them fresh, one by `get_with`, one by a batch.
    let one = b
        .get_with(1, counted(&calls, "not loaded".into()))
        .await
        .expect("from L2");
    assert_eq!((one.source(), one.status()), (Source::L2, Status::Fresh));
    let batch = b
        .get_many([2], |_| async {
            Err::<HashMap<u64, String>, _>(std::io::Error::other("not loaded"))
        })
        .await
        .expect("from L2");
    assert_eq!(batch.get(&2).map(|row| row.source()), Some(Source::L2));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let (a, b) = (a.stats(), b.stats());
    assert_eq!((a.fresh, a.l2, a.stale, a.misses), (0, 0, 0, 1));
    assert_eq!((b.fresh, b.l2, b.stale, b.misses), (2, 2, 0, 0));
    assert_eq!(b.hit_rate(), Some(1.0));
}
