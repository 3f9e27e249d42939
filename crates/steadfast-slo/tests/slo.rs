//! Budget and burn-rate maths against hand-computed cases, periods, maintenance, downtime,
//! latency SLIs, composites, memory over 30 simulated days, and bad definitions.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use steadfast_core::{Clock, MockClock, Outcome};
use steadfast_slo::{
    BurnWindow, Composite, ConfigError, Maintenance, Period, Severity, Slo, SloEvent, SloEventKind,
    SloSet,
};

const MINUTE: Duration = Duration::from_secs(60);

/// 2026-11-21 00:00 UTC, a Saturday.
fn saturday() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(20_778 * 86_400)
}

fn slo(name: &str, objective: f64) -> (steadfast_slo::SloBuilder, MockClock) {
    let (clock, time) = Clock::mock();
    (
        Slo::builder(name)
            .objective(objective)
            .clock(clock)
            .start_at(saturday()),
        time,
    )
}

fn record(slo: &Slo, good: u64, bad: u64) {
    for _ in 0..good {
        slo.record(Outcome::Success);
    }
    for _ in 0..bad {
        slo.record(Outcome::Failure);
    }
}

fn rate(report: &steadfast_slo::SloReport, window: &str) -> f64 {
    report
        .burn_rates
        .iter()
        .find(|r| r.window == window)
        .unwrap_or_else(|| panic!("no window {window}"))
        .rate
}

#[test]
fn budget_and_burn_rates_by_hand() {
    let (builder, time) = slo("checkout", 0.999);
    let checkout = builder.build().unwrap();
    // Ten minutes of 1000 events with 2 bad: an error ratio of 0.2 %, twice the 0.1 % the
    // objective allows, so every window burns at 2.
    for _ in 0..10 {
        record(&checkout, 998, 2);
        time.advance(MINUTE);
    }
    let report = checkout.report();
    assert_eq!((report.total, report.good), (10_000, 9_980));
    assert!((report.budget.allowed - 10.0).abs() < 1e-9);
    assert_eq!(report.budget.spent, 20);
    assert!((report.budget.remaining_events + 10.0).abs() < 1e-9);
    assert!(
        (report.budget.remaining + 1.0).abs() < 1e-9,
        "overspent by the whole budget"
    );
    assert!((report.attained.unwrap() - 0.998).abs() < 1e-12);
    for window in ["5m", "30m", "1h", "6h"] {
        assert!((rate(&report, window) - 2.0).abs() < 1e-9, "{window}");
    }
    // The 5-minute window holds the last five minutes (the current one is empty).
    let five = report.burn_rates.iter().find(|r| r.window == "5m").unwrap();
    assert_eq!((five.total, five.bad), (4_000, 8));
    assert!(report.freeze, "a spent budget freezes deploys");
    assert!(report
        .signals
        .iter()
        .all(|s| s.severity == Severity::Ticket || !s.firing));
    let ticket = report
        .signals
        .iter()
        .find(|s| s.name == "ticket_3d")
        .unwrap();
    assert!(ticket.firing, "a burn of 2 passes the 1x ticket signal");
}

