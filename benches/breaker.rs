//! Criterion benchmarks of the Steadfast circuit breaker, next to its peers.
//!
//! Run them all with `cargo bench -p steadfast-benches --bench breaker`. `BENCHMARKS.md` at the repository root
//! holds results and explains how to read them.
//!
//! Groups:
//!
//! - `closed_call`: the cost of one successful call through a closed breaker, single thread,
//!   with the service driven *by hand*: `poll_ready`, `call`, then one poll of the response
//!   future with a no-op waker (the inner service answers with a ready future, so one poll
//!   completes it). No async runtime is involved in the measured loop. `bare` is the inner
//!   service alone; subtract it to get a breaker's overhead. `steadfast_keyed` goes through a
//!   keyed layer, registry lookup included.
//! - `closed_call_async`: the same calls written as most code writes them, an `async` block
//!   of `ready().await?` and `call(request).await`, polled once per call with a no-op waker.
//! - `closed_call_clone`: a clone of the service per call, driven by hand and then dropped,
//!   as axum does with the service of a route.
//! - `open_rejection`: the cost of a call refused by a breaker that tripped for real (a
//!   failing call with a one-failure rule and a long open period), not one forced open.
//! - `http_refusal`: through `breaker.layer().http()` around a service of
//!   `http::Response<axum::body::Body>`, a served call against a refused one.
//! - `window_fill`: the cost of a closed call when the breaker's time window already holds
//!   0, 1 000 or 100 000 calls.
//! - `threads`: closed calls from one thread and from two threads sharing one breaker; the
//!   estimate is wall-clock time per call over all threads, so the inverse is throughput.
//!
//! `benches/breaker_icount.rs` runs the same calls a fixed number of times, for counting
//! instructions under callgrind.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use steadfast_benches::{call_once, parallel, poll_once};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use steadfast::breaker::{BreakerRegistry, CircuitBreaker, CircuitBreakerLayer, State};
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_resilience_circuitbreaker as trcb;

/// The request that makes [`flaky`] fail.
const FAIL: u64 = u64::MAX;

/// The inner service of every Tower benchmark: answers its request at once.
fn echo(
) -> impl Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>>
       + Clone
       + Send
       + Sync
       + 'static {
    service_fn(|x: u64| ready(Ok::<u64, Infallible>(x)))
}

/// Like [`echo`], but fails on [`FAIL`]: used to trip breakers for real.
fn flaky(
) -> impl Service<u64, Response = u64, Error = &'static str, Future = Ready<Result<u64, &'static str>>>
       + Clone
       + Send
       + Sync
       + 'static {
    service_fn(|x: u64| ready(if x == FAIL { Err("boom") } else { Ok(x) }))
}

/// One call the way most code writes it: an `async` block of `ready().await?` and
/// `call(request).await`, polled once.
///
/// The service goes through `black_box`, so that nothing about it is known at compile time
/// and the block's work cannot be folded into the loop around it.
#[inline(always)]
fn call_async<S: Service<u64>>(service: &mut S, request: u64) -> Result<S::Response, S::Error> {
    let service = black_box(service);
    poll_once(async move {
        service.ready().await?;
        service.call(request).await
    })
}

/// One call on a clone of `service`, driven by hand, then the clone dropped: what axum does
/// with a route's service on every request.
#[inline(always)]
fn call_cloned<S: Service<u64> + Clone>(
    service: &S,
    request: u64,
) -> Result<S::Response, S::Error> {
    let mut clone = black_box(service).clone();
    call_once(&mut clone, request)
}

/// The breaker of `closed_call/steadfast`: failure-rate rule over a 10 s time window.
fn steadfast_time_window() -> CircuitBreaker {
    CircuitBreaker::builder("bench")
        .failure_rate(0.5)
        .minimum_calls(20)
        .time_window(Duration::from_secs(10), 10)
        .consecutive_failures(1000)
        .build()
        .expect("valid config")
}

