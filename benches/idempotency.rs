//! Criterion benchmarks of the Steadfast idempotency layer over its in-memory store, next to the
//! peer `axum-idempotent`.
//!
//! Run them all with `cargo bench -p steadfast-benches --bench idempotency`. `BENCHMARKS.md` at
//! the repository root holds results and explains how to read them (section `Idempotency`).
//!
//! Every HTTP entry wraps the same axum `Router`: one route, `POST /payments`, whose handler
//! counts its calls and answers `201 Created` with a 16-byte text body. Every request is built in
//! the timed loop the same way, `bare` included: `POST /payments`, a 32-byte body, an
//! `Idempotency-Key` header and a `Cookie` header (which only axum-idempotent's session reads).
//! The response is dropped unread. The services and their futures are not always ready in one
//! poll (axum-idempotent's session store is async; its session layer too), so the HTTP groups
//! run on a current-thread tokio runtime: each sample is one `block_on` over a loop of
//! `ready().await` and `call(request).await`, what criterion's `to_async` does. No metrics
//! recorder is installed, so the `metrics` macros reach the no-op recorder.
//!
//! The peer `idempotent` (2.x, whose tower layer has a memory store) is not built here: every
//! release that has the layer declares a newer rustc than the workspace's, and cargo refuses
//! it. `BENCHMARKS.md` says how it was measured out of tree.
//!
//! Groups:
//!
//! - `new_key`: a fresh key each call. Keys are made before the timed loop; each batch of at
//!   most [`CHUNK`] calls gets a fresh stack (a fresh store) built outside the timed loop, so the
//!   stores never evict (ours holds 100 000 records). `bare` is the router alone.
//!   `steadfast` is `IdempotencyLayer::new(Idempotency::in_memory())` around it.
//!   `axum_idempotent` is its `IdempotentLayer` in direct-key mode (the `idempotency-key`
//!   header, not required, as ours) inside ruts' `SessionLayer` over its moka store and
//!   tower-cookies' `CookieManagerLayer`, the stack it needs; `bare_session` is those two
//!   session layers around the router, without the idempotency layer. axum-idempotent keeps a
//!   session's answers in one map that every write scans for expired fields, so its calls move
//!   to a new session every [`KEYS_PER_SESSION`] keys. After each batch, the last key is sent
//!   again (untimed) and must not reach the handler.
//! - `replay`: the same key every call, after a first call made before timing: every timed call
//!   is a replay (the handler's count must not move), except for the bare entries, which run
//!   the handler each time.
//! - `run`: the business-call form, driven by hand (one poll with a no-op waker: the memory
//!   store answers at once). `direct` calls the closure alone; `steadfast_new_key` is
//!   `Idempotency::run` with a fresh key each call (keys made beforehand, a fresh engine per
//!   batch), `steadfast_replay` the same key each call. The fingerprint is computed once, as a
//!   caller that already has one would.
//! - `parts`: pieces of our path, by hand, to see where the time goes: the request fingerprint
//!   the layer computes (method, path, query, 32-byte body: SHA-256), the store key (another
//!   SHA-256 of scope and key), the key's parse, and our memory store on a completed record:
//!   the claim a replay makes (moka's `and_compute_with`) beside a plain `get` of it.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use steadfast_benches::poll_once;

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use axum_idempotent::{IdempotentLayer, IdempotentOptions};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use http::header::{HeaderValue, COOKIE};
use http::{Method, Request, Response, StatusCode, Uri};
use ruts::store::moka::MokaStore;
use ruts::{CookieOptions, Id, SessionLayer};
use steadfast::idempotency::http::{IdempotencyLayer, IDEMPOTENCY_KEY};
use steadfast::idempotency::store::{Store, StoreKey};
use steadfast::idempotency::{Fingerprint, Idempotency, IdempotencyKey};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};
use tower_cookies::CookieManagerLayer;

/// The request body: 32 bytes.
const BODY: &[u8; 32] = br#"{"amount":1000,"currency":"EUR"}"#;
/// The route.
const PATH: &str = "/payments";
/// The handler's answer: 16 bytes.
const ANSWER: &str = "payment accepted";
/// The most calls in a row on one fresh store (ours holds 100 000 records).
const CHUNK: u64 = 50_000;
/// New keys per session for axum-idempotent, whose writes scan the session's fields.
const KEYS_PER_SESSION: u64 = 100;
/// How long answers are kept: ours keeps them 24 h by default; axum-idempotent is told the same
/// and so is its session cookie (it keeps an answer no longer than the cookie lives).
const RETENTION_SECS: u64 = 24 * 60 * 60;

/// Calls of the handler, all entries together.
static CALLS: AtomicU64 = AtomicU64::new(0);

fn calls() -> u64 {
    CALLS.load(Ordering::Relaxed)
}

/// The handler of every HTTP entry.
async fn pay() -> (StatusCode, &'static str) {
    CALLS.fetch_add(1, Ordering::Relaxed);
    (StatusCode::CREATED, ANSWER)
}

/// The router every HTTP entry wraps.
fn router() -> Router {
    Router::new().route(PATH, post(pay))
}

