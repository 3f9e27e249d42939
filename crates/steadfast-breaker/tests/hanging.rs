//! Dependencies that hang, calls cancelled from outside, timeouts inside the layer, and
//! breakers nested in breakers, through real Tower services.

use std::future::pending;
use std::time::Duration;

use steadfast_breaker::{CircuitBreaker, DropPolicy, State};
use steadfast_core::{Clock, MockClock};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// A dependency that never answers.
fn hangs() -> impl Service<(), Response = (), Error = std::io::Error> + Clone {
    service_fn(|()| pending::<Result<(), std::io::Error>>())
}

fn mocked(
    configure: impl FnOnce(steadfast_breaker::Builder) -> steadfast_breaker::Builder,
) -> (CircuitBreaker, MockClock) {
    let (clock, time) = Clock::mock();
    let breaker = configure(CircuitBreaker::builder("hanging").clock(clock))
        .build()
        .unwrap();
    (breaker, time)
}

/// Fifty calls into a dependency that hangs, each cancelled by a timeout outside the breaker
/// after `ran` of breaker time.
async fn cancel_fifty(breaker: &CircuitBreaker, time: &MockClock, ran: Duration) {
    let service = ServiceBuilder::new()
        .layer(breaker.layer())
        .service(hangs());
    for _ in 0..50 {
        let mut service = service.clone();
        let Ok(ready) = service.ready().await else {
            continue;
        };
        let call = ready.call(());
        time.advance(ran);
        // The outer timeout drops the call.
        let _ = tokio::time::timeout(Duration::from_secs(1), call).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_dependency_trips_the_slow_call_rule_by_default() {
    let (breaker, time) = mocked(|b| {
        b.no_failure_rate()
            .slow_calls(Duration::from_millis(500), 0.5)
            .minimum_calls(10)
            .count_window(20)
    });
    cancel_fifty(&breaker, &time, Duration::from_secs(2)).await;
    assert_eq!(breaker.state(), State::Open);
    assert!(breaker.snapshot().slow_calls >= 10);
}

#[tokio::test(start_paused = true)]
async fn calls_dropped_before_the_slow_threshold_count_nothing_by_default() {
    let (breaker, time) = mocked(|b| {
        b.no_failure_rate()
            .slow_calls(Duration::from_millis(500), 0.5)
            .minimum_calls(10)
    });
    cancel_fifty(&breaker, &time, Duration::from_millis(100)).await;
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().calls, 0);
}

#[tokio::test(start_paused = true)]
async fn by_policy_a_dropped_call_is_a_failure() {
    let (breaker, time) = mocked(|b| b.consecutive_failures(5).on_drop(DropPolicy::Failure));
    cancel_fifty(&breaker, &time, Duration::from_millis(1)).await;
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn ignored_drops_leave_the_breaker_closed_as_documented() {
    let (breaker, time) = mocked(|b| {
        b.consecutive_failures(5)
            .slow_calls(Duration::from_millis(500), 0.5)
            .on_drop(DropPolicy::Ignore)
    });
    cancel_fifty(&breaker, &time, Duration::from_secs(2)).await;
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_slow_probe_reopens_and_a_quick_one_frees_its_slot() {
    let (breaker, time) = mocked(|b| {
        b.consecutive_failures(1)
            .slow_calls(Duration::from_millis(500), 1.0)
            .half_open_probes(1)
            .open_duration(Duration::from_secs(5))
    });
    breaker.try_acquire().unwrap().failure();
    time.advance(Duration::from_secs(5));
    let service = ServiceBuilder::new()
        .layer(breaker.layer())
        .service(hangs());

    let quick = service.clone().oneshot(());
    let _ = tokio::time::timeout(Duration::from_millis(10), quick).await;
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(
        breaker.snapshot().probes,
        Some((0, 0)),
        "the slot was not freed"
    );

    let mut slow_service = service.clone();
    let slow = slow_service.ready().await.unwrap().call(());
    time.advance(Duration::from_secs(1));
    drop(slow);
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_inside_the_breaker_is_a_failure() {
    let breaker = CircuitBreaker::builder("inside")
        .consecutive_failures(3)
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(breaker.layer().timeout(Duration::from_millis(250)))
        .service(hangs());
    for _ in 0..3 {
        let error = service.clone().oneshot(()).await.unwrap_err();
        assert!(error.is_timed_out(), "{error}");
    }
    assert_eq!(breaker.state(), State::Open);
    let error = service.clone().oneshot(()).await.unwrap_err();
    assert!(error.is_rejected());
    // A call that answers in time is not timed out.
    let quick = ServiceBuilder::new()
        .layer(
            CircuitBreaker::builder("quick")
                .build()
                .unwrap()
                .layer()
                .timeout(Duration::from_secs(1)),
        )
        .service(service_fn(|()| async { Ok::<_, std::io::Error>(7) }));
    assert_eq!(quick.oneshot(()).await.unwrap(), 7);
}

#[tokio::test(start_paused = true)]
async fn timeouts_answer_504_in_http_mode() {
    let breaker = CircuitBreaker::builder("http")
        .consecutive_failures(2)
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(breaker.layer().timeout(Duration::from_millis(50)).http())
        .service(service_fn(|_: http::Request<()>| {
            pending::<Result<http::Response<bytes::Bytes>, std::convert::Infallible>>()
        }));
    let response = service
        .clone()
        .oneshot(http::Request::new(()))
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

/// A global breaker around a per-host one: the host's refusals are not the global breaker's
/// failures, by default; counted when asked.
#[tokio::test]
async fn nested_refusals_are_not_failures_of_the_outer_breaker() {
    for count_nested in [false, true] {
        let outer = CircuitBreaker::builder("global")
            .consecutive_failures(3)
            .count_nested_refusals(count_nested)
            .build()
            .unwrap();
        let host = CircuitBreaker::builder("host")
            .consecutive_failures(1)
            .build()
            .unwrap();
        let service = ServiceBuilder::new()
            .layer(outer.layer())
            .layer(host.layer())
            .service(service_fn(|()| async {
                Err::<(), _>(std::io::Error::other("down"))
            }));
        // The first call fails for real: one failure for both breakers; the host opens.
        let _ = service.clone().oneshot(()).await;
        assert_eq!(host.state(), State::Open);
        // The next ten are the host's refusals.
        for _ in 0..10 {
            let error = service.clone().oneshot(()).await.unwrap_err();
            // Counted, the refusals trip the outer breaker, which then refuses itself.
            assert!(error.into_inner().is_none_or(|inner| inner.is_rejected()));
        }
        let expected = if count_nested {
            State::Open
        } else {
            State::Closed
        };
        assert_eq!(
            outer.state(),
            expected,
            "count_nested_refusals = {count_nested}"
        );
        if !count_nested {
            assert_eq!(outer.snapshot().failures, 1);
        }
    }
}

#[tokio::test]
async fn nested_refusals_in_http_mode_are_not_failures_either() {
    let outer = CircuitBreaker::builder("global")
        .consecutive_failures(2)
        .build()
        .unwrap();
    let host = CircuitBreaker::builder("host").build().unwrap();
    host.force_open();
    let service = ServiceBuilder::new()
        .layer(outer.layer().http())
        .layer(host.layer().http())
        .service(service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(bytes::Bytes::new()))
        }));
    for _ in 0..5 {
        let response = service
            .clone()
            .oneshot(http::Request::new(()))
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
    }
    assert_eq!(outer.state(), State::Closed);
    // A real 503 from the dependency still counts.
    host.disable();
    let failing = ServiceBuilder::new()
        .layer(outer.layer().http())
        .service(service_fn(|_: http::Request<()>| async {
            let mut response = http::Response::new(bytes::Bytes::new());
            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, std::convert::Infallible>(response)
        }));
    for _ in 0..2 {
        let _ = failing.clone().oneshot(http::Request::new(())).await;
    }
    assert_eq!(outer.state(), State::Open);
}

#[tokio::test]
async fn call_async_runs_and_counts() {
    let breaker = CircuitBreaker::builder("async")
        .consecutive_failures(2)
        .build()
        .unwrap();
    assert_eq!(
        breaker
            .call_async(async { Ok::<_, &str>(1) })
            .await
            .unwrap(),
        1
    );
    for _ in 0..2 {
        assert!(!breaker
            .call_async(async { Err::<(), _>("down") })
            .await
            .unwrap_err()
            .is_rejected());
    }
    assert!(breaker
        .call_async(async { Ok::<_, &str>(1) })
        .await
        .unwrap_err()
        .is_rejected());
}
