//! Steadfast's metrics in Prometheus's text format, for the Grafana dashboard beside this file.
//!
//! ```text
//! cargo run --example grafana                 # serves http://127.0.0.1:9898/metrics
//! PORT=9100 cargo run --example grafana       # another port
//! GRAFANA_EXAMPLE_ONCE=1 cargo run --example grafana   # one round, the metrics to stdout
//! ```
//!
//! The recorder is `metrics-exporter-prometheus`, without its own HTTP listener: an axum route
//! renders the text, so the metrics sit beside the service's other routes. A small workload
//! keeps every kind of series alive: a circuit breaker in front of a dependency that fails now
//! and then and goes down once a round, a cache read in a loop whose loader fails for some
//! keys once their entries are stale, and a degradation switch flipped once.
//!
//! Install the recorder **before** building breakers and caches: they register their metric
//! handles when they are built.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use steadfast::breaker::CircuitBreaker;
use steadfast::cache::TieredCache;
use steadfast::core::metrics as names;
use steadfast::fallback::{Degrader, Flip};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where loader run times fall, in seconds: a histogram (not the exporter's default summary),
/// so that Grafana can take quantiles across instances.
const LOAD_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The cache's TTL: short, so that one round sees entries go stale.
const TTL: Duration = Duration::from_millis(200);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::CACHE_LOAD_SECONDS.to_owned()),
            &LOAD_BUCKETS,
        )?
        .install_recorder()?;
    names::describe();
    let workload = Workload::new()?;

    if std::env::var("GRAFANA_EXAMPLE_ONCE").is_ok_and(|once| once == "1") {
        workload.round().await;
        let stats = workload.products.stats();
        eprintln!(
            "cache {:?}: {} lookups, hit rate {:.0}%",
            workload.products.name(),
            stats.lookups(),
            stats.hit_rate().unwrap_or(0.0) * 100.0
        );
        print!("{}", handle.render());
        return Ok(());
    }

    let port = match std::env::var("PORT") {
        Ok(port) => port
            .parse::<u16>()
            .map_err(|_| format!("PORT must be a port number, not {port:?}"))?,
        Err(_) => 9898,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "serving Prometheus metrics on http://{}/metrics",
        listener.local_addr()?
    );

    tokio::spawn(async move {
        loop {
            workload.round().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    // Without the exporter's own listener nothing drains its histograms: do it here.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });

    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(handle);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn render(axum::extract::State(handle): axum::extract::State<PrometheusHandle>) -> String {
    handle.render()
}

/// The demo's breaker, cache and switch, and how many rounds it has run.
struct Workload {
    breaker: CircuitBreaker,
    products: TieredCache<u32, String>,
    degrader: Degrader,
    rounds: AtomicU64,
}

impl Workload {
    fn new() -> Result<Self, Error> {
        let breaker = CircuitBreaker::builder("inventory")
            .consecutive_failures(3)
            .open_duration(Duration::from_millis(500))
            .build()?;
        let products = TieredCache::builder("products")
            .ttl(TTL)
            .stale_if_error(Duration::from_secs(60))
            .retry_after_error(Duration::from_millis(100))
            .build()?;
        let degrader = Degrader::new();
        degrader.switch("recommendations")?;
        Ok(Self {
            breaker,
            products,
            degrader,
            rounds: AtomicU64::new(0),
        })
    }

    /// One round: calls through the breaker, cache reads, and on the first round the flip.
    async fn round(&self) {
        let round = self.rounds.fetch_add(1, Ordering::Relaxed);
        if round == 0 {
            // The flip is what the dashboard shows; an error here would only mean a bad name.
            let _ = self.degrader.set(
                "recommendations",
                1,
                Flip::new("grafana-example", "show a flip on the dashboard"),
            );
        }
        self.call_inventory().await;
        self.read_products().await;
    }

    /// Twenty calls through the breaker: one in seven fails, then the dependency is down for
    /// the last eight, which trips the breaker and has the rest refused. The next round, past
    /// the open duration, probes and closes it again.
    async fn call_inventory(&self) {
        let dependency = service_fn(|call: u32| async move {
            if call >= 12 || call % 7 == 6 {
                Err("inventory: connection refused")
            } else {
                Ok(format!("call {call}: 12 in stock"))
            }
        });
        let mut inventory = ServiceBuilder::new()
            .layer(self.breaker.layer())
            .service(dependency);
        for call in 0..20 {
            if let Ok(ready) = inventory.ready().await {
                // Refusals and failures are the point: they are what the metrics count.
                let _ = ready.call(call).await;
            }
        }
    }

    /// Reads of twenty products, most of them hits; then, once the entries are stale, reads
    /// whose loader fails for every fifth product, answered stale.
    async fn read_products(&self) {
        for _ in 0..10 {
            for sku in 0..20 {
                let _ = self.products.get_with(sku, move || load(sku, true)).await;
            }
        }
        tokio::time::sleep(TTL + Duration::from_millis(10)).await;
        for sku in 0..20 {
            let _ = self
                .products
                .get_with(sku, move || load(sku, sku % 5 != 0))
                .await;
        }
    }
}

/// The product database: a few milliseconds a query, failing when told to.
async fn load(sku: u32, healthy: bool) -> Result<String, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(2)).await;
    if healthy {
        Ok(format!("product {sku}"))
    } else {
        Err(std::io::Error::other("products: connection refused"))
    }
}
