//! Criterion benchmarks of the Steadfast fallback layer and its degradation switches, next to
//! the peers `tower-resilience-fallback` and `tower-fallback` (Zebra's).
//!
//! Run them all with `cargo bench -p steadfast-benches --bench fallback`. `BENCHMARKS.md` at
//! the repository root holds results and explains how to read them.
//!
//! Every service is driven *by hand*, as in `benches/breaker.rs`: `poll_ready`, `call`, then
//! one poll of the response future with a no-op waker. Every inner service and every fallback
//! answers with a ready future, so one poll completes a call (the benchmark panics otherwise);
//! no async runtime runs in the timed loops. No metrics recorder is installed, so the `metrics`
//! macros reach the no-op recorder.
//!
//! Groups:
//!
//! - `success`: one successful call, `u64` in and out. `bare` is the inner service alone;
//!   subtract it to get a layer's overhead. `steadfast` is `FallbackLayer` in the typed mode,
//!   keeping nothing of the request; `steadfast_switch_off` the same bound to a degradation
//!   switch that is off. `tower_resilience` is `tower-resilience-fallback`'s
//!   `FallbackLayer::tower_service` (a Tower service as the fallback, like ours),
//!   `tower_resilience_fn` its `FallbackLayer::service` (an async closure), and
//!   `tower_fallback` Zebra's `Fallback::new`.
//! - `switch_read`: `Switch::level` and `Switch::is_at_least`, beside a relaxed load of a
//!   plain `AtomicU8` (the floor).
//! - `degraded`: a call through a layer whose switch is on (the fallback answers, the inner
//!   service is not called), beside the same fallback service called directly by hand with a
//!   `FallbackRequest`, and the inner service alone.
//! - `error_path`: the inner service fails, the fallback answers; ours and the peers, beside
//!   the failing inner service alone and the fallback alone.
//! - `success_http`: `FallbackLayer::http()` (keeps method and URI as
//!   `http::request::Parts`) around a service of `http::Request<()>` to
//!   `http::Response<Full<Bytes>>` (a static body), beside the same mode keeping nothing, so
//!   that the cost of keeping method and URI shows. Each iteration builds its request (an
//!   empty `Request<()>` given a clone of a URI parsed once), `bare` included. The sizes of
//!   the response futures are printed before the group runs.
//! - `success_threads`: successful calls from one thread and from two threads, each thread
//!   with its own clone of one service; the estimate is wall-clock time per call over all
//!   threads, so the inverse is throughput.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use steadfast_benches::{call_once, parallel};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use steadfast::fallback::{Degrader, FallbackLayer, FallbackRequest, Flip, Reason, Switch};
use tower::{service_fn, Layer, Service};
use tower_resilience_fallback as trf;

/// What the inner services answer (their request); fallbacks answer [`FALLBACK`].
const FALLBACK: u64 = 0;

/// The inner service of the `u64` benchmarks: answers its request at once.
fn echo(
) -> impl Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>>
       + Clone
       + Send
       + Sync
       + 'static {
    service_fn(|x: u64| ready(Ok::<u64, Infallible>(x)))
}

/// An inner service that always fails, at once.
fn failing(
) -> impl Service<u64, Response = u64, Error = &'static str, Future = Ready<Result<u64, &'static str>>>
       + Clone
       + Send
       + Sync
       + 'static {
    service_fn(|_: u64| ready(Err::<u64, &'static str>("down")))
}

/// Steadfast's fallback: a `service_fn` over a function item (zero-sized, free to clone).
fn fallback(_: FallbackRequest<()>) -> Ready<Result<u64, Infallible>> {
    ready(Ok(FALLBACK))
}

/// The peers' fallback: the same answer, given the request itself.
fn peer_fallback(_: u64) -> Ready<Result<u64, Infallible>> {
    ready(Ok(FALLBACK))
}

/// The switch the `*_switch_*` entries are bound to, at level 1.
fn switch(degrader: &Degrader) -> Switch {
    degrader.switch("bench").expect("valid name")
}

/// The size of `service`'s response future: what each call builds and moves.
fn future_size<S: Service<R>, R>(_: &S) -> usize {
    std::mem::size_of::<S::Future>()
}

/// `tower-resilience-fallback` with a Tower service as its fallback, like ours.
fn tower_resilience_service<S>(
    inner: S,
) -> impl Service<u64, Response = u64, Error = trf::FallbackError<S::Error, Infallible>>
       + Clone
       + Send
       + Sync
where
    S: Service<u64, Response = u64> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    trf::FallbackLayer::<u64, u64, S::Error>::tower_service(service_fn(peer_fallback)).layer(inner)
}

