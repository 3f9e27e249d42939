//! The fallback table's gRPC layer around a real tonic `Channel` talking to a real tonic server
//! (the standard health service) over loopback, outside a breaker in gRPC mode: a method in the
//! table answers the breaker's refusal from its fallback (an encoded message the generated
//! client decodes, marked in metadata), methods outside it see the refusal unchanged, a
//! `NOT_FOUND` is not a failure while a dead server is, and a failing fallback is
//! `UNAVAILABLE` naming both causes.
#![cfg(all(feature = "fallback", feature = "breaker", feature = "tonic"))]

#[allow(dead_code)]
mod support;

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::request::Parts;
use steadfast::breaker::{CircuitBreaker, Rejected};
use steadfast::core::{BoxError, GrpcCodes};
use steadfast::fallback::mode::Grpc;
use steadfast::fallback::table::{Endpoint, FallbackTable, TableLayer};
use steadfast::fallback::{grpc, BoxedFallbackFailed, Degrader, FallbackRequest, Reason};
use support::{assert_send_sync_clone, mock_breaker, Counter};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::codegen::Body as HttpBody;
use tonic::transport::{Channel, Server};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tower::util::{BoxCloneSyncService, MapRequestLayer};
use tower::{service_fn, ServiceBuilder};

/// The longest any one call may take before the test fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The method the tables declare.
const CHECK: &str = "/grpc.health.v1.Health/Check";
/// A service name the health server knows; it reports it as not serving, so that its real
/// answer is told apart from the fallback's `SERVING`.
const KNOWN: &str = "svc";
/// A service name the health server does not know: it answers `NOT_FOUND`.
const UNKNOWN: &str = "no-such-service";

/// What a tonic channel answers, and so what the fallbacks answer.
type GrpcResponse = http::Response<Body>;
/// The fallbacks' one type.
type Fallback = BoxCloneSyncService<FallbackRequest<Parts>, GrpcResponse, BoxError>;

/// What the fallback was called with: the reason, the method and the path.
type Calls = Arc<Mutex<Vec<(Reason, http::Method, String)>>>;

/// A fallback answering every call `SERVING`, encoded as a server would, and noting its calls.
fn serving(calls: &Calls) -> Fallback {
    let calls = calls.clone();
    BoxCloneSyncService::new(service_fn(move |request: FallbackRequest<Parts>| {
        calls.lock().expect("not poisoned").push((
            request.reason,
            request.kept.method.clone(),
            request.kept.uri.path().to_owned(),
        ));
        async {
            Ok::<_, BoxError>(grpc::reply(&HealthCheckResponse {
                status: WireStatus::Serving.into(),
            }))
        }
    }))
}

/// A table declaring [`CHECK`] with `fallback`, every reason, and the header as asked.
fn check_table(fallback: Fallback, header: bool) -> FallbackTable<GrpcResponse> {
    FallbackTable::builder(&Degrader::new())
        .endpoint(CHECK, Endpoint::new(fallback).header(header))
        .build()
        .expect("a valid table")
}

/// A health server on a fresh loopback port, counting the requests reaching it, that can be
/// shut down.
struct HealthServer {
    addr: SocketAddr,
    _reporter: HealthReporter,
    hits: Counter,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl HealthServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("the listener's address");
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status(KNOWN, ServingStatus::NotServing)
            .await;
        let hits = Counter::default();
        let counter = hits.clone();
        let (shutdown, signal) = oneshot::channel::<()>();
        let server = Server::builder()
            .layer(MapRequestLayer::new(move |request: http::Request<Body>| {
                counter.hit();
                request
            }))
            .add_service(health)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = signal.await;
            });
        let task = tokio::spawn(async move { server.await.expect("tonic serves") });
        Self {
            addr,
            _reporter: reporter,
            hits,
            shutdown: Some(shutdown),
            task,
        }
    }

    async fn channel(&self) -> Channel {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("a valid URI");
        tokio::time::timeout(CALL_TIMEOUT, endpoint.connect())
            .await
            .expect("connected in time")
            .expect("a channel")
    }

    /// Shuts the server down: its listener closes and its connections end.
    async fn kill(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        tokio::time::timeout(CALL_TIMEOUT, &mut self.task)
            .await
            .expect("the server stopped in time")
            .expect("the server task ended cleanly");
    }
}

/// A health client on `channel`: the table's gRPC layer outside `breaker` in gRPC mode.
fn client(
    table: &FallbackTable<GrpcResponse>,
    breaker: &CircuitBreaker,
    channel: Channel,
) -> HealthClient<impl tonic::client::GrpcService<Body, Error = tonic::Status, ResponseBody = Body>>
{
    let service = ServiceBuilder::new()
        .layer(table.grpc_layer())
        .layer(breaker.layer().grpc())
        .service(channel);
    HealthClient::new(service)
}

