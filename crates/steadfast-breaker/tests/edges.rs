//! The edges of the state machine: thresholds met exactly, the half-open cap kept, reads that
//! tell the truth without a call, idempotent manual controls, the controls peers have, and the
//! period counter's bound.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use steadfast_breaker::{CircuitBreaker, Event, EventKind, OpenContext, Rejected, State};
use steadfast_core::{Clock, MockClock, Outcome};

fn make(
    configure: impl FnOnce(steadfast_breaker::Builder) -> steadfast_breaker::Builder,
) -> (CircuitBreaker, MockClock) {
    let (clock, time) = Clock::mock();
    time.advance(Duration::from_secs(1000));
    let breaker = configure(CircuitBreaker::builder("edges").clock(clock))
        .build()
        .unwrap();
    (breaker, time)
}

type Log = Arc<Mutex<Vec<(State, State)>>>;

/// A breaker whose transitions land in a shared log.
fn logged(
    configure: impl FnOnce(steadfast_breaker::Builder) -> steadfast_breaker::Builder,
) -> (CircuitBreaker, MockClock, Log) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    let (breaker, time) = make(|b| {
        configure(b.listener(move |event: &Event<'_>| {
            if let EventKind::Transition { from, to } = event.kind {
                sink.lock().unwrap().push((from, to));
            }
        }))
    });
    (breaker, time, log)
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

/// The cases the issue names, through a real breaker: a rate equal to its threshold trips,
/// and one call fewer does not.
#[test]
fn rates_exactly_at_the_threshold_trip() {
    for (failures, calls, rate) in [
        (55, 100, 0.55),
        (7, 100, 0.07),
        (7, 25, 0.28),
        (1, 3, 1.0 / 3.0),
    ] {
        let (breaker, _time) = make(|b| {
            b.failure_rate(rate)
                .minimum_calls(calls)
                .count_window(calls)
        });
        for _ in 0..calls - failures {
            succeed(&breaker);
        }
        for _ in 0..failures - 1 {
            fail(&breaker);
        }
        assert_eq!(
            breaker.state(),
            State::Closed,
            "{failures}/{calls} at {rate}, one short"
        );
        fail(&breaker);
        assert_eq!(breaker.state(), State::Open, "{failures}/{calls} at {rate}");
    }
    // The slow-call rate the same way: 7 of 25 slow at 0.28.
    let (breaker, time) = make(|b| {
        b.no_failure_rate()
            .slow_calls(Duration::from_millis(100), 0.28)
            .minimum_calls(25)
            .count_window(25)
    });
    for _ in 0..18 {
        succeed(&breaker);
    }
    for slow in 0..7 {
        assert_eq!(breaker.state(), State::Closed, "{slow} slow calls");
        let permit = breaker.try_acquire().unwrap();
        time.advance(Duration::from_millis(100));
        permit.success();
    }
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn reads_show_half_open_once_the_open_period_passes() {
    let (breaker, time, log) = logged(|b| {
        b.consecutive_failures(1)
            .open_duration(Duration::from_secs(5))
    });
    fail(&breaker);
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(breaker.snapshot().retry_after, Some(Duration::from_secs(5)));
    time.advance(Duration::from_millis(4_999));
    assert_eq!(breaker.state(), State::Open);
    time.advance(Duration::from_millis(1));
    // No call has come: the read still says a probe is due.
    assert_eq!(breaker.state(), State::HalfOpen);
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.state, State::HalfOpen);
    assert_eq!(snapshot.retry_after, None);
    assert_eq!(snapshot.probes, Some((0, 0)));
    // Reading did not start a half-open period (a status page must not start probing).
    assert_eq!(*log.lock().unwrap(), vec![(State::Closed, State::Open)]);
    succeed(&breaker);
    assert_eq!(
        log.lock().unwrap().last(),
        Some(&(State::Open, State::HalfOpen))
    );
}

