//! Every reason a fallback answers for, against every policy: the fallback runs when the
//! reason is in `.on(..)`, and the original error or response passes through unchanged when it
//! is not. Real parts throughout: a real `CircuitBreaker`, `tower::timeout`, `tower::load_shed`.

mod support;

use std::future::{pending, ready, Pending, Ready};
use std::io;
use std::time::Duration;

use steadfast_breaker::{Rejected, State};
use steadfast_core::{classify_fn, BoxError, Outcome};
use steadfast_fallback::{
    BoxedFallbackFailed, Degrader, Error, FallbackLayer, Flip, Reason, Reasons,
};
use tower::load_shed::error::Overloaded;
use tower::load_shed::LoadShedLayer;
use tower::timeout::error::Elapsed;
use tower::timeout::TimeoutLayer;
use tower::util::ServiceFn;
use tower::{service_fn, Layer, ServiceBuilder, ServiceExt};

use support::{assert_send, assert_send_sync_clone, forced_open, Calls, NeverReady, Recorder};

/// The policies every reason is tried against: none, each reason alone, the two named sets,
/// and every reason but one.
fn policies() -> Vec<Reasons> {
    let mut policies = vec![Reasons::NONE, Reasons::ANY_ERROR, Reasons::ALL];
    for reason in Reason::ALL {
        policies.push(Reasons::of(reason));
        policies.push(Reasons::ALL.without(reason));
    }
    policies
}

/// An inner service answering `"real"`, counting its calls.
fn real<Req: 'static>(
    calls: &Calls,
) -> ServiceFn<impl Fn(Req) -> Ready<Result<String, io::Error>> + Clone + Send + Sync + 'static> {
    let calls = calls.clone();
    service_fn(move |_: Req| {
        calls.hit();
        ready(Ok("real".to_owned()))
    })
}

/// An inner service failing with an `io::Error` of `kind`, counting its calls.
fn failing<Req: 'static>(
    calls: &Calls,
    kind: io::ErrorKind,
    message: &'static str,
) -> ServiceFn<impl Fn(Req) -> Ready<Result<String, io::Error>> + Clone + Send + Sync + 'static> {
    let calls = calls.clone();
    service_fn(move |_: Req| {
        calls.hit();
        ready(Err(io::Error::new(kind, message)))
    })
}

/// An inner service that never answers, counting its calls.
fn hanging<Req: 'static>(
    calls: &Calls,
) -> ServiceFn<impl Fn(Req) -> Pending<Result<String, io::Error>> + Clone + Send + Sync + 'static> {
    let calls = calls.clone();
    service_fn(move |_: Req| {
        calls.hit();
        pending()
    })
}

#[test]
fn typed_and_boxed_layers_services_and_futures_are_send_sync_clone() {
    let fallback = Recorder::<()>::new();
    let inner = Calls::new();
    let layer = FallbackLayer::from_fn(fallback.answer("fallback".to_owned()));
    assert_send_sync_clone(&layer);
    let service = layer.layer(real::<()>(&inner));
    assert_send_sync_clone(&service);
    assert_send(&service.clone().oneshot(()));

    let boxed = FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
        .on(Reasons::TIMEOUT)
        .keep(|n: &u32| *n)
        .boxed_errors();
    assert_send_sync_clone(&boxed);
    let breaker = forced_open("send-sync");
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(Recorder::<u32>::new().answer("fallback".to_owned()))
                .keep(|n: &u32| *n)
                .boxed_errors(),
        )
        .layer(breaker.layer().boxed_errors())
        .layer(TimeoutLayer::new(Duration::from_secs(1)))
        .service(real::<u32>(&inner));
    assert_send_sync_clone(&service);
    assert_send(&service.oneshot(7));

    let degrader = Degrader::new();
    assert_send_sync_clone(&degrader);
    assert_send_sync_clone(&degrader.switch("s").unwrap());
}

// --- Breaker open -------------------------------------------------------------------------

#[tokio::test]
async fn typed_breaker_refusal_falls_back_only_where_named() {
    for policy in policies() {
        let breaker = forced_open("typed-open");
        let inner = Calls::new();
        let fallback = Recorder::<()>::new();
        let service = ServiceBuilder::new()
            .layer(FallbackLayer::from_fn(fallback.answer("fallback".to_owned())).on(policy))
            .layer(breaker.layer())
            .service(real::<()>(&inner));
        let result = service.oneshot(()).await;
        assert_eq!(
            inner.get(),
            0,
            "a refused call never reaches the inner service"
        );
        if policy.contains(Reason::BreakerOpen) {
            assert_eq!(result.unwrap(), "fallback", "{policy:?}");
            assert_eq!(fallback.reasons(), [Reason::BreakerOpen], "{policy:?}");
        } else {
            match result {
                Err(Error::Inner(steadfast_breaker::Error::Rejected(rejected))) => {
                    assert_eq!(rejected.state(), State::ForcedOpen);
                }
                other => panic!("{policy:?}: expected the refusal unchanged, got {other:?}"),
            }
            assert_eq!(fallback.count(), 0, "{policy:?}");
        }
    }
}

#[tokio::test]
async fn boxed_breaker_refusal_falls_back_only_where_named() {
    for policy in policies() {
        let breaker = forced_open("boxed-open");
        let inner = Calls::new();
        let fallback = Recorder::<()>::new();
        let service = ServiceBuilder::new()
            .layer(
                FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
                    .on(policy)
                    .boxed_errors(),
            )
            .layer(breaker.layer().boxed_errors())
            .service(real::<()>(&inner));
        let result: Result<String, BoxError> = service.oneshot(()).await;
        assert_eq!(inner.get(), 0);
        if policy.contains(Reason::BreakerOpen) {
            assert_eq!(result.unwrap(), "fallback", "{policy:?}");
            assert_eq!(fallback.reasons(), [Reason::BreakerOpen]);
        } else {
            let error = result.unwrap_err();
            let rejected = error
                .downcast_ref::<Rejected>()
                .unwrap_or_else(|| panic!("{policy:?}: expected the refusal, got {error}"));
            assert_eq!(rejected.state(), State::ForcedOpen);
            assert_eq!(fallback.count(), 0, "{policy:?}");
        }
    }
}

