//! Two instances of the axum shop (`examples/axum_shop`) sharing one real `redis-server` and
//! one warehouse: an order retried across them is charged once, two instances racing on one
//! key charge once, and a product changed through one is fresh through the other within
//! 100 ms (the change travels as an invalidation notice over Redis pub/sub).
#![cfg(all(
    feature = "axum",
    feature = "slo",
    feature = "idempotency",
    feature = "cache",
    feature = "breaker",
    feature = "fallback",
    feature = "redis"
))]

#[allow(dead_code, unreachable_pub)]
mod shop_support;

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use shop_support::shop::{Backend, Order};
use shop_support::store::Redis;
use shop_support::warehouse::{Product, Warehouse};
use shop_support::{client, send, Stack, PRODUCTS, TOKEN};
use steadfast_test_support::redis::RedisServer;

/// One warehouse and two shops on one Redis.
async fn fleet(server: &RedisServer) -> (Stack, Stack) {
    let warehouse = Warehouse::new(PRODUCTS);
    let (addr, _) = warehouse.serve().await.expect("the warehouse starts");
    let url = format!("http://{addr}");
    let mut stacks = Vec::new();
    for _ in 0..2 {
        let redis = Redis::connect(&server.url()).await.expect("connect");
        stacks.push(Stack::with_warehouse(Backend::Redis(redis), warehouse.clone(), &url).await);
    }
    let b = stacks.pop().expect("two");
    (stacks.pop().expect("two"), b)
}

fn order_headers(key: &str) -> [(&str, &str); 3] {
    [
        ("idempotency-key", key),
        ("x-customer", "alice"),
        ("content-type", "application/json"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_retried_across_instances_is_charged_once() {
    let server = RedisServer::start();
    let (a, b) = fleet(&server).await;
    let client = client();
    let body = r#"{"product_id":3,"quantity":2}"#;

    for n in 0..20 {
        let key = format!("retry-{n}");
        // The first attempt on one instance, the retry on the other.
        let (first, second) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let placed = send(
            &client,
            Method::POST,
            &format!("{}/orders", first.base),
            &order_headers(&key),
            body,
        )
        .await
        .expect("an answer");
        assert_eq!(
            placed.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&placed.body)
        );
        let retried = send(
            &client,
            Method::POST,
            &format!("{}/orders", second.base),
            &order_headers(&key),
            body,
        )
        .await
        .expect("an answer");
        assert_eq!(retried.status, StatusCode::CREATED);
        assert_eq!(retried.header("idempotent-replayed"), Some("true"));
        assert_eq!(
            retried.body, placed.body,
            "the retry answers the first order"
        );
        // The provider was asked once: the second instance replayed the first one's record.
        assert_eq!(a.warehouse.attempts()[&format!("alice:{key}")], 1);
    }
    assert_eq!(a.warehouse.charges().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_on_one_key_charge_once() {
    let server = RedisServer::start();
    let (a, b) = fleet(&server).await;
    let client = client();
    let body = r#"{"product_id":4,"quantity":1}"#;
    let mut outcomes = std::collections::BTreeMap::<u16, u32>::new();

    for n in 0..30 {
        let key = format!("race-{n}");
        let headers = order_headers(&key);
        let (url_a, url_b) = (format!("{}/orders", a.base), format!("{}/orders", b.base));
        let (on_a, on_b) = tokio::join!(
            send(&client, Method::POST, &url_a, &headers, body),
            send(&client, Method::POST, &url_b, &headers, body),
        );
        let mut orders = Vec::new();
        for answer in [on_a.expect("an answer"), on_b.expect("an answer")] {
            *outcomes.entry(answer.status.as_u16()).or_default() += 1;
            match answer.status {
                StatusCode::CREATED => {
                    orders.push(serde_json::from_slice::<Order>(&answer.body).expect("an order"))
                }
                // The loser of the race is told the key is in flight: retry later.
                StatusCode::CONFLICT => assert!(answer.is_problem()),
                other => panic!("{other}: {}", String::from_utf8_lossy(&answer.body)),
            }
        }
        assert!(!orders.is_empty(), "neither instance placed {key}");
        assert!(
            orders.iter().all(|order| *order == orders[0]),
            "{key}: two orders {orders:?}"
        );
        assert_eq!(
            a.warehouse.attempts()[&format!("alice:{key}")],
            1,
            "{key}: the provider was asked twice"
        );
    }
    println!("statuses of 60 racing calls: {outcomes:?}");
    assert_eq!(a.warehouse.charges().len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_changed_through_one_is_fresh_through_the_other_within_100_ms() {
    let server = RedisServer::start();
    let (a, b) = fleet(&server).await;
    let client = client();
    let auth = format!("Bearer {TOKEN}");
    let mut delays = Vec::new();

    for round in 0..20u64 {
        let id = 1 + round % PRODUCTS;
        let url = |stack: &Stack| format!("{}/products/{id}", stack.base);
        // Both instances hold the product in L1.
        for stack in [&a, &b] {
            let answer = send(&client, Method::GET, &url(stack), &[], "")
                .await
                .expect("an answer");
            assert_eq!(answer.status, StatusCode::OK);
        }
        assert!(b.shop.products.peek(&id).is_some(), "B holds product {id}");

        let change = format!(r#"{{"price_cents":{}}}"#, 10_000 + round);
        let changed = send(
            &client,
            Method::PUT,
            &format!("{}/ops/products/{id}", a.base),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            &change,
        )
        .await
        .expect("an answer");
        assert_eq!(
            changed.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&changed.body)
        );
        assert!(
            changed.header("warning").is_none(),
            "the notice was not sent"
        );
        let since = Instant::now();
        let fresh: Product = serde_json::from_slice(&changed.body).expect("a product");

        loop {
            let answer = send(&client, Method::GET, &url(&b), &[], "")
                .await
                .expect("an answer");
            let seen: Product = serde_json::from_slice(&answer.body).expect("a product");
            if seen == fresh {
                delays.push(since.elapsed());
                break;
            }
            assert!(
                since.elapsed() < Duration::from_millis(100),
                "B still serves {seen:?} 100 ms after the change to {fresh:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    delays.sort();
    println!(
        "fresh through the other instance after: median {:?}, max {:?}",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
}
