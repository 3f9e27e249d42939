//! The tour: a flaky dependency, and a circuit breaker that keeps its caller standing.
//!
//! Run it with `cargo run --example tour`. It needs no server: the dependency is an
//! in-process service that fails on cue. The timeline shows the breaker trip on failures,
//! refuse calls while open (the dependency sees none of them), probe, back off when the probe
//! fails, and close once the dependency is back. Then a route degrades: its fallback answers
//! (marked) while the dependency is down, and an operator's switch sheds it on purpose without
//! touching the dependency. A payment retried after a timeout is charged once. Last, a product
//! page's database slows and fails behind a cache: a thousand shoppers make one query, and the
//! last answer is served, marked stale, while the database fails and while its breaker is open.
//! Finally the SRE loop closes by itself: a failing recommender burns the error budget, the
//! fast burn-rate signal fires within a minute, a budget policy flips the degradation switch,
//! the burn stops, and once the recommender is back and the hold time has passed, the switch
//! returns. That part runs on a simulated clock, so an hour takes a moment.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use steadfast::breaker::{CircuitBreaker, Event, EventKind, State};
use steadfast::fallback::{Degraded, Degrader, FallbackLayer, FallbackRequest, Flip};
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

    degrade().await;
    charge_once().await;
    keep_answering().await;
    close_the_loop().await;
}

/// Chapters 6 to 8: a route with a fallback and a degradation switch.
async fn degrade() {
    let recommender = Dependency::default();
    recommender.set_healthy(true);
    let breaker = CircuitBreaker::builder("recommender")
        .failure_rate(0.5)
        .minimum_calls(4)
        .open_duration(Duration::from_secs(30))
        .build()
        .expect("a valid config");
    let degrader = Degrader::new();
    degrader.listen(|event: &steadfast::fallback::FlipEvent| {
        println!(
            "   ⚑ switch {:?}: level {} → {} by {} ({})",
            event.switch,
            event.from,
            event.to,
            event.flip.who(),
            event.flip.why()
        );
    });

    // Outermost first: fallback → breaker → the dependency.
    let mut route = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(
                |request: FallbackRequest<http::request::Parts>| async move {
                    let body = format!("[] (no recommendations for {})", request.kept.uri.path());
                    Ok::<_, Infallible>(Response::new(Bytes::from(body)))
                },
            )
            .http()
            .header(true)
            .switch(degrader.switch("recommendations").expect("a valid name"), 1),
        )
        .layer(breaker.layer().http())
        .service({
            let recommender = recommender.clone();
            service_fn(move |_: Request<()>| {
                let recommender = recommender.clone();
                async move {
                    recommender.calls.fetch_add(1, Ordering::SeqCst);
                    let response = if recommender.healthy.load(Ordering::SeqCst) {
                        Response::new(Bytes::from_static(b"[\"socks\", \"boots\"]"))
                    } else {
                        let mut response = Response::new(Bytes::from_static(b"recommender down"));
                        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                        response
                    };
                    Ok::<_, Infallible>(response)
                }
            })
        });

    chapter("6. The recommender fails: the fallback answers, marked");
    show("healthy", call_route(&mut route).await);
    recommender.set_healthy(false);
    for _ in 0..4 {
        let response = call_route(&mut route).await;
        show("down", response);
    }
    show("down, breaker open", call_route(&mut route).await);
    println!("   breaker: {}", breaker.state());

    chapter("7. An operator sheds recommendations: the route degrades untouched");
    recommender.set_healthy(true);
    breaker.reset();
    degrader
        .set("recommendations", 1, Flip::new("alice", "flash sale"))
        .expect("a valid name");
    let before = recommender.calls();
    for _ in 0..3 {
        let response = call_route(&mut route).await;
        show("switched", response);
    }
    println!(
        "   the recommender saw {} calls while switched",
        recommender.calls() - before
    );

    chapter("8. Flipped back: the real answers return");
    degrader
        .set("recommendations", 0, Flip::new("alice", "sale over"))
        .expect("a valid name");
    show("recovered", call_route(&mut route).await);
}

