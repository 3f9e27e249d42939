//! The response future of [`FallbackService`](crate::FallbackService).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project::pin_project;
use steadfast_core::metrics as names;
use steadfast_core::{Classify, Degraded, Outcome, Reason};
use tower_service::Service;

use crate::error::FallbackFailed;
use crate::mode::Mode;
use crate::reason::{Diagnose, Reasons};

/// What the fallback is called with: why, and what was kept of the request.
#[derive(Clone, Debug)]
pub struct FallbackRequest<K> {
    /// Why the fallback answers.
    pub reason: Reason,
    /// What the route's keep function kept of the request.
    pub kept: K,
}

/// The policy a call carries: plain data, copied into each future.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) reasons: Reasons,
    pub(crate) header: bool,
    pub(crate) name: &'static str,
}

/// The reason a result calls for, if any: an error's own kind, an inner layer's marker, or a
/// failure by the classifier.
#[inline]
pub(crate) fn reason_for<Res, E, FE, M, C>(
    mode: &M,
    classify: &C,
    result: Result<&Res, &E>,
) -> Option<Reason>
where
    M: Mode<Res, E, FE>,
    C: Classify<Res, E>,
    E: Diagnose,
{
    match result {
        Ok(response) => match mode.marked(response) {
            Some(reason) => Some(reason),
            None => (classify.classify(Ok(response)) == Outcome::Failure)
                .then_some(Reason::FailureResponse),
        },
        Err(error) => match error.diagnose() {
            Reason::Error => {
                (classify.classify(Err(error)) == Outcome::Failure).then_some(Reason::Error)
            }
            reason => Some(reason),
        },
    }
}

/// Counts a fallback called (or failed). Off the success path: the label set is built per
/// count. Planned degradation counts through a handle registered with its service instead.
pub(crate) fn count(name: &'static str, reason: Reason, failed: bool) {
    let metric = if failed {
        names::FALLBACK_FAILURES
    } else {
        names::FALLBACKS
    };
    metrics::counter!(metric, names::LABEL_FALLBACK => name, names::LABEL_REASON => reason.as_str())
        .increment(1);
}

/// The response future of a fallback-wrapped service: the inner call, then, if the policy
/// calls for it, the fallback. No box: the fallback's future lives inline.
#[pin_project]
pub struct ResponseFuture<Fut, FB, K, E, M, C>
where
    FB: Service<FallbackRequest<K>>,
{
    #[pin]
    state: State<Fut, FB, K, E>,
    mode: M,
    classify: C,
    settings: Settings,
}

#[pin_project(project = StateProj, project_replace = StateOwn)]
enum State<Fut, FB, K, E>
where
    FB: Service<FallbackRequest<K>>,
{
    Inner {
        #[pin]
        future: Fut,
        fallback: FB,
        kept: K,
    },
    Fallback {
        #[pin]
        future: Call<FB, FallbackRequest<K>>,
        reason: Reason,
        original: Option<E>,
        /// The failure response the fallback answers, kept for the HTTP mode to return if the
        /// fallback fails too (a breaker's 503 keeps its `Retry-After`).
        response: Option<FB::Response>,
    },
    Done,
}

impl<Fut, FB, K, E, M, C> ResponseFuture<Fut, FB, K, E, M, C>
where
    FB: Service<FallbackRequest<K>>,
{
    pub(crate) fn inner(
        future: Fut,
        fallback: FB,
        kept: K,
        mode: M,
        classify: C,
        settings: Settings,
    ) -> Self {
        Self {
            state: State::Inner {
                future,
                fallback,
                kept,
            },
            mode,
            classify,
            settings,
        }
    }

    pub(crate) fn fallback(
        fallback: FB,
        request: FallbackRequest<K>,
        mode: M,
        classify: C,
        settings: Settings,
    ) -> Self {
        Self {
            state: State::Fallback {
                reason: request.reason,
                future: Call::new(fallback, request),
                original: None,
                response: None,
            },
            mode,
            classify,
            settings,
        }
    }
}

