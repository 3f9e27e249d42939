//! Outcome classification: is this result a success, a failure, or neither?
//!
//! One trait, [`Classify`], with ready-made classifiers for the common cases: [`AnyError`],
//! `HttpStatus` (feature `http`), `GrpcCodes` (feature `tonic`), and closures through
//! [`classify_fn`].
//!
//! ```
//! use steadfast_core::{classify_fn, Classify, Outcome};
//!
//! // Timeouts count against the dependency; "not found" is the caller's problem.
//! let classify = classify_fn(|result: Result<&u16, &String>| match result {
//!     Ok(404) => Outcome::Ignored,
//!     Ok(_) => Outcome::Success,
//!     Err(_) => Outcome::Failure,
//! });
//! assert_eq!(classify.classify(Ok(&404)), Outcome::Ignored);
//! assert_eq!(classify.classify(Err(&"timed out".to_string())), Outcome::Failure);
//! ```

use std::fmt;

/// What a call's result means for the health of what it called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The dependency did its job.
    Success,
    /// The dependency failed: counts toward tripping a breaker or burning an error budget.
    Failure,
    /// Says nothing about the dependency (a cancelled call, a client error): not counted.
    Ignored,
}

/// Turns the result of a call into an [`Outcome`].
///
/// Classifiers are cloned into every response future, so they should be cheap to clone; the
/// ready-made ones are `Copy`.
pub trait Classify<Res, E> {
    /// Classifies one result.
    fn classify(&self, result: Result<&Res, &E>) -> Outcome;
}

/// Every `Ok` is a success and every `Err` a failure.
///
/// ```
/// use steadfast_core::{AnyError, Classify, Outcome};
/// assert_eq!(AnyError.classify(Err::<&(), _>(&"boom")), Outcome::Failure);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnyError;

impl<Res, E> Classify<Res, E> for AnyError {
    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// A classifier made from a closure; see [`classify_fn`].
#[derive(Clone, Copy)]
pub struct ClassifyFn<F>(F);

/// Makes a classifier from a closure over `Result<&Res, &E>`.
///
/// The function exists so that the closure's argument types are inferred where they can be.
pub fn classify_fn<F, Res, E>(f: F) -> ClassifyFn<F>
where
    F: Fn(Result<&Res, &E>) -> Outcome,
{
    ClassifyFn(f)
}

impl<F, Res, E> Classify<Res, E> for ClassifyFn<F>
where
    F: Fn(Result<&Res, &E>) -> Outcome,
{
    #[inline]
    fn classify(&self, result: Result<&Res, &E>) -> Outcome {
        (self.0)(result)
    }
}

impl<F> fmt::Debug for ClassifyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClassifyFn")
            .field(&std::any::type_name::<F>())
            .finish()
    }
}

#[cfg(feature = "http")]
mod http_status {
    use super::{Classify, Outcome};

    /// Classifies HTTP responses by status: 5xx is a failure, and optionally 429 too.
    ///
    /// An `Err` (the request never got a response) is a failure.
    ///
    /// ```
    /// use steadfast_core::{Classify, HttpStatus, Outcome};
    ///
    /// let response = |code: u16| http::Response::builder().status(code).body(()).unwrap();
    /// let classify = HttpStatus::server_errors();
    /// assert_eq!(Classify::<_, ()>::classify(&classify, Ok(&response(503))), Outcome::Failure);
    /// assert_eq!(Classify::<_, ()>::classify(&classify, Ok(&response(429))), Outcome::Success);
    ///
    /// let classify = classify.and_too_many_requests();
    /// assert_eq!(Classify::<_, ()>::classify(&classify, Ok(&response(429))), Outcome::Failure);
    /// ```
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct HttpStatus {
        too_many_requests: bool,
    }

    impl HttpStatus {
        /// 5xx responses and errors are failures; everything else succeeds.
        #[must_use]
        pub const fn server_errors() -> Self {
            Self {
                too_many_requests: false,
            }
        }

        /// Also count `429 Too Many Requests` as a failure: the dependency is overloaded.
        #[must_use]
        pub const fn and_too_many_requests(mut self) -> Self {
            self.too_many_requests = true;
            self
        }

        /// Classifies a status code alone.
        #[must_use]
        pub fn classify_status(&self, status: http::StatusCode) -> Outcome {
            if status.is_server_error()
                || (self.too_many_requests && status == http::StatusCode::TOO_MANY_REQUESTS)
            {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        }
    }

