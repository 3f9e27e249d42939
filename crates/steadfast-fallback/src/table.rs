//! Per-endpoint fallbacks, declared in one place (feature `http`).
//!
//! A [`FallbackTable`] lists every route (or gRPC method) with its fallback, the reasons it
//! answers, and the switch and level that degrade it, so a reader sees every route's degraded
//! behaviour on one screen (its `Display` prints that screen). Apply it once to an axum router
//! with `route_layer` (routes are told apart by axum's matched path), or one route at a time
//! with [`FallbackTable::route`]; on a tonic client's channel with
//! [`FallbackTable::grpc_layer`] (methods told apart by path). With feature `serde` the table
//! comes from a config file, and the code names the fallbacks.
//!
//! Keys are the matched path as axum reports it, which includes the prefixes of `nest`: a
//! route `/{id}` nested under `/products` is `"GET /products/{id}"`. Apply the table with
//! `route_layer`, after the routes it covers: a layer applied with `Router::layer` runs
//! before routing and sees only raw paths. Endpoint tables are built once; the `name`s they
//! give metrics are kept for the process's life.
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, Response, StatusCode};
//! use steadfast_fallback::table::{Endpoint, FallbackTable};
//! use steadfast_fallback::{Degrader, FallbackRequest, Flip, Reasons};
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let degrader = Degrader::new();
//! let empty = service_fn(|_: FallbackRequest<http::request::Parts>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(Body::from("[]")))
//! });
//! let table = FallbackTable::builder(&degrader)
//!     .endpoint(
//!         "GET /recommendations",
//!         Endpoint::new(empty).on(Reasons::ALL).switch("recommendations", 1).header(true),
//!     )
//!     .build()
//!     .unwrap();
//! println!("{table}");
//!
//! let app: Router = Router::new()
//!     .route("/recommendations", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "down") }))
//!     .route("/health", get(|| async { "ok" }))
//!     .route_layer(table.layer());
//!
//! let request = || Request::get("/recommendations").body(Body::empty()).unwrap();
//! let response = app.clone().oneshot(request()).await.unwrap();
//! assert_eq!(response.headers()["steadfast-degraded"], "failure_response");
//!
//! degrader.set("recommendations", 1, Flip::new("ops", "sale")).unwrap();
//! let response = app.oneshot(request()).await.unwrap();
//! assert_eq!(response.headers()["steadfast-degraded"], "switch");
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::Request;
use steadfast_core::{BoxError, Reason};
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;
use tower_layer::Layer;
use tower_service::Service;

use crate::future::{FallbackRequest, ResponseFuture, Settings};
use crate::keep::{Keep, MethodUri};
use crate::mode::Mode;
use crate::reason::{Diagnose, Reasons};
use crate::service::Bound;
use crate::switch::{Degrader, SwitchError};
use crate::FallbackLayer;

type BoxFallback<Res> = BoxCloneSyncService<FallbackRequest<Parts>, Res, BoxError>;

/// One endpoint's fallback policy, for [`FallbackTableBuilder::endpoint`].
pub struct Endpoint<Res> {
    fallback: Option<BoxFallback<Res>>,
    fallback_name: Option<String>,
    reasons: Reasons,
    switch: Option<(String, u8)>,
    header: bool,
    timeout: Option<std::time::Duration>,
    headers: bool,
}

impl<Res> Endpoint<Res> {
    /// An endpoint answered by the service `fallback`, for every reason.
    pub fn new<F>(fallback: F) -> Self
    where
        F: Service<FallbackRequest<Parts>, Response = Res> + Clone + Send + Sync + 'static,
        F::Error: Into<BoxError>,
        F::Future: Send + 'static,
        Res: Send + 'static,
    {
        Self {
            fallback: Some(BoxCloneSyncService::new(fallback.map_err(Into::into))),
            fallback_name: None,
            reasons: Reasons::ALL,
            switch: None,
            header: false,
            timeout: None,
            headers: false,
        }
    }

