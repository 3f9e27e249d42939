//! The shop: every layer of Steadfast in one axum service, each endpoint's policy read from
//! `shop.toml`.
//!
//! ```text
//! POST /orders             SLI → idempotency → handler ─┬→ products cache → warehouse
//!                                                        └→ charge ──────────→ warehouse
//! GET  /products/{id}      SLI → handler → cache (stale-if-error) → warehouse   (fallback outside)
//! PUT  /products/{id}      ops token → warehouse → cache insert, told to every instance
//! GET  /recommendations    handler → fallback (switch) → SLI → warehouse
//! GET  /ops/status         ops token → the status page (and /ops/status/status.json, /freeze)
//! GET  /ops/switches       ops token → the degradation switches (PUT to flip one)
//! GET  /metrics            Prometheus text
//!
//! warehouse = breaker (HTTP mode) → timeout → hyper client, one breaker for the dependency
//! ```
//!
//! This file is shared by the example's `main.rs` and by the end-to-end tests in `tests/`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use steadfast::breaker::{self, CircuitBreaker, Rejected, TimedOut};
use steadfast::cache::{Admit, Cached, Source, Stale, Status, TieredCache};
use steadfast::core::{BoxError, Degraded, HttpStatus, Reason};
use steadfast::fallback::admin::{AdminRouter, Refusal};
use steadfast::fallback::{Degrader, FallbackLayer, FallbackRequest, Reasons};
use steadfast::idempotency::http::IdempotencyLayer;
use steadfast::idempotency::Idempotency;
use steadfast::slo::config::{PolicyConfig, SetConfig, SloConfig};
use steadfast::slo::status::{self, StatusBoard};
use steadfast::slo::SloSet;
use tower::util::BoxCloneSyncService;
use tower::{service_fn, ServiceBuilder, ServiceExt};

use super::store::ShopStore;
use super::warehouse::{Charge, ChargeRequest, Product, ProductChange};

// ---------------------------------------------------------------------------------------------
// The policy file

/// `shop.toml`: every endpoint's policy. Unknown keys are refused, so a typo is an error at
/// startup rather than a default nobody chose.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopConfig {
    /// The warehouse, the one dependency.
    pub warehouse: WarehouseConfig,
    /// `POST /orders`.
    pub orders: OrdersConfig,
    /// `GET /products/{id}`.
    pub products: ProductsConfig,
    /// `GET /recommendations`.
    pub recommendations: RecommendationsConfig,
}

/// How the warehouse is called.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseConfig {
    /// Each call, its body included, is cut off after this.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The breaker guarding every call to it.
    pub breaker: breaker::Config,
}

/// `POST /orders`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersConfig {
    /// Refuse orders without an `Idempotency-Key` (`400`).
    pub require_key: bool,
    /// How long a first call holds its key: longer than an order may take.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How long a completed order is replayed.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// The largest order body, in bytes (`413` past it).
    pub max_body: usize,
    /// The route's SLO.
    pub slo: SloConfig,
}

/// `GET /products/{id}`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductsConfig {
    /// Fresh for this long.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Past the TTL, a failed reload answers the old product, marked, for this long.
    #[serde(with = "humantime_serde")]
    pub stale_if_error: Duration,
    /// "No such product" is kept this long.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// Products kept in this process.
    pub max_capacity: u64,
    /// A load (the warehouse call) is given up after this.
    #[serde(with = "humantime_serde")]
    pub load_timeout: Duration,
    /// One Redis call is given up after this (with Redis).
    #[serde(with = "humantime_serde")]
    pub redis_timeout: Duration,
    /// How long a miss waits for another instance's load of the same product (with Redis).
    #[serde(with = "humantime_serde")]
    pub lock_wait: Duration,
    /// The route's SLO.
    pub slo: SloConfig,
}

/// `GET /recommendations`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendationsConfig {
    /// Products the fallback offers before any answer came (those in this process's cache).
    pub popular: Vec<u64>,
    /// The route's SLO. It is measured at the warehouse call, inside the fallback: it says
    /// how the recommender does, which the fallback hides from shoppers.
    pub slo: SloConfig,
    /// When the SLO burns, switch the route to its fallback: the policy's switch and level
    /// are the route's.
    pub degrade: PolicyConfig,
}

