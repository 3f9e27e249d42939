//! The calls of `benches/breaker.rs`, each made a fixed number of times outside criterion, so
//! that callgrind can count the instructions of one call.
//!
//! ```sh
//! cargo bench -p steadfast-benches --bench breaker_icount --no-run   # prints the binary's path
//! B=target/release/deps/breaker_icount-<hash>
//! $B                                                           # lists the entries
//! valgrind --tool=callgrind --toggle-collect='breaker_icount::run*' $B by_hand/steadfast 100000
//! valgrind --tool=callgrind --toggle-collect='breaker_icount::run*' $B by_hand/steadfast 1100000
//! ```
//!
//! Only the loop of the chosen entry is counted: `--toggle-collect` names [`run`], which is
//! never inlined (one copy per entry), and the entry's setup runs outside it. The difference
//! of the two totals (`Collected :`) divided by 1 000 000 is the count per call, free of
//! one-time costs such as a thread's first stripe lookup. Without arguments (as under
//! `cargo bench`), the binary lists the entries and exits. The entries mirror those of
//! `benches/breaker.rs`: `by_hand/*` is `closed_call`, `async/*` is `closed_call_async`,
//! `clone/*` is `closed_call_clone`, `open/*` is `open_rejection`, `http/*` is
//! `http_refusal`. `BENCHMARKS.md` has the results.
//!
//! Two flags help read timings without criterion: `--time` prints the wall-clock time per
//! call (setup included), `--thread` runs the entry on a new thread instead of the main one.
//! The `scaling/*` entries are timings, not counts: `$B scaling/steadfast 2000000` times one
//! thread and two threads back to back, 31 times, and prints the median throughput ratio
//! (see [`scaling`]).

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::hint::black_box;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use steadfast_benches::{call_once, poll_once};

use steadfast::breaker::{BreakerRegistry, CircuitBreaker, CircuitBreakerLayer};
use tower::{service_fn, Layer, Service, ServiceExt};

/// The request that makes [`flaky`] fail.
const FAIL: u64 = u64::MAX;

fn echo(
) -> impl Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>>
       + Clone
       + Send
       + Sync
       + 'static {
    service_fn(|x: u64| ready(Ok::<u64, Infallible>(x)))
}

fn flaky(
) -> impl Service<u64, Response = u64, Error = &'static str, Future = Ready<Result<u64, &'static str>>>
       + Clone
       + Send
       + Sync
       + 'static {
    service_fn(|x: u64| ready(if x == FAIL { Err("boom") } else { Ok(x) }))
}

#[inline(always)]
fn call_async<S: Service<u64>>(service: &mut S, request: u64) -> Result<S::Response, S::Error> {
    let service = black_box(service);
    poll_once(async move {
        service.ready().await?;
        service.call(request).await
    })
}

#[inline(always)]
fn call_cloned<S: Service<u64> + Clone>(
    service: &S,
    request: u64,
) -> Result<S::Response, S::Error> {
    let mut clone = black_box(service).clone();
    call_once(&mut clone, request)
}

fn steadfast_time_window() -> CircuitBreaker {
    CircuitBreaker::builder("bench")
        .failure_rate(0.5)
        .minimum_calls(20)
        .time_window(Duration::from_secs(10), 10)
        .consecutive_failures(1000)
        .build()
        .expect("valid config")
}

fn steadfast_trips_at_once() -> CircuitBreaker {
    CircuitBreaker::builder("bench-open")
        .consecutive_failures(1)
        .open_duration(Duration::from_secs(3600))
        .build()
        .expect("valid config")
}

fn recloser_closed() -> recloser::Recloser {
    recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(100)
        .open_wait(Duration::from_secs(30))
        .build()
}

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

fn recloser_sync_echo() -> RecloserSync<
    impl Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>>
        + Clone,
> {
    RecloserSync {
        recloser: Arc::new(recloser_closed()),
        inner: echo(),
    }
}

fn recloser_async_echo() -> RecloserAsync<
    impl Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>>
        + Clone,
> {
    RecloserAsync {
        recloser: recloser::AsyncRecloser::from(recloser_closed()),
        inner: echo(),
    }
}

const KEYS: u64 = 64;

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
        CircuitBreakerLayer::keyed(registry, |request: &u64| *request % KEYS).layer(echo());
    for key in 0..KEYS {
        call_once(&mut service, key).expect("closed");
    }
    service
}

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

