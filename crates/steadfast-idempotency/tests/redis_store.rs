//! The Redis store against real servers (spawned by the tests on free ports): the same
//! conformance suite as the memory store, fencing with real leases, corrupt records, round trips
//! counted by the server, a server killed and restarted, concurrent claims from two clients,
//! and a three-node cluster.
#![cfg(feature = "redis")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::config::Config;
use fred::types::Builder;
use steadfast_idempotency::record::{Completed, Payload, Record, StoredResponse, Token};
use steadfast_idempotency::store::{Claim, MemoryStore, RedisStore, Store, StoreError, StoreKey};
use steadfast_idempotency::{Fingerprint, IdempotencyKey};
use steadfast_test_support::redis::{client_builder, RedisCluster, RedisServer};

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// A dead server fails calls within half a second, and the client comes back by itself.
fn builder(config: Config) -> Builder {
    client_builder(config, Duration::from_millis(500))
}

async fn client(server: &RedisServer) -> Client {
    let client = builder(server.config()).build().expect("a client");
    client.init().await.expect("connect to the test server");
    client
}

async fn pool(server: &RedisServer, size: usize) -> Pool {
    let pool = builder(server.config()).build_pool(size).expect("a pool");
    pool.init()
        .await
        .expect("connect the pool to the test server");
    pool
}

async fn cluster_client(cluster: &RedisCluster) -> Client {
    let config = cluster.config();
    let client = builder(config).build().expect("a clustered client");
    client.init().await.expect("connect to the test cluster");
    client
}

// ---------------------------------------------------------------------------------------------
// The conformance suite: any store, the same answers
// ---------------------------------------------------------------------------------------------

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(200);
/// Long enough for a `SHORT` lease or retention to have run out.
const PAST_SHORT: Duration = Duration::from_millis(450);

fn key(scope: &str, name: &str) -> StoreKey {
    StoreKey::new(scope, &IdempotencyKey::try_from(name).expect("a valid key"))
}

fn response(fingerprint: Fingerprint, status: u16) -> Completed {
    // Every byte value, so the store must be binary-safe.
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    Completed {
        fingerprint,
        payload: Payload::Response(StoredResponse {
            status,
            headers: vec![
                (
                    "content-type".into(),
                    Bytes::from_static(b"application/json"),
                ),
                ("x-raw".into(), Bytes::from(all_bytes.clone())),
            ],
            body: Bytes::from(all_bytes),
            trailers: vec![("grpc-status".into(), Bytes::from_static(b"0"))],
        }),
    }
}

fn value(fingerprint: Fingerprint, text: &'static str) -> Completed {
    Completed {
        fingerprint,
        payload: Payload::Value(Bytes::from_static(text.as_bytes())),
    }
}

async fn acquire<S: Store>(
    store: &S,
    key: &StoreKey,
    fingerprint: Fingerprint,
    lease: Duration,
) -> Token {
    match store.claim(key, fingerprint, lease).await {
        Ok(Claim::Acquired(token)) => token,
        other => panic!("{key:?}: expected Acquired, got {other:?}"),
    }
}

