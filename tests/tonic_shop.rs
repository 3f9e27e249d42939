//! The tonic shop examples end to end, through real tonic channels on loopback: the server's
//! idempotent `PlaceOrder` (charged once per key and customer, replayed, refused for another
//! request) and cached `GetProduct` (one database query for many reads, stale answers while
//! the database is down), and the client's per-method breakers and fallback while the server
//! goes down and comes back. With `redis`, two instances share one real Redis server.
#![cfg(all(
    feature = "tonic",
    feature = "idempotency",
    feature = "cache",
    feature = "fallback",
    feature = "breaker"
))]

#[allow(dead_code)]
#[path = "../examples/tonic_shop/proto.rs"]
mod proto;
#[allow(dead_code)]
#[path = "../examples/tonic_shop/resilient.rs"]
mod resilient;
#[allow(dead_code)]
#[path = "../examples/tonic_shop/shop.rs"]
mod shop;

use std::error::Error as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::{GetProductRequest, PlaceOrderRequest, Product, ShopClient, IDEMPOTENT_REPLAYED};
use shop::{products_cache, Database, Payments, Running, ShopService, Stores};
use steadfast::breaker::{Rejected, State};
use steadfast::core::Clock;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Response, Status};

/// The longest any one call may take before the test fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The database's delay in these tests: slow enough that concurrent reads overlap.
const DATABASE_DELAY: Duration = Duration::from_millis(100);

/// `call`, or a failed test if it takes longer than [`CALL_TIMEOUT`].
async fn timed<T>(call: impl Future<Output = T>) -> T {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .expect("the call finished in time")
}

/// A shop with its own database, payments and in-memory stores, its cache on `clock`.
async fn shop_on(clock: Clock) -> (ShopService, Stores) {
    let stores = Stores::open(None).await.expect("memory stores");
    let products = products_cache()
        .clock(clock)
        .build()
        .expect("a valid cache");
    let shop = ShopService::new(
        products,
        Arc::new(Database::new(DATABASE_DELAY)),
        Arc::new(Payments::default()),
    );
    (shop, stores)
}

async fn start(addr: SocketAddr, shop: &ShopService, stores: &Stores) -> Running {
    Running::start(addr, shop.clone(), stores.clone())
        .await
        .expect("the server starts")
}

fn loopback() -> SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

/// A plain client (no breaker, no fallback) connected to `addr`.
async fn plain_client(addr: SocketAddr) -> ShopClient<Channel> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("a valid URI");
    let channel = timed(endpoint.connect()).await.expect("a channel");
    ShopClient::new(channel)
}

fn order(
    customer: &str,
    key: &str,
    product_id: u64,
    quantity: u32,
) -> tonic::Request<PlaceOrderRequest> {
    resilient::order(
        PlaceOrderRequest {
            product_id,
            quantity,
        },
        customer,
        key,
    )
    .expect("valid metadata")
}

fn metadata<M>(answer: &Response<M>, name: &str) -> Option<String> {
    answer
        .metadata()
        .get(name)
        .map(|value| value.to_str().expect("ASCII metadata").to_owned())
}

fn replayed<M>(answer: &Response<M>) -> bool {
    metadata(answer, IDEMPOTENT_REPLAYED).as_deref() == Some("true")
}

fn teapot() -> Product {
    Product {
        id: 1,
        name: "Teapot".to_owned(),
        price_cents: 1_200,
    }
}

