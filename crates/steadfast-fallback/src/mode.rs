//! Modes: what the caller sees of a fallback's answer and of errors.
//!
//! - [`Typed`] (the default): errors as [`Error`]: the inner error where the policy let it
//!   through, a [`FallbackFailed`] where the fallback failed too. A generic response has
//!   nowhere to carry the [`Degraded`] marker, so it carries none.
//! - [`Boxed`]: errors as `BoxError`, to stack with tower layers that box.
//! - `Http` (feature `http`): the response carries `Degraded` as an extension (and, by option,
//!   a `steadfast-degraded` header); the inner error type is kept, so an axum route stays
//!   `Infallible`; a failed fallback is a `503` problem+json answer.
//! - `Grpc` (feature `tonic`): errors are `tonic::Status`; a failed fallback is `UNAVAILABLE`
//!   whose source is a [`BoxedFallbackFailed`](crate::BoxedFallbackFailed).

use steadfast_core::{BoxError, Degraded, Reason};

use crate::error::{Error, FallbackFailed};

/// Turns the inner service's errors, a fallback's answer and a fallback's failure into the
/// wrapped service's output.
pub trait Mode<Res, E, FE>: Clone {
    /// The wrapped service's error type.
    type Error;

    /// A reason carried by the response itself: a marker left by an inner layer (the breaker's
    /// HTTP mode marks its refusals). Checked before the classifier.
    fn marked(&self, _response: &Res) -> Option<Reason> {
        None
    }

    /// Marks a response produced by the fallback.
    fn mark(&self, _response: &mut Res, _degraded: Degraded, _header: bool) {}

    /// Converts an inner error the fallback did not answer.
    fn inner_error(&self, error: E) -> Self::Error;

    /// The output when the fallback failed too; `response` is the failure response the
    /// fallback was answering, if it answered one.
    ///
    /// # Errors
    ///
    /// Modes that report the failure as an error return it here.
    fn fallback_failed(
        &self,
        failed: FallbackFailed<E, FE>,
        response: Option<Res>,
    ) -> Result<Res, Self::Error>;
}

/// Errors as [`Error`]; responses unmarked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Typed;

impl<Res, E, FE> Mode<Res, E, FE> for Typed {
    type Error = Error<E, FE>;

    #[inline]
    fn inner_error(&self, error: E) -> Error<E, FE> {
        Error::Inner(error)
    }

    fn fallback_failed(
        &self,
        failed: FallbackFailed<E, FE>,
        _response: Option<Res>,
    ) -> Result<Res, Error<E, FE>> {
        Err(Error::Fallback(failed))
    }
}

/// Errors boxed; a failed fallback is a boxed [`BoxedFallbackFailed`](crate::BoxedFallbackFailed).
#[derive(Clone, Copy, Debug, Default)]
pub struct Boxed;

impl<Res, E, FE> Mode<Res, E, FE> for Boxed
where
    E: Into<BoxError>,
    FE: Into<BoxError>,
{
    type Error = BoxError;

    fn inner_error(&self, error: E) -> BoxError {
        error.into()
    }

    fn fallback_failed(
        &self,
        failed: FallbackFailed<E, FE>,
        _response: Option<Res>,
    ) -> Result<Res, BoxError> {
        Err(Box::new(failed.boxed()))
    }
}

/// Responses that can carry the [`Degraded`] marker.
pub trait Mark {
    /// Adds the marker, and the `steadfast-degraded` header when `header` is set.
    fn mark(&mut self, degraded: Degraded, header: bool);
}

#[cfg(feature = "http")]
mod http_mode {
    use super::{Mark, Mode};
    use crate::error::FallbackFailed;
    use bytes::Bytes;
    use http::{header, HeaderName, HeaderValue, Response, StatusCode};
    use steadfast_breaker::{Rejected, TimedOut};
    use steadfast_core::{Degraded, Reason};

    /// The header naming why a response is degraded, when the layer is asked to add it.
    pub const DEGRADED_HEADER: HeaderName = HeaderName::from_static("steadfast-degraded");

    fn reason_value(reason: Reason) -> HeaderValue {
        HeaderValue::from_static(reason.as_str())
    }

