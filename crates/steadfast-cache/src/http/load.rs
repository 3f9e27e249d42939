//! Loading a response from the origin on the cache's behalf: which responses are stored,
//! for how long, and who else may be answered with them.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{
    HeaderName, AGE, AUTHORIZATION, CONTENT_LENGTH, COOKIE, DATE, EXPIRES, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, SET_COOKIE, VARY,
};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use parking_lot::Mutex;
use steadfast_core::{Degraded, Outcome, Reason};
use tower_service::Service;

use super::answer::date_seconds;
use super::body::ResponseBody;
use super::directives::CacheControl;
use super::key;
use super::layer::Shared;
use super::stored::{self, Disposition, Parts, StoredResponse};
use crate::Lifetime;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The inner service as the cache's loads need it: called on a task of their own.
pub(crate) trait Origin<Q, B>:
    Service<Request<Q>, Response = Response<B>, Future: Send + 'static, Error: Send + 'static>
    + Send
    + 'static
{
}

impl<S, Q, B> Origin<Q, B> for S
where
    S: Service<Request<Q>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
}

/// A response body a load may buffer on its own task, or hand on to its request.
pub(crate) trait SendBody: Body<Data: Send, Error: Send> + Send + 'static {}

impl<B> SendBody for B
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Send,
{
}

/// A request's way to the origin, and the answers meant for it alone.
///
/// The request (with a ready clone of the inner service) waits here: a load of this request
/// takes it (one the caller awaits, or a background refresh); a request that joined another's
/// load still has it, to go to the origin itself when that load's answer may not be shared.
/// Whose answer a response is, is recorded, never inferred from whether the request is gone.
pub(crate) struct Slot<S, Q, B: Body, E> {
    /// The request's headers, for `Vary` matching whoever holds the request.
    pub(crate) asked: HeaderMap,
    /// Whether the request is keyed under a caller's scope.
    pub(crate) scoped: bool,
    request: Mutex<Option<(S, Request<Q>)>>,
    /// This request's own answer when it cannot go through the cache (streamed, or an error).
    own: Mutex<Option<Result<Response<ResponseBody<B>>, E>>>,
    /// The response this request's own load buffered: the only one that is its own.
    produced: Mutex<Option<StoredResponse>>,
    /// The generation of the URI's entry this request found (0: none): a reload keeps it, so
    /// that refreshing the URI's entry does not orphan its variants.
    pub(crate) generation: AtomicU64,
}

impl<S, Q, B: Body, E> Slot<S, Q, B, E> {
    pub(crate) fn new(inner: S, request: Request<Q>, scoped: bool) -> Arc<Self> {
        Arc::new(Self {
            asked: request.headers().clone(),
            scoped,
            request: Mutex::new(Some((inner, request))),
            own: Mutex::new(None),
            produced: Mutex::new(None),
            generation: AtomicU64::new(0),
        })
    }

    pub(crate) fn take_request(&self) -> Option<(S, Request<Q>)> {
        self.request.lock().take()
    }

    pub(crate) fn take_own(&self) -> Option<Result<Response<ResponseBody<B>>, E>> {
        self.own.lock().take()
    }

    /// Whether `stored` is what this request's own load produced.
    pub(crate) fn is_own(&self, stored: &StoredResponse) -> bool {
        self.produced
            .lock()
            .as_ref()
            .is_some_and(|produced| Arc::ptr_eq(&produced.0, &stored.0))
    }

    fn produced(&self, stored: &StoredResponse) {
        *self.produced.lock() = Some(stored.clone());
    }
}

/// A load that did not give a response to store: the stale-if-error trigger. Its `source()`
/// is a [`Degraded`] marker with the reason, which the cache reads for the stale marker.
#[derive(Debug)]
pub(crate) struct LoadFailure {
    marker: Degraded,
    /// A failure response every waiter may be answered with.
    pub(crate) response: Option<StoredResponse>,
}

impl LoadFailure {
    pub(crate) fn reason(&self) -> Reason {
        self.marker.reason()
    }
}

impl fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the origin failed: {}", self.marker.reason())
    }
}

impl std::error::Error for LoadFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.marker)
    }
}

fn failure(reason: Reason, response: Option<StoredResponse>) -> BoxError {
    Box::new(LoadFailure {
        marker: Degraded::new(reason),
        response,
    })
}

/// Conditional headers are the client's, not the cache's: the cache loads the whole response
/// and answers each client's conditions from it.
fn strip_conditionals(headers: &mut HeaderMap) {
    for name in [
        IF_NONE_MATCH,
        IF_MODIFIED_SINCE,
        IF_MATCH,
        IF_UNMODIFIED_SINCE,
        IF_RANGE,
    ] {
        headers.remove(name);
    }
}

