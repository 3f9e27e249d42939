//! The HTTP layer: the IETF `Idempotency-Key` header, for axum and any tower HTTP stack
//! (feature `http`).
//!
//! | the request | the answer |
//! |---|---|
//! | a method the layer does not cover (POST and PATCH by default) | passed through |
//! | no key, where keys are required | `400` |
//! | a malformed key, or two | `400` |
//! | a body over the limit | `413` |
//! | a key in flight, same request | `409` (or, by policy, the first call's answer once it is done) |
//! | a key used for another request (method, path, body) | `422` |
//! | a key completed, same request | the stored answer, with `Idempotent-Replayed: true` |
//! | the store unavailable | `503` with `Retry-After` (or, by policy, run without) |
//!
//! Errors are RFC 9457 `application/problem+json`. Which answers are stored is a policy: by
//! default 2xx and the deterministic 4xx; a 5xx, a panic or a dropped request releases the
//! key, so a retry runs again; once the handler has succeeded the key is never released (an
//! answer lost on the way, or too large to keep, is recorded as such and retries are told
//! so). Keys are scoped by the caller with [`IdempotencyLayer::scope`]: then one client never
//! replays another's answer. Without a scope all callers share one: set one wherever callers
//! are distinct principals.
//!
//! ```
//! use axum::{body::Body, routing::post, Router};
//! use http::{Request, StatusCode};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use steadfast_idempotency::http::IdempotencyLayer;
//! use steadfast_idempotency::Idempotency;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let charges = Arc::new(AtomicU32::new(0));
//! let counter = charges.clone();
//! let app = Router::new()
//!     .route("/payments", post(move || async move {
//!         let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
//!         (StatusCode::CREATED, format!("payment #{n}"))
//!     }))
//!     .layer(IdempotencyLayer::new(Idempotency::in_memory()));
//!
//! let pay = || Request::post("/payments")
//!     .header("idempotency-key", "\"order-7\"")
//!     .body(Body::from("10 EUR"))
//!     .unwrap();
//! let first = app.clone().oneshot(pay()).await.unwrap();
//! let retry = app.clone().oneshot(pay()).await.unwrap();
//! assert_eq!(first.status(), StatusCode::CREATED);
//! assert_eq!(retry.status(), StatusCode::CREATED);
//! assert_eq!(retry.headers()["idempotent-replayed"], "true");
//! assert_eq!(charges.load(Ordering::SeqCst), 1);
//! # }
//! ```

mod body;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use steadfast_core::BoxError;
use tower_layer::Layer;
use tower_service::Service;

pub use body::IdempotencyBody;

use crate::record::{Completed, Payload, StoredResponse};
use crate::run::{Acquired, Refused, Release};
use crate::store::{MemoryStore, Store, StoreError, StoreKey};
use crate::{Fingerprint, Idempotency, IdempotencyKey};

/// Request bodies the layer can rebuild after reading them for the fingerprint.
///
/// Implemented for axum's body (feature `axum`), tonic's (feature `tonic`), and
/// `http_body_util::Full<Bytes>`.
pub trait FromBytes {
    /// The body holding `bytes`.
    fn from_bytes(bytes: Bytes) -> Self;
}

impl FromBytes for http_body_util::Full<Bytes> {
    fn from_bytes(bytes: Bytes) -> Self {
        http_body_util::Full::new(bytes)
    }
}

#[cfg(feature = "axum")]
impl FromBytes for axum_core::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        axum_core::body::Body::from(bytes)
    }
}

#[cfg(feature = "tonic")]
impl FromBytes for tonic::body::Body {
    fn from_bytes(bytes: Bytes) -> Self {
        tonic::body::Body::new(http_body_util::Full::new(bytes))
    }
}

/// The request header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The header on a replayed answer.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

type ScopeFn = Arc<dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync>;
type StorePolicy = fn(StatusCode) -> bool;

/// The answers stored by default: every 2xx, and the 4xx a retry would get again (400, 404,
/// 405, 410, 413, 415, 422). Not 401 or 403 (a token is refreshed, a right granted), nor 408,
/// 409, 423, 425 or 429: those may pass.
#[must_use]
pub fn default_store_policy(status: StatusCode) -> bool {
    status.is_success()
        || matches!(
            status.as_u16(),
            400 | 401 | 403 | 404 | 405 | 410 | 413 | 415 | 422
        )
}

