//! An HTTP response cache for Tower services: `GET` and `HEAD` answered from a
//! [`TieredCache`](crate::TieredCache), so L1, the Redis tier, single-flight across instances
//! and cross-instance invalidation come with it.
//!
//! ```
//! use std::time::Duration;
//! use axum::{routing::get, Router};
//! use steadfast_cache::http::ResponseCacheLayer;
//! use steadfast_cache::TieredCache;
//! # fn main() -> Result<(), steadfast_cache::BuildError> {
//!
//! let products = ResponseCacheLayer::builder(
//!     TieredCache::builder("products")
//!         .ttl(Duration::from_secs(300)) // the longest any response stays fresh
//!         .stale_if_error(Duration::from_secs(3600)), // and is served when the origin fails
//! )
//! .max_body(256 * 1024)
//! .build()?;
//!
//! let app: Router = Router::new().route(
//!     "/products/{id}",
//!     get(|| async { ([("cache-control", "max-age=60")], "a product") }).route_layer(products),
//! );
//! # Ok(()) }
//! ```
//!
//! # What is stored, and for how long
//!
//! The key is the request target (path and query), the caller's
//! [scope](ResponseCacheBuilder::scope) on a per-user route, and the request's values of the
//! headers the response's `Vary` names. A response is stored when it is not a failure (5xx,
//! or marked [`Degraded`](steadfast_core::Degraded) by a fallback), is not `private`,
//! `no-store`, `no-cache`, `Vary: *`, `206` or carrying `Set-Cookie`, and its body fits the
//! [limit](ResponseCacheBuilder::max_body). It is fresh for its `s-maxage`, `max-age` or
//! `Expires` (less its `Age`), and may be served stale for its `stale-while-revalidate` and
//! `stale-if-error` windows (RFC 5861), each capped by the cache's setting of the same name;
//! a window the response does not state is the cache's. `must-revalidate` means no stale
//! answers.
//!
//! # Answers
//!
//! - A fresh hit carries `Age` and `Cache-Status` (RFC 9211: `products; hit`); a stale answer
//!   also carries its [`Status`] in the response extensions, for the layers
//!   outside.
//! - `If-None-Match` (or `If-Modified-Since`) matching a stored `200` is answered `304`; the
//!   cache loads whole responses and answers each client's conditions itself.
//! - When the origin fails (an error, a 5xx, a degraded answer, a breaker's refusal, a load
//!   timeout) and a stored response is within its stale-if-error window, it is answered,
//!   marked `Cache-Status: products; hit; ttl=-90; detail="stale-if-error breaker_open"`.
//! - Concurrent misses of one key make one origin call. The others share its answer when it
//!   is stored or is a failure anyone may see; otherwise (private, too large) each goes to
//!   the origin itself.
//! - Request directives: `no-cache` and `max-age` past the stored age go to the origin and
//!   store its answer ([unless ignored](ResponseCacheBuilder::ignore_request_no_cache));
//!   `no-store` is never stored; `only-if-cached` on a miss is `504`. `max-stale` is not read.
//! - A successful `POST`, `PUT`, `PATCH` or `DELETE` through the layer drops the stored
//!   response of its target, in every instance.
//!
//! The layer's error is the inner service's: with axum routes it is `Infallible`. A load that
//! times out answers `504`, one that panics `500`.
//!
//! # Where it sits
//!
//! For a server route: SLI recording → idempotency → **response cache** → the handler. Put a
//! route's fallback inside it (its degraded answers are then never stored) and its breaker
//! inside that.

mod answer;
mod body;
mod directives;
mod key;
mod layer;
mod load;
mod stored;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderValue, IF_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use pin_project::pin_project;
use tower_service::Service;

pub use body::ResponseBody;
pub use directives::CacheControl;
pub use layer::{ResponseCacheBuilder, ResponseCacheLayer};
pub use stored::{ResponseCodec, StoredResponse};

use answer::{answer, Conditions, Forward, How, CACHE_STATUS};
use layer::Shared;
use load::{fetch, LoadFailure, Origin, SendBody, Slot};
use stored::Disposition;

use steadfast_core::Reason;

use crate::{Error, Source, Status};

