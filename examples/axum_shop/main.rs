//! A shop built on axum, with every Steadfast layer and every endpoint's policy in
//! `shop.toml`. The guide is `docs/axum_shop.md`.
//!
//! ```text
//! cargo run --example axum_shop                 # serve on 127.0.0.1:3000, everything in memory
//! cargo run --example axum_shop -- --demo       # drive a scripted outage through it, then exit
//! cargo run --example axum_shop --features redis -- --redis redis://127.0.0.1:6379
//! ```
//!
//! Options: `--addr ADDR` (or `SHOP_ADDR`), `--config FILE` (the policies; default the
//! `shop.toml` beside this file), `--redis URL` (or `STEADFAST_REDIS_URL`; needs the `redis`
//! feature), `--warehouse URL` (a warehouse of your own; by default one is started in this
//! process on a free port, with `/fault/{healthy|errors|slow|hang}` on the shop to break it).
//! The ops routes want `Authorization: Bearer $SHOP_OPS_TOKEN` (`ops-token` if unset).

// Shared with the end-to-end tests, which use parts this program does not.
#[allow(dead_code, unreachable_pub)]
mod shop;
#[allow(dead_code, unreachable_pub)]
mod store;
#[allow(dead_code, unreachable_pub)]
mod warehouse;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Method, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::PrometheusBuilder;
use shop::{Backend, Options, Shop, ShopConfig};
use steadfast::core::BoxError;
use tokio::net::TcpListener;
use warehouse::{Fault, Warehouse};

/// The command line.
#[derive(Debug, Default)]
struct Args {
    addr: Option<String>,
    config: Option<String>,
    redis: Option<String>,
    warehouse: Option<String>,
    demo: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        addr: std::env::var("SHOP_ADDR").ok(),
        redis: std::env::var("STEADFAST_REDIS_URL")
            .ok()
            .filter(|url| !url.is_empty()),
        ..Args::default()
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => args.addr = Some(value()?),
            "--config" => args.config = Some(value()?),
            "--redis" => args.redis = Some(value()?),
            "--warehouse" => args.warehouse = Some(value()?),
            "--demo" => args.demo = true,
            other => return Err(format!("unknown option {other}; see the top of main.rs")),
        }
    }
    Ok(args)
}

