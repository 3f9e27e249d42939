//! The axum shop of `examples/axum_shop` under a bounded load on loopback while its warehouse
//! fails (errors, latency past the timeout, hangs) and, with Redis, while Redis is killed,
//! restarted and paused. Every answer is judged: correct, stale and marked, a marked fallback,
//! a replayed order, or a clear error (problem+json, `Retry-After` on a 503). Anything else —
//! an answer past the deadline, a wrong product, an unmarked fallback, one key answered with
//! two orders, a fallback in the cache, a claim left behind — fails the test. Each test prints
//! its table of requests by outcome (`cargo test --test shop_faults -- --nocapture`).
#![cfg(all(
    feature = "axum",
    feature = "slo",
    feature = "idempotency",
    feature = "cache",
    feature = "breaker",
    feature = "fallback"
))]

#[allow(dead_code, unreachable_pub)]
mod shop_support;

use std::time::{Duration, Instant};

use shop_support::shop::Backend;
use shop_support::warehouse::Fault;
use shop_support::{no_claim_left, products_are_real, recover, Load, Stack};

/// Runs `phases` of warehouse faults, one after another, while the load runs.
async fn faults(stack: &Stack, phases: &[(Fault, u64)], workers: usize) -> Load {
    let total: u64 = phases.iter().map(|(_, millis)| millis).sum();
    let until = Instant::now() + Duration::from_millis(total);
    let warehouse = stack.warehouse.clone();
    let phases = phases.to_vec();
    let injector = tokio::spawn(async move {
        for (fault, millis) in phases {
            warehouse.set_fault(fault);
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
        warehouse.set_fault(Fault::Healthy);
    });
    let load = Load::run(
        std::slice::from_ref(&stack.base),
        &stack.warehouse,
        workers,
        until,
        None,
    )
    .await;
    injector.await.expect("the injector ran");
    load
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warehouse_errors_latency_and_hangs() {
    let stack = Stack::start(Backend::Memory).await;
    let load = faults(
        &stack,
        &[
            (Fault::Healthy, 1_500),
            (Fault::Errors, 2_500),
            (Fault::Healthy, 3_000),
            // Slower than the 250 ms timeout: every call is cut, some after the warehouse
            // charged (its answer lost), which the retry must not charge again.
            (Fault::Latency(Duration::from_millis(400)), 2_500),
            (Fault::Healthy, 3_000),
            (Fault::Hang, 2_500),
            (Fault::Healthy, 3_000),
            // Slow but within the timeout: answered.
            (Fault::Latency(Duration::from_millis(120)), 1_500),
        ],
        12,
    )
    .await;
    load.check("warehouse faults, memory backend");
    let orders = load.check_charges(&stack.warehouse);
    println!(
        "orders placed: {orders}; charges made: {}",
        stack.warehouse.charges().len()
    );

    // The faults were felt: each kind of answer that only a fault gives was seen.
    for outcome in ["fallback, marked", "stale, marked", "replayed order"] {
        assert!(
            load.tally.of(outcome) > 0,
            "no {outcome} answer: the faults had no effect"
        );
    }
    assert!(
        load.tally.of("clear error 503") > 0,
        "no order was refused during the faults"
    );
    assert!(
        *load.slowest.lock() < Duration::from_millis(1_500),
        "an answer took {:?}",
        load.slowest.lock()
    );

    recover(&stack).await;
    products_are_real(&stack).await;
    no_claim_left(&stack, &load).await;
}

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use shop_support::store::Redis;
    use steadfast_test_support::redis::RedisServer;

    /// Runs `action` on the server off the runtime's threads (it waits on processes).
    async fn on_server<F>(server: &std::sync::Arc<parking_lot::Mutex<RedisServer>>, action: F)
    where
        F: FnOnce(&mut RedisServer) + Send + 'static,
    {
        let server = server.clone();
        tokio::task::spawn_blocking(move || action(&mut server.lock()))
            .await
            .expect("the action ran");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_killed_restarted_and_paused() {
        let server = std::sync::Arc::new(parking_lot::Mutex::new(RedisServer::start()));
        let url = server.lock().url();
        let redis = Redis::connect(&url).await.expect("connect");
        let stack = Stack::start(Backend::Redis(redis)).await;

        let until = Instant::now() + Duration::from_millis(19_000);
        let load = {
            let (base, warehouse) = (stack.base.clone(), stack.warehouse.clone());
            tokio::spawn(async move { Load::run(&[base], &warehouse, 12, until, None).await })
        };
        let pause = |millis: u64| tokio::time::sleep(Duration::from_millis(millis));
        pause(2_000).await;
        // Killed: orders are refused (the store is down, nothing is charged unrecorded),
        // products come from L1 and the warehouse.
        on_server(&server, RedisServer::kill).await;
        pause(3_000).await;
        on_server(&server, RedisServer::restart).await;
        pause(3_000).await;
        // Slow: every command waits 1.5 s, past the clients' 250 ms timeout.
        on_server(&server, |server| server.pause(1_500)).await;
        pause(3_000).await;
        // Both at once: Redis down and the warehouse failing.
        on_server(&server, RedisServer::kill).await;
        stack.warehouse.set_fault(Fault::Errors);
        pause(3_000).await;
        stack.warehouse.set_fault(Fault::Healthy);
        on_server(&server, RedisServer::restart).await;
        let load = load.await.expect("the load ran");

        load.check("Redis killed, restarted, paused; with the warehouse failing too");
        let orders = load.check_charges(&stack.warehouse);
        println!(
            "orders placed: {orders}; charges made: {}",
            stack.warehouse.charges().len()
        );
        assert!(
            load.tally.of("clear error 503") > 0,
            "no order was refused while Redis was down"
        );
        assert!(load.tally.of("correct") > 0);

        recover(&stack).await;
        products_are_real(&stack).await;
        // Claims made while Redis was paused may outlive their calls until their 5 s lease.
        tokio::time::sleep(Duration::from_secs(6)).await;
        no_claim_left(&stack, &load).await;
    }
}