/// The service of a [`ResponseCacheLayer`].
#[derive(Clone)]
pub struct ResponseCache<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for ResponseCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("cache", &self.shared.cache)
            .finish_non_exhaustive()
    }
}

impl<S> ResponseCache<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

type Answer<B, E> = Result<Response<ResponseBody<B>>, E>;
type BoxFuture<B, E> = Pin<Box<dyn Future<Output = Answer<B, E>> + Send>>;

/// The future of a [`ResponseCache`]: ready at once for a fresh hit.
#[pin_project]
pub struct ResponseFuture<F, B: Body, E> {
    #[pin]
    kind: Kind<F, B, E>,
}

// The ready response is the hit path: boxing it would cost an allocation per hit.
#[allow(clippy::large_enum_variant)]
#[pin_project(project = KindProj)]
enum Kind<F, B: Body, E> {
    Ready(Option<Response<ResponseBody<B>>>),
    Forwarded {
        #[pin]
        future: F,
        status: Option<HeaderValue>,
    },
    Boxed(BoxFuture<B, E>),
}

impl<F, B: Body, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Ready(_) => "ready",
            Kind::Forwarded { .. } => "forwarded",
            Kind::Boxed(_) => "loading",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Answer<B, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Ready(response) => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("`ResponseFuture` polled after it completed"),
            },
            KindProj::Forwarded { future, status } => future.poll(cx).map(|result| {
                result.map(|response| {
                    let mut response = response.map(ResponseBody::streamed);
                    if let Some(status) = status.take() {
                        response.headers_mut().insert(CACHE_STATUS.clone(), status);
                    }
                    response
                })
            }),
            KindProj::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

fn ready<F, B: Body, E>(response: Response<ResponseBody<B>>) -> ResponseFuture<F, B, E> {
    ResponseFuture {
        kind: Kind::Ready(Some(response)),
    }
}

fn forwarded<F, B: Body, E>(future: F, status: Option<HeaderValue>) -> ResponseFuture<F, B, E> {
    ResponseFuture {
        kind: Kind::Forwarded { future, status },
    }
}

fn boxed<F, B: Body, E>(
    future: impl Future<Output = Answer<B, E>> + Send + 'static,
) -> ResponseFuture<F, B, E> {
    ResponseFuture {
        kind: Kind::Boxed(Box::pin(future)),
    }
}

