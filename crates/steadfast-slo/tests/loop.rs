//! The loop closing by itself: an outage fires the fast signal, the policy flips the switch,
//! the route degrades; recovery clears the signal and, after the hold time, the switch. Also
//! the events and metrics of a change, the recording layer, and configs from files.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use steadfast_core::{Clock, MockClock};
use steadfast_fallback::{Degrader, FallbackLayer, FallbackRequest, Source};
use steadfast_slo::{BudgetPolicy, Severity, Slo, SloEvent, SloEventKind, SloSet};
use tower::{service_fn, ServiceBuilder, ServiceExt};

fn saturday() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(20_778 * 86_400)
}

type Taken = Vec<(metrics_util::CompositeKey, DebugValue)>;

/// One snapshot of the recorder: taking it resets counters, so each check takes one whole.
fn take(snapshotter: &Snapshotter) -> Taken {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect()
}

fn value<'a>(taken: &'a Taken, name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
    taken
        .iter()
        .find(|(key, _)| {
            key.key().name() == name
                && labels
                    .iter()
                    .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map(|(_, value)| value)
}

/// Ten calls a second for `seconds`, `bad` of them failing, evaluating every second.
fn traffic(slo: &Slo, set: &SloSet, time: &MockClock, seconds: u64, bad: u64) {
    for _ in 0..seconds {
        for i in 0..10 {
            if i < bad {
                slo.bad();
            } else {
                slo.good();
            }
        }
        time.advance(Duration::from_secs(1));
        set.evaluate();
    }
}

#[tokio::test]
async fn an_outage_flips_the_switch_and_recovery_returns_it_after_the_hold_time() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (clock, time) = Clock::mock();
    let degrader = Degrader::new();
    let events = Arc::new(Mutex::new(Vec::<SloEvent>::new()));
    let (checkout, set) = metrics::with_local_recorder(&recorder, || {
        let checkout = Slo::builder("checkout")
            .clock(clock)
            .start_at(saturday())
            .build()
            .unwrap();
        let seen = events.clone();
        let set = SloSet::builder()
            .slo(checkout.clone())
            .policy(
                "checkout",
                // The fast signal alone: the 6 h one fires too, and stays until its 30-minute
                // window is clean.
                BudgetPolicy::new(&degrader, "recommendations", 1)
                    .on_signal("page_1h")
                    .hold(Duration::from_secs(600)),
            )
            .listener(move |e: &SloEvent| seen.lock().unwrap().push(e.clone()))
            .build()
            .unwrap();
        (checkout, set)
    });
    let switch = degrader.switch("recommendations").unwrap();
    let route = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(|_: FallbackRequest<()>| async {
                Ok::<_, Infallible>("popular items")
            })
            .switch(switch.clone(), 1),
        )
        .service(service_fn(|()| async { Ok::<_, Infallible>("for you") }));

    traffic(&checkout, &set, &time, 3600, 0);
    assert_eq!(route.clone().oneshot(()).await.unwrap(), "for you");

    // The outage. Each second, check whether the signal fired; the event, the gauge and the
    // flip must all be there after the very evaluation that saw it.
    let mut fired = None;
    for second in 1..=60u64 {
        traffic(&checkout, &set, &time, 1, 10);
        let fired_now = events.lock().unwrap().iter().any(|e| {
            matches!(&e.kind, SloEventKind::Fired { signal, severity: Severity::Page, .. } if signal == "page_1h")
        });
        if fired_now {
            fired = Some(second);
            break;
        }
    }
    let fired = fired.expect("the fast signal fired within a minute");
    assert!(fired <= 60);
    let taken = take(&snapshotter);
    assert_eq!(
        value(&taken, "steadfast_slo_signal", &[("signal", "page_1h")]),
        Some(&DebugValue::Gauge(1.0.into()))
    );
    assert_eq!(
        value(
            &taken,
            "steadfast_slo_signal_changes_total",
            &[("signal", "page_1h"), ("to", "firing")]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(switch.level(), 1, "the policy flipped the switch at once");
    let flip = degrader.history().into_iter().last().unwrap();
    assert_eq!(flip.flip.source(), Source::Budget);
    assert_eq!(flip.flip.who(), "slo:checkout");
    assert_eq!(route.clone().oneshot(()).await.unwrap(), "popular items");

    // Recovery: the signal clears within about five minutes; the switch waits out the hold
    // time (ten minutes from the flip).
    let mut cleared = None;
    for second in 1..=900u64 {
        traffic(&checkout, &set, &time, 1, 0);
        let cleared_now = events.lock().unwrap().iter().any(
            |e| matches!(&e.kind, SloEventKind::Cleared { signal, .. } if signal == "page_1h"),
        );
        if cleared_now && cleared.is_none() {
            cleared = Some(second);
            assert_eq!(switch.level(), 1, "held after the signal cleared");
        }
        if switch.level() == 0 {
            let cleared = cleared.expect("the switch returned before the signal cleared");
            assert!(second > cleared);
            // Ten minutes from the flip, to within the evaluation interval.
            assert!((599..=601).contains(&second), "returned after {second} s");
            assert_eq!(route.clone().oneshot(()).await.unwrap(), "for you");
            assert_eq!(
                value(
                    &take(&snapshotter),
                    "steadfast_slo_signal",
                    &[("signal", "page_1h")]
                ),
                Some(&DebugValue::Gauge(0.0.into()))
            );
            return;
        }
    }
    panic!("the switch never returned (signal cleared after {cleared:?} s)");
}

#[tokio::test]
async fn a_policy_leaves_a_switch_a_person_changed() {
    let (clock, time) = Clock::mock();
    let degrader = Degrader::new();
    let slo = Slo::builder("api")
        .clock(clock)
        .start_at(saturday())
        .build()
        .unwrap();
    let set = SloSet::builder()
        .slo(slo.clone())
        .policy(
            "api",
            BudgetPolicy::new(&degrader, "search", 2).hold(Duration::ZERO),
        )
        .build()
        .unwrap();
    traffic(&slo, &set, &time, 600, 10);
    assert_eq!(degrader.get("search").unwrap().level(), 2);
    degrader
        .set("search", 3, steadfast_fallback::Flip::new("alice", "worse"))
        .unwrap();
    traffic(&slo, &set, &time, 3600, 0);
    assert_eq!(
        degrader.get("search").unwrap().level(),
        3,
        "not undone by the policy"
    );
}

#[tokio::test]
async fn the_layer_times_calls_and_counts_dropped_ones_only_past_the_threshold() {
    use tower::Service;
    let (clock, time) = Clock::mock();
    let slo = Slo::builder("dependency")
        .latency_threshold(Duration::from_millis(100))
        .clock(clock)
        .start_at(saturday())
        .build()
        .unwrap();
    // A dependency that answers when told, or hangs.
    let mut service = ServiceBuilder::new().layer(slo.layer()).service(service_fn(
        |answer: Option<tokio::sync::oneshot::Receiver<()>>| async move {
            match answer {
                Some(answer) => answer.await.map_err(|_| "hung up"),
                None => std::future::pending().await,
            }
        },
    ));

    // Fast and slow successes: only the fast one is good.
    for ms in [50, 150] {
        let (done, answer) = tokio::sync::oneshot::channel();
        service.ready().await.unwrap();
        let call = service.call(Some(answer));
        time.advance(Duration::from_millis(ms));
        done.send(()).unwrap();
        call.await.unwrap();
    }
    // A hang the caller gave up on after 150 ms: bad. One given up on after 20 ms: nothing.
    for ms in [150, 20] {
        service.ready().await.unwrap();
        let call = service.call(None);
        time.advance(Duration::from_millis(ms));
        drop(call);
    }
    time.advance(Duration::from_secs(60));
    let report = slo.report();
    assert_eq!((report.good, report.total), (1, 3));
}

#[cfg(feature = "serde")]
#[test]
fn configs_load_and_bad_ones_say_where() {
    use steadfast_slo::config::SetConfig;
    let degrader = Degrader::new();
    let config = SetConfig::from_toml(
        r#"
        [[slo]]
        name = "checkout"
        service = "shop"
        objective = 0.995
        period = "week"
        downtime = { error_rate = 0.05, min_minutes = 3 }
        windows = [{ name = "fast", severity = "page", factor = 10.0, long = "30m", short = "3m" }]
        maintenance = [{ start = "2026-11-22T02:00:00Z", end = "2026-11-22T03:00:00Z" }]

        [[slo]]
        name = "cart"

        [[composite]]
        name = "flow"
        parts = [["checkout", 3.0], ["cart", 1.0]]

        [[policy]]
        slo = "checkout"
        switch = "recommendations"
        level = 2
        when = "fast"
        hold = "1m"
        "#,
    )
    .unwrap();
    let (clock, _time) = Clock::mock();
    let set = config.build_with(&degrader, &clock, saturday()).unwrap();
    let checkout = set.get("checkout").unwrap();
    assert_eq!(checkout.objective(), 0.995);
    assert_eq!(checkout.windows()[0].name, "fast");
    assert_eq!(checkout.report().period, "calendar week");
    assert_eq!(set.composites()[0].name, "flow");

    let typo = SetConfig::from_toml("[[slo]]\nname = \"x\"\nobjectiv = 0.9\n").unwrap_err();
    assert!(typo.to_string().contains("objectiv"), "{typo}");
    let percent = SetConfig::from_toml("[[slo]]\nname = \"x\"\nobjective = 99.9\n")
        .unwrap()
        .build(&degrader)
        .unwrap_err();
    assert!(percent.to_string().contains("0.999"), "{percent}");
    let period = SetConfig::from_toml("[[slo]]\nname = \"x\"\nperiod = \"fortnight\"\n")
        .unwrap()
        .build(&degrader)
        .unwrap_err();
    assert!(period.to_string().contains("fortnight"), "{period}");
    let unknown = SetConfig::from_json(
        r#"{"slo": [{"name": "a"}], "policy": [{"slo": "b", "switch": "s", "level": 1}]}"#,
    )
    .unwrap()
    .build(&degrader)
    .unwrap_err();
    assert!(unknown.to_string().contains("\"b\""), "{unknown}");
}

#[tokio::test]
async fn two_policies_on_one_switch_return_it_to_where_it_was() {
    let (clock, time) = Clock::mock();
    let degrader = Degrader::new();
    let build = |name: &str| {
        Slo::builder(name)
            .clock(clock.clone())
            .start_at(saturday())
            .build()
            .unwrap()
    };
    let (a, b) = (build("a"), build("b"));
    let set = SloSet::builder()
        .slo(a.clone())
        .slo(b.clone())
        .policy(
            "a",
            BudgetPolicy::new(&degrader, "shed", 1)
                .on_signal("page_1h")
                .hold(Duration::ZERO),
        )
        .policy(
            "b",
            BudgetPolicy::new(&degrader, "shed", 2)
                .on_signal("page_1h")
                .hold(Duration::ZERO),
        )
        .listener(|_: &SloEvent| panic!("a listener that panics must not stop the loop"))
        .build()
        .unwrap();
    let second = |a_bad: u64, b_bad: u64| {
        for i in 0..10 {
            if i < a_bad {
                a.bad()
            } else {
                a.good()
            }
            if i < b_bad {
                b.bad()
            } else {
                b.good()
            }
        }
        time.advance(Duration::from_secs(1));
        set.evaluate();
    };
    for _ in 0..3600 {
        second(0, 0);
    }
    // A burns first and raises the switch to 1; then B too, to 2.
    for _ in 0..120 {
        second(10, 0);
    }
    assert_eq!(degrader.get("shed").unwrap().level(), 1);
    for _ in 0..120 {
        second(10, 10);
    }
    assert_eq!(degrader.get("shed").unwrap().level(), 2);
    // A recovers first, then B: the switch goes back to 0, not to A's level.
    for _ in 0..900 {
        second(0, 10);
    }
    assert_eq!(degrader.get("shed").unwrap().level(), 2);
    for _ in 0..900 {
        second(0, 0);
    }
    assert_eq!(degrader.get("shed").unwrap().level(), 0);
}

#[test]
fn policies_that_could_never_act_are_refused() {
    let degrader = Degrader::new();
    let slo = Slo::builder("api").build().unwrap();
    let typo = SloSet::builder()
        .slo(slo.clone())
        .policy(
            "api",
            BudgetPolicy::new(&degrader, "shed", 1).on_signal("pgae_1h"),
        )
        .build()
        .unwrap_err();
    assert!(typo.to_string().contains("pgae_1h"), "{typo}");
    let zero = SloSet::builder()
        .slo(slo)
        .policy("api", BudgetPolicy::new(&degrader, "shed", 0))
        .build()
        .unwrap_err();
    assert!(zero.to_string().contains("level 0"), "{zero}");
    let both = Slo::builder("x")
        .latency_threshold(Duration::from_millis(1))
        .percentile(0.9, Duration::from_millis(1))
        .build()
        .unwrap_err();
    assert_eq!(both, steadfast_slo::ConfigError::Latency);
}

#[test]
fn a_zero_freeze_threshold_never_freezes_and_young_budgets_do_not() {
    let (clock, time) = Clock::mock();
    let never = Slo::builder("never")
        .freeze_below(0.0)
        .clock(clock.clone())
        .start_at(saturday())
        .build()
        .unwrap();
    let young = Slo::builder("young")
        .clock(clock)
        .start_at(saturday())
        .build()
        .unwrap();
    for slo in [&never, &young] {
        for _ in 0..10 {
            slo.bad();
        }
    }
    time.advance(Duration::from_secs(60));
    assert!(!never.report().freeze, "0 turns the freeze off");
    assert!(
        !young.report().freeze,
        "10 events at 99.9 % allow no bad one yet"
    );
    for _ in 0..2000 {
        young.good();
    }
    time.advance(Duration::from_secs(60));
    assert!(young.report().freeze, "2010 events allow 2; 10 spent");
}
