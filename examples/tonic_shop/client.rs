//! `tonic_client`: a gRPC client whose every method has its own circuit breaker, with a
//! fallback for the read (`GetProduct`) and none for the charge (`PlaceOrder`), which is sent
//! with an `idempotency-key` so that retrying it is safe.
//!
//! ```text
//! cargo run --example tonic_client                 # the whole story, against a server of its own
//! cargo run --example tonic_client -- --server http://127.0.0.1:50051 [--watch 30]
//! ```
//!
//! Without `--server` (or `TONIC_SHOP_SERVER`) it starts the `tonic_server` Shop in this
//! process on a free loopback port, and prints a timeline while it stops that server and brings
//! it back: answers, fallbacks, refusals, breakers opening and closing, and charges. It ends
//! by itself. With `--server`, it calls that server, then keeps calling for `--watch` seconds
//! (20 by default) while you stop and restart it. The guide is `docs/tonic_shop.md`.

// Shared with the `tonic_server` example and the tests, which use some parts this one does not.
#[allow(dead_code)]
mod proto;
mod resilient;
#[allow(dead_code)]
mod shop;

use std::error::Error as _;
use std::fmt::Display;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proto::{GetProductRequest, PlaceOrderRequest, ShopClient};
use shop::{Running, ShopService, Stores};
use steadfast::breaker::{Event, EventKind, Rejected, State};
use tonic::body::Body;
use tonic::transport::Endpoint;
use tonic::{Code, Response, Status};

const USAGE: &str = "\
usage: tonic_client [--server URL [--watch SECONDS]] [--redis URL]

  --server URL       call this Shop server (or TONIC_SHOP_SERVER), e.g. http://127.0.0.1:50051;
                     without it, a server runs in this process and the client stops and
                     restarts it
  --watch SECONDS    with --server: keep calling this long (default 20)
  --redis URL        the in-process server keeps its records and cache in Redis (or
                     STEADFAST_REDIS_URL; needs `--features redis`)";

/// Who this client places orders for: idempotency keys are scoped by it on the server.
const CUSTOMER: &str = "alice";

/// What the command line asked for.
#[derive(Debug)]
struct Options {
    server: Option<String>,
    watch: Duration,
    redis: Option<String>,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut options = Self {
            server: std::env::var("TONIC_SHOP_SERVER")
                .ok()
                .filter(|url| !url.is_empty()),
            watch: Duration::from_secs(20),
            redis: None,
        };
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "--server" => options.server = Some(args.next().ok_or("--server needs a URL")?),
                "--watch" => {
                    let value = args.next().ok_or("--watch needs a number of seconds")?;
                    let seconds = value
                        .parse()
                        .map_err(|_| format!("--watch: `{value}` is not a number of seconds"))?;
                    options.watch = Duration::from_secs(seconds);
                }
                "--redis" => options.redis = Some(args.next().ok_or("--redis needs a URL")?),
                other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
            }
        }
        options.redis = shop::redis_url(options.redis);
        Ok(options)
    }
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
    let ran = match options.server {
        Some(server) => against(&server, options.watch).await,
        None => self_hosted(options.redis.as_deref()).await,
    };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tonic_client: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The whole story against a server this process runs, stops and restarts.
