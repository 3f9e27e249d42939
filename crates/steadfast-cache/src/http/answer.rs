//! Answers built from stored responses: `Age`, `Cache-Status` (RFC 9211), and `304 Not
//! Modified` for conditional requests (RFC 9110 §13).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    HeaderName, HeaderValue, AGE, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_LOCATION, DATE, ETAG,
    EXPIRES, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, VARY,
};
use http::{HeaderMap, Response, StatusCode};
use http_body::Body;

use super::body::ResponseBody;
use super::layer::Shared;
use super::stored::StoredResponse;
use crate::{Source, Stale, Status};

/// The header naming how the cache handled a request (RFC 9211).
pub(crate) static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The validators a conditional request carries, kept apart from the request itself (which
/// the load may take).
#[derive(Clone, Debug, Default)]
pub(crate) struct Conditions {
    if_none_match: Option<HeaderValue>,
    if_modified_since: Option<SystemTime>,
}

impl Conditions {
    /// `None` for the usual unconditional request: nothing is copied.
    pub(crate) fn of(headers: &HeaderMap) -> Option<Self> {
        let if_none_match = headers.get(IF_NONE_MATCH).cloned();
        let if_modified_since = headers
            .get(IF_MODIFIED_SINCE)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| httpdate::parse_http_date(text).ok());
        (if_none_match.is_some() || if_modified_since.is_some()).then_some(Self {
            if_none_match,
            if_modified_since,
        })
    }

    /// Whether the stored `200` may be answered `304 Not Modified`.
    fn not_modified(&self, headers: &HeaderMap) -> bool {
        // If-None-Match decides alone when present (RFC 9110 §13.2.2).
        if let Some(wanted) = &self.if_none_match {
            let Ok(wanted) = wanted.to_str() else {
                return false;
            };
            if wanted.trim() == "*" {
                return true;
            }
            let Some(etag) = headers.get(ETAG).and_then(|etag| etag.to_str().ok()) else {
                return false;
            };
            let etag = weak(etag);
            return wanted.split(',').any(|tag| weak(tag) == etag);
        }
        let Some(since) = self.if_modified_since else {
            return false;
        };
        headers
            .get(LAST_MODIFIED)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| httpdate::parse_http_date(text).ok())
            .is_some_and(|modified| modified <= since)
    }
}

/// An entity tag for the weak comparison: without `W/`, quotes kept.
fn weak(tag: &str) -> &str {
    let tag = tag.trim();
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// How an answer came about, for `Cache-Status`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum How {
    /// From a tier of the cache, fresh or stale.
    Hit(Status, Source),
    /// From the origin, through the cache (stored or not; `collapsed`: another request's load).
    Loaded { stored: bool, collapsed: bool },
}

/// Why a request went to the origin without the cache, for `Cache-Status`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Forward {
    /// Not a request the cache answers (`HEAD` on a miss, `no-store`, an overlong target).
    Bypass,
    /// The client asked for the origin (`no-cache`, `max-age` exceeded).
    Request,
    /// The stored response was selected by other header values and this one's could not be
    /// stored.
    Vary,
    /// The load's answer was the loading request's own (private, too large to buffer…).
    Miss,
}

impl Forward {
    pub(crate) fn header(self, shared: &Shared) -> HeaderValue {
        let why = match self {
            Forward::Bypass => "bypass",
            Forward::Request => "request",
            Forward::Vary => "vary-miss",
            Forward::Miss => "uri-miss",
        };
        status_value(shared, &format!("fwd={why}"))
    }
}

fn status_value(shared: &Shared, params: &str) -> HeaderValue {
    let name = shared.name.to_str().unwrap_or("steadfast");
    HeaderValue::from_str(&format!("{name}; {params}"))
        .unwrap_or_else(|_| HeaderValue::from_static("steadfast"))
}