#[test]
fn an_outage_fires_the_fast_signal_within_a_minute_and_clears_when_it_stops() {
    let (builder, time) = slo("checkout", 0.999);
    let checkout = builder.build().unwrap();
    let events = Arc::new(Mutex::new(Vec::<SloEvent>::new()));
    let seen = events.clone();
    let set = SloSet::builder()
        .slo(checkout.clone())
        .listener(move |event: &SloEvent| seen.lock().unwrap().push(event.clone()))
        .build()
        .unwrap();

    // An hour of healthy traffic: 10 calls a second.
    for _ in 0..3600 {
        record(&checkout, 10, 0);
        time.advance(Duration::from_secs(1));
        set.evaluate();
    }
    assert!(events.lock().unwrap().is_empty());

    // The outage: every call fails. 14.4 x 0.1 % = 1.44 % of the hour's calls must fail
    // before the 1 h window burns at 14.4: 52 seconds at the same rate.
    let mut fired_after = None;
    for second in 1..=120u64 {
        record(&checkout, 0, 10);
        time.advance(Duration::from_secs(1));
        set.evaluate();
        if fired_after.is_none()
            && events.lock().unwrap().iter().any(
                |e| matches!(&e.kind, SloEventKind::Fired { signal, .. } if signal == "page_1h"),
            )
        {
            fired_after = Some(second);
        }
    }
    let fired_after = fired_after.expect("page_1h never fired");
    assert!(
        (50..=60).contains(&fired_after),
        "fired after {fired_after} s"
    );

    // Recovery: the 5-minute window stops burning once errors are under 1.44 % of it.
    let mut cleared_after = None;
    for second in 1..=600u64 {
        record(&checkout, 10, 0);
        time.advance(Duration::from_secs(1));
        set.evaluate();
        if cleared_after.is_none()
            && events.lock().unwrap().iter().any(
                |e| matches!(&e.kind, SloEventKind::Cleared { signal, .. } if signal == "page_1h"),
            )
        {
            cleared_after = Some(second);
        }
    }
    let cleared_after = cleared_after.expect("page_1h never cleared");
    // The outage's two minutes leave the 5-minute window (whole minutes, plus the current
    // one) within about five minutes.
    assert!(
        (240..=360).contains(&cleared_after),
        "cleared after {cleared_after} s"
    );
    let report = checkout.report();
    assert!(!report
        .signals
        .iter()
        .any(|s| s.name == "page_1h" && s.firing));
}

#[test]
fn a_calendar_month_starts_over_on_the_first() {
    let (clock, time) = Clock::mock();
    // 2026-11-30 23:58 UTC.
    let start = UNIX_EPOCH + Duration::from_secs((20_787 * 1440 + 23 * 60 + 58) * 60);
    let monthly = Slo::builder("monthly")
        .objective(0.99)
        .period(Period::Month)
        .clock(clock)
        .start_at(start)
        .build()
        .unwrap();
    record(&monthly, 90, 10);
    time.advance(MINUTE);
    assert_eq!(monthly.report().total, 100);
    time.advance(MINUTE);
    // December: November's events are not in this period.
    record(&monthly, 5, 0);
    let report = monthly.report();
    assert_eq!((report.total, report.good), (5, 5));
    assert_eq!(report.period, "calendar month");
}

#[test]
fn a_calendar_week_starts_on_monday() {
    let (clock, time) = Clock::mock();
    let weekly = Slo::builder("weekly")
        .period(Period::Week)
        .clock(clock)
        .start_at(saturday())
        .build()
        .unwrap();
    record(&weekly, 10, 0);
    // Sunday 23:59 still counts them; Monday 00:00 starts over.
    time.advance(Duration::from_secs(2 * 86_400 - 60));
    assert_eq!(weekly.report().total, 10);
    time.advance(MINUTE);
    assert_eq!(weekly.report().total, 0);
}

#[test]
fn a_rolling_period_forgets_what_left_it() {
    let (builder, time) = slo("daily", 0.99);
    let daily = builder.period(Period::days(1)).build().unwrap();
    record(&daily, 50, 50);
    time.advance(Duration::from_secs(12 * 3600));
    record(&daily, 100, 0);
    time.advance(MINUTE);
    assert_eq!(daily.report().total, 200);
    time.advance(Duration::from_secs(12 * 3600));
    let report = daily.report();
    assert_eq!((report.total, report.budget.spent), (100, 0));
}