/// Asks the health service about `service` through `client`.
async fn check<T>(
    client: &mut HealthClient<T>,
    service: &str,
) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status>
where
    T: tonic::client::GrpcService<Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: HttpBody<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as HttpBody>::Error: Into<tonic::codegen::StdError> + Send,
{
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    tokio::time::timeout(CALL_TIMEOUT, client.check(request))
        .await
        .expect("the call finished in time")
}

/// The serving status in an answer.
fn status_of(response: &tonic::Response<HealthCheckResponse>) -> WireStatus {
    response.get_ref().status()
}

/// The `steadfast-degraded` metadata of an answer, if any.
fn degraded(response: &tonic::Response<HealthCheckResponse>) -> Option<&str> {
    response
        .metadata()
        .get("steadfast-degraded")
        .map(|value| value.to_str().expect("ASCII metadata"))
}

/// Asserts `status` is the breaker's own refusal, as the breaker made it.
#[track_caller]
fn assert_refused(status: &tonic::Status) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("circuit breaker"),
        "the breaker's message: {status:?}"
    );
    let rejected = status
        .source()
        .and_then(|source| source.downcast_ref::<Rejected>());
    assert!(
        rejected.is_some(),
        "the refusal is the status's source: {status:?}"
    );
}

#[test]
fn grpc_table_layers_are_clone_send_sync() {
    assert_send_sync_clone::<TableLayer<GrpcResponse, Grpc, GrpcCodes>>();
    let table = check_table(serving(&Calls::default()), true);
    let _: TableLayer<GrpcResponse, Grpc, GrpcCodes> = table.grpc_layer();
}

#[tokio::test]
async fn a_refused_check_answers_from_its_fallback_and_other_methods_see_the_refusal() {
    let server = HealthServer::start().await;
    let (breaker, _time) = mock_breaker("health", 1_000, 1);
    let calls = Calls::default();
    let table = check_table(serving(&calls), true);
    let mut health = client(&table, &breaker, server.channel().await);

    // Closed: the server's own answer, unmarked.
    let response = check(&mut health, KNOWN).await.expect("an answer");
    assert_eq!(status_of(&response), WireStatus::NotServing);
    assert_eq!(degraded(&response), None);
    assert_eq!(server.hits.get(), 1);

    // Forced open: the generated client decodes the fallback's message, marked, and nothing
    // reaches the server.
    breaker.force_open();
    for _ in 0..2 {
        let response = check(&mut health, KNOWN)
            .await
            .expect("the fallback's answer");
        assert_eq!(status_of(&response), WireStatus::Serving);
        assert_eq!(degraded(&response), Some("breaker_open"));
    }
    assert_eq!(server.hits.get(), 1);
    assert_eq!(
        *calls.lock().expect("not poisoned"),
        vec![(Reason::BreakerOpen, http::Method::POST, CHECK.to_owned()); 2]
    );

    // `Watch` is not in the table: the breaker's refusal reaches the client unchanged.
    let request = HealthCheckRequest {
        service: KNOWN.to_owned(),
    };
    let status = tokio::time::timeout(CALL_TIMEOUT, health.watch(request))
        .await
        .expect("refused at once")
        .expect_err("the breaker is open");
    assert_refused(&status);
    // So does a `Check` on a channel with the breaker but no table.
    let mut bare = HealthClient::new(
        ServiceBuilder::new()
            .layer(breaker.layer().grpc())
            .service(server.channel().await),
    );
    let direct = check(&mut bare, KNOWN)
        .await
        .expect_err("the breaker is open");
    assert_refused(&direct);
    assert_eq!(status.message(), direct.message());
    assert_eq!(server.hits.get(), 1);
    assert_eq!(calls.lock().expect("not poisoned").len(), 2);

    // Without the header, the answer is the fallback's, unmarked on the wire.
    let quiet = check_table(serving(&calls), false);
    let mut quiet_health = client(&quiet, &breaker, server.channel().await);
    let response = check(&mut quiet_health, KNOWN)
        .await
        .expect("the fallback's answer");
    assert_eq!(status_of(&response), WireStatus::Serving);
    assert_eq!(degraded(&response), None);

    // Closed again: the server answers.
    breaker.reset();
    let response = check(&mut health, KNOWN).await.expect("an answer");
    assert_eq!(status_of(&response), WireStatus::NotServing);
    assert_eq!(degraded(&response), None);
    assert_eq!(server.hits.get(), 2);
}