thread_local! {
    static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// What a fast read of L1 found for a request.
enum Fast {
    Hit(StoredResponse),
    /// Stored, but older than the request's `max-age` or fresher than its `min-fresh` allows.
    TooOld,
    Miss,
}

// `&String`: the cache's key type, read without a copy.
#[allow(clippy::ptr_arg)]
fn fast(
    shared: &Shared,
    key: &String,
    request: &http::HeaderMap,
    directives: &CacheControl,
) -> Fast {
    // Quiet reads: a miss is counted once, by the load that follows; a hit once, below.
    let cache = &shared.cache.inner;
    let Some(mut stored) = cache.peek_quiet(key) else {
        return Fast::Miss;
    };
    if !key::matches(&stored, request) {
        let Some(variant) = key::variant(key, &stored, request) else {
            return Fast::Miss;
        };
        match cache.peek_quiet(&variant) {
            Some(found) if key::matches(&found, request) => stored = found,
            _ => return Fast::Miss,
        }
    }
    if directives.max_age.is_some() || directives.min_fresh.is_some() {
        let age = stored.age(shared.cache.inner.wall_now());
        let held = age.saturating_sub(stored.0.initial_age);
        let left = stored.lifetime().ttl().as_secs().saturating_sub(held);
        if directives.max_age.is_some_and(|max| age > max)
            || directives.min_fresh.is_some_and(|min| left < min)
        {
            return Fast::TooOld;
        }
    }
    cache.count_hit();
    Fast::Hit(stored)
}

impl<S, Q, B> Service<Request<Q>> for ResponseCache<S>
where
    S: Service<Request<Q>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    Q: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Send,
{
    type Response = Response<ResponseBody<B>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, B, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Q>) -> Self::Future {
        let shared = &self.shared;
        let method = request.method();
        let head = method == Method::HEAD;
        if method != Method::GET && !head {
            if shared.invalidate_on_unsafe && !method.is_safe() {
                return self.unsafe_call(request);
            }
            return forwarded(self.inner.call(request), None);
        }
        // Ranges and preconditions other than If-None-Match / If-Modified-Since are the
        // origin's to answer, as are targets too long to key by.
        let headers = request.headers();
        if key::target(request.uri()).len() > key::MAX_TARGET
            || [RANGE, IF_MATCH, IF_UNMODIFIED_SINCE, IF_RANGE]
                .iter()
                .any(|name| headers.contains_key(name))
        {
            let status = Forward::Bypass.header(shared);
            return forwarded(self.inner.call(request), Some(status));
        }
        let (scope, request) = match &shared.scope {
            None => (None, request),
            Some(scope) => {
                let (parts, body) = request.into_parts();
                let scope = scope(&parts);
                let request = Request::from_parts(parts, body);
                if scope
                    .as_ref()
                    .is_some_and(|scope| scope.len() > key::MAX_SCOPE)
                {
                    let status = Forward::Bypass.header(shared);
                    return forwarded(self.inner.call(request), Some(status));
                }
                (scope, request)
            }
        };
        let directives = CacheControl::from_headers(request.headers());
        let conditions = Conditions::of(request.headers());
        let mut refresh = shared.honor_no_cache && directives.no_cache;
        // The key is written into a buffer of this thread's: a hit allocates none.
        let found = KEY.with_borrow_mut(|key| {
            key.clear();
            key::write_primary(key, request.uri(), scope.as_deref());
            let found = if !refresh || directives.only_if_cached {
                fast(shared, key, request.headers(), &directives)
            } else {
                Fast::Miss
            };
            match found {
                Fast::Hit(stored) => Ok(stored),
                other => Err((other, key.clone())),
            }
        });
        let key = match found {
            Ok(stored) => {
                let how = How::Hit(Status::Fresh, Source::L1);
                return ready(answer(shared, &stored, how, head, conditions.as_ref()));
            }
            Err((found, key)) => {
                if matches!(found, Fast::TooOld) {
                    refresh = shared.honor_no_cache;
                }
                key
            }
        };
        let scoped = scope.is_some();
        if directives.only_if_cached {
            // Nothing fresh enough is stored, and the client asked not to reach the origin.
            return ready(answer::own(shared, StatusCode::GATEWAY_TIMEOUT, "fwd=miss"));
        }
        if head || directives.no_store {
            let status = Forward::Bypass.header(shared);
            return forwarded(self.inner.call(request), Some(status));
        }
        // The ready service goes with the request; this one is a fresh clone for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        let slot = Slot::new(inner, request, scoped);
        if refresh {
            boxed(refresh_from_origin(shared, slot, key, conditions))
        } else {
            boxed(lookup(shared, slot, key, conditions))
        }
    }
}

impl<S> ResponseCache<S> {
    /// An unsafe method: answered by the origin; its success drops the target's entry.
    fn unsafe_call<Q, B>(&mut self, request: Request<Q>) -> ResponseFuture<S::Future, B, S::Error>
    where
        S: Service<Request<Q>, Response = Response<B>>,
        S::Future: Send + 'static,
        B: Body + Send + 'static,
    {
        let shared = self.shared.clone();
        let (parts, body) = request.into_parts();
        let key = key::primary(&parts.uri, shared.scope_of(&parts).as_deref());
        let future = self.inner.call(Request::from_parts(parts, body));
        boxed(async move {
            let response = future.await?;
            let status = response.status();
            if status.is_success() || status.is_redirection() {
                // A failure to tell the shared tier leaves the others' entries to their TTL;
                // the write itself succeeded, so its answer stands.
                let _ = shared.cache.invalidate(&key).await;
            }
            Ok(response.map(ResponseBody::streamed))
        })
    }
}

/// What a load settled to for one request: its answer, or a stored response to check its
/// `Vary` against.
// Lives on the stack for one step of a miss: its size costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Settled<B: Body, E> {
    Answer(Answer<B, E>),
    Stored(StoredResponse, Status, Source),
}

