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
//!
//! The tour ends with a table of the chapters, each with the figure this run measured.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    // Real time since the tour started; part 5 stamps simulated time the same way (t+…).
    let at = move || format!("t+{:.3}s", started.elapsed().as_secs_f64());
    let mut summary = Summary::default();

    let breaker = CircuitBreaker::builder("inventory")
        .failure_rate(0.5)
        .minimum_calls(10)
        .time_window(Duration::from_secs(10), 10)
        .open_duration(Duration::from_millis(300))
        .backoff(2.0, Duration::from_secs(5))
        .half_open_probes(3)
        .listener(move |event: &Event<'_>| {
            if let EventKind::Transition { from, to } = event.kind {
                println!("   {}  ⚡ breaker {:?}: {from} → {to}", at(), event.breaker);
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

    println!("Steadfast tour: sixteen chapters in five parts, then a table of what each measured.");

    part("Part 1: a circuit breaker", "chapters 1 to 5, real time");
    println!("   Rules: open at ≥50% failures over ≥10 calls in 10 s; stay open 300 ms (doubling");
    println!("   when a probe fails, up to 5 s); close after 3 good probes.");
    // Every call the tour makes through this breaker, to set against what reached the dependency.
    let mut made = 0;

    chapter("1. Healthy");
    let outcomes = run(&mut service, 20).await;
    made += 20;
    println!(
        "   20 calls: {} ok, {} failed",
        outcomes.ok, outcomes.failed
    );
    describe(&breaker);
    summary.row(
        "1 breaker",
        "a healthy dependency",
        format!(
            "{} of 20 calls ok; breaker {}",
            outcomes.ok,
            breaker.state()
        ),
    );

    chapter("2. The dependency goes down");
    dependency.set_healthy(false);
    let before = dependency.calls();
    let mut calls = 0;
    while breaker.state() == State::Closed && calls < 1_000 {
        let _ = service.ready().await.unwrap().call(1).await;
        calls += 1;
    }
    made += calls;
    println!(
        "   the breaker opened after {calls} failed calls ({} reached the dependency)",
        dependency.calls() - before
    );
    describe(&breaker);
    let snapshot = breaker.snapshot();
    let first_wait = snapshot.retry_after;
    summary.row(
        "2 breaker",
        "the dependency goes down",
        format!(
            "{} after {calls} failed calls ({} of {} in the window)",
            snapshot.state, snapshot.failures, snapshot.calls
        ),
    );

    chapter("3. Open: refused at once, the dependency is spared");
    let before = dependency.calls();
    let refusing = Instant::now();
    let outcomes = run(&mut service, 10_000).await;
    made += 10_000;
    let per_call = refusing.elapsed() / 10_000;
    let reached = dependency.calls() - before;
    println!(
        "   10000 calls: {} refused in {per_call:?} each; {reached} reached the dependency",
        outcomes.refused,
    );
    if let Some(after) = outcomes.retry_after {
        println!("   the refusal says: retry in {after:?}");
    }
    summary.row(
        "3 breaker",
        "open: calls refused at once",
        format!(
            "{} of 10000 refused, {per_call:?} each; {reached} reached the dependency",
            outcomes.refused
        ),
    );

    chapter("4. Half-open while still down: the probe fails, the wait doubles");
    tokio::time::sleep(Duration::from_millis(320)).await;
    let outcomes = run(&mut service, 1).await;
    made += 1;
    println!("   probe: {} failed", outcomes.failed);
    describe(&breaker);
    summary.row(
        "4 breaker",
        "half-open: the probe fails",
        format!(
            "{} probe failed; next probe in {} (first wait {})",
            outcomes.failed,
            millis(breaker.snapshot().retry_after),
            millis(first_wait)
        ),
    );

    chapter("5. The dependency recovers: probes pass, the breaker closes");
    dependency.set_healthy(true);
    tokio::time::sleep(Duration::from_millis(620)).await;
    let outcomes = run(&mut service, 20).await;
    made += 20;
    println!(
        "   20 calls: {} ok, {} refused, {} failed",
        outcomes.ok, outcomes.refused, outcomes.failed
    );
    describe(&breaker);

    println!(
        "\n   The dependency saw {} of {made} calls; the breaker refused the rest without waiting on it.",
        dependency.calls()
    );
    summary.row(
        "5 breaker",
        "the dependency recovers",
        format!(
            "{}, {} of 20 ok; the dependency saw {} of {made} calls",
            breaker.state(),
            outcomes.ok,
            dependency.calls()
        ),
    );

    part(
        "Part 2: fallbacks and degradation switches",
        "chapters 6 to 8",
    );
    degrade(&mut summary).await;
    part("Part 3: idempotency keys", "chapters 9 and 10");
    charge_once(&mut summary).await;
    part("Part 4: a two-level cache", "chapters 11 to 13");
    keep_answering(&mut summary).await;
    part(
        "Part 5: SLOs and error budgets",
        "chapters 14 to 16, simulated time: an hour takes a moment",
    );
    close_the_loop(&mut summary).await;

    part("What each chapter measured", "this run's figures");
    summary.print();
}

/// Chapters 6 to 8: a route with a fallback and a degradation switch.
async fn degrade(summary: &mut Summary) {
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
    // Why each answer came from the fallback, in the order the reasons first appear.
    let mut reasons: Vec<(&str, usize)> = Vec::new();
    let mut tally = |reason: Option<&'static str>| {
        if let Some(reason) = reason {
            match reasons.iter_mut().find(|(seen, _)| *seen == reason) {
                Some((_, n)) => *n += 1,
                None => reasons.push((reason, 1)),
            }
        }
    };
    tally(show("healthy", call_route(&mut route).await));
    recommender.set_healthy(false);
    for _ in 0..4 {
        let response = call_route(&mut route).await;
        tally(show("down", response));
    }
    tally(show("down, breaker open", call_route(&mut route).await));
    println!("   breaker: {}", breaker.state());
    let fallbacks: usize = reasons.iter().map(|(_, n)| n).sum();
    let why: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    summary.row(
        "6 fallback",
        "the recommender fails",
        format!("{fallbacks} of 6 from the fallback: {}", why.join(", ")),
    );

    chapter("7. An operator sheds recommendations: the route degrades untouched");
    recommender.set_healthy(true);
    breaker.reset();
    degrader
        .set("recommendations", 1, Flip::new("alice", "flash sale"))
        .expect("a valid name");
    let before = recommender.calls();
    let mut switched = 0;
    for _ in 0..3 {
        let response = call_route(&mut route).await;
        switched += usize::from(show("switched", response) == Some("switch"));
    }
    let reached = recommender.calls() - before;
    println!("   the recommender saw {reached} calls while switched");
    summary.row(
        "7 switch",
        "an operator sheds the route",
        format!("{switched} of 3 from the fallback; {reached} reached the recommender"),
    );

    chapter("8. Flipped back: the real answers return");
    degrader
        .set("recommendations", 0, Flip::new("alice", "sale over"))
        .expect("a valid name");
    let before = recommender.calls();
    let real = show("recovered", call_route(&mut route).await).is_none();
    summary.row(
        "8 switch",
        "the switch goes back to 0",
        format!(
            "{} of 1 answer real; {} reached the recommender",
            usize::from(real),
            recommender.calls() - before
        ),
    );
}