/// Claims, replays, releases, fencing and expiry, with the answers the memory store gives.
/// Several keys, so that on a cluster they land on different nodes.
async fn conformance<S: Store>(store: &S, scope: &str) {
    let print_a = Fingerprint::of(b"POST /orders {\"sku\":1}");
    let print_b = Fingerprint::of(b"POST /orders {\"sku\":2}");

    // A token held by nobody for the keys below.
    let foreign = acquire(store, &key(scope, "foreign"), print_a, LONG).await;

    for name in ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"] {
        let k = key(scope, name);
        assert_eq!(
            store.get(&k).await.unwrap(),
            None,
            "{name}: a new key has no record"
        );

        // Claimed: others see it in flight, under the holder's fingerprint.
        let first = acquire(store, &k, print_a, LONG).await;
        assert_ne!(first, foreign);
        assert_eq!(
            store.claim(&k, print_a, LONG).await.unwrap(),
            Claim::InFlight(print_a)
        );
        assert_eq!(
            store.claim(&k, print_b, LONG).await.unwrap(),
            Claim::InFlight(print_a)
        );
        assert_eq!(
            store.get(&k).await.unwrap(),
            Some(Record::InProgress {
                token: first,
                fingerprint: print_a
            })
        );

        // Another token can neither release nor complete it.
        assert!(!store.release(&k, foreign).await.unwrap());
        assert!(!store
            .complete(&k, foreign, &value(print_a, "x"), LONG)
            .await
            .unwrap());
        assert_eq!(
            store.claim(&k, print_a, LONG).await.unwrap(),
            Claim::InFlight(print_a)
        );

        // Released: free again; a second release has nothing to release.
        assert!(store.release(&k, first).await.unwrap());
        assert_eq!(store.get(&k).await.unwrap(), None);
        assert!(!store.release(&k, first).await.unwrap());

        // Claimed again: a new token; the old one is fenced off.
        let second = acquire(store, &k, print_b, LONG).await;
        assert_ne!(second, first);
        assert!(!store
            .complete(&k, first, &value(print_b, "stale"), LONG)
            .await
            .unwrap());
        assert_eq!(
            store.claim(&k, print_a, LONG).await.unwrap(),
            Claim::InFlight(print_b)
        );

        // Completed: replayed to every claim, whatever its fingerprint (the caller compares).
        let done = response(print_b, 201);
        assert!(store.complete(&k, second, &done, LONG).await.unwrap());
        assert_eq!(
            store.get(&k).await.unwrap(),
            Some(Record::Completed(done.clone()))
        );
        assert_eq!(
            store.claim(&k, print_b, LONG).await.unwrap(),
            Claim::Completed(done.clone())
        );
        assert_eq!(
            store.claim(&k, print_a, LONG).await.unwrap(),
            Claim::Completed(done.clone())
        );

        // A completed key is final: no second completion, no release.
        assert!(!store
            .complete(&k, second, &value(print_b, "again"), LONG)
            .await
            .unwrap());
        assert!(!store
            .complete(&k, foreign, &value(print_b, "other"), LONG)
            .await
            .unwrap());
        assert!(!store.release(&k, second).await.unwrap());
        assert_eq!(store.get(&k).await.unwrap(), Some(Record::Completed(done)));
    }

    // A key nobody holds can be completed (a lease that ran out, no claim since).
    let unclaimed = key(scope, "never-claimed");
    assert!(store
        .complete(&unclaimed, foreign, &value(print_a, "42"), LONG)
        .await
        .unwrap());
    assert_eq!(
        store.claim(&unclaimed, print_a, LONG).await.unwrap(),
        Claim::Completed(value(print_a, "42"))
    );

    // Leases and retention in real time, one wait for all of them.
    let fenced = key(scope, "fenced");
    let late = key(scope, "late");
    let late_release = key(scope, "late-release");
    let retained = key(scope, "retained");
    let fenced_old = acquire(store, &fenced, print_a, SHORT).await;
    let late_token = acquire(store, &late, print_a, SHORT).await;
    let late_release_token = acquire(store, &late_release, print_a, SHORT).await;
    let retained_token = acquire(store, &retained, print_a, LONG).await;
    assert!(store
        .complete(&retained, retained_token, &value(print_a, "brief"), SHORT)
        .await
        .unwrap());
    tokio::time::sleep(PAST_SHORT).await;

    // The lease ran out and another claim took the key: the old token is fenced off.
    assert_eq!(store.get(&fenced).await.unwrap(), None, "the lease ran out");
    let fenced_new = acquire(store, &fenced, print_b, LONG).await;
    assert_ne!(fenced_new, fenced_old);
    assert!(!store
        .complete(&fenced, fenced_old, &value(print_a, "late"), LONG)
        .await
        .unwrap());
    assert!(!store.release(&fenced, fenced_old).await.unwrap());
    assert_eq!(
        store.get(&fenced).await.unwrap(),
        Some(Record::InProgress {
            token: fenced_new,
            fingerprint: print_b
        }),
        "the stale token wrote nothing"
    );
    assert!(store
        .complete(&fenced, fenced_new, &value(print_b, "new"), LONG)
        .await
        .unwrap());
    assert_eq!(
        store.claim(&fenced, print_b, LONG).await.unwrap(),
        Claim::Completed(value(print_b, "new"))
    );

    // The lease ran out and nobody claimed since: the late completion still lands.
    assert!(store
        .complete(&late, late_token, &value(print_a, "late"), LONG)
        .await
        .unwrap());
    assert_eq!(
        store.get(&late).await.unwrap(),
        Some(Record::Completed(value(print_a, "late")))
    );

    // ... but a late release has nothing to release.
    assert!(!store
        .release(&late_release, late_release_token)
        .await
        .unwrap());
    assert_eq!(store.get(&late_release).await.unwrap(), None);

    // Retention ran out: the key is new again.
    assert_eq!(store.get(&retained).await.unwrap(), None);
    acquire(store, &retained, print_a, LONG).await;
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(&MemoryStore::new(1_000), "memory").await;
}