#[test]
fn maintenance_is_neither_good_nor_bad() {
    let (builder, time) = slo("orders", 0.99);
    let start = saturday() + Duration::from_secs(10 * 60);
    let orders = builder
        .maintenance(Maintenance::new(start, start + Duration::from_secs(30 * 60)).unwrap())
        .downtime(0.5, 1)
        .build()
        .unwrap();
    for minute in 0..60 {
        // Down hard during the maintenance window (minutes 10 to 39).
        if (10..40).contains(&minute) {
            record(&orders, 0, 100);
        } else {
            record(&orders, 100, 0);
        }
        time.advance(MINUTE);
    }
    time.advance(3 * MINUTE);
    let report = orders.report();
    assert_eq!((report.total, report.budget.spent), (3_000, 0));
    let downtime = report.downtime.unwrap();
    assert_eq!(downtime.down_minutes, 0);
    // At minute 63, minutes settle two minutes on: 0 to 61 are judged, 62 minutes less 30 in
    // maintenance.
    assert_eq!(downtime.up_minutes, 32);
}

#[test]
fn downtime_minutes_count_in_runs() {
    let (builder, time) = slo("api", 0.99);
    let api = builder.downtime(0.05, 3).build().unwrap();
    // Minutes 5-6 fail (a run of 2: not counted); minutes 20-25 fail (6: counted); one minute
    // at 4 % errors is under the 5 % threshold.
    for minute in 0..40 {
        let bad = match minute {
            5 | 6 | 20..=25 => 50,
            30 => 4,
            _ => 0,
        };
        record(&api, 100 - bad, bad);
        time.advance(MINUTE);
    }
    time.advance(3 * MINUTE);
    let downtime = api.report().downtime.unwrap();
    assert_eq!(downtime.down_minutes, 6);
    // At minute 43, minutes 0 to 41 are judged.
    assert_eq!(downtime.up_minutes, 42 - 6);
}

#[test]
fn a_latency_sli_matches_exact_percentiles_within_the_sketch_error() {
    let (builder, time) = slo("search_p95", 0.9);
    let search = builder
        .percentile(0.95, Duration::from_millis(300))
        .build()
        .unwrap();
    // Minute 0: latencies 1..=1000 ms, p95 = 950 ms (bad). Minute 1: 1..=200 ms (good).
    let mut all = Vec::new();
    for ms in 1..=1000u64 {
        search.record_elapsed(Outcome::Success, Duration::from_millis(ms));
        all.push(ms);
    }
    time.advance(MINUTE);
    for ms in 1..=200u64 {
        search.record_elapsed(Outcome::Success, Duration::from_millis(ms));
        all.push(ms);
    }
    time.advance(3 * MINUTE);
    let report = search.report();
    assert_eq!(report.kind, "latency");
    assert_eq!(
        (report.total, report.good),
        (2, 1),
        "one good minute of two"
    );
    all.sort_unstable();
    let rank = (0.95 * all.len() as f64).ceil() as usize;
    let exact = Duration::from_millis(all[rank - 1]).as_secs_f64();
    let read = report.latency.unwrap().last_5m.unwrap().as_secs_f64();
    assert!(
        (read - exact).abs() / exact <= steadfast_slo::sketch::RELATIVE_ERROR,
        "p95 read {read}, exact {exact}"
    );
}

#[test]
fn a_latency_threshold_makes_slow_successes_bad() {
    let (builder, time) = slo("fast", 0.99);
    let fast = builder
        .latency_threshold(Duration::from_millis(100))
        .build()
        .unwrap();
    fast.record_elapsed(Outcome::Success, Duration::from_millis(50));
    fast.record_elapsed(Outcome::Success, Duration::from_millis(150));
    fast.record_elapsed(Outcome::Failure, Duration::from_millis(10));
    fast.record_elapsed(Outcome::Ignored, Duration::from_millis(500));
    time.advance(MINUTE);
    let report = fast.report();
    assert_eq!((report.good, report.total), (1, 3));
}