/// A policy file that could not be read.
#[derive(Debug)]
pub struct ConfigError(String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shop.toml: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ShopConfig {
    /// Parses the policy file.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError(error.to_string()))
    }

    /// The policy file shipped with the example.
    pub fn example() -> Self {
        Self::from_toml(include_str!("shop.toml")).expect("the example's shop.toml is valid")
    }
}

// ---------------------------------------------------------------------------------------------
// The warehouse client: breaker → timeout → hyper

/// A call to the warehouse: the whole body read, so the timeout covers it.
type WarehouseService = BoxCloneSyncService<http::Request<Bytes>, http::Response<Bytes>, BoxError>;

/// Why a warehouse call failed.
#[derive(Debug)]
enum CallError {
    /// The breaker refused: the warehouse was not called.
    Refused(Rejected),
    /// No answer within the timeout.
    TimedOut(TimedOut),
    /// An answer the call did not expect, or none at all.
    Failed(BoxError),
}

impl CallError {
    /// Reads what the breaker's HTTP mode put on a response it made itself.
    fn from_response(response: &http::Response<Bytes>) -> Self {
        if let Some(rejected) = response.extensions().get::<Rejected>() {
            CallError::Refused(*rejected)
        } else if let Some(timed_out) = response.extensions().get::<TimedOut>() {
            CallError::TimedOut(*timed_out)
        } else {
            CallError::Failed(format!("the warehouse answered {}", response.status()).into())
        }
    }

    /// Boxed, keeping the breaker's types so the cache and the fallback read the reason.
    fn boxed(self) -> BoxError {
        match self {
            CallError::Refused(rejected) => rejected.into(),
            CallError::TimedOut(timed_out) => timed_out.into(),
            CallError::Failed(error) => error,
        }
    }
}

fn warehouse_service(url: &str, breaker: &CircuitBreaker, timeout: Duration) -> WarehouseService {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let base = url.trim_end_matches('/').to_owned();
    let call = service_fn(move |request: http::Request<Bytes>| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let (mut parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
            parts.uri = format!("{base}{path}").parse()?;
            let response = client
                .request(http::Request::from_parts(parts, Full::new(body)))
                .await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, BoxError>(http::Response::from_parts(parts, body))
        }
    });
    // HTTP mode: a 5xx counts as a failure; a refusal is a 503 and a timeout a 504, each with
    // the breaker's type in its extensions, so callers tell them from the warehouse's own.
    BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(breaker.layer().http().timeout(timeout))
            .service(call),
    )
}

fn json_request<T: Serialize>(method: Method, path: &str, body: &T) -> http::Request<Bytes> {
    let mut request = http::Request::new(Bytes::from(
        serde_json::to_vec(body).expect("plain structs serialize"),
    ));
    *request.method_mut() = method;
    *request.uri_mut() = path.parse().expect("paths built here are valid");
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    request
}

fn get_request(path: &str) -> http::Request<Bytes> {
    let mut request = http::Request::new(Bytes::new());
    *request.uri_mut() = path.parse().expect("paths built here are valid");
    request
}

// ---------------------------------------------------------------------------------------------
// The shop

/// Where the shop keeps what it shares with other instances.
#[derive(Clone, Debug, Default)]
pub enum Backend {
    /// Everything in this process.
    #[default]
    Memory,
    /// Idempotency records and the products' L2 in Redis.
    #[cfg(feature = "redis")]
    Redis(super::store::Redis),
}

/// What a shop is built from.
#[derive(Clone, Debug)]
pub struct Options {
    /// The policies.
    pub config: ShopConfig,
    /// The warehouse's base URL (`http://127.0.0.1:4000`).
    pub warehouse: String,
    /// Memory or Redis.
    pub backend: Backend,
    /// The bearer token the ops routes want.
    pub ops_token: String,
    /// Where `/metrics` reads from, if anywhere.
    pub metrics: Option<PrometheusHandle>,
}

