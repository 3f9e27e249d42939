//! The HTTP layer over the Redis store, through real axum routers against real servers
//! (spawned by the tests on free ports): the core of the HTTP suite on a server and on a
//! three-node cluster, two app instances sharing a server under a hundred concurrent
//! duplicates, and a server killed mid-run and restarted.
#![cfg(all(feature = "axum", feature = "redis"))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::config::Config;
use fred::types::Builder;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use steadfast_idempotency::http::IdempotencyLayer;
use steadfast_idempotency::store::{RedisStore, Store};
use steadfast_idempotency::Idempotency;
use steadfast_test_support::redis::{client_builder, RedisCluster, RedisServer};
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// The command timeout of the clients in the outage test: a call to a dead server fails
/// within it.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);
/// The command timeout elsewhere: nothing is meant to time out there, so it is generous for
/// a loaded machine.
const CALM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an answer from a dead server may take at most: the command timeout, plus
/// scheduling on a busy machine.
const PROMPT: Duration = COMMAND_TIMEOUT.saturating_add(Duration::from_millis(1_500));

/// One attempt per command, reconnecting every 100 ms without end (as in `redis_store.rs`).
fn builder(config: Config, timeout: Duration) -> Builder {
    client_builder(config, timeout)
}

async fn client(server: &RedisServer, timeout: Duration) -> Client {
    let client = builder(server.config(), timeout).build().expect("a client");
    client.init().await.expect("connect to the test server");
    client
}

async fn cluster_client(cluster: &RedisCluster) -> Client {
    let config = cluster.config();
    let client = builder(config, CALM_TIMEOUT)
        .build()
        .expect("a clustered client");
    client.init().await.expect("connect to the test cluster");
    client
}

// ---------------------------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Counter {
    fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the handlers share, across every router built over it: their call counters, and the
/// gate of `/slow` (its handler says it entered, then waits for a permit).
#[derive(Clone)]
struct Handlers {
    payments: Counter,
    failures: Counter,
    slow: Counter,
    entered: Arc<Notify>,
    gate: Arc<Semaphore>,
}

impl Handlers {
    fn new() -> Self {
        Self {
            payments: Counter::default(),
            failures: Counter::default(),
            slow: Counter::default(),
            entered: Arc::new(Notify::new()),
            gate: Arc::new(Semaphore::new(0)),
        }
    }

    /// Waits until a `/slow` handler has entered (its claim is then held).
    async fn wait_entered(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.entered.notified())
            .await
            .expect("the /slow handler never started");
    }

    /// Lets one `/slow` handler finish.
    fn open_gate(&self) {
        self.gate.add_permits(1);
    }
}

/// One app instance: `/payments` (201 after `delay`, numbered), `/slow` (201 once its gate
/// opens), `/fail` (500), `/bad` (400); keys scoped by the `x-user` header.
fn app<S: Store>(engine: Idempotency<S>, handlers: &Handlers, delay: Duration) -> Router {
    let payments = handlers.payments.clone();
    let failures = handlers.failures.clone();
    let slow = handlers.slow.clone();
    let entered = handlers.entered.clone();
    let gate = handlers.gate.clone();
    Router::new()
        .route(
            "/payments",
            post(move |body: String| {
                let payments = payments.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    let n = payments.next();
                    let mut response =
                        Response::new(Body::from(format!("payment #{n} for {body}")));
                    *response.status_mut() = StatusCode::CREATED;
                    response
                        .headers_mut()
                        .insert("location", format!("/payments/{n}").parse().unwrap());
                    response
                        .headers_mut()
                        .insert("set-cookie", "session=secret".parse().unwrap());
                    response
                }
            }),
        )
        .route(
            "/slow",
            post(move |body: String| {
                let slow = slow.clone();
                let entered = entered.clone();
                let gate = gate.clone();
                async move {
                    entered.notify_one();
                    gate.acquire().await.expect("the gate stays open").forget();
                    let n = slow.next();
                    (StatusCode::CREATED, format!("slow #{n} for {body}"))
                }
            }),
        )
        .route(
            "/fail",
            post(move || {
                let failures = failures.clone();
                async move {
                    failures.next();
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            }),
        )
        .route("/bad", post(|| async { StatusCode::BAD_REQUEST }))
        .layer(
            IdempotencyLayer::new(engine).scope(|head: &http::request::Parts| {
                head.headers
                    .get("x-user")
                    .and_then(|user| user.to_str().ok())
                    .map(str::to_owned)
            }),
        )
}