fn how_value(shared: &Shared, how: How, stored: &StoredResponse, age: u64) -> HeaderValue {
    // The lifetime counts from when the response was stored, its age from when the origin
    // made it.
    let held = age.saturating_sub(stored.0.initial_age);
    let ttl = i64::try_from(stored.lifetime().ttl().as_secs()).unwrap_or(i64::MAX)
        - i64::try_from(held).unwrap_or(i64::MAX);
    let params = match how {
        How::Hit(Status::Fresh, Source::L2) => format!("hit; ttl={ttl}; detail=l2"),
        How::Hit(Status::Fresh, _) => String::from("hit"),
        How::Hit(Status::Stale(Stale::Revalidating), _) => {
            format!("hit; ttl={ttl}; detail=stale-while-revalidate")
        }
        How::Hit(Status::Stale(Stale::LoadFailed(reason)), _) => {
            format!(
                "hit; ttl={ttl}; detail=\"stale-if-error {}\"",
                reason.as_str()
            )
        }
        How::Loaded { stored, collapsed } => {
            let mut params = String::from("fwd=uri-miss");
            if collapsed {
                params.push_str("; collapsed");
            }
            if stored {
                params.push_str("; stored");
            }
            params
        }
    };
    status_value(shared, &params)
}

/// The answer to one request from a stored response.
pub(crate) fn answer<B: Body>(
    shared: &Shared,
    stored: &StoredResponse,
    how: How,
    head: bool,
    conditions: Option<&Conditions>,
) -> Response<ResponseBody<B>> {
    let age = stored.age(shared.cache.inner.wall_now());
    let not_modified = stored.status() == StatusCode::OK
        && conditions.is_some_and(|conditions| conditions.not_modified(stored.headers()));
    let mut response = if not_modified {
        let mut response = Response::new(ResponseBody::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        // What a 304 must carry if the 200 would (RFC 9110 §15.4.5), and Last-Modified.
        for name in [
            CACHE_CONTROL,
            CONTENT_LOCATION,
            DATE,
            ETAG,
            EXPIRES,
            VARY,
            LAST_MODIFIED,
        ] {
            for value in stored.headers().get_all(&name) {
                response.headers_mut().append(name.clone(), value.clone());
            }
        }
        response
    } else {
        let body = if head {
            ResponseBody::empty()
        } else {
            ResponseBody::buffered(stored.body().clone())
        };
        let mut response = Response::new(body);
        *response.status_mut() = stored.status();
        *response.headers_mut() = stored.headers().clone();
        if head && !response.headers().contains_key(CONTENT_LENGTH) {
            // The length the `GET` would have, not the empty body's.
            let length = HeaderValue::from(stored.body().len());
            response.headers_mut().insert(CONTENT_LENGTH, length);
        }
        response
    };
    let headers = response.headers_mut();
    headers.insert(AGE, age_value(age));
    match how {
        // The hit path: a value made once, cloned by a reference count.
        How::Hit(Status::Fresh, Source::L1) => {
            headers.insert(CACHE_STATUS.clone(), shared.hit.clone());
        }
        How::Hit(status @ Status::Stale(_), _) => {
            headers.insert(CACHE_STATUS.clone(), how_value(shared, how, stored, age));
            // For the layers outside (an SLI that counts stale answers as degraded).
            response.extensions_mut().insert(status);
        }
        _ => {
            headers.insert(CACHE_STATUS.clone(), how_value(shared, how, stored, age));
        }
    }
    response
}

/// `Age` values up to ten minutes, made once: a hit then formats and allocates nothing.
fn age_value(age: u64) -> HeaderValue {
    static AGES: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let ages = AGES.get_or_init(|| (0..=600u64).map(HeaderValue::from).collect());
    usize::try_from(age)
        .ok()
        .and_then(|age| ages.get(age))
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(age))
}

/// A plain answer of the cache's own: `504` when the load timed out or nothing is stored
/// for an `only-if-cached` request, `500` when the load panicked.
pub(crate) fn own<B: Body>(
    shared: &Shared,
    status: StatusCode,
    params: &str,
) -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CACHE_STATUS.clone(), status_value(shared, params));
    response
}

/// Wall-clock seconds since the epoch of an HTTP date, for `Expires` arithmetic.
pub(crate) fn date_seconds(value: Option<&HeaderValue>) -> Option<u64> {
    let text = value?.to_str().ok()?;
    let time = httpdate::parse_http_date(text).ok()?;
    Some(
        time.duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs(),
    )
}