#[tokio::test]
async fn redis_store_conforms_over_a_client_and_a_pool() {
    let server = RedisServer::start();
    let store = RedisStore::new(client(&server).await);
    conformance(&store, "client").await;
    // Clones share the client.
    conformance(&store.clone(), "clone").await;
    let pooled = RedisStore::new(pool(&server, 2).await);
    conformance(&pooled, "pool").await;
    assert!(format!("{store:?}").starts_with("RedisStore"));
}

#[tokio::test]
async fn redis_cluster_conforms() {
    let cluster = RedisCluster::start();
    let store = RedisStore::new(cluster_client(&cluster).await);
    conformance(&store, "cluster").await;
    let counts = cluster.key_counts();
    assert!(
        counts.iter().all(|&count| count > 0),
        "the suite's keys should spread over the three nodes: {counts:?}"
    );
    assert!(cluster.calls("evalsha") > 0);
}

// ---------------------------------------------------------------------------------------------
// Redis only
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn corrupt_records_are_refused_not_panicked_on() {
    let server = RedisServer::start();
    let client = client(&server).await;
    let store = RedisStore::new(client.clone());
    let print = Fingerprint::of(b"request");

    let garbage = key("corrupt", "garbage");
    let truncated = key("corrupt", "truncated");
    let trailing = key("corrupt", "trailing");
    let mut in_progress = Record::InProgress {
        token: acquire(&store, &key("corrupt", "source"), print, LONG).await,
        fingerprint: print,
    }
    .encode()
    .to_vec();
    let cases: [(&StoreKey, Vec<u8>); 3] = [
        (&garbage, b"not a record at all \xff\x00".to_vec()),
        (&truncated, in_progress[..20].to_vec()),
        (&trailing, {
            in_progress.push(0);
            in_progress
        }),
    ];
    // A token of another key: nothing below holds it.
    let token = acquire(&store, &key("corrupt", "tokens"), print, LONG).await;
    for (k, bytes) in &cases {
        let () = client
            .set(k.as_str(), Bytes::from(bytes.clone()), None, None, false)
            .await
            .unwrap();
        assert!(
            matches!(
                store.claim(k, print, LONG).await,
                Err(StoreError::Corrupt(_))
            ),
            "{k:?}"
        );
        assert!(
            matches!(store.get(k).await, Err(StoreError::Corrupt(_))),
            "{k:?}"
        );
        // Completing or releasing leaves foreign bytes alone.
        assert!(!store
            .complete(k, token, &value(print, "x"), LONG)
            .await
            .unwrap());
        assert!(!store.release(k, token).await.unwrap());
        let held: Bytes = client.get(k.as_str()).await.unwrap();
        assert_eq!(&held[..], &bytes[..], "the foreign bytes are untouched");
    }

    // A key of another type: the server's error, as Unavailable.
    let hash = key("corrupt", "a-hash");
    server.cli(&["hset", hash.as_str(), "field", "value"]);
    assert!(matches!(
        store.claim(&hash, print, LONG).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.get(&hash).await,
        Err(StoreError::Unavailable(_))
    ));
}

