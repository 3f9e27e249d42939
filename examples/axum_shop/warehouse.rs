//! The warehouse: the shop's one downstream dependency, a real HTTP service on loopback that
//! holds the catalogue, recommends products and takes payments. It can be told to fail in the
//! ways dependencies fail at 3 a.m.: with errors, slowly, or by hanging.
//!
//! Its payment endpoint behaves as real payment providers do: a charge carries an
//! `Idempotency-Key`, and a second charge under the same key answers the first one instead of
//! charging again. The shop relies on that for the one case its own idempotency layer cannot
//! cover: a charge whose answer was lost (the call timed out after the provider had charged).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

/// A product as the warehouse keeps it; `version` grows with every change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its price, in cents.
    pub price_cents: u64,
    /// Its version: 1, then one more per change.
    pub version: u64,
}

/// A change to a product: a new name or price.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProductChange {
    /// The new name, if it changes.
    #[serde(default)]
    pub name: Option<String>,
    /// The new price, if it changes.
    #[serde(default)]
    pub price_cents: Option<u64>,
}

/// A charge request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChargeRequest {
    /// The amount, in cents.
    pub amount_cents: u64,
}

/// A charge made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// The provider's id of the charge.
    pub charge_id: u64,
    /// The amount charged, in cents.
    pub amount_cents: u64,
}

/// How the warehouse misbehaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// It answers at once.
    #[default]
    Healthy,
    /// Every call answers `500`.
    Errors,
    /// Every call takes this long, then answers.
    Latency(Duration),
    /// Every call hangs until the caller gives up.
    Hang,
}

#[derive(Debug, Default)]
struct Inner {
    products: Mutex<HashMap<u64, Product>>,
    fault: Mutex<Fault>,
    /// Charges by idempotency key.
    charges: Mutex<HashMap<String, Charge>>,
    /// Charge requests received, by idempotency key (retries included).
    attempts: Mutex<HashMap<String, u32>>,
    next_charge: AtomicU64,
    calls: AtomicU64,
}

/// The warehouse's state, shared by its handlers and by whoever injects faults.
#[derive(Clone, Debug, Default)]
pub struct Warehouse {
    inner: Arc<Inner>,
}

/// The products the warehouse starts with: ids 1 to `count`.
fn catalogue(count: u64) -> HashMap<u64, Product> {
    const NAMES: [&str; 5] = ["teapot", "kettle", "mug", "cosy", "strainer"];
    (1..=count)
        .map(|id| {
            let name = format!("{} #{id}", NAMES[(id % 5) as usize]);
            (
                id,
                Product {
                    id,
                    name,
                    price_cents: 500 + 100 * id,
                    version: 1,
                },
            )
        })
        .collect()
}

impl Warehouse {
    /// A warehouse holding products 1 to `products`.
    pub fn new(products: u64) -> Self {
        let warehouse = Self::default();
        *warehouse.inner.products.lock() = catalogue(products);
        warehouse
    }

    /// Makes every call misbehave as `fault` says, from now on.
    pub fn set_fault(&self, fault: Fault) {
        *self.inner.fault.lock() = fault;
    }

    /// The product as the warehouse has it now.
    pub fn product(&self, id: u64) -> Option<Product> {
        self.inner.products.lock().get(&id).cloned()
    }

    /// Charges made, by idempotency key.
    pub fn charges(&self) -> HashMap<String, Charge> {
        self.inner.charges.lock().clone()
    }

    /// Charge requests received, by idempotency key: more than one for a key means the shop
    /// asked again (after a lost answer, say), not that it charged twice.
    pub fn attempts(&self) -> HashMap<String, u32> {
        self.inner.attempts.lock().clone()
    }

    /// Calls received, of every kind.
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    /// The router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/products/{id}", get(get_product).put(put_product))
            .route("/recommendations", get(recommendations))
            .route("/charges", post(charge))
            .with_state(self.clone())
    }

    /// Serves the warehouse on a free loopback port until the returned handle is dropped or
    /// aborted.
    pub async fn serve(&self) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = self.router();
        let task = tokio::spawn(async move {
            // The server runs until aborted; an accept error ends it, and the shop's breaker
            // then sees connection errors, as with any dead dependency.
            let _ = axum::serve(listener, app).await;
        });
        Ok((addr, task))
    }

    /// Runs `answer` under the current fault.
    async fn faulty<F, Fut>(&self, answer: F) -> Response
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Response>,
    {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let fault = *self.inner.fault.lock();
        match fault {
            Fault::Healthy => answer().await,
            Fault::Errors => {
                (StatusCode::INTERNAL_SERVER_ERROR, "warehouse failure").into_response()
            }
            Fault::Latency(delay) => {
                tokio::time::sleep(delay).await;
                answer().await
            }
            // The caller's timeout ends this; hyper drops the handler when it hangs up.
            Fault::Hang => std::future::pending().await,
        }
    }
}

async fn get_product(State(warehouse): State<Warehouse>, Path(id): Path<u64>) -> Response {
    warehouse
        .clone()
        .faulty(|| async move {
            match warehouse.product(id) {
                Some(product) => Json(product).into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        })
        .await
}

async fn put_product(
    State(warehouse): State<Warehouse>,
    Path(id): Path<u64>,
    Json(change): Json<ProductChange>,
) -> Response {
    warehouse
        .clone()
        .faulty(|| async move {
            let mut products = warehouse.inner.products.lock();
            let Some(product) = products.get_mut(&id) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            if let Some(name) = change.name {
                product.name = name;
            }
            if let Some(price) = change.price_cents {
                product.price_cents = price;
            }
            product.version += 1;
            Json(product.clone()).into_response()
        })
        .await
}

async fn recommendations(State(warehouse): State<Warehouse>) -> Response {
    warehouse
        .clone()
        .faulty(|| async move {
            // The three cheapest products: a stand-in for a model's answer.
            let mut products: Vec<Product> =
                warehouse.inner.products.lock().values().cloned().collect();
            products.sort_by_key(|product| (product.price_cents, product.id));
            products.truncate(3);
            Json(products).into_response()
        })
        .await
}

async fn charge(
    State(warehouse): State<Warehouse>,
    headers: HeaderMap,
    Json(request): Json<ChargeRequest>,
) -> Response {
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|key| key.to_str().ok())
        .map(str::to_owned)
    else {
        return (StatusCode::BAD_REQUEST, "an Idempotency-Key is required").into_response();
    };
    warehouse
        .clone()
        .faulty(|| async move {
            *warehouse
                .inner
                .attempts
                .lock()
                .entry(key.clone())
                .or_default() += 1;
            let mut charges = warehouse.inner.charges.lock();
            if let Some(charge) = charges.get(&key) {
                // A repeat: the first charge's answer, or a refusal if it asks for another
                // amount under the same key.
                return if charge.amount_cents == request.amount_cents {
                    (StatusCode::OK, Json(charge.clone())).into_response()
                } else {
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "key used for another charge",
                    )
                        .into_response()
                };
            }
            let charge = Charge {
                charge_id: warehouse.inner.next_charge.fetch_add(1, Ordering::Relaxed) + 1,
                amount_cents: request.amount_cents,
            };
            charges.insert(key, charge.clone());
            (StatusCode::CREATED, Json(charge)).into_response()
        })
        .await
}
