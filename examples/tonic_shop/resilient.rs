//! The Shop client's protection, per method: a circuit breaker for each method, and a fallback
//! for `GetProduct` only.
//!
//! Shared by the `tonic_client` example and the tests. Outermost first:
//!
//! ```text
//! fallback table (GetProduct only) → one breaker per method, with a call timeout → Channel
//! ```
//!
//! The table sits outside the breakers so that it answers their refusals. `PlaceOrder` has no
//! fallback: a charge cannot be faked, so its caller gets a clear `UNAVAILABLE` and retries
//! later with the same `idempotency-key`, which the server answers at most once.

use std::convert::Infallible;
use std::time::Duration;

use http::request::Parts;
use steadfast::breaker::{self, BreakerRegistry, CircuitBreaker, CircuitBreakerLayer, ConfigError};
use steadfast::fallback::table::{Endpoint, FallbackTable, TableError};
use steadfast::fallback::{grpc, Degrader, FallbackRequest};
use tonic::body::Body;
use tonic::metadata::errors::InvalidMetadataValue;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status};
use tower::{service_fn, ServiceBuilder};

use crate::proto::{self, PlaceOrderRequest, Product, ShopClient};

/// The metadata a fallback's answer carries, naming why it answered (`breaker_open`,
/// `error`, `timeout`, ...).
pub(crate) const DEGRADED: &str = "steadfast-degraded";
/// The metadata of a breaker's refusal: how long until it lets a call through again.
pub(crate) const PUSHBACK: &str = "grpc-retry-pushback-ms";

/// The longest one call may take before it counts as a failure and is answered
/// `DEADLINE_EXCEEDED` (or, for `GetProduct`, by the fallback).
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// What a tonic channel answers, and so what a fallback answers.
pub(crate) type GrpcResponse = http::Response<Body>;

/// The product `GetProduct` answers when the server cannot: no product at all, in the shape of
/// one. The fallback sees only the request's head (the message went to the channel), so it does
/// not know which product was asked for; the caller does, and the `steadfast-degraded`
/// metadata tells it that this is not the product.
pub(crate) fn placeholder() -> Product {
    Product {
        id: 0,
        name: "(product details are unavailable right now)".to_owned(),
        price_cents: 0,
    }
}

/// Every method's fallback, keyed by its path. `PlaceOrder` is not in it.
///
/// # Errors
///
/// When the table is invalid.
pub(crate) fn fallbacks() -> Result<FallbackTable<GrpcResponse>, TableError> {
    let get_product = service_fn(|_: FallbackRequest<Parts>| async {
        // Encoded as the server would answer: the client decodes it as any other product.
        Ok::<_, Infallible>(grpc::reply(&placeholder()))
    });
    FallbackTable::builder(&Degrader::new())
        // Every reason: the breaker's refusal, a timeout, a failed call. Statuses that are the
        // caller's doing (NOT_FOUND, INVALID_ARGUMENT) are not failures and pass through.
        .endpoint(proto::GET_PRODUCT, Endpoint::new(get_product).header(true))
        .build()
}

/// The breakers' settings: open after 3 failures in a row, refuse for a second, then let one
/// call through as a probe, whose success closes the breaker again. Short, for a demo; a real
/// client would open for longer.
pub(crate) fn breaker_template() -> breaker::Builder {
    CircuitBreaker::builder("shop-client")
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(1))
        .half_open_probes(1)
}

/// One breaker per method, made from `template` on a method's first call: a method that
/// fails (its backend down) does not stop the others.
///
/// # Errors
///
/// When the template is invalid.
pub(crate) fn breakers(
    template: breaker::Builder,
) -> Result<BreakerRegistry<&'static str>, ConfigError> {
    // Keys are the service's method paths, so there are only ever a few. The bound is
    // generous on purpose: each of the registry's shards holds a share of it, and two methods
    // must never be a shard's only room and evict each other's breaker.
    BreakerRegistry::new(template, 1_024, Duration::from_secs(3_600))
}

/// A Shop client on `channel`, each call through `fallbacks`, then its method's breaker.
pub(crate) fn client(
    channel: Channel,
    fallbacks: &FallbackTable<GrpcResponse>,
    breakers: &BreakerRegistry<&'static str>,
) -> ShopClient<
    impl tonic::client::GrpcService<Body, Error = Status, ResponseBody = Body> + Clone + Send,
> {
    // The key is the method's path; a path the service does not have goes through no breaker
    // (it cannot be keyed by a caller-chosen string, and the server will answer UNIMPLEMENTED).
    let per_method = CircuitBreakerLayer::keyed(breakers.clone(), |call: &http::Request<Body>| {
        proto::method(call.uri().path())
    });
    let stack = ServiceBuilder::new()
        .layer(fallbacks.grpc_layer())
        // The gRPC mode: refusals are UNAVAILABLE with `grpc-retry-pushback-ms`, and the codes
        // that say the server could not serve (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...)
        // are the failures. A call past the timeout is one too.
        .layer(per_method.grpc().timeout(CALL_TIMEOUT))
        .service(channel);
    ShopClient::new(stack)
}

/// A `PlaceOrder` request from `customer` with its `idempotency-key`. Send the same key on every
/// retry of one order, and a new one for the next order.
///
/// # Errors
///
/// When the key or the customer is not valid metadata (visible ASCII).
pub(crate) fn order(
    order: PlaceOrderRequest,
    customer: &str,
    key: &str,
) -> Result<Request<PlaceOrderRequest>, InvalidMetadataValue> {
    let mut request = Request::new(order);
    let metadata = request.metadata_mut();
    metadata.insert(proto::CUSTOMER, MetadataValue::try_from(customer)?);
    metadata.insert(proto::IDEMPOTENCY_KEY, MetadataValue::try_from(key)?);
    Ok(request)
}
