//! `tonic_server`: a gRPC Shop whose `PlaceOrder` charges once per `idempotency-key`, however
//! often it is retried, and whose `GetProduct` is read through a two-tier cache in front of a
//! slow database, answering the last known product when the database fails.
//!
//! ```text
//! cargo run --example tonic_server                        # 127.0.0.1:50051, until Ctrl-C
//! cargo run --example tonic_server -- --addr 127.0.0.1:6000
//! TONIC_SHOP_ONCE=1 cargo run --example tonic_server      # a self-check: start, call, stop
//! cargo run --example tonic_server --features redis -- --redis redis://127.0.0.1:6379
//! ```
//!
//! Then, from another terminal: `cargo run --example tonic_client -- --server
//! http://127.0.0.1:50051`. The address may also come from `TONIC_SHOP_ADDR`, the Redis URL
//! from `STEADFAST_REDIS_URL`. The guide is `docs/tonic_shop.md`.

// Shared with the `tonic_client` example and the tests, which use some parts this one does not.
#[allow(dead_code)]
mod proto;
#[allow(dead_code)]
mod shop;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use proto::{GetProductRequest, PlaceOrderRequest, ShopClient, IDEMPOTENT_REPLAYED};
use shop::{Running, ShopService, Stores};
use tokio::net::TcpListener;
use tonic::transport::Endpoint;
use tonic::Request;

/// Where the server listens unless told otherwise.
const DEFAULT_ADDR: &str = "127.0.0.1:50051";

const USAGE: &str = "\
usage: tonic_server [--addr HOST:PORT] [--redis URL] [--once]

  --addr HOST:PORT  where to listen (or TONIC_SHOP_ADDR; default 127.0.0.1:50051)
  --redis URL       keep idempotency records and cached products in Redis (or
                    STEADFAST_REDIS_URL; needs `--features redis`)
  --once            start, call itself once per method, check the answers, stop
                    (or TONIC_SHOP_ONCE=1; on a free port unless --addr is given)";

/// What the command line asked for.
#[derive(Debug)]
struct Options {
    addr: Option<SocketAddr>,
    redis: Option<String>,
    once: bool,
}

impl Options {
    /// Reads the flags, then the environment for what they left out.
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Self {
            addr: None,
            redis: None,
            once: std::env::var("TONIC_SHOP_ONCE").is_ok_and(|once| once == "1"),
        };
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "--addr" => {
                    let value = args.next().ok_or("--addr needs HOST:PORT")?;
                    options.addr = Some(parse_addr(&value)?);
                }
                "--redis" => options.redis = Some(args.next().ok_or("--redis needs a URL")?),
                "--once" => options.once = true,
                other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
            }
        }
        if options.addr.is_none() {
            if let Ok(value) = std::env::var("TONIC_SHOP_ADDR") {
                options.addr = Some(parse_addr(&value)?);
            }
        }
        options.redis = shop::redis_url(options.redis);
        Ok(options)
    }
}

fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("`{value}` is not an address such as 127.0.0.1:50051"))
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tonic_server: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let stores = Stores::open(options.redis.as_deref()).await?;
    let shop = ShopService::on(&stores)?;
    if options.once {
        let addr = options.addr.unwrap_or(([127, 0, 0, 1], 0).into());
        return self_check(addr, shop, stores).await;
    }

    let addr = match options.addr {
        Some(addr) => addr,
        None => parse_addr(DEFAULT_ADDR)?,
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| shop::SetupError::Listen(addr, error))?;
    println!(
        "Shop server on {} (records and cache {}); Ctrl-C to stop",
        listener.local_addr()?,
        stores.describe()
    );
    shop::serve(listener, shop, stores, async {
        // Graceful: stop accepting, finish the calls under way.
        let _ = tokio::signal::ctrl_c().await;
        println!("stopping");
    })
    .await?;
    Ok(())
}

/// Serves on `addr`, calls each method the way a client retries, checks the answers, and stops:
/// a run that ends by itself, for scripts.
async fn self_check(
    addr: SocketAddr,
    shop: ShopService,
    stores: Stores,
) -> Result<(), Box<dyn std::error::Error>> {
    let server = Running::start(addr, shop.clone(), stores.clone()).await?;
    println!(
        "Shop server on {} (records and cache {}); checking it",
        server.addr(),
        stores.describe()
    );
    let channel = Endpoint::from_shared(format!("http://{}", server.addr()))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let mut client = ShopClient::new(channel);

    for _ in 0..2 {
        let answer = client.get_product(GetProductRequest { id: 1 }).await?;
        let cache = answer.metadata().get(proto::CACHE_STATUS).cloned();
        let product = answer.into_inner();
        println!(
            "GetProduct(1): {}, {} cents (cache: {})",
            product.name,
            product.price_cents,
            cache
                .as_ref()
                .and_then(|value| value.to_str().ok())
                .unwrap_or("?")
        );
    }
    let queries = shop.database().queries();

    // A key of this run's own: with Redis, records outlive the process.
    let key = format!("self-check-{}", std::process::id());
    let mut orders = Vec::new();
    for _ in 0..2 {
        let mut request = Request::new(PlaceOrderRequest {
            product_id: 1,
            quantity: 2,
        });
        request
            .metadata_mut()
            .insert(proto::CUSTOMER, "self-check".parse()?);
        request
            .metadata_mut()
            .insert(proto::IDEMPOTENCY_KEY, key.parse()?);
        let answer = client.place_order(request).await?;
        let replayed = answer.metadata().get(IDEMPOTENT_REPLAYED).is_some();
        let order = answer.into_inner();
        println!(
            "PlaceOrder(key {key}): order #{}, {} cents{}",
            order.order_id,
            order.amount_cents,
            if replayed { ", replayed" } else { "" }
        );
        orders.push((order, replayed));
    }
    server.stop().await?;

    let charges = shop.payments().charges();
    let same_order = orders[0].0 == orders[1].0;
    let replays = orders.iter().filter(|(_, replayed)| *replayed).count();
    // With Redis, another run may have loaded the product already: then no query at all.
    if queries > 1 || charges != 1 || !same_order || replays != 1 {
        return Err(format!(
            "self-check failed: {queries} database queries for two reads (want at most 1), \
             {charges} charges for one order sent twice (want 1), the same order both times: \
             {same_order}, {replays} replayed answers (want 1)"
        )
        .into());
    }
    println!("ok: at most one database query for two reads, one charge for one order sent twice");
    Ok(())
}