async fn backend(redis: Option<&str>) -> Result<Backend, BoxError> {
    match redis {
        None => Ok(Backend::Memory),
        #[cfg(feature = "redis")]
        Some(url) => Ok(Backend::Redis(store::Redis::connect(url).await?)),
        #[cfg(not(feature = "redis"))]
        Some(_) => Err("Redis was asked for, but this build has no Redis client: \
                        run with `--features redis`"
            .into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = args()?;
    // The recorder first: breakers and caches register their metrics when they are built.
    let metrics = PrometheusBuilder::new().install_recorder()?;

    let config = match &args.config {
        Some(path) => ShopConfig::from_toml(&std::fs::read_to_string(path)?)?,
        None => ShopConfig::example(),
    };
    // The warehouse: given, or one of our own on loopback that can be broken on purpose.
    let own_warehouse = Warehouse::new(50);
    let warehouse_url = match &args.warehouse {
        Some(url) => url.clone(),
        None => format!("http://{}", own_warehouse.serve().await?.0),
    };
    let ops_token = std::env::var("SHOP_OPS_TOKEN").unwrap_or_else(|_| "ops-token".to_owned());
    let shop = Shop::build(Options {
        config,
        warehouse: warehouse_url,
        backend: backend(args.redis.as_deref()).await?,
        ops_token: ops_token.clone(),
        metrics: Some(metrics),
    })
    .await?;
    // The SLO loop: signals evaluated every second, the budget policy flipping the switch.
    let _evaluation = shop.slos.spawn(Duration::from_secs(1));

    let app = shop.router().merge(fault_routes(own_warehouse.clone()));
    let listener = TcpListener::bind(if args.demo {
        "127.0.0.1:0"
    } else {
        args.addr.as_deref().unwrap_or("127.0.0.1:3000")
    })
    .await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    if args.demo {
        demo(&format!("http://{addr}"), &shop, &own_warehouse, &ops_token).await?;
        server.abort();
        return Ok(());
    }
    println!(
        "the shop is on http://{addr} (backend: {})",
        if args.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    );
    println!("  curl -i http://{addr}/products/1");
    println!("  curl -i -X POST http://{addr}/orders -H 'idempotency-key: k-1' -H 'x-customer: alice' -d '{{\"product_id\":1,\"quantity\":2}}'");
    println!("  curl -i http://{addr}/recommendations");
    println!("  curl -X POST http://{addr}/fault/hang        # or errors, slow, healthy");
    println!("  curl -H 'authorization: Bearer {ops_token}' http://{addr}/ops/status/");
    println!("  curl http://{addr}/metrics");
    server.await??;
    Ok(())
}

/// `POST /fault/{kind}`: breaks the in-process warehouse, for trying the shop by hand.
fn fault_routes(warehouse: Warehouse) -> Router {
    async fn set(State(warehouse): State<Warehouse>, Path(kind): Path<String>) -> StatusCode {
        let fault = match kind.as_str() {
            "healthy" => Fault::Healthy,
            "errors" => Fault::Errors,
            "slow" => Fault::Latency(Duration::from_secs(1)),
            "hang" => Fault::Hang,
            _ => return StatusCode::NOT_FOUND,
        };
        warehouse.set_fault(fault);
        StatusCode::NO_CONTENT
    }
    Router::new()
        .route("/fault/{kind}", post(set))
        .with_state(warehouse)
}

// ---------------------------------------------------------------------------------------------
// The demo: a scripted outage, driven over real HTTP, printed as a timeline

struct Demo {
    client: Client<HttpConnector, Body>,
    base: String,
    started: Instant,
    rows: Vec<(String, String, String)>,
}

impl Demo {
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(StatusCode, String, String), BoxError> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Body::from(body.to_owned()))?)
            .await?;
        let status = response.status();
        let marks: Vec<String> = [
            "x-cache-source",
            "x-cache-stale",
            "steadfast-degraded",
            "idempotent-replayed",
            "retry-after",
        ]
        .iter()
        .filter_map(|name| {
            Some(format!(
                "{name}: {}",
                response.headers().get(*name)?.to_str().ok()?
            ))
        })
        .collect();
        let text =
            String::from_utf8_lossy(&response.into_body().collect().await?.to_bytes()).into_owned();
        let shown: String = text.lines().next().unwrap_or("").chars().take(90).collect();
        println!(
            "{:>7.3}s  {method} {path} → {} {}\n           {}",
            self.started.elapsed().as_secs_f64(),
            status.as_u16(),
            marks.join(", "),
            shown
        );
        let marks = marks.join(", ");
        Ok((status, marks, text))
    }

    fn note(&self, what: &str) {
        println!(
            "\n{:>7.3}s  ── {what}",
            self.started.elapsed().as_secs_f64()
        );
    }

    fn row(&mut self, what: &str, result: impl Into<String>, expected: &str) {
        self.rows
            .push((what.to_owned(), result.into(), expected.to_owned()));
    }
}