/// The shop's parts, kept so that the example and the tests can look inside.
#[derive(Clone, Debug)]
pub struct Shop {
    /// The warehouse's breaker.
    pub breaker: CircuitBreaker,
    /// Products by id; `None` is "no such product".
    pub products: TieredCache<u64, Option<Product>>,
    /// The degradation switches.
    pub degrader: Degrader,
    /// The SLOs and their policies.
    pub slos: SloSet,
    /// The status board.
    pub board: StatusBoard,
    /// The order idempotency engine (its store is where records live).
    pub idempotency: Idempotency<ShopStore>,
    warehouse: WarehouseService,
    recommendations: WarehouseService,
    last_good: LastGood,
    config: ShopConfig,
    ops_token: Arc<str>,
    metrics: Option<PrometheusHandle>,
}

/// Why a shop could not be built.
pub type BuildError = BoxError;

impl Shop {
    /// Builds the shop's parts from `options`.
    pub async fn build(options: Options) -> Result<Self, BuildError> {
        let Options {
            config,
            warehouse,
            backend,
            ops_token,
            metrics,
        } = options;

        let breaker = CircuitBreaker::from_config("warehouse", config.warehouse.breaker.clone())?;
        let warehouse = warehouse_service(&warehouse, &breaker, config.warehouse.timeout);

        let products = config.products.clone();
        let builder = TieredCache::builder("products")
            .ttl(products.ttl)
            .stale_if_error(products.stale_if_error)
            .negative_ttl(products.negative_ttl)
            .admit(Admit::option)
            .max_capacity(products.max_capacity)
            .load_timeout(products.load_timeout);
        let (store, builder) = match &backend {
            Backend::Memory => (ShopStore::memory(), builder),
            #[cfg(feature = "redis")]
            Backend::Redis(redis) => (
                ShopStore::redis(redis),
                builder
                    .remote(redis.tier())
                    .remote_timeout(products.redis_timeout)
                    .lock_wait(products.lock_wait, Duration::from_millis(10)),
            ),
        };
        let products = builder.build()?;

        // The SLOs of the three routes and the one policy, built as one set.
        let degrader = Degrader::new();
        let mut slo_config = SetConfig::default();
        slo_config.slo = vec![
            config.orders.slo.clone(),
            config.products.slo.clone(),
            config.recommendations.slo.clone(),
        ];
        slo_config.policy = vec![config.recommendations.degrade.clone()];
        let degrade = &config.recommendations.degrade;
        // The switch must exist before the route binds it; the policy flips it.
        let switch = degrader.switch(&degrade.switch)?;
        let slos = slo_config.build(&degrader)?;

        // GET /recommendations: fallback (also while the switch is on) → SLI → warehouse.
        let fallback_products = products.clone();
        let popular = config.recommendations.popular.clone();
        let last_good = LastGood::default();
        let fallback_last = last_good.clone();
        let recommender = slos
            .get(&config.recommendations.slo.name)
            .expect("built above")
            .clone();
        let recommendations = BoxCloneSyncService::new(
            ServiceBuilder::new()
                .layer(
                    FallbackLayer::from_fn(move |_: FallbackRequest<http::request::Parts>| {
                        let answer = fallback_last
                            .get()
                            .unwrap_or_else(|| popular_products(&fallback_products, &popular));
                        async move { Ok::<_, BoxError>(answer) }
                    })
                    .http()
                    .header(true)
                    .on(Reasons::ALL)
                    .switch(switch, degrade.level),
                )
                .layer(recommender.layer().classify(HttpStatus::default()))
                .service(warehouse.clone()),
        );

        let idempotency = Idempotency::new(store)
            .lease(config.orders.lease)
            .retention(config.orders.retention);

        let board = StatusBoard::new();
        board.breaker("shop", &breaker);
        board.degrader(degrader.clone());
        board.slos(&slos);
        board.cache("shop", &products);

        Ok(Self {
            breaker,
            products,
            degrader,
            slos,
            board,
            idempotency,
            warehouse,
            recommendations,
            last_good,
            config,
            ops_token: ops_token.into(),
            metrics,
        })
    }