/// The same breaker with slow-call tracking on (two precise clock reads per call).
fn steadfast_slow_calls() -> CircuitBreaker {
    CircuitBreaker::builder("bench-slow")
        .failure_rate(0.5)
        .minimum_calls(20)
        .time_window(Duration::from_secs(10), 10)
        .consecutive_failures(1000)
        .slow_calls(Duration::from_secs(1), 0.9)
        .build()
        .expect("valid config")
}

/// The same rules over a count window of the last 100 calls.
fn steadfast_count_window() -> CircuitBreaker {
    CircuitBreaker::builder("bench-count")
        .failure_rate(0.5)
        .minimum_calls(20)
        .count_window(100)
        .consecutive_failures(1000)
        .build()
        .expect("valid config")
}

/// A breaker that opens on the first failure and stays open for an hour.
fn steadfast_trips_at_once() -> CircuitBreaker {
    CircuitBreaker::builder("bench-open")
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(3600))
        .build()
        .expect("valid config")
}

/// recloser, configured like the others as far as it goes (it only has a count window).
fn recloser_closed() -> recloser::Recloser {
    recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(100)
        .open_wait(Duration::from_secs(30))
        .build()
}

/// The failsafe state machine with its time-window rule: success rate ≥ 0.5 over 10 s, at
/// least 20 calls.
fn failsafe_closed() -> impl failsafe::CircuitBreaker + failsafe::futures::CircuitBreaker {
    let policy = failsafe::failure_policy::success_rate_over_time_window(
        0.5,
        20,
        Duration::from_secs(10),
        failsafe::backoff::constant(Duration::from_secs(30)),
    );
    failsafe::Config::new().failure_policy(policy).build()
}

/// tower-resilience with a time-based window of `window`: failure rate 0.5, at least 20 calls.
fn tower_resilience_time_window(window: Duration) -> trcb::CircuitBreakerLayer {
    trcb::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_type(trcb::SlidingWindowType::TimeBased)
        .sliding_window_duration(window)
        .minimum_number_of_calls(20)
        .wait_duration_in_open(Duration::from_secs(30))
        .build()
        .expect("valid config")
}

/// tower-resilience with a count-based window of 100 calls: failure rate 0.5, at least 20 calls.
fn tower_resilience_count_window() -> trcb::CircuitBreakerLayer {
    trcb::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_type(trcb::SlidingWindowType::CountBased)
        .sliding_window_size(100)
        .minimum_number_of_calls(20)
        .wait_duration_in_open(Duration::from_secs(30))
        .build()
        .expect("valid config")
}

/// recloser's sync API as a Tower service, so that it can be driven like the others: the
/// inner call runs inside `Recloser::call` (its future is ready, so it is unwrapped there).
/// Clones share one `Recloser` through an `Arc`, as they must to share its state.
#[derive(Clone)]
struct RecloserSync<S> {
    recloser: Arc<recloser::Recloser>,
    inner: S,
}

impl<S> Service<u64> for RecloserSync<S>
where
    S: Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>>,
{
    type Response = u64;
    type Error = recloser::Error<Infallible>;
    type Future = Ready<Result<u64, recloser::Error<Infallible>>>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(recloser::Error::Inner)
    }

    #[inline]
    fn call(&mut self, request: u64) -> Self::Future {
        let future = self.inner.call(request);
        ready(self.recloser.call(|| future.into_inner()))
    }
}

/// recloser's future API as a Tower service: the response future is `AsyncRecloser::call`'s.
#[derive(Clone)]
struct RecloserAsync<S> {
    recloser: recloser::AsyncRecloser,
    inner: S,
}

impl<S: Service<u64, Error = Infallible>> Service<u64> for RecloserAsync<S> {
    type Response = S::Response;
    type Error = recloser::Error<Infallible>;
    type Future = recloser::RecloserFuture<S::Future, recloser::AnyError>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(recloser::Error::Inner)
    }

    #[inline]
    fn call(&mut self, request: u64) -> Self::Future {
        self.recloser.call(self.inner.call(request))
    }
}