impl<Fut, FB, K, Res, E, M, C> Future for ResponseFuture<Fut, FB, K, E, M, C>
where
    Fut: Future<Output = Result<Res, E>>,
    FB: Service<FallbackRequest<K>, Response = Res>,
    M: Mode<Res, E, FB::Error>,
    C: Classify<Res, E>,
    E: Diagnose,
{
    type Output = Result<Res, M::Error>;

    // Inlined whole, so that the success path is the inner poll and a check of its result;
    // the fallback's branches live out of line.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let StateProj::Inner { future, .. } = this.state.as_mut().project() {
            let result = ready!(future.poll(cx));
            let reason = reason_for(this.mode, this.classify, result.as_ref())
                .filter(|reason| this.settings.reasons.contains(*reason));
            let Some(reason) = reason else {
                this.state.set(State::Done);
                return Poll::Ready(result.map_err(|error| this.mode.inner_error(error)));
            };
            start_fallback(this.state.as_mut(), reason, result, this.settings.name);
        }
        poll_fallback(this.state, this.mode, this.settings, cx)
    }
}

/// One call of a service: readiness, then the call, then its future. Tower's `Oneshot` does
/// the same; this one inlines into the degraded path.
#[pin_project(project = CallProj)]
enum Call<S: Service<Req>, Req> {
    Ready {
        service: S,
        request: Option<Req>,
    },
    Called {
        #[pin]
        future: S::Future,
    },
}

impl<S: Service<Req>, Req> Call<S, Req> {
    #[inline]
    fn new(service: S, request: Req) -> Self {
        Call::Ready {
            service,
            request: Some(request),
        }
    }
}

impl<S: Service<Req>, Req> Future for Call<S, Req> {
    type Output = Result<S::Response, S::Error>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                CallProj::Ready { service, request } => {
                    ready!(service.poll_ready(cx))?;
                    let Some(request) = request.take() else {
                        unreachable!("a call is made once")
                    };
                    let future = service.call(request);
                    self.set(Call::Called { future });
                }
                CallProj::Called { future } => return future.poll(cx),
            }
        }
    }
}

/// Moves from the inner call to the fallback, handing it what was kept.
#[cold]
#[inline(never)]
fn start_fallback<Fut, FB, K, E>(
    mut state: Pin<&mut State<Fut, FB, K, E>>,
    reason: Reason,
    result: Result<FB::Response, E>,
    name: &'static str,
) where
    FB: Service<FallbackRequest<K>>,
{
    let (response, original) = match result {
        Ok(response) => (Some(response), None),
        Err(error) => (None, Some(error)),
    };
    count(name, reason, false);
    let StateOwn::Inner { fallback, kept, .. } = state.as_mut().project_replace(State::Done) else {
        unreachable!("the fallback starts from the inner call")
    };
    state.set(State::Fallback {
        future: Call::new(fallback, FallbackRequest { reason, kept }),
        reason,
        original,
        response,
    });
}

/// Polls the fallback, then marks its answer or counts its failure.
#[inline]
fn poll_fallback<Fut, FB, K, Res, E, M>(
    mut state: Pin<&mut State<Fut, FB, K, E>>,
    mode: &M,
    settings: &Settings,
    cx: &mut Context<'_>,
) -> Poll<Result<Res, M::Error>>
where
    FB: Service<FallbackRequest<K>, Response = Res>,
    M: Mode<Res, E, FB::Error>,
{
    let StateProj::Fallback {
        future,
        reason,
        original,
        response: failure,
    } = state.as_mut().project()
    else {
        panic!("fallback response future polled after completion")
    };
    let result = ready!(future.poll(cx));
    let (reason, original, failure) = (*reason, original.take(), failure.take());
    state.set(State::Done);
    Poll::Ready(match result {
        Ok(mut response) => {
            mode.mark(&mut response, Degraded::new(reason), settings.header);
            Ok(response)
        }
        Err(error) => {
            count(settings.name, reason, true);
            mode.fallback_failed(FallbackFailed::new(reason, original, error), failure)
        }
    })
}

impl<Fut, FB, K, E, M, C> std::fmt::Debug for ResponseFuture<Fut, FB, K, E, M, C>
where
    FB: Service<FallbackRequest<K>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Inner { .. } => "inner",
            State::Fallback { .. } => "fallback",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