/// `tower-resilience-fallback` with an async closure as its fallback.
fn tower_resilience_fn<S>(
    inner: S,
) -> impl Service<u64, Response = u64, Error = trf::FallbackError<S::Error>> + Clone
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + Sync + 'static,
{
    trf::FallbackLayer::<u64, u64, S::Error>::service(|_: u64| ready(Ok(FALLBACK))).layer(inner)
}

/// Zebra's `tower-fallback`, whose policy is "on any error" by default.
fn tower_fallback<S>(
    inner: S,
) -> impl Service<u64, Response = u64, Error = tower_fallback::BoxedError> + Clone + Send + Sync
where
    S: Service<u64, Response = u64> + Clone + Send + Sync,
    S::Error: Into<tower_fallback::BoxedError>,
{
    tower_fallback::Fallback::new(inner, service_fn(peer_fallback))
}

/// Group `success`.
fn success(c: &mut Criterion) {
    let mut group = c.benchmark_group("success");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let mut service = echo();
    group.bench_function("bare", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let mut service = FallbackLayer::from_fn(fallback).layer(echo());
    assert_eq!(call_once(&mut service, 1).expect("served"), 1);
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let degrader = Degrader::new();
    let mut service = FallbackLayer::from_fn(fallback)
        .switch(switch(&degrader), 1)
        .layer(echo());
    assert_eq!(call_once(&mut service, 1).expect("served"), 1);
    group.bench_function("steadfast_switch_off", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let mut service = tower_resilience_service(echo());
    assert_eq!(call_once(&mut service, 1).expect("served"), 1);
    group.bench_function("tower_resilience", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let mut service = tower_resilience_fn(echo());
    assert_eq!(call_once(&mut service, 1).expect("served"), 1);
    group.bench_function("tower_resilience_fn", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let mut service = tower_fallback(echo());
    assert_eq!(call_once(&mut service, 1).expect("served"), 1);
    group.bench_function("tower_fallback", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    group.finish();
}

/// Group `switch_read`.
fn switch_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("switch_read");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let degrader = Degrader::new();
    let switch = switch(&degrader);
    degrader
        .set("bench", 1, Flip::new("bench", "switch_read"))
        .expect("valid name");
    assert_eq!(switch.level(), 1);

    let plain = AtomicU8::new(1);
    group.bench_function("atomic_u8_load", |b| {
        b.iter(|| black_box(black_box(&plain).load(Ordering::Relaxed)))
    });
    group.bench_function("level", |b| {
        b.iter(|| black_box(black_box(&switch).level()))
    });
    group.bench_function("is_at_least", |b| {
        b.iter(|| black_box(black_box(&switch).is_at_least(black_box(1))))
    });

    group.finish();
}

/// Group `degraded`.
fn degraded(c: &mut Criterion) {
    let mut group = c.benchmark_group("degraded");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let mut service = echo();
    group.bench_function("bare_inner", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let mut direct = service_fn(fallback);
    group.bench_function("direct", |b| {
        b.iter(|| {
            let request = FallbackRequest {
                reason: black_box(Reason::Switch),
                kept: (),
            };
            black_box(call_once(&mut direct, request).is_ok())
        })
    });

    let degrader = Degrader::new();
    let mut service = FallbackLayer::from_fn(fallback)
        .switch(switch(&degrader), 1)
        .layer(echo());
    degrader
        .set("bench", 1, Flip::new("bench", "degraded"))
        .expect("valid name");
    // The fallback answers: the inner service (which echoes 1) is not called.
    assert_eq!(call_once(&mut service, 1).expect("degraded"), FALLBACK);
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    group.finish();
}

/// Group `error_path`.
fn error_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("error_path");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let mut service = failing();
    group.bench_function("bare_error", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let mut direct = service_fn(fallback);
    group.bench_function("direct_fallback", |b| {
        b.iter(|| {
            let request = FallbackRequest {
                reason: black_box(Reason::Error),
                kept: (),
            };
            black_box(call_once(&mut direct, request).is_ok())
        })
    });

    let mut service = FallbackLayer::from_fn(fallback).layer(failing());
    assert_eq!(call_once(&mut service, 1).expect("fallback"), FALLBACK);
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let mut service = tower_resilience_service(failing());
    assert_eq!(call_once(&mut service, 1).expect("fallback"), FALLBACK);
    group.bench_function("tower_resilience", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let mut service = tower_resilience_fn(failing());
    assert_eq!(call_once(&mut service, 1).expect("fallback"), FALLBACK);
    group.bench_function("tower_resilience_fn", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let mut service = tower_fallback(failing());
    assert_eq!(call_once(&mut service, 1).expect("fallback"), FALLBACK);
    group.bench_function("tower_fallback", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    group.finish();
}

/// Group `success_http`: the HTTP mode, keeping method and URI against keeping nothing.
fn success_http(c: &mut Criterion) {
    use bytes::Bytes;
    use http::request::Parts;
    use http::{Request, Response, StatusCode, Uri};
    use http_body_util::Full;
    use steadfast::fallback::keep::Nothing;

    type Body = Full<Bytes>;

    fn ok(_: Request<()>) -> Ready<Result<Response<Body>, Infallible>> {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }
    fn cached(_: FallbackRequest<Parts>) -> Ready<Result<Response<Body>, Infallible>> {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"cached")))))
    }
    fn cached_nothing(_: FallbackRequest<()>) -> Ready<Result<Response<Body>, Infallible>> {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"cached")))))
    }
    /// A request as a server hands it over: a fresh head, its URI's bytes shared.
    #[inline(always)]
    fn request(uri: &Uri) -> Request<()> {
        let mut request = Request::new(());
        *request.uri_mut() = uri.clone();
        request
    }

    let uri: Uri = "/products/7?currency=EUR".parse().expect("valid URI");
    // The first clone of a URI parsed from a string shares its bytes (one allocation, once);
    // every clone after that counts a reference.
    drop(uri.clone());

    let method_uri = FallbackLayer::from_fn(cached).http().layer(service_fn(ok));
    let nothing = FallbackLayer::from_fn(cached_nothing)
        .http()
        .keep(Nothing)
        .layer(service_fn(ok));
    eprintln!(
        "success_http: response futures of {} bytes (bare), {} (keep nothing), {} (method and \
         URI); http::request::Parts is {} bytes",
        future_size::<_, Request<()>>(&service_fn(ok)),
        future_size::<_, Request<()>>(&nothing),
        future_size::<_, Request<()>>(&method_uri),
        std::mem::size_of::<Parts>(),
    );

    let mut group = c.benchmark_group("success_http");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let mut service = service_fn(ok);
    group.bench_function("bare", |b| {
        b.iter(|| black_box(&call_once(&mut service, request(black_box(&uri)))).is_ok())
    });

    let mut service = method_uri;
    let response = call_once(&mut service, request(&uri)).expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    group.bench_function("steadfast_method_uri", |b| {
        b.iter(|| black_box(&call_once(&mut service, request(black_box(&uri)))).is_ok())
    });

    let mut service = nothing;
    group.bench_function("steadfast_keep_nothing", |b| {
        b.iter(|| black_box(&call_once(&mut service, request(black_box(&uri)))).is_ok())
    });

    group.finish();
}