fn post_to(path: &str, key: &str, user: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header("x-user", user)
        .header("idempotency-key", key)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

type Answer = (StatusCode, HeaderMap, String);

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn replayed(headers: &HeaderMap) -> bool {
    headers
        .get("idempotent-replayed")
        .is_some_and(|value| value == "true")
}

fn assert_problem(answer: &Answer, status: StatusCode, what: &str) {
    assert_eq!(answer.0, status, "{what}: {answer:?}");
    assert_eq!(
        answer.1["content-type"], "application/problem+json",
        "{what}"
    );
    assert!(!replayed(&answer.1), "{what}: a refusal is not a replay");
}

// ---------------------------------------------------------------------------------------------
// The core suite: the HTTP layer's answers, on any store
// ---------------------------------------------------------------------------------------------

/// Records the core suite leaves in the store for one prefix: the replayed key, the key once
/// in flight, alice's and bob's shared key, the stored 400. The 5xx key is released.
const RECORDS_PER_SUITE: u64 = 5;

/// Replays, a fingerprint mismatch, a key in flight, scopes, a 5xx releasing its key; every
/// key named under `prefix`. A fresh router (and fresh counters) over `engine`.
async fn core_suite<S: Store>(engine: Idempotency<S>, prefix: &str) {
    let handlers = Handlers::new();
    let app = app(engine, &handlers, Duration::ZERO);
    let key = |name: &str| format!("{prefix}-{name}");

    // A retry replays the first answer; the handler ran once.
    let first = send(&app, post_to("/payments", &key("pay"), "alice", "10")).await;
    assert_eq!(first.0, StatusCode::CREATED, "{prefix}: {first:?}");
    assert_eq!(first.2, "payment #1 for 10");
    assert!(!replayed(&first.1));
    assert!(
        first.1.get("set-cookie").is_some(),
        "the first answer is untouched"
    );
    for quoted in [key("pay"), format!("\"{}\"", key("pay"))] {
        let retry = send(&app, post_to("/payments", &quoted, "alice", "10")).await;
        assert_eq!(
            (retry.0, retry.2.as_str()),
            (StatusCode::CREATED, "payment #1 for 10"),
            "{prefix}: the retry replays"
        );
        assert!(replayed(&retry.1), "{prefix}: {retry:?}");
        assert_eq!(retry.1["location"], "/payments/1");
        assert!(
            retry.1.get("set-cookie").is_none(),
            "Set-Cookie is never replayed unasked"
        );
    }
    assert_eq!(handlers.payments.get(), 1, "{prefix}: charged once");

    // The same key for another request: 422, the handler not run.
    let other = send(&app, post_to("/payments", &key("pay"), "alice", "99")).await;
    assert_problem(&other, StatusCode::UNPROCESSABLE_ENTITY, "another body");
    let elsewhere = send(&app, post_to("/slow", &key("pay"), "alice", "10")).await;
    assert_problem(&elsewhere, StatusCode::UNPROCESSABLE_ENTITY, "another path");
    assert_eq!(handlers.payments.get(), 1);
    assert_eq!(handlers.slow.get(), 0);

    // A key in flight: 409 with Retry-After for the same request, 422 for another one.
    let held = tokio::spawn({
        let app = app.clone();
        let key = key("held");
        async move { send(&app, post_to("/slow", &key, "alice", "10")).await }
    });
    handlers.wait_entered().await;
    let conflict = send(&app, post_to("/slow", &key("held"), "alice", "10")).await;
    assert_problem(&conflict, StatusCode::CONFLICT, "a key in flight");
    assert!(conflict.1.contains_key("retry-after"), "{conflict:?}");
    let mismatch = send(&app, post_to("/slow", &key("held"), "alice", "11")).await;
    assert_problem(
        &mismatch,
        StatusCode::UNPROCESSABLE_ENTITY,
        "another body while in flight",
    );
    handlers.open_gate();
    let done = held.await.unwrap();
    assert_eq!(
        (done.0, done.2.as_str()),
        (StatusCode::CREATED, "slow #1 for 10"),
        "{prefix}"
    );
    assert!(!replayed(&done.1));
    let after = send(&app, post_to("/slow", &key("held"), "alice", "10")).await;
    assert_eq!(
        (after.0, after.2.as_str()),
        (StatusCode::CREATED, "slow #1 for 10")
    );
    assert!(replayed(&after.1), "completed, it replays: {after:?}");
    assert_eq!(handlers.slow.get(), 1, "{prefix}: /slow ran once");

    // Scopes: bob's key is not alice's, though they spell it alike.
    let alice = send(&app, post_to("/payments", &key("shared"), "alice", "7")).await;
    let bob = send(&app, post_to("/payments", &key("shared"), "bob", "7")).await;
    assert_eq!(alice.2, "payment #2 for 7");
    assert_eq!(
        bob.2, "payment #3 for 7",
        "bob is not shown alice's receipt"
    );
    assert!(!replayed(&alice.1) && !replayed(&bob.1));
    for (user, expected) in [("alice", "payment #2 for 7"), ("bob", "payment #3 for 7")] {
        let retry = send(&app, post_to("/payments", &key("shared"), user, "7")).await;
        assert_eq!(retry.2, expected, "{prefix}: {user} gets their own answer");
        assert!(replayed(&retry.1));
    }
    assert_eq!(handlers.payments.get(), 3);

    // A 5xx releases the key: a retry runs again, and is not a replay.
    for attempt in 1..=2 {
        let failed = send(&app, post_to("/fail", &key("fail"), "alice", "")).await;
        assert_eq!(failed.0, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!replayed(&failed.1), "a 5xx is never replayed");
        assert_eq!(handlers.failures.get(), attempt, "{prefix}: the retry ran");
    }
    // A deterministic 4xx is kept.
    let bad = send(&app, post_to("/bad", &key("bad"), "alice", "")).await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    assert!(!replayed(&bad.1));
    let bad = send(&app, post_to("/bad", &key("bad"), "alice", "")).await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    assert!(replayed(&bad.1), "the 400 is replayed");
}

fn dbsize(port: u16) -> u64 {
    steadfast_test_support::redis::cli(port, &["dbsize"])
        .trim()
        .parse()
        .expect("a key count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_suite_holds_on_a_redis_server() {
    let server = RedisServer::start();
    let engine = Idempotency::new(RedisStore::new(client(&server, CALM_TIMEOUT).await));
    core_suite(engine, "server").await;
    assert_eq!(
        dbsize(server.port()),
        RECORDS_PER_SUITE,
        "one record a kept key, none for the released one"
    );
    assert!(
        server.calls("evalsha") > 0,
        "the records went through the scripts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_suite_holds_on_a_three_node_cluster() {
    let cluster = RedisCluster::start();
    let engine = Idempotency::new(RedisStore::new(cluster_client(&cluster).await));
    let prefixes = ["north", "south", "east", "west"];
    for prefix in prefixes {
        core_suite(engine.clone(), prefix).await;
    }
    let counts = cluster.key_counts();
    assert_eq!(
        counts.iter().sum::<u64>(),
        RECORDS_PER_SUITE * prefixes.len() as u64,
        "{counts:?}"
    );
    assert!(
        counts.iter().all(|&count| count > 0),
        "the suite's keys should spread over the three nodes: {counts:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Two app instances sharing a server
// ---------------------------------------------------------------------------------------------

/// A hundred concurrent requests with one key, alternating between two routers, each over its
/// own client to the same server; the handler takes 50 ms. The answers, and the shared handler
/// counter.
async fn a_hundred_over_two_instances(wait: Option<Duration>) -> (Vec<Answer>, usize) {
    let server = RedisServer::start();
    let handlers = Handlers::new();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let mut engine = Idempotency::new(RedisStore::new(client(&server, CALM_TIMEOUT).await));
        if let Some(wait) = wait {
            engine = engine.wait_for_in_flight(wait);
        }
        instances.push(app(engine, &handlers, Duration::from_millis(50)));
    }
    let mut tasks = Vec::new();
    for i in 0..100 {
        let app = instances[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            send(&app, post_to("/payments", "order-1", "alice", "10")).await
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("no request panicked"));
    }
    // Both instances replay the record afterwards.
    for app in &instances {
        let retry = send(app, post_to("/payments", "order-1", "alice", "10")).await;
        assert_eq!(
            (retry.0, retry.2.as_str()),
            (StatusCode::CREATED, "payment #1 for 10")
        );
        assert!(replayed(&retry.1));
    }
    (answers, handlers.payments.get())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_run_a_key_once_and_refuse_its_duplicates() {
    let (answers, charges) = a_hundred_over_two_instances(None).await;
    assert_eq!(charges, 1, "the handler ran once over both instances");
    let mut created = 0;
    let mut conflicts = 0;
    let mut original = 0;
    for answer in &answers {
        match answer.0 {
            StatusCode::CREATED => {
                created += 1;
                assert_eq!(answer.2, "payment #1 for 10");
                if !replayed(&answer.1) {
                    original += 1;
                }
            }
            StatusCode::CONFLICT => {
                conflicts += 1;
                assert!(answer.1.contains_key("retry-after"), "{answer:?}");
            }
            _ => panic!("neither 201 nor 409: {answer:?}"),
        }
    }
    assert_eq!(
        original, 1,
        "one answer is the handler's, the other 201s replay it"
    );
    assert!(created >= 1);
    assert!(
        conflicts >= 1,
        "the requests overlapped the 50 ms handler, or the test proves nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_waiting_for_a_key_in_flight_all_get_the_first_answer() {
    let (answers, charges) = a_hundred_over_two_instances(Some(Duration::from_secs(5))).await;
    assert_eq!(charges, 1, "the handler ran once over both instances");
    for answer in &answers {
        assert_eq!(
            (answer.0, answer.2.as_str()),
            (StatusCode::CREATED, "payment #1 for 10"),
            "{answer:?}"
        );
    }
    assert_eq!(
        answers.iter().filter(|answer| !replayed(&answer.1)).count(),
        1,
        "one answer is the handler's, the 99 others replay it"
    );
}

// ---------------------------------------------------------------------------------------------
// The server killed mid-run
// ---------------------------------------------------------------------------------------------

/// Sends a request and times it, on a task of its own (a panic would fail the join).
fn timed(app: &Router, request: Request<Body>) -> tokio::task::JoinHandle<(Answer, Duration)> {
    let app = app.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let answer = send(&app, request).await;
        (answer, started.elapsed())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_closed_promptly_and_a_restarted_one_replays_what_was_done() {
    let mut server = RedisServer::start();
    let store = RedisStore::new(client(&server, COMMAND_TIMEOUT).await);
    // The lease is short so that a key whose completion the outage lost frees itself soon.
    let lease = Duration::from_millis(1_000);
    let handlers = Handlers::new();
    let closed = app(
        Idempotency::new(store.clone()).lease(lease),
        &handlers,
        Duration::ZERO,
    );
    let open = app(
        Idempotency::new(store).lease(lease).fail_open(true),
        &handlers,
        Duration::ZERO,
    );

    // Done before the kill.
    let before = send(&closed, post_to("/payments", "before", "alice", "10")).await;
    assert_eq!(
        (before.0, before.2.as_str()),
        (StatusCode::CREATED, "payment #1 for 10")
    );
    // In its handler when the server dies.
    let mid_run = timed(&closed, post_to("/slow", "mid-run", "alice", "10"));
    handlers.wait_entered().await;

    tokio::task::block_in_place(|| server.kill());

    // Fail closed: 503 with Retry-After, the handler not called, the replay not reachable.
    let fresh = timed(&closed, post_to("/payments", "during", "alice", "10"));
    let retry = timed(&closed, post_to("/payments", "before", "alice", "10"));
    // Fail open: the handler runs without a claim.
    let opened = timed(&open, post_to("/payments", "open", "alice", "20"));
    // The handler in flight finishes: its answer reaches the client though it cannot be stored.
    handlers.open_gate();

    for (what, task) in [("a new key", fresh), ("a done key", retry)] {
        let (answer, took) = task.await.expect("no panic");
        assert_problem(&answer, StatusCode::SERVICE_UNAVAILABLE, what);
        assert!(answer.1.contains_key("retry-after"), "{what}: {answer:?}");
        assert!(took < PROMPT, "{what}: the 503 took {took:?}");
    }
    let (answer, took) = opened.await.expect("no panic");
    assert_eq!(
        (answer.0, answer.2.as_str()),
        (StatusCode::CREATED, "payment #2 for 20"),
        "failing open, the handler ran"
    );
    assert!(!replayed(&answer.1));
    assert!(took < PROMPT, "failing open took {took:?}");
    let (answer, took) = mid_run.await.expect("no panic");
    assert_eq!(
        (answer.0, answer.2.as_str()),
        (StatusCode::CREATED, "slow #1 for 10"),
        "the answer of the handler in flight is not lost with the store"
    );
    assert!(!replayed(&answer.1));
    assert!(took < PROMPT + PROMPT, "the mid-run request took {took:?}");
    assert_eq!(
        handlers.payments.get(),
        2,
        "closed, the handler was not called; open, it was"
    );

    tokio::task::block_in_place(|| server.restart());

    // The client reconnects by itself (every 100 ms): poll with the completed key, whose
    // replay has no side effect, until the store answers again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let replay = loop {
        let answer = send(&closed, post_to("/payments", "before", "alice", "10")).await;
        if answer.0 != StatusCode::SERVICE_UNAVAILABLE {
            break answer;
        }
        assert!(Instant::now() < deadline, "no reconnection: {answer:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (replay.0, replay.2.as_str()),
        (StatusCode::CREATED, "payment #1 for 10"),
        "the completion acknowledged before the kill survived it"
    );
    assert!(replayed(&replay.1));

    // New requests succeed again, on both policies.
    let fresh = send(&closed, post_to("/payments", "after", "alice", "30")).await;
    assert_eq!(
        (fresh.0, fresh.2.as_str()),
        (StatusCode::CREATED, "payment #3 for 30")
    );
    let again = send(&open, post_to("/payments", "after", "alice", "30")).await;
    assert_eq!(again.2, "payment #3 for 30");
    assert!(replayed(&again.1));
    assert_eq!(handlers.payments.get(), 3);

    // The mid-run completion was lost with the server: its claim survived the restart and
    // holds the key (409) until the lease runs out; then a retry runs again, and is kept.
    let deadline = Instant::now() + lease + Duration::from_secs(5);
    loop {
        let retry = tokio::spawn({
            let closed = closed.clone();
            async move { send(&closed, post_to("/slow", "mid-run", "alice", "10")).await }
        });
        handlers.open_gate();
        let retry = retry.await.expect("no panic");
        if retry.0 == StatusCode::CONFLICT {
            assert!(retry.1.contains_key("retry-after"));
            // The permit was not taken: take it back.
            handlers
                .gate
                .acquire()
                .await
                .expect("the gate stays open")
                .forget();
            assert!(Instant::now() < deadline, "the lost claim never expired");
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(
            (retry.0, retry.2.as_str()),
            (StatusCode::CREATED, "slow #2 for 10"),
            "the lease ran out: the retry ran"
        );
        assert!(!replayed(&retry.1));
        break;
    }
    let kept = send(&closed, post_to("/slow", "mid-run", "alice", "10")).await;
    assert_eq!(kept.2, "slow #2 for 10");
    assert!(replayed(&kept.1));
}
