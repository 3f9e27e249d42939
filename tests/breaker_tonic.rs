//! The breaker around a real tonic `Channel` talking gRPC to a real tonic server (the standard
//! health service) over loopback: refusals are `UNAVAILABLE` with `grpc-retry-pushback-ms` and
//! never reach the server, probes close the breaker again, the typed mode reports refusals as
//! `Error::Rejected`, and a breaker layered on the server answers `UNAVAILABLE` itself.
#![cfg(all(feature = "breaker", feature = "tonic"))]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use steadfast::breaker::mode::{Grpc, Typed};
use steadfast::breaker::{CircuitBreaker, CircuitBreakerLayer, CircuitBreakerService, State};
use steadfast::core::GrpcCodes;
use support::{assert_send_sync_clone, mock_breaker, Counter, OPEN_FOR};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::codegen::Body as HttpBody;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tower::util::MapRequestLayer;
use tower::{ServiceBuilder, ServiceExt};

/// The longest any one call may take before the test fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A service name the health server knows and reports as serving.
const KNOWN: &str = "svc";
/// A service name the health server does not know: it answers `NOT_FOUND`.
const UNKNOWN: &str = "no-such-service";

/// `NOT_FOUND` is a failure, so that asking for an unknown service trips the breaker.
fn not_found_fails() -> GrpcCodes {
    GrpcCodes::none().with(Code::NotFound)
}

/// A health server on a fresh loopback port, with a layer that counts the requests reaching
/// it.
struct HealthServer {
    addr: SocketAddr,
    reporter: HealthReporter,
    hits: Counter,
}

/// A loopback listener and a health service that reports [`KNOWN`] as serving.
async fn health_on_loopback() -> (
    TcpListener,
    SocketAddr,
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("the listener's address");
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(KNOWN, ServingStatus::Serving)
        .await;
    (listener, addr, reporter, health)
}

impl HealthServer {
    async fn start() -> Self {
        let (listener, addr, reporter, health) = health_on_loopback().await;
        let hits = Counter::default();
        let counter = hits.clone();
        let server = Server::builder()
            .layer(MapRequestLayer::new(move |request: http::Request<Body>| {
                counter.hit();
                request
            }))
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener));
        tokio::spawn(async move { server.await.expect("tonic serves") });
        Self {
            addr,
            reporter,
            hits,
        }
    }

    async fn channel(&self) -> Channel {
        connect(self.addr).await
    }
}

async fn connect(addr: SocketAddr) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("a valid URI");
    tokio::time::timeout(CALL_TIMEOUT, endpoint.connect())
        .await
        .expect("connected in time")
        .expect("a channel")
}

/// Asks the health service about `service` through `client`.
async fn check<T>(client: &mut HealthClient<T>, service: &str) -> Result<WireStatus, tonic::Status>
where
    T: tonic::client::GrpcService<Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: HttpBody<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as HttpBody>::Error: Into<tonic::codegen::StdError> + Send,
{
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let response = tokio::time::timeout(CALL_TIMEOUT, client.check(request))
        .await
        .expect("the call finished in time")?;
    Ok(response.into_inner().status())
}

/// Asserts `status` is the breaker's refusal of an open breaker, `pushback_ms` from probing.
#[track_caller]
fn assert_refused(status: &tonic::Status, pushback_ms: &str) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("circuit breaker"),
        "the message should say a circuit breaker refused: {status:?}"
    );
    assert_eq!(
        status
            .metadata()
            .get("grpc-retry-pushback-ms")
            .map(|value| value.to_str().expect("ASCII metadata")),
        Some(pushback_ms),
        "{status:?}"
    );
}

#[test]
fn grpc_layers_and_services_are_clone_send_sync() {
    type GrpcService = CircuitBreakerService<Channel, GrpcCodes, Grpc, CircuitBreaker>;
    type TypedService = CircuitBreakerService<Channel, GrpcCodes, Typed, CircuitBreaker>;
    assert_send_sync_clone::<CircuitBreakerLayer<GrpcCodes, Grpc>>();
    assert_send_sync_clone::<CircuitBreakerLayer<GrpcCodes, Typed>>();
    assert_send_sync_clone::<GrpcService>();
    assert_send_sync_clone::<TypedService>();
    assert_send_sync_clone::<HealthClient<GrpcService>>();
    // The layers the other tests build have these exact types.
    let (breaker, _time) = mock_breaker("types", 1, 1);
    let _: CircuitBreakerLayer<GrpcCodes, Grpc> =
        breaker.layer().grpc().classify(not_found_fails());
    let _: CircuitBreakerLayer<GrpcCodes, Typed> = breaker.layer().classify(not_found_fails());
}