/// Calls the origin with the slot's request and buffers its answer.
pub(crate) async fn fetch<S, Q, B>(
    shared: Arc<Shared>,
    slot: Arc<Slot<S, Q, B, S::Error>>,
) -> Result<StoredResponse, BoxError>
where
    S: Origin<Q, B>,
    Q: Send + 'static,
    B: SendBody,
{
    let Some((mut inner, mut request)) = slot.take_request() else {
        return Err(failure(Reason::Error, None));
    };
    strip_conditionals(request.headers_mut());
    let asked = &slot.asked;
    let response = match inner.call(request).await {
        Ok(response) => response,
        Err(error) => {
            let reason = crate::flight::reason_of(&error);
            *slot.own.lock() = Some(Err(error));
            return Err(failure(reason, None));
        }
    };
    let (parts, body) = response.into_parts();
    let failed = match parts.extensions.get::<Degraded>() {
        Some(marker) => Some(marker.reason()),
        None => (shared.failures.classify_status(parts.status) == Outcome::Failure)
            .then_some(Reason::FailureResponse),
    };
    match buffer(body, &parts.headers, shared.max_body).await {
        Buffered::Whole(bytes) => {
            let disposition = dispose(&shared, &parts, asked, slot.scoped, failed.is_some());
            let now = shared.cache.inner.wall_now();
            let generation = match slot.generation.load(Ordering::Relaxed) {
                0 => fastrand::u64(1..),
                held => held,
            };
            let stored = stored(parts, bytes, asked, disposition, now, generation);
            slot.produced(&stored);
            match failed {
                None => Ok(stored),
                Some(reason) => Err(failure(reason, Some(stored))),
            }
        }
        Buffered::Partial {
            head,
            trailers,
            error,
            ended,
            rest,
        } => {
            let read_failed = error.is_some();
            let body = ResponseBody::resumed(head, trailers, error, ended, rest);
            *slot.own.lock() = Some(Ok(Response::from_parts(parts, body)));
            match failed.or(read_failed.then_some(Reason::Error)) {
                Some(reason) => Err(failure(reason, None)),
                None => {
                    let marker = not_stored();
                    slot.produced(&marker);
                    Ok(marker)
                }
            }
        }
    }
}

/// The answer of a load whose response went to its own request only.
fn not_stored() -> StoredResponse {
    StoredResponse(Arc::new(Parts {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: Bytes::new(),
        stored_at_ms: 0,
        initial_age: 0,
        lifetime: Lifetime::default(),
        generation: 0,
        vary: Vec::new(),
        disposition: Disposition::Own,
    }))
}

enum Buffered<B: Body> {
    Whole(Bytes),
    /// Too large, carrying trailers, or failed while read: what was read and the rest.
    Partial {
        head: Bytes,
        trailers: Option<HeaderMap>,
        error: Option<B::Error>,
        ended: bool,
        rest: Pin<Box<B>>,
    },
}

async fn buffer<B: Body>(body: B, headers: &HeaderMap, max: usize) -> Buffered<B> {
    let mut body = Box::pin(body);
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return partial(Bytes::new(), None, None, false, body);
    }
    let mut collected = BytesMut::new();
    loop {
        match std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            None => return Buffered::Whole(collected.freeze()),
            Some(Err(error)) => return partial(collected.freeze(), None, Some(error), true, body),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    collected.extend_from_slice(&data.copy_to_bytes(data.remaining()));
                    if collected.len() > max {
                        return partial(collected.freeze(), None, None, false, body);
                    }
                }
                Err(frame) => {
                    let trailers = frame.into_trailers().ok();
                    return partial(collected.freeze(), trailers, None, true, body);
                }
            },
        }
    }
}

fn partial<B: Body>(
    head: Bytes,
    trailers: Option<HeaderMap>,
    error: Option<B::Error>,
    ended: bool,
    rest: Pin<Box<B>>,
) -> Buffered<B> {
    Buffered::Partial {
        head,
        trailers,
        error,
        ended,
        rest,
    }
}