/// One `success_threads` entry: `service` cloned on each thread, then called by hand.
fn threads_entry<S>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    service: &S,
) where
    S: Service<u64> + Clone + Send + Sync,
{
    for n in [1, 2] {
        group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
            b.iter_custom(|iters| {
                parallel(n, iters, || {
                    let mut service = service.clone();
                    move || {
                        assert!(black_box(call_once(&mut service, black_box(1)).is_ok()));
                    }
                })
            })
        });
    }
}

/// Group `success_threads`.
fn success_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("success_threads");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);

    threads_entry(&mut group, "bare", &echo());
    threads_entry(
        &mut group,
        "steadfast",
        &FallbackLayer::from_fn(fallback).layer(echo()),
    );
    let degrader = Degrader::new();
    threads_entry(
        &mut group,
        "steadfast_switch_off",
        &FallbackLayer::from_fn(fallback)
            .switch(switch(&degrader), 1)
            .layer(echo()),
    );
    threads_entry(
        &mut group,
        "tower_resilience",
        &tower_resilience_service(echo()),
    );
    threads_entry(&mut group, "tower_fallback", &tower_fallback(echo()));

    group.finish();
}

criterion_group!(
    benches,
    success,
    switch_read,
    degraded,
    error_path,
    success_http,
    success_threads
);
criterion_main!(benches);