#[tokio::test]
async fn not_found_is_an_answer_but_a_dead_server_is_a_failure() {
    const FAILURES: u32 = 3;
    let mut server = HealthServer::start().await;
    let (breaker, _time) = mock_breaker("health", FAILURES, 1);
    let calls = Calls::default();
    let table = check_table(serving(&calls), true);
    let mut health = client(&table, &breaker, server.channel().await);

    // The server answers NOT_FOUND for a service it does not know: the caller's doing, not a
    // failure, so the fallback does not answer.
    for _ in 0..FAILURES + 1 {
        let status = check(&mut health, UNKNOWN).await.expect_err("not found");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    assert_eq!(server.hits.get(), FAILURES as usize + 1);
    assert!(calls.lock().expect("not poisoned").is_empty());
    assert_eq!(breaker.state(), steadfast::breaker::State::Closed);

    // The server is gone: the transport fails, and the fallback answers for the method in
    // the table; after enough failures the breaker opens, and the fallback answers that.
    server.kill().await;
    let mut reasons = Vec::new();
    for _ in 0..FAILURES + 1 {
        let response = check(&mut health, KNOWN)
            .await
            .expect("the fallback's answer");
        assert_eq!(status_of(&response), WireStatus::Serving);
        reasons.push(degraded(&response).expect("marked").to_owned());
    }
    let expected: Vec<String> = std::iter::repeat_n("error", FAILURES as usize)
        .chain(["breaker_open"])
        .map(str::to_owned)
        .collect();
    assert_eq!(reasons, expected);
    assert_eq!(breaker.state(), steadfast::breaker::State::Open);
    let seen: Vec<Reason> = calls
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|(reason, _, _)| *reason)
        .collect();
    assert_eq!(
        seen,
        [
            Reason::Error,
            Reason::Error,
            Reason::Error,
            Reason::BreakerOpen
        ]
    );

    // A method outside the table gets no fallback: here the open breaker's refusal.
    let request = HealthCheckRequest {
        service: KNOWN.to_owned(),
    };
    let status = tokio::time::timeout(CALL_TIMEOUT, health.watch(request))
        .await
        .expect("refused at once")
        .expect_err("the breaker is open");
    assert_refused(&status);
}

#[tokio::test]
async fn a_dead_server_is_answered_by_the_fallback_while_the_breaker_stays_closed() {
    let mut server = HealthServer::start().await;
    // A breaker that never opens: every call after the kill reaches the dead transport.
    let (breaker, _time) = mock_breaker("health", 1_000, 1);
    let calls = Calls::default();
    let table = check_table(serving(&calls), true);
    let mut health = client(&table, &breaker, server.channel().await);
    assert_eq!(
        status_of(&check(&mut health, KNOWN).await.expect("an answer")),
        WireStatus::NotServing
    );

    server.kill().await;
    for _ in 0..3 {
        let response = check(&mut health, KNOWN)
            .await
            .expect("the fallback's answer");
        assert_eq!(status_of(&response), WireStatus::Serving);
        assert_eq!(degraded(&response), Some("error"));
    }
    assert_eq!(breaker.state(), steadfast::breaker::State::Closed);
    assert_eq!(
        calls.lock().expect("not poisoned").len(),
        3,
        "the fallback ran once per failed call"
    );
    // A method outside the table sees the transport failure as a status.
    let request = HealthCheckRequest {
        service: KNOWN.to_owned(),
    };
    let status = tokio::time::timeout(CALL_TIMEOUT, health.watch(request))
        .await
        .expect("failed in time")
        .expect_err("the server is gone");
    assert!(
        matches!(status.code(), Code::Unavailable | Code::Unknown),
        "{status:?}"
    );
    assert!(
        status
            .source()
            .and_then(|source| source.downcast_ref::<Rejected>())
            .is_none(),
        "not a breaker's refusal: {status:?}"
    );
}

#[tokio::test]
async fn a_failing_fallback_gives_unavailable_holding_both_causes() {
    let server = HealthServer::start().await;
    let (breaker, _time) = mock_breaker("health", 1_000, 1);
    let failing: Fallback =
        BoxCloneSyncService::new(service_fn(|_: FallbackRequest<Parts>| async {
            Err::<GrpcResponse, BoxError>(
                std::io::Error::other("the status cache is down too").into(),
            )
        }));
    let table = check_table(failing, true);
    let mut health = client(&table, &breaker, server.channel().await);

    breaker.force_open();
    let status = check(&mut health, KNOWN).await.expect_err("both failed");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // A fixed message: what a server passes on to its callers names no internals.
    assert_eq!(status.message(), "the call failed and so did its fallback");
    assert!(degraded_metadata_absent(&status), "{status:?}");

    // Both causes are there to read, in the source.
    let failed = status
        .source()
        .and_then(|source| source.downcast_ref::<BoxedFallbackFailed>())
        .unwrap_or_else(|| panic!("the failed fallback is the source: {status:?}"));
    assert_eq!(failed.reason(), Reason::BreakerOpen);
    let original = failed.original().expect("the breaker's refusal");
    assert!(
        original.to_string().contains("circuit breaker"),
        "{original}"
    );
    assert_eq!(
        failed.fallback_error().to_string(),
        "the status cache is down too"
    );
    assert_eq!(server.hits.get(), 0);
}

/// A failed call carries no `steadfast-degraded` mark.
fn degraded_metadata_absent(status: &tonic::Status) -> bool {
    status.metadata().get("steadfast-degraded").is_none()
}
