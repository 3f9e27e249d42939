//! The fallback layer and its builder.

use std::time::Duration;

use steadfast_core::AnyError;
use tower_layer::Layer;

use crate::future::Settings;
use crate::keep::Nothing;
use crate::mode::{Boxed, Typed};
use crate::reason::Reasons;
use crate::service::{Bound, FallbackService};
use crate::switch::Switch;

/// Answers from a fallback when the inner call fails for a reason the policy names, or while a
/// degradation switch is on.
///
/// - The fallback is a `Service<FallbackRequest<Kept>>` ([`new`](Self::new)) or an async
///   closure ([`from_fn`](Self::from_fn)); it is cloned into each call's future, so keep it
///   cheap to clone (a closure, or state behind an `Arc`).
/// - [`on`](Self::on) chooses the reasons (all by default); [`classify`](Self::classify)
///   which errors and responses are failures; [`keep`](Self::keep) what the fallback gets of
///   the request; [`switch`](Self::switch) binds the route to a degradation switch.
/// - [`http`](Self::http), [`grpc`](Self::grpc) and [`boxed_errors`](Self::boxed_errors)
///   choose the [mode](crate::mode). `http()` and `grpc()` also set the keep function and the
///   classifier to their defaults, so call them first: `.http().keep(Headers)`, not
///   `.keep(Headers).http()`.
///
/// ```
/// use steadfast_fallback::{FallbackLayer, FallbackRequest, Reasons};
/// use tower::{service_fn, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .layer(
///         FallbackLayer::from_fn(|request: FallbackRequest<()>| async move {
///             Ok::<_, std::convert::Infallible>(format!("cached page ({})", request.reason.as_str()))
///         })
///         .on(Reasons::ANY_ERROR),
///     )
///     .service(service_fn(|_: ()| async { Err::<String, _>(std::io::Error::other("db down")) }));
///
/// assert_eq!(service.oneshot(()).await.unwrap(), "cached page (error)");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct FallbackLayer<F, K = Nothing, M = Typed, C = AnyError> {
    fallback: F,
    keep: K,
    mode: M,
    classify: C,
    reasons: Reasons,
    switch: Option<(Switch, u8)>,
    header: bool,
    name: &'static str,
}

impl<F> FallbackLayer<F> {
    /// A layer answering from the service `fallback`, for every reason, keeping nothing of
    /// the request, in the typed mode.
    pub const fn new(fallback: F) -> Self {
        Self {
            fallback,
            keep: Nothing,
            mode: Typed,
            classify: AnyError,
            reasons: Reasons::ALL,
            switch: None,
            header: false,
            name: "fallback",
        }
    }
}

impl<T> FallbackLayer<tower::util::ServiceFn<T>> {
    /// A layer answering from an async closure `FallbackRequest<Kept> -> Result<Response, E>`.
    pub fn from_fn(fallback: T) -> Self {
        Self::new(tower::service_fn(fallback))
    }
}

impl<F, K, M, C> FallbackLayer<F, K, M, C> {
    /// The reasons the fallback answers: [`Reasons::BREAKER_OPEN`] for "only when the breaker
    /// is open", [`Reasons::ANY_ERROR`] for any error, [`Reasons::ALL`] (the default) for
    /// errors and failure responses too. A bound [`switch`](Self::switch) answers whatever the
    /// reasons are.
    #[must_use]
    pub fn on(mut self, reasons: impl Into<Reasons>) -> Self {
        self.reasons = reasons.into();
        self
    }

    /// What the fallback gets of the request (see [`keep`](crate::keep) for each choice's
    /// cost).
    pub fn keep<K2>(self, keep: K2) -> FallbackLayer<F, K2, M, C> {
        FallbackLayer {
            fallback: self.fallback,
            keep,
            mode: self.mode,
            classify: self.classify,
            reasons: self.reasons,
            switch: self.switch,
            header: self.header,
            name: self.name,
        }
    }

    /// Which results are failures: an error the classifier calls a failure is
    /// [`Reason::Error`](crate::Reason::Error) (the predicate over inner errors), a response it calls a failure
    /// [`Reason::FailureResponse`](crate::Reason::FailureResponse). Refusals, timeouts and sheds are known by their type.
    pub fn classify<C2>(self, classify: C2) -> FallbackLayer<F, K, M, C2> {
        FallbackLayer {
            fallback: self.fallback,
            keep: self.keep,
            mode: self.mode,
            classify,
            reasons: self.reasons,
            switch: self.switch,
            header: self.header,
            name: self.name,
        }
    }