#[tokio::test]
async fn an_order_is_charged_once_per_key_and_customer() {
    let (shop, stores) = shop_on(Clock::default()).await;
    let server = start(loopback(), &shop, &stores).await;
    let mut client = plain_client(server.addr()).await;

    let first = timed(client.place_order(order("alice", "k-1", 1, 2)))
        .await
        .expect("placed");
    assert!(!replayed(&first));
    let placed = first.into_inner();
    assert_eq!((placed.order_id, placed.amount_cents), (1, 2_400));
    assert_eq!(shop.payments().charges(), 1);

    // A retry with the same key: answered from the record, not charged again.
    for _ in 0..3 {
        let retry = timed(client.place_order(order("alice", "k-1", 1, 2)))
            .await
            .expect("replayed");
        assert!(replayed(&retry), "{:?}", retry.metadata());
        assert_eq!(retry.into_inner(), placed);
    }
    assert_eq!(shop.payments().charges(), 1);

    // The same key for another order: refused, nothing charged.
    let other = timed(client.place_order(order("alice", "k-1", 1, 5)))
        .await
        .expect_err("the key belongs to another order");
    assert_eq!(other.code(), Code::FailedPrecondition, "{other:?}");
    assert_eq!(shop.payments().charges(), 1);

    // Keys are scoped by customer: bob's `k-1` is another order.
    let bob = timed(client.place_order(order("bob", "k-1", 1, 2)))
        .await
        .expect("placed");
    assert!(!replayed(&bob));
    assert_eq!(bob.into_inner().order_id, 2);
    assert_eq!(shop.payments().charges(), 2);

    // No key: the handler refuses to charge unprotected. No customer: the layer refuses.
    let mut keyless = tonic::Request::new(PlaceOrderRequest {
        product_id: 1,
        quantity: 1,
    });
    keyless
        .metadata_mut()
        .insert(proto::CUSTOMER, "alice".parse().expect("ASCII"));
    let refused = timed(client.place_order(keyless))
        .await
        .expect_err("no key");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let mut anonymous = order("alice", "k-2", 1, 1);
    anonymous.metadata_mut().remove(proto::CUSTOMER);
    let refused = timed(client.place_order(anonymous))
        .await
        .expect_err("no customer");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // A product that does not exist: NOT_FOUND, which a retry gets again from the record.
    for _ in 0..2 {
        let missing = timed(client.place_order(order("alice", "k-3", 99, 1)))
            .await
            .expect_err("no such product");
        assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    }
    assert_eq!(shop.payments().charges(), 2);
    assert_eq!(
        shop.database().queries(),
        2,
        "product 1 once, product 99 once"
    );

    timed(server.stop()).await.expect("a clean stop");
}

#[tokio::test]
async fn many_reads_of_a_product_make_one_database_query() {
    let (shop, stores) = shop_on(Clock::default()).await;
    let server = start(loopback(), &shop, &stores).await;
    let client = plain_client(server.addr()).await;

    // Fifty shoppers at once: one load, which all of them wait on.
    let mut shoppers = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let mut client = client.clone();
        shoppers.spawn(async move { timed(client.get_product(GetProductRequest { id: 1 })).await });
    }
    while let Some(answer) = shoppers.join_next().await {
        let answer = answer.expect("the task ran").expect("a product");
        assert_eq!(answer.into_inner(), teapot());
    }
    assert_eq!(shop.database().queries(), 1);

    // Later reads are hits.
    let mut client = client;
    let answer = timed(client.get_product(GetProductRequest { id: 1 }))
        .await
        .expect("a product");
    assert_eq!(
        metadata(&answer, proto::CACHE_STATUS).as_deref(),
        Some("hit")
    );
    assert_eq!(shop.database().queries(), 1);

    // A product that does not exist is remembered as such.
    for _ in 0..3 {
        let missing = timed(client.get_product(GetProductRequest { id: 99 }))
            .await
            .expect_err("no such product");
        assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    }
    assert_eq!(shop.database().queries(), 2);

    timed(server.stop()).await.expect("a clean stop");
}

#[tokio::test]
async fn a_stale_product_answers_while_the_database_is_down() {
    let (clock, time) = Clock::mock();
    let (shop, stores) = shop_on(clock).await;
    let server = start(loopback(), &shop, &stores).await;
    let mut client = plain_client(server.addr()).await;

    let answer = timed(client.get_product(GetProductRequest { id: 1 }))
        .await
        .expect("a product");
    assert_eq!(
        metadata(&answer, proto::CACHE_STATUS).as_deref(),
        Some("miss")
    );

    // Past the TTL, with the database down: the last known product, said to be stale.
    time.advance(Duration::from_secs(61));
    shop.database().set_down(true);
    let answer = timed(client.get_product(GetProductRequest { id: 1 }))
        .await
        .expect("the stale product");
    assert_eq!(
        metadata(&answer, proto::CACHE_STATUS).as_deref(),
        Some("stale; the database failed")
    );
    assert_eq!(answer.into_inner(), teapot());
    assert_eq!(shop.database().queries(), 2);

    // A product never read has nothing stale to answer.
    let status = timed(client.get_product(GetProductRequest { id: 2 }))
        .await
        .expect_err("the database is down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "the catalogue is unavailable");

    // The database back: fresh again once the quiet period after the failure has passed.
    shop.database().set_down(false);
    time.advance(Duration::from_secs(2));
    let answer = timed(client.get_product(GetProductRequest { id: 1 }))
        .await
        .expect("a product");
    assert_eq!(
        metadata(&answer, proto::CACHE_STATUS).as_deref(),
        Some("miss")
    );

    timed(server.stop()).await.expect("a clean stop");
}

/// Asserts `status` is a breaker's refusal, which never reached the server.
#[track_caller]
fn assert_refused(status: &Status) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status
            .source()
            .is_some_and(|source| source.downcast_ref::<Rejected>().is_some()),
        "the breaker's refusal: {status:?}"
    );
    assert!(
        status.metadata().get(resilient::PUSHBACK).is_some(),
        "with a pushback: {status:?}"
    );
}

