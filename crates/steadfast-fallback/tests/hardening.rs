//! What an on-call engineer meets at 3 a.m.: a fallback that hangs, a dependency that is not
//! ready when the switch flips, listeners that panic or flip from several threads at once,
//! and config reloads racing an operator's flips.

use std::convert::Infallible;
use std::future::{pending, ready, Future};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use steadfast_fallback::{
    Degrader, Error, FallbackLayer, FallbackRequest, Flip, FlipEvent, Reason, HISTORY_LEN,
};
use tower::{service_fn, Layer, Service, ServiceExt};

/// A dependency that is never ready, and counts the calls it (wrongly) receives.
#[derive(Clone, Default)]
struct NeverReady(Arc<AtomicUsize>);

impl Service<()> for NeverReady {
    type Response = &'static str;
    type Error = Infallible;
    type Future = std::future::Ready<Result<&'static str, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Pending
    }

    fn call(&mut self, (): ()) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        ready(Ok("real"))
    }
}

fn answer(_: FallbackRequest<()>) -> std::future::Ready<Result<&'static str, Infallible>> {
    ready(Ok("fallback"))
}

fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    let mut future = std::pin::pin!(future);
    future
        .as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()))
}

#[tokio::test(start_paused = true)]
async fn a_fallback_that_hangs_is_cut_off_by_its_timeout() {
    let hanging =
        FallbackLayer::from_fn(|_: FallbackRequest<()>| pending::<Result<u32, Infallible>>())
            .fallback_timeout(Duration::from_millis(250));
    let service = hanging.layer(service_fn(|()| {
        ready(Err::<u32, _>(std::io::Error::other("down")))
    }));
    let started = tokio::time::Instant::now();
    let Err(Error::Fallback(failed)) = service.oneshot(()).await else {
        panic!("the fallback's timeout must fail the call")
    };
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    assert_eq!(failed.reason(), Reason::Error);
    assert!(failed
        .fallback_error()
        .downcast_ref::<tower::timeout::error::Elapsed>()
        .is_some());
    assert_eq!(failed.original().unwrap().to_string(), "down");
}

#[tokio::test(start_paused = true)]
async fn a_switched_route_whose_fallback_hangs_is_cut_off_too() {
    let degrader = Degrader::new();
    degrader.set("s", 1, Flip::new("test", "hang")).unwrap();
    let inner = NeverReady::default();
    let service = FallbackLayer::from_fn(|_: FallbackRequest<()>| {
        pending::<Result<&'static str, Infallible>>()
    })
    .switch(degrader.switch("s").unwrap(), 1)
    .fallback_timeout(Duration::from_secs(1))
    .layer(inner.clone());
    let Err(Error::Fallback(failed)) = service.oneshot(()).await else {
        panic!("the fallback's timeout must fail the call")
    };
    assert_eq!(failed.reason(), Reason::Switch);
    assert!(failed.original().is_none());
    assert_eq!(inner.0.load(Ordering::SeqCst), 0);
}

#[test]
fn a_route_found_degraded_when_ready_stays_degraded_for_its_call() {
    let degrader = Degrader::new();
    degrader.set("s", 1, Flip::new("test", "on")).unwrap();
    let inner = NeverReady::default();
    let mut service = FallbackLayer::new(service_fn(answer))
        .switch(degrader.switch("s").unwrap(), 1)
        .layer(inner.clone());
    assert!(matches!(
        poll_once(std::future::poll_fn(|cx| service.poll_ready(cx))),
        Poll::Ready(Ok(()))
    ));
    // The switch goes off between readiness and the call: the dependency was never ready,
    // so the call must still not reach it.
    degrader.set("s", 0, Flip::new("test", "off")).unwrap();
    assert!(matches!(
        poll_once(service.call(())),
        Poll::Ready(Ok("fallback"))
    ));
    assert_eq!(inner.0.load(Ordering::SeqCst), 0);
    // The next call waits for the dependency again.
    assert!(poll_once(std::future::poll_fn(|cx| service.poll_ready(cx))).is_pending());
}

#[test]
fn a_switch_flipped_on_after_readiness_degrades_the_call() {
    let degrader = Degrader::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = {
        let calls = calls.clone();
        service_fn(move |()| {
            calls.fetch_add(1, Ordering::SeqCst);
            ready(Ok::<_, Infallible>("real"))
        })
    };
    let mut service = FallbackLayer::new(service_fn(answer))
        .switch(degrader.switch("s").unwrap(), 1)
        .layer(inner);
    assert!(matches!(
        poll_once(std::future::poll_fn(|cx| service.poll_ready(cx))),
        Poll::Ready(Ok(()))
    ));
    degrader.set("s", 1, Flip::new("test", "on")).unwrap();
    assert!(matches!(
        poll_once(service.call(())),
        Poll::Ready(Ok("fallback"))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn a_listener_that_panics_costs_the_others_nothing() {
    let degrader = Degrader::new();
    degrader.listen(|_: &FlipEvent| panic!("a listener with a bug"));
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    degrader.listen(move |_: &FlipEvent| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(degrader.set("s", 1, Flip::new("test", "one")), Ok(0));
    assert_eq!(degrader.set("s", 2, Flip::new("test", "two")), Ok(1));
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(degrader.switch("s").unwrap().level(), 2);
}

#[test]
fn flips_from_many_threads_reach_listeners_in_order_and_all() {
    const THREADS: usize = 4;
    const FLIPS: usize = 500;
    let degrader = Degrader::new();
    let seen: Arc<Mutex<Vec<(u8, u8)>>> = Arc::default();
    let sink = seen.clone();
    degrader.listen(move |event: &FlipEvent| sink.lock().unwrap().push((event.from, event.to)));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let degrader = degrader.clone();
            scope.spawn(move || {
                for flip in 0..FLIPS {
                    // Levels 1..=THREADS*2 so that most sets change the level.
                    let level = ((thread * 7 + flip) % (THREADS * 2) + 1) as u8;
                    degrader.set("s", level, Flip::new("t", "race")).unwrap();
                }
            });
        }
    });
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    // In order: each event leaves the level the one before entered.
    for pair in seen.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "events out of order: {pair:?}");
    }
    assert_eq!(seen.first().unwrap().0, 0);
    assert_eq!(
        seen.last().unwrap().1,
        degrader.switch("s").unwrap().level()
    );
    assert_eq!(degrader.history().len(), HISTORY_LEN);
}

