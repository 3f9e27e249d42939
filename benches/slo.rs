//! Criterion benchmarks of recording into a Steadfast SLI, next to the counters and
//! histograms services commonly use for the same job.
//!
//! Run them all with `cargo bench -p steadfast-benches --bench slo`. `BENCHMARKS.md` at the
//! repository root holds results and explains how to read them.
//!
//! Every entry records the same stream of events: one failure in every 16, the rest successes
//! (and, for the entries with a time, latencies cycling through a fixed table of 1 024 values
//! spread from 1 ms to 1 s, about a sixth of them above the 300 ms threshold). Every SLO reads the
//! real coarse clock, as in production, so the first event of each minute on each stripe takes
//! the cold path that moves the previous minutes into the history; that cost is amortized into
//! the figures as it is in a service. No `metrics` recorder is installed globally, so the
//! SLOs' own exported metrics reach the no-op recorder (they are written on evaluation, never
//! per event).
//!
//! Groups:
//!
//! - `slo_record`: one event, single thread.
//!   - `steadfast/record`: `Slo::record` into an events SLI (good and total).
//!   - `steadfast/record_elapsed_threshold`: `Slo::record_elapsed` into an events SLI with a
//!     300 ms latency threshold (a slow success is bad).
//!   - `steadfast/record_latency`: `Slo::record_elapsed` into a latency SLI (p95 within
//!     300 ms): the event count and the minute's sketch.
//!   - `prometheus`: the prometheus crate's `IntCounterVec`s `slo_events_total{slo}` and
//!     `slo_errors_total{slo}`, label values resolved once to `IntCounter`s; one `inc` per
//!     event, a second on a failure.
//!   - `metrics`: the same two counters through the `metrics` facade, registered on
//!     metrics-exporter-prometheus's recorder (built, not installed: registered through
//!     `metrics::with_local_recorder`), incremented on the handles.
//!   - `prometheus_histogram`: a latency SLI as Prometheus users build one: a `Histogram` of
//!     seconds whose buckets include the 0.3 s threshold, `observe` per event.
//!   - `hdrhistogram`: `Histogram::<u64>::record` of nanoseconds, 2 significant digits (a
//!     bucket error near our sketch's); it needs `&mut`, so it has no multi-thread form.
//!   - `ddsketch`: sketches-ddsketch's `DDSketch::add` of seconds at 1 % relative accuracy
//!     (also `&mut`).
//!
//!   The latency peers record the time alone; `steadfast/record_latency` counts the event as
//!   well.
//! - `slo_scaling`: `steadfast/record`, `prometheus` and `metrics` as above, from 1 and from 2
//!   threads sharing one SLO (or one pair of counters), and `steadfast/layer`: calls through
//!   the layer of `slo_layer`, each thread on its own clone of the service. The estimate is
//!   wall-clock time per event over all threads and the throughput is events per second over
//!   all threads, so the 2-thread/1-thread throughput ratio reads straight off the report.
//! - `slo_layer`: one call through `ServiceBuilder::new().layer(slo.layer())` around a
//!   `service_fn` that answers at once (failing one request in 16), driven by hand as in
//!   `benches/breaker.rs` (`poll_ready`, `call`, one poll with a no-op waker), beside the bare
//!   service, for an events SLI, one with a latency threshold (the layer then reads the
//!   precise clock twice per call) and a latency SLI.

use std::future::{ready, Ready};
use std::hint::black_box;
use std::time::Duration;
use steadfast_benches::{call_once, parallel};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use steadfast::core::Outcome;
use steadfast::slo::Slo;
use tower::{service_fn, Service, ServiceBuilder};

/// The latency threshold of the threshold and latency SLIs.
const THRESHOLD: Duration = Duration::from_millis(300);

/// The outcome of event `i`: one failure in every 16.
#[inline(always)]
fn outcome(i: u32) -> Outcome {
    if i & 15 == 0 {
        Outcome::Failure
    } else {
        Outcome::Success
    }
}

/// The latencies the timed entries cycle through: 1 ms to 1 s, log-uniform, in a scrambled
/// order so that consecutive events rarely share a bucket.
fn latencies() -> Vec<Duration> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..1024)
        .map(|_| {
            // xorshift64: a fixed, portable sequence.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // The top 53 bits as a fraction in [0, 1); the cast is exact.
            #[allow(clippy::cast_precision_loss)]
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            Duration::from_secs_f64(1e-3 * 1e3f64.powf(unit))
        })
        .collect()
}

/// The event stream of one recorder: its outcomes and latencies, one event per `next`.
struct Events {
    i: u32,
    latencies: Vec<Duration>,
}

impl Events {
    fn new() -> Self {
        Self {
            i: 0,
            latencies: latencies(),
        }
    }

