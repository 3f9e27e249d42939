//! The HTTP layer through a real axum router: every status the draft names, replays, scopes,
//! concurrent duplicates, leases and fencing.
#![cfg(feature = "axum")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request as AxumRequest;
use axum::routing::post;
use axum::Router;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use steadfast_idempotency::http::IdempotencyLayer;
use steadfast_idempotency::store::MemoryStore;
use steadfast_idempotency::Idempotency;
use tower::ServiceExt;

#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Counter {
    fn next(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn app(engine: Idempotency<MemoryStore>, charges: &Counter, delay: Duration) -> Router {
    let charges = charges.clone();
    Router::new()
        .route(
            "/payments",
            post(move |body: String| {
                let charges = charges.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    let n = charges.next();
                    let mut response =
                        Response::new(Body::from(format!("payment #{n} for {body}")));
                    *response.status_mut() = StatusCode::CREATED;
                    response
                        .headers_mut()
                        .insert("location", format!("/payments/{n}").parse().unwrap());
                    response
                        .headers_mut()
                        .insert("set-cookie", "session=secret".parse().unwrap());
                    response
                }
            }),
        )
        .route(
            "/fail",
            post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route("/bad", post(|| async { StatusCode::BAD_REQUEST }))
        .layer(
            IdempotencyLayer::new(engine)
                .scope(|head: &http::request::Parts| {
                    head.headers
                        .get("x-user")
                        .and_then(|user| user.to_str().ok())
                        .map(str::to_owned)
                })
                .max_request_body(64),
        )
}

fn pay(key: Option<&str>, user: &str, body: &'static str) -> Request<Body> {
    let mut request = Request::post("/payments").header("x-user", user);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.body(Body::from(body)).unwrap()
}

async fn text(
    response: Response<impl http_body::Body<Data = bytes::Bytes, Error = impl std::fmt::Debug>>,
) -> (StatusCode, http::HeaderMap, String) {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

#[tokio::test]
async fn a_retry_replays_the_first_answer_once_charged() {
    let charges = Counter::default();
    let app = app(Idempotency::in_memory(), &charges, Duration::ZERO);
    let (status, headers, body) = text(
        app.clone()
            .oneshot(pay(Some("k1"), "alice", "10"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::CREATED, "payment #1 for 10")
    );
    assert!(headers.get("idempotent-replayed").is_none());
    assert!(
        headers.get("set-cookie").is_some(),
        "the first answer is untouched"
    );

    let (status, headers, body) = text(
        app.clone()
            .oneshot(pay(Some("\"k1\""), "alice", "10"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::CREATED, "payment #1 for 10")
    );
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(headers["location"], "/payments/1");
    assert!(
        headers.get("set-cookie").is_none(),
        "Set-Cookie is never replayed unasked"
    );
    assert_eq!(charges.get(), 1);
}

#[tokio::test]
async fn every_refusal_has_its_status() {
    let charges = Counter::default();
    let app = app(Idempotency::in_memory(), &charges, Duration::ZERO);
    let status = |response: Response<_>| response.status();
    // No key, not required: passes.
    assert_eq!(
        status(app.clone().oneshot(pay(None, "alice", "1")).await.unwrap()),
        StatusCode::CREATED
    );
    // Malformed keys.
    for bad in ["", "two words", "\"open", "a\"b"] {
        let response = app
            .clone()
            .oneshot(pay(Some(bad), "alice", "1"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    // Two keys.
    let twice = Request::post("/payments")
        .header("x-user", "alice")
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .body(Body::from("1"))
        .unwrap();
    assert_eq!(
        status(app.clone().oneshot(twice).await.unwrap()),
        StatusCode::BAD_REQUEST
    );
    // No caller: the scope refuses.
    let anonymous = Request::post("/payments")
        .header("idempotency-key", "k")
        .body(Body::from("1"))
        .unwrap();
    assert_eq!(
        status(app.clone().oneshot(anonymous).await.unwrap()),
        StatusCode::UNAUTHORIZED
    );
    // Too large a body.
    let large = Request::post("/payments")
        .header("x-user", "alice")
        .header("idempotency-key", "big")
        .body(Body::from(vec![b'x'; 65]))
        .unwrap();
    assert_eq!(
        status(app.clone().oneshot(large).await.unwrap()),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // The same key for another request.
    assert_eq!(
        status(
            app.clone()
                .oneshot(pay(Some("k2"), "alice", "10"))
                .await
                .unwrap()
        ),
        StatusCode::CREATED
    );
    let other = app
        .clone()
        .oneshot(pay(Some("k2"), "alice", "99"))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Required keys.
    let strict = Router::new()
        .route("/payments", post(|| async { "ok" }))
        .layer(IdempotencyLayer::new(Idempotency::in_memory()).require_key(true));
    let response = strict
        .oneshot(Request::post("/payments").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // GET is not covered.
    let get = Request::get("/payments")
        .header("idempotency-key", "")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.oneshot(get).await.unwrap().status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn scopes_keep_callers_apart() {
    let charges = Counter::default();
    let app = app(Idempotency::in_memory(), &charges, Duration::ZERO);
    let (_, _, alice) = text(
        app.clone()
            .oneshot(pay(Some("shared"), "alice", "10"))
            .await
            .unwrap(),
    )
    .await;
    let (_, headers, bob) = text(
        app.clone()
            .oneshot(pay(Some("shared"), "bob", "10"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(alice, "payment #1 for 10");
    assert_eq!(bob, "payment #2 for 10", "bob is not shown alice's receipt");
    assert!(headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn server_errors_release_the_key_and_client_errors_are_kept() {
    let charges = Counter::default();
    let app = app(Idempotency::in_memory(), &charges, Duration::ZERO);
    let fail = || {
        Request::post("/fail")
            .header("x-user", "a")
            .header("idempotency-key", "f")
            .body(Body::empty())
            .unwrap()
    };
    for _ in 0..2 {
        let response = app.clone().oneshot(fail()).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            response.headers().get("idempotent-replayed").is_none(),
            "a 5xx is never replayed"
        );
    }
    let bad = || {
        Request::post("/bad")
            .header("x-user", "a")
            .header("idempotency-key", "b")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        app.clone().oneshot(bad()).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    let replay = app.oneshot(bad()).await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_duplicates_run_the_handler_once() {
    let charges = Counter::default();
    let app = app(
        Idempotency::in_memory(),
        &charges,
        Duration::from_millis(50),
    );
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.oneshot(pay(Some("once"), "alice", "10"))
                .await
                .unwrap()
                .status()
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(charges.get(), 1, "the handler ran once");
    assert_eq!(created + conflicts, 100);
    assert!(created >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_duplicates_get_the_first_answer() {
    let charges = Counter::default();
    let engine = Idempotency::in_memory().wait_for_in_flight(Duration::from_secs(5));
    let app = app(engine, &charges, Duration::from_millis(100));
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            text(app.oneshot(pay(Some("wait"), "alice", "10")).await.unwrap()).await
        }));
    }
    for task in tasks {
        let (status, _, body) = task.await.unwrap();
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::CREATED, "payment #1 for 10")
        );
    }
    assert_eq!(charges.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_crashed_handler_frees_its_key_when_the_lease_runs_out_and_cannot_write_late() {
    // The first call takes longer than the lease: a retry after the lease runs again, and the
    // first call's late answer does not overwrite the second's record.
    let charges = Counter::default();
    let engine = Idempotency::in_memory().lease(Duration::from_secs(2));
    let slow = app(engine.clone(), &charges, Duration::from_secs(3));
    let first = tokio::spawn({
        let slow = slow.clone();
        async move {
            text(
                slow.oneshot(pay(Some("lease"), "alice", "10"))
                    .await
                    .unwrap(),
            )
            .await
        }
    });
    // t = 2.5 s: the first claim's lease ran out at 2 s; the second holds the key to 4.5 s,
    // so the first, finishing at 3 s, is fenced off.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = tokio::spawn({
        let slow = slow.clone();
        async move {
            text(
                slow.oneshot(pay(Some("lease"), "alice", "10"))
                    .await
                    .unwrap(),
            )
            .await
        }
    });
    let (_, _, first_body) = first.await.unwrap();
    let (_, _, second_body) = second.await.unwrap();
    assert_eq!(first_body, "payment #1 for 10");
    assert_eq!(second_body, "payment #2 for 10");
    // The replay is the second claim's answer: the first, finishing while the second held the
    // key, was fenced off.
    let (_, headers, replay) = text(
        slow.oneshot(pay(Some("lease"), "alice", "10"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(replay, "payment #2 for 10");
}

#[tokio::test]
async fn a_dropped_request_releases_its_key() {
    let charges = Counter::default();
    let app = app(Idempotency::in_memory(), &charges, Duration::from_secs(60));
    let request = app.clone().oneshot(pay(Some("drop"), "alice", "10"));
    // The client goes away while the handler runs.
    assert!(tokio::time::timeout(Duration::from_millis(50), request)
        .await
        .is_err());
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    // The key is free again: a retry is not told 409.
    let retry = tokio::time::timeout(
        Duration::from_millis(50),
        app.oneshot(pay(Some("drop"), "alice", "10")),
    )
    .await;
    assert!(
        retry.is_err(),
        "the retry runs (and is slow), it is not refused with 409"
    );
}

#[tokio::test]
async fn a_response_too_large_to_store_passes_through_and_never_runs_again() {
    let calls = Counter::default();
    let counter = calls.clone();
    let app = Router::new()
        .route(
            "/export",
            post(move |_: AxumRequest| {
                let counter = counter.clone();
                async move {
                    counter.next();
                    vec![b'x'; 4096]
                }
            }),
        )
        .layer(IdempotencyLayer::new(Idempotency::in_memory()).max_response_body(1024));
    let export = || {
        Request::post("/export")
            .header("idempotency-key", "e")
            .body(Body::empty())
            .unwrap()
    };
    let (status, headers, body) = text(app.clone().oneshot(export()).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 4096, "passed through whole");
    assert!(headers.get("idempotent-replayed").is_none());
    // The request ran, so a retry must not run it again: it is told the answer was not kept.
    let (status, headers, body) = text(app.oneshot(export()).await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert!(body.contains("too large to keep"), "{body}");
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn a_panicking_handler_releases_its_key() {
    let calls = Counter::default();
    let counter = calls.clone();
    let app = Router::new()
        .route(
            "/panics",
            post(move || {
                let counter = counter.clone();
                async move {
                    if counter.next() == 1 {
                        panic!("a bug in the handler");
                    }
                    "second time lucky"
                }
            }),
        )
        .layer(IdempotencyLayer::new(Idempotency::in_memory()));
    let request = || {
        Request::post("/panics")
            .header("idempotency-key", "p")
            .body(Body::empty())
            .unwrap()
    };
    // A server runs each request in a task: the panic ends that task, not the process.
    let crashed = tokio::spawn(app.clone().oneshot(request())).await;
    assert!(crashed.unwrap_err().is_panic());
    // The release runs on the runtime; give it a turn.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let (status, headers, body) = text(app.oneshot(request()).await.unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "second time lucky")
    );
    assert!(headers.get("idempotent-replayed").is_none());
    assert_eq!(calls.get(), 2, "the retry ran: the panic released the key");
}