    /// The shop's routes.
    pub fn router(&self) -> Router {
        let shop = Arc::new(self.clone());
        let orders = &self.config.orders;
        let orders_slo = self
            .slos
            .get(&orders.slo.name)
            .expect("built from the config");
        let products_slo = self
            .slos
            .get(&self.config.products.slo.name)
            .expect("built from the config");

        let order_routes = Router::new()
            .route("/orders", post(place_order))
            .route_layer(
                ServiceBuilder::new()
                    // Outermost, so a replay counts as the answer the caller got.
                    .layer(orders_slo.layer().classify(HttpStatus::default()))
                    .layer(
                        IdempotencyLayer::new(self.idempotency.clone())
                            .require_key(orders.require_key)
                            .max_request_body(orders.max_body)
                            // Keys belong to a customer: the same key from two customers is two
                            // orders. A real service takes this from its authentication layer.
                            .scope(|head: &http::request::Parts| {
                                let customer = head.headers.get("x-customer")?.to_str().ok()?;
                                (!customer.is_empty() && customer.len() <= 64)
                                    .then(|| customer.to_owned())
                            }),
                    ),
            );
        let product_routes = Router::new()
            .route("/products/{id}", get(product))
            .route_layer(products_slo.layer().classify(HttpStatus::default()));

        let token = self.ops_token.clone();
        let admin = AdminRouter::new(&self.degrader)
            .authorize(move |head: &http::request::Parts| match bearer(head) {
                Some(given) if given == &*token => Ok("ops".to_owned()),
                Some(_) => Err(Refusal::Forbidden),
                None => Err(Refusal::Unauthenticated),
            })
            .build()
            .expect("the check is given");
        let ops = Router::new()
            .route("/products/{id}", axum::routing::put(update_product))
            .with_state(shop.clone())
            .nest("/status", status::router(self.board.clone()))
            .route_layer(middleware::from_fn_with_state(shop.clone(), ops_only))
            .merge(admin);

        Router::new()
            .merge(order_routes)
            .merge(product_routes)
            .route("/recommendations", get(recommendations))
            .route("/metrics", get(metrics))
            .with_state(shop)
            .nest("/ops", ops)
    }
}