/// The settings of the layer, shared by its services.
struct Settings {
    methods: Vec<Method>,
    required: bool,
    scope: Option<ScopeFn>,
    max_request: usize,
    max_response: usize,
    store_policy: StorePolicy,
    replay_headers: Vec<HeaderName>,
    fingerprint_headers: Vec<HeaderName>,
}

/// The idempotency layer for HTTP services. See the [module docs](self).
pub struct IdempotencyLayer<S = MemoryStore> {
    engine: Idempotency<S>,
    settings: Settings,
}

impl<S: fmt::Debug> fmt::Debug for IdempotencyLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("engine", &self.engine)
            .field("methods", &self.settings.methods)
            .field("required", &self.settings.required)
            .field("scoped", &self.settings.scope.is_some())
            .finish_non_exhaustive()
    }
}

impl<S: Store> IdempotencyLayer<S> {
    /// A layer over `engine`: POST and PATCH, keys optional, one global scope, request bodies
    /// up to 1 MiB, stored responses up to 1 MiB.
    pub fn new(engine: Idempotency<S>) -> Self {
        Self {
            engine,
            settings: Settings {
                methods: vec![Method::POST, Method::PATCH],
                required: false,
                scope: None,
                max_request: 1 << 20,
                max_response: 1 << 20,
                store_policy: default_store_policy,
                replay_headers: [
                    http::header::CONTENT_TYPE,
                    http::header::CONTENT_LANGUAGE,
                    http::header::CONTENT_ENCODING,
                    http::header::LOCATION,
                    http::header::ETAG,
                    http::header::LAST_MODIFIED,
                    // gRPC: a trailers-only answer carries its status in its headers.
                    HeaderName::from_static("grpc-encoding"),
                    HeaderName::from_static("grpc-status"),
                    HeaderName::from_static("grpc-message"),
                    HeaderName::from_static("grpc-status-details-bin"),
                ]
                .into(),
                fingerprint_headers: Vec::new(),
            },
        }
    }

    /// The methods covered (POST and PATCH by default).
    #[must_use]
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.settings.methods = methods.into_iter().collect();
        self
    }

    /// Whether a covered request without a key is refused with `400` (by default it passes).
    #[must_use]
    pub const fn require_key(mut self, required: bool) -> Self {
        self.settings.required = required;
        self
    }

    /// The caller's identity, from the request head (say, the authenticated principal an
    /// outer layer put in the extensions): keys are scoped by it. `None` refuses the request
    /// with `401`. Without a scope, all callers share one.
    #[must_use]
    pub fn scope<F>(mut self, scope: F) -> Self
    where
        F: Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    {
        self.settings.scope = Some(Arc::new(scope));
        self
    }

    /// The largest request body read for the fingerprint; larger is `413`.
    #[must_use]
    pub const fn max_request_body(mut self, bytes: usize) -> Self {
        self.settings.max_request = bytes;
        self
    }

    /// The largest response body stored; a larger response is passed through and its key
    /// released, never stored in part.
    #[must_use]
    pub const fn max_response_body(mut self, bytes: usize) -> Self {
        self.settings.max_response = bytes;
        self
    }

    /// Which statuses are stored (see [`default_store_policy`]); the others release the key.
    #[must_use]
    pub fn store_when(mut self, policy: fn(StatusCode) -> bool) -> Self {
        self.settings.store_policy = policy;
        self
    }

    /// Adds a response header to those a replay repeats. `Set-Cookie` is never repeated
    /// unless added here.
    #[must_use]
    pub fn replay_header(mut self, name: HeaderName) -> Self {
        self.settings.replay_headers.push(name);
        self
    }

    /// Adds a request header to the fingerprint (method, path, query and body always are).
    #[must_use]
    pub fn fingerprint_header(mut self, name: HeaderName) -> Self {
        self.settings.fingerprint_headers.push(name);
        self
    }
}

impl<S: Store, Inner> Layer<Inner> for IdempotencyLayer<S> {
    type Service = IdempotencyService<Inner, S>;

    fn layer(&self, inner: Inner) -> Self::Service {
        IdempotencyService {
            inner,
            engine: self.engine.clone(),
            settings: Arc::new(Settings {
                methods: self.settings.methods.clone(),
                required: self.settings.required,
                scope: self.settings.scope.clone(),
                max_request: self.settings.max_request,
                max_response: self.settings.max_response,
                store_policy: self.settings.store_policy,
                replay_headers: self.settings.replay_headers.clone(),
                fingerprint_headers: self.settings.fingerprint_headers.clone(),
            }),
        }
    }
}