/// [`RecloserSync`] over [`echo`].
fn recloser_sync_echo() -> RecloserSync<
    impl Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>>
        + Clone,
> {
    RecloserSync {
        recloser: Arc::new(recloser_closed()),
        inner: echo(),
    }
}

/// [`RecloserAsync`] over [`echo`].
fn recloser_async_echo() -> RecloserAsync<
    impl Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>>
        + Clone,
> {
    RecloserAsync {
        recloser: recloser::AsyncRecloser::from(recloser_closed()),
        inner: echo(),
    }
}

/// The stripe of a default-layer service, read from its provider's `Debug` output.
fn stripe_of<P: std::fmt::Debug>(provider: &P) -> usize {
    let text = format!("{provider:?}");
    let start = text
        .find("stripe: ")
        .expect("the provider shows its stripe")
        + "stripe: ".len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect("a stripe number")
}

/// A default-layer service over [`echo`] made on another thread, on a stripe other than this
/// thread's; `None` if the breaker has one stripe (a one-core machine).
fn steadfast_other_stripe(
) -> Option<impl Service<u64, Response = u64, Error = steadfast::breaker::Error<Infallible>> + Clone>
{
    let layer = steadfast_time_window().layer();
    let here = stripe_of(layer.layer(echo()).provider());
    // Threads take stripes in turn, so one of the next few threads has another one.
    (0..8).find_map(|_| {
        let layer = layer.clone();
        let service = std::thread::spawn(move || layer.layer(echo()))
            .join()
            .expect("thread");
        (stripe_of(service.provider()) != here).then_some(service)
    })
}

/// The keys of `closed_call/steadfast_keyed`: requests map to this many keys.
const KEYS: u64 = 64;

/// A keyed layer over [`echo`]: a registry of at most 10 000 breakers built like
/// [`steadfast_time_window`], the key `request % 64`, every key already in the registry.
fn steadfast_keyed_echo(
) -> impl Service<u64, Response = u64, Error = steadfast::breaker::Error<Infallible>> + Clone {
    let registry = BreakerRegistry::<u64>::new(
        CircuitBreaker::builder("bench-keyed")
            .failure_rate(0.5)
            .minimum_calls(20)
            .time_window(Duration::from_secs(10), 10)
            .consecutive_failures(1000),
        10_000,
        Duration::from_secs(600),
    )
    .expect("valid config");
    let mut service =
        CircuitBreakerLayer::keyed(registry.clone(), |request: &u64| *request % KEYS).layer(echo());
    for key in 0..KEYS {
        call_once(&mut service, key).expect("closed");
    }
    assert_eq!(registry.len(), KEYS);
    service
}

/// A tower-resilience service over [`echo`] with a time-based window of `window`.
fn tower_resilience_echo(
    window: Duration,
) -> impl Service<u64, Response = u64, Error = trcb::CircuitBreakerError<Infallible>> {
    tower_resilience_time_window(window).layer(echo())
}

/// A tower-resilience service whose time window holds a known number of calls.
///
/// tower-resilience cannot empty a closed breaker's time window (its reset does nothing while
/// closed), so [`TowerResilienceFill::time`] keeps the window between `fill` and
/// `fill + growth` calls by building a fresh service and pre-filling it, untimed, whenever
/// the next timed chunk would take it past that.
struct TowerResilienceFill<S> {
    service: S,
    build: fn(Duration) -> S,
    window: Duration,
    fill: u64,
    growth: u64,
    held: u64,
}