#[tokio::test]
async fn the_client_falls_back_refuses_orders_and_recovers_with_its_server() {
    let (shop, stores) = shop_on(Clock::default()).await;
    let server = start(loopback(), &shop, &stores).await;
    let addr = server.addr();

    let (clock, time) = Clock::mock();
    let breakers =
        resilient::breakers(resilient::breaker_template().clock(clock)).expect("valid breakers");
    let fallbacks = resilient::fallbacks().expect("a valid table");
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    let mut client = resilient::client(channel, &fallbacks, &breakers);
    let state = |method: &'static str| breakers.peek(&method).map(|breaker| breaker.state());

    // Up: real answers, unmarked.
    let answer = timed(client.get_product(GetProductRequest { id: 1 }))
        .await
        .expect("a product");
    assert_eq!(metadata(&answer, resilient::DEGRADED), None);
    assert_eq!(answer.into_inner(), teapot());
    let placed = timed(client.place_order(order("alice", "k-1", 1, 1)))
        .await
        .expect("placed");
    assert!(!replayed(&placed));
    assert_eq!(shop.payments().charges(), 1);
    // NOT_FOUND is the caller's doing: passed through, no fallback, no failure counted.
    let missing = timed(client.get_product(GetProductRequest { id: 99 }))
        .await
        .expect_err("no such product");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");

    timed(server.stop()).await.expect("a clean stop");

    // Down: each failed read answered by the fallback, marked, until the breaker opens.
    for _ in 0..3 {
        let answer = timed(client.get_product(GetProductRequest { id: 1 }))
            .await
            .expect("the fallback's answer");
        assert_eq!(
            metadata(&answer, resilient::DEGRADED).as_deref(),
            Some("error")
        );
        assert_eq!(answer.into_inner(), resilient::placeholder());
    }
    assert_eq!(state(proto::GET_PRODUCT), Some(State::Open));
    assert_eq!(
        state(proto::PLACE_ORDER),
        Some(State::Closed),
        "one breaker per method"
    );
    // Open: answered at once, without a connection attempt.
    let began = Instant::now();
    let answer = timed(client.get_product(GetProductRequest { id: 1 }))
        .await
        .expect("the fallback's answer");
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(
        metadata(&answer, resilient::DEGRADED).as_deref(),
        Some("breaker_open")
    );
    assert_eq!(answer.into_inner(), resilient::placeholder());

    // Orders have no fallback: UNAVAILABLE, promptly, then the breaker's own refusal.
    for _ in 0..3 {
        let began = Instant::now();
        let status = timed(client.place_order(order("alice", "k-2", 1, 3)))
            .await
            .expect_err("the server is down");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(
            began.elapsed() < Duration::from_secs(2),
            "{:?}",
            began.elapsed()
        );
    }
    assert_eq!(state(proto::PLACE_ORDER), Some(State::Open));
    let status = timed(client.place_order(order("alice", "k-2", 1, 3)))
        .await
        .expect_err("refused");
    assert_refused(&status);
    assert_eq!(shop.payments().charges(), 1);

    // Back, on the same address, with the same records; past the open period (a second) the
    // next calls are probes, which close the breakers.
    let server = start(addr, &shop, &stores).await;
    time.advance(Duration::from_millis(1_100));
    let answer = timed(client.get_product(GetProductRequest { id: 1 }))
        .await
        .expect("a product");
    assert_eq!(metadata(&answer, resilient::DEGRADED), None);
    assert_eq!(answer.into_inner(), teapot());
    assert_eq!(state(proto::GET_PRODUCT), Some(State::Closed));

    // The refused order, retried with its key: charged now, once.
    let placed = timed(client.place_order(order("alice", "k-2", 1, 3)))
        .await
        .expect("placed");
    assert!(!replayed(&placed));
    assert_eq!(placed.into_inner().order_id, 2);
    assert_eq!(state(proto::PLACE_ORDER), Some(State::Closed));
    let again = timed(client.place_order(order("alice", "k-2", 1, 3)))
        .await
        .expect("replayed");
    assert!(replayed(&again));
    assert_eq!(again.into_inner().order_id, 2);
    // And the first order's record survived the outage.
    let first = timed(client.place_order(order("alice", "k-1", 1, 1)))
        .await
        .expect("replayed");
    assert!(replayed(&first));
    assert_eq!(shop.payments().charges(), 2);

    timed(server.stop()).await.expect("a clean stop");
}

