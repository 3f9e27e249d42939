//! Error modes: what a refused call looks like to the caller.
//!
//! - [`Typed`] (the default): `Err(Error::Rejected(..))`, inner errors as `Error::Inner`.
//! - [`Boxed`]: errors as `BoxError`, to stack with tower layers that box (downcast to
//!   [`Rejected`] to tell a refusal).
//! - `Http` (feature `http`): a `503` `application/problem+json` response with `Retry-After`;
//!   the service keeps the inner error type, so an axum route stays `Infallible`.
//! - `Grpc` (feature `tonic`): errors are `tonic::Status`, a refusal is `UNAVAILABLE`.
//!
//! ```
//! use steadfast_breaker::{CircuitBreaker, Rejected, State};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let breaker = CircuitBreaker::builder("ledger").build().unwrap();
//! breaker.force_open();
//!
//! // Boxed errors stack with tower layers that box, such as `tower::timeout`.
//! let service = ServiceBuilder::new()
//!     .layer(breaker.layer().boxed_errors())
//!     .service(service_fn(|()| async { Ok::<_, std::io::Error>(()) }));
//! let error = service.oneshot(()).await.unwrap_err();
//! let rejected = error.downcast_ref::<Rejected>().expect("refused by the breaker");
//! assert_eq!(rejected.state(), State::ForcedOpen);
//! # }
//! ```

use steadfast_core::BoxError;

use crate::{Error, Rejected, TimedOut};

/// Turns a refusal, and the inner service's errors, into the wrapped service's output.
pub trait Mode<Res, E>: Clone {
    /// The wrapped service's error type.
    type Error;

    /// The output for a refused call.
    ///
    /// # Errors
    ///
    /// Modes that report refusals as errors return them here.
    fn rejected(&self, rejected: Rejected) -> Result<Res, Self::Error>;

    /// The output for a call that outlived the layer's call timeout.
    ///
    /// # Errors
    ///
    /// Modes that report timeouts as errors return them here.
    fn timed_out(&self, timed_out: TimedOut) -> Result<Res, Self::Error>;

    /// Converts an inner service's error.
    fn inner_error(&self, error: E) -> Self::Error;
}

/// Refusals as [`Error::Rejected`], inner errors as [`Error::Inner`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Typed;

impl<Res, E> Mode<Res, E> for Typed {
    type Error = Error<E>;

    #[inline]
    fn rejected(&self, rejected: Rejected) -> Result<Res, Error<E>> {
        Err(Error::Rejected(rejected))
    }

    fn timed_out(&self, timed_out: TimedOut) -> Result<Res, Error<E>> {
        Err(Error::TimedOut(timed_out))
    }

    #[inline]
    fn inner_error(&self, error: E) -> Error<E> {
        Error::Inner(error)
    }
}

/// Every error boxed: a refusal is a boxed [`Rejected`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Boxed;

impl<Res, E: Into<BoxError>> Mode<Res, E> for Boxed {
    type Error = BoxError;

    fn rejected(&self, rejected: Rejected) -> Result<Res, BoxError> {
        Err(Box::new(rejected))
    }

    fn timed_out(&self, timed_out: TimedOut) -> Result<Res, BoxError> {
        Err(Box::new(timed_out))
    }

    fn inner_error(&self, error: E) -> BoxError {
        error.into()
    }
}

#[cfg(feature = "http")]
mod http_mode {
    use std::sync::OnceLock;

    use super::Mode;
    use crate::{Rejected, State, TimedOut};
    use bytes::Bytes;
    use http::{header, HeaderValue, Response, StatusCode};

    /// Refusals as `503 Service Unavailable` with an RFC 9457 `application/problem+json` body
    /// and `Retry-After` in whole seconds (rounded up); call timeouts as `504 Gateway Timeout`.
    ///
    /// The response carries the [`Rejected`] (or [`TimedOut`]) as an extension, so an outer
    /// layer (a fallback) tells a refusal from a 503 the dependency sent itself.
    ///
    /// The body does not name the breaker: breaker names describe the service's insides. It is
    /// a constant per state, and `Retry-After` values up to ten minutes come from a table, so
    /// a refusal costs the response's own allocations and no formatting.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Http;

    impl<B: From<Bytes>, E> Mode<Response<B>, E> for Http {
        type Error = E;

        fn rejected(&self, rejected: Rejected) -> Result<Response<B>, E> {
            Ok(problem_response(&rejected))
        }