    #[cfg(feature = "serde")]
    fn named(name: String) -> Self {
        Self {
            fallback: None,
            fallback_name: Some(name),
            reasons: Reasons::ALL,
            switch: None,
            header: false,
            timeout: None,
            headers: false,
        }
    }

    /// The reasons the fallback answers.
    #[must_use]
    pub fn on(mut self, reasons: impl Into<Reasons>) -> Self {
        self.reasons = reasons.into();
        self
    }

    /// Binds the endpoint to the switch `name` at `level` (see [`FallbackLayer::switch`]).
    #[must_use]
    pub fn switch(mut self, name: impl Into<String>, level: u8) -> Self {
        self.switch = Some((name.into(), level));
        self
    }

    /// Adds the `steadfast-degraded` header to fallback answers.
    #[must_use]
    pub const fn header(mut self, header: bool) -> Self {
        self.header = header;
        self
    }

    /// Keeps the request's headers for the fallback too (method, URI and version are always
    /// kept). Only this endpoint pays for the copy of the header map.
    #[must_use]
    pub const fn keep_headers(mut self, headers: bool) -> Self {
        self.headers = headers;
        self
    }

    /// Bounds how long the fallback may take (see [`FallbackLayer::fallback_timeout`]).
    #[must_use]
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

fn bounded<Res: Send + 'static>(
    fallback: BoxFallback<Res>,
    timeout: Option<std::time::Duration>,
) -> BoxFallback<Res> {
    match timeout {
        Some(timeout) => BoxCloneSyncService::new(tower::timeout::Timeout::new(fallback, timeout)),
        None => fallback,
    }
}

impl<Res> fmt::Debug for Endpoint<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("fallback", &self.fallback_name)
            .field("reasons", &self.reasons)
            .field("switch", &self.switch)
            .field("header", &self.header)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A table refused: the endpoint and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableError {
    endpoint: String,
    message: String,
}

impl TableError {
    fn new(endpoint: &str, message: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            message: message.into(),
        }
    }

    /// The endpoint at fault.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "endpoint {:?}: {}", self.endpoint, self.message)
    }
}

impl std::error::Error for TableError {}

/// Builds a [`FallbackTable`].
pub struct FallbackTableBuilder<Res> {
    degrader: Degrader,
    endpoints: Vec<(String, Endpoint<Res>)>,
    named: HashMap<String, BoxFallback<Res>>,
}

