use std::fmt;

use steadfast_core::AnyError;
use tower_layer::Layer;

use crate::mode::{Boxed, Typed};
use crate::{CircuitBreaker, CircuitBreakerService};

/// Wraps services in a circuit breaker.
///
/// `C` classifies results ([`AnyError`] by default), `M` decides what a refused call looks like
/// ([`Typed`] by default), and `P` provides the breaker: one [`CircuitBreaker`], or a
/// [`Keyed`](crate::keyed::Keyed) registry of one per key.
///
/// The breaker's state is created with the breaker, not with the service, so every service the
/// layer makes, and every clone of them, shares it.
#[derive(Clone)]
pub struct CircuitBreakerLayer<C = AnyError, M = Typed, P = CircuitBreaker> {
    pub(crate) provider: P,
    pub(crate) classifier: C,
    pub(crate) mode: M,
}

impl CircuitBreakerLayer {
    /// A layer over `breaker`: every `Err` is a failure, refusals are [`Error::Rejected`](crate::Error).
    #[must_use]
    pub const fn new(breaker: CircuitBreaker) -> Self {
        Self {
            provider: breaker,
            classifier: AnyError,
            mode: Typed,
        }
    }
}

impl CircuitBreakerLayer<AnyError, Typed, &'static CircuitBreaker> {
    /// A layer over a breaker that lives for the rest of the process (see
    /// [`CircuitBreaker::leak`]): its calls hold a plain reference, so the hot path touches no
    /// reference count and threads do not contend on one.
    #[must_use]
    pub const fn from_static(breaker: &'static CircuitBreaker) -> Self {
        Self {
            provider: breaker,
            classifier: AnyError,
            mode: Typed,
        }
    }
}

impl<C, M, P> CircuitBreakerLayer<C, M, P> {
    /// Classifies results with `classifier` instead.
    pub fn classify<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2, M, P> {
        CircuitBreakerLayer {
            provider: self.provider,
            classifier,
            mode: self.mode,
        }
    }

    /// Reports every error as a `BoxError`; refusals downcast to [`Rejected`](crate::Rejected).
    pub fn boxed_errors(self) -> CircuitBreakerLayer<C, Boxed, P> {
        self.mode(Boxed)
    }

    /// Uses another [`Mode`](crate::mode::Mode).
    pub fn mode<M2>(self, mode: M2) -> CircuitBreakerLayer<C, M2, P> {
        CircuitBreakerLayer {
            provider: self.provider,
            classifier: self.classifier,
            mode,
        }
    }

    /// The HTTP mode, for axum and hyper: refusals answer `503` problem+json with
    /// `Retry-After`, the service keeps its inner error type (`Infallible` in axum), and 5xx
    /// responses count as failures (change that with [`CircuitBreakerLayer::classify`] after
    /// this call).
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn http(self) -> CircuitBreakerLayer<steadfast_core::HttpStatus, crate::mode::Http, P> {
        self.mode(crate::mode::Http)
            .classify(steadfast_core::HttpStatus::server_errors())
    }

    /// The gRPC mode, for tonic: errors are `tonic::Status`, refusals are `UNAVAILABLE`, and
    /// [`GrpcCodes`](steadfast_core::GrpcCodes) classifies results (change that with
    /// [`CircuitBreakerLayer::classify`] after this call).
    #[cfg(feature = "tonic")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
    pub fn grpc(self) -> CircuitBreakerLayer<steadfast_core::GrpcCodes, crate::mode::Grpc, P> {
        self.mode(crate::mode::Grpc)
            .classify(steadfast_core::GrpcCodes::default())
    }

    /// What provides the breaker: the [`CircuitBreaker`], or the keyed registry.
    pub const fn provider(&self) -> &P {
        &self.provider
    }
}

impl<S, C: Clone, M: Clone, P: Clone> Layer<S> for CircuitBreakerLayer<C, M, P> {
    type Service = CircuitBreakerService<S, C, M, P>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService {
            inner,
            provider: self.provider.clone(),
            classifier: self.classifier.clone(),
            mode: self.mode.clone(),
        }
    }
}

impl<C: fmt::Debug, M: fmt::Debug, P: fmt::Debug> fmt::Debug for CircuitBreakerLayer<C, M, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("provider", &self.provider)
            .field("classifier", &self.classifier)
            .field("mode", &self.mode)
            .finish()
    }
}
