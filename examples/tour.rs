//! The tour: a flaky dependency, and a circuit breaker that keeps its caller standing.
//!
//! Run it with `cargo run --example tour`. It needs no server: the dependency is an
//! in-process service that fails on cue. The timeline shows the breaker trip on failures,
//! refuse calls while open (the dependency sees none of them), probe, back off when the probe
//! fails, and close once the dependency is back.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use steadfast::breaker::{CircuitBreaker, Event, EventKind, State};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

/// The dependency: answers while healthy, fails while not, and counts what reaches it.
#[derive(Clone, Default)]
struct Dependency {
    healthy: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl Dependency {
    fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let at = move || format!("{:>7.3}s", started.elapsed().as_secs_f64());

    let breaker = CircuitBreaker::builder("inventory")
        .failure_rate(0.5)
        .minimum_calls(10)
        .time_window(Duration::from_secs(10), 10)
        .open_duration(Duration::from_millis(300))
        .backoff(2.0, Duration::from_secs(5))
        .half_open_probes(3)
        .listener(move |event: &Event<'_>| {
            if let EventKind::Transition { from, to } = event.kind {
                println!("{}  ⚡ breaker {:?}: {from} → {to}", at(), event.breaker);
            }
        })
        .build()
        .expect("a valid config");

    let dependency = Dependency::default();
    dependency.set_healthy(true);
    let mut service = ServiceBuilder::new().layer(breaker.layer()).service({
        let dependency = dependency.clone();
        service_fn(move |item: u32| {
            let dependency = dependency.clone();
            async move {
                dependency.calls.fetch_add(1, Ordering::SeqCst);
                if dependency.healthy.load(Ordering::SeqCst) {
                    Ok(format!("item {item}: 12 in stock"))
                } else {
                    Err("inventory: connection refused")
                }
            }
        })
    });

    println!("Steadfast tour: one dependency, one circuit breaker.\n");
    println!("Rules: open at ≥50% failures over ≥10 calls in 10 s; stay open 300 ms (doubling");
    println!("when a probe fails, up to 5 s); close after 3 good probes.\n");

    chapter("1. Healthy");
    let outcomes = run(&mut service, 20).await;
    println!("20 calls: {} ok, {} failed", outcomes.ok, outcomes.failed);
    describe(&breaker);

    chapter("2. The dependency goes down");
    dependency.set_healthy(false);
    let before = dependency.calls();
    let mut calls = 0;
    while breaker.state() == State::Closed && calls < 1_000 {
        let _ = service.ready().await.unwrap().call(1).await;
        calls += 1;
    }
    println!(
        "the breaker opened after {calls} failed calls ({} reached the dependency)",
        dependency.calls() - before
    );
    describe(&breaker);

    chapter("3. Open: refused at once, the dependency is spared");
    let before = dependency.calls();
    let refusing = Instant::now();
    let outcomes = run(&mut service, 10_000).await;
    let per_call = refusing.elapsed() / 10_000;
    println!(
        "10000 calls: {} refused in {per_call:?} each; {} reached the dependency",
        outcomes.refused,
        dependency.calls() - before
    );
    if let Some(after) = outcomes.retry_after {
        println!("the refusal says: retry in {after:?}");
    }

    chapter("4. Half-open while still down: the probe fails, the wait doubles");
    tokio::time::sleep(Duration::from_millis(320)).await;
    let outcomes = run(&mut service, 1).await;
    println!("probe: {} failed", outcomes.failed);
    describe(&breaker);

    chapter("5. The dependency recovers: probes pass, the breaker closes");
    dependency.set_healthy(true);
    tokio::time::sleep(Duration::from_millis(620)).await;
    let outcomes = run(&mut service, 20).await;
    println!(
        "20 calls: {} ok, {} refused, {} failed",
        outcomes.ok, outcomes.refused, outcomes.failed
    );
    describe(&breaker);

    println!(
        "\nThe dependency saw {} calls in all; the breaker refused the rest without waiting on it.",
        dependency.calls()
    );
}

#[derive(Default)]
struct Outcomes {
    ok: usize,
    failed: usize,
    refused: usize,
    retry_after: Option<Duration>,
}

async fn run<S>(service: &mut S, calls: usize) -> Outcomes
where
    S: Service<u32, Error = steadfast::breaker::Error<&'static str>>,
{
    let mut outcomes = Outcomes::default();
    for item in 0..calls {
        match service.ready().await.unwrap().call(item as u32).await {
            Ok(_) => outcomes.ok += 1,
            Err(error) => match error.rejected() {
                Some(rejected) => {
                    outcomes.refused += 1;
                    outcomes.retry_after = outcomes.retry_after.or(rejected.retry_after());
                }
                None => outcomes.failed += 1,
            },
        }
    }
    outcomes
}

fn chapter(title: &str) {
    println!("\n── {title}");
}

fn describe(breaker: &CircuitBreaker) {
    let snapshot = breaker.snapshot();
    let mut line = format!(
        "   state {}; window: {} calls, {} failed ({:.0}%)",
        snapshot.state,
        snapshot.calls,
        snapshot.failures,
        snapshot.failure_rate * 100.0
    );
    if let Some(after) = snapshot.retry_after {
        line.push_str(&format!("; probes in {after:?}"));
    }
    println!("{line}");
}
