//! What a fallback gets of the request: chosen per route, paid for only where chosen.
//!
//! The keep function runs before the inner call (the inner service takes the request), on
//! every call, whether or not the fallback answers. Its cost is the route's choice:
//!
//! | keep | the fallback gets | cost per call |
//! |---|---|---|
//! | [`Nothing`] (the generic default) | `()` | none |
//! | [`MethodUri`] (the HTTP and gRPC default) | `http::request::Parts` with method, URI, version | the URI's shared bytes: reference counts, no allocation |
//! | [`Headers`] | the above and every header | a copy of the header map: allocations |
//! | [`Head`] | the above and the extensions | the header map and every extension cloned |
//! | a closure `Fn(&Req) -> T` | `T` | what the closure does |
//!
//! ```
//! use steadfast_fallback::keep::{Keep, MethodUri};
//!
//! let request = http::Request::get("/products/7?currency=EUR").body(()).unwrap();
//! let kept = MethodUri.keep(&request);
//! assert_eq!(kept.uri.path(), "/products/7");
//! assert!(kept.headers.is_empty());
//!
//! // Any closure keeps what it returns.
//! let currency = |request: &http::Request<()>| request.uri().query().map(str::to_owned);
//! assert_eq!(currency.keep(&request).as_deref(), Some("currency=EUR"));
//! ```

/// Keeps part of a request, before the inner service takes it, for the fallback.
pub trait Keep<Req> {
    /// What is kept.
    type Kept;

    /// Keeps it.
    fn keep(&self, request: &Req) -> Self::Kept;
}

/// Keeps nothing: the fallback gets `()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Nothing;

impl<Req> Keep<Req> for Nothing {
    type Kept = ();

    #[inline]
    fn keep(&self, _request: &Req) {}
}

impl<Req, T, F> Keep<Req> for F
where
    F: Fn(&Req) -> T,
{
    type Kept = T;

    #[inline]
    fn keep(&self, request: &Req) -> T {
        self(request)
    }
}

#[cfg(feature = "http")]
mod http_keep {
    use super::Keep;
    use http::request::Parts;
    use http::Request;

    fn head<B>(request: &Request<B>) -> Parts {
        let (mut parts, ()) = Request::new(()).into_parts();
        parts.method = request.method().clone();
        parts.uri = request.uri().clone();
        parts.version = request.version();
        parts
    }

    /// Keeps method, URI and version as `http::request::Parts` (headers and extensions empty).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct MethodUri;

    impl<B> Keep<Request<B>> for MethodUri {
        type Kept = Parts;

        #[inline]
        fn keep(&self, request: &Request<B>) -> Parts {
            head(request)
        }
    }

    /// Keeps method, URI, version and headers (extensions empty).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Headers;

    impl<B> Keep<Request<B>> for Headers {
        type Kept = Parts;

        fn keep(&self, request: &Request<B>) -> Parts {
            let mut parts = head(request);
            parts.headers = request.headers().clone();
            parts
        }
    }

    /// Keeps the whole head: method, URI, version, headers and extensions.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct Head;

    impl<B> Keep<Request<B>> for Head {
        type Kept = Parts;

        fn keep(&self, request: &Request<B>) -> Parts {
            let mut parts = head(request);
            parts.headers = request.headers().clone();
            parts.extensions = request.extensions().clone();
            parts
        }
    }
}
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use http_keep::{Head, Headers, MethodUri};