impl<Res> fmt::Debug for FallbackTableBuilder<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackTableBuilder")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl<Res: Send + 'static> FallbackTableBuilder<Res> {
    /// Declares an endpoint: `"GET /recommendations"` (axum's route syntax, `{id}` and all),
    /// `"/health"` for any method, or `"/package.Service/Method"` for a gRPC method.
    #[must_use]
    pub fn endpoint(mut self, key: impl Into<String>, endpoint: Endpoint<Res>) -> Self {
        self.endpoints.push((key.into(), endpoint));
        self
    }

    /// Names a fallback that config files refer to (`fallback = "name"`).
    #[must_use]
    pub fn fallback<F>(mut self, name: impl Into<String>, fallback: F) -> Self
    where
        F: Service<FallbackRequest<Parts>, Response = Res> + Clone + Send + Sync + 'static,
        F::Error: Into<BoxError>,
        F::Future: Send + 'static,
    {
        self.named.insert(
            name.into(),
            BoxCloneSyncService::new(fallback.map_err(Into::into)),
        );
        self
    }

    /// The table.
    ///
    /// # Errors
    ///
    /// An endpoint key or switch name that is malformed, a key declared twice, or a fallback
    /// name no [`fallback`](Self::fallback) registered.
    pub fn build(self) -> Result<FallbackTable<Res>, TableError> {
        let mut routes: HashMap<String, Vec<Route<Res>>> = HashMap::new();
        let mut listing = Vec::with_capacity(self.endpoints.len());
        for (key, endpoint) in self.endpoints {
            let (method, path) =
                crate::route_key::parse(&key).map_err(|message| TableError::new(&key, message))?;
            let method = method
                .map(|method| {
                    http::Method::from_bytes(method.as_bytes())
                        .map_err(|error| TableError::new(&key, error.to_string()))
                })
                .transpose()?;
            let fallback = match (endpoint.fallback, &endpoint.fallback_name) {
                (Some(fallback), _) => fallback,
                (None, Some(name)) => self.named.get(name).cloned().ok_or_else(|| {
                    TableError::new(&key, format!("no fallback is registered as {name:?}"))
                })?,
                (None, None) => return Err(TableError::new(&key, "no fallback")),
            };
            let fallback = bounded(fallback, endpoint.timeout);
            // Metric labels need `'static` names: tables are built at start-up, from code or
            // a config file, so their keys are few and are kept for the process's life.
            let name: &'static str = Box::leak(key.clone().into_boxed_str());
            let bound = match &endpoint.switch {
                Some((switch, level)) => {
                    let switch = self
                        .degrader
                        .switch(switch)
                        .map_err(|error: SwitchError| TableError::new(&key, error.to_string()))?;
                    Some(Bound::new(switch, *level, name))
                }
                None => None,
            };
            let same = routes.entry(path.to_owned()).or_default();
            if same.iter().any(|route| route.method == method) {
                return Err(TableError::new(&key, "declared twice"));
            }
            same.push(Route {
                method,
                resolved: Arc::new(Resolved {
                    fallback,
                    settings: Settings {
                        reasons: endpoint.reasons,
                        header: endpoint.header,
                        name,
                    },
                    bound,
                    headers: endpoint.headers,
                }),
            });
            listing.push(Listing {
                key,
                fallback: endpoint
                    .fallback_name
                    .unwrap_or_else(|| "(code)".to_owned()),
                reasons: endpoint.reasons,
                switch: endpoint.switch,
                header: endpoint.header,
            });
        }
        Ok(FallbackTable {
            routes: Arc::new(Routes { routes, listing }),
        })
    }
}

struct Route<Res> {
    method: Option<http::Method>,
    resolved: Arc<Resolved<Res>>,
}

struct Resolved<Res> {
    fallback: BoxFallback<Res>,
    settings: Settings,
    bound: Option<Bound>,
    headers: bool,
}

struct Listing {
    key: String,
    fallback: String,
    reasons: Reasons,
    switch: Option<(String, u8)>,
    header: bool,
}

struct Routes<Res> {
    routes: HashMap<String, Vec<Route<Res>>>,
    listing: Vec<Listing>,
}

impl<Res> Routes<Res> {
    /// The endpoint for a method and path: one with the method named wins over one for any
    /// method. A HEAD finds the GET endpoint when none is declared for HEAD, as axum answers
    /// HEAD with the GET handler (so a switch sheds HEAD traffic too).
    fn find(&self, method: &http::Method, path: &str) -> Option<&Arc<Resolved<Res>>> {
        let routes = self.routes.get(path)?;
        let named = |method: &http::Method| {
            routes
                .iter()
                .find(|route| route.method.as_ref() == Some(method))
        };
        named(method)
            .or_else(|| {
                (method == http::Method::HEAD)
                    .then(|| named(&http::Method::GET))
                    .flatten()
            })
            .or_else(|| routes.iter().find(|route| route.method.is_none()))
            .map(|route| &route.resolved)
    }
}

/// Every endpoint's fallback policy, in one place. Cloning shares it.
pub struct FallbackTable<Res> {
    routes: Arc<Routes<Res>>,
}

impl<Res> Clone for FallbackTable<Res> {
    fn clone(&self) -> Self {
        Self {
            routes: self.routes.clone(),
        }
    }
}