/// Chapters 9 and 10: a payment route behind an idempotency key.
async fn charge_once() {
    use http_body_util::BodyExt;
    use steadfast::idempotency::http::{IdempotencyBody, IdempotencyLayer};
    use steadfast::idempotency::Idempotency;

    let charges = Arc::new(AtomicUsize::new(0));
    let payments = ServiceBuilder::new()
        .layer(
            IdempotencyLayer::new(Idempotency::in_memory())
                // Keys are scoped by the caller: here a header an auth layer would have checked.
                .scope(|head: &http::request::Parts| {
                    head.headers
                        .get("x-customer")
                        .and_then(|customer| customer.to_str().ok())
                        .map(str::to_owned)
                }),
        )
        .service({
            let charges = charges.clone();
            service_fn(move |request: Request<http_body_util::Full<Bytes>>| {
                let charges = charges.clone();
                async move {
                    // The card network is slow today.
                    tokio::time::sleep(Duration::from_millis(120)).await;
                    let n = charges.fetch_add(1, Ordering::SeqCst) + 1;
                    let customer = request.headers()["x-customer"]
                        .to_str()
                        .unwrap_or("?")
                        .to_owned();
                    let mut response = Response::new(http_body_util::Full::new(Bytes::from(
                        format!("receipt #{n} for {customer}: 10.00 EUR"),
                    )));
                    *response.status_mut() = StatusCode::CREATED;
                    Ok::<_, Infallible>(response)
                }
            })
        });
    let pay = |customer: &str| {
        Request::post("/payments")
            .header("x-customer", customer)
            .header("idempotency-key", "\"order-1001\"")
            .body(http_body_util::Full::new(Bytes::from_static(b"10.00 EUR")))
            .expect("a valid request")
    };
    type Answer = Response<IdempotencyBody<http_body_util::Full<Bytes>>>;
    let answer = |response: Answer| async move {
        let replayed = response.headers().contains_key("idempotent-replayed");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes())
            .unwrap_or_default();
        let replayed = if replayed { "  (replayed)" } else { "" };
        format!("{status} {}{replayed}", String::from_utf8_lossy(&body))
    };

    chapter("9. A client times out on a payment and retries: charged once");
    // The server goes on after the client gives up: the answer is lost on the way back.
    let first = tokio::spawn(payments.clone().oneshot(pay("alice")));
    println!("   alice POST /payments (key order-1001)   … no answer within 50 ms, gives up");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let early = payments
        .clone()
        .oneshot(pay("alice"))
        .await
        .expect("infallible");
    println!(
        "   alice retries at once                  → {}",
        answer(early).await
    );
    let _ = first.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let retry = payments
        .clone()
        .oneshot(pay("alice"))
        .await
        .expect("infallible");
    println!(
        "   alice retries a little later           → {}",
        answer(retry).await
    );
    println!(
        "   the card network saw {} charge",
        charges.load(Ordering::SeqCst)
    );

    chapter("10. Another client with the same key gets its own receipt");
    let bob = payments
        .clone()
        .oneshot(pay("bob"))
        .await
        .expect("infallible");
    println!(
        "   bob POST /payments (key order-1001)     → {}",
        answer(bob).await
    );
    println!(
        "   keys are scoped by the caller: bob is never shown alice's receipt ({} charges in all)",
        charges.load(Ordering::SeqCst)
    );
}