async fn demo(base: &str, shop: &Shop, warehouse: &Warehouse, token: &str) -> Result<(), BoxError> {
    let mut demo = Demo {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: base.to_owned(),
        started: Instant::now(),
        rows: Vec::new(),
    };
    let order = |key: &'static str| {
        [
            ("idempotency-key", key),
            ("x-customer", "alice"),
            ("content-type", "application/json"),
        ]
    };
    let body = r#"{"product_id":1,"quantity":2}"#;

    demo.note("a healthy warehouse: a product read twice, an order placed and retried");
    demo.call(Method::GET, "/products/1", &[], "").await?;
    let (_, marks, _) = demo.call(Method::GET, "/products/1", &[], "").await?;
    demo.row("second read of a product", marks, "x-cache-source: l1");
    let (status, _, first) = demo
        .call(Method::POST, "/orders", &order("order-1"), body)
        .await?;
    let (_, marks, again) = demo
        .call(Method::POST, "/orders", &order("order-1"), body)
        .await?;
    demo.row(
        "order retried with its key",
        format!(
            "{} then {marks}; same order: {}",
            status.as_u16(),
            first == again
        ),
        "201, replayed, same order",
    );
    let (status, _, _) = demo
        .call(
            Method::POST,
            "/orders",
            &order("order-1"),
            r#"{"product_id":2,"quantity":1}"#,
        )
        .await?;
    demo.row(
        "same key, another order",
        status.as_u16().to_string(),
        "422",
    );
    demo.call(Method::GET, "/recommendations", &[], "").await?;

    demo.note("the warehouse starts failing (500 to everything)");
    warehouse.set_fault(Fault::Errors);
    tokio::time::sleep(Duration::from_millis(2100)).await; // past the products' TTL
    let (_, marks, _) = demo.call(Method::GET, "/products/1", &[], "").await?;
    demo.row(
        "cached product, warehouse failing",
        marks,
        "stale, load-failed",
    );
    let (_, marks, _) = demo.call(Method::GET, "/recommendations", &[], "").await?;
    demo.row("recommendations, warehouse failing", marks, "fallback");
    let (status, _, _) = demo
        .call(Method::POST, "/orders", &order("order-2"), body)
        .await?;
    demo.row(
        "new order, warehouse failing",
        status.as_u16().to_string(),
        "503, nothing charged",
    );
    for _ in 0..3 {
        demo.call(Method::GET, "/products/7", &[], "").await?;
    }
    println!(
        "           the warehouse breaker is now {:?}",
        shop.breaker.state()
    );
    demo.row(
        "warehouse breaker after the failures",
        format!("{:?}", shop.breaker.state()),
        "Open",
    );
    // The SLO loop evaluates every second: the recommender's budget burns at once on a young
    // process, its page signal fires, and the policy switches the route to its fallback.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let flipped = shop
        .degrader
        .history()
        .into_iter()
        .rev()
        .find(|flip| &*flip.switch == "recommendations")
        .map_or("not flipped".to_owned(), |flip| {
            format!("level {} by {}", flip.to, flip.flip.who())
        });
    println!("           the recommendations switch: {flipped}");
    demo.row(
        "recommendations switch after the burn",
        flipped,
        "level 1 by slo:recommendations",
    );

    demo.note("the warehouse hangs: every call is cut at its 250 ms timeout");
    warehouse.set_fault(Fault::Hang);
    tokio::time::sleep(Duration::from_millis(2100)).await; // the breaker lets a probe through
    let started = Instant::now();
    demo.call(Method::GET, "/products/9", &[], "").await?;
    demo.row(
        "never-seen product, warehouse hanging",
        format!("answered in {} ms", started.elapsed().as_millis()),
        "< 1 s, marked fallback",
    );

    demo.note("recommendations answer from the fallback without calling the warehouse");
    let auth = format!("Bearer {token}");
    let before = warehouse.calls();
    let (_, marks, _) = demo.call(Method::GET, "/recommendations", &[], "").await?;
    demo.row(
        "recommendations, switch on",
        format!("{marks}; warehouse calls {}", warehouse.calls() - before),
        "fallback (switch), 0 calls",
    );
    demo.note("an operator sets the switch back by hand rather than wait for the hold");
    demo.call(
        Method::PUT,
        "/ops/switches/recommendations",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        r#"{"level":0,"why":"the warehouse is back"}"#,
    )
    .await?;

    demo.note("the warehouse recovers; the breaker closes after its probe");
    warehouse.set_fault(Fault::Healthy);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    demo.call(Method::GET, "/products/2", &[], "").await?;
    let (status, _, _) = demo
        .call(Method::POST, "/orders", &order("order-2"), body)
        .await?;
    demo.row(
        "the order retried after recovery",
        status.as_u16().to_string(),
        "201",
    );
    demo.row(
        "warehouse breaker at the end",
        format!("{:?}", shop.breaker.state()),
        "Closed",
    );
    let charges = warehouse.charges().len();
    demo.row(
        "charges made for 2 orders (4 attempts)",
        charges.to_string(),
        "2",
    );

    let (status, _, text) = demo
        .call(
            Method::GET,
            "/ops/status/status.json",
            &[("authorization", &auth)],
            "",
        )
        .await?;
    demo.row(
        "status page JSON",
        format!("{} ({} bytes)", status.as_u16(), text.len()),
        "200",
    );
    let (_, _, text) = demo.call(Method::GET, "/metrics", &[], "").await?;
    let series = text
        .lines()
        .filter(|line| line.starts_with("steadfast_"))
        .count();
    demo.row("Prometheus series", series.to_string(), "> 0");

    println!("\n{:<40} {:<62} expected", "what", "seen");
    for (what, seen, expected) in &demo.rows {
        println!("{what:<40} {seen:<62} {expected}");
    }
    Ok(())
}