impl<Res: Send + 'static> FallbackTable<Res> {
    /// A builder whose switches live in `degrader`.
    #[must_use]
    pub fn builder(degrader: &Degrader) -> FallbackTableBuilder<Res> {
        FallbackTableBuilder {
            degrader: degrader.clone(),
            endpoints: Vec::new(),
            named: HashMap::new(),
        }
    }

    /// A builder holding the endpoints of a config file; register the fallbacks they name
    /// with [`FallbackTableBuilder::fallback`], then build.
    #[cfg(feature = "serde")]
    #[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
    #[must_use]
    pub fn from_config(
        config: &crate::config::FallbackConfig,
        degrader: &Degrader,
    ) -> FallbackTableBuilder<Res> {
        let mut builder = Self::builder(degrader);
        for (key, endpoint) in &config.endpoints {
            let mut declared = Endpoint::named(endpoint.fallback.clone()).header(endpoint.header);
            if let Some(reasons) = &endpoint.on {
                declared = declared.on(reasons.iter().copied().collect::<Reasons>());
            }
            if let Some(switch) = &endpoint.switch {
                declared = declared.switch(switch.clone(), endpoint.level.unwrap_or(1));
            }
            if let Some(timeout) = endpoint.timeout {
                declared = declared.timeout(timeout);
            }
            declared = declared.keep_headers(endpoint.keep_headers);
            builder = builder.endpoint(key.clone(), declared);
        }
        builder
    }

    /// The layer for a whole axum router, applied with `Router::route_layer`: each request
    /// finds its endpoint by method and matched path (by URI path outside axum); requests of
    /// routes not in the table pass through.
    #[must_use]
    pub fn layer(&self) -> TableLayer<Res, crate::mode::Http, steadfast_core::HttpStatus> {
        TableLayer {
            routes: self.routes.clone(),
            mode: crate::mode::Http,
            classify: steadfast_core::HttpStatus::server_errors(),
        }
    }

    /// The layer for a tonic client's channel: each call finds its endpoint by its method's
    /// path (`/package.Service/Method`); errors are `tonic::Status`.
    #[cfg(feature = "tonic")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
    #[must_use]
    pub fn grpc_layer(&self) -> TableLayer<Res, crate::mode::Grpc, steadfast_core::GrpcCodes> {
        TableLayer {
            routes: self.routes.clone(),
            mode: crate::mode::Grpc,
            classify: steadfast_core::GrpcCodes::default(),
        }
    }

    /// The layer for one endpoint, to attach to its route alone; `None` if the table does
    /// not declare it.
    #[must_use]
    pub fn route(
        &self,
        key: &str,
    ) -> Option<
        FallbackLayer<
            EndpointFallback<Res>,
            EndpointKeep,
            crate::mode::Http,
            steadfast_core::HttpStatus,
        >,
    > {
        let (method, path) = crate::route_key::parse(key).ok()?;
        let routes = self.routes.routes.get(path)?;
        let route = routes
            .iter()
            .find(|route| route.method.as_ref().map(http::Method::as_str) == method)?;
        let resolved = route.resolved.clone();
        let mut layer = FallbackLayer::new(EndpointFallback::new(Some(resolved.clone())))
            .http()
            .keep(EndpointKeep {
                headers: resolved.headers,
            })
            .on(resolved.settings.reasons)
            .header(resolved.settings.header)
            .name(resolved.settings.name);
        if let Some(bound) = &resolved.bound {
            layer = layer.switch(bound.switch.clone(), bound.level);
        }
        Some(layer)
    }
}

impl<Res> fmt::Display for FallbackTable<Res> {
    /// One line per endpoint: key, fallback, reasons, switch and level, header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<32} {:<20} {:<14} on",
            "endpoint", "fallback", "switch"
        )?;
        for listing in &self.routes.listing {
            let switch = listing.switch.as_ref().map_or_else(
                || "-".to_owned(),
                |(name, level)| format!("{name}>={level}"),
            );
            let on: Vec<&str> = listing.reasons.iter().map(Reason::as_str).collect();
            writeln!(
                f,
                "{:<32} {:<20} {:<14} {}{}",
                listing.key,
                listing.fallback,
                switch,
                on.join(","),
                if listing.header { " +header" } else { "" }
            )?;
        }
        Ok(())
    }
}

impl<Res> fmt::Debug for FallbackTable<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.routes.listing.iter().map(|listing| &listing.key))
            .finish()
    }
}

