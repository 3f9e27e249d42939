//! State transitions on a mock clock: every rule, every state, every edge.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast_breaker::{CircuitBreaker, Event, EventKind, Rejected, State};
use steadfast_core::{Clock, MockClock, Outcome};

fn breaker(
    configure: impl FnOnce(steadfast_breaker::Builder) -> steadfast_breaker::Builder,
) -> (CircuitBreaker, MockClock) {
    let (clock, time) = Clock::mock();
    // Start the mock away from zero so "open until" times are not trivially small.
    time.advance(Duration::from_secs(1000));
    let breaker = configure(CircuitBreaker::builder("test").clock(clock))
        .build()
        .unwrap();
    (breaker, time)
}

fn succeed(breaker: &CircuitBreaker) {
    breaker.try_acquire().expect("admitted").success();
}

fn fail(breaker: &CircuitBreaker) {
    breaker.try_acquire().expect("admitted").failure();
}

fn refused(breaker: &CircuitBreaker) -> Rejected {
    breaker.try_acquire().map(|_| ()).expect_err("refused")
}

#[test]
fn failure_rate_trips_only_over_the_minimum() {
    let (breaker, _time) = breaker(|b| b.failure_rate(0.5).minimum_calls(10));
    for _ in 0..5 {
        succeed(&breaker);
    }
    for _ in 0..4 {
        fail(&breaker);
    }
    // Nine calls, four failed: under the minimum, whatever the rate.
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker);
    // Ten calls, five failed: 50%.
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn failures_slide_out_of_the_time_window() {
    let (breaker, time) = breaker(|b| {
        b.failure_rate(0.5)
            .minimum_calls(4)
            .time_window(Duration::from_secs(10), 10)
    });
    fail(&breaker);
    fail(&breaker);
    fail(&breaker);
    time.advance(Duration::from_secs(11));
    // The three failures are gone: this is one failure in one call, under the minimum.
    fail(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    let snapshot = breaker.snapshot();
    assert_eq!((snapshot.calls, snapshot.failures), (1, 1));
    fail(&breaker);
    fail(&breaker);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn count_window_trips() {
    let (breaker, _time) = breaker(|b| b.failure_rate(0.3).minimum_calls(10).count_window(10));
    for _ in 0..20 {
        succeed(&breaker);
    }
    for _ in 0..2 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker);
    // The last ten calls hold three failures.
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn consecutive_failures_reset_on_success() {
    let (breaker, _time) = breaker(|b| b.no_failure_rate().consecutive_failures(3));
    fail(&breaker);
    fail(&breaker);
    succeed(&breaker);
    fail(&breaker);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().consecutive_failures, 2);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn slow_calls_trip_and_are_reported() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let (breaker, time) = breaker(|b| {
        b.no_failure_rate()
            .slow_calls(Duration::from_millis(500), 0.5)
            .minimum_calls(4)
            .listener(move |event: &Event<'_>| seen.lock().unwrap().push(event.kind))
    });
    for slow in [false, true, false] {
        let permit = breaker.try_acquire().unwrap();
        time.advance(Duration::from_millis(if slow { 600 } else { 10 }));
        permit.success();
    }
    assert_eq!(breaker.state(), State::Closed);
    let permit = breaker.try_acquire().unwrap();
    time.advance(Duration::from_millis(500));
    permit.success();
    assert_eq!(breaker.state(), State::Open);
    let events = events.lock().unwrap();
    let slow = events
        .iter()
        .filter(|kind| matches!(kind, EventKind::SlowCall { .. }))
        .count();
    assert_eq!(slow, 2);
    assert!(events.contains(&EventKind::Transition {
        from: State::Closed,
        to: State::Open
    }));
}

#[test]
fn open_half_open_closed() {
    let (breaker, time) = breaker(|b| {
        b.no_failure_rate()
            .consecutive_failures(2)
            .open_duration(Duration::from_secs(30))
            .half_open_probes(2)
    });
    fail(&breaker);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        refused(&breaker).retry_after(),
        Some(Duration::from_secs(30))
    );

    time.advance(Duration::from_secs(12));
    let rejected = refused(&breaker);
    assert_eq!(rejected.state(), State::Open);
    assert_eq!(rejected.retry_after(), Some(Duration::from_secs(18)));
    assert_eq!(
        breaker.snapshot().retry_after,
        Some(Duration::from_secs(18))
    );

    time.advance(Duration::from_secs(18));
    let first = breaker.try_acquire().expect("first probe");
    assert_eq!(breaker.state(), State::HalfOpen);
    let second = breaker.try_acquire().expect("second probe");
    let third = refused(&breaker);
    assert_eq!(third.state(), State::HalfOpen);
    assert_eq!(breaker.snapshot().probes, Some((2, 0)));
    first.success();
    assert_eq!(breaker.state(), State::HalfOpen);
    second.success();
    assert_eq!(breaker.state(), State::Closed);
    // Closing starts from an empty window.
    let snapshot = breaker.snapshot();
    assert_eq!((snapshot.calls, snapshot.consecutive_failures), (0, 0));
}

#[test]
fn failed_probe_reopens_with_backoff_then_closing_resets_it() {
    let (breaker, time) = breaker(|b| {
        b.no_failure_rate()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(10))
            .backoff(2.0, Duration::from_secs(35))
            .half_open_probes(1)
    });
    fail(&breaker);
    let mut expected = [10, 20, 35, 35].into_iter();
    let mut wait = expected.next().unwrap();
    assert_eq!(
        refused(&breaker).retry_after(),
        Some(Duration::from_secs(wait))
    );
    for next in expected {
        time.advance(Duration::from_secs(wait));
        fail(&breaker); // the probe fails
        assert_eq!(breaker.state(), State::Open);
        wait = next;
        assert_eq!(
            refused(&breaker).retry_after(),
            Some(Duration::from_secs(wait))
        );
    }
    time.advance(Duration::from_secs(wait));
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker);
    assert_eq!(
        refused(&breaker).retry_after(),
        Some(Duration::from_secs(10))
    );
}

