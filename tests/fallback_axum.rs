//! The fallback table around real axum routes, served on a loopback TCP listener and called
//! with a real HTTP/1.1 client: failing routes answer from their fallbacks (marked), routes
//! outside the table pass through, a breaker's refusal is told from a 5xx the handler sent,
//! routes are found by their matched path, the same table comes from a TOML file, switches
//! degrade routes without calling their handlers (also while flipping under load), and the
//! admin router flips switches only for callers its check lets in.
#![cfg(all(feature = "fallback", feature = "breaker", feature = "axum"))]

#[path = "support/fallback.rs"]
mod loopback;
#[allow(dead_code)]
mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{any, get, MethodRouter};
use axum::Router;
use http::request::Parts;
use loopback::{serve, HttpClient, Reply};
use steadfast::breaker::CircuitBreaker;
use steadfast::core::HttpStatus;
use steadfast::fallback::admin::{AdminError, AdminRouter, Refusal};
use steadfast::fallback::config::FallbackConfig;
use steadfast::fallback::mode::Http;
use steadfast::fallback::table::{Endpoint, FallbackTable, TableLayer};
use steadfast::fallback::{Degrader, FallbackRequest, Flip, FlipEvent, Reasons, Source};
use support::{assert_send_sync_clone, mock_breaker, Counter};
use tower::service_fn;
use tower::util::BoxCloneSyncService;

/// What the table's fallbacks are: one boxed service type, so code and config tables match.
type Fallback = BoxCloneSyncService<FallbackRequest<Parts>, Response, Infallible>;

/// A fallback that answers `200` with `"{label} fallback: {reason} {method} {uri}"`, so each
/// test sees why it ran and what it was told of the request.
fn echo(label: &'static str) -> Fallback {
    BoxCloneSyncService::new(service_fn(
        move |request: FallbackRequest<Parts>| async move {
            let body = format!(
                "{label} fallback: {} {} {}",
                request.reason.as_str(),
                request.kept.method,
                request.kept.uri
            );
            Ok::<_, Infallible>(Response::new(Body::from(body)))
        },
    ))
}

/// A handler's dependency: answers `failure` until told to recover, and counts its calls.
#[derive(Debug)]
struct Upstream {
    name: &'static str,
    failure: StatusCode,
    healthy: AtomicBool,
    calls: Counter,
}

impl Upstream {
    /// Answers `failure` with `"{name} exploded"` until it recovers.
    fn failing(name: &'static str, failure: StatusCode) -> Arc<Self> {
        Arc::new(Self {
            name,
            failure,
            healthy: AtomicBool::new(false),
            calls: Counter::default(),
        })
    }

    /// Answers `200` with `"real {name}"`.
    fn healthy(name: &'static str) -> Arc<Self> {
        let upstream = Self::failing(name, StatusCode::INTERNAL_SERVER_ERROR);
        upstream.recover();
        upstream
    }

    fn recover(&self) {
        self.healthy.store(true, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.get()
    }

    fn real(&self) -> String {
        format!("real {}", self.name)
    }

    fn exploded(&self) -> String {
        format!("{} exploded", self.name)
    }

    fn respond(&self) -> (StatusCode, String) {
        self.calls.hit();
        if self.healthy.load(Ordering::SeqCst) {
            (StatusCode::OK, self.real())
        } else {
            (self.failure, self.exploded())
        }
    }
}

/// A handler answered by `upstream`, for any method router.
fn handler(
    upstream: &Arc<Upstream>,
) -> impl Fn() -> std::future::Ready<(StatusCode, String)> + Clone + Send + Sync + 'static {
    let upstream = upstream.clone();
    move || std::future::ready(upstream.respond())
}

/// A GET route answered by `upstream`.
fn route_to(upstream: &Arc<Upstream>) -> MethodRouter {
    get(handler(upstream))
}

/// Asserts `reply` is the fallback `label`'s answer for `reason` to `method uri`, marked with
/// the `steadfast-degraded` header when `header`.
#[track_caller]
fn assert_fallback(reply: &Reply, label: &str, reason: &str, request: &str, header: bool) {
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.text(),
        format!("{label} fallback: {reason} {request}"),
        "{reply:?}"
    );
    let expected = header.then_some(reason);
    assert_eq!(reply.header("steadfast-degraded"), expected, "{reply:?}");
}