        fn timed_out(&self, timed_out: TimedOut) -> Result<Response<B>, E> {
            let mut response = problem(StatusCode::GATEWAY_TIMEOUT, TIMED_OUT);
            response.extensions_mut().insert(timed_out);
            Ok(response)
        }

        #[inline]
        fn inner_error(&self, error: E) -> E {
            error
        }
    }

    const OPEN: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"circuit breaker is open","state":"open"}"#;
    const HALF_OPEN: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"circuit breaker is half-open and its probe slots are taken","state":"half_open"}"#;
    const FORCED_OPEN: &str = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"circuit breaker is forced open","state":"forced_open"}"#;
    const TIMED_OUT: &str = r#"{"type":"about:blank","title":"Gateway Timeout","status":504,"detail":"the call timed out"}"#;

    /// `Retry-After` values from a table, up to this many seconds.
    const TABLED_SECONDS: u64 = 600;

    fn problem<B: From<Bytes>>(status: StatusCode, body: &'static str) -> Response<B> {
        let mut response = Response::new(B::from(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }

    /// The `Retry-After` value for `secs`: static for the common range, so that cloning it
    /// neither allocates nor touches a shared reference count.
    fn retry_after(secs: u64) -> HeaderValue {
        static TABLE: OnceLock<Box<[HeaderValue]>> = OnceLock::new();
        let table = TABLE.get_or_init(|| {
            // One string for the whole table, made once per process.
            let digits: &'static str = Box::leak(
                (0..=TABLED_SECONDS)
                    .map(|secs| secs.to_string())
                    .collect::<String>()
                    .into_boxed_str(),
            );
            let mut start = 0;
            (0..=TABLED_SECONDS)
                .map(|secs| {
                    let len = secs.checked_ilog10().map_or(1, |log| log as usize + 1);
                    let value = HeaderValue::from_static(&digits[start..start + len]);
                    start += len;
                    value
                })
                .collect()
        });
        match usize::try_from(secs).ok().and_then(|secs| table.get(secs)) {
            Some(value) => value.clone(),
            None => HeaderValue::from(secs),
        }
    }

    pub(crate) fn problem_response<B: From<Bytes>>(rejected: &Rejected) -> Response<B> {
        let body = match rejected.state() {
            State::HalfOpen => HALF_OPEN,
            State::ForcedOpen => FORCED_OPEN,
            _ => OPEN,
        };
        let mut response = problem(StatusCode::SERVICE_UNAVAILABLE, body);
        response.extensions_mut().insert(*rejected);
        if let Some(after) = rejected.retry_after() {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after(secs.max(1)));
        }
        response
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn retry_after_table_matches_formatting() {
            for secs in [0, 1, 9, 10, 99, 100, 599, 600, 601, 86_400] {
                assert_eq!(retry_after(secs), secs.to_string().as_str());
            }
        }
    }
}
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http_mode::Http;

#[cfg(feature = "tonic")]
mod grpc_mode {
    use super::Mode;
    use crate::Rejected;
    use steadfast_core::BoxError;

    /// Errors as `tonic::Status`: a refusal is `UNAVAILABLE` (with `grpc-retry-pushback-ms`
    /// when the wait is known), an inner error converts as tonic converts errors.
    ///
    /// Works on both sides: around a tonic `Channel` the generated client sees the status; in
    /// `Server::builder().layer(..)` tonic answers with it.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Grpc;

    impl<Res, E: Into<BoxError>> Mode<Res, E> for Grpc {
        type Error = tonic::Status;

        fn rejected(&self, rejected: Rejected) -> Result<Res, tonic::Status> {
            Err(rejected.into())
        }

        fn timed_out(&self, timed_out: crate::TimedOut) -> Result<Res, tonic::Status> {
            Err(timed_out.into())
        }

        fn inner_error(&self, error: E) -> tonic::Status {
            tonic::Status::from_error(error.into())
        }
    }
}
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub use grpc_mode::Grpc;

#[cfg(all(test, feature = "http"))]
mod tests {
    use super::*;
    use crate::State;
    use std::time::Duration;

    #[test]
    fn problem_json_with_retry_after() {
        let rejected = Rejected::new(State::Open, Some(Duration::from_millis(1200)));
        let response: http::Response<bytes::Bytes> =
            Mode::<_, ()>::rejected(&Http, rejected).unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "2");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["status"], 503);
        assert_eq!(body["state"], "open");
        assert_eq!(response.extensions().get::<Rejected>(), Some(&rejected));
    }
}
