//! The `shop.v1.Shop` gRPC service, written by hand: what `tonic-build` would generate from
//! this definition, cut down to what the examples use.
//!
//! ```text
//! syntax = "proto3";
//! package shop.v1;
//!
//! service Shop {
//!   rpc GetProduct(GetProductRequest) returns (Product);
//!   rpc PlaceOrder(PlaceOrderRequest) returns (Order);
//! }
//!
//! message GetProductRequest { uint64 id = 1; }
//! message Product { uint64 id = 1; string name = 2; uint64 price_cents = 3; }
//! message PlaceOrderRequest { uint64 product_id = 1; uint32 quantity = 2; }
//! message Order { uint64 order_id = 1; uint64 product_id = 2; uint32 quantity = 3; uint64 amount_cents = 4; }
//! ```
//!
//! A real project would generate this with `tonic-build` (or `tonic-prost-build`) from a
//! `.proto` file; writing it out keeps the examples free of a build script and of `protoc`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{http, Body as HttpBody, BoxFuture, Bytes, GrpcMethod, Service, StdError};
use tonic::{IntoRequest, Request, Response, Status};
use tonic_prost::ProstCodec;

/// The service's full name.
pub(crate) const SERVICE: &str = "shop.v1.Shop";
/// The path of `GetProduct`: what fallback tables and per-method breakers are keyed by.
pub(crate) const GET_PRODUCT: &str = "/shop.v1.Shop/GetProduct";
/// The path of `PlaceOrder`.
pub(crate) const PLACE_ORDER: &str = "/shop.v1.Shop/PlaceOrder";
/// Every method's path.
pub(crate) const METHODS: [&str; 2] = [GET_PRODUCT, PLACE_ORDER];

/// The metadata naming the caller. The server scopes idempotency keys by it, so that two
/// customers who happen to pick the same key never see each other's orders. (A real service
/// takes the principal its authentication verified, not a value the caller writes.)
pub(crate) const CUSTOMER: &str = "customer-id";
/// The metadata carrying a `PlaceOrder`'s idempotency key.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The metadata of a replayed answer: the server answered a retry from its record.
pub(crate) const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// The metadata saying where a `GetProduct` answer came from: `hit`, `miss`, or `stale; ...`.
pub(crate) const CACHE_STATUS: &str = "cache-status";

/// The known method a request path names, if any, as a `'static` string: a key for
/// per-method breakers that costs no allocation and that no caller can multiply.
pub(crate) fn method(path: &str) -> Option<&'static str> {
    METHODS.into_iter().find(|method| *method == path)
}

/// Which product to read.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct GetProductRequest {
    #[prost(uint64, tag = "1")]
    pub(crate) id: u64,
}

/// A product of the catalogue.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Product {
    #[prost(uint64, tag = "1")]
    pub(crate) id: u64,
    #[prost(string, tag = "2")]
    pub(crate) name: String,
    #[prost(uint64, tag = "3")]
    pub(crate) price_cents: u64,
}

/// An order to place: the caller sends an `idempotency-key` with it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PlaceOrderRequest {
    #[prost(uint64, tag = "1")]
    pub(crate) product_id: u64,
    #[prost(uint32, tag = "2")]
    pub(crate) quantity: u32,
}

/// A placed, charged order.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Order {
    /// The charge's number: a retry answered from the idempotency record has the same one.
    #[prost(uint64, tag = "1")]
    pub(crate) order_id: u64,
    #[prost(uint64, tag = "2")]
    pub(crate) product_id: u64,
    #[prost(uint32, tag = "3")]
    pub(crate) quantity: u32,
    #[prost(uint64, tag = "4")]
    pub(crate) amount_cents: u64,
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// A client of the Shop service over any gRPC transport: a tonic `Channel`, or a channel
/// wrapped in tower layers (breakers, fallbacks).
#[derive(Debug, Clone)]
pub(crate) struct ShopClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T> ShopClient<T>
where
    T: tonic::client::GrpcService<Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: HttpBody<Data = Bytes> + Send + 'static,
    <T::ResponseBody as HttpBody>::Error: Into<StdError> + Send,
{
    /// A client sending its calls through `transport`.
    pub(crate) fn new(transport: T) -> Self {
        Self {
            inner: tonic::client::Grpc::new(transport),
        }
    }

    /// `GetProduct`.
    pub(crate) async fn get_product(
        &mut self,
        request: impl IntoRequest<GetProductRequest>,
    ) -> Result<Response<Product>, Status> {
        self.unary(request.into_request(), GET_PRODUCT, "GetProduct")
            .await
    }

    /// `PlaceOrder`.
    pub(crate) async fn place_order(
        &mut self,
        request: impl IntoRequest<PlaceOrderRequest>,
    ) -> Result<Response<Order>, Status> {
        self.unary(request.into_request(), PLACE_ORDER, "PlaceOrder")
            .await
    }

    async fn unary<M1, M2>(
        &mut self,
        mut request: Request<M1>,
        path: &'static str,
        method: &'static str,
    ) -> Result<Response<M2>, Status>
    where
        M1: prost::Message + Send + Sync + 'static,
        M2: prost::Message + Default + Send + Sync + 'static,
    {
        self.inner.ready().await.map_err(|error| {
            Status::unknown(format!("the transport is not ready: {}", error.into()))
        })?;
        request
            .extensions_mut()
            .insert(GrpcMethod::new(SERVICE, method));
        let path = http::uri::PathAndQuery::from_static(path);
        self.inner.unary(request, path, ProstCodec::default()).await
    }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// What a Shop server implements.
pub(crate) trait Shop: Send + Sync + 'static {
    /// `GetProduct`.
    fn get_product(
        &self,
        request: Request<GetProductRequest>,
    ) -> impl Future<Output = Result<Response<Product>, Status>> + Send;

    /// `PlaceOrder`.
    fn place_order(
        &self,
        request: Request<PlaceOrderRequest>,
    ) -> impl Future<Output = Result<Response<Order>, Status>> + Send;
}

/// The Shop service for tonic's `Server`: routes each call by its path to a [`Shop`].
#[derive(Debug)]
pub(crate) struct ShopServer<T> {
    shop: Arc<T>,
}

impl<T> ShopServer<T> {
    /// The service answering with `shop`.
    pub(crate) fn new(shop: T) -> Self {
        Self {
            shop: Arc::new(shop),
        }
    }
}

impl<T> Clone for ShopServer<T> {
    fn clone(&self) -> Self {
        Self {
            shop: Arc::clone(&self.shop),
        }
    }
}

impl<T: Shop> Service<http::Request<Body>> for ShopServer<T> {
    type Response = http::Response<Body>;
    // A failed call is a gRPC status inside the response, never a transport error.
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let shop = Arc::clone(&self.shop);
        match request.uri().path() {
            GET_PRODUCT => Box::pin(async move {
                let method = tower::service_fn(move |request| {
                    let shop = Arc::clone(&shop);
                    async move { shop.get_product(request).await }
                });
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(method, request).await)
            }),
            PLACE_ORDER => Box::pin(async move {
                let method = tower::service_fn(move |request| {
                    let shop = Arc::clone(&shop);
                    async move { shop.place_order(request).await }
                });
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(method, request).await)
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

impl<T> tonic::server::NamedService for ShopServer<T> {
    const NAME: &'static str = SERVICE;
}