/// What an endpoint keeps of the request: method, URI and version, and the headers when the
/// endpoint asks ([`Endpoint::keep_headers`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct EndpointKeep {
    headers: bool,
}

impl<B> Keep<Request<B>> for EndpointKeep {
    type Kept = Parts;

    #[inline]
    fn keep(&self, request: &Request<B>) -> Parts {
        if self.headers {
            crate::keep::Headers.keep(request)
        } else {
            MethodUri.keep(request)
        }
    }
}

/// An endpoint's fallback, cloned out of the table only when it is needed.
pub struct EndpointFallback<Res> {
    resolved: Option<Arc<Resolved<Res>>>,
    service: Option<BoxFallback<Res>>,
}

impl<Res> EndpointFallback<Res> {
    fn new(resolved: Option<Arc<Resolved<Res>>>) -> Self {
        Self {
            resolved,
            service: None,
        }
    }
}

impl<Res> Clone for EndpointFallback<Res> {
    fn clone(&self) -> Self {
        // A clone is not ready because its original was: it takes its own service.
        Self::new(self.resolved.clone())
    }
}

impl<Res> fmt::Debug for EndpointFallback<Res> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointFallback")
            .field("endpoint", &self.resolved.as_ref().map(|r| r.settings.name))
            .finish()
    }
}

/// The error of a fallback that is not there: a passthrough route's, never called.
#[derive(Debug)]
struct NoFallback;

impl fmt::Display for NoFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this route has no fallback")
    }
}

impl std::error::Error for NoFallback {}

impl<Res: Send + 'static> Service<FallbackRequest<Parts>> for EndpointFallback<Res> {
    type Response = Res;
    type Error = BoxError;
    type Future = <BoxFallback<Res> as Service<FallbackRequest<Parts>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.service.is_none() {
            let Some(resolved) = &self.resolved else {
                return Poll::Ready(Err(Box::new(NoFallback)));
            };
            self.service = Some(resolved.fallback.clone());
        }
        match &mut self.service {
            Some(service) => service.poll_ready(cx),
            None => Poll::Ready(Err(Box::new(NoFallback))),
        }
    }

    fn call(&mut self, request: FallbackRequest<Parts>) -> Self::Future {
        match &mut self.service {
            Some(service) => service.call(request),
            None => Box::pin(std::future::ready(Err::<Res, BoxError>(Box::new(
                NoFallback,
            )))),
        }
    }
}

/// The layer of a [`FallbackTable`].
pub struct TableLayer<Res, M, C> {
    routes: Arc<Routes<Res>>,
    mode: M,
    classify: C,
}

