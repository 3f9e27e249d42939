use std::borrow::Borrow;
use std::fmt;
use std::task::{Context, Poll};

use steadfast_core::Classify;
use tower_service::Service;

use crate::future::{Admission, ResponseFuture};
use crate::mode::Mode;
use crate::timeout::{CallTimeout, NoTimeout};
use crate::{CircuitBreaker, Rejected};

/// Provides the breaker a request goes through: one breaker for all, or one per key.
pub trait BreakerProvider<Req>: Clone {
    /// What an admitted call holds on to until it ends: a counted handle, or a
    /// `&'static CircuitBreaker` (no count to touch).
    type Handle: Borrow<CircuitBreaker>;

    /// Asks the breaker for `request` for leave to call.
    ///
    /// # Errors
    ///
    /// [`Rejected`] when that breaker refuses.
    fn admit(&self, request: &Req) -> Result<Admission<Self::Handle>, Rejected>;
}

/// What a layer holds, to make the provider of each service it wraps.
///
/// Most providers are their own maker; the default layer's
/// [`Striped`](crate::striped::Striped) makes services that hold one handle per core.
pub trait MakeProvider: Clone {
    /// The provider a service holds.
    type Provider;

    /// The provider of a service the layer is making.
    fn make_provider(&self) -> Self::Provider;
}

impl<Req> BreakerProvider<Req> for &'static CircuitBreaker {
    type Handle = &'static CircuitBreaker;

    #[inline(always)]
    fn admit(&self, _request: &Req) -> Result<Admission<&'static CircuitBreaker>, Rejected> {
        Admission::new(*self)
    }
}

impl MakeProvider for &'static CircuitBreaker {
    type Provider = Self;

    fn make_provider(&self) -> Self {
        self
    }
}

/// A service wrapped in a circuit breaker; made by [`CircuitBreakerLayer`](crate::CircuitBreakerLayer).
///
/// `poll_ready` is the inner service's: the breaker never makes it wait. A refused call is
/// answered in `call` without touching the inner service.
#[derive(Clone)]
pub struct CircuitBreakerService<S, C, M, P, T = NoTimeout> {
    pub(crate) inner: S,
    pub(crate) provider: P,
    pub(crate) classifier: C,
    pub(crate) mode: M,
    pub(crate) timeout: T,
}

impl<S, C, M, P, T> CircuitBreakerService<S, C, M, P, T> {
    /// The inner service.
    pub const fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// What provides the breaker.
    pub const fn provider(&self) -> &P {
        &self.provider
    }
}

impl<S, Req, C, M, P, T> Service<Req> for CircuitBreakerService<S, C, M, P, T>
where
    S: Service<Req>,
    C: Classify<S::Response, S::Error> + Clone,
    M: Mode<S::Response, S::Error>,
    P: BreakerProvider<Req>,
    T: CallTimeout,
{
    type Response = S::Response;
    type Error = M::Error;
    type Future = ResponseFuture<S::Future, C, M, P::Handle, T::Timer>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|error| self.mode.inner_error(error))
    }

    #[inline]
    fn call(&mut self, request: Req) -> Self::Future {
        match self.provider.admit(&request) {
            Ok(permit) => ResponseFuture::called(
                self.inner.call(request),
                self.timeout.start(),
                permit,
                self.classifier.clone(),
                self.mode.clone(),
            ),
            Err(rejected) => ResponseFuture::rejected(rejected, self.mode.clone()),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug, M: fmt::Debug, P: fmt::Debug, T: fmt::Debug> fmt::Debug
    for CircuitBreakerService<S, C, M, P, T>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerService")
            .field("inner", &self.inner)
            .field("provider", &self.provider)
            .field("classifier", &self.classifier)
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .finish()
    }
}
