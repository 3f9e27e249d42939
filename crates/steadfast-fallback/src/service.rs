//! The fallback-wrapped service.

use std::task::{Context, Poll};

use steadfast_core::metrics as names;
use steadfast_core::{Classify, Reason};
use tower_service::Service;

use crate::future::{FallbackRequest, ResponseFuture, Settings};
use crate::keep::Keep;
use crate::mode::Mode;
use crate::reason::Diagnose;
use crate::switch::Switch;

/// A service that answers from a fallback when its inner service fails for a reason the
/// policy names, or while its degradation switch is on. Made by
/// [`FallbackLayer`](crate::FallbackLayer).
#[derive(Debug)]
pub struct FallbackService<S, F, K, M, C> {
    inner: S,
    fallback: F,
    keep: K,
    mode: M,
    classify: C,
    settings: Settings,
    switch: Option<Bound>,
    /// `poll_ready` found the switch on and did not poll the inner service: the next call
    /// answers from the fallback whatever the switch says by then.
    degraded: bool,
}

impl<S: Clone, F: Clone, K: Clone, M: Clone, C: Clone> Clone for FallbackService<S, F, K, M, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            fallback: self.fallback.clone(),
            keep: self.keep.clone(),
            mode: self.mode.clone(),
            classify: self.classify.clone(),
            settings: self.settings,
            switch: self.switch.clone(),
            // A clone is not ready because its original was.
            degraded: false,
        }
    }
}

/// A switch the route is bound to, at a level.
#[derive(Clone, Debug)]
pub(crate) struct Bound {
    pub(crate) switch: Switch,
    pub(crate) level: u8,
    pub(crate) counter: metrics::Counter,
}

impl Bound {
    pub(crate) fn new(switch: Switch, level: u8, name: &'static str) -> Self {
        let counter = metrics::counter!(
            names::FALLBACKS,
            names::LABEL_FALLBACK => name,
            names::LABEL_REASON => Reason::Switch.as_str()
        );
        Self {
            switch,
            // Level 0 is full service: a route bound at 0 would never be served.
            level: level.max(1),
            counter,
        }
    }

    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.switch.level() >= self.level
    }
}

impl<S, F, K, M, C> FallbackService<S, F, K, M, C> {
    pub(crate) const fn new(
        inner: S,
        fallback: F,
        keep: K,
        mode: M,
        classify: C,
        settings: Settings,
        switch: Option<Bound>,
    ) -> Self {
        Self {
            inner,
            fallback,
            keep,
            mode,
            classify,
            settings,
            switch,
            degraded: false,
        }
    }

    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, F, K, M, C, Req> Service<Req> for FallbackService<S, F, K, M, C>
where
    S: Service<Req>,
    S::Error: Diagnose,
    K: Keep<Req>,
    F: Service<FallbackRequest<K::Kept>, Response = S::Response> + Clone,
    M: Mode<S::Response, S::Error, F::Error>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = M::Error;
    type Future = ResponseFuture<S::Future, F, K::Kept, S::Error, M, C>;

    /// Ready at once while the bound switch is on: planned degradation must not wait on a
    /// dependency that is not ready (a full concurrency limit), since that is when it is
    /// used. A request already waiting for the dependency when the switch flips keeps
    /// waiting until the dependency wakes it: put a timeout or a load shedder inside, so that
    /// no wait is unbounded. Otherwise the inner service's readiness; an error there passes through without
    /// the fallback, as in tower a readiness error means the service is broken for good (a
    /// closed `Buffer`), and there is no request yet to answer.
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.switch.as_ref().is_some_and(Bound::is_on) {
            self.degraded = true;
            return Poll::Ready(Ok(()));
        }
        self.degraded = false;
        self.inner
            .poll_ready(cx)
            .map_err(|error| self.mode.inner_error(error))
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        let kept = self.keep.keep(&request);
        let degraded = std::mem::take(&mut self.degraded);
        if let Some(bound) = &self.switch {
            if degraded || bound.is_on() {
                // Planned degradation: the inner service is not called. Capacity it reserved
                // in `poll_ready` stays reserved until its next call or its drop, as with any
                // tower service that is polled ready and then not called.
                drop(request);
                bound.counter.increment(1);
                return ResponseFuture::fallback(
                    self.fallback.clone(),
                    FallbackRequest {
                        reason: Reason::Switch,
                        kept,
                    },
                    self.mode.clone(),
                    self.classify.clone(),
                    self.settings,
                );
            }
        }
        ResponseFuture::inner(
            self.inner.call(request),
            self.fallback.clone(),
            kept,
            self.mode.clone(),
            self.classify.clone(),
            self.settings,
        )
    }
}