impl<S> TowerResilienceFill<S>
where
    S: Service<u64, Response = u64, Error = trcb::CircuitBreakerError<Infallible>>,
{
    /// A service from `build(window)`, pre-filled with `fill` calls.
    fn new(build: fn(Duration) -> S, window: Duration, fill: u64, growth: u64) -> Self {
        let mut this = Self {
            service: build(window),
            build,
            window,
            fill,
            growth,
            held: 0,
        };
        this.prefill();
        this
    }

    /// Makes `fill` calls, untimed.
    fn prefill(&mut self) {
        for i in 0..self.fill {
            call_once(&mut self.service, i).expect("closed");
        }
        self.held = self.fill;
    }

    /// Times `iters` calls, rebuilding the service (untimed) as needed.
    fn time(&mut self, iters: u64) -> Duration {
        let mut elapsed = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            if self.held >= self.fill.saturating_add(self.growth) {
                self.service = (self.build)(self.window);
                self.prefill();
            }
            let room = self.fill.saturating_add(self.growth) - self.held;
            let chunk = (iters - done).min(room);
            let start = Instant::now();
            for _ in 0..chunk {
                assert!(black_box(
                    call_once(&mut self.service, black_box(1)).is_ok()
                ));
            }
            elapsed += start.elapsed();
            done += chunk;
            self.held += chunk;
        }
        elapsed
    }
}