/// Chapters 11 to 13: a product page's database behind a cache, then failing.
async fn keep_answering() {
    use steadfast::cache::{Cached, Stale, Status, TieredCache};

    let database = Dependency::default();
    database.set_healthy(true);
    let breaker = CircuitBreaker::builder("catalog-db")
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(30))
        .build()
        .expect("a valid config");
    // Outermost first: cache → breaker (with its call timeout) → the database. Boxed errors
    // let the cache tell the breaker's refusal from the database's own failure.
    let catalog = ServiceBuilder::new()
        .layer(
            breaker
                .layer()
                .boxed_errors()
                .timeout(Duration::from_millis(500)),
        )
        .service({
            let database = database.clone();
            service_fn(move |sku: u32| {
                let database = database.clone();
                async move {
                    database.calls.fetch_add(1, Ordering::SeqCst);
                    // The database is slow today.
                    tokio::time::sleep(Duration::from_millis(80)).await;
                    if database.healthy.load(Ordering::SeqCst) {
                        Ok(format!("sku {sku}: teapot, 12.00 EUR"))
                    } else {
                        Err("catalog: connection refused")
                    }
                }
            })
        });
    // Short times so the tour stays quick: fresh for 200 ms, then served stale for an hour
    // if the database cannot answer; after a failed load, the stale answer is given without
    // asking the database again for 50 ms.
    let products: TieredCache<u32, String> = TieredCache::builder("products")
        .ttl(Duration::from_millis(200))
        .stale_if_error(Duration::from_secs(3600))
        .retry_after_error(Duration::from_millis(50))
        .build()
        .expect("a valid config");
    let loader = |sku: u32| {
        let catalog = catalog.clone();
        move || catalog.oneshot(sku)
    };
    let marked = |answer: &Cached<String>| match answer.status() {
        Status::Fresh => format!("fresh, from {:?}", answer.source()),
        Status::Stale(Stale::Revalidating) => "stale: revalidating".to_owned(),
        Status::Stale(Stale::LoadFailed(reason)) => {
            format!("stale: load failed, {}", reason.as_str())
        }
    };

    chapter("11. The catalog database slows down: a thousand shoppers, one query");
    let started = Instant::now();
    let mut shoppers = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let (products, loader) = (products.clone(), loader(42));
        shoppers.spawn(async move { products.get_with(42, loader).await });
    }
    let (mut answered, mut last) = (0, None);
    while let Some(joined) = shoppers.join_next().await {
        if let Ok(Ok(answer)) = joined {
            answered += 1;
            last = Some(answer);
        }
    }
    if let Some(answer) = last {
        println!(
            "   1000 concurrent reads of sku 42 → {answered} answered {:?} [{}] in {:.0?}",
            *answer,
            marked(&answer),
            started.elapsed()
        );
    }
    println!(
        "   the database saw {} query: the others waited for its answer",
        database.calls()
    );

    chapter("12. The database fails: the last answer is served, stale and marked");
    tokio::time::sleep(Duration::from_millis(250)).await;
    database.set_healthy(false);
    for _ in 0..3 {
        match products.get_with(42, loader(42)).await {
            Ok(answer) => println!("   read sku 42 → {:?} [{}]", *answer, marked(&answer)),
            Err(error) => println!("   read sku 42 → failed: {error}"),
        }
        // Reads in between are answered stale at once; past the pause one tries again.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    println!(
        "   the database saw {} queries in all; its breaker is {}",
        database.calls(),
        breaker.state()
    );

    chapter("13. The breaker is open: still answered, and the database is left alone");
    let before = database.calls();
    let started = Instant::now();
    // The first read tries a load (the breaker refuses it at once); the rest are answered
    // from L1 while the pause after that failure lasts.
    let mut stale = 0;
    let mut last = None;
    for _ in 0..1000 {
        if let Ok(answer) = products.get_with(42, loader(42)).await {
            stale += usize::from(answer.is_stale());
            last = Some(answer);
        }
    }
    let per_read = started.elapsed() / 1000;
    if let Some(answer) = last {
        println!("   read sku 42 → {:?} [{}]", *answer, marked(&answer));
    }
    println!(
        "   1000 reads: {stale} answered stale in {per_read:.1?} each; {} reached the database",
        database.calls() - before
    );
    println!("   tell the caller: a stale answer is one the cache chose to give rather than fail");
}

