//! The HTTP half of the cache benchmarks: the origin and requests every HTTP entry shares,
//! hitbox's layer, and group `http_hit`.
//!
//! `http_hit`: `GET /products/42`, a hit, through each response cache layer over the same
//! origin (a 32-byte body with `Cache-Control: max-age=60`), every layer filled with keys
//! `0..1000` before timing and the origin's calls counted across the timing (none may come).
//!
//! - `typed_get_with`: `TieredCache::get_with` of an `Arc<String>` by a `u64` key, as in group
//!   `hit`: the typed L1 hit the layer's goal is measured against.
//! - `http_bare`: the origin alone.
//! - `steadfast_layer`, `steadfast_layer_quick`: our `ResponseCacheLayer` (moka L1, quick L1),
//!   polled once by hand like the typed hit.
//! - `hitbox`: hitbox-tower over its moka backend, polled once by hand.
//! - `rt/*`: the same layers and the peers whose futures need a runtime (tower-http-cache over
//!   its in-memory backend, axum-response-cache over its `cached` store), each call driven by
//!   a current-thread Tokio runtime's `block_on`, which adds the same cost to every entry.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use criterion::Criterion;
use http_body_util::Full;
use steadfast::cache::http::ResponseCacheLayer;
use steadfast::cache::{L1Kind, TieredCache};
use steadfast_benches::poll_once;
use tower::{service_fn, Layer, Service, ServiceExt};

use steadfast_benches::call_once;

use crate::{no_load, steadfast, CAPACITY, HOT, KEYS, TEXT, TTL};

/// The body of the benchmark's requests and of its origin's responses.
pub(crate) type HttpBody = Full<Bytes>;

pub(crate) fn http_request(key: u64) -> http::Request<HttpBody> {
    http::Request::get(format!("/products/{key}"))
        .body(Full::new(Bytes::new()))
        .expect("a valid request")
}

/// Calls that reached the service behind tower-resilience's cache or hitbox's: none may while
/// timing.
pub(crate) static ORIGIN_CALLS: AtomicU64 = AtomicU64::new(0);

/// The HTTP service behind `http_bare` and `hitbox`, generic over the request's body: hitbox
/// hands its upstream the request with its body wrapped.
pub(crate) fn http_origin<B: Send + 'static>() -> impl Service<
    http::Request<B>,
    Response = http::Response<HttpBody>,
    Error = Infallible,
    Future = Ready<Result<http::Response<HttpBody>, Infallible>>,
> + Clone
       + Send
       + 'static {
    service_fn(|_: http::Request<B>| {
        ORIGIN_CALLS.fetch_add(1, Ordering::Relaxed);
        let mut response = http::Response::new(Full::new(Bytes::from_static(TEXT.as_bytes())));
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("max-age=60"),
        );
        ready(Ok::<_, Infallible>(response))
    })
}

pub(crate) fn hitbox_service() -> impl Service<
    http::Request<HttpBody>,
    Response = http::Response<hitbox_http::BufferedBody<HttpBody>>,
    Error = Infallible,
> {
    use hitbox::policy::PolicyConfig;
    use hitbox_http::extractors::Path;
    use hitbox_http::predicates::{NeutralRequestPredicate, NeutralResponsePredicate};

    let backend = hitbox_moka::MokaBackend::builder()
        .max_entries(CAPACITY)
        .build();
    let config = hitbox::Config::builder()
        .request_predicate(NeutralRequestPredicate::new())
        .response_predicate(NeutralResponsePredicate::new())
        .extractor(Path::new("/products/{id}"))
        .policy(PolicyConfig::builder().ttl(TTL).build())
        .build();
    hitbox_tower::Cache::builder()
        .backend(backend)
        .config(config)
        .build()
        .layer(http_origin())
}