#[tokio::test]
async fn grpc_mode_refuses_with_unavailable_and_recovers() {
    const FAILURES: u32 = 3;
    let server = HealthServer::start().await;
    let (breaker, time) = mock_breaker("health", FAILURES, 3);
    let service = ServiceBuilder::new()
        .layer(breaker.layer().grpc().classify(not_found_fails()))
        .service(server.channel().await);
    let mut client = HealthClient::new(service);

    // The server answers, and the breaker counts its NOT_FOUNDs as failures.
    for sent in 1..=FAILURES {
        let status = check(&mut client, UNKNOWN).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(server.hits.get(), sent as usize);
        let expected = if sent < FAILURES {
            State::Closed
        } else {
            State::Open
        };
        assert_eq!(breaker.state(), expected, "after {sent} failures");
    }

    // Open: UNAVAILABLE on the client's side, nothing reaches the server, whatever is asked.
    for service in [UNKNOWN, KNOWN] {
        let status = check(&mut client, service).await.unwrap_err();
        assert_refused(&status, "30000");
    }
    assert_eq!(server.hits.get(), 3);
    time.advance(Duration::from_millis(12_345));
    assert_refused(&check(&mut client, KNOWN).await.unwrap_err(), "17655");
    assert_eq!(server.hits.get(), 3);

    // A failed probe opens it again for a whole period.
    time.advance(OPEN_FOR);
    let status = check(&mut client, UNKNOWN).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(server.hits.get(), 4);
    assert_eq!(breaker.state(), State::Open);
    assert_refused(&check(&mut client, KNOWN).await.unwrap_err(), "30000");
    assert_eq!(server.hits.get(), 4);

    // Probes that succeed close it.
    time.advance(OPEN_FOR);
    for probe in 1..=3 {
        let serving = check(&mut client, KNOWN).await.expect("a probe's answer");
        assert_eq!(serving, WireStatus::Serving);
        let expected = if probe < 3 {
            State::HalfOpen
        } else {
            State::Closed
        };
        assert_eq!(breaker.state(), expected, "after probe {probe}");
    }
    assert_eq!(server.hits.get(), 7);

    // Closed: every call reaches the server again, even the ones that fail.
    server
        .reporter
        .set_service_status(KNOWN, ServingStatus::NotServing)
        .await;
    let status = check(&mut client, KNOWN).await.expect("an answer");
    assert_eq!(status, WireStatus::NotServing);
    let status = check(&mut client, UNKNOWN).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(server.hits.get(), 9);
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test]
async fn clones_of_the_client_share_the_breaker() {
    let server = HealthServer::start().await;
    let (breaker, _time) = mock_breaker("health", 2, 1);
    let service = ServiceBuilder::new()
        .layer(breaker.layer().grpc().classify(not_found_fails()))
        .service(server.channel().await);
    let mut first = HealthClient::new(service.clone());
    let mut second = HealthClient::new(service);

    assert!(check(&mut first, UNKNOWN).await.is_err());
    assert!(check(&mut second, UNKNOWN).await.is_err());
    assert_eq!(breaker.state(), State::Open);
    let mut third = first.clone();
    for client in [&mut first, &mut second, &mut third] {
        assert_refused(&check(client, KNOWN).await.unwrap_err(), "30000");
    }
    assert_eq!(server.hits.get(), 2);
}

#[tokio::test]
async fn typed_mode_around_a_channel_reports_rejections() {
    let server = HealthServer::start().await;
    let (breaker, _time) = mock_breaker("health", 2, 1);
    // The default, typed mode, with the gRPC classifier reading the trailers-only
    // `grpc-status` of the HTTP responses the channel returns.
    let service = ServiceBuilder::new()
        .layer(breaker.layer().classify(not_found_fails()))
        .service(server.channel().await);
    let mut client = HealthClient::new(service.clone());

    assert_eq!(
        check(&mut client, KNOWN).await.expect("an answer"),
        WireStatus::Serving
    );
    for _ in 0..2 {
        let status = check(&mut client, UNKNOWN).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(server.hits.get(), 3);

    // Called directly, the wrapped channel refuses with `Error::Rejected`.
    let request = http::Request::new(Body::empty());
    let error = tokio::time::timeout(CALL_TIMEOUT, service.clone().oneshot(request))
        .await
        .expect("refused at once")
        .expect_err("the breaker is open");
    assert!(error.is_rejected(), "{error:?}");
    let rejected = *error.rejected().expect("a refusal");
    assert_eq!(rejected.state(), State::Open);
    assert_eq!(rejected.retry_after(), Some(OPEN_FOR));
    assert!(
        error.to_string().contains("circuit breaker is open"),
        "{error}"
    );

    // And converts to UNAVAILABLE with the pushback hint.
    let status = tonic::Status::from(error);
    assert_refused(&status, "30000");

    // Through the generated client the call fails too, without reaching the server.
    let status = check(&mut client, KNOWN).await.unwrap_err();
    assert!(status.message().contains("circuit breaker"), "{status:?}");
    assert_eq!(server.hits.get(), 3);
}

#[tokio::test]
async fn breaker_on_the_server_answers_unavailable() {
    let (listener, addr, _reporter, health) = health_on_loopback().await;
    let (breaker, time) = mock_breaker("health-server", 2, 1);
    let reached = Counter::default();
    let counter = reached.clone();
    let server = Server::builder()
        // Outermost: the breaker; inside it, the count of requests it let through.
        .layer(breaker.layer().grpc().classify(not_found_fails()))
        .layer(MapRequestLayer::new(move |request: http::Request<Body>| {
            counter.hit();
            request
        }))
        .add_service(health)
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(async move { server.await.expect("tonic serves") });
    let mut client = HealthClient::new(connect(addr).await);

    for _ in 0..2 {
        let status = check(&mut client, UNKNOWN).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    assert_eq!(breaker.state(), State::Open);
    assert_eq!(reached.get(), 2);

    // The server answers UNAVAILABLE itself, with the pushback hint in the trailers.
    let status = check(&mut client, KNOWN).await.unwrap_err();
    assert_refused(&status, "30000");
    assert_eq!(reached.get(), 2);

    time.advance(OPEN_FOR);
    assert_eq!(
        check(&mut client, KNOWN).await.expect("a probe's answer"),
        WireStatus::Serving
    );
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(reached.get(), 3);
}
