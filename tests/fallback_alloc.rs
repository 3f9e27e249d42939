//! The fallback layer's success path allocates nothing: a counting global allocator watches
//! calls through the typed layer, through a layer bound to a switch that is off, and through
//! the HTTP mode keeping method and URI.
//!
//! Run it with `cargo test --features full --test fallback_alloc`.
#![cfg(feature = "fallback")]

#[path = "support/counting.rs"]
mod counting;

use std::convert::Infallible;
use std::future::{ready, Ready};

use counting::{allocations, now};
use std::task::{Context, Waker};
use steadfast::fallback::{Degrader, FallbackLayer, FallbackRequest, Flip};
use tower::{service_fn, Layer, Service};

/// Makes one call per request, by hand; returns the allocations counted during the calls
/// (the requests are made before counting starts) and how many calls succeeded.
fn count_calls<S, R>(service: &mut S, requests: Vec<R>) -> (u64, usize)
where
    S: Service<R>,
{
    let mut ok = 0;
    let before = allocations();
    for request in requests {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(service.poll_ready(&mut cx).is_ready());
        if now(service.call(request)).is_ok() {
            ok += 1;
        }
    }
    (allocations() - before, ok)
}

const CALLS: usize = 100_000;

fn echo(
) -> impl Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>> + Clone
{
    service_fn(|x: u64| ready(Ok::<u64, Infallible>(x)))
}

fn fallback(_: FallbackRequest<()>) -> Ready<Result<u64, Infallible>> {
    ready(Ok(0))
}

#[test]
fn typed_layer_success_allocates_nothing() {
    let mut service = FallbackLayer::from_fn(fallback).layer(echo());
    count_calls(&mut service, vec![1; 1_000]);
    let (allocated, served) = count_calls(&mut service, vec![1; CALLS]);
    assert_eq!(served, CALLS);
    assert_eq!(
        allocated, 0,
        "successful calls through the typed layer allocated"
    );
}

#[test]
fn switch_bound_layer_success_allocates_nothing() {
    let degrader = Degrader::new();
    let mut service = FallbackLayer::from_fn(fallback)
        .switch(degrader.switch("alloc").unwrap(), 1)
        .layer(echo());
    count_calls(&mut service, vec![1; 1_000]);
    let (allocated, served) = count_calls(&mut service, vec![1; CALLS]);
    assert_eq!(served, CALLS);
    assert_eq!(
        allocated, 0,
        "successful calls with a switch bound (off) allocated"
    );

    // Switched on, the route answers from its fallback through a counter registered when the
    // service was built: that path allocates nothing either.
    degrader
        .set("alloc", 1, Flip::new("test", "alloc"))
        .unwrap();
    let (allocated, served) = count_calls(&mut service, vec![1; CALLS]);
    assert_eq!(served, CALLS);
    assert_eq!(allocated, 0, "degraded calls (switch on) allocated");
}

/// Not the success path, and not held to zero: when the inner service fails and the fallback
/// answers, the answer is counted with a metric whose labels (the layer's name, the reason)
/// are gathered per answer, one allocation. This test holds that to at most one per call.
#[test]
fn error_path_allocates_at_most_the_metric_labels() {
    let failing = service_fn(|_: u64| ready(Err::<u64, &'static str>("down")));
    let mut service = FallbackLayer::from_fn(fallback).layer(failing);
    count_calls(&mut service, vec![1; 1_000]);
    let (allocated, answered) = count_calls(&mut service, vec![1; CALLS]);
    assert_eq!(answered, CALLS, "the fallback answers every failed call");
    eprintln!("error path: {allocated} allocations in {CALLS} calls answered by the fallback");
    assert!(
        allocated <= CALLS as u64,
        "the error path allocated {allocated} times in {CALLS} calls"
    );
}

#[cfg(feature = "http")]
mod http_mode {
    use super::*;
    use bytes::Bytes;
    use http::request::Parts;
    use http::{Request, Response, Uri};
    use http_body_util::Full;

    type Body = Full<Bytes>;

    fn ok(_: Request<()>) -> Ready<Result<Response<Body>, Infallible>> {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }

    fn cached(_: FallbackRequest<Parts>) -> Ready<Result<Response<Body>, Infallible>> {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"cached")))))
    }

    fn request(uri: Uri) -> Request<()> {
        let mut request = Request::new(());
        *request.uri_mut() = uri;
        request
    }

    /// `n` requests for `uri`, each given a clone of one URI parsed from a string once: what
    /// the fallback's keep function clones is shared bytes.
    fn shared(uri: &str, n: usize) -> Vec<Request<()>> {
        let uri: Uri = uri.parse().unwrap();
        (0..n).map(|_| request(uri.clone())).collect()
    }

    /// `n` requests for `uri`, each with a URI parsed from the string anew.
    fn fresh(uri: &str, n: usize) -> Vec<Request<()>> {
        (0..n).map(|_| request(uri.parse().unwrap())).collect()
    }

    const PATH: &str = "/products/7?currency=EUR";
    const ABSOLUTE: &str = "http://shop.example/products/7?currency=EUR";

    #[test]
    fn method_uri_keep_allocates_nothing_for_a_shared_uri() {
        let mut service = FallbackLayer::from_fn(cached).http().layer(service_fn(ok));
        count_calls(&mut service, shared(PATH, 1_000));
        for uri in [PATH, ABSOLUTE] {
            let (allocated, served) = count_calls(&mut service, shared(uri, CALLS));
            assert_eq!(served, CALLS);
            assert_eq!(allocated, 0, "keeping method and URI of {uri} allocated");
        }
    }

    #[test]
    fn method_uri_keep_allocates_nothing_for_a_fresh_absolute_uri() {
        // Parsing an absolute URI splits its bytes (scheme, authority, path), which already
        // makes them shared: the keep function's clone counts a reference.
        let mut service = FallbackLayer::from_fn(cached).http().layer(service_fn(ok));
        count_calls(&mut service, fresh(ABSOLUTE, 1_000));
        let (allocated, served) = count_calls(&mut service, fresh(ABSOLUTE, CALLS));
        assert_eq!(served, CALLS);
        assert_eq!(allocated, 0);
    }

    /// A path-only URI parsed from a string holds its bytes uniquely until first cloned; that
    /// first clone, the keep function's, turns them into shared bytes, one allocation (made by
    /// `bytes`, not by the layer). A URI a server parsed out of its read buffer is shared
    /// already.
    #[test]
    fn method_uri_keep_of_a_fresh_path_uri_allocates_once_for_the_shared_bytes() {
        let mut bare = service_fn(ok);
        let (allocated, served) = count_calls(&mut bare, fresh(PATH, CALLS));
        assert_eq!(
            (allocated, served),
            (0, CALLS),
            "the inner service alone allocated"
        );

        let mut service = FallbackLayer::from_fn(cached).http().layer(service_fn(ok));
        count_calls(&mut service, fresh(PATH, 1_000));
        let (allocated, served) = count_calls(&mut service, fresh(PATH, CALLS));
        assert_eq!(served, CALLS);
        assert_eq!(
            allocated, CALLS as u64,
            "expected exactly one allocation per call (the URI's bytes made shared)"
        );

        // The same requests kept with a clone made beforehand: nothing.
        let requests: Vec<_> = fresh(PATH, CALLS)
            .into_iter()
            .inspect(|request| drop(request.uri().clone()))
            .collect();
        let (allocated, served) = count_calls(&mut service, requests);
        assert_eq!((allocated, served), (0, CALLS));
    }
}