#[cfg(feature = "redis")]
mod redis {
    use steadfast_test_support::redis::RedisServer;

    use super::*;

    /// An instance of the shop on `redis`: its own stores (its own Redis clients), the shared
    /// database and payments, so that the test counts across instances.
    async fn instance(
        redis: &RedisServer,
        database: &Arc<Database>,
        payments: &Arc<Payments>,
    ) -> (Running, ShopClient<Channel>) {
        let stores = Stores::open(Some(&redis.url()))
            .await
            .expect("Redis stores");
        let products = stores.cache(products_cache()).expect("a valid cache");
        let shop = ShopService::new(products, Arc::clone(database), Arc::clone(payments));
        let server = start(loopback(), &shop, &stores).await;
        let client = plain_client(server.addr()).await;
        (server, client)
    }

    #[tokio::test]
    async fn two_instances_share_records_and_products_through_redis() {
        let mut redis = RedisServer::start();
        let database = Arc::new(Database::new(DATABASE_DELAY));
        let payments = Arc::new(Payments::default());
        let (one, mut first) = instance(&redis, &database, &payments).await;
        let (two, mut second) = instance(&redis, &database, &payments).await;

        // An order placed on one instance and retried on the other: charged once.
        let placed = timed(first.place_order(order("alice", "k-1", 1, 2)))
            .await
            .expect("placed");
        assert!(!replayed(&placed));
        let retry = timed(second.place_order(order("alice", "k-1", 1, 2)))
            .await
            .expect("replayed");
        assert!(replayed(&retry));
        assert_eq!(retry.into_inner(), placed.into_inner());
        assert_eq!(payments.charges(), 1);
        let other = timed(second.place_order(order("alice", "k-1", 1, 9)))
            .await
            .expect_err("another order");
        assert_eq!(other.code(), Code::FailedPrecondition, "{other:?}");

        // A product loaded by one instance is a hit on the other (the order loaded product 1).
        let queries = database.queries();
        let answer = timed(second.get_product(GetProductRequest { id: 1 }))
            .await
            .expect("a product");
        assert_eq!(
            metadata(&answer, proto::CACHE_STATUS).as_deref(),
            Some("hit")
        );
        assert_eq!(answer.into_inner(), teapot());
        assert_eq!(database.queries(), queries);

        // Redis down: reads go on from L1 and the database; orders are refused (a record
        // cannot be kept, so nothing is charged) until it is back.
        redis.kill();
        let answer = timed(first.get_product(GetProductRequest { id: 1 }))
            .await
            .expect("a product");
        assert_eq!(answer.into_inner(), teapot());
        let refused = timed(first.place_order(order("alice", "k-2", 1, 1)))
            .await
            .expect_err("the store is down");
        assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
        assert_eq!(payments.charges(), 1);

        redis.restart();
        let deadline = Instant::now() + CALL_TIMEOUT;
        let placed = loop {
            match timed(first.place_order(order("alice", "k-2", 1, 1))).await {
                Ok(placed) => break placed,
                Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => panic!("the store did not come back: {status:?}"),
            }
        };
        assert!(!replayed(&placed));
        assert_eq!(payments.charges(), 2);

        timed(one.stop()).await.expect("a clean stop");
        timed(two.stop()).await.expect("a clean stop");
    }
}
