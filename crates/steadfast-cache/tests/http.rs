//! The response cache layer inside real axum routers served on loopback, asked through a real
//! HTTP client: hits and misses, `Vary`, `no-store`, `private`, `304`, stale-if-error with the
//! origin failing, hanging or degraded, herds, bodies over the limit, per-user scopes, request
//! directives, invalidation by unsafe methods, and two routers sharing one real `redis-server`.
#![cfg(feature = "http")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use steadfast_cache::http::{ResponseCacheBuilder, ResponseCacheLayer, StoredResponse};
use steadfast_cache::{Builder, TieredCache};
use steadfast_core::{Clock, Degraded, Reason};

/// How the origin of a test answers, switchable while the server runs.
#[derive(Clone, Default)]
struct Origin {
    calls: Arc<AtomicUsize>,
    /// 0: answer; 1: 503; 2: hang; 3: a fallback's answer marked `Degraded`.
    mode: Arc<AtomicUsize>,
}

impl Origin {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn set(&self, mode: usize) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    /// Counts the call, then fails, hangs or degrades as set; `None` means answer normally.
    async fn enter(&self) -> Option<Response> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        match self.mode.load(Ordering::SeqCst) {
            1 => Some((StatusCode::SERVICE_UNAVAILABLE, format!("down #{n}")).into_response()),
            2 => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                None
            }
            3 => {
                let mut response = "from the fallback".into_response();
                response
                    .extensions_mut()
                    .insert(Degraded::new(Reason::BreakerOpen));
                response
                    .headers_mut()
                    .insert("cache-control", "max-age=60".parse().unwrap());
                Some(response)
            }
            _ => None,
        }
    }
}

fn routes(origin: &Origin) -> Router {
    let o = origin.clone();
    let product = move |Path(id): Path<u32>| {
        let o = o.clone();
        async move {
            if let Some(response) = o.enter().await {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let n = o.calls();
            (
                [("cache-control", "max-age=60"), ("etag", "\"v1\"")],
                format!("product {id} (call {n})"),
            )
                .into_response()
        }
    };
    let o = origin.clone();
    let greeting = move |headers: HeaderMap| {
        let o = o.clone();
        async move {
            if let Some(failed) = o.enter().await {
                return failed;
            }
            let language = headers
                .get("accept-language")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_owned();
            (
                [("cache-control", "max-age=60"), ("vary", "Accept-Language")],
                format!("hello in {language}"),
            )
                .into_response()
        }
    };
    let o = origin.clone();
    let directive = move |Path(directive): Path<String>| {
        let o = o.clone();
        async move {
            let n = {
                o.enter().await;
                o.calls()
            };
            // Long enough for concurrent requests to meet on one load.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut response = format!("answer {n}").into_response();
            let header = match directive.as_str() {
                "no-store" => "no-store",
                "private" => "private, max-age=60",
                "public" => "public, max-age=60",
                "cookie" => "max-age=60",
                _ => "max-age=60",
            };
            response
                .headers_mut()
                .insert("cache-control", header.parse().unwrap());
            if directive == "expires" {
                response.headers_mut().remove("cache-control");
                response
                    .headers_mut()
                    .insert("expires", "0".parse().unwrap());
            }
            if directive == "cookie" {
                response
                    .headers_mut()
                    .insert("set-cookie", format!("session={n}").parse().unwrap());
            }
            response
        }
    };
    let o = origin.clone();
    let big = move || {
        let o = o.clone();
        async move {
            o.enter().await;
            ([("cache-control", "max-age=60")], "x".repeat(10_000))
        }
    };
    let o = origin.clone();
    let me = move |headers: HeaderMap| {
        let o = o.clone();
        async move {
            o.enter().await;
            let user = headers
                .get("x-user")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nobody")
                .to_owned();
            (
                [("cache-control", "max-age=60")],
                format!("profile of {user}"),
            )
        }
    };
    let o = origin.clone();
    let update = move || {
        let o = o.clone();
        async move {
            o.calls.fetch_add(1, Ordering::SeqCst);
            StatusCode::NO_CONTENT
        }
    };
    Router::new()
        .route("/products/{id}", get(product).put(update))
        .route("/greeting", get(greeting))
        .route("/directive/{directive}", get(directive))
        .route("/big", get(big))
        .route("/me", get(me))
}

fn cache(name: &str, clock: Option<Clock>) -> Builder<String, StoredResponse> {
    let mut builder = TieredCache::builder(name)
        .ttl(Duration::from_secs(300))
        .stale_if_error(Duration::from_secs(3600))
        .stale_while_revalidate(Duration::from_secs(30))
        .load_timeout(Duration::from_millis(300))
        .retry_after_error(Duration::ZERO);
    if let Some(clock) = clock {
        builder = builder.clock(clock);
    }
    builder
}

fn layer(builder: ResponseCacheBuilder) -> ResponseCacheLayer {
    builder
        .max_body(4096)
        .scope(|parts| {
            (parts.uri.path() == "/me")
                .then(|| {
                    parts
                        .headers
                        .get("x-user")?
                        .to_str()
                        .ok()
                        .map(str::to_owned)
                })
                .flatten()
        })
        .build()
        .expect("a valid layer")
}

struct Server {
    base: String,
    client: Client<HttpConnector, Body>,
}

impl Server {
    async fn start(app: Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base: format!("http://{address}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
        self.send("GET", path, headers).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Body::empty()).unwrap())
            .await
            .expect("the server answers");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("a whole body").to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }
}