/// The classifier decides which inner errors are failures; refusals and timeouts are known by
/// their type, whatever it says.
#[tokio::test(start_paused = true)]
async fn refusals_and_timeouts_do_not_ask_the_classifier() {
    let ignore_every_error = classify_fn(
        |result: Result<&String, &steadfast_breaker::Error<io::Error>>| match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Ignored,
        },
    );
    let breaker = forced_open("classifier-blind");
    let fallback = Recorder::<()>::new();
    let inner = Calls::new();
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
                .on(Reasons::ANY_ERROR)
                .classify(ignore_every_error),
        )
        .layer(breaker.layer().timeout(Duration::from_millis(50)))
        .service(hanging::<()>(&inner));
    assert_eq!(service.clone().oneshot(()).await.unwrap(), "fallback");
    breaker.reset();
    assert_eq!(service.clone().oneshot(()).await.unwrap(), "fallback");
    assert_eq!(fallback.reasons(), [Reason::BreakerOpen, Reason::Timeout]);
    assert_eq!(
        inner.get(),
        1,
        "only the second call got through the breaker"
    );
}

// --- Timeout ------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn tower_timeout_in_boxed_mode_falls_back_only_where_named() {
    for policy in policies() {
        let inner = Calls::new();
        let fallback = Recorder::<()>::new();
        let service = ServiceBuilder::new()
            .layer(
                FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
                    .on(policy)
                    .boxed_errors(),
            )
            .layer(TimeoutLayer::new(Duration::from_millis(100)))
            .service(hanging::<()>(&inner));
        let started = tokio::time::Instant::now();
        let result: Result<String, BoxError> = service.oneshot(()).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(100) && waited < Duration::from_millis(110),
            "{waited:?}"
        );
        assert_eq!(inner.get(), 1);
        if policy.contains(Reason::Timeout) {
            assert_eq!(result.unwrap(), "fallback", "{policy:?}");
            assert_eq!(fallback.reasons(), [Reason::Timeout]);
        } else {
            let error = result.unwrap_err();
            assert!(error.is::<Elapsed>(), "{policy:?}: {error}");
            assert_eq!(fallback.count(), 0, "{policy:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn breaker_call_timeout_falls_back_only_where_named() {
    for policy in policies() {
        let breaker = steadfast_breaker::CircuitBreaker::builder("typed-timeout")
            .build()
            .unwrap();
        let inner = Calls::new();
        let fallback = Recorder::<()>::new();
        let service = ServiceBuilder::new()
            .layer(FallbackLayer::from_fn(fallback.answer("fallback".to_owned())).on(policy))
            .layer(breaker.layer().timeout(Duration::from_millis(250)))
            .service(hanging::<()>(&inner));
        let result = service.oneshot(()).await;
        assert_eq!(inner.get(), 1);
        if policy.contains(Reason::Timeout) {
            assert_eq!(result.unwrap(), "fallback", "{policy:?}");
            assert_eq!(fallback.reasons(), [Reason::Timeout]);
        } else {
            match result {
                Err(Error::Inner(steadfast_breaker::Error::TimedOut(timed_out))) => {
                    assert_eq!(timed_out.after(), Duration::from_millis(250));
                }
                other => panic!("{policy:?}: expected the timeout unchanged, got {other:?}"),
            }
            assert_eq!(fallback.count(), 0, "{policy:?}");
        }
    }
}

/// Through the whole stack the crate recommends: fallback → breaker → timeout → client.
#[tokio::test(start_paused = true)]
async fn boxed_stack_of_breaker_and_tower_timeout() {
    let breaker = steadfast_breaker::CircuitBreaker::builder("stack")
        .consecutive_failures(1)
        .build()
        .unwrap();
    let inner = Calls::new();
    let fallback = Recorder::<()>::new();
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
                .on(Reasons::BREAKER_OPEN | Reasons::TIMEOUT)
                .boxed_errors(),
        )
        .layer(breaker.layer().boxed_errors())
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .service(hanging::<()>(&inner));
    assert_eq!(service.clone().oneshot(()).await.unwrap(), "fallback");
    assert_eq!(
        breaker.state(),
        State::Open,
        "the timeout tripped the breaker"
    );
    assert_eq!(service.clone().oneshot(()).await.unwrap(), "fallback");
    assert_eq!(fallback.reasons(), [Reason::Timeout, Reason::BreakerOpen]);
    assert_eq!(inner.get(), 1);
}

// --- Overload -----------------------------------------------------------------------------

#[tokio::test]
async fn load_shed_overload_falls_back_only_where_named() {
    for policy in policies() {
        let never_ready = NeverReady::default();
        let fallback = Recorder::<()>::new();
        let service = ServiceBuilder::new()
            .layer(
                FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
                    .on(policy)
                    .boxed_errors(),
            )
            .layer(LoadShedLayer::new())
            .service(never_ready.clone());
        let result: Result<String, BoxError> = service.oneshot(()).await;
        assert_eq!(
            never_ready.calls.get(),
            0,
            "a shed call never reaches the service"
        );
        if policy.contains(Reason::Overload) {
            assert_eq!(result.unwrap(), "fallback", "{policy:?}");
            assert_eq!(fallback.reasons(), [Reason::Overload]);
        } else {
            let error = result.unwrap_err();
            assert!(error.is::<Overloaded>(), "{policy:?}: {error}");
            assert_eq!(fallback.count(), 0, "{policy:?}");
        }
    }
}

#[tokio::test]
async fn load_shed_overload_in_typed_mode() {
    let never_ready = NeverReady::default();
    let fallback = Recorder::<()>::new();
    let service = ServiceBuilder::new()
        .layer(FallbackLayer::from_fn(fallback.answer("fallback".to_owned())).on(Reasons::ERROR))
        .layer(LoadShedLayer::new())
        .service(never_ready.clone());
    match service.oneshot(()).await {
        Err(Error::Inner(error)) => assert!(error.is::<Overloaded>(), "{error}"),
        other => panic!("an overload is not an error of the inner service: {other:?}"),
    }
    assert_eq!(fallback.count(), 0);
}

// --- Inner errors -------------------------------------------------------------------------