fn bearer(head: &http::request::Parts) -> Option<&str> {
    head.headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn ops_only(State(shop): State<Arc<Shop>>, request: Request, next: Next) -> Response {
    let (head, body) = request.into_parts();
    match bearer(&head) {
        Some(token) if token == &*shop.ops_token => next.run(Request::from_parts(head, body)).await,
        Some(_) => problem(
            StatusCode::FORBIDDEN,
            "that token may not use the ops routes",
        ),
        None => problem(
            StatusCode::UNAUTHORIZED,
            "the ops routes need a bearer token",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Answers

/// An RFC 9457 problem.
pub fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// The header saying where a product came from (`l1`, `l2`, `warehouse`).
pub const SOURCE: &str = "x-cache-source";
/// The header marking a stale product, with why (`load-failed; reason=timeout`).
pub const STALE: &str = "x-cache-stale";
/// The header marking a fallback answer, with why (the fallback crate's).
pub const DEGRADED: &str = "steadfast-degraded";

fn product_answer(product: &Cached<Option<Product>>) -> Response {
    let Some(found) = product.value() else {
        return problem(StatusCode::NOT_FOUND, "no such product");
    };
    let mut response = Json(found).into_response();
    let headers = response.headers_mut();
    let source = match product.source() {
        Source::L1 => "l1",
        Source::L2 => "l2",
        Source::Loader => "warehouse",
    };
    headers.insert(SOURCE, HeaderValue::from_static(source));
    let stale = match product.status() {
        Status::Fresh => None,
        Status::Stale(Stale::Revalidating) => Some("revalidating".to_owned()),
        Status::Stale(Stale::LoadFailed(reason)) => {
            Some(format!("load-failed; reason={}", reason.as_str()))
        }
    };
    if let Some(stale) = stale {
        headers.insert(STALE, HeaderValue::from_str(&stale).expect("ASCII"));
    }
    response
}

/// The last recommendations the warehouse gave: what the fallback answers first.
#[derive(Clone, Debug, Default)]
struct LastGood(Arc<parking_lot::Mutex<Option<Bytes>>>);

impl LastGood {
    fn get(&self) -> Option<http::Response<Bytes>> {
        let body = self.0.lock().clone()?;
        let mut response = http::Response::new(body);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Some(response)
    }

    fn set(&self, body: &Bytes) {
        *self.0.lock() = Some(body.clone());
    }
}

/// The fallback of `GET /recommendations` before any answer came: the popular products this process has cached,
/// with no call to anything.
fn popular_products(
    products: &TieredCache<u64, Option<Product>>,
    popular: &[u64],
) -> http::Response<Bytes> {
    let found: Vec<Product> = popular
        .iter()
        .filter_map(|id| products.peek(id).flatten())
        .collect();
    let mut response = http::Response::new(Bytes::from(
        serde_json::to_vec(&found).expect("products serialize"),
    ));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

// ---------------------------------------------------------------------------------------------
// Handlers

impl Shop {
    /// Reads a product from the warehouse: `None` when it has no such product.
    async fn fetch_product(&self, id: u64) -> Result<Option<Product>, BoxError> {
        let response = self
            .warehouse
            .clone()
            .oneshot(get_request(&format!("/products/{id}")))
            .await?;
        match response.status() {
            StatusCode::OK => Ok(Some(serde_json::from_slice(response.body())?)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(CallError::from_response(&response).boxed()),
        }
    }

    /// Reads a product through the cache.
    async fn cached_product(
        self: &Arc<Self>,
        id: u64,
    ) -> Result<Cached<Option<Product>>, steadfast::cache::Error<BoxError>> {
        let shop = self.clone();
        self.products
            .get_with(id, move || async move { shop.fetch_product(id).await })
            .await
    }

    /// Charges `amount_cents` under `key`, which the provider keeps: a repeat is not a second
    /// charge.
    async fn charge(&self, key: &str, amount_cents: u64) -> Result<Charge, CallError> {
        let mut request = json_request(Method::POST, "/charges", &ChargeRequest { amount_cents });
        request.headers_mut().insert(
            "idempotency-key",
            HeaderValue::from_str(key).map_err(|error| CallError::Failed(error.into()))?,
        );
        let response = self
            .warehouse
            .clone()
            .oneshot(request)
            .await
            .map_err(CallError::Failed)?;
        match response.status() {
            StatusCode::OK | StatusCode::CREATED => serde_json::from_slice(response.body())
                .map_err(|error| CallError::Failed(error.into())),
            _ => Err(CallError::from_response(&response)),
        }
    }
}

async fn product(State(shop): State<Arc<Shop>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return problem(StatusCode::BAD_REQUEST, "a product id is a number");
    };
    match shop.cached_product(id).await {
        Ok(product) => product_answer(&product),
        // Nothing cached, not even stale: a placeholder, marked and never stored (it is made
        // here, outside the cache, so no cache tier ever sees it).
        Err(error) => {
            let reason = error.reason();
            let mut response =
                Json(serde_json::json!({ "id": id, "available": false })).into_response();
            response.extensions_mut().insert(Degraded::new(reason));
            let headers = response.headers_mut();
            headers.insert(DEGRADED, HeaderValue::from_static(reason.as_str()));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
    }
}

async fn update_product(
    State(shop): State<Arc<Shop>>,
    Path(id): Path<u64>,
    Json(change): Json<ProductChange>,
) -> Response {
    let request = json_request(Method::PUT, &format!("/products/{id}"), &change);
    let response = match shop.warehouse.clone().oneshot(request).await {
        Ok(response) => response,
        Err(error) => return problem(StatusCode::BAD_GATEWAY, &format!("warehouse: {error}")),
    };
    match response.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return problem(StatusCode::NOT_FOUND, "no such product"),
        _ => {
            return match CallError::from_response(&response) {
                CallError::Refused(_) | CallError::TimedOut(_) => problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the warehouse is unavailable",
                ),
                CallError::Failed(error) => problem(StatusCode::BAD_GATEWAY, &error.to_string()),
            }
        }
    }
    let Ok(product) = serde_json::from_slice::<Product>(response.body()) else {
        return problem(
            StatusCode::BAD_GATEWAY,
            "the warehouse answered something else",
        );
    };
    // Every instance drops its copy; the next read anywhere finds this one in L2.
    if let Err(error) = shop.products.insert(id, Some(product.clone())).await {
        // The change is made; other instances may serve the old product until its TTL.
        let mut response = Json(product).into_response();
        let warning = format!("199 - \"other instances not told: {error}\"");
        if let Ok(value) = HeaderValue::from_str(&warning) {
            response.headers_mut().insert(header::WARNING, value);
        }
        return response;
    }
    Json(product).into_response()
}

async fn recommendations(State(shop): State<Arc<Shop>>) -> Response {
    match shop
        .recommendations
        .clone()
        .oneshot(get_request("/recommendations"))
        .await
    {
        Ok(response) if response.status().is_success() => {
            if response.extensions().get::<Degraded>().is_none() {
                shop.last_good.set(response.body());
            }
            response.map(axum::body::Body::from)
        }
        // The fallback answers every failure, so what is left is the fallback's own failure.
        Ok(response) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("recommendations: {}", response.status()),
        ),
        Err(error) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("recommendations: {error}"),
        ),
    }
}

/// An order as a customer sends it.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// The product.
    pub product_id: u64,
    /// How many, 1 to 100.
    pub quantity: u32,
}

/// An order placed.
#[derive(Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Order {
    /// The order's id.
    pub order_id: String,
    /// The provider's charge.
    pub charge_id: u64,
    /// The product.
    pub product_id: u64,
    /// How many.
    pub quantity: u32,
    /// What was charged.
    pub amount_cents: u64,
}