    impl<B, E> Classify<http::Response<B>, E> for HttpStatus {
        #[inline]
        fn classify(&self, result: Result<&http::Response<B>, &E>) -> Outcome {
            match result {
                Ok(response) => self.classify_status(response.status()),
                Err(_) => Outcome::Failure,
            }
        }
    }
}
#[cfg(feature = "http")]
pub use http_status::HttpStatus;

#[cfg(feature = "tonic")]
mod grpc {
    use super::{Classify, Outcome};
    use tonic::Code;

    /// Classifies gRPC results by status code.
    ///
    /// By default `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `INTERNAL`, `RESOURCE_EXHAUSTED` and
    /// `UNKNOWN` are failures: they say the server could not serve. Codes such as `NOT_FOUND` or
    /// `INVALID_ARGUMENT` are the caller's doing and count as successes.
    ///
    /// It reads `tonic::Response`/`tonic::Status` results, and `http::Response`s whose
    /// `grpc-status` header carries the code: that is the case for every error a tonic server
    /// returns before sending a message ("trailers-only" responses). A status sent in trailers
    /// after a streamed body is not seen when the response head arrives.
    ///
    /// ```
    /// use steadfast_core::{Classify, GrpcCodes, Outcome};
    /// use tonic::{Code, Status};
    ///
    /// let classify = GrpcCodes::default();
    /// let unavailable: Result<&tonic::Response<()>, _> = Err(&Status::unavailable("down"));
    /// assert_eq!(classify.classify(unavailable), Outcome::Failure);
    /// let not_found: Result<&tonic::Response<()>, _> = Err(&Status::not_found("no such user"));
    /// assert_eq!(classify.classify(not_found), Outcome::Success);
    ///
    /// let classify = GrpcCodes::none().with(Code::NotFound);
    /// assert_eq!(classify.classify_code(Code::NotFound), Outcome::Failure);
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct GrpcCodes {
        // One bit per code; gRPC has seventeen.
        failures: u32,
    }

    impl Default for GrpcCodes {
        fn default() -> Self {
            Self::none()
                .with(Code::Unavailable)
                .with(Code::DeadlineExceeded)
                .with(Code::Internal)
                .with(Code::ResourceExhausted)
                .with(Code::Unknown)
        }
    }

    impl GrpcCodes {
        /// No code is a failure (transport errors still are); add codes with [`GrpcCodes::with`].
        #[must_use]
        pub const fn none() -> Self {
            Self { failures: 0 }
        }

        /// Counts `code` as a failure too.
        #[must_use]
        pub const fn with(mut self, code: Code) -> Self {
            self.failures |= 1 << (code as u32);
            self
        }

        /// No longer counts `code` as a failure.
        #[must_use]
        pub const fn without(mut self, code: Code) -> Self {
            self.failures &= !(1 << (code as u32));
            self
        }

        /// Classifies one status code.
        #[must_use]
        pub const fn classify_code(&self, code: Code) -> Outcome {
            if self.failures & (1 << (code as u32)) != 0 {
                Outcome::Failure
            } else {
                Outcome::Success
            }
        }
    }

    impl<T> Classify<tonic::Response<T>, tonic::Status> for GrpcCodes {
        fn classify(&self, result: Result<&tonic::Response<T>, &tonic::Status>) -> Outcome {
            match result {
                Ok(_) => Outcome::Success,
                Err(status) => self.classify_code(status.code()),
            }
        }
    }

    impl<B, E> Classify<http::Response<B>, E> for GrpcCodes {
        fn classify(&self, result: Result<&http::Response<B>, &E>) -> Outcome {
            let response = match result {
                Ok(response) => response,
                Err(_) => return Outcome::Failure,
            };
            if response.status().is_server_error() {
                return Outcome::Failure;
            }
            match response.headers().get("grpc-status") {
                Some(value) => self.classify_code(Code::from_bytes(value.as_bytes())),
                None => Outcome::Success,
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_trailers_only_status() {
            let response = http::Response::builder()
                .header("grpc-status", "14")
                .body(())
                .unwrap();
            let classify = GrpcCodes::default();
            assert_eq!(
                Classify::<_, ()>::classify(&classify, Ok(&response)),
                Outcome::Failure
            );
            let response = http::Response::builder()
                .header("grpc-status", "5")
                .body(())
                .unwrap();
            assert_eq!(
                Classify::<_, ()>::classify(&classify, Ok(&response)),
                Outcome::Success
            );
            let without = classify.without(Code::Unavailable);
            assert_eq!(without.classify_code(Code::Unavailable), Outcome::Success);
        }
    }
}
#[cfg(feature = "tonic")]
pub use grpc::GrpcCodes;