#[tokio::test]
async fn inner_error_through_a_closed_breaker_falls_back_only_where_named() {
    for policy in policies() {
        let breaker = steadfast_breaker::CircuitBreaker::builder("closed")
            .build()
            .unwrap();
        let inner = Calls::new();
        let fallback = Recorder::<()>::new();
        let service = ServiceBuilder::new()
            .layer(FallbackLayer::from_fn(fallback.answer("fallback".to_owned())).on(policy))
            .layer(breaker.layer())
            .service(failing::<()>(
                &inner,
                io::ErrorKind::ConnectionReset,
                "db down",
            ));
        let result = service.oneshot(()).await;
        assert_eq!(inner.get(), 1);
        if policy.contains(Reason::Error) {
            assert_eq!(result.unwrap(), "fallback", "{policy:?}");
            assert_eq!(fallback.reasons(), [Reason::Error]);
        } else {
            match result {
                Err(Error::Inner(steadfast_breaker::Error::Inner(error))) => {
                    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
                    assert_eq!(error.to_string(), "db down");
                }
                other => panic!("{policy:?}: expected the inner error unchanged, got {other:?}"),
            }
            assert_eq!(fallback.count(), 0, "{policy:?}");
        }
    }
}

/// The brief's two headline policies side by side: "only when the breaker is open" answers
/// none of a plain error, a breaker timeout and a tower timeout; "any error" answers all three
/// and the refusal too.
#[tokio::test(start_paused = true)]
async fn breaker_open_policy_is_not_any_error() {
    async fn run(policy: Reasons) -> Vec<(bool, Option<Reason>)> {
        let mut outcomes = Vec::new();
        // A plain inner error, through a closed breaker.
        let fallback = Recorder::<()>::new();
        let service = ServiceBuilder::new()
            .layer(FallbackLayer::from_fn(fallback.answer("fallback".to_owned())).on(policy))
            .layer(
                steadfast_breaker::CircuitBreaker::builder("e")
                    .build()
                    .unwrap()
                    .layer(),
            )
            .service(failing::<()>(&Calls::new(), io::ErrorKind::Other, "boom"));
        outcomes.push((
            service.oneshot(()).await.is_ok(),
            fallback.reasons().first().copied(),
        ));
        // The breaker's own timeout.
        let fallback = Recorder::<()>::new();
        let service = ServiceBuilder::new()
            .layer(FallbackLayer::from_fn(fallback.answer("fallback".to_owned())).on(policy))
            .layer(
                steadfast_breaker::CircuitBreaker::builder("t")
                    .build()
                    .unwrap()
                    .layer()
                    .timeout(Duration::from_millis(10)),
            )
            .service(hanging::<()>(&Calls::new()));
        outcomes.push((
            service.oneshot(()).await.is_ok(),
            fallback.reasons().first().copied(),
        ));
        // tower's timeout, boxed.
        let fallback = Recorder::<()>::new();
        let service = ServiceBuilder::new()
            .layer(
                FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
                    .on(policy)
                    .boxed_errors(),
            )
            .layer(TimeoutLayer::new(Duration::from_millis(10)))
            .service(hanging::<()>(&Calls::new()));
        outcomes.push((
            service.oneshot(()).await.is_ok(),
            fallback.reasons().first().copied(),
        ));
        // The refusal.
        let fallback = Recorder::<()>::new();
        let service = ServiceBuilder::new()
            .layer(FallbackLayer::from_fn(fallback.answer("fallback".to_owned())).on(policy))
            .layer(forced_open("o").layer())
            .service(real::<()>(&Calls::new()));
        outcomes.push((
            service.oneshot(()).await.is_ok(),
            fallback.reasons().first().copied(),
        ));
        outcomes
    }

    assert_eq!(
        run(Reasons::BREAKER_OPEN).await,
        [
            (false, None),
            (false, None),
            (false, None),
            (true, Some(Reason::BreakerOpen))
        ]
    );
    assert_eq!(
        run(Reasons::ANY_ERROR).await,
        [
            (true, Some(Reason::Error)),
            (true, Some(Reason::Timeout)),
            (true, Some(Reason::Timeout)),
            (true, Some(Reason::BreakerOpen))
        ]
    );
}

#[tokio::test]
async fn classifier_predicate_picks_which_errors_fall_back() {
    // Refused connections are the dependency's failure; "not found" is the caller's.
    let classify = classify_fn(|result: Result<&String, &io::Error>| match result {
        Ok(answer) if answer.is_empty() => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => Outcome::Failure,
        Err(_) => Outcome::Ignored,
    });
    let inner = Calls::new();
    let fallback = Recorder::<String>::new();
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
                .on(Reasons::ERROR)
                .keep(|request: &String| request.clone())
                .classify(classify),
        )
        .service(service_fn({
            let inner = inner.clone();
            move |request: String| {
                inner.hit();
                ready(match request.as_str() {
                    "refused" => Err(io::Error::from(io::ErrorKind::ConnectionRefused)),
                    "missing" => Err(io::Error::new(io::ErrorKind::NotFound, "no such user")),
                    "empty" => Ok(String::new()),
                    _ => Ok("real".to_owned()),
                })
            }
        }));

    assert_eq!(
        service.clone().oneshot("refused".into()).await.unwrap(),
        "fallback"
    );
    match service.clone().oneshot("missing".into()).await {
        Err(Error::Inner(error)) => {
            assert_eq!(error.kind(), io::ErrorKind::NotFound);
            assert_eq!(error.to_string(), "no such user");
        }
        other => panic!("an ignored error passes through: {other:?}"),
    }
    // A failure-classified answer is a failure response, not an error: not in this policy.
    assert_eq!(service.clone().oneshot("empty".into()).await.unwrap(), "");
    assert_eq!(service.clone().oneshot("ok".into()).await.unwrap(), "real");
    assert_eq!(inner.get(), 4);
    let requests = fallback.take();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].reason, Reason::Error);
    assert_eq!(
        requests[0].kept, "refused",
        "a closure keep gives the fallback its value"
    );

    // The same classifier, with failure responses in the policy.
    let fallback = Recorder::<usize>::new();
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
                .on(Reasons::FAILURE_RESPONSE)
                .keep(|request: &String| request.len())
                .classify(classify),
        )
        .service(service_fn(|request: String| {
            ready(Ok::<_, io::Error>(if request == "empty" {
                String::new()
            } else {
                request
            }))
        }));
    assert_eq!(
        service.clone().oneshot("empty".into()).await.unwrap(),
        "fallback"
    );
    assert_eq!(service.oneshot("full".into()).await.unwrap(), "full");
    let requests = fallback.take();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].reason, requests[0].kept),
        (Reason::FailureResponse, "empty".len())
    );
}