impl<Res, M: Clone, C: Clone> Clone for TableLayer<Res, M, C> {
    fn clone(&self) -> Self {
        Self {
            routes: self.routes.clone(),
            mode: self.mode.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<Res, M: fmt::Debug, C> fmt::Debug for TableLayer<Res, M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableLayer")
            .field("endpoints", &self.routes.listing.len())
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl<S, Res, M: Clone, C: Clone> Layer<S> for TableLayer<Res, M, C> {
    type Service = TableService<S, Res, M, C>;

    fn layer(&self, inner: S) -> Self::Service {
        TableService {
            inner,
            routes: self.routes.clone(),
            mode: self.mode.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// The service of a [`TableLayer`].
pub struct TableService<S, Res, M, C> {
    inner: S,
    routes: Arc<Routes<Res>>,
    mode: M,
    classify: C,
}

impl<S: Clone, Res, M: Clone, C: Clone> Clone for TableService<S, Res, M, C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            routes: self.routes.clone(),
            mode: self.mode.clone(),
            classify: self.classify.clone(),
        }
    }
}

impl<S: fmt::Debug, Res, M: fmt::Debug, C> fmt::Debug for TableService<S, Res, M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableService")
            .field("inner", &self.inner)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

const PASSTHROUGH: Settings = Settings {
    reasons: Reasons::NONE,
    header: false,
    name: "",
};

fn endpoint_path<B>(request: &Request<B>) -> &str {
    #[cfg(feature = "axum")]
    if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
        return matched.as_str();
    }
    request.uri().path()
}

impl<S, B, Res, M, C> Service<Request<B>> for TableService<S, Res, M, C>
where
    S: Service<Request<B>, Response = Res>,
    S::Error: Diagnose,
    Res: Send + 'static,
    M: Mode<Res, S::Error, BoxError>,
    C: steadfast_core::Classify<Res, S::Error> + Clone,
{
    type Response = Res;
    type Error = M::Error;
    type Future = ResponseFuture<S::Future, EndpointFallback<Res>, Parts, S::Error, M, C>;

    /// The inner service's readiness: the endpoint is not known before the request, so a
    /// switched-off route cannot skip it. Axum routes are always ready; a tonic channel is
    /// ready unless its buffer is full. A single route that must degrade past a dependency
    /// that is not ready takes [`FallbackTable::route`]'s layer, which can.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|error| self.mode.inner_error(error))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(resolved) = self
            .routes
            .find(request.method(), endpoint_path(&request))
            .cloned()
        else {
            let (kept, ()) = Request::new(()).into_parts();
            return ResponseFuture::inner(
                self.inner.call(request),
                EndpointFallback::new(None),
                kept,
                self.mode.clone(),
                self.classify.clone(),
                PASSTHROUGH,
            );
        };
        let kept = EndpointKeep {
            headers: resolved.headers,
        }
        .keep(&request);
        let settings = resolved.settings;
        if let Some(bound) = resolved.bound.as_ref().filter(|bound| bound.is_on()) {
            bound.counter.increment(1);
            drop(request);
            return ResponseFuture::fallback(
                EndpointFallback::new(Some(resolved)),
                FallbackRequest {
                    reason: Reason::Switch,
                    kept,
                },
                self.mode.clone(),
                self.classify.clone(),
                settings,
            );
        }
        ResponseFuture::inner(
            self.inner.call(request),
            EndpointFallback::new(Some(resolved)),
            kept,
            self.mode.clone(),
            self.classify.clone(),
            settings,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::service_fn;

    fn table() -> FallbackTable<&'static str> {
        let answer = |body: &'static str| {
            service_fn(move |_: FallbackRequest<Parts>| async move {
                Ok::<_, std::convert::Infallible>(body)
            })
        };
        FallbackTable::builder(&Degrader::new())
            .endpoint("GET /a", Endpoint::new(answer("get a")))
            .endpoint("/a", Endpoint::new(answer("any a")))
            .endpoint("HEAD /b", Endpoint::new(answer("head b")))
            .endpoint("GET /b", Endpoint::new(answer("get b")))
            .build()
            .unwrap()
    }

    fn found(
        table: &FallbackTable<&'static str>,
        method: http::Method,
        path: &str,
    ) -> Option<&'static str> {
        table
            .routes
            .find(&method, path)
            .map(|resolved| resolved.settings.name)
    }

    #[test]
    fn methods_are_found_as_axum_routes_them() {
        let table = table();
        assert_eq!(found(&table, http::Method::GET, "/a"), Some("GET /a"));
        assert_eq!(found(&table, http::Method::HEAD, "/a"), Some("GET /a"));
        assert_eq!(found(&table, http::Method::POST, "/a"), Some("/a"));
        assert_eq!(found(&table, http::Method::HEAD, "/b"), Some("HEAD /b"));
        assert_eq!(found(&table, http::Method::GET, "/c"), None);
    }

    #[test]
    fn a_key_declared_twice_is_refused() {
        let error = FallbackTable::<&'static str>::builder(&Degrader::new())
            .endpoint(
                "GET /a",
                Endpoint::new(service_fn(|_: FallbackRequest<Parts>| async {
                    Ok::<_, std::convert::Infallible>("x")
                })),
            )
            .endpoint(
                "GET /a",
                Endpoint::new(service_fn(|_: FallbackRequest<Parts>| async {
                    Ok::<_, std::convert::Infallible>("y")
                })),
            )
            .build()
            .unwrap_err();
        assert_eq!(error.endpoint(), "GET /a");
    }
}