fn steadfast_other_stripe(
) -> impl Service<u64, Response = u64, Error = steadfast::breaker::Error<Infallible>> + Clone {
    let layer = steadfast_time_window().layer();
    let here = stripe_of(layer.layer(echo()).provider());
    (0..8)
        .find_map(|_| {
            let layer = layer.clone();
            let service = std::thread::spawn(move || layer.layer(echo()))
                .join()
                .expect("thread");
            (stripe_of(service.provider()) != here).then_some(service)
        })
        .expect("a breaker of two or more stripes")
}

/// Runs `call` `n` times: the function callgrind counts (never inlined, one copy per entry).
#[inline(never)]
fn run(n: u64, mut call: impl FnMut(u64) -> bool) {
    for i in 0..n {
        assert!(black_box(call(black_box(i))));
    }
}

fn http_entry(name: &str, n: u64) -> bool {
    use axum::body::Body;
    use http::{Response, StatusCode};

    fn ok(request: u64) -> Ready<Result<Response<Body>, Infallible>> {
        let mut response = Response::new(Body::from("ok"));
        if request == FAIL {
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        ready(Ok(response))
    }
    let tripped = |open: Duration| {
        let breaker = CircuitBreaker::builder("bench-http")
            .consecutive_failures(1)
            .open_duration(open)
            .build()
            .expect("valid config");
        let mut service = breaker.layer().http().layer(service_fn(ok));
        let _ = call_once(&mut service, FAIL);
        breaker
    };
    // Requests are 0..n: never FAIL.
    let served = |response: &Result<Response<Body>, Infallible>| matches!(black_box(response), Ok(r) if r.status() == StatusCode::OK);
    let refused = |response: &Result<Response<Body>, Infallible>| matches!(black_box(response), Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE);
    match name {
        "http/bare_served" => {
            let mut service = service_fn(ok);
            run(n, |i| served(&call_once(&mut service, i)));
        }
        "http/served" => {
            let mut service = steadfast_time_window().layer().http().layer(service_fn(ok));
            run(n, |i| served(&call_once(&mut service, i)));
        }
        "http/refused_open" => {
            let mut service = tripped(Duration::from_secs(60))
                .layer()
                .http()
                .layer(service_fn(ok));
            run(n, |i| refused(&call_once(&mut service, i)));
        }
        "http/refused_open_1h" => {
            let mut service = tripped(Duration::from_secs(3600))
                .layer()
                .http()
                .layer(service_fn(ok));
            run(n, |i| refused(&call_once(&mut service, i)));
        }
        "http/refused_forced_open" => {
            let breaker = steadfast_time_window();
            breaker.force_open();
            let mut service = breaker.layer().http().layer(service_fn(ok));
            run(n, |i| refused(&call_once(&mut service, i)));
        }
        _ => return false,
    }
    true
}

/// Runs `make()`'s work `calls` times on each of `threads` threads started together (each
/// thread calls `make()` itself); returns the wall-clock time per call over all threads, as
/// group `threads` of `benches/breaker.rs` measures it.
fn parallel<W: FnMut()>(threads: usize, calls: u64, make: &(impl Fn() -> W + Sync)) -> f64 {
    let barrier = std::sync::Barrier::new(threads);
    let spans: Vec<(std::time::Instant, std::time::Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut work = make();
                    barrier.wait();
                    let start = std::time::Instant::now();
                    for _ in 0..calls {
                        work();
                    }
                    (start, std::time::Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("threads");
    let last = spans.iter().map(|s| s.1).max().expect("threads");
    (last - first).as_nanos() as f64 / (calls * threads as u64) as f64
}

/// Times one thread and two threads back to back, `rounds` times, and prints the medians and
/// the median of the per-round throughput ratios: pairs taken seconds apart would each meet
/// whatever the host is doing at the time, and this machine's speed moves by up to 2x.
fn scaling(name: &str, calls: u64) -> bool {
    fn paired<W: FnMut()>(name: &str, calls: u64, make: impl Fn() -> W + Sync) {
        const ROUNDS: usize = 31;
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (mut one, mut two, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        parallel(2, calls / 10, &make); // warm-up
        for round in 0..ROUNDS {
            // Alternate which goes first, so that neither always follows the other.
            let (a, b) = if round % 2 == 0 {
                let a = parallel(1, calls, &make);
                (a, parallel(2, calls, &make))
            } else {
                let b = parallel(2, calls, &make);
                (parallel(1, calls, &make), b)
            };
            one.push(a);
            two.push(b);
            ratio.push(a / b);
        }
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let (fastest_one, fastest_two) = (min(&one), min(&two));
        println!(
            "{name}: 1 thread {:.2} ns, 2 threads {:.2} ns per call (medians of {ROUNDS}); \
             throughput ratio 2/1: median of rounds {:.2}x (range {:.2}x to {:.2}x); \
             fastest rounds {fastest_one:.2} / {fastest_two:.2} ns = {:.2}x",
            median(one),
            median(two),
            median(ratio.clone()),
            min(&ratio),
            ratio.iter().copied().fold(0.0, f64::max),
            fastest_one / fastest_two,
        );
    }
    match name {
        "scaling/steadfast" => {
            let service = steadfast_time_window().layer().layer(echo());
            paired(name, calls, || {
                let mut service = service.clone();
                move || assert!(black_box(call_once(&mut service, black_box(1)).is_ok()))
            });
        }
        "scaling/steadfast_clone" => {
            let service = steadfast_time_window().layer().layer(echo());
            paired(name, calls, || {
                let service = service.clone();
                move || assert!(black_box(call_cloned(&service, black_box(1)).is_ok()))
            });
        }
        "scaling/steadfast_static" => {
            let service = steadfast_time_window().leak().static_layer().layer(echo());
            paired(name, calls, || {
                let mut service = service.clone();
                move || assert!(black_box(call_once(&mut service, black_box(1)).is_ok()))
            });
        }
        "scaling/steadfast_static_clone" => {
            let service = steadfast_time_window().leak().static_layer().layer(echo());
            paired(name, calls, || {
                let service = service.clone();
                move || assert!(black_box(call_cloned(&service, black_box(1)).is_ok()))
            });
        }
        "scaling/recloser_sync" => {
            let recloser = Arc::new(recloser_closed());
            paired(name, calls, || {
                let recloser = &recloser;
                move || {
                    assert!(black_box(
                        recloser
                            .call(|| Ok::<u64, Infallible>(black_box(1)))
                            .is_ok()
                    ))
                }
            });
        }
        _ => return false,
    }
    true
}

/// The entries, as `driver/name`.
const ENTRIES: &[&str] = &[
    "by_hand/bare",
    "by_hand/steadfast",
    "by_hand/steadfast_static",
    "by_hand/steadfast_other_stripe",
    "by_hand/steadfast_keyed",
    "by_hand/recloser_sync",
    "by_hand/recloser_async",
    "by_hand/recloser_sync_service",
    "by_hand/recloser_async_service",
    "async/bare",
    "async/steadfast",
    "async/steadfast_static",
    "async/steadfast_keyed",
    "async/recloser_sync_service",
    "async/recloser_async_service",
    "clone/bare",
    "clone/steadfast",
    "clone/steadfast_static",
    "clone/steadfast_keyed",
    "clone/recloser_sync_service",
    "clone/recloser_async_service",
    "open/steadfast",
    "open/steadfast_static",
    "http/bare_served",
    "http/served",
    "http/refused_open",
    "http/refused_open_1h",
    "http/refused_forced_open",
    "scaling/steadfast",
    "scaling/steadfast_clone",
    "scaling/steadfast_static",
    "scaling/steadfast_static_clone",
    "scaling/recloser_sync",
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(n)) = (
        args.first().cloned(),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        println!("usage: breaker_icount <entry> <calls> [--thread] [--time]; entries:");
        for entry in ENTRIES {
            println!("  {entry}");
        }
        return;
    };
    let flag = |flag: &str| args[2..].iter().any(|arg| arg == flag);
    let started = std::time::Instant::now();
    if flag("--thread") {
        // Set up and run on a thread of its own rather than the main thread.
        std::thread::spawn(move || entry(&name, n))
            .join()
            .expect("thread");
    } else {
        entry(&name, n);
    }
    if flag("--time") {
        let elapsed = started.elapsed();
        println!(
            "{:.2} ns per call, setup included",
            elapsed.as_nanos() as f64 / n as f64
        );
    }
}

/// Sets up entry `name` and makes `n` calls through it.
fn entry(name: &str, n: u64) {
    let f = |x: u64| Ok::<u64, Infallible>(x);
    match name {
        "by_hand/bare" => {
            let mut service = echo();
            run(n, |i| call_once(&mut service, i).is_ok());
        }
        "by_hand/steadfast" => {
            let mut service = steadfast_time_window().layer().layer(echo());
            run(n, |i| call_once(&mut service, i).is_ok());
        }
        "by_hand/steadfast_static" => {
            let mut service = steadfast_time_window().leak().static_layer().layer(echo());
            run(n, |i| call_once(&mut service, i).is_ok());
        }
        "by_hand/steadfast_other_stripe" => {
            let mut service = steadfast_other_stripe();
            run(n, |i| call_once(&mut service, i).is_ok());
        }
        "by_hand/steadfast_keyed" => {
            let mut service = steadfast_keyed_echo();
            run(n, |i| call_once(&mut service, i).is_ok());
        }
        "by_hand/recloser_sync" => {
            let recloser = recloser_closed();
            run(n, |i| recloser.call(|| f(i)).is_ok());
        }
        "by_hand/recloser_async" => {
            let recloser = recloser::AsyncRecloser::from(recloser_closed());
            run(n, |i| poll_once(recloser.call(ready(f(i)))).is_ok());
        }
        "by_hand/recloser_sync_service" => {
            let mut service = recloser_sync_echo();
            run(n, |i| call_once(&mut service, i).is_ok());
        }
        "by_hand/recloser_async_service" => {
            let mut service = recloser_async_echo();
            run(n, |i| call_once(&mut service, i).is_ok());
        }
        "async/bare" => {
            let mut service = echo();
            run(n, |i| call_async(&mut service, i).is_ok());
        }
        "async/steadfast" => {
            let mut service = steadfast_time_window().layer().layer(echo());
            run(n, |i| call_async(&mut service, i).is_ok());
        }
        "async/steadfast_static" => {
            let mut service = steadfast_time_window().leak().static_layer().layer(echo());
            run(n, |i| call_async(&mut service, i).is_ok());
        }
        "async/steadfast_keyed" => {
            let mut service = steadfast_keyed_echo();
            run(n, |i| call_async(&mut service, i).is_ok());
        }
        "async/recloser_sync_service" => {
            let mut service = recloser_sync_echo();
            run(n, |i| call_async(&mut service, i).is_ok());
        }
        "async/recloser_async_service" => {
            let mut service = recloser_async_echo();
            run(n, |i| call_async(&mut service, i).is_ok());
        }
        "clone/bare" => {
            let service = echo();
            run(n, |i| call_cloned(&service, i).is_ok());
        }
        "clone/steadfast" => {
            let service = steadfast_time_window().layer().layer(echo());
            run(n, |i| call_cloned(&service, i).is_ok());
        }
        "clone/steadfast_static" => {
            let service = steadfast_time_window().leak().static_layer().layer(echo());
            run(n, |i| call_cloned(&service, i).is_ok());
        }
        "clone/steadfast_keyed" => {
            let service = steadfast_keyed_echo();
            run(n, |i| call_cloned(&service, i).is_ok());
        }
        "clone/recloser_sync_service" => {
            let service = recloser_sync_echo();
            run(n, |i| call_cloned(&service, i).is_ok());
        }
        "clone/recloser_async_service" => {
            let service = recloser_async_echo();
            run(n, |i| call_cloned(&service, i).is_ok());
        }
        "open/steadfast" => {
            let breaker = steadfast_trips_at_once();
            let mut service = breaker.layer().layer(flaky());
            assert!(call_once(&mut service, FAIL).is_err());
            run(n, |i| call_once(&mut service, i).is_err());
        }
        "open/steadfast_static" => {
            let breaker = steadfast_trips_at_once().leak();
            let mut service = breaker.static_layer().layer(flaky());
            assert!(call_once(&mut service, FAIL).is_err());
            run(n, |i| call_once(&mut service, i).is_err());
        }
        other => {
            if !http_entry(other, n) && !scaling(other, n) {
                eprintln!("unknown entry {other:?}");
                std::process::exit(2);
            }
        }
    }
}