/// Chapters 14 to 16: an SLO whose budget policy flips a degradation switch by itself.
async fn close_the_loop() {
    use steadfast::core::Clock;
    use steadfast::fallback::Reasons;
    use steadfast::slo::{BudgetPolicy, Slo, SloEvent, SloEventKind, SloSet};

    // A simulated clock: the SLO's windows are minutes and hours.
    let (clock, time) = Clock::mock();
    let elapsed = Arc::new(AtomicUsize::new(0));
    let stamp = {
        let elapsed = elapsed.clone();
        move || {
            let s = elapsed.load(Ordering::SeqCst);
            format!("t+{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        }
    };
    let recommender = Dependency::default();
    recommender.set_healthy(true);
    let degrader = Degrader::new();
    degrader.listen({
        let stamp = stamp.clone();
        move |event: &steadfast::fallback::FlipEvent| {
            println!(
                "   {}  ⚑ switch {:?}: level {} → {} by {} ({})",
                stamp(),
                event.switch,
                event.from,
                event.to,
                event.flip.who(),
                event.flip.why()
            );
        }
    });
    let slo = Slo::builder("recommendations")
        .objective(0.999)
        .clock(clock)
        .build()
        .expect("a valid SLO");
    let set = SloSet::builder()
        .slo(slo.clone())
        .policy(
            "recommendations",
            BudgetPolicy::new(&degrader, "recommendations", 1)
                .on_signal("page_1h")
                .hold(Duration::from_secs(600)),
        )
        .listener({
            let stamp = stamp.clone();
            move |event: &SloEvent| match &event.kind {
                SloEventKind::Fired { signal, long_rate, short_rate, .. } => println!(
                    "   {}  🔥 {signal} fires: the budget burns {long_rate:.1}× (long window), {short_rate:.1}× (short)",
                    stamp()
                ),
                SloEventKind::Cleared { signal, .. } => {
                    println!("   {}  ✓ {signal} clears", stamp());
                }
                _ => {}
            }
        })
        .build()
        .expect("a valid set");

    // Outermost first: SLI recording (what callers see) → fallback, only while switched → the
    // recommender.
    let route = ServiceBuilder::new()
        .layer(slo.layer())
        .layer(
            FallbackLayer::from_fn(|_: FallbackRequest<()>| async {
                Ok::<_, Infallible>("popular items".to_owned())
            })
            .on(Reasons::SWITCH)
            .switch(degrader.switch("recommendations").expect("a valid name"), 1),
        )
        .service({
            let recommender = recommender.clone();
            service_fn(move |()| {
                let recommender = recommender.clone();
                async move {
                    recommender.calls.fetch_add(1, Ordering::SeqCst);
                    if recommender.healthy.load(Ordering::SeqCst) {
                        Ok("for you: socks, boots".to_owned())
                    } else {
                        Err("recommender: 500")
                    }
                }
            })
        });
    // Ten requests a simulated second, the SLOs evaluated every second.
    let traffic = |seconds: usize| {
        let route = route.clone();
        let set = set.clone();
        let time = time.clone();
        let elapsed = elapsed.clone();
        async move {
            let mut errors = 0;
            for _ in 0..seconds {
                for _ in 0..10 {
                    if route.clone().oneshot(()).await.is_err() {
                        errors += 1;
                    }
                }
                time.advance(Duration::from_secs(1));
                elapsed.fetch_add(1, Ordering::SeqCst);
                set.evaluate();
            }
            errors
        }
    };
    let budget = |slo: &Slo| {
        let report = slo.report();
        format!(
            "{} of {} calls bad, where 99.9% allows {:.0} so far",
            report.budget.spent, report.total, report.budget.allowed
        )
    };

    chapter("14. The recommender fails: the budget burns, the fast signal fires within a minute");
    println!("   SLO: 99.9% of calls good over 30 days; policy: page_1h → switch to level 1, hold 10 min");
    traffic(3600).await;
    println!(
        "   {}  an hour of healthy traffic: {}",
        stamp(),
        budget(&slo)
    );
    recommender.set_healthy(false);
    println!("   {}  the recommender starts failing every call", stamp());
    let mut seconds = 0;
    let mut errors = 0;
    while degrader.get("recommendations").map_or(0, |s| s.level()) == 0 && seconds < 120 {
        errors += traffic(1).await;
        seconds += 1;
    }
    println!("   {seconds} s of outage, {errors} calls failed before the switch moved");

    chapter("15. The switch flipped itself: the route answers from its fallback, the burn stops");
    let before = recommender.calls();
    let failed = traffic(120).await;
    println!(
        "   two more minutes: {failed} calls failed; the recommender saw {} calls; {}",
        recommender.calls() - before,
        budget(&slo)
    );

    chapter("16. The recommender recovers: the signal clears, the switch returns after its hold");
    recommender.set_healthy(true);
    println!(
        "   {}  the recommender is back (the route does not know yet: it is switched)",
        stamp()
    );
    println!(
        "   (had it stayed down, the calls after the hold would burn again within seconds and"
    );
    println!(
        "   the switch would flip back for another hold: the hold is also the retry interval)"
    );
    let mut waited = 0;
    while degrader.get("recommendations").map_or(0, |s| s.level()) != 0 && waited < 1800 {
        traffic(1).await;
        waited += 1;
    }
    let answer = route
        .clone()
        .oneshot(())
        .await
        .expect("the recommender is back");
    println!(
        "   {}  the route answers {answer:?}; {}",
        stamp(),
        budget(&slo)
    );
}

fn show(label: &str, response: Response<Bytes>) {
    let marker = response
        .extensions()
        .get::<Degraded>()
        .map_or("real answer".to_owned(), |degraded| {
            format!("degraded: {}", degraded.reason().as_str())
        });
    println!(
        "   {label:<20} {} {:<44} [{marker}]",
        response.status(),
        String::from_utf8_lossy(response.body())
    );
}

async fn call_route<S>(route: &mut S) -> Response<Bytes>
where
    S: Service<Request<()>, Response = Response<Bytes>, Error = Infallible>,
{
    let request = Request::get("/recommendations")
        .body(())
        .expect("a valid request");
    match route.ready().await {
        Ok(ready) => match ready.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(never) => match never {},
    }
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