    impl<B> Mark for Response<B> {
        fn mark(&mut self, degraded: Degraded, header: bool) {
            if header {
                self.headers_mut()
                    .insert(DEGRADED_HEADER, reason_value(degraded.reason()));
            }
            self.extensions_mut().insert(degraded);
        }
    }

    #[cfg(feature = "tonic")]
    impl<T> Mark for tonic::Response<T> {
        fn mark(&mut self, degraded: Degraded, header: bool) {
            if header {
                self.metadata_mut().insert(
                    "steadfast-degraded",
                    tonic::metadata::MetadataValue::from_static(degraded.reason().as_str()),
                );
            }
            self.extensions_mut().insert(degraded);
        }
    }

    /// Fallback answers marked with [`Degraded`](steadfast_core::Degraded) and
    /// `Cache-Control: no-store` (a degraded answer must not outlive the outage in a browser or
    /// a CDN); refusals and timeouts of an inner breaker in its HTTP mode recognised by their
    /// markers. When the fallback fails too, the caller gets what it would have had without
    /// one: the failure response (a breaker's 503 keeps its `Retry-After`) or the inner error;
    /// a switched route with nothing to return answers `503` problem+json. The inner error
    /// type is kept.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Http;

    const FAILED: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the service is degraded and its fallback failed"}"#;

    impl<B: From<Bytes>, E, FE> Mode<Response<B>, E, FE> for Http {
        type Error = E;

        #[inline]
        fn marked(&self, response: &Response<B>) -> Option<Reason> {
            let extensions = response.extensions();
            if extensions.is_empty() {
                None
            } else if extensions.get::<Rejected>().is_some() {
                Some(Reason::BreakerOpen)
            } else if extensions.get::<TimedOut>().is_some() {
                Some(Reason::Timeout)
            } else {
                None
            }
        }

        #[inline]
        fn mark(&self, response: &mut Response<B>, degraded: Degraded, header: bool) {
            Mark::mark(response, degraded, header);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }

        #[inline]
        fn inner_error(&self, error: E) -> E {
            error
        }

        fn fallback_failed(
            &self,
            failed: FallbackFailed<E, FE>,
            response: Option<Response<B>>,
        ) -> Result<Response<B>, E> {
            if let Some(response) = response {
                return Ok(response);
            }
            let (_, original, _) = failed.into_parts();
            if let Some(error) = original {
                return Err(error);
            }
            let mut response = Response::new(B::from(Bytes::from_static(FAILED.as_bytes())));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            Ok(response)
        }
    }
}
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http_mode::{Http, DEGRADED_HEADER};

#[cfg(feature = "tonic")]
mod grpc_mode {
    use std::sync::Arc;

    use super::{Mark, Mode};
    use crate::error::FallbackFailed;
    use steadfast_core::{BoxError, Degraded};

    /// Errors as `tonic::Status`; fallback answers marked (extension, and the
    /// `steadfast-degraded` metadata by option); a failed fallback is `UNAVAILABLE` whose
    /// `source()` is a [`BoxedFallbackFailed`](crate::BoxedFallbackFailed).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Grpc;

    impl<Res: Mark, E, FE> Mode<Res, E, FE> for Grpc
    where
        E: Into<BoxError>,
        FE: Into<BoxError>,
    {
        type Error = tonic::Status;

        #[inline]
        fn mark(&self, response: &mut Res, degraded: Degraded, header: bool) {
            response.mark(degraded, header);
        }

        fn inner_error(&self, error: E) -> tonic::Status {
            tonic::Status::from_error(error.into())
        }

        fn fallback_failed(
            &self,
            failed: FallbackFailed<E, FE>,
            _response: Option<Res>,
        ) -> Result<Res, tonic::Status> {
            let failed = failed.boxed();
            // A fixed message: the causes stay in `source()`, not in what a server may pass on
            // to its own callers. An original status's metadata (its retry pushback) is kept.
            let metadata = failed
                .original()
                .and_then(|original| original.downcast_ref::<tonic::Status>())
                .map(|original| original.metadata().clone());
            let mut status = tonic::Status::unavailable("the call failed and so did its fallback");
            if let Some(metadata) = metadata {
                *status.metadata_mut() = metadata;
            }
            status.set_source(Arc::new(failed));
            Err(status)
        }
    }
}
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub use grpc_mode::Grpc;