/// Statuses a cache may store without explicit freshness (RFC 9110 §15.1).
fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The `Vary` names of a response; `None` for `Vary: *`, which no request matches.
fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for value in headers.get_all(VARY) {
        for name in value.as_bytes().split(|&b| b == b',') {
            let name = name.trim_ascii();
            if name == b"*" {
                return None;
            }
            if let Ok(name) = HeaderName::from_bytes(name) {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    Some(names)
}

/// Whether and how a response is kept, and its lifetime when stored.
fn dispose(
    shared: &Shared,
    parts: &http::response::Parts,
    asked: &HeaderMap,
    scoped: bool,
    failed: bool,
) -> (Disposition, Lifetime) {
    let directives = CacheControl::from_headers(&parts.headers);
    // RFC 9111 §3.5: a shared cache stores an answer to an authorized request only when the
    // origin allows it; a request keyed under its caller's scope is not shared.
    let authorized = asked.contains_key(AUTHORIZATION) && !scoped;
    let personal = directives.private || parts.headers.contains_key(SET_COOKIE);
    if failed {
        let share = if personal || authorized {
            Disposition::Own
        } else {
            Disposition::Share
        };
        return (share, Lifetime::default());
    }
    let own = (Disposition::Own, Lifetime::default());
    let vary = vary_names(&parts.headers);
    let allowed = directives.public || directives.s_maxage.is_some() || directives.must_revalidate;
    if personal
        || (authorized && !allowed)
        || directives.no_store
        || directives.no_cache
        || vary.is_none()
        || matches!(parts.status.as_u16(), 206 | 304)
        || parts.status.is_informational()
    {
        return own;
    }
    // RFC 9111 §3.5: a shared cache stores an answer to an authorized request only when the
    // origin allows it; a scoped route keys the entry by its caller, which makes it safe.
    let authorized = asked.contains_key(AUTHORIZATION) && shared.scope.is_none();
    if authorized
        && !(directives.public || directives.s_maxage.is_some() || directives.must_revalidate)
    {
        return own;
    }
    let policy = &shared.cache.inner.policy;
    let explicit = directives
        .s_maxage
        .or(directives.max_age)
        .map(Duration::from_secs)
        .or_else(|| {
            let expires = parts.headers.get(EXPIRES)?;
            // An `Expires` that is not a date (`0`, `-1`) means already expired (§5.3).
            let expires = date_seconds(Some(expires)).unwrap_or(0);
            let now = shared.cache.inner.wall_now();
            let date = date_seconds(parts.headers.get(DATE)).unwrap_or(now / 1000);
            Some(Duration::from_secs(expires.saturating_sub(date)))
        });
    // Heuristic freshness never for a request with cookies: a page personalised by a session
    // cookie, with no `private` on it, must not become everyone's.
    let heuristic = !shared.explicit_only
        && heuristically_cacheable(parts.status)
        && !asked.contains_key(COOKIE);
    let freshness = match explicit {
        Some(freshness) => freshness,
        None if heuristic => policy.ttl,
        None => return own,
    };
    let ttl = freshness
        .saturating_sub(Duration::from_secs(initial_age(&parts.headers)))
        .min(policy.ttl);
    if ttl.is_zero() {
        return own;
    }
    // `s-maxage` carries `proxy-revalidate` for shared caches (§5.2.2.10): only the stale
    // windows the response states itself.
    let default_window = directives.s_maxage.is_none();
    let window = |stated: Option<u64>, cap: Duration| {
        if directives.must_revalidate || directives.no_cache {
            Duration::ZERO
        } else {
            match stated {
                Some(seconds) => Duration::from_secs(seconds).min(cap),
                None if default_window => cap,
                None => Duration::ZERO,
            }
        }
    };
    let lifetime = Lifetime::new(ttl)
        .stale_while_revalidate(window(
            directives.stale_while_revalidate,
            policy.stale_while_revalidate,
        ))
        .stale_if_error(window(directives.stale_if_error, policy.stale_if_error));
    (Disposition::Store, lifetime)
}

fn initial_age(headers: &HeaderMap) -> u64 {
    headers
        .get(AGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

fn stored(
    parts: http::response::Parts,
    body: Bytes,
    asked: &HeaderMap,
    (disposition, lifetime): (Disposition, Lifetime),
    now_ms: u64,
    generation: u64,
) -> StoredResponse {
    let vary = vary_names(&parts.headers)
        .unwrap_or_default()
        .into_iter()
        .map(|name| {
            let value = key::combined(asked, &name);
            (name, value)
        })
        .collect();
    let mut headers = parts.headers;
    let initial_age = initial_age(&headers);
    // The cache writes `Age` on each answer, from this and the time the response is held.
    stored::reserve_answer_fields(&mut headers);
    StoredResponse(Arc::new(Parts {
        status: parts.status,
        initial_age,
        headers,
        body,
        stored_at_ms: now_ms,
        lifetime,
        generation,
        vary,
        disposition,
    }))
}
