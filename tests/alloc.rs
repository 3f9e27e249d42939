//! The hot path allocates nothing: a counting global allocator watches closed calls, refused
//! calls and the permit API.
#![cfg(feature = "breaker")]

#[path = "support/counting.rs"]
mod counting;

use std::time::Duration;

use counting::{allocations, now};
use std::task::{Context, Waker};
use steadfast::breaker::{CircuitBreaker, State};
use tower::{service_fn, Layer, Service};

fn count_calls<S: Service<bool>>(service: &mut S, fail: bool, calls: usize) -> (u64, usize) {
    let mut rejected_or_failed = 0;
    let before = allocations();
    for _ in 0..calls {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(service.poll_ready(&mut cx).is_ready());
        if now(service.call(fail)).is_err() {
            rejected_or_failed += 1;
        }
    }
    (allocations() - before, rejected_or_failed)
}

fn breaker(slow_calls: bool) -> CircuitBreaker {
    let builder = CircuitBreaker::builder("alloc")
        .failure_rate(0.5)
        .minimum_calls(100)
        .time_window(Duration::from_secs(60), 60)
        .consecutive_failures(50)
        .open_duration(Duration::from_secs(600));
    let builder = if slow_calls {
        builder.slow_calls(Duration::from_secs(5), 0.5)
    } else {
        builder
    };
    builder.build().unwrap()
}

fn inner() -> impl Service<
    bool,
    Response = (),
    Error = &'static str,
    Future = std::future::Ready<Result<(), &'static str>>,
> + Clone {
    service_fn(|fail: bool| std::future::ready(if fail { Err("down") } else { Ok(()) }))
}

#[test]
fn closed_and_open_calls_allocate_nothing() {
    for slow_calls in [false, true] {
        let breaker = breaker(slow_calls);
        let mut service = breaker.layer().layer(inner());
        // Warm up: thread-local stripe index, first touch of every bucket.
        count_calls(&mut service, false, 1_000);

        let (allocated, failed) = count_calls(&mut service, false, 100_000);
        assert_eq!(failed, 0);
        assert_eq!(
            allocated, 0,
            "closed calls allocated (slow-call timing {slow_calls})"
        );

        // Failures, and the rule checks they trigger, allocate nothing either.
        let (allocated, failed) = count_calls(&mut service, true, 40);
        assert_eq!(failed, 40);
        assert_eq!(allocated, 0, "failed calls allocated");

        // Trip it (the transition itself may allocate: metric labels), then measure refusals.
        count_calls(&mut service, true, 20);
        assert_eq!(breaker.state(), State::Open);
        let (allocated, rejected) = count_calls(&mut service, false, 100_000);
        assert_eq!(rejected, 100_000);
        assert_eq!(allocated, 0, "refused calls allocated");
    }
}

#[test]
fn static_layer_allocates_nothing() {
    let breaker = breaker(false).leak();
    let mut service = breaker.static_layer().layer(inner());
    count_calls(&mut service, false, 1_000);
    let (allocated, failed) = count_calls(&mut service, false, 100_000);
    assert_eq!((allocated, failed), (0, 0));
    count_calls(&mut service, true, 60);
    assert_eq!(breaker.state(), State::Open);
    let (allocated, rejected) = count_calls(&mut service, false, 100_000);
    assert_eq!((allocated, rejected), (0, 100_000));
}

#[test]
fn permit_api_allocates_nothing() {
    let breaker = breaker(false);
    for _ in 0..1_000 {
        breaker.try_acquire().unwrap().success();
    }
    let before = allocations();
    for i in 0..100_000u32 {
        let permit = breaker.try_acquire().unwrap();
        if i % 100 == 0 {
            permit.failure();
        } else {
            permit.success();
        }
    }
    assert_eq!(allocations() - before, 0);
}