/// What the server counted: script runs (`EVALSHA`, `EVAL`) and `GET`s.
///
/// `INFO commandstats` also counts the commands a script runs, and each of the store's scripts
/// runs exactly one `GET`; so the `GET`s the client itself sent are `gets - scripts`, and the
/// round trips `scripts + (gets - scripts)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counted {
    scripts: u64,
    gets: u64,
}

impl Counted {
    fn now(server: &RedisServer) -> Self {
        Self {
            scripts: server.calls("evalsha") + server.calls("eval"),
            gets: server.calls("get"),
        }
    }

    /// Round trips since `before`.
    fn round_trips_since(before: Self, server: &RedisServer) -> u64 {
        let now = Self::now(server);
        let scripts = now.scripts - before.scripts;
        let client_gets = (now.gets - before.gets) - scripts;
        scripts + client_gets
    }
}

#[tokio::test]
async fn a_new_key_costs_two_round_trips_and_a_replay_one() {
    let server = RedisServer::start();
    let store = RedisStore::new(client(&server).await);
    let print = Fingerprint::of(b"request");

    // Warm up: the first use of each script may find it missing (NOSCRIPT, then EVAL).
    let warm = key("trips", "warm-up");
    let token = acquire(&store, &warm, print, LONG).await;
    assert!(store.release(&warm, token).await.unwrap());
    let token = acquire(&store, &warm, print, LONG).await;
    assert!(store
        .complete(&warm, token, &value(print, "1"), LONG)
        .await
        .unwrap());

    let k = key("trips", "order-1");
    let before = Counted::now(&server);
    let token = acquire(&store, &k, print, LONG).await;
    assert!(store
        .complete(&k, token, &response(print, 200), LONG)
        .await
        .unwrap());
    let after = Counted::now(&server);
    assert_eq!(
        after.scripts - before.scripts,
        2,
        "a new key: claim and complete"
    );
    assert_eq!(after.gets - before.gets, 2, "only the scripts' own reads");
    assert_eq!(Counted::round_trips_since(before, &server), 2);

    let before = Counted::now(&server);
    assert_eq!(
        store.claim(&k, print, LONG).await.unwrap(),
        Claim::Completed(response(print, 200))
    );
    assert_eq!(
        Counted::round_trips_since(before, &server),
        1,
        "a replay: the claim alone"
    );

    let before = Counted::now(&server);
    let _ = store.get(&k).await.unwrap();
    let after = Counted::now(&server);
    assert_eq!(
        (after.scripts - before.scripts, after.gets - before.gets),
        (0, 1),
        "a get: one GET"
    );

    let before = Counted::now(&server);
    assert!(store
        .release(&k, token)
        .await
        .is_ok_and(|released| !released));
    assert_eq!(
        Counted::round_trips_since(before, &server),
        1,
        "a release: one script"
    );

    // The script cache flushed (a restart, a failover): EVAL takes over once, then EVALSHA.
    server.cli(&["script", "flush"]);
    let evals = server.calls("eval");
    let fresh = key("trips", "after-flush");
    acquire(&store, &fresh, print, LONG).await;
    assert_eq!(
        server.calls("eval") - evals,
        1,
        "NOSCRIPT falls back to EVAL"
    );
    let before = Counted::now(&server);
    assert_eq!(
        store.claim(&fresh, print, LONG).await.unwrap(),
        Claim::InFlight(print)
    );
    assert_eq!(server.calls("eval") - evals, 1, "cached again by the EVAL");
    assert_eq!(Counted::round_trips_since(before, &server), 1);
}

fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    answer: Result<T, StoreError>,
    took: Duration,
) {
    assert!(
        matches!(answer, Err(StoreError::Unavailable(_))),
        "{what} on a dead server: {answer:?}"
    );
    // The client's command timeout is 500 ms.
    assert!(
        took < Duration::from_secs(2),
        "{what} took {took:?} to fail"
    );
}

#[tokio::test]
async fn a_killed_server_fails_calls_promptly_and_a_restarted_one_has_every_acknowledged_record() {
    let mut server = RedisServer::start();
    let store = RedisStore::new(client(&server).await);
    let print = Fingerprint::of(b"request");

    let done = key("crash", "done");
    let held = key("crash", "held");
    let token = acquire(&store, &done, print, LONG).await;
    assert!(store
        .complete(&done, token, &response(print, 201), LONG)
        .await
        .unwrap());
    let held_token = acquire(&store, &held, print, LONG).await;

    server.kill();
    let started = Instant::now();
    let answer = store.claim(&key("crash", "new"), print, LONG).await;
    assert_unavailable("claim", answer, started.elapsed());
    let started = Instant::now();
    let answer = store
        .complete(&held, held_token, &value(print, "x"), LONG)
        .await;
    assert_unavailable("complete", answer, started.elapsed());
    let started = Instant::now();
    let answer = store.release(&held, held_token).await;
    assert_unavailable("release", answer, started.elapsed());
    let started = Instant::now();
    let answer = store.get(&done).await;
    assert_unavailable("get", answer, started.elapsed());

    server.restart();
    // The client reconnects by itself, every 100 ms.
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        match store.get(&done).await {
            Ok(record) => break record,
            Err(error) => assert!(Instant::now() < deadline, "no reconnection: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        record,
        Some(Record::Completed(response(print, 201))),
        "the acknowledged completion survived the kill"
    );
    assert_eq!(
        store.claim(&done, print, LONG).await.unwrap(),
        Claim::Completed(response(print, 201))
    );
    // The claim made before the kill still holds, and its holder can finish.
    assert_eq!(
        store.claim(&held, print, LONG).await.unwrap(),
        Claim::InFlight(print)
    );
    assert!(store
        .complete(&held, held_token, &value(print, "after"), LONG)
        .await
        .unwrap());
    acquire(&store, &key("crash", "new"), print, LONG).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_claim_wins_among_a_hundred_over_separate_clients() {
    let server = RedisServer::start();
    let first = RedisStore::new(client(&server).await);
    let second = RedisStore::new(client(&server).await);
    let pooled = RedisStore::new(pool(&server, 2).await);
    let print = Fingerprint::of(b"request");

    for round in 0..3 {
        let k = Arc::new(key("race", &format!("order-{round}")));
        let mut tasks = Vec::new();
        for i in 0..100 {
            let k = Arc::clone(&k);
            let first = first.clone();
            let second = second.clone();
            let pooled = pooled.clone();
            tasks.push(tokio::spawn(async move {
                match i % 3 {
                    0 => first.claim(&k, print, LONG).await,
                    1 => second.claim(&k, print, LONG).await,
                    _ => pooled.claim(&k, print, LONG).await,
                }
            }));
        }
        let mut acquired = Vec::new();
        for task in tasks {
            match task.await.unwrap().unwrap() {
                Claim::Acquired(token) => acquired.push(token),
                Claim::InFlight(holder) => assert_eq!(holder, print),
                Claim::Completed(completed) => panic!("nothing completed it: {completed:?}"),
            }
        }
        assert_eq!(
            acquired.len(),
            1,
            "round {round}: exactly one claim acquires"
        );
        assert_eq!(
            first.get(&k).await.unwrap(),
            Some(Record::InProgress {
                token: acquired[0],
                fingerprint: print
            })
        );
    }
}