#[test]
fn the_half_open_cap_is_kept_without_a_call() {
    let (breaker, time, log) = logged(|b| {
        b.consecutive_failures(1)
            .open_duration(Duration::from_secs(5))
            .half_open_probes(2)
            .max_half_open(Some(Duration::from_secs(10)))
    });
    fail(&breaker);
    time.advance(Duration::from_secs(5));
    let probe = breaker.try_acquire().expect("a probe");
    assert_eq!(breaker.state(), State::HalfOpen);
    time.advance(Duration::from_millis(9_999));
    assert_eq!(breaker.state(), State::HalfOpen);
    time.advance(Duration::from_millis(1));
    // The cap has passed and no call came: the breaker is open, and says so.
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(
        log.lock().unwrap().last(),
        Some(&(State::HalfOpen, State::Open))
    );
    // Its open period counts from the moment the cap passed.
    assert_eq!(breaker.snapshot().retry_after, Some(Duration::from_secs(5)));
    // The probe that outlived the cap cannot close it, nor count.
    probe.success();
    assert_eq!(breaker.state(), State::Open);
    refused(&breaker);
}

#[test]
fn a_probe_that_outlives_the_cap_cannot_close_the_breaker() {
    let (breaker, time) = make(|b| {
        b.consecutive_failures(1)
            .open_duration(Duration::from_secs(5))
            .half_open_probes(1)
            .max_half_open(Some(Duration::from_secs(10)))
    });
    fail(&breaker);
    time.advance(Duration::from_secs(5));
    let probe = breaker.try_acquire().expect("a probe");
    time.advance(Duration::from_secs(11));
    // Nobody read the state in between: the late success itself finds the cap passed.
    probe.success();
    assert_eq!(breaker.state(), State::Open);
    // The open period ran from the cap (15 s after the probe started), so 4 s are left.
    assert_eq!(breaker.snapshot().retry_after, Some(Duration::from_secs(4)));
}

#[test]
fn manual_controls_are_idempotent() {
    let (breaker, time, log) = logged(|b| b.consecutive_failures(3));
    let transitions = || log.lock().unwrap().len();

    // reset() on a closed breaker: no event, and the calls in flight still count.
    let in_flight = breaker.try_acquire().unwrap();
    fail(&breaker);
    breaker.reset();
    assert_eq!(transitions(), 0);
    assert_eq!(breaker.snapshot().failures, 1);
    in_flight.failure();
    assert_eq!(breaker.snapshot().failures, 2);

    for (set, state) in [
        (
            CircuitBreaker::force_open as fn(&CircuitBreaker),
            State::ForcedOpen,
        ),
        (CircuitBreaker::disable, State::Disabled),
        (CircuitBreaker::metrics_only, State::MetricsOnly),
        (CircuitBreaker::half_open, State::HalfOpen),
    ] {
        set(&breaker);
        let after_first = transitions();
        let in_flight = breaker.try_acquire().ok();
        set(&breaker);
        set(&breaker);
        assert_eq!(transitions(), after_first, "{state} again emitted an event");
        assert_eq!(breaker.state(), state);
        if state == State::MetricsOnly {
            // An outcome admitted before the repeated call still counts.
            let before = breaker.snapshot().calls;
            in_flight.unwrap().success();
            assert_eq!(breaker.snapshot().calls, before + 1);
        } else if state == State::HalfOpen {
            // The probe admitted before the repeat still belongs to the same period.
            assert_eq!(breaker.snapshot().probes, Some((1, 0)));
            drop(in_flight);
        }
    }

    // open_for on an open breaker moves its end without an event.
    breaker.open_for(Duration::from_secs(10));
    let opened = transitions();
    time.advance(Duration::from_secs(3));
    breaker.open_for(Duration::from_secs(10));
    assert_eq!(transitions(), opened);
    assert_eq!(
        breaker.snapshot().retry_after,
        Some(Duration::from_secs(10))
    );
}