async fn place_order(State(shop): State<Arc<Shop>>, headers: HeaderMap, body: Bytes) -> Response {
    let order: OrderRequest = match serde_json::from_slice(&body) {
        Ok(order) => order,
        Err(error) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("not an order: {error}"),
            )
        }
    };
    if !(1..=100).contains(&order.quantity) {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "the quantity is 1 to 100");
    }
    // The idempotency layer checked both before the handler ran.
    let (Some(key), Some(customer)) = (
        headers
            .get("idempotency-key")
            .and_then(|key| key.to_str().ok()),
        headers
            .get("x-customer")
            .and_then(|customer| customer.to_str().ok()),
    ) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "orders need an Idempotency-Key and a customer",
        );
    };

    let product = match shop.cached_product(order.product_id).await {
        Ok(product) => product,
        Err(_) => {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the catalogue is unavailable",
            )
        }
    };
    // A price the warehouse could not confirm is not charged.
    if let Status::Stale(Stale::LoadFailed(_)) = product.status() {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "prices cannot be confirmed now",
        );
    }
    let Some(product) = product.value() else {
        return problem(StatusCode::NOT_FOUND, "no such product");
    };
    let amount_cents = product.price_cents * u64::from(order.quantity);

    // The provider is given the customer's key: if this call's answer is lost (a timeout after
    // the provider charged), the key is released here, and the retry asks the provider again,
    // which answers the first charge instead of making a second.
    match shop
        .charge(&format!("{customer}:{key}"), amount_cents)
        .await
    {
        Ok(charge) => {
            let placed = Order {
                order_id: format!("ord-{}", charge.charge_id),
                charge_id: charge.charge_id,
                product_id: order.product_id,
                quantity: order.quantity,
                amount_cents: charge.amount_cents,
            };
            (StatusCode::CREATED, Json(placed)).into_response()
        }
        Err(CallError::Refused(_)) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "payments are unavailable; nothing was charged",
        ),
        Err(CallError::TimedOut(_)) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the payment provider did not answer in time; retry with the same Idempotency-Key, \
             which is never charged twice",
        ),
        Err(CallError::Failed(error)) => problem(
            StatusCode::BAD_GATEWAY,
            &format!("the payment failed: {error}"),
        ),
    }
}

async fn metrics(State(shop): State<Arc<Shop>>) -> Response {
    match &shop.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "metrics are not recorded by this process",
        ),
    }
}

/// Maps an answer's reason for the summary of the example: used by `main.rs` and the tests.
pub fn degraded_reason(headers: &HeaderMap) -> Option<Reason> {
    Reason::from_name(headers.get(DEGRADED)?.to_str().ok()?)
}
