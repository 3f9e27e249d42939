//! The breaker against a plain reference model, on random sequences of calls, time and manual
//! steps (proptest).

use std::time::Duration;

use proptest::prelude::*;
use steadfast_breaker::{CircuitBreaker, State};
use steadfast_core::{Clock, Outcome};

#[derive(Clone, Debug)]
enum Op {
    Call(bool),
    Advance(u64),
    ForceOpen,
    Reset,
    HalfOpen,
    OpenFor(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<bool>().prop_map(Op::Call),
        3 => (1u64..3_000).prop_map(Op::Advance),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Reset),
        1 => Just(Op::HalfOpen),
        1 => (1u64..3_000).prop_map(Op::OpenFor),
    ]
}

/// What the breaker should do, written as plainly as possible.
#[derive(Debug)]
enum Model {
    Closed {
        in_a_row: u32,
    },
    Open {
        until_ms: u64,
    },
    HalfOpen {
        succeeded: u32,
        deadline_ms: Option<u64>,
    },
    ForcedOpen,
}

struct Rules {
    failures: u32,
    open_ms: u64,
    probes: u32,
    cap_ms: Option<u64>,
}

impl Model {
    fn half_open(now_ms: u64, rules: &Rules) -> Self {
        Model::HalfOpen {
            succeeded: 0,
            deadline_ms: rules.cap_ms.map(|cap| now_ms + cap),
        }
    }

    /// A half-open period past its cap is open, from the moment the cap passed.
    fn settle(&mut self, now_ms: u64, rules: &Rules) {
        if let Model::HalfOpen {
            deadline_ms: Some(deadline),
            ..
        } = *self
        {
            if now_ms >= deadline {
                *self = Model::Open {
                    until_ms: deadline + rules.open_ms,
                };
            }
        }
    }

    /// Applies one call: `Ok` if admitted, `Err` with the wait (when known) if refused.
    fn call(&mut self, now_ms: u64, failed: bool, rules: &Rules) -> Result<(), Option<u64>> {
        self.settle(now_ms, rules);
        if let Model::Open { until_ms } = *self {
            if now_ms < until_ms {
                return Err(Some(until_ms - now_ms));
            }
            *self = Model::half_open(now_ms, rules);
        }
        match self {
            Model::ForcedOpen => Err(None),
            Model::Open { .. } => unreachable!("moved to half-open above"),
            Model::Closed { in_a_row } => {
                if failed {
                    *in_a_row += 1;
                    if *in_a_row >= rules.failures {
                        *self = Model::Open {
                            until_ms: now_ms + rules.open_ms,
                        };
                    }
                } else {
                    *in_a_row = 0;
                }
                Ok(())
            }
            Model::HalfOpen { succeeded, .. } => {
                if failed {
                    *self = Model::Open {
                        until_ms: now_ms + rules.open_ms,
                    };
                } else {
                    *succeeded += 1;
                    if *succeeded >= rules.probes {
                        *self = Model::Closed { in_a_row: 0 };
                    }
                }
                Ok(())
            }
        }
    }

    /// The state a reader sees at `now_ms`: an open period that has passed reads as half-open.
    fn state(&mut self, now_ms: u64, rules: &Rules) -> State {
        self.settle(now_ms, rules);
        match self {
            Model::Closed { .. } => State::Closed,
            Model::Open { until_ms } if now_ms >= *until_ms => State::HalfOpen,
            Model::Open { .. } => State::Open,
            Model::HalfOpen { .. } => State::HalfOpen,
            Model::ForcedOpen => State::ForcedOpen,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn breaker_matches_the_model(
        failures in 1u32..5,
        open_ms in 1u64..5_000,
        probes in 1u32..4,
        cap_ms in proptest::option::of(1u64..5_000),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let rules = Rules { failures, open_ms, probes, cap_ms };
        let (clock, time) = Clock::mock();
        let breaker = CircuitBreaker::builder("model")
            .no_failure_rate()
            .consecutive_failures(failures)
            .open_duration(Duration::from_millis(open_ms))
            .half_open_probes(probes)
            .max_half_open(cap_ms.map(Duration::from_millis))
            .clock(clock)
            .build()
            .unwrap();
        let mut model = Model::Closed { in_a_row: 0 };
        let mut now_ms = 0;
        for op in ops {
            match op {
                Op::Call(failed) => {
                    let expected = model.call(now_ms, failed, &rules);
                    let actual = breaker.try_acquire().map(|permit| {
                        permit.record(if failed { Outcome::Failure } else { Outcome::Success });
                    });
                    match (expected, actual) {
                        (Ok(()), Ok(())) => {}
                        (Err(wait), Err(rejected)) => prop_assert_eq!(
                            wait.map(Duration::from_millis),
                            rejected.retry_after()
                        ),
                        (expected, actual) => prop_assert!(
                            false,
                            "model {:?}, breaker {:?} (state {:?})",
                            expected,
                            actual,
                            breaker.state()
                        ),
                    }
                }
                Op::Advance(ms) => {
                    now_ms += ms;
                    time.advance(Duration::from_millis(ms));
                }
                Op::ForceOpen => {
                    breaker.force_open();
                    model = Model::ForcedOpen;
                }
                Op::Reset => {
                    breaker.reset();
                    // Idempotent: a closed breaker keeps its count of failures in a row.
                    if !matches!(model, Model::Closed { .. }) {
                        model = Model::Closed { in_a_row: 0 };
                    }
                }
                Op::HalfOpen => {
                    breaker.half_open();
                    model.settle(now_ms, &rules);
                    if !matches!(model, Model::HalfOpen { .. }) {
                        model = Model::half_open(now_ms, &rules);
                    }
                }
                Op::OpenFor(ms) => {
                    breaker.open_for(Duration::from_millis(ms));
                    model = Model::Open { until_ms: now_ms + ms };
                }
            }
            prop_assert_eq!(breaker.state(), model.state(now_ms, &rules));
        }
    }
}