#[test]
fn controls_peers_have() {
    // Open for a duration, then half-open as after a trip.
    let (breaker, time) = make(|b| b.consecutive_failures(3).half_open_probes(1));
    breaker.open_for(Duration::from_secs(2));
    assert_eq!(
        refused(&breaker).retry_after(),
        Some(Duration::from_secs(2))
    );
    time.advance(Duration::from_secs(2));
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);

    // Open until an instant (the real clock of `Instant`, measured against the breaker's).
    breaker.open_until(Instant::now() + Duration::from_secs(60));
    let wait = refused(&breaker).retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(58) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );

    // Half-open by hand.
    breaker.half_open();
    succeed(&breaker);
    assert_eq!(breaker.state(), State::Closed);

    // An initial state.
    let (open, _time) = breaker_with_initial(State::Open);
    assert_eq!(open.state(), State::Open);
    assert_eq!(refused(&open).retry_after(), Some(Duration::from_secs(30)));
    let (forced, _time) = breaker_with_initial(State::ForcedOpen);
    assert_eq!(refused(&forced).state(), State::ForcedOpen);
    let (half, _time) = breaker_with_initial(State::HalfOpen);
    assert_eq!(half.state(), State::HalfOpen);

    // An outcome with a duration measured elsewhere.
    let (timed, _time) = make(|b| {
        b.no_failure_rate()
            .slow_calls(Duration::from_secs(1), 1.0)
            .minimum_calls(1)
    });
    timed
        .try_acquire()
        .unwrap()
        .record_elapsed(Outcome::Success, Duration::from_millis(999));
    assert_eq!(timed.snapshot().slow_calls, 0);
    timed
        .try_acquire()
        .unwrap()
        .record_elapsed(Outcome::Success, Duration::from_secs(1));
    assert_eq!(timed.snapshot().slow_calls, 1);

    // Refused calls are counted in the snapshot.
    let (counted, _time) = make(|b| b.consecutive_failures(1));
    fail(&counted);
    for _ in 0..7 {
        refused(&counted);
    }
    assert_eq!(counted.snapshot().rejected, 7);

    // The config reads back.
    assert_eq!(counted.config().consecutive_failures, Some(1));
}

fn breaker_with_initial(state: State) -> (CircuitBreaker, MockClock) {
    make(|b| b.initial_state(state))
}

#[test]
fn half_open_refusals_carry_a_retry_hint() {
    let (breaker, time) = make(|b| {
        b.consecutive_failures(1)
            .half_open_probes(1)
            .max_half_open(Some(Duration::from_millis(400)))
    });
    fail(&breaker);
    time.advance(Duration::from_secs(30));
    let _probe = breaker.try_acquire().unwrap();
    let refusal = refused(&breaker);
    assert_eq!(refusal.state(), State::HalfOpen);
    // At most a second, and never past the half-open cap.
    assert_eq!(refusal.retry_after(), Some(Duration::from_millis(400)));
}

#[test]
fn open_durations_from_a_function() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let (breaker, time) = make(move |b| {
        b.consecutive_failures(1)
            .half_open_probes(1)
            .open_duration_fn(move |context: &OpenContext| {
                sink.lock()
                    .unwrap()
                    .push((context.from, context.failed_probes));
                Duration::from_secs(1 + u64::from(context.failed_probes) * 10)
            })
    });
    fail(&breaker);
    assert_eq!(
        refused(&breaker).retry_after(),
        Some(Duration::from_secs(1))
    );
    time.advance(Duration::from_secs(1));
    fail(&breaker); // the probe fails
    assert_eq!(
        refused(&breaker).retry_after(),
        Some(Duration::from_secs(11))
    );
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(State::Closed, 0), (State::HalfOpen, 1)]
    );
}

/// The period counter has 21 bits. An outcome held across fewer transitions than 2^21 is
/// dropped; held across exactly 2^21, it lands in the period it meets — the documented bound.
#[test]
fn the_period_counter_bound_is_as_documented() {
    let (breaker, _time) = make(|b| b.consecutive_failures(1_000));
    let cycles = |n: u32| {
        for _ in 0..n {
            breaker.force_open();
            breaker.reset();
        }
    };
    let held = breaker.try_acquire().unwrap();
    cycles((1 << 20) - 1);
    breaker.force_open();
    breaker.disable();
    breaker.reset(); // 2^21 - 1 transitions
    held.failure();
    assert_eq!(breaker.snapshot().failures, 0);

    let held = breaker.try_acquire().unwrap();
    cycles(1 << 20); // exactly 2^21 transitions
    held.failure();
    assert_eq!(breaker.snapshot().failures, 1);
}