/// Chapters 9 and 10: a payment route behind an idempotency key.
async fn charge_once(summary: &mut Summary) {
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
    // The answer as a line to print, and its status and replay mark for the summary.
    let answer = |response: Answer| async move {
        let replayed = response.headers().contains_key("idempotent-replayed");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes())
            .unwrap_or_default();
        let mark = if replayed { "  (replayed)" } else { "" };
        let line = format!("{status} {}{mark}", String::from_utf8_lossy(&body));
        (line, status, replayed)
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
    let (line, early_status, _) = answer(early).await;
    println!("   alice retries at once                  → {line}");
    let _ = first.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let retry = payments
        .clone()
        .oneshot(pay("alice"))
        .await
        .expect("infallible");
    let (line, _, replayed) = answer(retry).await;
    println!("   alice retries a little later           → {line}");
    let charged = charges.load(Ordering::SeqCst);
    println!("   the card network saw {charged} charge");
    summary.row(
        "9 idempotency",
        "a payment, retried",
        format!(
            "3 requests, {charged} charge; early retry {}, later one {}",
            early_status.as_u16(),
            if replayed { "replayed" } else { "not replayed" }
        ),
    );

    chapter("10. Another client with the same key gets its own receipt");
    let bob = payments
        .clone()
        .oneshot(pay("bob"))
        .await
        .expect("infallible");
    let (line, _, replayed) = answer(bob).await;
    println!("   bob POST /payments (key order-1001)     → {line}");
    let charged = charges.load(Ordering::SeqCst);
    println!(
        "   keys are scoped by the caller: bob is never shown alice's receipt ({charged} charges in all)"
    );
    summary.row(
        "10 idempotency",
        "same key, another caller",
        format!(
            "bob {}; 4 requests, {charged} charges",
            if replayed {
                "is shown alice's receipt"
            } else {
                "gets his own receipt"
            }
        ),
    );
}