impl<S: Store> Clone for IdempotencyLayer<S> {
    fn clone(&self) -> Self {
        IdempotencyLayer {
            engine: self.engine.clone(),
            settings: Settings {
                methods: self.settings.methods.clone(),
                required: self.settings.required,
                scope: self.settings.scope.clone(),
                max_request: self.settings.max_request,
                max_response: self.settings.max_response,
                store_policy: self.settings.store_policy,
                replay_headers: self.settings.replay_headers.clone(),
                fingerprint_headers: self.settings.fingerprint_headers.clone(),
            },
        }
    }
}

/// The service of an [`IdempotencyLayer`].
pub struct IdempotencyService<Inner, S = MemoryStore> {
    inner: Inner,
    engine: Idempotency<S>,
    settings: Arc<Settings>,
}

impl<Inner: Clone, S: Store> Clone for IdempotencyService<Inner, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            engine: self.engine.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<Inner: fmt::Debug, S: fmt::Debug> fmt::Debug for IdempotencyService<Inner, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotencyService")
            .field("inner", &self.inner)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// The response future of [`IdempotencyService`].
pub type ResponseFuture<ResBody, E> =
    Pin<Box<dyn Future<Output = Result<Response<IdempotencyBody<ResBody>>, E>> + Send>>;

fn problem<B>(status: StatusCode, detail: &'static str) -> Response<IdempotencyBody<B>> {
    let body = format!(
        r#"{{"type":"about:blank","title":"{}","status":{},"detail":"{detail}"}}"#,
        status.canonical_reason().unwrap_or("Error"),
        status.as_u16()
    );
    let mut response = Response::new(IdempotencyBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// A refusal in the caller's protocol: problem+json, or for a gRPC call a trailers-only
/// answer with the status code closest to the HTTP one.
fn refuse<B>(grpc: bool, status: StatusCode, detail: &'static str) -> Response<IdempotencyBody<B>> {
    if !grpc {
        return problem(status, detail);
    }
    let code = match status.as_u16() {
        400 => "3",  // INVALID_ARGUMENT
        401 => "16", // UNAUTHENTICATED
        409 => "10", // ABORTED: try again
        413 => "8",  // RESOURCE_EXHAUSTED
        422 => "9",  // FAILED_PRECONDITION: the key belongs to another request
        500 => "13", // INTERNAL
        _ => "14",   // UNAVAILABLE
    };
    let mut response = Response::new(IdempotencyBody::Full(None));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static(code));
    headers.insert("grpc-message", HeaderValue::from_static(detail));
    response
}

const LOST: &str = "the first request with this Idempotency-Key ran, but its answer was lost; it will not run again";
const TOO_LARGE: &str = "the first request with this Idempotency-Key ran, but its answer is too large to keep; it will not run again";

/// The record of a request that ran but whose answer cannot be replayed: a retry is told so,
/// and never runs it a second time.
fn lost(fingerprint: Fingerprint, grpc: bool, detail: &'static str) -> Completed {
    let response = refuse::<http_body_util::Empty<Bytes>>(grpc, StatusCode::CONFLICT, detail);
    let (parts, body) = response.into_parts();
    let body = match body {
        IdempotencyBody::Full(Some(bytes)) => bytes,
        _ => Bytes::new(),
    };
    Completed {
        fingerprint,
        payload: Payload::Response(StoredResponse {
            status: parts.status.as_u16(),
            headers: pairs(&parts.headers),
            body,
            trailers: Vec::new(),
        }),
    }
}

/// gRPC statuses stored by default: OK and those a retry would get again.
fn grpc_storable(code: &[u8]) -> bool {
    // OK, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED,
    // FAILED_PRECONDITION, OUT_OF_RANGE, UNAUTHENTICATED.
    matches!(
        code,
        b"0" | b"3" | b"5" | b"6" | b"7" | b"9" | b"11" | b"16"
    )
}

/// Pairs within the record format's limits: a longer value is left out rather than making a
/// record its decoder would refuse.
fn pairs(map: &http::HeaderMap) -> Vec<(String, Bytes)> {
    map.iter()
        .filter(|(_, value)| value.len() <= crate::record::MAX_HEADER_LEN)
        .take(crate::record::MAX_HEADERS)
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                Bytes::copy_from_slice(value.as_bytes()),
            )
        })
        .collect()
}