fn cache_status(headers: &HeaderMap) -> &str {
    headers
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn served(name: &str, clock: Option<Clock>) -> (Server, Origin, ResponseCacheLayer) {
    let origin = Origin::default();
    let layer = layer(ResponseCacheLayer::builder(cache(name, clock)));
    let server = Server::start(routes(&origin).layer(layer.clone())).await;
    (server, origin, layer)
}

#[tokio::test]
async fn a_miss_then_hits_with_age() {
    let (server, origin, layer) = served("hits", None).await;
    let (status, headers, body) = server.get("/products/1", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "product 1 (call 1)");
    assert_eq!(cache_status(&headers), "hits; fwd=uri-miss; stored");
    for _ in 0..5 {
        let (status, headers, body) = server.get("/products/1", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "product 1 (call 1)");
        assert_eq!(cache_status(&headers), "hits; hit", "{headers:?}");
        assert_eq!(headers["age"], "0");
        assert_eq!(headers["etag"], "\"v1\"");
    }
    let (_, _, other) = server.get("/products/2", &[]).await;
    assert_eq!(other, "product 2 (call 2)");
    assert_eq!(origin.calls(), 2);
    // HEAD is answered from the GET's entry, without a body.
    let (status, headers, body) = server.send("HEAD", "/products/1", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    assert!(cache_status(&headers).contains("hit"));
    assert_eq!(
        headers["content-length"], "18",
        "the GET's length, not the empty body's"
    );
    assert_eq!(origin.calls(), 2);
    // Each request is one lookup: two misses, six hits (five GETs and the HEAD).
    let stats = layer.cache().stats();
    assert_eq!((stats.misses, stats.fresh), (2, 6), "{stats:?}");
}

#[tokio::test]
async fn vary_keeps_one_answer_per_header_value() {
    let (server, origin, _) = served("vary", None).await;
    for (language, calls) in [("en", 1), ("fr", 2), ("en", 2), ("fr", 2), ("de", 3)] {
        let (_, headers, body) = server
            .get("/greeting", &[("accept-language", language)])
            .await;
        assert_eq!(body, format!("hello in {language}"));
        assert_eq!(origin.calls(), calls, "after {language}: {headers:?}");
    }
    let (_, _, body) = server.get("/greeting", &[]).await;
    assert_eq!(body, "hello in none");
    assert_eq!(origin.calls(), 4);
}

#[tokio::test]
async fn no_store_private_and_cookies_are_never_stored() {
    let (server, origin, _) = served("private", None).await;
    for directive in ["no-store", "private", "cookie"] {
        let before = origin.calls();
        let (_, first, a) = server.get(&format!("/directive/{directive}"), &[]).await;
        let (_, _, b) = server.get(&format!("/directive/{directive}"), &[]).await;
        assert_ne!(a, b, "{directive} answered twice the same");
        assert_eq!(origin.calls(), before + 2, "{directive}");
        assert_eq!(cache_status(&first), "private; fwd=uri-miss");
    }
    // The same route with a storable answer is stored.
    let (_, _, a) = server.get("/directive/plain", &[]).await;
    let (_, _, b) = server.get("/directive/plain", &[]).await;
    assert_eq!(a, b);
}

#[tokio::test]
async fn authorized_and_expired_answers_are_not_shared() {
    let (server, origin, _) = served("authorized", None).await;
    let bearer = [("authorization", "Bearer a")];
    let (_, _, a) = server.get("/directive/plain", &bearer).await;
    let (_, _, b) = server.get("/directive/plain", &bearer).await;
    assert_ne!(
        a, b,
        "an authorized request's answer is not stored without leave"
    );
    let (_, _, a) = server.get("/directive/public", &bearer).await;
    let (_, _, b) = server.get("/directive/public", &[]).await;
    assert_eq!(a, b, "`public` gives that leave");
    let (_, _, a) = server.get("/directive/expires", &[]).await;
    let (_, _, b) = server.get("/directive/expires", &[]).await;
    assert_ne!(a, b, "`Expires: 0` is already expired");
    assert_eq!(origin.calls(), 5);
}

#[tokio::test]
async fn a_variant_is_never_answered_to_other_header_values_when_stale() {
    let (clock, mock) = Clock::mock();
    let (server, origin, _) = served("stale-vary", Some(clock)).await;
    server.get("/greeting", &[("accept-language", "en")]).await;
    server.get("/greeting", &[("accept-language", "fr")]).await;
    // Within stale-while-revalidate: each language gets its own, and a new one its own load.
    mock.advance(Duration::from_secs(70));
    for language in ["de", "fr", "en"] {
        let (_, _, body) = server
            .get("/greeting", &[("accept-language", language)])
            .await;
        assert_eq!(body, format!("hello in {language}"));
    }
    // The origin down, past the revalidate window: stale answers per language, and a
    // language never stored gets the failure, not another language's page.
    tokio::time::sleep(Duration::from_millis(50)).await;
    mock.advance(Duration::from_secs(400));
    origin.set(1);
    for language in ["fr", "en"] {
        let (status, headers, body) = server
            .get("/greeting", &[("accept-language", language)])
            .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, format!("hello in {language}"))
        );
        assert!(
            cache_status(&headers).contains("stale-if-error"),
            "{headers:?}"
        );
    }
    let (status, _, body) = server.get("/greeting", &[("accept-language", "it")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

#[tokio::test]
async fn a_private_answer_is_never_shared_with_a_concurrent_request() {
    let (server, origin, _) = served("private-herd", None).await;
    let server = Arc::new(server);
    let answers = futures_join(20, |_| {
        let server = server.clone();
        async move { server.get("/directive/private", &[]).await.2 }
    })
    .await;
    let mut distinct = answers.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), answers.len(), "{answers:?}");
    assert_eq!(origin.calls(), 20);
    // They did meet on loads: the answers are numbered by arrival, all before any finished.
    assert!(answers.iter().all(|answer| answer.starts_with("answer ")));
}

#[tokio::test]
async fn a_herd_of_misses_makes_one_origin_call() {
    let (server, origin, _) = served("herd", None).await;
    let server = Arc::new(server);
    let answers = futures_join(50, |_| {
        let server = server.clone();
        async move { server.get("/products/7", &[]).await }
    })
    .await;
    assert_eq!(origin.calls(), 1);
    assert!(answers
        .iter()
        .all(|(_, _, body)| body == "product 7 (call 1)"));
    let collapsed = answers
        .iter()
        .filter(|(_, headers, _)| cache_status(headers).contains("collapsed"))
        .count();
    let hits = answers
        .iter()
        .filter(|(_, headers, _)| cache_status(headers).contains("; hit;"))
        .count();
    assert_eq!(
        collapsed + hits,
        49,
        "all but the leader joined its load or hit"
    );
}

#[tokio::test]
async fn conditional_requests_get_304() {
    let (server, origin, _) = served("etag", None).await;
    // On a miss too: the cache loads the whole response and answers the condition itself.
    let (status, headers, body) = server
        .get("/products/3", &[("if-none-match", "\"v1\"")])
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""));
    assert_eq!(headers["etag"], "\"v1\"");
    let (status, _, _) = server
        .get("/products/3", &[("if-none-match", "W/\"v0\", W/\"v1\"")])
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _, body) = server
        .get("/products/3", &[("if-none-match", "\"v2\"")])
        .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "product 3 (call 1)")
    );
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn stale_if_error_when_the_origin_fails_hangs_or_degrades() {
    let (clock, mock) = Clock::mock();
    let (server, origin, _) = served("stale", Some(clock)).await;
    let (_, _, fresh) = server.get("/products/5", &[]).await;
    // Past its max-age and the stale-while-revalidate window.
    mock.advance(Duration::from_secs(91));
    for (mode, reason) in [(1, "failure_response"), (2, "timeout"), (3, "breaker_open")] {
        origin.set(mode);
        let (status, headers, body) = server.get("/products/5", &[]).await;
        assert_eq!(status, StatusCode::OK, "mode {mode}");
        assert_eq!(body, fresh);
        let marker = cache_status(&headers);
        assert!(
            marker.contains(&format!("stale-if-error {reason}")) && marker.contains("ttl=-"),
            "mode {mode}: {marker}"
        );
    }
    // Back up: the next read loads afresh.
    origin.set(0);
    let (_, headers, body) = server.get("/products/5", &[]).await;
    assert_ne!(body, fresh);
    assert_eq!(cache_status(&headers), "stale; fwd=uri-miss; stored");
    // Past the stale-if-error window, a failure is the origin's own answer.
    mock.advance(Duration::from_secs(2 * 3600));
    origin.set(1);
    let (status, _, _) = server.get("/products/5", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn failures_and_degraded_answers_are_never_stored() {
    let (server, origin, _) = served("failures", None).await;
    origin.set(3);
    let (_, headers, body) = server.get("/products/9", &[]).await;
    assert_eq!(body, "from the fallback");
    assert!(!cache_status(&headers).contains("stored"), "{headers:?}");
    origin.set(1);
    let (status, _, _) = server.get("/products/9", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    origin.set(0);
    let (status, _, body) = server.get("/products/9", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "product 9 (call 3)")
    );
    // A hang with nothing stale: a 504 within the load timeout, not a hang.
    origin.set(2);
    let started = Instant::now();
    let (status, _, _) = server.get("/products/10", &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_body_over_the_limit_streams_through_uncached() {
    let (server, origin, _) = served("big", None).await;
    for _ in 0..2 {
        let (status, headers, body) = server.get("/big", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.len(), 10_000);
        assert_eq!(cache_status(&headers), "big; fwd=uri-miss");
    }
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn scoped_routes_keep_one_entry_per_caller() {
    let (server, origin, _) = served("scoped", None).await;
    for (user, calls) in [("ann", 1), ("bob", 2), ("ann", 2), ("bob", 2)] {
        let (_, _, body) = server.get("/me", &[("x-user", user)]).await;
        assert_eq!(body, format!("profile of {user}"));
        assert_eq!(origin.calls(), calls);
    }
}

#[tokio::test]
async fn request_directives_and_unsafe_methods() {
    let (server, origin, layer) = served("directives", None).await;
    server.get("/products/4", &[]).await;
    // no-cache goes to the origin and stores its answer for the next reader.
    let (_, headers, body) = server
        .get("/products/4", &[("cache-control", "no-cache")])
        .await;
    assert_eq!(body, "product 4 (call 2)");
    assert_eq!(cache_status(&headers), "directives; fwd=request");
    let (_, _, body) = server.get("/products/4", &[]).await;
    assert_eq!(body, "product 4 (call 2)");
    // only-if-cached on a miss: 504 without calling the origin.
    let (status, _, _) = server
        .get("/products/40", &[("cache-control", "only-if-cached")])
        .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(origin.calls(), 2);
    // A successful PUT drops the entry.
    let (status, _, _) = server.send("PUT", "/products/4", &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, body) = server.get("/products/4", &[]).await;
    assert_eq!(body, "product 4 (call 4)");
    // And so does the layer's own invalidation.
    layer
        .invalidate(&"/products/4".parse().unwrap(), None)
        .await
        .unwrap();
    let (_, _, body) = server.get("/products/4", &[]).await;
    assert_eq!(body, "product 4 (call 5)");
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let refused = ResponseCacheLayer::builder(TieredCache::builder("x"))
        .max_body(0)
        .build();
    assert!(refused.is_err());
    let refused = ResponseCacheLayer::builder(TieredCache::builder("bad name")).build();
    assert!(refused.is_err());
}

#[cfg(feature = "redis")]
mod shared_redis {
    use super::*;
    use steadfast_cache::remote::RedisTier;
    use steadfast_test_support::redis::{client_builder, RedisServer};

    async fn instance(redis: &RedisServer, origin: &Origin) -> Server {
        let client = client_builder(redis.config(), Duration::from_millis(500))
            .build()
            .unwrap();
        let subscriber = client_builder(redis.config(), Duration::from_millis(500))
            .build_subscriber_client()
            .unwrap();
        use fred::interfaces::ClientLike;
        client.init().await.unwrap();
        subscriber.init().await.unwrap();
        let tier = RedisTier::with_notices(client, subscriber).await.unwrap();
        let layer = layer(ResponseCacheLayer::builder(cache("shop", None)).remote(tier));
        Server::start(routes(origin).layer(layer)).await
    }

    #[tokio::test]
    async fn two_routers_share_entries_and_invalidations_through_redis() {
        let redis = RedisServer::start();
        let origin = Origin::default();
        let a = instance(&redis, &origin).await;
        let b = instance(&redis, &origin).await;
        let (_, _, first) = a.get("/products/1", &[]).await;
        let (_, headers, second) = b.get("/products/1", &[]).await;
        assert_eq!(first, second);
        assert_eq!(cache_status(&headers).split("; ").last(), Some("detail=l2"));
        assert_eq!(origin.calls(), 1);
        // Vary variants cross too.
        a.get("/greeting", &[("accept-language", "fr")]).await;
        let (_, _, fr) = b.get("/greeting", &[("accept-language", "fr")]).await;
        assert_eq!(fr, "hello in fr");
        assert_eq!(origin.calls(), 2);
        // A write through one drops the other's L1 entry within 100 ms.
        b.send("PUT", "/products/1", &[]).await;
        let started = Instant::now();
        loop {
            let (_, _, body) = a.get("/products/1", &[]).await;
            if body != first {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_millis(100),
                "still {body}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A herd spread over both routers: one origin call.
        let before = origin.calls();
        let (a, b) = (Arc::new(a), Arc::new(b));
        let answers = futures_join(40, |i| {
            let server = if i % 2 == 0 { a.clone() } else { b.clone() };
            async move { server.get("/products/77", &[]).await.2 }
        })
        .await;
        assert_eq!(origin.calls(), before + 1);
        assert!(answers.iter().all(|body| body == &answers[0]));
    }
}

/// Runs `n` futures at once on the runtime and collects their outputs in order.
async fn futures_join<F, T>(n: usize, make: impl Fn(usize) -> F) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(make(i))).collect();
    let mut outputs = Vec::with_capacity(n);
    for task in tasks {
        outputs.push(task.await.expect("a task"));
    }
    outputs
}
