//! An axum service with a breaker per dependency, attached per route, and a status route.
//!
//! ```text
//! cargo run --example axum --features full
//! curl -i localhost:3000/checkout            # 200, or 502 when the payment provider fails
//! curl -X POST localhost:3000/admin/payments/fail  # make the (simulated) provider fail
//! curl -i localhost:3000/checkout            # 502 ×3, then 503 with Retry-After
//! curl -s localhost:3000/status              # every breaker, as JSON
//! curl -X POST localhost:3000/admin/payments/heal  # it recovers; probes pass after 10 s
//! ```
//!
//! Each dependency has one breaker, built at startup and kept for the life of the process
//! (`leak`), so its layer touches no reference count per request. Routes that call the same
//! dependency share its breaker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use steadfast::breaker::{CircuitBreaker, Snapshot};

/// A stand-in for a remote dependency that can be told to fail.
#[derive(Clone, Default)]
struct Dependency {
    failing: Arc<AtomicBool>,
}

impl Dependency {
    async fn call(&self) -> Result<&'static str, StatusCode> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StatusCode::BAD_GATEWAY)
        } else {
            Ok("ok")
        }
    }
}

#[derive(Clone)]
struct App {
    payments: Dependency,
    inventory: Dependency,
    breakers: Arc<Vec<&'static CircuitBreaker>>,
}

fn breaker(name: &str) -> &'static CircuitBreaker {
    CircuitBreaker::builder(name)
        .consecutive_failures(3)
        .failure_rate(0.5)
        .minimum_calls(10)
        .open_duration(Duration::from_secs(10))
        .backoff(2.0, Duration::from_secs(120))
        .jitter(0.1)
        .build()
        .expect("a valid breaker config")
        .leak()
}

fn router() -> Router {
    let payments = breaker("payments");
    let inventory = breaker("inventory");
    let app = App {
        payments: Dependency::default(),
        inventory: Dependency::default(),
        breakers: Arc::new(vec![payments, inventory]),
    };

    // One route group per dependency: the breaker guards every route that calls it.
    let payment_routes = Router::new()
        .route(
            "/checkout",
            get(|State(app): State<App>| async move { app.payments.call().await }),
        )
        .route(
            "/refund",
            post(|State(app): State<App>| async move { app.payments.call().await }),
        )
        .route_layer(payments.static_layer().http());
    let inventory_routes = Router::new()
        .route(
            "/stock",
            get(|State(app): State<App>| async move { app.inventory.call().await }),
        )
        .route_layer(inventory.static_layer().http());

    Router::new()
        .merge(payment_routes)
        .merge(inventory_routes)
        .route("/status", get(status))
        .route("/admin/{dependency}/{action}", post(admin))
        .with_state(app)
}

async fn status(State(app): State<App>) -> Json<Vec<Snapshot>> {
    Json(
        app.breakers
            .iter()
            .map(|breaker| breaker.snapshot())
            .collect(),
    )
}

async fn admin(
    State(app): State<App>,
    axum::extract::Path((dependency, action)): axum::extract::Path<(String, String)>,
) -> Result<&'static str, StatusCode> {
    let target = match dependency.as_str() {
        "payments" => &app.payments,
        "inventory" => &app.inventory,
        _ => return Err(StatusCode::NOT_FOUND),
    };
    match action.as_str() {
        "fail" => target.failing.store(true, Ordering::SeqCst),
        "heal" => target.failing.store(false, Ordering::SeqCst),
        _ => return Err(StatusCode::NOT_FOUND),
    }
    Ok("done")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router()).await
}
