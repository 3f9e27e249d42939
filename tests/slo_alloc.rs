//! Recording into an SLI allocates nothing: a counting global allocator watches `record`,
//! `good`, `bad`, `record_elapsed` into an SLI with a latency threshold, `record_elapsed` into
//! a latency SLI, and calls through `SliLayer` beside the same calls to the bare service.
//!
//! Every SLO runs on a mock clock that stands still while counting, so no minute turns inside
//! a measured loop: the first event of a minute on a thread's stripe moves older minutes into
//! the history, which may allocate, and the warm-up takes that path before counting starts.
//!
//! Run it with `cargo test --features full --test slo_alloc`.
#![cfg(feature = "slo")]

#[path = "support/counting.rs"]
mod counting;

use std::future::{ready, Ready};
use std::task::{Context, Waker};
use std::time::{Duration, SystemTime};

use counting::{allocations, now};
use steadfast::core::{Clock, MockClock, Outcome};
use steadfast::slo::{Slo, SloBuilder};
use tower::{service_fn, Service, ServiceBuilder};

/// Events per measured loop.
const EVENTS: u32 = 10_000;
/// The latency threshold of the threshold and latency SLIs.
const THRESHOLD: Duration = Duration::from_millis(300);

/// `builder` on a fresh mock clock, placed ten seconds into a minute of 2023 so that the
/// measured loops, which do not move the clock, stay inside one minute.
fn build(builder: SloBuilder) -> (Slo, MockClock) {
    let (clock, time) = Clock::mock();
    let slo = builder
        .clock(clock)
        .start_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_010))
        .build()
        .expect("a valid SLO");
    (slo, time)
}

/// Event `i`'s outcome: one failure in every 16.
fn outcome(i: u32) -> Outcome {
    if i % 16 == 0 {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

/// Event `i`'s latency: 1 ms to 1 000 ms in steps of 1 ms, so that they land in many sketch
/// buckets and some run past the threshold.
fn latency(i: u32) -> Duration {
    Duration::from_millis(u64::from(i % 1000) + 1)
}

/// Allocations made by `EVENTS` calls of `record(i)`, after as many calls of warm-up.
fn count(mut record: impl FnMut(u32)) -> u64 {
    for i in 0..EVENTS {
        record(i);
    }
    let before = allocations();
    for i in 0..EVENTS {
        record(i);
    }
    allocations() - before
}

/// Settles every minute recorded so far (two minutes on) and reads `(good, total)`.
fn settled(slo: &Slo, time: &MockClock) -> (u64, u64) {
    time.advance(Duration::from_secs(180));
    let report = slo.report();
    (report.good, report.total)
}

#[test]
fn record_allocates_nothing() {
    let (slo, time) = build(Slo::builder("alloc_record"));
    let allocated = count(|i| slo.record(outcome(i)));
    assert_eq!(allocated, 0, "record allocated");
    // The events were counted: 1 in 16 bad, twice over (warm-up and measured).
    let bad = 2 * u64::from(EVENTS.div_ceil(16));
    assert_eq!(
        settled(&slo, &time),
        (2 * u64::from(EVENTS) - bad, 2 * u64::from(EVENTS))
    );

    // `good` and `bad`, on a minute of their own.
    let allocated = count(|i| {
        if outcome(i) == Outcome::Failure {
            slo.bad();
        } else {
            slo.good();
        }
    });
    assert_eq!(allocated, 0, "good and bad allocated");
}

#[test]
fn record_elapsed_with_a_threshold_allocates_nothing() {
    let (slo, time) = build(Slo::builder("alloc_threshold").latency_threshold(THRESHOLD));
    let allocated = count(|i| slo.record_elapsed(outcome(i), latency(i)));
    assert_eq!(allocated, 0, "record_elapsed allocated");
    // Bad: the failures, and the successes slower than 300 ms.
    let bad_per_loop = (0..EVENTS)
        .filter(|&i| outcome(i) == Outcome::Failure || latency(i) > THRESHOLD)
        .count() as u64;
    let (good, total) = settled(&slo, &time);
    assert_eq!(total, 2 * u64::from(EVENTS));
    assert_eq!(good, total - 2 * bad_per_loop);
}

#[test]
fn recording_into_a_latency_sli_allocates_nothing() {
    let (slo, time) = build(Slo::builder("alloc_latency").percentile(0.95, THRESHOLD));
    let allocated = count(|i| slo.record_elapsed(outcome(i), latency(i)));
    assert_eq!(allocated, 0, "record_elapsed into a latency SLI allocated");
    // The latencies reached the sketch: the p95 of 1..=1000 ms, cycled evenly, is 950 ms.
    time.advance(Duration::from_secs(180));
    let p95 = slo
        .report()
        .latency
        .and_then(|latency| latency.last_5m)
        .expect("a p95 over the last five minutes");
    // Events of a latency SLI are minutes: the one minute recorded, bad (950 ms > 300 ms).
    assert_eq!(slo.report().total, 1);
    assert_eq!(slo.report().good, 0);
    let exact = Duration::from_millis(950);
    assert!(
        p95.abs_diff(exact) <= exact.mul_f64(steadfast::slo::sketch::RELATIVE_ERROR),
        "p95 {p95:?}"
    );
}

/// The inner service: answers at once, failing one request in 16.
fn inner(
) -> impl Service<u32, Response = u32, Error = &'static str, Future = Ready<Result<u32, &'static str>>>
       + Clone {
    service_fn(|i: u32| {
        ready(if outcome(i) == Outcome::Failure {
            Err("down")
        } else {
            Ok(i)
        })
    })
}

/// Allocations made by `EVENTS` calls through `service`, by hand, after as many calls of
/// warm-up.
fn count_calls<S: Service<u32>>(service: &mut S) -> u64 {
    count(|i| {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(service.poll_ready(&mut cx).is_ready());
        let result = now(service.call(i));
        assert_eq!(result.is_err(), outcome(i) == Outcome::Failure);
    })
}

#[test]
fn a_call_through_the_layer_allocates_no_more_than_the_bare_service() {
    let bare = count_calls(&mut inner());
    for (builder, latency_sli) in [
        (Slo::builder("alloc_layer"), false),
        (
            Slo::builder("alloc_layer_threshold").latency_threshold(THRESHOLD),
            false,
        ),
        (
            Slo::builder("alloc_layer_latency").percentile(0.95, THRESHOLD),
            true,
        ),
    ] {
        let (slo, time) = build(builder);
        let mut service = ServiceBuilder::new().layer(slo.layer()).service(inner());
        let layered = count_calls(&mut service);
        assert!(
            layered <= bare,
            "{}: {layered} allocations through the layer, {bare} bare",
            slo.name()
        );
        // The calls were recorded. The mock clock stands still, so every call took no time:
        // only the failures are bad, and the latency SLI's one minute is good.
        let expected = if latency_sli {
            (1, 1)
        } else {
            let total = 2 * u64::from(EVENTS);
            (total - 2 * u64::from(EVENTS.div_ceil(16)), total)
        };
        assert_eq!(settled(&slo, &time), expected, "{}", slo.name());
    }
}