// --- Switches -----------------------------------------------------------------------------

#[tokio::test]
async fn switch_at_or_above_the_level_answers_without_calling_the_inner_service() {
    let degrader = Degrader::new();
    let inner = Calls::new();
    let fallback = Recorder::<u32>::new();
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
                .keep(|n: &u32| *n)
                .switch(degrader.switch("recommendations").unwrap(), 2),
        )
        .service(real::<u32>(&inner));
    let steps = [
        (0, false),
        (1, false),
        (2, true),
        (3, true),
        (255, true),
        (1, false),
        (0, false),
    ];
    let mut calls = 0;
    for (step, (level, degraded)) in steps.into_iter().enumerate() {
        degrader
            .set("recommendations", level, Flip::new("test", "policy"))
            .unwrap();
        let answer = service.clone().oneshot(step as u32).await.unwrap();
        if degraded {
            assert_eq!(answer, "fallback", "level {level}");
        } else {
            calls += 1;
            assert_eq!(answer, "real", "level {level}");
        }
        assert_eq!(
            inner.get(),
            calls,
            "level {level}: the inner service is not called"
        );
    }
    let requests = fallback.take();
    assert_eq!(
        requests
            .iter()
            .map(|request| (request.reason, request.kept))
            .collect::<Vec<_>>(),
        [
            (Reason::Switch, 2),
            (Reason::Switch, 3),
            (Reason::Switch, 4)
        ]
    );
}

#[tokio::test]
async fn a_bound_switch_answers_under_every_policy() {
    // Binding a switch declares planned degradation: no reason set can silently turn it off.
    for policy in policies() {
        let degrader = Degrader::new();
        degrader.set("s", 1, Flip::new("test", "policy")).unwrap();
        let inner = Calls::new();
        let fallback = Recorder::<()>::new();
        let service = ServiceBuilder::new()
            .layer(
                FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
                    .on(policy)
                    .switch(degrader.switch("s").unwrap(), 1),
            )
            .service(real::<()>(&inner));
        let answer = service.oneshot(()).await.unwrap();
        assert_eq!(answer, "fallback", "{policy:?}");
        assert_eq!(inner.get(), 0, "{policy:?}");
        assert_eq!(fallback.reasons(), [Reason::Switch], "{policy:?}");
    }
}

#[tokio::test]
async fn switch_bound_at_level_zero_is_read_as_one() {
    let degrader = Degrader::new();
    let switch = degrader.switch("zero").unwrap();
    let inner = Calls::new();
    let fallback = Recorder::<()>::new();
    let service = ServiceBuilder::new()
        .layer(FallbackLayer::from_fn(fallback.answer("fallback".to_owned())).switch(switch, 0))
        .service(real::<()>(&inner));
    assert_eq!(service.clone().oneshot(()).await.unwrap(), "real");
    degrader.set("zero", 1, Flip::new("test", "zero")).unwrap();
    assert_eq!(service.clone().oneshot(()).await.unwrap(), "fallback");
    assert_eq!(inner.get(), 1);
}

/// Planned degradation is for a dependency in trouble, and a dependency in trouble is often
/// not ready (a saturated concurrency limit, a client still connecting). A switch-on call must
/// not wait for it.
#[tokio::test(start_paused = true)]
async fn switch_on_answers_even_when_the_inner_service_is_not_ready() {
    let degrader = Degrader::new();
    degrader
        .set("s", 1, Flip::new("ops", "dependency down"))
        .unwrap();
    let never_ready = NeverReady::default();
    let fallback = Recorder::<()>::new();
    let service = FallbackLayer::from_fn(fallback.answer("fallback".to_owned()))
        .switch(degrader.switch("s").unwrap(), 1)
        .layer(never_ready.clone());
    let answer = tokio::time::timeout(Duration::from_secs(5), service.oneshot(()))
        .await
        .expect("a switch-on call waited for the inner service to be ready");
    assert_eq!(answer.unwrap(), "fallback");
    assert_eq!(fallback.reasons(), [Reason::Switch]);
    assert_eq!(never_ready.calls.get(), 0);
}

// --- A failing fallback --------------------------------------------------------------------

