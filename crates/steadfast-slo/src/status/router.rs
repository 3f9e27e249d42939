//! The status board over HTTP (feature `axum`).

use axum::extract::{OriginalUri, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{header, HeaderValue};
use serde::Serialize;

use super::{html, StatusBoard};

/// The board's routes: the page, its JSON and the freeze flag. Every answer is `no-store`:
/// a status read from a cache is a status from the past.
///
/// | route | answers |
/// |---|---|
/// | `GET /` | the HTML page ([`Status::html`](super::Status::html)), reloading every 5 s |
/// | `GET /status.json` | the [`Status`](super::Status) as JSON |
/// | `GET /freeze` | `{"freeze": bool, "slos": [{"name", "budget_remaining", "freeze"}]}` |
///
/// `GET /freeze` is for deploy pipelines: it reads the SLO sources only, and always answers
/// 200, so that a pipeline tells "frozen" (`.freeze == true`) from "the status route is down"
/// (anything but 200), e.g. `curl -fsS …/freeze | jq -e '.freeze == false'`.
///
/// The router has no authorisation of its own (the page names every dependency and its
/// state): nest it behind your own check. Here, a bearer token checked by a
/// [`from_fn`](axum::middleware::from_fn) middleware on the status routes only:
///
/// ```
/// use axum::body::Body;
/// use axum::extract::Request;
/// use axum::middleware::{self, Next};
/// use axum::response::Response;
/// use axum::routing::get;
/// use axum::Router;
/// use http::{header, StatusCode};
/// use steadfast_slo::status::{self, StatusBoard};
/// use tower::ServiceExt;
///
/// async fn ops_only(request: Request, next: Next) -> Result<Response, StatusCode> {
///     match request.headers().get(header::AUTHORIZATION) {
///         Some(token) if token == "Bearer ops-token" => Ok(next.run(request).await),
///         _ => Err(StatusCode::UNAUTHORIZED),
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let board = StatusBoard::new();
/// let app = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .nest(
///         "/status",
///         status::router(board).route_layer(middleware::from_fn(ops_only)),
///     );
///
/// let anonymous = Request::get("/status/status.json").body(Body::empty()).unwrap();
/// let response = app.clone().oneshot(anonymous).await.unwrap();
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
///
/// let on_call = Request::get("/status/status.json")
///     .header(header::AUTHORIZATION, "Bearer ops-token")
///     .body(Body::empty())
///     .unwrap();
/// assert_eq!(app.clone().oneshot(on_call).await.unwrap().status(), StatusCode::OK);
///
/// // The rest of the application is not behind the check.
/// let home = Request::get("/").body(Body::empty()).unwrap();
/// assert_eq!(app.oneshot(home).await.unwrap().status(), StatusCode::OK);
/// # }
/// ```
///
/// The router reads the board when asked and adds no layer of its own; where it is nested
/// in the onion of layers does not matter to what it shows.
pub fn router(board: StatusBoard) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/status.json", get(json))
        .route("/freeze", get(freeze))
        .with_state(board)
}

async fn page(State(board): State<StatusBoard>, OriginalUri(uri): OriginalUri) -> Response {
    let href = json_href(uri.path());
    let body = html::render(&board.snapshot(), Some(&href));
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // No script, no outside resource: names are escaped, and this makes sure.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response();
    no_store(&mut response);
    response
}

async fn json(State(board): State<StatusBoard>) -> Response {
    let mut response = Json(board.snapshot()).into_response();
    no_store(&mut response);
    response
}

#[derive(Serialize)]
struct Freeze {
    freeze: bool,
    slos: Vec<FreezeSlo>,
}

#[derive(Serialize)]
struct FreezeSlo {
    name: String,
    budget_remaining: f64,
    freeze: bool,
}

async fn freeze(State(board): State<StatusBoard>) -> Response {
    let slos: Vec<FreezeSlo> = board
        .reports()
        .into_iter()
        .map(|report| FreezeSlo {
            name: report.name,
            budget_remaining: report.budget.remaining,
            freeze: report.freeze,
        })
        .collect();
    let mut response = Json(Freeze {
        freeze: slos.iter().any(|slo| slo.freeze),
        slos,
    })
    .into_response();
    no_store(&mut response);
    response
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Where the JSON is, seen from the page at `path` (the router's root, wherever it is
/// nested): an absolute path, so that it works with or without a trailing slash. Leading
/// slashes are folded into one, or `//host/…` would point at another host.
fn json_href(path: &str) -> String {
    let base = path.trim_start_matches('/').trim_end_matches('/');
    if base.is_empty() {
        "/status.json".to_owned()
    } else {
        format!("/{base}/status.json")
    }
}

#[cfg(test)]
mod tests {
    use super::json_href;

    #[test]
    fn the_json_link_follows_the_mount_point() {
        assert_eq!(json_href("/"), "/status.json");
        assert_eq!(json_href(""), "/status.json");
        assert_eq!(json_href("/status"), "/status/status.json");
        assert_eq!(json_href("/ops/status/"), "/ops/status/status.json");
        assert_eq!(json_href("//evil.example/x"), "/evil.example/x/status.json");
    }
}
