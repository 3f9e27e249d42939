//! The layer that records every call of a service into an SLO.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use crossbeam_utils::CachePadded;
use pin_project::{pin_project, pinned_drop};
use steadfast_core::stripe::{default_stripes, thread_stripe};
use steadfast_core::{AnyError, Classify, Outcome};
use tower_layer::Layer;
use tower_service::Service;

use crate::Slo;

/// Records the outcome of every call into an [`Slo`], classified by a
/// [`Classify`](steadfast_core::Classify) (default: every `Err` is bad).
///
/// With a latency threshold or a latency SLI, calls are timed with the precise clock;
/// otherwise no clock is read per call.
///
/// # Its place among the layers
///
/// Outermost: **SLI recording** → fallback → cache → breaker → timeout → the client (or, for a
/// server route, **SLI recording** → idempotency → response cache → the handler). It sees what
/// the caller sees: a fallback's answer is good for the caller, so wrap the SLI around the
/// fallback to measure the experience, or inside it to measure the dependency.
///
/// A call dropped before it finished (the caller went away, an outer timeout) counts as bad
/// only if it had already run past the latency threshold; otherwise it says nothing.
///
/// ```
/// use steadfast_core::Outcome;
/// use steadfast_slo::Slo;
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let slo = Slo::builder("search").objective(0.99).build().unwrap();
/// let service = ServiceBuilder::new()
///     .layer(slo.layer())
///     .service(service_fn(|q: &'static str| async move {
///         if q.is_empty() { Err("empty query") } else { Ok(q.len()) }
///     }));
///
/// service.clone().oneshot("rust").await.unwrap();
/// service.clone().oneshot("").await.unwrap_err();
/// let report = slo.report();
/// assert_eq!((report.good, report.total), (1, 2));
/// # }
/// ```
#[derive(Clone)]
pub struct SliLayer<C = AnyError> {
    slo: Slo,
    stubs: Stubs,
    classify: C,
}

/// One handle on the SLO per thread stripe, each with its own reference count on its own
/// cache line: a call clones its stripe's handle into the response future, so calls on two
/// cores never write the same count.
#[derive(Clone)]
struct Stubs(Arc<[Arc<CachePadded<Slo>>]>);

impl Stubs {
    fn new(slo: &Slo) -> Self {
        Self(
            (0..default_stripes())
                .map(|_| Arc::new(CachePadded::new(slo.clone())))
                .collect(),
        )
    }

    #[inline]
    fn pick(&self) -> Arc<CachePadded<Slo>> {
        // The stripe count is a power of two.
        self.0[thread_stripe() & (self.0.len() - 1)].clone()
    }
}

impl SliLayer {
    /// Records into `slo`, every `Err` being bad.
    #[must_use]
    pub fn new(slo: Slo) -> Self {
        Self {
            stubs: Stubs::new(&slo),
            slo,
            classify: AnyError,
        }
    }
}

impl<C> SliLayer<C> {
    /// Classifies results with `classify` instead: for example `HttpStatus` so that a 5xx is
    /// bad while the service stays `Infallible`.
    #[must_use]
    pub fn classify<D>(self, classify: D) -> SliLayer<D> {
        SliLayer {
            slo: self.slo,
            stubs: self.stubs,
            classify,
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for SliLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SliLayer")
            .field("slo", &self.slo.name())
            .field("classify", &self.classify)
            .finish()
    }
}

impl<S, C: Clone> Layer<S> for SliLayer<C> {
    type Service = Sli<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Sli {
            inner,
            slo: self.slo.clone(),
            stubs: self.stubs.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// The service of [`SliLayer`].
#[derive(Clone)]
pub struct Sli<S, C = AnyError> {
    inner: S,
    slo: Slo,
    stubs: Stubs,
    classify: C,
}

impl<S, C> Sli<S, C> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
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

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Sli<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sli")
            .field("inner", &self.inner)
            .field("slo", &self.slo.name())
            .field("classify", &self.classify)
            .finish()
    }
}

impl<S, C, Request> Service<Request> for Sli<S, C>
where
    S: Service<Request>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let ready = ready!(self.inner.poll_ready(cx));
        if let Err(error) = &ready {
            // A service that cannot take calls (a buffer whose worker died) fails its callers.
            self.slo.record(self.classify.classify(Err(error)));
        }
        Poll::Ready(ready)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let start = if self.slo.times_calls() {
            Some(self.slo.inner.time.precise())
        } else {
            None
        };
        ResponseFuture {
            inner: self.inner.call(request),
            slo: Some(self.stubs.pick()),
            classify: self.classify.clone(),
            start,
        }
    }
}

/// The response future of [`Sli`].
#[pin_project(PinnedDrop)]
pub struct ResponseFuture<F, C> {
    #[pin]
    inner: F,
    /// Taken when the outcome is recorded, so a drop after completion records nothing.
    slo: Option<Arc<CachePadded<Slo>>>,
    classify: C,
    start: Option<u64>,
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("done", &self.slo.is_none())
            .finish_non_exhaustive()
    }
}

fn elapsed(slo: &Slo, start: u64) -> Duration {
    Duration::from_nanos(slo.inner.time.precise().saturating_sub(start))
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    C: Classify<T, E>,
{
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Some(slo) = this.slo.take() {
            let outcome = this.classify.classify(result.as_ref());
            match *this.start {
                Some(start) => slo.record_elapsed(outcome, elapsed(&slo, start)),
                None => slo.record(outcome),
            }
        }
        Poll::Ready(result)
    }
}

#[pinned_drop]
impl<F, C> PinnedDrop for ResponseFuture<F, C> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if let (Some(slo), Some(start)) = (this.slo.take(), *this.start) {
            let elapsed = elapsed(&slo, start);
            if elapsed > slo.inner.threshold() {
                // Ran past its threshold before the caller gave up: the caller waited too long.
                slo.record_elapsed(Outcome::Failure, elapsed);
            }
        }
    }
}