async fn self_hosted(redis: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    let stores = Stores::open(redis).await?;
    let shop = ShopService::on(&stores)?;
    let server = Running::start(([127, 0, 0, 1], 0).into(), shop.clone(), stores.clone()).await?;
    let addr = server.addr();
    println!(
        "A Shop server runs in this process on {addr}, its records and cache {}. Lines marked \
         `server |` are its own.",
        stores.describe()
    );
    let mut demo = connect(&format!("http://{addr}"))?;
    // Records in Redis outlive this process: keys of this run's own there.
    let key = keys(!matches!(stores, Stores::Memory(_)));

    section("1. The server is up");
    demo.get_product(1).await; // a miss: the slow database
    demo.get_product(1).await; // a hit in the server's cache
    demo.get_product(99).await; // NOT_FOUND: the caller's mistake, not a failure
    demo.place_order(&key(1), 1, 2).await; // charged
    demo.place_order(&key(1), 1, 2).await; // a retry, as after a lost answer: replayed
    demo.place_order(&key(1), 1, 5).await; // the same key for another order: refused

    section("2. The server goes down");
    server.stop().await?;
    // Each failure is answered by the fallback; the third opens GetProduct's breaker, and from
    // then on the fallback answers at once, without a connection attempt.
    for _ in 0..4 {
        demo.get_product(1).await;
    }
    // No fallback: the caller is told, and keeps the key for its retry.
    let mut refusal = None;
    for _ in 0..4 {
        refusal = demo.place_order(&key(2), 3, 1).await;
    }

    section("3. The server is back");
    let server = Running::start(addr, shop.clone(), stores).await?;
    // The refusal said how long the breaker stays open.
    let wait = refusal.as_ref().and_then(pushback).unwrap_or_default();
    println!("          waiting {wait:?}, as the breaker's grpc-retry-pushback-ms said");
    tokio::time::sleep(wait).await;
    demo.get_product(1).await; // the probe: it succeeds, and the breaker closes
    demo.place_order(&key(2), 3, 1).await; // the retry, same key: charged now, once
    demo.place_order(&key(2), 3, 1).await; // and once only
    server.stop().await?;

    section(format!(
        "{} charges for 2 orders, whatever the retries",
        shop.payments().charges()
    ));
    Ok(())
}

/// A few calls to `server`, then calls every half second for `watch`, while the user stops and
/// restarts it.
async fn against(server: &str, watch: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let mut demo = connect(server)?;
    // The server keeps records for a day: keys of this run's own.
    let key = keys(true);

    section(format!("1. Calls to {server}"));
    demo.get_product(1).await;
    demo.get_product(1).await;
    demo.place_order(&key(1), 1, 2).await;
    demo.place_order(&key(1), 1, 2).await;

    section(format!(
        "2. For {watch:?}, a read and an order every half second: stop the server (Ctrl-C in \
         its terminal), then start it again"
    ));
    let until = Instant::now() + watch;
    let mut order = 2;
    while Instant::now() < until {
        demo.get_product(1).await;
        // An order that failed is retried with its key; the next order gets a new one.
        let failed = demo.place_order(&key(order), 1, 1).await;
        if failed.is_none() {
            order += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// The idempotency key of each order: `order-1`, `order-2`, ..., and when `unique`, with a
/// part of this run's own (a record an earlier run left would answer its `order-1`).
fn keys(unique: bool) -> impl Fn(u32) -> String {
    let run = unique.then(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() % 1_000_000)
    });
    move |order| match run {
        Some(run) => format!("order-{run}-{order}"),
        None => format!("order-{order}"),
    }
}

/// The resilient client, and what the timeline prints.
struct Demo<T> {
    shop: ShopClient<T>,
    transitions: mpsc::Receiver<(State, State)>,
    started: Instant,
}

/// A client of the server at `url`: each method behind its breaker, `GetProduct` behind its
/// fallback.
fn connect(
    url: &str,
) -> Result<
    Demo<impl tonic::client::GrpcService<Body, Error = Status, ResponseBody = Body>>,
    Box<dyn std::error::Error>,
> {
    // Breaker events go to the timeline, which prints them after the call they happened in.
    let (sender, transitions) = mpsc::channel();
    let template = resilient::breaker_template().listener(move |event: &Event<'_>| {
        if let EventKind::Transition { from, to } = event.kind {
            let _ = sender.send((from, to));
        }
    });
    let breakers = resilient::breakers(template)?;
    let fallbacks = resilient::fallbacks()?;
    // Lazy: the client starts whether or not the server is up. A server that does not answer
    // a connection attempt fails the call within the connect timeout.
    let channel = Endpoint::from_shared(url.to_owned())
        .map_err(|_| format!("`{url}` is not a server URL such as http://127.0.0.1:50051"))?
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    Ok(Demo {
        shop: resilient::client(channel, &fallbacks, &breakers),
        transitions,
        started: Instant::now(),
    })
}