pub(crate) fn hitbox_call<S>(service: &mut S, key: u64) -> S::Response
where
    S: Service<http::Request<HttpBody>, Error = Infallible>,
{
    match call_once(service, http_request(key)) {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn steadfast_layer(
    kind: L1Kind,
) -> impl Service<
    http::Request<HttpBody>,
    Response = http::Response<steadfast::cache::http::ResponseBody<HttpBody>>,
    Error = Infallible,
> {
    let layer = ResponseCacheLayer::builder(
        TieredCache::builder("bench")
            .max_capacity(CAPACITY)
            .ttl(TTL)
            .l1(kind),
    )
    .build()
    .expect("a valid layer");
    let runtime = runtime();
    let mut service = layer.layer(http_origin::<HttpBody>());
    // Misses load on a task of their own: fill under a runtime, then time without one.
    runtime.block_on(async {
        for key in 0..KEYS {
            let response = (&mut service)
                .oneshot(http_request(key))
                .await
                .expect("a load");
            assert_eq!(response.status(), http::StatusCode::OK);
        }
    });
    let response = call_once(&mut service, http_request(HOT)).expect("a hit");
    let status = response.headers()["cache-status"].to_str().expect("text");
    assert_eq!(status, "bench; hit");
    service
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The origin behind axum-response-cache, which takes axum's types only. Its work is done when
/// its future is polled, not when it is called: axum-response-cache calls its inner service
/// on every request (and drops the future on a hit), so an eager origin would bill it for
/// work a real handler does not do.
fn axum_origin() -> impl Service<
    axum::extract::Request,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    service_fn(|_: axum::extract::Request| async {
        ORIGIN_CALLS.fetch_add(1, Ordering::Relaxed);
        let mut response = axum::response::Response::new(axum::body::Body::from(TEXT));
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("max-age=60"),
        );
        Ok::<_, Infallible>(response)
    })
}

fn axum_request(key: u64) -> axum::extract::Request {
    http::Request::get(format!("/products/{key}"))
        .body(axum::body::Body::empty())
        .expect("a valid request")
}

/// Group `http_hit`.
pub(crate) fn http_hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("http_hit");
    let cache = steadfast();
    group.bench_function("typed_get_with", |b| {
        b.iter(|| black_box(poll_once(cache.get_with(black_box(HOT), no_load))))
    });
    drop(cache);

    let mut bare = http_origin::<HttpBody>();
    group.bench_function("http_bare", |b| {
        b.iter(|| black_box(call_once(&mut bare, http_request(black_box(HOT)))))
    });
    // The bare origin's calls above are counted too: the check starts after them.

    let mut moka = steadfast_layer(L1Kind::Moka);
    let mut quick = steadfast_layer(L1Kind::Quick);
    let mut hitbox = hitbox_service();
    for key in 0..KEYS {
        hitbox_call(&mut hitbox, key);
    }
    let calls = ORIGIN_CALLS.load(Ordering::Relaxed);
    group.bench_function("steadfast_layer", |b| {
        b.iter(|| black_box(call_once(&mut moka, http_request(black_box(HOT)))))
    });
    group.bench_function("steadfast_layer_quick", |b| {
        b.iter(|| black_box(call_once(&mut quick, http_request(black_box(HOT)))))
    });
    group.bench_function("hitbox", |b| {
        b.iter(|| black_box(hitbox_call(&mut hitbox, black_box(HOT))))
    });
    assert_eq!(ORIGIN_CALLS.load(Ordering::Relaxed), calls);

    // Driven by a runtime: the peers that need one, and ours and hitbox beside them.
    let runtime = runtime();
    let mut tower_http_cache = tower_http_cache::prelude::CacheLayer::builder(
        tower_http_cache::prelude::InMemoryBackend::new(CAPACITY),
    )
    .ttl(TTL)
    .build()
    .layer(http_origin::<HttpBody>());
    let mut axum_response_cache =
        axum_response_cache::CacheLayer::with_lifespan(TTL).layer(axum_origin());
    runtime.block_on(async {
        for key in 0..KEYS {
            (&mut tower_http_cache)
                .oneshot(http_request(key))
                .await
                .expect("a load");
            (&mut axum_response_cache)
                .oneshot(axum_request(key))
                .await
                .expect("a load");
        }
    });
    macro_rules! driven {
        ($name:literal, $service:expr, $request:expr) => {
            let calls = ORIGIN_CALLS.load(Ordering::Relaxed);
            group.bench_function($name, |b| {
                b.iter(|| {
                    black_box(runtime.block_on((&mut $service).oneshot($request(black_box(HOT)))))
                })
            });
            let more = ORIGIN_CALLS.load(Ordering::Relaxed) - calls;
            if $name != "rt/http_bare" {
                assert_eq!(more, 0, "{} reached the origin while timed", $name);
            }
        };
    }
    driven!("rt/http_bare", bare, http_request);
    driven!("rt/steadfast_layer", moka, http_request);
    driven!("rt/steadfast_layer_quick", quick, http_request);
    driven!("rt/hitbox", hitbox, http_request);
    driven!("rt/tower_http_cache", tower_http_cache, http_request);
    driven!("rt/axum_response_cache", axum_response_cache, axum_request);
    group.finish();
}
