//! The axum shop of `examples/axum_shop`, started on loopback for the end-to-end tests, with a
//! load driver that judges every answer.

#[path = "../../examples/axum_shop/shop.rs"]
#[allow(dead_code, unreachable_pub)]
pub mod shop;
#[path = "../../examples/axum_shop/store.rs"]
#[allow(dead_code, unreachable_pub)]
pub mod store;
#[path = "../../examples/axum_shop/warehouse.rs"]
#[allow(dead_code, unreachable_pub)]
pub mod warehouse;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use shop::{Backend, Options, Order, Shop, ShopConfig};
use steadfast::breaker::State;
use steadfast::idempotency::record::Record;
use steadfast::idempotency::store::{Store, StoreKey};
use steadfast::idempotency::IdempotencyKey;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use warehouse::{Product, Warehouse};

/// Products the warehouse holds: ids 1 to this. The load also asks for ids past it.
pub const PRODUCTS: u64 = 20;

/// The longest any answer may take. The shop's own bounds are shorter: a warehouse call
/// 250 ms, a Redis command 250 ms, an order at most four of them in a row.
pub const DEADLINE: Duration = Duration::from_secs(2);

/// A shop and its warehouse, serving on loopback.
pub struct Stack {
    /// The shop's parts.
    pub shop: Shop,
    /// The warehouse, to break and to audit.
    pub warehouse: Warehouse,
    /// `http://127.0.0.1:port` of the shop.
    pub base: String,
    server: JoinHandle<()>,
    _evaluation: JoinHandle<()>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.server.abort();
        self._evaluation.abort();
    }
}

/// The ops token of the test shops.
pub const TOKEN: &str = "test-token";

impl Stack {
    /// A shop with its own warehouse.
    pub async fn start(backend: Backend) -> Self {
        let warehouse = Warehouse::new(PRODUCTS);
        let (addr, _) = warehouse.serve().await.expect("the warehouse starts");
        Self::with_warehouse(backend, warehouse, &format!("http://{addr}")).await
    }

    /// A shop on `warehouse` (served at `url`): two of these make a fleet.
    pub async fn with_warehouse(backend: Backend, warehouse: Warehouse, url: &str) -> Self {
        let shop = Shop::build(Options {
            config: ShopConfig::example(),
            warehouse: url.to_owned(),
            backend,
            ops_token: TOKEN.to_owned(),
            metrics: None,
        })
        .await
        .expect("the shop builds");
        let evaluation = shop.slos.spawn(Duration::from_secs(1));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let app = shop.router();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the shop serves");
        });
        Self {
            shop,
            warehouse,
            base,
            server,
            _evaluation: evaluation,
        }
    }
}

/// An HTTP client, as a customer's.
pub fn client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An answer, read whole within [`DEADLINE`].
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
    /// How long it took.
    pub took: Duration,
}

impl Answer {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// Whether it is an RFC 9457 problem.
    pub fn is_problem(&self) -> bool {
        self.header("content-type") == Some("application/problem+json")
            && serde_json::from_slice::<serde_json::Value>(&self.body)
                .is_ok_and(|body| body["status"] == self.status.as_u16())
    }
}

/// What went wrong with a call, when nothing came back.
#[derive(Debug)]
pub enum NoAnswer {
    /// Nothing within the deadline.
    Hung,
    /// The connection failed.
    Failed(String),
}

/// Sends a request and reads the whole answer within [`DEADLINE`].
pub async fn send(
    client: &Client<HttpConnector, Body>,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Answer, NoAnswer> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Body::from(body.to_owned()))
        .expect("a valid request");
    let started = Instant::now();
    let call = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| NoAnswer::Failed(e.to_string()))?;
        let (head, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| NoAnswer::Failed(e.to_string()))?;
        Ok(Answer {
            status: head.status,
            headers: head.headers,
            body: body.to_bytes().to_vec(),
            took: started.elapsed(),
        })
    };
    tokio::time::timeout(DEADLINE, call)
        .await
        .unwrap_or(Err(NoAnswer::Hung))
}

