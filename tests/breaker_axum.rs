//! The breaker in HTTP mode around real axum routes, served on a loopback TCP listener and
//! called with a real HTTP/1.1 client: refusals answer `503` problem+json with `Retry-After`
//! without calling the handler, state is shared across axum's per-request clones and across
//! routes, and keyed breakers trip per tenant.
#![cfg(all(feature = "breaker", feature = "http"))]

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, MethodRouter, Route};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use steadfast::breaker::keyed::{BreakerRegistry, Keyed};
use steadfast::breaker::mode::Http;
use steadfast::breaker::{CircuitBreaker, CircuitBreakerLayer, CircuitBreakerService, State};
use steadfast::core::{Clock, HttpStatus};
use support::{assert_send_sync_clone, mock_breaker, Counter, OPEN_FOR};
use tokio::sync::Notify;

/// The longest any one request may take before the test fails instead of hanging.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A handler's dependency: fails with 500 until told to recover, and counts its calls.
#[derive(Debug, Default)]
struct Upstream {
    healthy: AtomicBool,
    calls: Counter,
}

impl Upstream {
    fn failing() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn healthy() -> Arc<Self> {
        let upstream = Self::failing();
        upstream.recover();
        upstream
    }

    fn recover(&self) {
        self.healthy.store(true, Ordering::SeqCst);
    }

    fn break_down(&self) {
        self.healthy.store(false, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.get()
    }

    fn respond(&self) -> (StatusCode, &'static str) {
        self.calls.hit();
        if self.healthy.load(Ordering::SeqCst) {
            (StatusCode::OK, "ok")
        } else {
            (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded")
        }
    }
}

/// A GET route answered by `upstream`.
fn route_to(upstream: &Arc<Upstream>) -> MethodRouter {
    let upstream = upstream.clone();
    get(move || {
        let upstream = upstream.clone();
        async move { upstream.respond() }
    })
}

/// Serves `router` on a fresh loopback port; the server lives as long as the test's runtime.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("the listener's address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("axum serves");
    });
    addr
}

/// What came back over the wire.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|value| value.to_str().expect("an ASCII header"))
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Asserts this is the breaker's refusal and returns its problem+json body.
    #[track_caller]
    fn assert_refused(&self, retry_after: Option<&str>) -> serde_json::Value {
        assert_eq!(self.status, StatusCode::SERVICE_UNAVAILABLE, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{self:?}"
        );
        assert_eq!(self.header("retry-after"), retry_after, "{self:?}");
        let body = self.json();
        assert_eq!(body["status"], 503, "{body}");
        assert_eq!(body["title"], "Service Unavailable", "{body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains("circuit breaker")),
            "{body}"
        );
        body
    }
}

/// A real HTTP/1.1 client (hyper's pooled client) aimed at one loopback server.
struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
}