#[test]
fn composites_blend_by_weight() {
    let (clock, time) = Clock::mock();
    let make = |name: &str, objective| {
        Slo::builder(name)
            .objective(objective)
            .clock(clock.clone())
            .start_at(saturday())
            .build()
            .unwrap()
    };
    let cart = make("cart", 0.99);
    let payment = make("payment", 0.999);
    record(&cart, 980, 20); // 98 %
    record(&payment, 999, 1); // 99.9 %
    time.advance(MINUTE);
    let set = SloSet::builder()
        .slo(cart)
        .slo(payment)
        .composite(
            Composite::new("flow")
                .part("cart", 1.0)
                .part("payment", 3.0),
        )
        .build()
        .unwrap();
    let flow = &set.composites()[0];
    // Objective 0.25 x 0.99 + 0.75 x 0.999 = 0.99675; attained 0.25 x 0.98 + 0.75 x 0.999
    // = 0.99425; budget left 1 - 0.00575 / 0.00325.
    assert!((flow.objective - 0.99675).abs() < 1e-12);
    assert!((flow.attained.unwrap() - 0.99425).abs() < 1e-12);
    assert!((flow.budget_remaining - (1.0 - 0.00575 / 0.00325)).abs() < 1e-9);
}

#[test]
fn memory_stays_bounded_over_thirty_simulated_days() {
    let (builder, time) = slo("busy", 0.999);
    let busy = builder
        .downtime(0.1, 2)
        .percentile(0.99, Duration::from_millis(200))
        .build()
        .unwrap();
    let set = SloSet::builder().slo(busy.clone()).build().unwrap();
    let mut after_first_day = 0;
    for minute in 0..30 * 1440u64 {
        for i in 0..20u64 {
            let ms = 1 + (minute * 7 + i * 13) % 400;
            busy.record_elapsed(
                if (minute + i) % 97 == 0 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                },
                Duration::from_millis(ms),
            );
        }
        time.advance(MINUTE);
        if minute % 10 == 0 {
            set.evaluate();
        }
        if minute == 1440 {
            after_first_day = busy.memory_bytes();
        }
    }
    let end = busy.memory_bytes();
    assert_eq!(
        end, after_first_day,
        "memory grew from {after_first_day} to {end}"
    );
    assert!(end < 4 << 20, "{end} bytes");
    let report = busy.report();
    assert!(report.total > 40_000, "{}", report.total);
}

#[test]
fn bad_definitions_are_refused_with_a_clear_error() {
    let err = |builder: steadfast_slo::SloBuilder| builder.build().unwrap_err();
    assert_eq!(
        err(Slo::builder("x").objective(99.9)),
        ConfigError::Objective(99.9)
    );
    assert!(matches!(
        err(Slo::builder("bad name")),
        ConfigError::Name(_)
    ));
    assert!(matches!(err(Slo::builder("")), ConfigError::Name(_)));
    assert_eq!(
        err(Slo::builder("x").period(Period::days(0))),
        ConfigError::Period
    );
    assert_eq!(
        err(Slo::builder("x").period(Period::days(365))),
        ConfigError::Period
    );
    let backwards = BurnWindow::new("w", Severity::Page, 2.0, MINUTE, 2 * MINUTE);
    assert!(matches!(
        err(Slo::builder("x").windows(vec![backwards])),
        ConfigError::Window(_)
    ));
    let nan = BurnWindow::new("w", Severity::Page, f64::NAN, 2 * MINUTE, MINUTE);
    assert!(matches!(
        err(Slo::builder("x").windows(vec![nan])),
        ConfigError::Window(_)
    ));
    assert_eq!(
        err(Slo::builder("x").percentile(1.5, MINUTE)),
        ConfigError::Latency
    );
    assert_eq!(
        err(Slo::builder("x").downtime(1.0, 3)),
        ConfigError::Downtime
    );
    assert_eq!(
        err(Slo::builder("x").freeze_below(2.0)),
        ConfigError::Freeze(2.0)
    );
    let a = Slo::builder("a").build().unwrap();
    let duplicate = SloSet::builder().slo(a.clone()).slo(a).build().unwrap_err();
    assert_eq!(duplicate, ConfigError::Duplicate("a".into()));
    let unknown = SloSet::builder()
        .composite(Composite::new("c").part("nope", 1.0))
        .build()
        .unwrap_err();
    assert_eq!(unknown, ConfigError::UnknownSlo("nope".into()));
    assert!(ConfigError::Objective(99.9).to_string().contains("0.999"));
}
