//! An opt-in axum router to read and flip degradation switches (feature `axum`).
//!
//! It refuses to build without an authorisation check: there is no anonymous admin surface.
//! The check sees the request head and returns the caller's name (the flip's `who`) or a
//! [`Refusal`]. Nest the router where you like; every route is behind the check.
//!
//! | route | does |
//! |---|---|
//! | `GET /switches` | every switch and its level, as JSON |
//! | `GET /switches/{name}` | one switch |
//! | `PUT /switches/{name}` | body `{"level": 2, "why": "black friday"}`: sets an existing switch |
//! | `GET /flips` | the last flips, oldest first: switch, levels, who, why, source, when |
//!
//! Errors are RFC 9457 problem+json: 401 or 403 from the check, 404 for a switch that does
//! not exist (the router never makes switches), 400 for a malformed body, 413 for a body over
//! 4 KiB.
//!
//! ```
//! use axum::{body::Body, Router};
//! use http::{Request, StatusCode};
//! use steadfast_fallback::admin::{AdminRouter, Refusal};
//! use steadfast_fallback::Degrader;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let degrader = Degrader::new();
//! degrader.switch("recommendations").unwrap();
//! let admin: Router = AdminRouter::new(&degrader)
//!     .authorize(|head: &http::request::Parts| {
//!         match head.headers.get("authorization").and_then(|v| v.to_str().ok()) {
//!             Some("Bearer ops-token") => Ok("ops".to_owned()),
//!             Some(_) => Err(Refusal::Forbidden),
//!             None => Err(Refusal::Unauthenticated),
//!         }
//!     })
//!     .build()
//!     .unwrap();
//! let app = Router::new().nest("/admin/degradation", admin);
//!
//! let flip = Request::put("/admin/degradation/switches/recommendations")
//!     .header("authorization", "Bearer ops-token")
//!     .header("content-type", "application/json")
//!     .body(Body::from(r#"{"level": 1, "why": "sale"}"#))
//!     .unwrap();
//! assert_eq!(app.clone().oneshot(flip).await.unwrap().status(), StatusCode::OK);
//! assert_eq!(degrader.switch("recommendations").unwrap().level(), 1);
//!
//! let anonymous = Request::get("/admin/degradation/switches").body(Body::empty()).unwrap();
//! assert_eq!(app.oneshot(anonymous).await.unwrap().status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use http::request::Parts;
use http::{header, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use crate::switch::{Degrader, Flip, Source};

/// The longest body `PUT /switches/{name}` reads.
const MAX_BODY: usize = 4096;
/// The longest `why` kept.
const MAX_WHY: usize = 256;

/// Why the check refused a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No credentials, or credentials not recognised: 401.
    Unauthenticated,
    /// A known caller without the right: 403.
    Forbidden,
}

/// The admin router cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminError {
    /// No authorisation check was given: the router refuses to serve anyone unchecked.
    NoCheck,
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "the degradation admin router needs an authorisation check (AdminRouter::authorize)",
        )
    }
}

impl std::error::Error for AdminError {}

type Check = Arc<dyn Fn(&Parts) -> Result<String, Refusal> + Send + Sync>;

/// Builds the admin router.
pub struct AdminRouter {
    degrader: Degrader,
    check: Option<Check>,
}

impl fmt::Debug for AdminRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminRouter")
            .field("degrader", &self.degrader)
            .field("check", &self.check.is_some())
            .finish()
    }
}

/// The caller the check let in.
#[derive(Clone, Debug)]
struct Caller(Arc<str>);

#[derive(Clone)]
struct AdminState {
    degrader: Degrader,
    check: Check,
}

#[derive(Serialize)]
struct SwitchView {
    name: String,
    level: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetLevel {
    level: u8,
    #[serde(default)]
    why: String,
}

#[derive(Serialize)]
struct Flipped {
    name: String,
    from: u8,
    to: u8,
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl AdminRouter {
    /// A router over `degrader`'s switches; give it a check with [`authorize`](Self::authorize).
    #[must_use]
    pub fn new(degrader: &Degrader) -> Self {
        Self {
            degrader: degrader.clone(),
            check: None,
        }
    }

    /// The authorisation check: the caller's name, or a refusal.
    #[must_use]
    pub fn authorize<F>(mut self, check: F) -> Self
    where
        F: Fn(&Parts) -> Result<String, Refusal> + Send + Sync + 'static,
    {
        self.check = Some(Arc::new(check));
        self
    }

    /// The router.
    ///
    /// # Errors
    ///
    /// [`AdminError::NoCheck`] without a check.
    pub fn build<S: Clone + Send + Sync + 'static>(self) -> Result<Router<S>, AdminError> {
        let check = self.check.ok_or(AdminError::NoCheck)?;
        let state = AdminState {
            degrader: self.degrader,
            check,
        };
        Ok(Router::new()
            .route("/switches", get(list))
            .route("/switches/{name}", get(show).put(set))
            .route("/flips", get(flips))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                authorize,
            ))
            .with_state(state))
    }
}

async fn authorize(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match (state.check)(&parts) {
        Ok(who) => {
            parts.extensions.insert(Caller(who.into()));
            next.run(Request::from_parts(parts, body)).await
        }
        Err(Refusal::Unauthenticated) => {
            let mut response = problem(StatusCode::UNAUTHORIZED, "credentials required");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
        Err(Refusal::Forbidden) => problem(StatusCode::FORBIDDEN, "not allowed to flip switches"),
    }
}

async fn list(State(state): State<AdminState>) -> Response {
    let switches: Vec<SwitchView> = state
        .degrader
        .levels()
        .into_iter()
        .map(|(name, level)| SwitchView {
            name: name.to_string(),
            level,
        })
        .collect();
    Json(serde_json::json!({ "switches": switches })).into_response()
}

#[derive(Serialize)]
struct FlipView {
    switch: String,
    from: u8,
    to: u8,
    who: String,
    why: String,
    source: &'static str,
    /// Milliseconds since the Unix epoch.
    at_ms: u128,
}

async fn flips(State(state): State<AdminState>) -> Response {
    let flips: Vec<FlipView> = state
        .degrader
        .history()
        .into_iter()
        .map(|event| FlipView {
            switch: event.switch.to_string(),
            from: event.from,
            to: event.to,
            who: event.flip.who().to_owned(),
            why: event.flip.why().to_owned(),
            source: event.flip.source().as_str(),
            at_ms: event
                .at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis()),
        })
        .collect();
    Json(serde_json::json!({ "flips": flips })).into_response()
}

async fn show(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    match state.degrader.get(&name) {
        Some(switch) => Json(SwitchView {
            name,
            level: switch.level(),
        })
        .into_response(),
        None => problem(StatusCode::NOT_FOUND, "no such switch"),
    }
}

async fn set(
    State(state): State<AdminState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Body,
) -> Response {
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, "the body is over 4 KiB");
    };
    let body: Bytes = body;
    let request: SetLevel = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return problem(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    if state.degrader.get(&name).is_none() {
        return problem(StatusCode::NOT_FOUND, "no such switch");
    }
    let why = crate::switch::cut(&request.why, MAX_WHY).to_owned();
    let flip = Flip::new(caller.0.to_string(), why).from_source(Source::Admin);
    match state.degrader.set(&name, request.level, flip) {
        Ok(from) => Json(Flipped {
            name,
            from,
            to: request.level,
        })
        .into_response(),
        Err(error) => problem(StatusCode::BAD_REQUEST, &error.to_string()),
    }
}