async fn lookup<S, Q, B>(
    shared: Arc<Shared>,
    slot: Arc<Slot<S, Q, B, S::Error>>,
    key: String,
    conditions: Option<Conditions>,
) -> Answer<B, S::Error>
where
    S: Origin<Q, B>,
    Q: Send + 'static,
    B: SendBody,
{
    let conditions = conditions.as_ref();
    // An entry in L1 that other header values selected: this request's answer is a variant,
    // so it goes there at once rather than lend itself to a refresh of, or a failed reload
    // answered by, an entry it may not be served.
    let mut target = key.clone();
    let mut variant = false;
    if let Some(held) = shared.cache.inner.peek_any(&key) {
        slot.generation
            .store(held.0.generation, std::sync::atomic::Ordering::Relaxed);
        if held.stored() && !key::matches(&held, &slot.asked) {
            match key::variant(&key, &held, &slot.asked) {
                Some(text) => target = text,
                None => return fallback(&shared, &slot, Forward::Bypass).await,
            }
            variant = true;
        }
    }
    loop {
        let (stored, status, source) = match load(&shared, &slot, target, conditions).await {
            Settled::Answer(answer) => return answer,
            Settled::Stored(stored, status, source) => (stored, status, source),
        };
        if slot.is_own(&stored) || key::matches(&stored, &slot.asked) {
            return Ok(settled(&shared, &slot, &stored, status, source, conditions));
        }
        if variant {
            // The origin varies on other headers than the stored response said.
            return fallback(&shared, &slot, Forward::Vary).await;
        }
        match key::variant(&key, &stored, &slot.asked) {
            Some(text) => target = text,
            None => return fallback(&shared, &slot, Forward::Bypass).await,
        }
        variant = true;
    }
}

/// The answer from a stored response reached through a load.
fn settled<S, Q, B: Body, E>(
    shared: &Shared,
    slot: &Slot<S, Q, B, E>,
    stored: &StoredResponse,
    status: Status,
    source: Source,
    conditions: Option<&Conditions>,
) -> Response<ResponseBody<B>> {
    let how = match source {
        Source::Loader => How::Loaded {
            stored: stored.stored(),
            collapsed: !slot.is_own(stored),
        },
        tier => How::Hit(status, tier),
    };
    answer(shared, stored, how, false, conditions)
}