    /// The next event's outcome and latency.
    #[inline(always)]
    fn next(&mut self) -> (Outcome, Duration) {
        self.i = self.i.wrapping_add(1);
        let latency = self.latencies[self.i as usize & 1023];
        (outcome(self.i), latency)
    }
}

/// An events SLI: 99.9 % good over 30 days (the defaults).
fn events_slo() -> Slo {
    Slo::builder("bench").build().expect("valid config")
}

/// An events SLI where a success slower than [`THRESHOLD`] is bad too.
fn threshold_slo() -> Slo {
    Slo::builder("bench_threshold")
        .latency_threshold(THRESHOLD)
        .build()
        .expect("valid config")
}

/// A latency SLI: the p95 of each minute's calls within [`THRESHOLD`].
fn latency_slo() -> Slo {
    Slo::builder("bench_latency")
        .percentile(0.95, THRESHOLD)
        .build()
        .expect("valid config")
}

/// The prometheus crate's pair of counters, registered in a registry of their own, with the
/// label values resolved once.
fn prometheus_counters() -> (prometheus::IntCounter, prometheus::IntCounter) {
    let registry = prometheus::Registry::new();
    let make = |name: &str, help: &str| {
        let vec = prometheus::IntCounterVec::new(prometheus::Opts::new(name, help), &["slo"])
            .expect("valid counter");
        registry
            .register(Box::new(vec.clone()))
            .expect("registered once");
        vec.with_label_values(&["bench"])
    };
    let (total, errors) = (
        make("slo_events_total", "Events recorded."),
        make("slo_errors_total", "Bad events recorded."),
    );
    // Checked before timing: 16 events, one of them bad.
    for i in 1..=16 {
        prometheus_event(&total, &errors, outcome(i));
    }
    assert_eq!((total.get(), errors.get()), (16, 1));
    (total, errors)
}

/// One event into the prometheus pair.
#[inline(always)]
fn prometheus_event(
    total: &prometheus::IntCounter,
    errors: &prometheus::IntCounter,
    outcome: Outcome,
) {
    total.inc();
    if outcome == Outcome::Failure {
        errors.inc();
    }
}

/// The same pair through the `metrics` facade, on metrics-exporter-prometheus's recorder.
///
/// The recorder is returned too: the handles stay valid without it, but keeping it alive
/// keeps the benchmark honest about what a service holds.
fn metrics_counters() -> (
    metrics_exporter_prometheus::PrometheusRecorder,
    metrics::Counter,
    metrics::Counter,
) {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let (events, errors) = metrics::with_local_recorder(&recorder, || {
        (
            metrics::counter!("slo_events_total", "slo" => "bench"),
            metrics::counter!("slo_errors_total", "slo" => "bench"),
        )
    });
    // Checked before timing: 16 events, one of them bad, in the text a scrape would get.
    for i in 1..=16 {
        metrics_event(&events, &errors, outcome(i));
    }
    let text = recorder.handle().render();
    assert_eq!(value_in(&text, "slo_events_total"), Some(16), "{text}");
    assert_eq!(value_in(&text, "slo_errors_total"), Some(1), "{text}");
    (recorder, events, errors)
}

/// One event into the `metrics` pair.
#[inline(always)]
fn metrics_event(total: &metrics::Counter, errors: &metrics::Counter, outcome: Outcome) {
    total.increment(1);
    if outcome == Outcome::Failure {
        errors.increment(1);
    }
}

/// A Prometheus histogram of seconds, as a latency SLI is usually built: buckets around the
/// threshold.
fn prometheus_histogram() -> prometheus::Histogram {
    prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("slo_latency_seconds", "Call latency.").buckets(vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]),
    )
    .expect("valid histogram")
}