#[test]
fn jitter_stays_within_its_fraction() {
    for _ in 0..50 {
        let (breaker, _time) = breaker(|b| {
            b.no_failure_rate()
                .consecutive_failures(1)
                .open_duration(Duration::from_secs(100))
                .jitter(0.2)
        });
        fail(&breaker);
        let wait = refused(&breaker).retry_after().unwrap();
        assert!(
            (Duration::from_secs(80)..=Duration::from_secs(120)).contains(&wait),
            "{wait:?}"
        );
    }
}

#[test]
fn half_open_gives_up_after_its_cap() {
    let (breaker, time) = breaker(|b| {
        b.no_failure_rate()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(5))
            .half_open_probes(1)
            .max_half_open(Some(Duration::from_secs(20)))
    });
    fail(&breaker);
    time.advance(Duration::from_secs(5));
    let hung = breaker.try_acquire().expect("probe");
    time.advance(Duration::from_secs(19));
    assert_eq!(refused(&breaker).state(), State::HalfOpen);
    time.advance(Duration::from_secs(1));
    // The probe never answered: half-open gives up and opens again, for a longer period
    // only if backoff is configured.
    assert_eq!(refused(&breaker).state(), State::Open);
    assert_eq!(breaker.state(), State::Open);
    // The hung probe's late answer belongs to a period that is over.
    hung.success();
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn dropped_and_ignored_probes_free_their_slot() {
    let (breaker, time) = breaker(|b| {
        b.no_failure_rate()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(5))
            .half_open_probes(1)
    });
    fail(&breaker);
    time.advance(Duration::from_secs(5));
    drop(breaker.try_acquire().expect("probe"));
    let probe = breaker.try_acquire().expect("slot freed by the drop");
    probe.record(Outcome::Ignored);
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn stale_outcomes_do_not_cross_transitions() {
    let (breaker, time) = breaker(|b| {
        b.no_failure_rate()
            .consecutive_failures(2)
            .open_duration(Duration::from_secs(5))
            .half_open_probes(1)
    });
    let slow_caller = breaker.try_acquire().unwrap();
    fail(&breaker);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
    time.advance(Duration::from_secs(5));
    let probe = breaker.try_acquire().unwrap();
    // A call admitted while closed fails during half-open: it must not reopen the breaker.
    slow_caller.failure();
    assert_eq!(breaker.state(), State::HalfOpen);
    probe.success();
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn manual_states() {
    let (breaker, _time) = breaker(|b| b.no_failure_rate().consecutive_failures(1));

    breaker.force_open();
    let rejected = refused(&breaker);
    assert_eq!(rejected.state(), State::ForcedOpen);
    assert_eq!(rejected.retry_after(), None);

    breaker.disable();
    for _ in 0..10 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::Disabled);
    assert_eq!(breaker.snapshot().calls, 0);

    breaker.metrics_only();
    for _ in 0..10 {
        fail(&breaker);
    }
    assert_eq!(breaker.state(), State::MetricsOnly);
    assert_eq!(breaker.snapshot().failures, 10);

    breaker.reset();
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().calls, 0);
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn listener_sees_the_whole_cycle() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let (breaker, time) = breaker(|b| {
        b.no_failure_rate()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(1))
            .half_open_probes(1)
            .listener(move |event: &Event<'_>| {
                assert_eq!(event.breaker, "test");
                seen.lock().unwrap().push(event.kind);
            })
    });
    fail(&breaker);
    let _ = refused(&breaker);
    time.advance(Duration::from_secs(1));
    succeed(&breaker);
    let transition = |from, to| EventKind::Transition { from, to };
    assert_eq!(
        *events.lock().unwrap(),
        vec![
            transition(State::Closed, State::Open),
            EventKind::Rejected { state: State::Open },
            transition(State::Open, State::HalfOpen),
            transition(State::HalfOpen, State::Closed),
        ]
    );
}

