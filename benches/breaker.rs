//! Criterion benchmarks of the Steadfast circuit breaker, next to its peers.
//!
//! Run them all with `cargo bench --bench breaker`. `BENCHMARKS.md` at the repository root
//! holds results and explains how to read them.
//!
//! Groups:
//!
//! - `closed_call`: the cost of one successful call through a closed breaker, single thread.
//!   Tower services are driven by hand: `poll_ready`, `call`, then one poll of the response
//!   future with a no-op waker (the inner service answers with a ready future, so one poll
//!   completes it). No async runtime is involved in the measured loop. `bare` is the inner
//!   service alone; subtract it to get a breaker's overhead.
//! - `open_rejection`: the cost of a call refused by a breaker that tripped for real (a
//!   failing call with a one-failure rule and a long open period), not one forced open.
//! - `window_fill`: the cost of a closed call when the breaker's time window already holds
//!   0, 1 000 or 100 000 calls.
//! - `threads`: closed calls from one thread and from two threads sharing one breaker; the
//!   estimate is wall-clock time per call over all threads, so the inverse is throughput.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use steadfast::breaker::{CircuitBreaker, State};
use tower::{service_fn, Layer, Service};
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

/// One call the way Tower wants it: `poll_ready`, `call`, then polls the response future once.
///
/// Every inner service here answers with a ready future, so one poll must complete it.
#[inline(always)]
fn call_once<S: Service<u64>>(service: &mut S, request: u64) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(error)) => return Err(error),
        Poll::Pending => panic!("benchmarked services are always ready"),
    }
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("benchmarked futures complete in one poll"),
    }
}

/// Polls a future that must complete at once.
#[inline(always)]
fn poll_once<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("benchmarked futures complete in one poll"),
    }
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

/// Group `closed_call`.
fn closed_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("closed_call");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let mut bare = echo();
    group.bench_function("bare", |b| {
        b.iter(|| black_box(call_once(&mut bare, black_box(1)).is_ok()))
    });

    let mut service = steadfast_time_window().layer().layer(echo());
    group.bench_function("steadfast", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
    });

    // The same breaker made 'static: calls hold a plain reference, no reference count.
    let mut service = steadfast_time_window().leak().static_layer().layer(echo());
    group.bench_function("steadfast_static", |b| {
        b.iter(|| black_box(call_once(&mut service, black_box(1)).is_ok()))
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

/// Runs `make()`'s work `iters` times on each of `threads` threads started together.
///
/// Returns the wall-clock time from the first start to the last finish divided by `threads`,
/// so that criterion's per-iteration estimate is the wall-clock time per call over all
/// threads: the inverse of the throughput.
fn parallel<W: FnMut() + Send>(threads: u32, iters: u64, make: impl Fn() -> W) -> Duration {
    let barrier = Barrier::new(threads as usize);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let mut work = make();
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        work();
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("worker panicked"))
            .collect()
    });
    let first = spans.iter().map(|span| span.0).min().expect("threads > 0");
    let last = spans.iter().map(|span| span.1).max().expect("threads > 0");
    (last - first) / threads
}

/// Group `threads`.
fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("threads");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);

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

criterion_group!(benches, closed_call, open_rejection, window_fill, threads);
criterion_main!(benches);
