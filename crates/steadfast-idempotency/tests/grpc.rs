//! The HTTP layer on a real tonic server on loopback: the key travels in metadata, the
//! answer and its trailers are replayed, failures that may pass release the key, and
//! refusals are gRPC statuses.
#![cfg(feature = "tonic")]

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use steadfast_idempotency::http::IdempotencyLayer;
use steadfast_idempotency::Idempotency;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::Stream;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// A health service that counts its checks: "ok" answers SERVING, "missing" NOT_FOUND (a
/// failure a retry gets again), "flaky" UNAVAILABLE (one that may pass).
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

#[tonic::async_trait]
impl Health for Counting {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        match request.into_inner().service.as_str() {
            "missing" => Err(Status::not_found("no such service")),
            "flaky" => Err(Status::unavailable("try again")),
            _ => Ok(Response::new(HealthCheckResponse {
                status: ServingStatus::Serving as i32,
            })),
        }
    }

    type WatchStream =
        Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

async fn serve(counting: Counting) -> HealthClient<Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = Server::builder()
        .layer(IdempotencyLayer::new(Idempotency::in_memory()).methods([http::Method::POST]))
        .add_service(HealthServer::new(counting))
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(async move { server.await.expect("tonic serves") });
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

fn check(service: &str, key: &str) -> Request<HealthCheckRequest> {
    let mut request = Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request
        .metadata_mut()
        .insert("idempotency-key", key.parse().unwrap());
    request
}

#[tokio::test]
async fn a_retried_call_is_answered_from_the_record() {
    let counting = Counting::default();
    let mut client = serve(counting.clone()).await;
    let first = client.check(check("ok", "k-1")).await.unwrap();
    assert!(first.metadata().get("idempotent-replayed").is_none());
    let retry = client.check(check("ok", "k-1")).await.unwrap();
    assert_eq!(retry.metadata().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(retry.into_inner().status, ServingStatus::Serving as i32);
    assert_eq!(counting.0.load(Ordering::SeqCst), 1);

    // The same key for another request: FAILED_PRECONDITION.
    let other = client.check(check("other", "k-1")).await.unwrap_err();
    assert_eq!(other.code(), Code::FailedPrecondition);
    // A malformed key: INVALID_ARGUMENT.
    let bad = client.check(check("ok", "two words")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_status_a_retry_gets_again_is_kept_and_one_that_may_pass_is_not() {
    let counting = Counting::default();
    let mut client = serve(counting.clone()).await;
    for _ in 0..2 {
        let missing = client.check(check("missing", "k-404")).await.unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(missing.message(), "no such service");
    }
    assert_eq!(
        counting.0.load(Ordering::SeqCst),
        1,
        "NOT_FOUND is replayed"
    );
    for _ in 0..2 {
        let flaky = client.check(check("flaky", "k-503")).await.unwrap_err();
        assert_eq!(flaky.code(), Code::Unavailable);
    }
    assert_eq!(
        counting.0.load(Ordering::SeqCst),
        3,
        "UNAVAILABLE released the key: the retry ran"
    );
}