/// Group `closed_call`: every service driven by hand.
fn closed_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("closed_call");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let mut bare = echo();
    group.bench_function("bare", |b| {
        b.iter(|| black_box(call_once(&mut bare, black_box(1)).is_ok()))
    });

    // The default layer: calls hold a striped handle (the stub of their core).
    let mut service = steadfast_time_window().layer().layer(echo());
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    // The same breaker made 'static: calls hold a plain reference, no reference count.
    let mut service = steadfast_time_window().leak().static_layer().layer(echo());
    group.bench_function("steadfast_static", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    // The default layer, called from a thread whose stripe is not the one the service was
    // made on (a task that moved to another worker thread): each call leases its own
    // stripe's stub through the sibling path.
    if let Some(mut service) = steadfast_other_stripe() {
        group.bench_function("steadfast_other_stripe", |b| {
            b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
        });
    }

    // One breaker per key, looked up in the registry on every call; requests cycle through
    // the 64 keys.
    let mut service = steadfast_keyed_echo();
    let mut request = 0u64;
    group.bench_function("steadfast_keyed", |b| {
        b.iter(|| {
            request = request.wrapping_add(1);
            black_box(call_once(&mut service, black_box(request)).is_ok())
        })
    });

    let mut service = steadfast_slow_calls().layer().layer(echo());
    group.bench_function("steadfast_slow_call_tracking", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let mut service = steadfast_count_window().layer().layer(echo());
    group.bench_function("steadfast_count_window", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let breaker = steadfast_time_window();
    let f = |x: u64| Ok::<u64, Infallible>(x);
    group.bench_function("steadfast_sync_permit", |b| {
        b.iter(|| {
            let permit = breaker.try_acquire().expect("closed");
            let result = black_box(f(black_box(1)));
            permit.success();
            result
        })
    });

    let breaker = steadfast_time_window();
    group.bench_function("steadfast_sync_call", |b| {
        b.iter(|| black_box(breaker.call(|| f(black_box(1))).is_ok()))
    });

    let recloser = recloser_closed();
    group.bench_function("recloser_sync", |b| {
        b.iter(|| black_box(recloser.call(|| f(black_box(1))).is_ok()))
    });

    let recloser = recloser::AsyncRecloser::from(recloser_closed());
    group.bench_function("recloser_async", |b| {
        b.iter(|| black_box(poll_once(recloser.call(ready(f(black_box(1))))).is_ok()))
    });

    let mut service = recloser_sync_echo();
    group.bench_function("recloser_sync_service", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let mut service = recloser_async_echo();
    group.bench_function("recloser_async_service", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    let failsafe = failsafe_closed();
    group.bench_function("failsafe_sync", |b| {
        b.iter(|| black_box(failsafe::CircuitBreaker::call(&failsafe, || f(black_box(1))).is_ok()))
    });
    group.bench_function("failsafe_future", |b| {
        b.iter(|| {
            black_box(
                poll_once(failsafe::futures::CircuitBreaker::call(
                    &failsafe,
                    ready(f(black_box(1))),
                ))
                .is_ok(),
            )
        })
    });

    // Its time window keeps every call for 10 s and rescans them all on every call, so a
    // steady stream of calls would make each call slower than the last; `window_fill` shows
    // that. Here the window is kept at 0–100 calls, which is its best case.
    let mut fill = TowerResilienceFill::new(tower_resilience_echo, Duration::from_secs(10), 0, 100);
    group.bench_function("tower_resilience", |b| {
        b.iter_custom(|iters| fill.time(iters))
    });

    let mut service = tower_resilience_count_window().layer(echo());
    group.bench_function("tower_resilience_count_window", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    group.finish();
}

/// Group `closed_call_async`: every Tower service called from an `async` block.
fn closed_call_async(c: &mut Criterion) {
    let mut group = c.benchmark_group("closed_call_async");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let mut service = echo();
    group.bench_function("bare", |b| {
        b.iter(|| black_box(call_async(&mut service, black_box(1)).is_ok()))
    });
    let mut service = steadfast_time_window().layer().layer(echo());
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(call_async(&mut service, black_box(1)).is_ok()))
    });
    let mut service = steadfast_time_window().leak().static_layer().layer(echo());
    group.bench_function("steadfast_static", |b| {
        b.iter(|| black_box(call_async(&mut service, black_box(1)).is_ok()))
    });
    let mut service = steadfast_keyed_echo();
    let mut request = 0u64;
    group.bench_function("steadfast_keyed", |b| {
        b.iter(|| {
            request = request.wrapping_add(1);
            black_box(call_async(&mut service, black_box(request)).is_ok())
        })
    });
    let mut service = recloser_sync_echo();
    group.bench_function("recloser_sync_service", |b| {
        b.iter(|| black_box(call_async(&mut service, black_box(1)).is_ok()))
    });
    let mut service = recloser_async_echo();
    group.bench_function("recloser_async_service", |b| {
        b.iter(|| black_box(call_async(&mut service, black_box(1)).is_ok()))
    });

    group.finish();
}

/// Group `closed_call_clone`: a clone of every Tower service per call, as axum does.
fn closed_call_clone(c: &mut Criterion) {
    let mut group = c.benchmark_group("closed_call_clone");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let service = echo();
    group.bench_function("bare", |b| {
        b.iter(|| black_box(call_cloned(&service, black_box(1)).is_ok()))
    });
    let service = steadfast_time_window().layer().layer(echo());
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(call_cloned(&service, black_box(1)).is_ok()))
    });
    let service = steadfast_time_window().leak().static_layer().layer(echo());
    group.bench_function("steadfast_static", |b| {
        b.iter(|| black_box(call_cloned(&service, black_box(1)).is_ok()))
    });
    let service = steadfast_keyed_echo();
    let mut request = 0u64;
    group.bench_function("steadfast_keyed", |b| {
        b.iter(|| {
            request = request.wrapping_add(1);
            black_box(call_cloned(&service, black_box(request)).is_ok())
        })
    });
    let service = recloser_sync_echo();
    group.bench_function("recloser_sync_service", |b| {
        b.iter(|| black_box(call_cloned(&service, black_box(1)).is_ok()))
    });
    let service = recloser_async_echo();
    group.bench_function("recloser_async_service", |b| {
        b.iter(|| black_box(call_cloned(&service, black_box(1)).is_ok()))
    });

    group.finish();
}