/// Asserts `reply` is `upstream`'s own failure, untouched by any fallback.
#[track_caller]
fn assert_untouched_failure(reply: &Reply, upstream: &Upstream) {
    assert_eq!(reply.status, upstream.failure, "{reply:?}");
    assert_eq!(reply.text(), upstream.exploded(), "{reply:?}");
    assert_eq!(reply.header("steadfast-degraded"), None, "{reply:?}");
}

/// A shop of routes, each with the dependency its handler calls.
struct Shop {
    /// `GET /recommendations`: in the table, every reason, bound to `recommendations` at 1.
    recommendations: Arc<Upstream>,
    /// `GET /untracked`: not in the table.
    untracked: Arc<Upstream>,
    /// `GET /inventory`: behind a breaker in HTTP mode; the table answers breaker refusals only.
    inventory: Arc<Upstream>,
    inventory_breaker: CircuitBreaker,
    /// `GET /ledger`: no breaker; the table answers breaker refusals only.
    ledger: Arc<Upstream>,
    /// `GET /products/{id}`: found by its matched path.
    products: Arc<Upstream>,
    /// `/echo`, any method: the table's any-method endpoint, without the header.
    echo: Arc<Upstream>,
}

impl Shop {
    fn new() -> Self {
        // The breaker never opens by itself here: the tests force it.
        let (inventory_breaker, _time) = mock_breaker("inventory", 1_000, 1);
        Self {
            recommendations: Upstream::failing(
                "recommendations",
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            untracked: Upstream::failing("untracked", StatusCode::INTERNAL_SERVER_ERROR),
            // A 503 the dependency sends itself, not a breaker's refusal.
            inventory: Upstream::failing("inventory", StatusCode::SERVICE_UNAVAILABLE),
            inventory_breaker,
            ledger: Upstream::failing("ledger", StatusCode::INTERNAL_SERVER_ERROR),
            products: Upstream::failing("products", StatusCode::INTERNAL_SERVER_ERROR),
            echo: Upstream::failing("echo", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The shop's routes, with `table` applied to all of them at once.
    fn router(&self, table: &FallbackTable<Response>) -> Router {
        Router::new()
            .route("/recommendations", route_to(&self.recommendations))
            .route("/untracked", route_to(&self.untracked))
            .route(
                "/inventory",
                route_to(&self.inventory).layer(self.inventory_breaker.layer().http()),
            )
            .route("/ledger", route_to(&self.ledger))
            .route("/products/{id}", route_to(&self.products))
            .route("/echo", any(handler(&self.echo)))
            .route_layer(table.layer())
    }
}

/// The shop's table, declared in code.
fn code_table(degrader: &Degrader) -> FallbackTable<Response> {
    FallbackTable::builder(degrader)
        .endpoint(
            "GET /recommendations",
            Endpoint::new(echo("recommendations"))
                .switch("recommendations", 1)
                .header(true),
        )
        .endpoint(
            "GET /inventory",
            Endpoint::new(echo("inventory"))
                .on(Reasons::BREAKER_OPEN)
                .header(true),
        )
        .endpoint(
            "GET /ledger",
            Endpoint::new(echo("ledger"))
                .on(Reasons::BREAKER_OPEN)
                .header(true),
        )
        .endpoint(
            "GET /products/{id}",
            Endpoint::new(echo("products")).header(true),
        )
        .endpoint("/echo", Endpoint::new(echo("echo")))
        .build()
        .expect("a valid table")
}

/// The same table, as a config file declares it.
const SHOP_CONFIG: &str = r#"
[endpoints."GET /recommendations"]
fallback = "recommendations"
switch = "recommendations"
level = 1
header = true

[endpoints."GET /inventory"]
fallback = "inventory"
on = ["breaker_open"]
header = true

[endpoints."GET /ledger"]
fallback = "ledger"
on = ["breaker_open"]
header = true

[endpoints."GET /products/{id}"]
fallback = "products"
header = true

[endpoints."/echo"]
fallback = "echo"
"#;

/// The shop's table, from [`SHOP_CONFIG`], with the fallbacks it names registered in code.
fn config_table(degrader: &Degrader) -> FallbackTable<Response> {
    let config = FallbackConfig::from_toml(SHOP_CONFIG).expect("a valid config");
    FallbackTable::from_config(&config, degrader)
        .fallback("recommendations", echo("recommendations"))
        .fallback("inventory", echo("inventory"))
        .fallback("ledger", echo("ledger"))
        .fallback("products", echo("products"))
        .fallback("echo", echo("echo"))
        .build()
        .expect("every fallback the config names is registered")
}

/// Runs the shop's failures through a table made by `make_table`, over the wire.
async fn shop_answers_from_its_fallbacks(make_table: fn(&Degrader) -> FallbackTable<Response>) {
    let degrader = Degrader::new();
    let table = make_table(&degrader);
    let shop = Shop::new();
    let client = HttpClient::new(serve(shop.router(&table)).await);

    // A route whose handler fails answers from its fallback, marked, and told method and URI.
    let reply = client.get("/recommendations").await;
    assert_fallback(
        &reply,
        "recommendations",
        "failure_response",
        "GET /recommendations",
        true,
    );
    assert_eq!(shop.recommendations.calls(), 1);
    // Once the dependency is back, the real answer, unmarked.
    shop.recommendations.recover();
    let reply = client.get("/recommendations").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.text(), "real recommendations");
    assert_eq!(reply.header("steadfast-degraded"), None);
    assert_eq!(shop.recommendations.calls(), 2);

    // A route outside the table passes its 500 through untouched.
    assert_untouched_failure(&client.get("/untracked").await, &shop.untracked);
    assert_eq!(shop.untracked.calls(), 1);

    // Endpoints that answer breaker refusals only: a 503 the dependency sent through a closed
    // breaker, and a plain 500 with no breaker at all, both pass through.
    assert_untouched_failure(&client.get("/inventory").await, &shop.inventory);
    assert_eq!(shop.inventory.calls(), 1);
    assert_untouched_failure(&client.get("/ledger").await, &shop.ledger);
    assert_eq!(shop.ledger.calls(), 1);

    // The breaker forced open refuses without calling the handler; the table tells its
    // refusal by the breaker's marker and answers it.
    shop.inventory_breaker.force_open();
    for _ in 0..2 {
        let reply = client.get("/inventory").await;
        assert_fallback(&reply, "inventory", "breaker_open", "GET /inventory", true);
    }
    assert_eq!(shop.inventory.calls(), 1);
    // The other breaker-only endpoint still passes its plain 500 through.
    assert_untouched_failure(&client.get("/ledger").await, &shop.ledger);
    assert_eq!(shop.ledger.calls(), 2);

    // A route with a path parameter is found by its matched path, whatever the id; the
    // fallback gets the request's own URI, query and all.
    for path in ["/products/42?currency=EUR", "/products/7"] {
        let reply = client.get(path).await;
        let request = format!("GET {path}");
        assert_fallback(&reply, "products", "failure_response", &request, true);
    }
    assert_eq!(shop.products.calls(), 2);

    // An any-method endpoint answers every method, and without the header when not asked.
    let reply = client
        .send(Method::POST, "/echo?x=1", &[], "a payload")
        .await;
    assert_fallback(&reply, "echo", "failure_response", "POST /echo?x=1", false);
    let reply = client.send(Method::DELETE, "/echo", &[], "").await;
    assert_fallback(&reply, "echo", "failure_response", "DELETE /echo", false);
    assert_eq!(shop.echo.calls(), 2);
}

#[test]
fn tables_and_their_layers_are_clone_send_sync() {
    assert_send_sync_clone::<FallbackTable<Response>>();
    assert_send_sync_clone::<TableLayer<Response, Http, HttpStatus>>();
    let degrader = Degrader::new();
    let table = code_table(&degrader);
    let _: TableLayer<Response, Http, HttpStatus> = table.layer();
    fn clone_send_sync<T: Clone + Send + Sync + 'static>(_: &T) {}
    clone_send_sync(&table.route("GET /recommendations").expect("declared"));

    // The table prints one line per endpoint.
    let listing = table.to_string();
    for key in ["GET /recommendations", "GET /products/{id}", "/echo"] {
        assert!(listing.contains(key), "{listing}");
    }
    assert!(listing.contains("recommendations>=1"), "{listing}");
}

#[tokio::test]
async fn a_table_in_code_answers_failures_from_fallbacks() {
    shop_answers_from_its_fallbacks(code_table).await;
}

#[tokio::test]
async fn the_same_table_from_a_toml_config() {
    shop_answers_from_its_fallbacks(config_table).await;

    // Its listing names the fallbacks the config gave.
    let listing = config_table(&Degrader::new()).to_string();
    let inventory = listing
        .lines()
        .find(|line| line.starts_with("GET /inventory"))
        .unwrap_or_else(|| panic!("a line for GET /inventory: {listing}"));
    assert!(inventory.contains("inventory"), "{inventory}");
    assert!(inventory.contains("breaker_open"), "{inventory}");
    assert!(inventory.ends_with("+header"), "{inventory}");
}

#[test]
fn a_config_naming_an_unregistered_fallback_fails_naming_the_endpoint() {
    let config = FallbackConfig::from_toml(
        r#"
        [endpoints."GET /recommendations"]
        fallback = "recommendations"

        [endpoints."GET /orders/{id}"]
        fallback = "cached_orders"
        "#,
    )
    .expect("a well-formed config");
    let error = FallbackTable::<Response>::from_config(&config, &Degrader::new())
        .fallback("recommendations", echo("recommendations"))
        .build()
        .expect_err("cached_orders is not registered");
    assert_eq!(error.endpoint(), "GET /orders/{id}");
    let message = error.to_string();
    assert!(message.contains("GET /orders/{id}"), "{message}");
    assert!(message.contains("cached_orders"), "{message}");
}

#[tokio::test]
async fn a_switch_degrades_a_route_without_calling_its_handler() {
    let degrader = Degrader::new();
    let table = code_table(&degrader);
    let shop = Shop::new();
    shop.recommendations.recover();
    let client = HttpClient::new(serve(shop.router(&table)).await);

    let reply = client.get("/recommendations").await;
    assert_eq!(reply.text(), "real recommendations", "{reply:?}");
    assert_eq!(shop.recommendations.calls(), 1);

    // Switched on (at the route's level, then above it): the fallback answers, the handler
    // is not called.
    let flip = || Flip::new("ops", "planned maintenance");
    assert_eq!(degrader.set("recommendations", 1, flip()), Ok(0));
    for level in [1, 1, 2] {
        degrader
            .set("recommendations", level, flip())
            .expect("a valid switch");
        let reply = client.get("/recommendations").await;
        assert_fallback(
            &reply,
            "recommendations",
            "switch",
            "GET /recommendations",
            true,
        );
    }
    assert_eq!(shop.recommendations.calls(), 1);
    // Routes not bound to the switch are not touched.
    assert_untouched_failure(&client.get("/ledger").await, &shop.ledger);

    // Switched off: the handler answers again.
    assert_eq!(degrader.set("recommendations", 0, flip()), Ok(2));
    let reply = client.get("/recommendations").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.text(), "real recommendations");
    assert_eq!(reply.header("steadfast-degraded"), None);
    assert_eq!(shop.recommendations.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_flipped_under_load_never_gives_an_error() {
    /// Waves of concurrent requests: at least this many...
    const WAVES: usize = 10;
    /// ...and more, up to this many, until both answers were seen.
    const MAX_WAVES: usize = 200;
    const PER_WAVE: usize = 32;

    let degrader = Degrader::new();
    let catalog = Upstream::healthy("catalog");
    let table = FallbackTable::builder(&degrader)
        .endpoint(
            "GET /catalog",
            Endpoint::new(echo("catalog"))
                .on(Reasons::SWITCH)
                .switch("catalog", 1)
                .header(true),
        )
        .build()
        .expect("a valid table");
    let router = Router::new()
        .route("/catalog", route_to(&catalog))
        .route_layer(table.layer());
    let client = HttpClient::new(serve(router).await);

    // Flips the switch back and forth until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (degrader, stop) = (degrader.clone(), stop.clone());
        tokio::spawn(async move {
            let mut flips = 0_u32;
            while !stop.load(Ordering::SeqCst) {
                let level = u8::from(flips % 2 == 0);
                degrader
                    .set("catalog", level, Flip::new("load-test", "flapping"))
                    .expect("a valid switch");
                flips += 1;
                tokio::time::sleep(Duration::from_micros(300)).await;
            }
            flips
        })
    };

    let (mut real, mut degraded, mut waves) = (0, 0, 0);
    while waves < WAVES || ((real == 0 || degraded == 0) && waves < MAX_WAVES) {
        waves += 1;
        let mut wave = tokio::task::JoinSet::new();
        for _ in 0..PER_WAVE {
            let client = client.clone();
            wave.spawn(async move { client.get("/catalog").await });
        }
        while let Some(reply) = wave.join_next().await {
            let reply = reply.expect("the request task finished");
            assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            match reply.text() {
                "real catalog" => {
                    assert_eq!(reply.header("steadfast-degraded"), None, "{reply:?}");
                    real += 1;
                }
                "catalog fallback: switch GET /catalog" => {
                    assert_eq!(reply.header("steadfast-degraded"), Some("switch"));
                    degraded += 1;
                }
                other => panic!("neither the real answer nor the fallback's: {other:?}"),
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    let flips = flipper.await.expect("the flipper finished");

    assert_eq!(real + degraded, waves * PER_WAVE);
    // The handler ran exactly for the real answers: never for a degraded one.
    assert_eq!(catalog.calls(), real);
    assert!(flips > 2, "the switch flipped {flips} times");
    assert!(
        real > 0 && degraded > 0,
        "both answers under flips: {real} real, {degraded} degraded"
    );
}

/// The admin router's check: a bearer token names the caller.
fn check(head: &Parts) -> Result<String, Refusal> {
    match head
        .headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
    {
        Some("Bearer ops-token") => Ok("ops".to_owned()),
        Some("Bearer intern-token") => Err(Refusal::Forbidden),
        Some(_) | None => Err(Refusal::Unauthenticated),
    }
}

const OPS: (&str, &str) = ("authorization", "Bearer ops-token");
const INTERN: (&str, &str) = ("authorization", "Bearer intern-token");
const JSON: (&str, &str) = ("content-type", "application/json");
const SWITCH_PATH: &str = "/admin/degradation/switches/recommendations";

#[test]
fn the_admin_router_refuses_to_build_without_a_check() {
    let degrader = Degrader::new();
    let built: Result<Router, AdminError> = AdminRouter::new(&degrader).build();
    assert_eq!(built.err(), Some(AdminError::NoCheck));
}

#[tokio::test]
async fn the_admin_router_flips_switches_for_authorised_callers_only() {
    let degrader = Degrader::new();
    let flips = Arc::new(Mutex::new(Vec::new()));
    let sink = flips.clone();
    degrader.listen(move |event: &FlipEvent| {
        sink.lock().expect("not poisoned").push((
            event.switch.to_string(),
            event.from,
            event.to,
            event.flip.who().to_owned(),
            event.flip.why().to_owned(),
            event.flip.source(),
        ));
    });
    let table = code_table(&degrader);
    let shop = Shop::new();
    shop.recommendations.recover();
    let admin: Router = AdminRouter::new(&degrader)
        .authorize(check)
        .build()
        .expect("a check was given");
    let app = shop.router(&table).nest("/admin/degradation", admin);
    let client = HttpClient::new(serve(app).await);
    let level = || {
        degrader
            .switch("recommendations")
            .expect("declared")
            .level()
    };
    let put = |headers: &'static [(&'static str, &'static str)], body: &'static str| {
        client.send(Method::PUT, SWITCH_PATH, headers, body)
    };
    let flip_on = r#"{"level": 1, "why": "black friday"}"#;

    // Callers the check refuses: 401 (with a challenge) or 403, problem+json, nothing moves.
    let reply = put(&[JSON], flip_on).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    let reply = put(&[("authorization", "Bearer wrong"), JSON], flip_on).await;
    reply.assert_problem(StatusCode::UNAUTHORIZED);
    put(&[INTERN, JSON], flip_on)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    client
        .get("/admin/degradation/switches")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!(level(), 0);
    assert!(flips.lock().expect("not poisoned").is_empty());
    assert_eq!(
        client.get("/recommendations").await.text(),
        "real recommendations"
    );

    // Reading is behind the check too, and shows the switch the table declared.
    let reply = client
        .send(Method::GET, "/admin/degradation/switches", &[OPS], "")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.json(),
        serde_json::json!({"switches": [{"name": "recommendations", "level": 0}]})
    );

    // An authorised PUT flips the switch, and the bound route degrades.
    let reply = put(&[OPS, JSON], flip_on).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        reply.json(),
        serde_json::json!({"name": "recommendations", "from": 0, "to": 1})
    );
    assert_eq!(level(), 1);
    let reply = client.get("/recommendations").await;
    assert_fallback(
        &reply,
        "recommendations",
        "switch",
        "GET /recommendations",
        true,
    );
    assert_eq!(shop.recommendations.calls(), 1);
    let reply = client.send(Method::GET, SWITCH_PATH, &[OPS], "").await;
    assert_eq!(
        reply.json(),
        serde_json::json!({"name": "recommendations", "level": 1})
    );

    // Malformed bodies: 400, and nothing moves.
    for body in [
        "{not json",
        r#"{"level": "high"}"#,
        r#"{"level": 300}"#,
        r#"{"level": 0, "extra": true}"#,
        "",
    ] {
        let reply = put(&[OPS, JSON], body).await;
        reply.assert_problem(StatusCode::BAD_REQUEST);
        assert_eq!(level(), 1, "after {body:?}");
    }

    // An unknown switch: 404, and the router does not make it.
    for method in [Method::PUT, Method::GET] {
        let reply = client
            .send(
                method.clone(),
                "/admin/degradation/switches/no-such-switch",
                &[OPS, JSON],
                if method == Method::PUT { flip_on } else { "" },
            )
            .await;
        reply.assert_problem(StatusCode::NOT_FOUND);
    }
    assert!(degrader.get("no-such-switch").is_none());

    // A body over 4 KiB: 413, and nothing moves.
    let long = format!(r#"{{"level": 0, "why": "{}"}}"#, "x".repeat(5_000));
    let reply = client
        .send(Method::PUT, SWITCH_PATH, &[OPS, JSON], long)
        .await;
    reply.assert_problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(level(), 1);

    // Flipped back, the route recovers.
    let reply = put(&[OPS, JSON], r#"{"level": 0}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(
        client.get("/recommendations").await.text(),
        "real recommendations"
    );
    assert_eq!(shop.recommendations.calls(), 2);

    // Each flip was an event naming the caller the check let in, and the admin source.
    let flips = flips.lock().expect("not poisoned").clone();
    let name = || "recommendations".to_owned();
    assert_eq!(
        flips,
        vec![
            (
                name(),
                0,
                1,
                "ops".to_owned(),
                "black friday".to_owned(),
                Source::Admin
            ),
            (name(), 1, 0, "ops".to_owned(), String::new(), Source::Admin),
        ]
    );
}

#[tokio::test]
async fn one_endpoint_of_the_table_on_one_route() {
    let degrader = Degrader::new();
    let table = FallbackTable::builder(&degrader)
        .endpoint(
            "GET /x",
            Endpoint::new(echo("x")).switch("x", 1).header(true),
        )
        .endpoint("GET /y", Endpoint::new(echo("y")).header(true))
        .build()
        .expect("a valid table");
    // Only declared keys, with the method they were declared with, have a layer.
    assert!(table.route("GET /nope").is_none());
    assert!(table.route("POST /x").is_none());
    assert!(table.route("/x").is_none());

    let x = Upstream::failing("x", StatusCode::INTERNAL_SERVER_ERROR);
    let y = Upstream::failing("y", StatusCode::INTERNAL_SERVER_ERROR);
    // `route_layer` wraps the routes added before it: `/x` alone.
    let router = Router::new()
        .route("/x", route_to(&x))
        .route_layer(table.route("GET /x").expect("declared"))
        .route("/y", route_to(&y));
    let client = HttpClient::new(serve(router).await);

    let reply = client.get("/x?page=2").await;
    assert_fallback(&reply, "x", "failure_response", "GET /x?page=2", true);
    assert_eq!(x.calls(), 1);
    // `/y` is in the table, but its layer is not on the route: its 500 passes through.
    assert_untouched_failure(&client.get("/y").await, &y);

    // The endpoint's switch binds the per-route layer too.
    degrader
        .set("x", 1, Flip::new("ops", "drill"))
        .expect("a valid switch");
    let reply = client.get("/x").await;
    assert_fallback(&reply, "x", "switch", "GET /x", true);
    assert_eq!(x.calls(), 1);
    x.recover();
    degrader
        .set("x", 0, Flip::new("ops", "drill over"))
        .expect("a valid switch");
    let reply = client.get("/x").await;
    assert_eq!(reply.text(), "real x", "{reply:?}");
    assert_eq!(x.calls(), 2);
}