#[tokio::test]
async fn typed_failing_fallback_keeps_both_causes() {
    let inner = Calls::new();
    let fallback = Recorder::<()>::new();
    let service = ServiceBuilder::new()
        .layer(FallbackLayer::from_fn(
            fallback.fail::<String>("cache down"),
        ))
        .service(failing::<()>(
            &inner,
            io::ErrorKind::ConnectionReset,
            "db down",
        ));
    let error = service.oneshot(()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "the fallback failed after the call failed (db down)"
    );
    let source = std::error::Error::source(&error).expect("the fallback's error is the source");
    assert_eq!(source.to_string(), "cache down");
    let failed = error.fallback_failed().expect("the fallback ran");
    assert_eq!(failed.reason(), Reason::Error);
    let original = failed.original().expect("the inner error is kept");
    assert_eq!(original.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(original.to_string(), "db down");
    assert_eq!(failed.fallback_error().to_string(), "cache down");
    assert_eq!(
        std::error::Error::source(failed).unwrap().to_string(),
        "cache down"
    );
    let Error::Fallback(failed) = error else {
        panic!("expected Error::Fallback")
    };
    let (reason, original, fallback_error) = failed.into_parts();
    assert_eq!(reason, Reason::Error);
    assert_eq!(original.unwrap().to_string(), "db down");
    assert_eq!(fallback_error.to_string(), "cache down");
    assert_eq!(inner.get(), 1);
    assert_eq!(fallback.count(), 1);
}

#[tokio::test]
async fn typed_failing_fallback_after_a_refusal_and_a_switch() {
    let breaker = forced_open("failing-fallback");
    let fallback = Recorder::<()>::new();
    let service = ServiceBuilder::new()
        .layer(FallbackLayer::from_fn(
            fallback.fail::<String>("cache down"),
        ))
        .layer(breaker.layer())
        .service(real::<()>(&Calls::new()));
    let error = service.oneshot(()).await.unwrap_err();
    let failed = error.fallback_failed().unwrap();
    assert_eq!(failed.reason(), Reason::BreakerOpen);
    assert!(failed.original().unwrap().is_rejected());
    assert!(error.to_string().starts_with(
        "the fallback failed after the circuit breaker is open (circuit breaker is forced open"
    ));

    // A switch has no inner error: nothing was called.
    let degrader = Degrader::new();
    degrader.set("s", 1, Flip::new("test", "fail")).unwrap();
    let inner = Calls::new();
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(fallback.fail::<String>("cache down"))
                .switch(degrader.switch("s").unwrap(), 1),
        )
        .service(real::<()>(&inner));
    let error = service.oneshot(()).await.unwrap_err();
    let failed = error.fallback_failed().unwrap();
    assert_eq!(failed.reason(), Reason::Switch);
    assert!(failed.original().is_none());
    assert_eq!(
        error.to_string(),
        "the fallback failed after a degradation switch is on"
    );
    assert_eq!(inner.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn boxed_failing_fallback_downcasts_to_boxed_fallback_failed() {
    let fallback = Recorder::<()>::new();
    let service = ServiceBuilder::new()
        .layer(
            FallbackLayer::from_fn(fallback.fail::<String>("cache down"))
                .on(Reasons::TIMEOUT)
                .boxed_errors(),
        )
        .layer(TimeoutLayer::new(Duration::from_millis(100)))
        .service(hanging::<()>(&Calls::new()));
    let error: BoxError = service.oneshot(()).await.unwrap_err();
    let failed = error
        .downcast_ref::<BoxedFallbackFailed>()
        .unwrap_or_else(|| panic!("expected a BoxedFallbackFailed, got {error:?}"));
    assert_eq!(failed.reason(), Reason::Timeout);
    assert!(failed.original().unwrap().is::<Elapsed>());
    assert_eq!(failed.fallback_error().to_string(), "cache down");
    assert_eq!(
        error.to_string(),
        "the fallback failed after the call timed out (request timed out)"
    );
    let source = error.source().expect("the fallback's error is the source");
    assert_eq!(source.to_string(), "cache down");
    assert_eq!(fallback.reasons(), [Reason::Timeout]);
}

// --- HTTP mode ----------------------------------------------------------------------------

#[cfg(feature = "http")]
mod http_mode {
    use super::*;

    use std::convert::Infallible;

    use bytes::Bytes;
    use http::request::Parts;
    use http::{Request, Response, StatusCode};
    use steadfast_breaker::TimedOut;
    use steadfast_fallback::keep;
    use steadfast_fallback::mode::DEGRADED_HEADER;
    use steadfast_fallback::{Degraded, FallbackRequest};

    type Res = Response<Bytes>;

    /// A dependency answering the status its path names (`/500`), 200 otherwise.
    fn dependency(
        calls: &Calls,
    ) -> ServiceFn<
        impl Fn(Request<()>) -> Ready<Result<Res, io::Error>> + Clone + Send + Sync + 'static,
    > {
        let calls = calls.clone();
        service_fn(move |request: Request<()>| {
            calls.hit();
            let status = request.uri().path()[1..].parse::<u16>().unwrap_or(200);
            ready(Ok(Response::builder()
                .status(status)
                .header("x-real", "yes")
                .body(Bytes::from_static(b"real"))
                .unwrap()))
        })
    }

    fn request(uri: &str) -> Request<()> {
        Request::post(uri).header("x-user", "ada").body(()).unwrap()
    }

    /// The fallback's answer: names the URI it kept.
    fn answer(request: &FallbackRequest<Parts>) -> Res {
        Response::new(Bytes::from(format!(
            "fallback for {} {}",
            request.kept.method, request.kept.uri
        )))
    }

    fn assert_fallback(response: &Res, reason: Reason, uri: &str) {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.extensions().get::<Degraded>(),
            Some(&Degraded::new(reason))
        );
        assert!(Degraded::is_marked(response));
        assert_eq!(
            response.body(),
            &Bytes::from(format!("fallback for POST {uri}"))
        );
    }

    fn assert_unmarked(response: &Res) {
        assert!(!Degraded::is_marked(response));
        assert!(response.headers().get(DEGRADED_HEADER).is_none());
    }

    #[test]
    fn http_layers_and_services_are_send_sync_clone() {
        let fallback = Recorder::<Parts>::new();
        let layer = FallbackLayer::from_fn(fallback.answer_with(answer))
            .http()
            .header(true);
        assert_send_sync_clone(&layer);
        let service = ServiceBuilder::new()
            .layer(layer)
            .layer(forced_open("http-send").layer().http())
            .service(dependency(&Calls::new()));
        assert_send_sync_clone(&service);
        assert_send(&service.oneshot(request("/")));
    }

    #[tokio::test]
    async fn http_500_falls_back_only_where_named_and_404_never() {
        for policy in policies() {
            let inner = Calls::new();
            let fallback = Recorder::<Parts>::new();
            let service = ServiceBuilder::new()
                .layer(
                    FallbackLayer::from_fn(fallback.answer_with(answer))
                        .on(policy)
                        .http(),
                )
                .service(dependency(&inner));
            let response = service.clone().oneshot(request("/500")).await.unwrap();
            if policy.contains(Reason::FailureResponse) {
                assert_fallback(&response, Reason::FailureResponse, "/500");
                assert_eq!(fallback.reasons(), [Reason::FailureResponse]);
            } else {
                assert_eq!(response.status(), 500, "{policy:?}");
                assert_eq!(response.headers()["x-real"], "yes");
                assert_eq!(response.body(), "real");
                assert_unmarked(&response);
                assert_eq!(fallback.count(), 0, "{policy:?}");
            }
            // A 404 is the caller's problem, under every policy.
            let response = service.oneshot(request("/404")).await.unwrap();
            assert_eq!(response.status(), 404, "{policy:?}");
            assert_eq!(response.body(), "real");
            assert_unmarked(&response);
            let expected = usize::from(policy.contains(Reason::FailureResponse));
            assert_eq!(
                fallback.count(),
                expected,
                "{policy:?}: a 404 ran the fallback"
            );
            assert_eq!(inner.get(), 2);
        }
    }

    #[tokio::test]
    async fn http_breaker_refusal_is_breaker_open_not_a_failure_response() {
        for policy in policies() {
            let breaker = forced_open("http-open");
            let inner = Calls::new();
            let fallback = Recorder::<Parts>::new();
            let service = ServiceBuilder::new()
                .layer(
                    FallbackLayer::from_fn(fallback.answer_with(answer))
                        .on(policy)
                        .http(),
                )
                .layer(breaker.layer().http())
                .service(dependency(&inner));
            let response = service.oneshot(request("/cart")).await.unwrap();
            assert_eq!(inner.get(), 0);
            if policy.contains(Reason::BreakerOpen) {
                assert_fallback(&response, Reason::BreakerOpen, "/cart");
                assert_eq!(fallback.reasons(), [Reason::BreakerOpen]);
            } else {
                // The breaker's own 503, unchanged: its marker, its problem+json body.
                assert_eq!(response.status(), 503, "{policy:?}");
                assert_eq!(
                    response.headers()["content-type"],
                    "application/problem+json"
                );
                assert_eq!(
                    response.extensions().get::<Rejected>().map(Rejected::state),
                    Some(State::ForcedOpen)
                );
                assert_unmarked(&response);
                assert_eq!(fallback.count(), 0, "{policy:?}");
            }
        }
    }

    /// A 503 the dependency sent itself is a failure response, not a refusal.
    #[tokio::test]
    async fn http_503_from_the_dependency_is_a_failure_response() {
        for policy in policies() {
            let fallback = Recorder::<Parts>::new();
            let service = ServiceBuilder::new()
                .layer(
                    FallbackLayer::from_fn(fallback.answer_with(answer))
                        .on(policy)
                        .http(),
                )
                .layer(
                    steadfast_breaker::CircuitBreaker::builder("closed")
                        .build()
                        .unwrap()
                        .layer()
                        .http(),
                )
                .service(dependency(&Calls::new()));
            let response = service.oneshot(request("/503")).await.unwrap();
            if policy.contains(Reason::FailureResponse) {
                assert_fallback(&response, Reason::FailureResponse, "/503");
            } else {
                assert_eq!(response.status(), 503, "{policy:?}");
                assert_eq!(response.body(), "real");
                assert!(response.extensions().get::<Rejected>().is_none());
                assert_unmarked(&response);
                assert_eq!(fallback.count(), 0, "{policy:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn http_breaker_timeout_504_is_a_timeout() {
        for policy in policies() {
            let inner = Calls::new();
            let fallback = Recorder::<Parts>::new();
            let service = ServiceBuilder::new()
                .layer(
                    FallbackLayer::from_fn(fallback.answer_with(answer))
                        .on(policy)
                        .http(),
                )
                .layer(
                    steadfast_breaker::CircuitBreaker::builder("http-timeout")
                        .build()
                        .unwrap()
                        .layer()
                        .http()
                        .timeout(Duration::from_millis(300)),
                )
                .service(hanging::<Request<()>>(&inner).map_response(|_| Res::default()));
            let response = service.oneshot(request("/slow")).await.unwrap();
            assert_eq!(inner.get(), 1);
            if policy.contains(Reason::Timeout) {
                assert_fallback(&response, Reason::Timeout, "/slow");
                assert_eq!(fallback.reasons(), [Reason::Timeout]);
            } else {
                assert_eq!(response.status(), 504, "{policy:?}");
                assert_eq!(
                    response.extensions().get::<TimedOut>().map(TimedOut::after),
                    Some(Duration::from_millis(300))
                );
                assert_unmarked(&response);
                assert_eq!(fallback.count(), 0, "{policy:?}");
            }
        }
    }

    #[tokio::test]
    async fn http_inner_error_keeps_its_type() {
        for policy in policies() {
            let fallback = Recorder::<Parts>::new();
            let service = ServiceBuilder::new()
                .layer(
                    FallbackLayer::from_fn(fallback.answer_with(answer))
                        .on(policy)
                        .http(),
                )
                .service(
                    failing::<Request<()>>(&Calls::new(), io::ErrorKind::ConnectionReset, "reset")
                        .map_response(|_| Res::default()),
                );
            // The error type is the inner one: an axum route stays `Infallible`.
            let result: Result<Res, io::Error> = service.oneshot(request("/e")).await;
            if policy.contains(Reason::Error) {
                assert_fallback(&result.unwrap(), Reason::Error, "/e");
            } else {
                let error = result.unwrap_err();
                assert_eq!(error.kind(), io::ErrorKind::ConnectionReset, "{policy:?}");
                assert_eq!(fallback.count(), 0, "{policy:?}");
            }
        }
        // An infallible dependency keeps the service infallible.
        let service = FallbackLayer::from_fn(Recorder::<Parts>::new().answer_with(answer))
            .http()
            .layer(service_fn(|_: Request<()>| {
                ready(Ok::<_, Infallible>(Res::default()))
            }));
        let _: Result<Res, Infallible> = service.oneshot(request("/")).await;
    }

    #[tokio::test]
    async fn http_marks_answers_and_adds_the_header_only_when_asked() {
        for header in [false, true] {
            let inner = Calls::new();
            let fallback = Recorder::<Parts>::new();
            let service = ServiceBuilder::new()
                .layer(
                    FallbackLayer::from_fn(fallback.answer_with(answer))
                        .http()
                        .header(header),
                )
                .service(dependency(&inner));
            let degraded = service.clone().oneshot(request("/502")).await.unwrap();
            assert_fallback(&degraded, Reason::FailureResponse, "/502");
            if header {
                assert_eq!(degraded.headers()[DEGRADED_HEADER], "failure_response");
                assert_eq!(degraded.headers()["steadfast-degraded"], "failure_response");
            } else {
                assert!(degraded.headers().get(DEGRADED_HEADER).is_none());
            }
            // Real answers are never marked, header or not.
            let real = service.oneshot(request("/200")).await.unwrap();
            assert_eq!(real.body(), "real");
            assert_unmarked(&real);
        }
    }

    #[tokio::test]
    async fn http_keep_method_uri_headers_head_and_a_closure() {
        let mut request = request("/products/7?currency=EUR");
        request.extensions_mut().insert(42_u32);

        // MethodUri, the HTTP default: no headers, no extensions.
        let fallback = Recorder::<Parts>::new();
        let service = FallbackLayer::from_fn(fallback.answer_with(answer))
            .http()
            .layer(dependency(&Calls::new()));
        let clone = clone_request(&request, "/500");
        service.oneshot(clone).await.unwrap();
        let kept = fallback.take().remove(0).kept;
        assert_eq!(kept.method, http::Method::POST);
        assert_eq!(kept.uri, "/500?currency=EUR");
        assert!(kept.headers.is_empty());
        assert!(kept.extensions.get::<u32>().is_none());

        // Headers: and every header, still no extensions.
        let fallback = Recorder::<Parts>::new();
        let service = FallbackLayer::from_fn(fallback.answer_with(answer))
            .http()
            .keep(keep::Headers)
            .layer(dependency(&Calls::new()));
        service
            .oneshot(clone_request(&request, "/500"))
            .await
            .unwrap();
        let kept = fallback.take().remove(0).kept;
        assert_eq!(kept.uri.path(), "/500");
        assert_eq!(kept.headers["x-user"], "ada");
        assert!(kept.extensions.get::<u32>().is_none());

        // Head: the extensions too.
        let fallback = Recorder::<Parts>::new();
        let service = FallbackLayer::from_fn(fallback.answer_with(answer))
            .http()
            .keep(keep::Head)
            .layer(dependency(&Calls::new()));
        service
            .oneshot(clone_request(&request, "/500"))
            .await
            .unwrap();
        let kept = fallback.take().remove(0).kept;
        assert_eq!(kept.headers["x-user"], "ada");
        assert_eq!(kept.extensions.get::<u32>(), Some(&42));

        // A closure keeps what it returns.
        let fallback = Recorder::<Option<String>>::new();
        let service = FallbackLayer::from_fn(fallback.answer_with(
            |request: &FallbackRequest<Option<String>>| {
                Response::new(Bytes::from(request.kept.clone().unwrap_or_default()))
            },
        ))
        .http()
        .keep(|request: &Request<()>| request.uri().query().map(str::to_owned))
        .layer(dependency(&Calls::new()));
        let response = service
            .oneshot(clone_request(&request, "/500"))
            .await
            .unwrap();
        assert_eq!(response.body(), "currency=EUR");
        assert_eq!(
            response.extensions().get::<Degraded>(),
            Some(&Degraded::new(Reason::FailureResponse))
        );
        assert_eq!(fallback.count(), 1);
    }

    fn clone_request(request: &Request<()>, path: &str) -> Request<()> {
        let mut clone = Request::new(());
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = format!("{path}?{}", request.uri().query().unwrap_or_default())
            .parse()
            .unwrap();
        *clone.headers_mut() = request.headers().clone();
        *clone.extensions_mut() = request.extensions().clone();
        clone
    }

    #[tokio::test]
    async fn http_switch_answers_marked_without_calling_the_dependency() {
        let degrader = Degrader::new();
        let inner = Calls::new();
        let fallback = Recorder::<Parts>::new();
        let service = ServiceBuilder::new()
            .layer(
                FallbackLayer::from_fn(fallback.answer_with(answer))
                    .http()
                    .header(true)
                    .switch(degrader.switch("checkout").unwrap(), 2),
            )
            .service(dependency(&inner));
        degrader
            .set("checkout", 1, Flip::new("test", "below"))
            .unwrap();
        let response = service.clone().oneshot(request("/cart")).await.unwrap();
        assert_eq!(response.body(), "real");
        assert_unmarked(&response);
        assert_eq!(inner.get(), 1);

        degrader
            .set("checkout", 2, Flip::new("test", "at"))
            .unwrap();
        let response = service.clone().oneshot(request("/cart")).await.unwrap();
        assert_fallback(&response, Reason::Switch, "/cart");
        assert_eq!(response.headers()[DEGRADED_HEADER], "switch");
        assert_eq!(
            inner.get(),
            1,
            "a switch-on call does not call the dependency"
        );
        assert_eq!(fallback.reasons(), [Reason::Switch]);
    }

    #[tokio::test]
    async fn http_failing_fallback_gives_what_the_caller_would_have_had() {
        // Answering a failure response: the response itself comes back, unmarked.
        let inner = Calls::new();
        let fallback = Recorder::<Parts>::new();
        let service = ServiceBuilder::new()
            .layer(
                FallbackLayer::from_fn(fallback.fail::<Res>("cache down"))
                    .http()
                    .header(true),
            )
            .service(dependency(&inner));
        let response: Res = service.oneshot(request("/500")).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.extensions().get::<Degraded>().is_none());
        assert!(response.headers().get(DEGRADED_HEADER).is_none());
        assert_eq!(inner.get(), 1);
        assert_eq!(fallback.reasons(), [Reason::FailureResponse]);

        // Planned degradation has nothing to return: a 503 problem.
        let degrader = Degrader::new();
        degrader.set("s", 1, Flip::new("test", "failing")).unwrap();
        let switched = ServiceBuilder::new()
            .layer(
                FallbackLayer::from_fn(fallback.fail::<Res>("cache down"))
                    .http()
                    .switch(degrader.switch("s").unwrap(), 1),
            )
            .service(dependency(&inner));
        let response: Res = switched.oneshot(request("/ok")).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = std::str::from_utf8(response.body()).unwrap();
        assert!(body.contains(r#""status":503"#), "{body}");
        assert_eq!(
            inner.get(),
            1,
            "a switched call does not reach the dependency"
        );
    }
}

// --- gRPC mode ----------------------------------------------------------------------------

#[cfg(feature = "tonic")]
mod grpc_mode {
    use super::*;

    use std::error::Error as _;

    use http::request::Parts;
    use http::Request;
    use steadfast_fallback::{Degraded, FallbackRequest};
    use tonic::{Code, Status};

    type Res = tonic::Response<String>;

    const METHOD: &str = "/shop.Catalog/Recommend";

    fn request() -> Request<()> {
        Request::post(METHOD).body(()).unwrap()
    }

    /// A tonic-style dependency: answers `"real"`, or the status `answer` gives.
    fn dependency(
        calls: &Calls,
        answer: fn() -> Result<Res, Status>,
    ) -> ServiceFn<impl Fn(Request<()>) -> Ready<Result<Res, Status>> + Clone + Send + Sync + 'static>
    {
        let calls = calls.clone();
        service_fn(move |_: Request<()>| {
            calls.hit();
            ready(answer())
        })
    }

    fn answer(request: &FallbackRequest<Parts>) -> Res {
        tonic::Response::new(format!("fallback for {}", request.kept.uri.path()))
    }

    #[test]
    fn grpc_layers_and_services_are_send_sync_clone() {
        let layer = FallbackLayer::from_fn(Recorder::<Parts>::new().answer_with(answer)).grpc();
        assert_send_sync_clone(&layer);
        let service = ServiceBuilder::new()
            .layer(layer)
            .layer(forced_open("grpc-send").layer().grpc())
            .service(dependency(&Calls::new(), || {
                Ok(tonic::Response::new("real".into()))
            }));
        assert_send_sync_clone(&service);
        assert_send(&service.oneshot(request()));
    }

    #[tokio::test]
    async fn grpc_refusal_status_with_a_rejected_source_is_breaker_open() {
        for policy in policies() {
            let inner = Calls::new();
            let fallback = Recorder::<Parts>::new();
            let service = ServiceBuilder::new()
                .layer(
                    FallbackLayer::from_fn(fallback.answer_with(answer))
                        .on(policy)
                        .grpc()
                        .header(true),
                )
                .layer(forced_open("grpc-open").layer().grpc())
                .service(dependency(&inner, || {
                    Ok(tonic::Response::new("real".into()))
                }));
            let result = service.oneshot(request()).await;
            assert_eq!(inner.get(), 0);
            if policy.contains(Reason::BreakerOpen) {
                let response = result.unwrap();
                assert_eq!(response.get_ref(), &format!("fallback for {METHOD}"));
                assert_eq!(
                    response.extensions().get::<Degraded>(),
                    Some(&Degraded::new(Reason::BreakerOpen))
                );
                assert_eq!(
                    response.metadata().get("steadfast-degraded").unwrap(),
                    "breaker_open"
                );
                assert_eq!(fallback.reasons(), [Reason::BreakerOpen]);
            } else {
                let status = result.unwrap_err();
                assert_eq!(status.code(), Code::Unavailable, "{policy:?}");
                let source = status.source().expect("the refusal stays the source");
                assert_eq!(
                    source.downcast_ref::<Rejected>().map(Rejected::state),
                    Some(State::ForcedOpen)
                );
                assert_eq!(fallback.count(), 0, "{policy:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn grpc_breaker_timeout_status_is_a_timeout() {
        for policy in policies() {
            let inner = Calls::new();
            let fallback = Recorder::<Parts>::new();
            let service = ServiceBuilder::new()
                .layer(
                    FallbackLayer::from_fn(fallback.answer_with(answer))
                        .on(policy)
                        .grpc(),
                )
                .layer(
                    steadfast_breaker::CircuitBreaker::builder("grpc-timeout")
                        .build()
                        .unwrap()
                        .layer()
                        .grpc()
                        .timeout(Duration::from_millis(200)),
                )
                .service(
                    hanging::<Request<()>>(&inner)
                        .map_response(tonic::Response::new)
                        .map_err(|error| Status::internal(error.to_string())),
                );
            let result = service.oneshot(request()).await;
            assert_eq!(inner.get(), 1);
            if policy.contains(Reason::Timeout) {
                let response = result.unwrap();
                assert_eq!(
                    response.extensions().get::<Degraded>(),
                    Some(&Degraded::new(Reason::Timeout))
                );
                assert_eq!(fallback.reasons(), [Reason::Timeout]);
            } else {
                let status = result.unwrap_err();
                assert_eq!(status.code(), Code::DeadlineExceeded, "{policy:?}");
                let timed_out = status
                    .source()
                    .and_then(|source| source.downcast_ref::<steadfast_breaker::TimedOut>())
                    .expect("the timeout stays the source");
                assert_eq!(timed_out.after(), Duration::from_millis(200));
                assert_eq!(fallback.count(), 0, "{policy:?}");
            }
        }
    }

    #[tokio::test]
    async fn grpc_status_codes_are_classified() {
        let fallback = Recorder::<Parts>::new();
        let layer = FallbackLayer::from_fn(fallback.answer_with(answer))
            .on(Reasons::ERROR)
            .grpc();
        // UNAVAILABLE sent by the server is an error, not a refusal.
        let unavailable = layer.clone().layer(dependency(&Calls::new(), || {
            Err(Status::unavailable("down"))
        }));
        let response = unavailable.clone().oneshot(request()).await.unwrap();
        assert_eq!(
            response.extensions().get::<Degraded>(),
            Some(&Degraded::new(Reason::Error))
        );
        assert!(
            response.metadata().get("steadfast-degraded").is_none(),
            "no metadata unless asked"
        );
        // NOT_FOUND is the caller's: it passes through as it was.
        let not_found = layer.clone().layer(dependency(&Calls::new(), || {
            Err(Status::not_found("no such item"))
        }));
        let status = not_found.oneshot(request()).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "no such item");
        assert_eq!(fallback.reasons(), [Reason::Error]);

        // "Only when the breaker is open" lets a server's UNAVAILABLE through.
        let only_open = FallbackLayer::from_fn(fallback.answer_with(answer))
            .on(Reasons::BREAKER_OPEN)
            .grpc()
            .layer(dependency(&Calls::new(), || {
                Err(Status::unavailable("down"))
            }));
        let status = only_open.oneshot(request()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "down");
        assert_eq!(fallback.count(), 1);
    }

    #[tokio::test]
    async fn grpc_failing_fallback_is_unavailable_with_both_causes() {
        let fallback = Recorder::<Parts>::new();
        let service = FallbackLayer::from_fn(fallback.fail::<Res>("cache down"))
            .grpc()
            .layer(dependency(&Calls::new(), || {
                Err(Status::internal("db down"))
            }));
        let status = service.oneshot(request()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        // A fixed message: the causes are in `source()`, not in what a server passes on.
        assert_eq!(status.message(), "the call failed and so did its fallback");
        let failed = status
            .source()
            .and_then(|source| source.downcast_ref::<BoxedFallbackFailed>())
            .expect("the source is a BoxedFallbackFailed");
        assert_eq!(failed.reason(), Reason::Error);
        let original = failed
            .original()
            .and_then(|original| original.downcast_ref::<Status>())
            .expect("the inner status is kept");
        assert_eq!(original.code(), Code::Internal);
        assert_eq!(original.message(), "db down");
        assert_eq!(failed.fallback_error().to_string(), "cache down");
        assert_eq!(fallback.reasons(), [Reason::Error]);
    }
}