/// Group `open_rejection`.
fn open_rejection(c: &mut Criterion) {
    let mut group = c.benchmark_group("open_rejection");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let breaker = steadfast_trips_at_once();
    let mut service = breaker.layer().layer(flaky());
    assert!(call_once(&mut service, FAIL).is_err());
    assert_eq!(breaker.state(), State::Open);
    assert!(call_once(&mut service, 1).unwrap_err().is_rejected());
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });
    let leaked = steadfast_trips_at_once().leak();
    let mut static_service = leaked.static_layer().layer(flaky());
    assert!(call_once(&mut static_service, FAIL).is_err());
    assert_eq!(leaked.state(), State::Open);
    group.bench_function("steadfast_static", |b| {
        b.iter(|| black_box(call_once(&mut static_service, black_box(1)).is_ok()))
    });
    group.bench_function("steadfast_sync_permit", |b| {
        b.iter(|| black_box(breaker.try_acquire().map(|permit| permit.success()).is_ok()))
    });

    let recloser = recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(1)
        .open_wait(Duration::from_secs(3600))
        .build();
    let fail = || Err::<u64, &str>("boom");
    let mut tripped = false;
    for _ in 0..10 {
        if matches!(recloser.call(fail), Err(recloser::Error::Rejected)) {
            tripped = true;
            break;
        }
    }
    assert!(tripped, "recloser did not open");
    group.bench_function("recloser_sync", |b| {
        b.iter(|| black_box(recloser.call(|| Ok::<u64, &str>(black_box(1))).is_ok()))
    });

    let failsafe = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            1,
            failsafe::backoff::constant(Duration::from_secs(3600)),
        ))
        .build();
    assert!(matches!(
        failsafe::CircuitBreaker::call(&failsafe, fail),
        Err(failsafe::Error::Inner(_))
    ));
    assert!(matches!(
        failsafe::CircuitBreaker::call(&failsafe, || Ok::<u64, &str>(1)),
        Err(failsafe::Error::Rejected)
    ));
    group.bench_function("failsafe_sync", |b| {
        b.iter(|| {
            black_box(
                failsafe::CircuitBreaker::call(&failsafe, || Ok::<u64, &str>(black_box(1))).is_ok(),
            )
        })
    });

    let layer = trcb::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .sliding_window_type(trcb::SlidingWindowType::CountBased)
        .sliding_window_size(1)
        .minimum_number_of_calls(1)
        .wait_duration_in_open(Duration::from_secs(3600))
        .build()
        .expect("valid config");
    let mut service = layer.layer(flaky());
    assert!(matches!(
        call_once(&mut service, FAIL),
        Err(trcb::CircuitBreakerError::Inner(_))
    ));
    assert!(matches!(
        call_once(&mut service, 1),
        Err(trcb::CircuitBreakerError::OpenCircuit)
    ));
    group.bench_function("tower_resilience", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    group.finish();
}

