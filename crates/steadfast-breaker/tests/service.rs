//! The Tower service: readiness, refusals in `call`, shared state, concurrency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use steadfast_breaker::{CircuitBreaker, CircuitBreakerLayer, Error, State};
use steadfast_core::Clock;
use tokio::sync::Notify;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>(_: &T) {}

#[test]
fn layers_and_services_are_send_sync_clone() {
    let breaker = CircuitBreaker::builder("x").build().unwrap();
    let layer = breaker.layer();
    assert_send_sync_clone(&layer);
    let service = layer.layer(service_fn(|()| async { Ok::<_, std::io::Error>(()) }));
    assert_send_sync_clone(&service);
    assert_send_sync_clone(&breaker);
}

#[tokio::test]
async fn open_refuses_in_call_and_never_parks_poll_ready() {
    let (clock, _time) = Clock::mock();
    let breaker = CircuitBreaker::builder("mock")
        .no_failure_rate()
        .consecutive_failures(1)
        .clock(clock)
        .build()
        .unwrap();
    let (mut service, mut handle) =
        tower_test::mock::spawn_layer::<u32, u32, _>(CircuitBreakerLayer::new(breaker.clone()));

    handle.allow(1);
    assert!(service.poll_ready().is_ready());
    let response = service.call(1);
    let request = handle.next_request().await.unwrap();
    request.1.send_error(std::io::Error::other("refused"));
    assert!(matches!(response.await, Err(Error::Inner(_))));
    assert_eq!(breaker.state(), State::Open);

    // Open: ready at once (the inner service is ready), refused in call, inner never called.
    handle.allow(1);
    assert!(service.poll_ready().is_ready());
    let error = service.call(2).await.unwrap_err();
    assert!(error.is_rejected());
    // The breaker kept the request from the inner service.
    assert!(handle.poll_request().is_pending());
}

#[tokio::test]
async fn clones_share_one_breaker() {
    let breaker = CircuitBreaker::builder("shared")
        .no_failure_rate()
        .consecutive_failures(3)
        .build()
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(breaker.layer())
        .service(service_fn(|()| async { Err::<(), _>("down") }));
    for _ in 0..3 {
        // Each call through a fresh clone, as axum does per request.
        let _ = service.clone().oneshot(()).await;
    }
    assert_eq!(breaker.state(), State::Open);
    let other = breaker
        .layer()
        .layer(service_fn(|()| async { Ok::<_, &str>(()) }));
    assert!(other.oneshot(()).await.unwrap_err().is_rejected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_admits_exactly_n_of_64_concurrent_calls() {
    const PROBES: u32 = 5;
    let (clock, time) = Clock::mock();
    let breaker = CircuitBreaker::builder("probes")
        .no_failure_rate()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(1))
        .half_open_probes(PROBES)
        .clock(clock)
        .build()
        .unwrap();
    breaker.try_acquire().unwrap().failure();
    time.advance(Duration::from_secs(1));

    let release = Arc::new(Notify::new());
    let reached = Arc::new(AtomicUsize::new(0));
    let service = {
        let release = release.clone();
        let reached = reached.clone();
        ServiceBuilder::new()
            .layer(breaker.layer())
            .service(service_fn(move |()| {
                let release = release.clone();
                reached.fetch_add(1, Ordering::SeqCst);
                async move {
                    release.notified().await;
                    Ok::<_, &str>(())
                }
            }))
    };
    let start = Arc::new(tokio::sync::Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let service = service.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                service.oneshot(()).await
            })
        })
        .collect();

    // Bounded wait until the refused calls have all returned and the probes are in flight.
    for _ in 0..1000 {
        let finished = tasks.iter().filter(|task| task.is_finished()).count();
        if finished == 64 - PROBES as usize && reached.load(Ordering::SeqCst) == PROBES as usize {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(reached.load(Ordering::SeqCst), PROBES as usize);
    release.notify_waiters();
    let mut admitted = 0;
    let mut refused = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => admitted += 1,
            Err(error) if error.is_rejected() => refused += 1,
            Err(error) => panic!("unexpected error: {error}"),
        }
    }
    assert_eq!((admitted, refused), (PROBES, 64 - PROBES));
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test]
async fn boxed_mode_downcasts_to_rejected() {
    let breaker = CircuitBreaker::builder("boxed").build().unwrap();
    breaker.force_open();
    let service = ServiceBuilder::new()
        .layer(breaker.layer().boxed_errors())
        .service(service_fn(|()| async { Ok::<_, std::io::Error>(()) }));
    let error = service.oneshot(()).await.unwrap_err();
    let rejected = error
        .downcast_ref::<steadfast_breaker::Rejected>()
        .expect("a Rejected");
    assert_eq!(rejected.state(), State::ForcedOpen);
}

#[tokio::test]
async fn cancelled_probe_frees_its_slot() {
    let (clock, time) = Clock::mock();
    let breaker = CircuitBreaker::builder("cancel")
        .no_failure_rate()
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(1))
        .half_open_probes(1)
        .clock(clock)
        .build()
        .unwrap();
    breaker.try_acquire().unwrap().failure();
    time.advance(Duration::from_secs(1));
    let mut service = breaker
        .layer()
        .layer(service_fn(|()| std::future::pending::<Result<(), &str>>()));
    let probe = service.ready().await.unwrap().call(());
    drop(probe);
    let mut healthy = breaker
        .layer()
        .layer(service_fn(|()| async { Ok::<_, &str>(()) }));
    healthy.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
}