/// The value of `name` in a Prometheus text rendering.
fn value_in(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Group `slo_record`.
fn slo_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("slo_record");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let slo = events_slo();
    let mut events = Events::new();
    group.bench_function("steadfast/record", |b| {
        b.iter(|| slo.record(black_box(events.next().0)))
    });

    let slo = threshold_slo();
    assert!(slo.times_calls());
    let mut events = Events::new();
    group.bench_function("steadfast/record_elapsed_threshold", |b| {
        b.iter(|| {
            let (outcome, latency) = events.next();
            slo.record_elapsed(black_box(outcome), black_box(latency));
        })
    });

    let slo = latency_slo();
    let mut events = Events::new();
    group.bench_function("steadfast/record_latency", |b| {
        b.iter(|| {
            let (outcome, latency) = events.next();
            slo.record_elapsed(black_box(outcome), black_box(latency));
        })
    });

    let (total, errors) = prometheus_counters();
    let mut events = Events::new();
    group.bench_function("prometheus", |b| {
        b.iter(|| prometheus_event(&total, &errors, black_box(events.next().0)))
    });

    let (_recorder, total, errors) = metrics_counters();
    let mut events = Events::new();
    group.bench_function("metrics", |b| {
        b.iter(|| metrics_event(&total, &errors, black_box(events.next().0)))
    });

    let histogram = prometheus_histogram();
    histogram.observe(0.25);
    assert_eq!(histogram.get_sample_count(), 1);
    let mut events = Events::new();
    group.bench_function("prometheus_histogram", |b| {
        b.iter(|| histogram.observe(black_box(events.next().1).as_secs_f64()))
    });

    // 1 ns to an hour, 2 significant digits.
    let mut hdr = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 2)
        .expect("valid bounds");
    hdr.record(250_000_000).expect("within bounds");
    assert_eq!(hdr.len(), 1);
    let mut events = Events::new();
    group.bench_function("hdrhistogram", |b| {
        b.iter(|| {
            let nanos = u64::try_from(black_box(events.next().1).as_nanos()).unwrap_or(u64::MAX);
            hdr.record(nanos).expect("within bounds");
        })
    });

    let mut sketch = sketches_ddsketch::DDSketch::new(sketches_ddsketch::Config::defaults());
    sketch.add(0.25);
    assert_eq!(sketch.count(), 1);
    let mut events = Events::new();
    group.bench_function("ddsketch", |b| {
        b.iter(|| sketch.add(black_box(events.next().1).as_secs_f64()))
    });

    group.finish();
}

/// Group `slo_scaling`.
fn slo_scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("slo_scaling");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .throughput(Throughput::Elements(1));

    // Each thread takes the next stripe when it first records, so two threads started
    // together write two different cache lines.
    let slo = events_slo();
    at_1_and_2(&mut group, "steadfast/record", || {
        let slo = &slo;
        let mut i = 0u32;
        move || {
            i = i.wrapping_add(1);
            slo.record(black_box(outcome(i)));
        }
    });

    // The same events through the layer, each thread calling its own clone of the service
    // (as a server's worker does): what the layer writes per call shows in the ratio.
    let service = ServiceBuilder::new()
        .layer(events_slo().layer())
        .service(echo());
    at_1_and_2(&mut group, "steadfast/layer", || {
        let mut service = service.clone();
        let mut request = 0u64;
        move || {
            request = request.wrapping_add(1);
            black_box(call_once(&mut service, black_box(request)).is_ok());
        }
    });

    let (total, errors) = prometheus_counters();
    at_1_and_2(&mut group, "prometheus", || {
        let (total, errors) = (&total, &errors);
        let mut i = 0u32;
        move || {
            i = i.wrapping_add(1);
            prometheus_event(total, errors, black_box(outcome(i)));
        }
    });

    let (_recorder, total, errors) = metrics_counters();
    at_1_and_2(&mut group, "metrics", || {
        let (total, errors) = (&total, &errors);
        let mut i = 0u32;
        move || {
            i = i.wrapping_add(1);
            metrics_event(total, errors, black_box(outcome(i)));
        }
    });
    group.finish();
}

/// Benchmarks `name` driven by 1 and then 2 threads, each running the work `make` gives it.
fn at_1_and_2<W: FnMut()>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    make: impl Fn() -> W + Sync,
) {
    for n in [1, 2] {
        group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
            b.iter_custom(|iters| parallel(n, iters, &make));
        });
    }
}

/// The inner service of `slo_layer`: answers at once, failing one request in 16.
fn echo(
) -> impl Service<u64, Response = u64, Error = &'static str, Future = Ready<Result<u64, &'static str>>>
       + Clone {
    service_fn(|x: u64| {
        ready(if x & 15 == 0 {
            Err("down")
        } else {
            Ok::<u64, &'static str>(x)
        })
    })
}

/// Group `slo_layer`.
fn slo_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("slo_layer");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    let mut service = echo();
    let mut request = 0u64;
    group.bench_function("bare", |b| {
        b.iter(|| {
            request = request.wrapping_add(1);
            black_box(call_once(&mut service, black_box(request)).is_ok())
        })
    });

    for (name, slo) in [
        ("steadfast", events_slo()),
        ("steadfast_threshold", threshold_slo()),
        ("steadfast_latency", latency_slo()),
    ] {
        let mut service = ServiceBuilder::new().layer(slo.layer()).service(echo());
        let mut request = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                request = request.wrapping_add(1);
                black_box(call_once(&mut service, black_box(request)).is_ok())
            })
        });
    }

    group.finish();
}

criterion_group!(benches, slo_record, slo_scaling, slo_layer);
criterion_main!(benches);