/// Group `http_refusal`: the HTTP mode, a served call against a refused one.
///
/// The inner service answers `200` with a two-byte axum body, the cheapest response an axum
/// handler makes; `served_with_header` adds a `content-type`, as a JSON handler would. Every
/// response goes through `black_box` whole and is dropped within the iteration.
fn http_refusal(c: &mut Criterion) {
    use axum::body::Body;
    use http::{header, HeaderValue, Response, StatusCode};

    /// Answers `200 ok`, or `500` on [`FAIL`] (to trip breakers for real).
    fn ok(request: u64) -> Ready<Result<Response<Body>, Infallible>> {
        let mut response = Response::new(Body::from("ok"));
        if request == FAIL {
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        ready(Ok(response))
    }
    fn json(_: u64) -> Ready<Result<Response<Body>, Infallible>> {
        let mut response = Response::new(Body::from("ok"));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        ready(Ok(response))
    }
    /// A breaker that opens on the first failure and stays open for `open`.
    fn tripped(open: Duration) -> CircuitBreaker {
        let breaker = CircuitBreaker::builder("bench-http")
            .consecutive_failures(1)
            .open_duration(open)
            .build()
            .expect("valid config");
        let mut service = breaker.layer().http().layer(service_fn(ok));
        let response = call_once(&mut service, FAIL).expect("infallible");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(breaker.state(), State::Open);
        breaker
    }

    let mut group = c.benchmark_group("http_refusal");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let mut service = service_fn(ok);
    group.bench_function("bare_served", |b| {
        b.iter(|| black_box(&call_once(&mut service, black_box(1))).is_ok())
    });

    let mut service = steadfast_time_window().layer().http().layer(service_fn(ok));
    assert_eq!(
        call_once(&mut service, 1).expect("infallible").status(),
        StatusCode::OK
    );
    group.bench_function("served", |b| {
        b.iter(|| black_box(&call_once(&mut service, black_box(1))).is_ok())
    });

    let mut service = steadfast_time_window()
        .layer()
        .http()
        .layer(service_fn(json));
    group.bench_function("served_with_header", |b| {
        b.iter(|| black_box(&call_once(&mut service, black_box(1))).is_ok())
    });

    // Tripped for real, open for a minute: `Retry-After` comes from the table (up to 600 s).
    let mut service = tripped(Duration::from_secs(60))
        .layer()
        .http()
        .layer(service_fn(ok));
    let response = call_once(&mut service, 1).expect("infallible");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    group.bench_function("refused_open", |b| {
        b.iter(|| black_box(&call_once(&mut service, black_box(1))).is_ok())
    });

    // Open for an hour: `Retry-After` (3 600 s and less) is past the table, so it is formatted.
    let mut service = tripped(Duration::from_secs(3600))
        .layer()
        .http()
        .layer(service_fn(ok));
    let response = call_once(&mut service, 1).expect("infallible");
    assert_eq!(response.headers()[header::RETRY_AFTER], "3600");
    group.bench_function("refused_open_1h", |b| {
        b.iter(|| black_box(&call_once(&mut service, black_box(1))).is_ok())
    });

    // Forced open: no `Retry-After`.
    let breaker = steadfast_time_window();
    breaker.force_open();
    let mut service = breaker.layer().http().layer(service_fn(ok));
    let response = call_once(&mut service, 1).expect("infallible");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!response.headers().contains_key(header::RETRY_AFTER));
    group.bench_function("refused_forced_open", |b| {
        b.iter(|| black_box(&call_once(&mut service, black_box(1))).is_ok())
    });

    group.finish();
}

/// The window fills of group `window_fill`.
const FILLS: [u64; 3] = [0, 1_000, 100_000];

/// Group `window_fill`.
fn window_fill(c: &mut Criterion) {
    let mut group = c.benchmark_group("window_fill");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);

    for fill in FILLS {
        let breaker = CircuitBreaker::builder("bench-fill")
            .failure_rate(0.5)
            .minimum_calls(20)
            .time_window(Duration::from_secs(60), 10)
            .consecutive_failures(1000)
            .build()
            .expect("valid config");
        let mut service = breaker.layer().layer(echo());
        for i in 0..fill {
            call_once(&mut service, i).expect("closed");
        }
        assert_eq!(breaker.snapshot().calls, fill);
        group.bench_with_input(BenchmarkId::new("steadfast", fill), &fill, |b, _| {
            b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
        });
    }

    // Between `fill` and `fill + growth` calls in its window while timed; 100 000 is not
    // rebuilt (pre-filling it takes seconds), so it grows a little during its short run.
    for fill in FILLS {
        let growth = if fill >= 100_000 { u64::MAX } else { 100 };
        if fill >= 100_000 {
            group
                .sample_size(10)
                .sampling_mode(SamplingMode::Flat)
                .warm_up_time(Duration::from_millis(200))
                .measurement_time(Duration::from_millis(500));
        }
        // Built on first use, so that a filter that skips this benchmark skips its pre-fill.
        let mut state = None;
        let mut prefill = Duration::ZERO;
        group.bench_with_input(BenchmarkId::new("tower_resilience", fill), &fill, |b, _| {
            let state = state.get_or_insert_with(|| {
                let started = Instant::now();
                let state = TowerResilienceFill::new(
                    tower_resilience_echo,
                    Duration::from_secs(60),
                    fill,
                    growth,
                );
                prefill = started.elapsed();
                state
            });
            b.iter_custom(|iters| state.time(iters))
        });
        if let (true, Some(state)) = (fill >= 100_000, &state) {
            eprintln!(
                "window_fill/tower_resilience/{fill}: pre-filled in {prefill:.1?}; the window \
                 held {} calls when measuring ended",
                state.held
            );
        }
    }

    group.finish();
}