#[test]
fn ignored_outcomes_are_not_counted() {
    let (breaker, _time) = breaker(|b| b.failure_rate(0.5).minimum_calls(2));
    for _ in 0..10 {
        breaker.try_acquire().unwrap().record(Outcome::Ignored);
    }
    assert_eq!(breaker.snapshot().calls, 0);
}

#[test]
fn invalid_config_is_an_error_not_a_panic() {
    let error = CircuitBreaker::builder("bad")
        .failure_rate(-1.0)
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("failure_rate"), "{error}");
    assert!(CircuitBreaker::builder("bad")
        .half_open_probes(0)
        .build()
        .is_err());
}

#[test]
fn metrics_are_exported() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let (breaker, _time) = breaker(|b| b.no_failure_rate().consecutive_failures(1));
        fail(&breaker);
        let _ = refused(&breaker);
        let _ = refused(&breaker);
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str| {
        snapshot
            .iter()
            .find(|(key, ..)| key.key().name() == name)
            .map(|(_, _, _, value)| value)
    };
    assert_eq!(
        find("steadfast_breaker_rejected_total"),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        find("steadfast_breaker_transitions_total"),
        Some(&DebugValue::Counter(1))
    );
    assert!(matches!(
        find("steadfast_breaker_state"),
        Some(DebugValue::Gauge(value)) if value.into_inner() == 1.0
    ));
}

#[test]
fn probes_still_admitted_after_a_million_manual_transitions() {
    let (breaker, time) = breaker(|b| {
        b.no_failure_rate()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(1))
            .half_open_probes(1)
    });
    fail(&breaker);
    time.advance(Duration::from_secs(1));
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);
    // More transitions than half the generation space, none of them through half-open.
    for _ in 0..(1 << 20) + 3 {
        breaker.disable();
    }
    breaker.reset();
    fail(&breaker);
    time.advance(Duration::from_secs(1));
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn a_clock_beyond_forty_bits_of_milliseconds_still_works() {
    let (breaker, time) = breaker(|b| {
        b.no_failure_rate()
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(5))
            .half_open_probes(1)
    });
    // Past 2^40 ms, where the state word's time wraps.
    time.advance(Duration::from_secs(35 * 365 * 24 * 3600));
    let (done, finished) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        fail(&breaker);
        assert_eq!(
            refused(&breaker).retry_after(),
            Some(Duration::from_secs(5))
        );
        time.advance(Duration::from_secs(5));
        succeed(&breaker);
        assert_eq!(breaker.state(), State::Closed);
        done.send(()).unwrap();
    });
    // A livelock would hang the test; fail it instead.
    finished
        .recv_timeout(Duration::from_secs(10))
        .expect("admission returned");
    worker.join().unwrap();
}