#[cfg(feature = "serde")]
#[test]
fn a_reload_changes_only_what_the_file_changed() {
    use steadfast_fallback::config::FallbackConfig;
    let degrader = Degrader::new();
    let first = FallbackConfig::from_toml("[switches]\nrecs = 1\nsearch = 0\n").unwrap();
    assert_eq!(degrader.apply(&first, "deploy"), Ok(1));
    // An operator sheds search by hand.
    degrader
        .set("search", 2, Flip::new("alice", "incident"))
        .unwrap();
    // The file changes recs only: alice's flip stands.
    let second = FallbackConfig::from_toml("[switches]\nrecs = 2\nsearch = 0\n").unwrap();
    assert_eq!(degrader.apply(&second, "deploy"), Ok(1));
    assert_eq!(degrader.switch("search").unwrap().level(), 2);
    assert_eq!(degrader.switch("recs").unwrap().level(), 2);
    // The file drops recs: it goes back to full service.
    let third = FallbackConfig::from_toml("[switches]\nsearch = 0\n").unwrap();
    assert_eq!(degrader.apply(&third, "deploy"), Ok(1));
    assert_eq!(degrader.switch("recs").unwrap().level(), 0);
    assert_eq!(degrader.switch("search").unwrap().level(), 2);
    let history = degrader.history();
    let last = history.last().unwrap();
    assert_eq!((last.switch.as_ref(), last.from, last.to), ("recs", 2, 0));
    assert_eq!(last.flip.who(), "deploy");
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn a_watch_with_a_zero_period_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switches.toml");
    std::fs::write(&path, "[switches]\nrecs = 1\n").unwrap();
    let degrader = Degrader::new();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let _watch = degrader.watch(&path, Duration::ZERO, move |result| {
        let _ = sender.send(result.is_ok());
        panic!("a callback with a bug must not end the watch");
    });
    assert_eq!(receiver.recv().await, Some(true));
    std::fs::write(&path, "[switches]\nrecs = 2\n\n").unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), receiver.recv())
            .await
            .unwrap(),
        Some(true)
    );
    assert_eq!(degrader.switch("recs").unwrap().level(), 2);
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn the_admin_router_lists_the_last_flips() {
    use axum::body::Body;
    use http::Request;
    use steadfast_fallback::admin::AdminRouter;

    let degrader = Degrader::new();
    degrader
        .set("recs", 1, Flip::new("alice", "flash sale"))
        .unwrap();
    let admin: axum::Router = AdminRouter::new(&degrader)
        .authorize(|_: &http::request::Parts| Ok("ops".to_owned()))
        .build()
        .unwrap();
    let response = admin
        .oneshot(Request::get("/flips").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let flip = &json["flips"][0];
    assert_eq!(flip["switch"], "recs");
    assert_eq!(flip["who"], "alice");
    assert_eq!(flip["why"], "flash sale");
    assert_eq!(flip["to"], 1);
    assert_eq!(flip["source"], "code");
}

#[cfg(feature = "http")]
#[tokio::test]
async fn a_table_endpoint_keeps_headers_only_when_it_asks() {
    use bytes::Bytes;
    use http::request::Parts;
    use http::{Request, Response, StatusCode};
    use steadfast_fallback::table::{Endpoint, FallbackTable};

    let echo_header = |_: ()| {
        service_fn(|request: FallbackRequest<Parts>| async move {
            let tenant = request
                .kept
                .headers
                .get("x-tenant")
                .map_or("none", |value| value.to_str().unwrap_or("bad"))
                .to_owned();
            Ok::<_, Infallible>(Response::new(Bytes::from(tenant)))
        })
    };
    let table = FallbackTable::builder(&Degrader::new())
        .endpoint(
            "GET /with",
            Endpoint::new(echo_header(())).keep_headers(true),
        )
        .endpoint("GET /without", Endpoint::new(echo_header(())))
        .build()
        .unwrap();
    let failing = service_fn(|_: Request<()>| async {
        let mut response = Response::new(Bytes::new());
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        Ok::<_, Infallible>(response)
    });
    let service = table.layer().layer(failing);
    for (path, expected) in [("/with", "acme"), ("/without", "none")] {
        let request = Request::get(path)
            .header("x-tenant", "acme")
            .body(())
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.body(), expected, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    let single = table.route("GET /with").unwrap().layer(failing);
    let request = Request::get("/with")
        .header("x-tenant", "acme")
        .body(())
        .unwrap();
    assert_eq!(single.oneshot(request).await.unwrap().body(), "acme");
}