// ---------------------------------------------------------------------------------------------
// Judging answers

/// What an answer was.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The right answer, fresh.
    Correct,
    /// A product's last value, marked stale, equal to the warehouse's.
    Stale,
    /// A fallback, marked.
    Fallback,
    /// A replay of an order already placed, marked.
    Replayed,
    /// A refusal or failure the caller can act on: a problem+json with a 4xx or 5xx.
    ClearError(u16),
    /// Anything else: the test fails.
    Forbidden(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Correct => f.write_str("correct"),
            Outcome::Stale => f.write_str("stale, marked"),
            Outcome::Fallback => f.write_str("fallback, marked"),
            Outcome::Replayed => f.write_str("replayed order"),
            Outcome::ClearError(status) => write!(f, "clear error {status}"),
            Outcome::Forbidden(why) => write!(f, "FORBIDDEN: {why}"),
        }
    }
}

fn clear_error(answer: &Answer) -> Outcome {
    let status = answer.status;
    if !answer.is_problem() {
        return Outcome::Forbidden(format!(
            "{status} without a problem body: {}",
            String::from_utf8_lossy(&answer.body)
        ));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE && answer.header("retry-after").is_none() {
        return Outcome::Forbidden("503 without Retry-After".to_owned());
    }
    Outcome::ClearError(status.as_u16())
}

/// Judges an answer to `GET /products/{id}` against what the warehouse holds.
pub fn judge_product(answer: &Answer, id: u64, truth: Option<&Product>) -> Outcome {
    if answer.header(shop::DEGRADED).is_some() {
        let placeholder = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .is_ok_and(|body| body["id"] == id && body["available"] == false);
        return if !placeholder {
            Outcome::Forbidden("a fallback product that is not the placeholder".to_owned())
        } else if answer.header("cache-control") != Some("no-store") {
            Outcome::Forbidden("a fallback product a cache may keep".to_owned())
        } else {
            Outcome::Fallback
        };
    }
    match (answer.status, truth) {
        (StatusCode::OK, Some(truth)) => match serde_json::from_slice::<Product>(&answer.body) {
            Ok(product) if product == *truth => {
                if answer.header(shop::STALE).is_some() {
                    Outcome::Stale
                } else {
                    Outcome::Correct
                }
            }
            Ok(product) => {
                Outcome::Forbidden(format!("product {product:?}, the warehouse has {truth:?}"))
            }
            Err(error) => Outcome::Forbidden(format!("not a product: {error}")),
        },
        (StatusCode::NOT_FOUND, None) if answer.is_problem() => Outcome::Correct,
        (StatusCode::OK | StatusCode::NOT_FOUND, _) => Outcome::Forbidden(format!(
            "{} for product {id}, which the warehouse has as {truth:?}",
            answer.status
        )),
        _ => clear_error(answer),
    }
}

/// Judges an answer to `GET /recommendations`.
pub fn judge_recommendations(answer: &Answer) -> Outcome {
    if answer.status != StatusCode::OK {
        return clear_error(answer);
    }
    let Ok(products) = serde_json::from_slice::<Vec<Product>>(&answer.body) else {
        return Outcome::Forbidden("recommendations that are not products".to_owned());
    };
    if answer.header(shop::DEGRADED).is_some() {
        Outcome::Fallback
    } else if products.len() == 3 {
        Outcome::Correct
    } else {
        Outcome::Forbidden(format!("{} recommendations, unmarked", products.len()))
    }
}

/// Judges an answer to `POST /orders`, noting placed orders by key.
pub fn judge_order(
    answer: &Answer,
    key: &str,
    quantity: u32,
    truth: &Product,
    placed: &Placed,
) -> Outcome {
    if answer.status == StatusCode::CREATED {
        let Ok(order) = serde_json::from_slice::<Order>(&answer.body) else {
            return Outcome::Forbidden("a 201 that is not an order".to_owned());
        };
        if order.amount_cents != truth.price_cents * u64::from(quantity) {
            return Outcome::Forbidden(format!(
                "charged {} for {quantity} × {}",
                order.amount_cents, truth.price_cents
            ));
        }
        let mut placed = placed.lock();
        match placed.get_mut(key) {
            Some((first, _)) if *first != order => {
                return Outcome::Forbidden(format!(
                    "key {key} answered with {order:?}, before with {first:?}"
                ));
            }
            Some((_, seen)) => *seen += 1,
            None => {
                placed.insert(key.to_owned(), (order, 1));
            }
        }
        return if answer.header("idempotent-replayed") == Some("true") {
            Outcome::Replayed
        } else {
            Outcome::Correct
        };
    }
    clear_error(answer)
}

/// Orders placed, by idempotency key: the first answer, and how many answers named it. An
/// answer naming another order is forbidden when it comes.
pub type Placed = Arc<Mutex<HashMap<String, (Order, u32)>>>;

/// Counts of outcomes by route, printed as a table.
#[derive(Default)]
pub struct Tally(Mutex<BTreeMap<(String, String), u64>>);

impl Tally {
    /// Counts one answer.
    pub fn count(&self, route: &str, outcome: &Outcome) {
        let label = match outcome {
            Outcome::Forbidden(_) => "FORBIDDEN".to_owned(),
            other => other.to_string(),
        };
        *self.0.lock().entry((route.to_owned(), label)).or_default() += 1;
    }

    /// The table, one line per route and outcome.
    pub fn table(&self) -> String {
        let mut out = format!("{:<22} {:<22} {:>8}\n", "route", "outcome", "requests");
        for ((route, outcome), count) in self.0.lock().iter() {
            out.push_str(&format!("{route:<22} {outcome:<22} {count:>8}\n"));
        }
        out
    }

    /// How many answers had this outcome label.
    pub fn of(&self, outcome: &str) -> u64 {
        self.0
            .lock()
            .iter()
            .filter(|((_, label), _)| label == outcome)
            .map(|(_, count)| count)
            .sum()
    }

    /// Every answer counted.
    pub fn total(&self) -> u64 {
        self.0.lock().values().sum()
    }
}

// ---------------------------------------------------------------------------------------------
// After the faults

/// Waits for the breaker to close again once the warehouse is healthy: a probe goes through
/// after its open period (2 s), so a few reads close it.
pub async fn recover(stack: &Stack) {
    let client = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stack.shop.breaker.state() != State::Closed {
        assert!(
            Instant::now() < deadline,
            "the breaker did not close: {:?}",
            stack.shop.breaker.snapshot()
        );
        let _ = send(
            &client,
            Method::GET,
            &format!("{}/recommendations", stack.base),
            &[],
            "",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let snapshot = stack.shop.breaker.snapshot();
    assert!(
        snapshot.probes.is_none_or(|(taken, _)| taken == 0),
        "a half-open permit was kept: {snapshot:?}"
    );
}

/// After the faults, with the warehouse healthy: every product read is the warehouse's, fresh
/// and unmarked, and no cache tier holds anything but real products.
pub async fn products_are_real(stack: &Stack) {
    let client = client();
    for id in 1..=PRODUCTS + 3 {
        let truth = stack.warehouse.product(id);
        if let Some(cached) = stack.shop.products.peek(&id) {
            assert_eq!(
                cached, truth,
                "product {id} in the cache is not the warehouse's"
            );
        }
        let url = format!("{}/products/{id}", stack.base);
        // A stale entry is reloaded by the first read past its TTL; the second is fresh.
        let mut outcome = Outcome::Stale;
        for _ in 0..2 {
            let answer = send(&client, Method::GET, &url, &[], "")
                .await
                .expect("an answer");
            outcome = judge_product(&answer, id, truth.as_ref());
            if outcome == Outcome::Correct {
                break;
            }
        }
        assert_eq!(outcome, Outcome::Correct, "product {id} after the faults");
    }
}

/// No order's claim was left in progress: every key the load used is completed or released.
pub async fn no_claim_left(stack: &Stack, load: &Load) {
    let store = stack.shop.idempotency.store();
    let attempted = load.attempted.lock().clone();
    let mut completed = 0;
    for (customer, key) in &attempted {
        let key = IdempotencyKey::try_from(key.as_str()).expect("the load's keys are valid");
        match store
            .get(&StoreKey::new(customer, &key))
            .await
            .expect("the store answers")
        {
            Some(Record::InProgress { .. }) => panic!("{customer}/{key:?} was left in progress"),
            Some(Record::Completed(_)) => completed += 1,
            None => {}
        }
    }
    println!(
        "order keys: {} used, {completed} completed, none left in progress",
        attempted.len()
    );
}

// ---------------------------------------------------------------------------------------------
// The load

/// A bounded load: `workers` customers, each sending one request at a time until `until`.
/// Every answer is judged; forbidden ones are collected with what was asked.
pub struct Load {
    /// Outcomes by route.
    pub tally: Arc<Tally>,
    /// Orders placed, by key.
    pub placed: Placed,
    /// What went wrong, described.
    pub forbidden: Arc<Mutex<Vec<String>>>,
    /// The slowest answer.
    pub slowest: Arc<Mutex<Duration>>,
    /// Every order key sent: (customer, key).
    pub attempted: Arc<Mutex<std::collections::HashSet<(String, String)>>>,
}

impl Load {
    /// Runs the load against `base` until `until`, reading the truth from `warehouse`.
    /// `keys` bounds the order keys each worker uses (they are reused, as retries): `None` is
    /// a fresh key per order.
    pub async fn run(
        bases: &[String],
        warehouse: &Warehouse,
        workers: usize,
        until: Instant,
        keys: Option<u64>,
    ) -> Self {
        let load = Load {
            tally: Arc::default(),
            placed: Arc::default(),
            forbidden: Arc::default(),
            slowest: Arc::default(),
            attempted: Arc::default(),
        };
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..workers {
            let (tally, placed, forbidden, slowest, attempted) = (
                load.tally.clone(),
                load.placed.clone(),
                load.forbidden.clone(),
                load.slowest.clone(),
                load.attempted.clone(),
            );
            let warehouse = warehouse.clone();
            let bases = bases.to_vec();
            tasks.spawn(async move {
                let client = client();
                let mut rng = fastrand::Rng::with_seed(worker as u64 + 1);
                let mut sent = 0u64;
                while Instant::now() < until {
                    sent += 1;
                    let base = &bases[rng.usize(..bases.len())];
                    let (route, outcome, asked, took) = match rng.u32(..10) {
                        0..=4 => {
                            // Now and then an id nobody has seen: a miss, and, while the
                            // warehouse fails, the fallback.
                            let id = if rng.u32(..10) == 0 {
                                rng.u64(1_000..1_000_000)
                            } else {
                                rng.u64(1..=PRODUCTS)
                            };
                            let url = format!("{base}/products/{id}");
                            match send(&client, Method::GET, &url, &[], "").await {
                                Ok(answer) => {
                                    let outcome =
                                        judge_product(&answer, id, warehouse.product(id).as_ref());
                                    ("GET /products/{id}", outcome, url, answer.took)
                                }
                                Err(none) => (
                                    "GET /products/{id}",
                                    Outcome::Forbidden(format!("{none:?}")),
                                    url,
                                    DEADLINE,
                                ),
                            }
                        }
                        5..=7 => {
                            let url = format!("{base}/recommendations");
                            match send(&client, Method::GET, &url, &[], "").await {
                                Ok(answer) => (
                                    "GET /recommendations",
                                    judge_recommendations(&answer),
                                    url,
                                    answer.took,
                                ),
                                Err(none) => (
                                    "GET /recommendations",
                                    Outcome::Forbidden(format!("{none:?}")),
                                    url,
                                    DEADLINE,
                                ),
                            }
                        }
                        _ => {
                            // The key names the order: the same key always asks for the same.
                            let (key, id, quantity) = match keys {
                                Some(keys) => {
                                    let n = rng.u64(..keys);
                                    (
                                        format!("w{worker}-k{n}"),
                                        1 + n % PRODUCTS,
                                        1 + (n % 3) as u32,
                                    )
                                }
                                None => (
                                    format!("w{worker}-o{sent}"),
                                    rng.u64(1..=PRODUCTS),
                                    rng.u32(1..=3),
                                ),
                            };
                            let customer = format!("customer-{worker}");
                            let body = format!(r#"{{"product_id":{id},"quantity":{quantity}}}"#);
                            let url = format!("{base}/orders");
                            let headers = [
                                ("idempotency-key", key.as_str()),
                                ("x-customer", customer.as_str()),
                                ("content-type", "application/json"),
                            ];
                            let truth = warehouse.product(id).expect("ordered products exist");
                            let scoped = format!("{customer}:{key}");
                            attempted.lock().insert((customer.clone(), key.clone()));
                            // Half the orders are sent twice, as a client retrying would.
                            let sends = if rng.bool() { 2 } else { 1 };
                            let mut last = (
                                "POST /orders",
                                Outcome::Correct,
                                String::new(),
                                Duration::ZERO,
                            );
                            for send_number in 0..sends {
                                let base = &bases[rng.usize(..bases.len())];
                                let url = format!("{base}/orders");
                                last = match send(&client, Method::POST, &url, &headers, &body)
                                    .await
                                {
                                    Ok(answer) => {
                                        let outcome = judge_order(
                                            &answer, &scoped, quantity, &truth, &placed,
                                        );
                                        (
                                            "POST /orders",
                                            outcome,
                                            format!("{url} key {key}"),
                                            answer.took,
                                        )
                                    }
                                    Err(none) => (
                                        "POST /orders",
                                        Outcome::Forbidden(format!("{none:?}")),
                                        url.clone(),
                                        DEADLINE,
                                    ),
                                };
                                if send_number + 1 < sends {
                                    tally.count(last.0, &last.1);
                                    if let Outcome::Forbidden(why) = &last.1 {
                                        forbidden.lock().push(format!("{}: {why}", last.2));
                                    }
                                }
                            }
                            let _ = url;
                            last
                        }
                    };
                    tally.count(route, &outcome);
                    {
                        let mut slowest = slowest.lock();
                        *slowest = (*slowest).max(took);
                    }
                    if let Outcome::Forbidden(why) = outcome {
                        forbidden.lock().push(format!("{asked}: {why}"));
                    }
                    // Customers pause between requests: the load is bounded, not a flood.
                    tokio::time::sleep(Duration::from_millis(rng.u64(2..8))).await;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("a load worker panicked");
        }
        load
    }

    /// Fails on any forbidden answer, after printing the table.
    pub fn check(&self, title: &str) {
        println!("\n{title}\n{}", self.tally.table());
        println!("slowest answer: {:?}", *self.slowest.lock());
        let forbidden = self.forbidden.lock();
        assert!(
            forbidden.is_empty(),
            "{} forbidden answers, the first: {:#?}",
            forbidden.len(),
            &forbidden[..forbidden.len().min(10)]
        );
    }

    /// Fails if an order key was answered with two different orders, or if the provider's
    /// charge under a key is not the one every answer named.
    pub fn check_charges(&self, warehouse: &Warehouse) -> usize {
        let charges = warehouse.charges();
        let placed = self.placed.lock();
        for (key, (first, _)) in placed.iter() {
            let charge = charges
                .get(key)
                .unwrap_or_else(|| panic!("key {key} placed without a charge"));
            assert_eq!(
                charge.charge_id, first.charge_id,
                "key {key}: the order names another charge"
            );
        }
        placed.len()
    }
}