fn header_map(pairs: Vec<(String, Bytes)>) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_maybe_shared(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn with_retry_after<B>(mut response: Response<B>) -> Response<B> {
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn replay<B>(stored: StoredResponse) -> Response<IdempotencyBody<B>> {
    let trailers = (!stored.trailers.is_empty()).then(|| header_map(stored.trailers));
    let mut response = Response::new(IdempotencyBody::Stored {
        data: Some(stored.body),
        trailers,
    });
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_maybe_shared(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
        .headers_mut()
        .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

impl<Inner, S, ReqBody, ResBody> Service<Request<ReqBody>> for IdempotencyService<Inner, S>
where
    Inner: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    Inner::Future: Send + 'static,
    Inner::Error: Send + 'static,
    S: Store,
    ReqBody: Body + FromBytes + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Unpin + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<IdempotencyBody<ResBody>>;
    type Error = Inner::Error;
    type Future = ResponseFuture<ResBody, Inner::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The ready service takes this call; its clone waits for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !self.settings.methods.contains(request.method()) {
            return Box::pin(async move {
                let response = inner.call(request).await?;
                Ok(response.map(IdempotencyBody::Inner))
            });
        }
        let engine = self.engine.clone();
        let settings = self.settings.clone();
        Box::pin(async move { handle(inner, engine, settings, request).await })
    }
}

async fn handle<Inner, S, ReqBody, ResBody>(
    mut inner: Inner,
    engine: Idempotency<S>,
    settings: Arc<Settings>,
    request: Request<ReqBody>,
) -> Result<Response<IdempotencyBody<ResBody>>, Inner::Error>
where
    Inner: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S: Store,
    ReqBody: Body + FromBytes,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Unpin,
    ResBody::Error: Into<BoxError>,
{
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"application/grpc"));
    let mut values = request.headers().get_all(IDEMPOTENCY_KEY).iter();
    let key = match (values.next(), values.next()) {
        (None, _) if settings.required => {
            return Ok(refuse(
                grpc,
                StatusCode::BAD_REQUEST,
                "this request needs an Idempotency-Key header",
            ));
        }
        (None, _) => {
            let response = inner.call(request).await?;
            return Ok(response.map(IdempotencyBody::Inner));
        }
        (Some(_), Some(_)) => {
            return Ok(refuse(
                grpc,
                StatusCode::BAD_REQUEST,
                "the Idempotency-Key header appears more than once",
            ));
        }
        (Some(value), None) => match IdempotencyKey::parse(value.as_bytes()) {
            Ok(key) => key,
            Err(_) => {
                return Ok(refuse(grpc, StatusCode::BAD_REQUEST,
                    "the Idempotency-Key must be 1 to 255 visible ASCII characters, bare or as a quoted string",
                ));
            }
        },
    };
    let (parts, body) = request.into_parts();
    let scope = match &settings.scope {
        Some(scope) => match scope(&parts) {
            Some(scope) => scope,
            None => {
                return Ok(refuse(
                    grpc,
                    StatusCode::UNAUTHORIZED,
                    "an idempotent request needs an identified caller",
                ));
            }
        },
        None => String::new(),
    };
    let body = match http_body_util::Limited::new(body, settings.max_request)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return Ok(if error.is::<http_body_util::LengthLimitError>() {
                refuse(
                    grpc,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is over the idempotency layer's limit",
                )
            } else {
                refuse(
                    grpc,
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                )
            });
        }
    };
    let mut print = Fingerprint::builder()
        .part(parts.method.as_str().as_bytes())
        .part(parts.uri.path().as_bytes())
        .part(parts.uri.query().unwrap_or("").as_bytes());
    for name in &settings.fingerprint_headers {
        for value in parts.headers.get_all(name) {
            print = print.part(name.as_str().as_bytes()).part(value.as_bytes());
        }
    }
    let fingerprint = print.part(&body).finish();
    let store_key = StoreKey::new(&scope, &key);
    let request = Request::from_parts(parts, ReqBody::from_bytes(body));

    let token = match engine.acquire(&store_key, fingerprint).await {
        Ok(Acquired::Token(token)) => token,
        Ok(Acquired::Replay(completed)) => {
            return Ok(match completed.payload {
                Payload::Response(stored) => replay(stored),
                Payload::Value(_) => refuse(
                    grpc,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "this Idempotency-Key was used for a different request",
                ),
            });
        }
        Err(Refused::Mismatch) => {
            return Ok(refuse(
                grpc,
                StatusCode::UNPROCESSABLE_ENTITY,
                "this Idempotency-Key was used for a different request",
            ));
        }
        Err(Refused::InFlight) => {
            return Ok(with_retry_after(refuse(
                grpc,
                StatusCode::CONFLICT,
                "a request with this Idempotency-Key is still being processed",
            )));
        }
        Err(Refused::Store(StoreError::Corrupt(_))) => {
            // The key was used: its record cannot be read, and running again could charge
            // twice. Not a store outage either, so no Retry-After.
            return Ok(refuse(
                grpc,
                StatusCode::INTERNAL_SERVER_ERROR,
                "the record of this Idempotency-Key cannot be read",
            ));
        }
        Err(Refused::Store(_)) if engine.fail_open => {
            let response = inner.call(request).await?;
            return Ok(response.map(IdempotencyBody::Inner));
        }
        Err(Refused::Store(_)) => {
            return Ok(with_retry_after(refuse(
                grpc,
                StatusCode::SERVICE_UNAVAILABLE,
                "the idempotency store is unavailable",
            )));
        }
    };

    let mut guard = Release::new(engine.store.clone(), store_key.clone(), token);
    let response = match inner.call(request).await {
        Ok(response) => response,
        Err(error) => {
            guard.release_now().await;
            return Err(error);
        }
    };
    if !(settings.store_policy)(response.status()) {
        guard.release_now().await;
        return Ok(response.map(IdempotencyBody::Inner));
    }
    // The handler succeeded: its side effect is done, and the key must never be released
    // again. If the answer is lost from here on (the client goes away, the body breaks, it is
    // too large to keep), retries are told so and never run it a second time.
    guard.complete_on_drop(lost(fingerprint, grpc, LOST), engine.retention);
    let (parts, mut body) = response.into_parts();
    let mut read = VecDeque::new();
    let mut trailers = None;
    let mut size = 0usize;
    loop {
        // The error is dropped at once: it need not be `Send` across the release below.
        let frame = body.frame().await.map(|frame| frame.map_err(|_| ()));
        match frame {
            None => break,
            Some(Ok(frame)) => {
                match frame.into_data() {
                    Ok(data) => {
                        size += data.len();
                        read.push_back(data);
                    }
                    Err(frame) => {
                        if let Ok(map) = frame.into_trailers() {
                            trailers = Some(map);
                        }
                    }
                }
                if size > settings.max_response.min(crate::record::MAX_BODY_LEN) {
                    guard
                        .complete_now(lost(fingerprint, grpc, TOO_LARGE), engine.retention)
                        .await;
                    // Trailers come last: none were read before the limit was passed.
                    return Ok(Response::from_parts(
                        parts,
                        IdempotencyBody::Chained { read, rest: body },
                    ));
                }
            }
            Some(Err(_)) => {
                // The answer broke while it was read: the request ran, so retries are told
                // its answer was lost rather than run again.
                guard
                    .complete_now(lost(fingerprint, grpc, LOST), engine.retention)
                    .await;
                let mut response = problem(
                    StatusCode::BAD_GATEWAY,
                    "the response broke while it was read",
                );
                *response.headers_mut() = http::HeaderMap::new();
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                );
                return Ok(response);
            }
        }
    }
    let mut whole = bytes::BytesMut::with_capacity(size);
    for chunk in &read {
        whole.extend_from_slice(chunk);
    }
    let whole = whole.freeze();
    // A gRPC answer's status is in its trailers (or, trailers-only, its headers): a failure
    // that may pass is not stored.
    let grpc_status = trailers
        .as_ref()
        .and_then(|map| map.get("grpc-status"))
        .or_else(|| parts.headers.get("grpc-status"));
    if let Some(code) = grpc_status {
        if !grpc_storable(code.as_bytes()) {
            guard.release_now().await;
            return Ok(Response::from_parts(
                parts,
                IdempotencyBody::Stored {
                    data: Some(whole),
                    trailers,
                },
            ));
        }
    }
    let stored = StoredResponse {
        status: parts.status.as_u16(),
        headers: settings
            .replay_headers
            .iter()
            .flat_map(|name| {
                parts
                    .headers
                    .get_all(name)
                    .iter()
                    .filter(|value| value.len() <= crate::record::MAX_HEADER_LEN)
                    .map(move |value| {
                        (
                            name.as_str().to_owned(),
                            Bytes::copy_from_slice(value.as_bytes()),
                        )
                    })
            })
            .collect(),
        body: whole.clone(),
        trailers: trailers.as_ref().map(pairs).unwrap_or_default(),
    };
    let completed = Completed {
        fingerprint,
        payload: Payload::Response(stored),
    };
    guard.complete_now(completed, engine.retention).await;
    Ok(Response::from_parts(
        parts,
        IdempotencyBody::Stored {
            data: Some(whole),
            trailers,
        },
    ))
}