/// One `get_with` of `key` with this request's load, settled for this request.
async fn load<S, Q, B>(
    shared: &Arc<Shared>,
    slot: &Arc<Slot<S, Q, B, S::Error>>,
    key: String,
    conditions: Option<&Conditions>,
) -> Settled<B, S::Error>
where
    S: Origin<Q, B>,
    Q: Send + 'static,
    B: SendBody,
{
    let loader = {
        let (shared, slot) = (shared.clone(), slot.clone());
        move || fetch(shared, slot)
    };
    match shared.cache.get_with(key, loader).await {
        Ok(cached) => {
            let (status, source) = (cached.status(), cached.source());
            let stored = cached.into_inner();
            if slot.is_own(&stored) {
                if stored.0.disposition == Disposition::Own {
                    if let Some(own) = slot.take_own() {
                        return Settled::Answer(own.map(|response| mark(shared, response)));
                    }
                }
                return Settled::Stored(stored, status, source);
            }
            if stored.0.disposition == Disposition::Store {
                return Settled::Stored(stored, status, source);
            }
            // Another request's answer, not for sharing.
            Settled::Answer(fallback(shared, slot, Forward::Miss).await)
        }
        Err(Error::Load(error)) => {
            if let Some(own) = slot.take_own() {
                return Settled::Answer(own.map(|response| mark(shared, response)));
            }
            let failure = error.downcast_ref::<LoadFailure>();
            if let Some(response) = failure.and_then(|failure| failure.response.as_ref()) {
                let own = slot.is_own(response);
                let shareable = response.0.disposition == Disposition::Share
                    && key::matches(response, &slot.asked);
                if own || shareable {
                    let how = How::Loaded {
                        stored: false,
                        collapsed: !own,
                    };
                    return Settled::Answer(Ok(answer(shared, response, how, false, conditions)));
                }
            }
            // Another request's failure with nothing to share: answered for what it was,
            // without sending this request to a failing origin too.
            let status = match failure.map(LoadFailure::reason) {
                Some(Reason::BreakerOpen | Reason::Overload | Reason::Switch) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                Some(Reason::Timeout) => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            Settled::Answer(Ok(answer::own(
                shared,
                status,
                "fwd=uri-miss; collapsed; detail=failed",
            )))
        }
        Err(Error::TimedOut(_)) => Settled::Answer(Ok(answer::own(
            shared,
            StatusCode::GATEWAY_TIMEOUT,
            "fwd=uri-miss; detail=timeout",
        ))),
        Err(Error::Panicked) => Settled::Answer(Ok(answer::own(
            shared,
            StatusCode::INTERNAL_SERVER_ERROR,
            "fwd=uri-miss; detail=panicked",
        ))),
    }
}

fn mark<B: Body>(
    shared: &Shared,
    mut response: Response<ResponseBody<B>>,
) -> Response<ResponseBody<B>> {
    response
        .headers_mut()
        .insert(CACHE_STATUS.clone(), Forward::Miss.header(shared));
    response
}

/// This request's answer when the cache has none for it: the origin, asked alone and
/// uncached within the load timeout, or, if a load of this request already took it to the
/// origin, that load's own answer.
async fn fallback<S, Q, B>(
    shared: &Shared,
    slot: &Slot<S, Q, B, S::Error>,
    why: Forward,
) -> Answer<B, S::Error>
where
    S: Service<Request<Q>, Response = Response<B>>,
    B: Body,
{
    let Some((mut inner, request)) = slot.take_request() else {
        if let Some(own) = slot.take_own() {
            return own.map(|response| mark(shared, response));
        }
        return Ok(answer::own(shared, StatusCode::BAD_GATEWAY, "fwd=uri-miss"));
    };
    let timeout = shared.cache.inner.policy.load_timeout;
    let Ok(response) = tokio::time::timeout(timeout, inner.call(request)).await else {
        let status = StatusCode::GATEWAY_TIMEOUT;
        return Ok(answer::own(shared, status, "fwd=uri-miss; detail=timeout"));
    };
    let mut response = response?.map(ResponseBody::streamed);
    response
        .headers_mut()
        .insert(CACHE_STATUS.clone(), why.header(shared));
    Ok(response)
}

/// A request that asked for the origin: its answer is loaded here and stored for the others.
async fn refresh_from_origin<S, Q, B>(
    shared: Arc<Shared>,
    slot: Arc<Slot<S, Q, B, S::Error>>,
    key: String,
    conditions: Option<Conditions>,
) -> Answer<B, S::Error>
where
    S: Origin<Q, B>,
    Q: Send + 'static,
    B: SendBody,
{
    let timeout = shared.cache.inner.policy.load_timeout;
    if let Some(held) = shared.cache.inner.peek_any(&key) {
        slot.generation
            .store(held.0.generation, std::sync::atomic::Ordering::Relaxed);
    }
    let loaded = tokio::time::timeout(timeout, fetch(shared.clone(), slot.clone())).await;
    let stored = match loaded {
        Err(_) => {
            let status = StatusCode::GATEWAY_TIMEOUT;
            return Ok(answer::own(&shared, status, "fwd=request; detail=timeout"));
        }
        Ok(Ok(stored)) => stored,
        Ok(Err(error)) => {
            if let Some(own) = slot.take_own() {
                return own;
            }
            match error
                .downcast_ref::<LoadFailure>()
                .and_then(|f| f.response.clone())
            {
                Some(stored) => stored,
                None => return Ok(answer::own(&shared, StatusCode::BAD_GATEWAY, "fwd=request")),
            }
        }
    };
    if stored.0.disposition == Disposition::Own {
        if let Some(own) = slot.take_own() {
            return own;
        }
    }
    if stored.stored() {
        // A failure to reach the shared tier leaves this instance's entry; the answer stands.
        let _ = shared.cache.insert(key, stored.clone()).await;
    }
    let mut response = answer(
        &shared,
        &stored,
        How::Loaded {
            stored: stored.stored(),
            collapsed: false,
        },
        false,
        conditions.as_ref(),
    );
    response
        .headers_mut()
        .insert(CACHE_STATUS.clone(), Forward::Request.header(&shared));
    Ok(response)
}