    fn mode<M2>(self, mode: M2) -> FallbackLayer<F, K, M2, C> {
        FallbackLayer {
            fallback: self.fallback,
            keep: self.keep,
            mode,
            classify: self.classify,
            reasons: self.reasons,
            switch: self.switch,
            header: self.header,
            name: self.name,
        }
    }

    /// Binds the route to `switch`: while it is at `level` or above, the route answers from
    /// its fallback ([`Reason::Switch`](crate::Reason::Switch)) without calling the inner service. Level 0 is full
    /// service, so a level of 0 is read as 1. Binding a switch is the declaration: the switch
    /// answers whatever reasons [`on`](Self::on) names.
    #[must_use]
    pub fn switch(mut self, switch: Switch, level: u8) -> Self {
        self.switch = Some((switch, level));
        self
    }

    /// Bounds how long the fallback may take, readiness and answer: past `timeout` the caller
    /// gets a failed fallback (its error a `tower::timeout::error::Elapsed`) instead of
    /// waiting. Nothing below the fallback can bound it (the timeout sits inside the breaker),
    /// and with a switch on the fallback is all that is called, so set one wherever the
    /// fallback does I/O.
    pub fn fallback_timeout(
        self,
        timeout: Duration,
    ) -> FallbackLayer<tower::timeout::Timeout<F>, K, M, C> {
        FallbackLayer {
            fallback: tower::timeout::Timeout::new(self.fallback, timeout),
            keep: self.keep,
            mode: self.mode,
            classify: self.classify,
            reasons: self.reasons,
            switch: self.switch,
            header: self.header,
            name: self.name,
        }
    }

    /// Adds the `steadfast-degraded: <reason>` header to fallback answers (HTTP and gRPC
    /// modes), so clients can see them; the `Degraded` extension is always there.
    #[must_use]
    pub const fn header(mut self, header: bool) -> Self {
        self.header = header;
        self
    }

    /// The name in metrics (`fallback` label); `"fallback"` by default.
    #[must_use]
    pub const fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// Errors boxed, to stack with tower layers that box.
    pub fn boxed_errors(self) -> FallbackLayer<F, K, Boxed, C> {
        self.mode(Boxed)
    }

    /// The HTTP mode: failure responses are 5xx, the fallback keeps method and URI, answers
    /// are marked, errors pass through unchanged (axum routes stay `Infallible`).
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn http(
        self,
    ) -> FallbackLayer<F, crate::keep::MethodUri, crate::mode::Http, steadfast_core::HttpStatus>
    {
        self.mode(crate::mode::Http)
            .keep(crate::keep::MethodUri)
            .classify(steadfast_core::HttpStatus::server_errors())
    }

    /// The gRPC mode: failures by status code (`GrpcCodes::default()`), the fallback keeps
    /// the method's path, errors are `tonic::Status`.
    #[cfg(feature = "tonic")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
    pub fn grpc(
        self,
    ) -> FallbackLayer<F, crate::keep::MethodUri, crate::mode::Grpc, steadfast_core::GrpcCodes>
    {
        self.mode(crate::mode::Grpc)
            .keep(crate::keep::MethodUri)
            .classify(steadfast_core::GrpcCodes::default())
    }

    pub(crate) fn settings(&self) -> Settings {
        Settings {
            reasons: self.reasons,
            header: self.header,
            name: self.name,
        }
    }

    pub(crate) fn bound(&self) -> Option<Bound> {
        self.switch
            .as_ref()
            .map(|(switch, level)| Bound::new(switch.clone(), *level, self.name))
    }
}

impl<S, F, K, M, C> Layer<S> for FallbackLayer<F, K, M, C>
where
    F: Clone,
    K: Clone,
    M: Clone,
    C: Clone,
{
    type Service = FallbackService<S, F, K, M, C>;

    fn layer(&self, inner: S) -> Self::Service {
        FallbackService::new(
            inner,
            self.fallback.clone(),
            self.keep.clone(),
            self.mode.clone(),
            self.classify.clone(),
            self.settings(),
            self.bound(),
        )
    }
}