impl<T> Demo<T>
where
    T: tonic::client::GrpcService<Body, Error = Status, ResponseBody = Body>,
{
    /// Reads product `id` and prints the answer.
    async fn get_product(&mut self, id: u64) {
        let began = Instant::now();
        let answer = self.shop.get_product(GetProductRequest { id }).await;
        let took = began.elapsed();
        let line = match answer {
            Ok(answer) => match metadata(&answer, resilient::DEGRADED) {
                Some(reason) => format!("the fallback's placeholder (degraded: {reason})"),
                None => {
                    let cache = metadata(&answer, proto::CACHE_STATUS).unwrap_or_default();
                    let product = answer.into_inner();
                    format!(
                        "{}, {} cents (server cache: {cache})",
                        product.name, product.price_cents
                    )
                }
            },
            Err(status) => describe(&status),
        };
        self.print(("GetProduct", id.to_string()), took, line);
    }

    /// Places an order with `key` and prints the answer; answers the status if it failed.
    async fn place_order(&mut self, key: &str, product_id: u64, quantity: u32) -> Option<Status> {
        let began = Instant::now();
        let order = PlaceOrderRequest {
            product_id,
            quantity,
        };
        let answer = match resilient::order(order, CUSTOMER, key) {
            Ok(request) => self.shop.place_order(request).await,
            Err(_) => Err(Status::invalid_argument("the key must be visible ASCII")),
        };
        let took = began.elapsed();
        let call = (
            "PlaceOrder",
            format!("{key}: {quantity} × product {product_id}"),
        );
        match answer {
            Ok(answer) => {
                let replayed = metadata(&answer, proto::IDEMPOTENT_REPLAYED).is_some();
                let order = answer.into_inner();
                let line = format!(
                    "order #{}: {} cents, {}",
                    order.order_id,
                    order.amount_cents,
                    if replayed {
                        "REPLAYED by the server: not charged again"
                    } else {
                        "charged"
                    }
                );
                self.print(call, took, line);
                None
            }
            Err(status) => {
                let advice = match status.code() {
                    Code::Unavailable | Code::DeadlineExceeded => "; retry later with the same key",
                    _ => "",
                };
                self.print(call, took, format!("{}{advice}", describe(&status)));
                Some(status)
            }
        }
    }

    /// Prints one call of `method`, then the breaker transitions it caused.
    fn print(&self, (method, arguments): (&str, String), took: Duration, line: String) {
        let at = self.started.elapsed().as_secs_f64();
        let took = took.as_secs_f64() * 1_000.0;
        let call = format!("{method}({arguments})");
        println!("{at:>7.3}s  {call:<40} {took:>7.2} ms  {line}");
        while let Ok((from, to)) = self.transitions.try_recv() {
            println!("          ⚡ {method}'s breaker: {from} → {to}");
        }
    }
}

/// A failed call in one line: who refused it, and why.
fn describe(status: &Status) -> String {
    let refused_by_breaker = status
        .source()
        .is_some_and(|source| source.downcast_ref::<Rejected>().is_some());
    if refused_by_breaker {
        let wait = pushback(status).map_or_else(String::new, |wait| format!(" for {wait:?}"));
        return format!(
            "{:?}: refused by its breaker{wait}, never sent",
            status.code()
        );
    }
    // Transport errors carry long messages; the first clause says enough.
    let message = status.message().split(':').next().unwrap_or_default();
    format!("{:?}: {message}", status.code())
}

/// How long a breaker's refusal says to wait.
fn pushback(status: &Status) -> Option<Duration> {
    let millis = status.metadata().get(resilient::PUSHBACK)?.to_str().ok()?;
    millis.parse().ok().map(Duration::from_millis)
}

/// A metadata value of an answer, as text.
fn metadata<M>(answer: &Response<M>, name: &str) -> Option<String> {
    let value = answer.metadata().get(name)?.to_str().ok()?;
    Some(value.to_owned())
}

fn section(title: impl Display) {
    println!("── {title}");
}