/// Chapters 11 to 13: a product page's database behind a cache, then failing.
async fn keep_answering(summary: &mut Summary) {
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
    let stats = products.stats();
    summary.row(
        "11 cache",
        "1000 shoppers miss one key",
        format!(
            "{answered} answered by {} database query; {} misses, {} fresh hits",
            database.calls(),
            stats.misses,
            stats.fresh
        ),
    );

    chapter("12. The database fails: the last answer is served, stale and marked");
    tokio::time::sleep(Duration::from_millis(250)).await;
    database.set_healthy(false);
    let mut stale = 0;
    for _ in 0..3 {
        match products.get_with(42, loader(42)).await {
            Ok(answer) => {
                stale += usize::from(answer.is_stale());
                println!("   read sku 42 → {:?} [{}]", *answer, marked(&answer));
            }
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
    summary.row(
        "12 cache",
        "the database fails",
        format!(
            "{stale} of 3 reads stale; {} database queries in all, breaker {}",
            database.calls(),
            breaker.state()
        ),
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
    let reached = database.calls() - before;
    println!(
        "   1000 reads: {stale} answered stale in {per_read:.1?} each; {reached} reached the database"
    );
    println!("   tell the caller: a stale answer is one the cache chose to give rather than fail");
    summary.row(
        "13 cache",
        "its breaker is open",
        format!("{stale} of 1000 stale, {per_read:.1?} each; {reached} reached the database"),
    );
}

/// Chapters 14 to 16: an SLO whose budget policy flips a degradation switch by itself.
async fn close_the_loop(summary: &mut Summary) {
    use steadfast::core::Clock;
    use steadfast::fallback::Reasons;
    use steadfast::slo::{BudgetPolicy, Slo, SloEvent, SloEventKind, SloSet};

    // A simulated clock: the SLO's windows are minutes and hours.
    let (clock, time) = Clock::mock();
    let elapsed = Arc::new(AtomicUsize::new(0));
    let stamp = {
        let elapsed = elapsed.clone();
        move || sim_time(Some(elapsed.load(Ordering::SeqCst)))
    };
    // When page_1h fired and cleared, and when the switch moved: simulated seconds, for the
    // summary and to tell a signal that hovers at its threshold from one that keeps burning.
    let fires = Arc::new(Mutex::new(Vec::<usize>::new()));
    let clears = Arc::new(Mutex::new(Vec::<usize>::new()));
    let flips = Arc::new(Mutex::new(Vec::<(usize, u8)>::new()));
    let recommender = Dependency::default();
    recommender.set_healthy(true);
    let degrader = Degrader::new();
    degrader.listen({
        let stamp = stamp.clone();
        let (elapsed, flips) = (elapsed.clone(), flips.clone());
        move |event: &steadfast::fallback::FlipEvent| {
            let at = elapsed.load(Ordering::SeqCst);
            flips.lock().expect("not poisoned").push((at, event.to));
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
            let (elapsed, fires, clears) = (elapsed.clone(), fires.clone(), clears.clone());
            move |event: &SloEvent| {
                let at = elapsed.load(Ordering::SeqCst);
                match &event.kind {
                    SloEventKind::Fired { signal, long_rate, short_rate, .. } => {
                        if signal == "page_1h" {
                            fires.lock().expect("not poisoned").push(at);
                        }
                        println!(
                            "   {}  🔥 {signal} fires: the budget burns {long_rate:.1}× (long window), {short_rate:.1}× (short)",
                            stamp()
                        );
                    }
                    SloEventKind::Cleared { signal, .. } => {
                        if signal == "page_1h" {
                            clears.lock().expect("not poisoned").push(at);
                        }
                        println!("   {}  ✓ {signal} clears", stamp());
                    }
                    _ => {}
                }
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
    let first_fire = fires.lock().expect("not poisoned").first().copied();
    let flipped = flips
        .lock()
        .expect("not poisoned")
        .iter()
        .find(|(_, to)| *to > 0)
        .map(|(at, _)| *at);
    summary.row(
        "14 SLO",
        "the budget burns",
        format!(
            "page_1h {}, switch {}; {errors} calls failed in {seconds} s",
            sim_time(first_fire),
            sim_time(flipped)
        ),
    );

    chapter("15. The switch flipped itself: the route answers from its fallback, the burn stops");
    let before = recommender.calls();
    let failed = traffic(120).await;
    let reached = recommender.calls() - before;
    println!(
        "   two more minutes: {failed} calls failed; the recommender saw {reached} calls; {}",
        budget(&slo)
    );
    summary.row(
        "15 SLO",
        "the route on its fallback",
        format!("{failed} of 1200 calls failed; {reached} reached the recommender"),
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

    // page_1h may fire and clear again while the switch is on: with the errors over, its
    // hour-long burn rate sits near the factor, and each minute the window slides it crosses
    // back. The policy's hold is what keeps the switch from following it.
    let refired = fires.lock().expect("not poisoned").len().saturating_sub(1);
    let cleared = clears.lock().expect("not poisoned").len();
    if refired > 0 {
        let factor = slo
            .report()
            .signals
            .iter()
            .find(|signal| signal.name == "page_1h")
            .map_or(0.0, |signal| signal.factor);
        println!(
            "   (page_1h cleared {cleared}× and fired {refired}× more while switched: the hour's burn"
        );
        println!(
            "   hovered at its {factor}× factor as the window slid; the policy's hold kept the switch on)"
        );
    }

    let returned = flips
        .lock()
        .expect("not poisoned")
        .iter()
        .rev()
        .find(|(_, to)| *to == 0)
        .map(|(at, _)| *at);
    let report = slo.report();
    summary.row(
        "16 SLO",
        "the recommender recovers",
        format!(
            "switch back {}, {} after; {} of {} calls bad",
            sim_time(returned),
            match (flipped, returned) {
                (Some(on), Some(off)) => format!("{} s", off - on),
                _ => "never".to_owned(),
            },
            report.budget.spent,
            report.total
        ),
    );
}

/// Prints a route's answer and returns why it is degraded, if it is.
fn show(label: &str, response: Response<Bytes>) -> Option<&'static str> {
    let reason = response
        .extensions()
        .get::<Degraded>()
        .map(|degraded| degraded.reason().as_str());
    let marker = reason.map_or("real answer".to_owned(), |reason| {
        format!("degraded: {reason}")
    });
    println!(
        "   {label:<20} {} {:<44} [{marker}]",
        response.status(),
        String::from_utf8_lossy(response.body())
    );
    reason
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

/// A part's banner: what it shows, and which clock its time stamps read.
fn part(title: &str, note: &str) {
    let head = format!("━━ {title} ({note}) ");
    let rule = "━".repeat(96usize.saturating_sub(head.chars().count()));
    println!("\n\n{head}{rule}");
}

fn chapter(title: &str) {
    println!("\n── {title}");
}

/// A duration to the nearest millisecond, the way the timeline prints them.
fn millis(duration: Option<Duration>) -> String {
    duration.map_or("-".to_owned(), |d| {
        format!(
            "{:?}",
            Duration::from_millis((d.as_secs_f64() * 1000.0).round() as u64)
        )
    })
}

/// Simulated seconds as the SLO chapters stamp them.
fn sim_time(seconds: Option<usize>) -> String {
    seconds.map_or("never".to_owned(), |s| {
        format!("t+{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    })
}

/// The closing table: one row per chapter, from figures the chapters computed in this run.
#[derive(Default)]
struct Summary {
    rows: Vec<[String; 3]>,
}

impl Summary {
    fn row(&mut self, chapter: &str, happened: &str, measured: String) {
        self.rows
            .push([chapter.to_owned(), happened.to_owned(), measured]);
    }

    fn print(&self) {
        let header = ["chapter", "what happened", "measured in this run"];
        // Widths in characters: the cells hold `µ`, `→` and the like.
        let mut widths = header.map(|cell| cell.chars().count());
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: [&str; 3]| {
            println!(
                "   {:<w0$}  {:<w1$}  {}",
                cells[0],
                cells[1],
                cells[2],
                w0 = widths[0],
                w1 = widths[1]
            );
        };
        line(header);
        line(
            widths
                .map(|width| "─".repeat(width))
                .each_ref()
                .map(String::as_str),
        );
        for row in &self.rows {
            line(row.each_ref().map(String::as_str));
        }
    }
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
