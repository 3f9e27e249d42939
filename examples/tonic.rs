//! A tonic client guarded by a circuit breaker, against a real server that goes down and
//! comes back.
//!
//! Run it with `cargo run --example tonic --features full`. Everything happens on loopback and
//! the program ends by itself. The server is tonic's gRPC health service; the client is its
//! generated client over a `Channel` wrapped in the breaker's gRPC mode.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use steadfast::breaker::{CircuitBreaker, Event, EventKind};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::ServingStatus;
use tower::ServiceBuilder;

/// Serves the health service on `listener` until `stop` fires.
async fn serve(listener: TcpListener, stop: oneshot::Receiver<()>) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("inventory", ServingStatus::Serving)
        .await;
    Server::builder()
        .add_service(health)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            let _ = stop.await;
        })
        .await
        .expect("the server runs");
}

/// The name of a health status code, as the wire spells it.
fn serving(status: i32) -> &'static str {
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    Wire::try_from(status).map_or("UNRECOGNIZED", |status| status.as_str_name())
}

async fn start(addr: SocketAddr) -> oneshot::Sender<()> {
    let listener = TcpListener::bind(addr).await.expect("bind the server");
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(serve(listener, stopped));
    stop
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let at = move || format!("{:>6.3}s", started.elapsed().as_secs_f64());

    // A port of our own on loopback.
    let addr = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let stop = start(addr).await;

    let breaker = CircuitBreaker::builder("inventory-grpc")
        .consecutive_failures(3)
        .open_duration(Duration::from_millis(400))
        .half_open_probes(2)
        .listener(move |event: &Event<'_>| {
            if let EventKind::Transition { from, to } = event.kind {
                println!("{}  ⚡ {from} → {to}", at());
            }
        })
        .build()?
        .leak();
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_millis(200))
        .connect_lazy();
    let mut client = HealthClient::new(
        ServiceBuilder::new()
            .layer(breaker.static_layer().grpc())
            .service(channel),
    );
    let request = || HealthCheckRequest {
        service: "inventory".into(),
    };

    println!("── The server is up");
    for _ in 0..3 {
        let status = client.check(request()).await?.into_inner().status;
        println!("   check: {}", serving(status));
    }

    println!("── The server goes down");
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let status = client.check(request()).await.unwrap_err();
        println!("   check: {:?} ({})", status.code(), status.message());
    }

    println!("── Open: refused at once, no connection attempted");
    let refusing = Instant::now();
    let mut pushback = None;
    for _ in 0..1_000 {
        let status = client.check(request()).await.unwrap_err();
        pushback = status.metadata().get("grpc-retry-pushback-ms").cloned();
    }
    println!(
        "   1000 checks refused in {:?} each; UNAVAILABLE with grpc-retry-pushback-ms = {:?}",
        refusing.elapsed() / 1_000,
        pushback
    );

    println!("── The server comes back; after the open period, probes close the breaker");
    let _stop = start(addr).await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    for _ in 0..3 {
        let status = client.check(request()).await?.into_inner().status;
        println!("   check: {}", serving(status));
    }
    println!("── {:?}", breaker.snapshot().state);
    Ok(())
}
