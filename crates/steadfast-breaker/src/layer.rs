use std::fmt;
use std::time::Duration;

use steadfast_core::AnyError;
use tower_layer::Layer;

use crate::mode::{Boxed, Typed};
use crate::service::MakeProvider;
use crate::striped::Striped;
use crate::timeout::{NoTimeout, Timeout};
use crate::{CircuitBreaker, CircuitBreakerService};

/// Wraps services in a circuit breaker.
///
/// `C` classifies results ([`AnyError`] by default), `M` decides what a refused call looks like
/// ([`Typed`] by default), `P` provides the breaker (one [`CircuitBreaker`] through
/// [`Striped`] handles, a `&'static` one, or a [`Keyed`](crate::keyed::Keyed) registry of one
/// per key), and `T` is the call timeout ([`NoTimeout`], or one set with
/// [`CircuitBreakerLayer::timeout`]).
///
/// The breaker's state is created with the breaker, not with the service, so every service the
/// layer makes, and every clone of them, shares it.
#[derive(Clone)]
pub struct CircuitBreakerLayer<C = AnyError, M = Typed, P = Striped, T = NoTimeout> {
    pub(crate) provider: P,
    pub(crate) classifier: C,
    pub(crate) mode: M,
    pub(crate) timeout: T,
}

impl CircuitBreakerLayer {
    /// A layer over `breaker`: every `Err` is a failure, refusals are [`Error::Rejected`](crate::Error).
    #[must_use]
    pub fn new(breaker: CircuitBreaker) -> Self {
        Self {
            provider: Striped::new(breaker),
            classifier: AnyError,
            mode: Typed,
            timeout: NoTimeout,
        }
    }
}

impl CircuitBreakerLayer<AnyError, Typed, &'static CircuitBreaker> {
    /// A layer over a breaker that lives for the rest of the process (see
    /// [`CircuitBreaker::leak`]): its calls hold a plain reference, so the hot path touches no
    /// reference count at all.
    #[must_use]
    pub const fn from_static(breaker: &'static CircuitBreaker) -> Self {
        Self {
            provider: breaker,
            classifier: AnyError,
            mode: Typed,
            timeout: NoTimeout,
        }
    }
}

impl<C, M, P, T> CircuitBreakerLayer<C, M, P, T> {
    /// Classifies results with `classifier` instead.
    pub fn classify<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2, M, P, T> {
        CircuitBreakerLayer {
            provider: self.provider,
            classifier,
            mode: self.mode,
            timeout: self.timeout,
        }
    }

    /// Reports every error as a `BoxError`; refusals downcast to [`Rejected`](crate::Rejected),
    /// timeouts to [`TimedOut`](crate::TimedOut).
    pub fn boxed_errors(self) -> CircuitBreakerLayer<C, Boxed, P, T> {
        self.mode(Boxed)
    }

    /// Uses another [`Mode`](crate::mode::Mode).
    pub fn mode<M2>(self, mode: M2) -> CircuitBreakerLayer<C, M2, P, T> {
        CircuitBreakerLayer {
            provider: self.provider,
            classifier: self.classifier,
            mode,
            timeout: self.timeout,
        }
    }

    /// Times calls out after `after`, inside the breaker, so that a timeout counts as a
    /// failure: a dependency that hangs trips the breaker as one that refuses does. See
    /// [`timeout`](crate::timeout) for why it belongs here rather than outside. Needs a tokio
    /// runtime with time enabled.
    pub fn timeout(self, after: Duration) -> CircuitBreakerLayer<C, M, P, Timeout> {
        CircuitBreakerLayer {
            provider: self.provider,
            classifier: self.classifier,
            mode: self.mode,
            timeout: Timeout::new(after),
        }
    }

    /// The HTTP mode, for axum and hyper: refusals answer `503` problem+json with
    /// `Retry-After`, timeouts `504`, the service keeps its inner error type (`Infallible` in
    /// axum), and 5xx responses count as failures (change that with
    /// [`CircuitBreakerLayer::classify`] after this call).
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn http(self) -> CircuitBreakerLayer<steadfast_core::HttpStatus, crate::mode::Http, P, T> {
        self.mode(crate::mode::Http)
            .classify(steadfast_core::HttpStatus::server_errors())
    }

    /// The gRPC mode, for tonic: errors are `tonic::Status`, refusals are `UNAVAILABLE`,
    /// timeouts `DEADLINE_EXCEEDED`, and [`GrpcCodes`](steadfast_core::GrpcCodes) classifies
    /// results (change that with [`CircuitBreakerLayer::classify`] after this call).
    #[cfg(feature = "tonic")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
    pub fn grpc(self) -> CircuitBreakerLayer<steadfast_core::GrpcCodes, crate::mode::Grpc, P, T> {
        self.mode(crate::mode::Grpc)
            .classify(steadfast_core::GrpcCodes::default())
    }

    /// What provides the breaker: [`Striped`], a `&'static CircuitBreaker`, or the keyed
    /// registry.
    pub const fn provider(&self) -> &P {
        &self.provider
    }
}

impl<S, C: Clone, M: Clone, P: MakeProvider, T: Clone> Layer<S>
    for CircuitBreakerLayer<C, M, P, T>
{
    type Service = CircuitBreakerService<S, C, M, P::Provider, T>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            provider: self.provider.make_provider(),
            classifier: self.classifier.clone(),
            mode: self.mode.clone(),
            timeout: self.timeout.clone(),
        }
    }
}

impl<C: fmt::Debug, M: fmt::Debug, P: fmt::Debug, T: fmt::Debug> fmt::Debug
    for CircuitBreakerLayer<C, M, P, T>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("provider", &self.provider)
            .field("classifier", &self.classifier)
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .finish()
    }
}