/// Ours, as the module docs show it.
fn steadfast() -> impl Service<Request<Body>, Response = Response<impl Send>, Error = Infallible> {
    IdempotencyLayer::new(Idempotency::in_memory()).layer(router())
}

/// ruts' session layers over a fresh moka store, around `inner`.
fn sessions<S>(
    inner: S,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let store = Arc::new(MokaStore::builder().build());
    let cookie = CookieOptions::build()
        .name("session")
        .max_age(RETENTION_SECS)
        .path("/");
    let session = SessionLayer::new(store).with_cookie_options(cookie);
    CookieManagerLayer::new().layer(session.layer(inner))
}

/// The session layers alone, around the router.
fn bare_session() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> {
    sessions(router())
}

/// axum-idempotent in direct-key mode, inside the session layers it needs.
fn axum_idempotent() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> {
    let options = IdempotentOptions::default()
        .use_idempotency_key_header(Some("idempotency-key"), false)
        .expire_after(RETENTION_SECS as i64);
    sessions(IdempotentLayer::<MokaStore>::new(options).layer(router()))
}

/// A key for the `i`-th call of a batch.
fn key(i: u64) -> HeaderValue {
    HeaderValue::try_from(format!("order-{i:016x}")).expect("a valid header value")
}

/// A cookie naming a fresh session id.
fn session_cookie() -> HeaderValue {
    let cookie = HeaderValue::try_from(format!("session={}", Id::default())).expect("valid");
    // The first clone of these bytes moves them behind a shared header; later clones count a
    // reference. Do that here, not in the timed loop.
    drop(cookie.clone());
    cookie
}

/// A URI whose clones count a reference.
fn uri() -> Uri {
    let uri: Uri = PATH.parse().expect("a valid URI");
    drop(uri.clone());
    uri
}

/// The request of every HTTP entry, built anew each call.
#[inline(always)]
fn request(uri: &Uri, key: HeaderValue, cookie: &HeaderValue) -> Request<Body> {
    let mut request = Request::new(Body::from(Bytes::from_static(BODY)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.clone();
    let headers = request.headers_mut();
    headers.insert(IDEMPOTENCY_KEY, key);
    headers.insert(COOKIE, cookie.clone());
    request
}

/// One call: `ready().await`, then `call(request).await`.
#[inline(always)]
async fn call<S, B>(service: &mut S, request: Request<Body>) -> Response<B>
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
{
    match service.ready().await {
        Ok(service) => match service.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(never) => match never {},
    }
}

/// The runtime of the HTTP groups: current thread, time and I/O drivers on (moka and the
/// session layers need none, but a server has them).
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// One `new_key` entry: `make()` builds a fresh stack for each batch, inside the runtime and
/// before timing; `idempotent` says whether it should store answers (not the bare entries).
fn new_key_entry<S, B>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    name: &str,
    idempotent: bool,
    make: impl Fn() -> S,
) where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
{
    let uri = uri();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(CHUNK);
                let keys: Vec<HeaderValue> = (0..n).map(key).collect();
                let cookies: Vec<HeaderValue> = (0..n.div_ceil(KEYS_PER_SESSION))
                    .map(|_| session_cookie())
                    .collect();
                let last = (
                    key(n - 1),
                    cookies[((n - 1) / KEYS_PER_SESSION) as usize].clone(),
                );
                let before = calls();
                total += runtime.block_on(async {
                    let mut service = make();
                    let start = Instant::now();
                    for (i, key) in keys.into_iter().enumerate() {
                        let cookie = &cookies[i / KEYS_PER_SESSION as usize];
                        let response = call(&mut service, request(&uri, key, cookie)).await;
                        black_box(&response);
                    }
                    let elapsed = start.elapsed();
                    assert_eq!(
                        calls() - before,
                        n,
                        "{name}: every new key runs the handler"
                    );
                    // The last key again, untimed: stored, it must not reach the handler.
                    let response = call(&mut service, request(&uri, last.0, &last.1)).await;
                    assert!(
                        response.status().is_success(),
                        "{name}: {}",
                        response.status()
                    );
                    let ran = calls() - before - n;
                    assert_eq!(
                        ran,
                        u64::from(!idempotent),
                        "{name}: the repeat ran {ran} times"
                    );
                    elapsed
                });
                done += n;
            }
            total
        })
    });
}

/// One `replay` entry: a first call before timing, then the same key each call.
fn replay_entry<S, B>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    name: &str,
    idempotent: bool,
    make: impl Fn() -> S,
) where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>,
{
    let uri = uri();
    let key = key(0);
    drop(key.clone());
    let cookie = session_cookie();
    let mut service = runtime.block_on(async {
        let mut service = make();
        let before = calls();
        let first = call(&mut service, request(&uri, key.clone(), &cookie)).await;
        assert_eq!(first.status(), StatusCode::CREATED, "{name}");
        let second = call(&mut service, request(&uri, key.clone(), &cookie)).await;
        assert_eq!(second.status(), StatusCode::CREATED, "{name}");
        assert_eq!(
            calls() - before,
            2 - u64::from(idempotent),
            "{name}: the second call"
        );
        service
    });
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let before = calls();
                let start = Instant::now();
                for _ in 0..iters {
                    let response = call(&mut service, request(&uri, key.clone(), &cookie)).await;
                    black_box(&response);
                }
                let elapsed = start.elapsed();
                let ran = calls() - before;
                assert_eq!(ran, if idempotent { 0 } else { iters }, "{name}: {ran} ran");
                elapsed
            })
        })
    });
}

fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

/// Group `new_key`.
fn new_key(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("new_key");
    configure(&mut group);
    new_key_entry(&mut group, &runtime, "bare", false, router);
    new_key_entry(&mut group, &runtime, "steadfast", true, steadfast);
    new_key_entry(&mut group, &runtime, "bare_session", false, bare_session);
    new_key_entry(
        &mut group,
        &runtime,
        "axum_idempotent",
        true,
        axum_idempotent,
    );
    group.finish();
}

/// Group `replay`.
fn replay(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("replay");
    configure(&mut group);
    replay_entry(&mut group, &runtime, "bare", false, router);
    replay_entry(&mut group, &runtime, "steadfast", true, steadfast);
    replay_entry(&mut group, &runtime, "bare_session", false, bare_session);
    replay_entry(
        &mut group,
        &runtime,
        "axum_idempotent",
        true,
        axum_idempotent,
    );
    group.finish();
}

/// The business call: a small receipt, at once.
fn charge() -> Ready<Result<String, Infallible>> {
    CALLS.fetch_add(1, Ordering::Relaxed);
    ready(Ok(String::from("receipt-0001")))
}

/// Group `run`: `Idempotency::run` against the closure alone.
fn run(c: &mut Criterion) {
    let mut group = c.benchmark_group("run");
    configure(&mut group);
    let print = Fingerprint::of(BODY);
    let business_key = |i: u64| IdempotencyKey::try_from(format!("order-{i:016x}").as_str());

    group.bench_function("direct", |b| {
        b.iter(|| black_box(poll_once(charge()).is_ok()))
    });

    group.bench_function("steadfast_new_key", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(CHUNK);
                let keys: Vec<IdempotencyKey> = (0..n)
                    .map(|i| business_key(i).expect("a valid key"))
                    .collect();
                let engine = Idempotency::in_memory();
                let before = calls();
                let start = Instant::now();
                for key in &keys {
                    black_box(poll_once(engine.run("alice", key, print, charge)).is_ok());
                }
                total += start.elapsed();
                assert_eq!(calls() - before, n, "every new key runs the call");
                done += n;
            }
            total
        })
    });

    let engine = Idempotency::in_memory();
    let key = business_key(0).expect("a valid key");
    let first: String = poll_once(engine.run("alice", &key, print, charge)).expect("runs");
    let before = calls();
    let again: String = poll_once(engine.run("alice", &key, print, charge)).expect("replays");
    assert_eq!((first.as_str(), calls()), (again.as_str(), before));
    group.bench_function("steadfast_replay", |b| {
        b.iter_custom(|iters| {
            let before = calls();
            let start = Instant::now();
            for _ in 0..iters {
                let result: Result<String, _> =
                    poll_once(engine.run("alice", black_box(&key), print, charge));
                black_box(result.is_ok());
            }
            let elapsed = start.elapsed();
            assert_eq!(calls(), before, "every timed call is a replay");
            elapsed
        })
    });

    group.finish();
}

/// Group `parts`: pieces of our path.
fn parts(c: &mut Criterion) {
    let mut group = c.benchmark_group("parts");
    configure(&mut group);

    group.bench_function("fingerprint", |b| {
        b.iter(|| {
            let print = Fingerprint::builder()
                .part(black_box(b"POST"))
                .part(black_box(PATH.as_bytes()))
                .part(black_box(b""))
                .part(black_box(BODY))
                .finish();
            black_box(print)
        })
    });

    let key = IdempotencyKey::try_from("order-0000000000000000").expect("a valid key");
    group.bench_function("store_key", |b| {
        b.iter(|| black_box(StoreKey::new(black_box(""), black_box(&key))))
    });

    group.bench_function("key_parse", |b| {
        b.iter(|| black_box(IdempotencyKey::parse(black_box(b"order-0000000000000000")).is_ok()))
    });

    // Our memory store on a completed key: the claim a replay makes (an entry computation),
    // beside a plain read of the same record.
    let engine = Idempotency::in_memory();
    let print = Fingerprint::of(BODY);
    let receipt: String = poll_once(engine.run("alice", &key, print, charge)).expect("runs");
    black_box(receipt);
    let store = engine.store();
    let store_key = StoreKey::new("alice", &key);
    let lease = Duration::from_secs(30);
    group.bench_function("store_claim_completed", |b| {
        b.iter(|| black_box(poll_once(store.claim(black_box(&store_key), print, lease)).is_ok()))
    });
    group.bench_function("store_get_completed", |b| {
        b.iter(|| black_box(poll_once(store.get(black_box(&store_key))).is_ok()))
    });

    group.finish();
}

criterion_group!(benches, new_key, replay, run, parts);
criterion_main!(benches);