/// Group `threads`.
fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("threads");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);

    // The default layer, `breaker.layer()`: each thread's service clone calls through the
    // stub of its own core.
    let service = steadfast_time_window().layer().layer(echo());
    for n in [1, 2] {
        group.bench_with_input(BenchmarkId::new("steadfast", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                parallel(n, iters, || {
                    let mut service = service.clone();
                    move || {
                        assert!(black_box(call_once(&mut service, black_box(1)).is_ok()));
                    }
                })
            })
        });
    }

    // The default layer with a clone of the service per call, as axum does.
    let service = steadfast_time_window().layer().layer(echo());
    for n in [1, 2] {
        group.bench_with_input(BenchmarkId::new("steadfast_clone", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                parallel(n, iters, || {
                    let service = service.clone();
                    move || {
                        assert!(black_box(call_cloned(&service, black_box(1)).is_ok()));
                    }
                })
            })
        });
    }

    let service = steadfast_time_window().leak().static_layer().layer(echo());
    for n in [1, 2] {
        group.bench_with_input(BenchmarkId::new("steadfast_static", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                parallel(n, iters, || {
                    let mut service = service.clone();
                    move || {
                        assert!(black_box(call_once(&mut service, black_box(1)).is_ok()));
                    }
                })
            })
        });
    }

    let service = steadfast_time_window().leak().static_layer().layer(echo());
    for n in [1, 2] {
        group.bench_with_input(
            BenchmarkId::new("steadfast_static_clone", n),
            &n,
            |b, &n| {
                b.iter_custom(|iters| {
                    parallel(n, iters, || {
                        let service = service.clone();
                        move || {
                            assert!(black_box(call_cloned(&service, black_box(1)).is_ok()));
                        }
                    })
                })
            },
        );
    }

    // The sync API: no per-call reference count, only the breaker's own atomics.
    let breaker = steadfast_time_window();
    for n in [1, 2] {
        group.bench_with_input(BenchmarkId::new("steadfast_sync_permit", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                parallel(n, iters, || {
                    let breaker = &breaker;
                    move || {
                        let permit = breaker.try_acquire().expect("closed");
                        black_box(black_box(1u64));
                        permit.success();
                    }
                })
            })
        });
    }

    let service = steadfast_count_window().layer().layer(echo());
    for n in [1, 2] {
        group.bench_with_input(
            BenchmarkId::new("steadfast_count_window", n),
            &n,
            |b, &n| {
                b.iter_custom(|iters| {
                    parallel(n, iters, || {
                        let mut service = service.clone();
                        move || {
                            assert!(black_box(call_once(&mut service, black_box(1)).is_ok()));
                        }
                    })
                })
            },
        );
    }

    let recloser = Arc::new(recloser_closed());
    for n in [1, 2] {
        group.bench_with_input(BenchmarkId::new("recloser_sync", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                parallel(n, iters, || {
                    let recloser = &recloser;
                    move || {
                        assert!(black_box(
                            recloser
                                .call(|| Ok::<u64, Infallible>(black_box(1)))
                                .is_ok()
                        ));
                    }
                })
            })
        });
    }

    group.finish();
}

criterion_group!(
    benches,
    closed_call,
    closed_call_async,
    closed_call_clone,
    open_rejection,
    http_refusal,
    window_fill,
    threads
);
criterion_main!(benches);