impl HttpClient {
    fn new(addr: SocketAddr) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            addr,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(path, None).await
    }

    async fn get_as(&self, path: &str, tenant: &str) -> Reply {
        self.send(path, Some(tenant)).await
    }

    async fn send(&self, path: &str, tenant: Option<&str>) -> Reply {
        let mut request = http::Request::get(format!("http://{}{path}", self.addr));
        if let Some(tenant) = tenant {
            request = request.header("x-tenant", tenant);
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        let exchange = async {
            let response = self.client.request(request).await.expect("a response");
            let (parts, body) = response.into_parts();
            let body = body.collect().await.expect("the whole body").to_bytes();
            Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .expect("the request finished in time")
    }
}

#[tokio::test]
async fn opens_after_failures_refuses_without_calling_the_handler_and_recovers() {
    let (breaker, time) = mock_breaker("orders", 3, 3);
    let orders = Upstream::failing();
    let router = Router::new()
        .route("/orders", route_to(&orders))
        .route_layer(breaker.layer().http());
    let client = HttpClient::new(serve(router).await);

    // Three failures in a row, each one reaching the handler through its own per-request
    // clone of the route's service.
    for sent in 1..=3 {
        let reply = client.get("/orders").await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{reply:?}");
        assert_eq!(reply.body, "upstream exploded");
        assert_eq!(orders.calls(), sent);
        let expected = if sent < 3 { State::Closed } else { State::Open };
        assert_eq!(breaker.state(), expected, "after {sent} failures");
    }

    // Open: refused at once, the handler is not called.
    let reply = client.get("/orders").await;
    let body = reply.assert_refused(Some("30"));
    assert_eq!(body["state"], "open", "{body}");
    assert_eq!(body["type"], "about:blank", "{body}");
    assert!(
        !String::from_utf8_lossy(&reply.body).contains("orders"),
        "the body must not name the breaker: {body}"
    );
    assert_eq!(orders.calls(), 3, "a refused request reached the handler");

    // Retry-After counts down with the clock, in whole seconds rounded up.
    time.advance(Duration::from_secs(10));
    client.get("/orders").await.assert_refused(Some("20"));
    time.advance(Duration::from_millis(10_500));
    client.get("/orders").await.assert_refused(Some("10"));
    time.advance(Duration::from_millis(9_400));
    client.get("/orders").await.assert_refused(Some("1"));
    assert_eq!(orders.calls(), 3);
    assert_eq!(breaker.state(), State::Open);

    // Past the open period, the three probes reach a now healthy handler and close it.
    time.advance(Duration::from_millis(200));
    orders.recover();
    for probe in 1..=3 {
        let reply = client.get("/orders").await;
        assert_eq!(reply.status, StatusCode::OK, "probe {probe}: {reply:?}");
        assert_eq!(reply.body, "ok");
        let expected = if probe < 3 {
            State::HalfOpen
        } else {
            State::Closed
        };
        assert_eq!(breaker.state(), expected, "after probe {probe}");
    }
    assert_eq!(orders.calls(), 6);

    // Closed again: traffic flows, and the failure count started over.
    for _ in 0..5 {
        assert_eq!(client.get("/orders").await.status, StatusCode::OK);
    }
    orders.break_down();
    for _ in 0..2 {
        let reply = client.get("/orders").await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(orders.calls(), 13);
}

#[tokio::test]
async fn a_failed_probe_opens_again() {
    let (breaker, time) = mock_breaker("orders", 3, 1);
    let orders = Upstream::failing();
    let router = Router::new()
        .route("/orders", route_to(&orders))
        .route_layer(breaker.layer().http());
    let client = HttpClient::new(serve(router).await);

    for _ in 0..3 {
        assert_eq!(
            client.get("/orders").await.status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(breaker.state(), State::Open);

    // The probe still fails: open again for a whole period.
    time.advance(OPEN_FOR);
    let reply = client.get("/orders").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{reply:?}");
    assert_eq!(orders.calls(), 4);
    assert_eq!(breaker.state(), State::Open);
    client.get("/orders").await.assert_refused(Some("30"));
    assert_eq!(orders.calls(), 4);

    // The next probe succeeds: one probe is enough to close.
    time.advance(OPEN_FOR);
    orders.recover();
    let reply = client.get("/orders").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(orders.calls(), 5);
}

#[tokio::test]
async fn half_open_refuses_beyond_its_probe_slots_with_a_short_retry_after() {
    let (breaker, time) = mock_breaker("orders", 1, 1);
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let healthy = Arc::new(AtomicBool::new(false));
    let calls = Counter::default();
    let handler = {
        let (entered, release, healthy, calls) = (
            entered.clone(),
            release.clone(),
            healthy.clone(),
            calls.clone(),
        );
        move || {
            let (entered, release, healthy, calls) = (
                entered.clone(),
                release.clone(),
                healthy.clone(),
                calls.clone(),
            );
            async move {
                calls.hit();
                if !healthy.load(Ordering::SeqCst) {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                // A slow probe: holds its slot until the test lets it go.
                entered.notify_one();
                release.notified().await;
                StatusCode::OK
            }
        }
    };
    let router = Router::new()
        .route("/slow", get(handler))
        .route_layer(breaker.layer().http());
    let client = Arc::new(HttpClient::new(serve(router).await));

    let reply = client.get("/slow").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(breaker.state(), State::Open);

    time.advance(OPEN_FOR);
    healthy.store(true, Ordering::SeqCst);
    let probe = tokio::spawn({
        let client = client.clone();
        async move { client.get("/slow").await }
    });
    tokio::time::timeout(REQUEST_TIMEOUT, entered.notified())
        .await
        .expect("the probe reached the handler");
    assert_eq!(breaker.state(), State::HalfOpen);

    // The only probe slot is taken: refused, told to come back within a second, when the
    // probe will likely have decided.
    let body = client.get("/slow").await.assert_refused(Some("1"));
    assert_eq!(body["state"], "half_open", "{body}");
    assert_eq!(calls.get(), 2);

    release.notify_one();
    let reply = probe.await.expect("the probe task");
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test]
async fn routes_layered_with_one_breaker_share_its_state() {
    let (breaker, time) = mock_breaker("checkout", 3, 1);
    let orders = Upstream::failing();
    let inventory = Upstream::healthy();
    let unguarded = Upstream::healthy();
    let layer = breaker.layer().http();
    let router = Router::new()
        .route("/orders", route_to(&orders).route_layer(layer.clone()))
        .route("/inventory", route_to(&inventory).route_layer(layer))
        .route("/health", route_to(&unguarded));
    let client = HttpClient::new(serve(router).await);

    // Healthy traffic on one route does not hide failures on the other: the consecutive count
    // is the breaker's, not the route's, and successes reset it.
    assert_eq!(
        client.get("/orders").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        client.get("/orders").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(client.get("/inventory").await.status, StatusCode::OK);
    assert_eq!(breaker.snapshot().consecutive_failures, 0);
    for _ in 0..3 {
        assert_eq!(
            client.get("/orders").await.status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(breaker.state(), State::Open);

    // /orders tripped the breaker, so /inventory is refused too, without calling its handler.
    client.get("/inventory").await.assert_refused(Some("30"));
    client.get("/orders").await.assert_refused(Some("30"));
    assert_eq!(inventory.calls(), 1);
    assert_eq!(orders.calls(), 5);

    // A route outside the layer is untouched.
    assert_eq!(client.get("/health").await.status, StatusCode::OK);
    assert_eq!(unguarded.calls(), 1);

    // A probe through /inventory closes the breaker for /orders as well.
    time.advance(OPEN_FOR);
    assert_eq!(client.get("/inventory").await.status, StatusCode::OK);
    assert_eq!(breaker.state(), State::Closed);
    orders.recover();
    assert_eq!(client.get("/orders").await.status, StatusCode::OK);
    assert_eq!(orders.calls(), 6);
    assert_eq!(inventory.calls(), 2);
}

#[tokio::test]
async fn steering_by_hand_shows_on_the_wire() {
    let (breaker, _time) = mock_breaker("orders", 1, 1);
    let orders = Upstream::healthy();
    let router = Router::new()
        .route("/orders", route_to(&orders))
        .route_layer(breaker.layer().http());
    let client = HttpClient::new(serve(router).await);

    // Forced open: refused with no Retry-After, since no probe will come.
    breaker.force_open();
    let body = client.get("/orders").await.assert_refused(None);
    assert_eq!(body["state"], "forced_open", "{body}");
    assert_eq!(orders.calls(), 0);

    // Disabled: failures pass and nothing trips.
    breaker.disable();
    orders.break_down();
    for _ in 0..3 {
        let reply = client.get("/orders").await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(breaker.state(), State::Disabled);
    assert_eq!(orders.calls(), 3);

    // Reset: closed, and the next failure (one is enough here) trips it.
    breaker.reset();
    let reply = client.get("/orders").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(breaker.state(), State::Open);
    client.get("/orders").await.assert_refused(Some("30"));
    assert_eq!(orders.calls(), 4);
}

/// A keyed layer's provider, named: an extractor of `fn` type.
type TenantKeyed = Keyed<String, fn(&Request) -> String>;

#[test]
fn layers_and_layered_services_are_clone_send_sync() {
    assert_send_sync_clone::<CircuitBreaker>();
    assert_send_sync_clone::<CircuitBreakerLayer<HttpStatus, Http>>();
    assert_send_sync_clone::<CircuitBreakerService<Route, HttpStatus, Http, CircuitBreaker>>();
    assert_send_sync_clone::<BreakerRegistry<String>>();
    assert_send_sync_clone::<CircuitBreakerLayer<HttpStatus, Http, TenantKeyed>>();
    assert_send_sync_clone::<CircuitBreakerService<Route, HttpStatus, Http, TenantKeyed>>();
    // The layers the other tests build have these exact types.
    let (breaker, _time) = mock_breaker("types", 1, 1);
    let _: CircuitBreakerLayer<HttpStatus, Http> = breaker.layer().http();
}

#[tokio::test]
async fn keyed_layer_trips_one_tenant_only() {
    let (clock, time) = Clock::mock();
    let registry = BreakerRegistry::<String>::new(
        CircuitBreaker::builder("per-tenant")
            .consecutive_failures(2)
            .open_duration(OPEN_FOR)
            .clock(clock),
        1000,
        Duration::from_secs(60),
    )
    .expect("a valid registry");
    let acme_down = Arc::new(AtomicBool::new(true));
    let calls = Counter::default();
    let handler = {
        let (acme_down, calls) = (acme_down.clone(), calls.clone());
        move |headers: HeaderMap| {
            let (acme_down, calls) = (acme_down.clone(), calls.clone());
            async move {
                calls.hit();
                let acme = headers.get("x-tenant").is_some_and(|t| t == "acme");
                if acme && acme_down.load(Ordering::SeqCst) {
                    (StatusCode::BAD_GATEWAY, "acme's shard is down")
                } else {
                    (StatusCode::OK, "ok")
                }
            }
        }
    };
    // The extractor: the `x-tenant` header, or "anonymous". The closure's argument type is
    // inferred from `keyed`; it needs no cast to a `fn` type.
    let layer = CircuitBreakerLayer::keyed(registry.clone(), |request: &Request| {
        request
            .headers()
            .get("x-tenant")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("anonymous")
            .to_owned()
    })
    .http();
    let router = Router::new()
        .route("/reports", get(handler))
        .route_layer(layer);
    let client = HttpClient::new(serve(router).await);

    for _ in 0..2 {
        let reply = client.get_as("/reports", "acme").await;
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{reply:?}");
    }
    assert_eq!(calls.get(), 2);

    let acme = registry.peek(&"acme".to_owned()).expect("acme's breaker");
    assert_eq!(acme.name(), "per-tenant");
    assert_eq!(acme.state(), State::Open);

    // acme is refused without reaching the handler ...
    let body = client
        .get_as("/reports", "acme")
        .await
        .assert_refused(Some("30"));
    assert!(!body.to_string().contains("acme"), "{body}");
    assert_eq!(calls.get(), 2);

    // ... while the other tenants, and requests with no tenant, still get through.
    for _ in 0..3 {
        assert_eq!(
            client.get_as("/reports", "globex").await.status,
            StatusCode::OK
        );
        assert_eq!(client.get("/reports").await.status, StatusCode::OK);
    }
    assert_eq!(calls.get(), 8);
    assert_eq!(registry.get("globex".to_owned()).state(), State::Closed);
    assert_eq!(registry.get("anonymous".to_owned()).state(), State::Closed);
    assert_eq!(registry.len(), 3);

    // acme recovers through its own probes (three by default).
    time.advance(OPEN_FOR);
    acme_down.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(
            client.get_as("/reports", "acme").await.status,
            StatusCode::OK
        );
    }
    assert_eq!(acme.state(), State::Closed);
    assert_eq!(calls.get(), 11);
}
