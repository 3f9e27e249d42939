//! The layer and its builder.

use std::fmt;
use std::sync::Arc;

use http::Uri;
use steadfast_core::HttpStatus;
use tower_layer::Layer;

use super::key;
use super::stored::{ResponseCodec, StoredResponse};
use super::ResponseCache;
use crate::remote::RemoteTier;
use crate::{Admit, BuildError, Builder, RemoteError, TieredCache};

type ScopeFn = Arc<dyn Fn(&http::request::Parts) -> Option<String> + Send + Sync>;

/// What every clone of a layer and its services shares.
pub(crate) struct Shared {
    pub(crate) cache: TieredCache<String, StoredResponse>,
    /// The `Cache-Status` identifier: the cache's name.
    pub(crate) name: http::HeaderValue,
    /// `Cache-Status` of a fresh L1 hit, made once.
    pub(crate) hit: http::HeaderValue,
    pub(crate) max_body: usize,
    pub(crate) scope: Option<ScopeFn>,
    pub(crate) explicit_only: bool,
    pub(crate) honor_no_cache: bool,
    pub(crate) invalidate_on_unsafe: bool,
    pub(crate) failures: HttpStatus,
}

impl Shared {
    pub(crate) fn scope_of(&self, head: &http::request::Parts) -> Option<String> {
        self.scope.as_ref().and_then(|scope| scope(head))
    }
}

/// A Tower layer that answers `GET` and `HEAD` requests from a [`TieredCache`] of responses:
/// see the [module docs](super).
#[derive(Clone)]
pub struct ResponseCacheLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for ResponseCacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheLayer")
            .field("cache", &self.shared.cache)
            .field("max_body", &self.shared.max_body)
            .field("scoped", &self.shared.scope.is_some())
            .finish_non_exhaustive()
    }
}

impl ResponseCacheLayer {
    /// Starts a layer over the cache `cache` will build: its name, capacity, TTL (the longest a
    /// response is kept fresh, whatever its `max-age`), stale windows (the longest it is
    /// served stale) and load timeout are the typed cache's settings.
    ///
    /// The layer sets the cache's [admit rule](Builder::admit) itself: each response is kept
    /// for its own lifetime, capped by those settings.
    pub fn builder(cache: Builder<String, StoredResponse>) -> ResponseCacheBuilder {
        ResponseCacheBuilder {
            cache,
            max_body: 1024 * 1024,
            scope: None,
            explicit_only: false,
            honor_no_cache: true,
            invalidate_on_unsafe: true,
            failures: HttpStatus::server_errors(),
        }
    }

    /// The cache of responses, for metrics, `l1_len` and direct invalidation.
    #[must_use]
    pub fn cache(&self) -> &TieredCache<String, StoredResponse> {
        &self.shared.cache
    }

    /// Drops the stored `GET` response of `uri` (path and query; in `scope`, for a scoped
    /// route), with all its variants, here and, through the shared tier, in every instance.
    ///
    /// # Errors
    ///
    /// [`RemoteError`] when the shared tier could not be written or told.
    pub async fn invalidate(&self, uri: &Uri, scope: Option<&str>) -> Result<(), RemoteError> {
        let key = key::primary(uri, scope);
        self.shared.cache.invalidate(&key).await
    }
}

impl<S> Layer<S> for ResponseCacheLayer {
    type Service = ResponseCache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseCache {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Builds a [`ResponseCacheLayer`]; from [`ResponseCacheLayer::builder`].
#[must_use]
pub struct ResponseCacheBuilder {
    cache: Builder<String, StoredResponse>,
    max_body: usize,
    scope: Option<ScopeFn>,
    explicit_only: bool,
    honor_no_cache: bool,
    invalidate_on_unsafe: bool,
    failures: HttpStatus,
}

impl fmt::Debug for ResponseCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseCacheBuilder")
            .field("cache", &self.cache)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl ResponseCacheBuilder {
    /// The shared tier (Redis): entries, single-flight across instances and invalidation
    /// come with it. Responses cross it in the binary [`ResponseCodec`].
    pub fn remote(mut self, tier: impl RemoteTier) -> Self {
        self.cache = self.cache.remote_with_codec(tier, ResponseCodec);
        self
    }

    /// The largest body buffered and stored (1 MiB by default). A larger one streams through
    /// to its caller, uncached.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Keys entries by the caller too, for a route whose answer is per user: `scope` reads
    /// the caller's identity from the request's head (a header, or what an authentication
    /// layer put in the extensions), as the idempotency layer's scope does. `None` is the entry every unidentified caller shares.
    ///
    /// With a scope, responses to requests carrying `Authorization` are stored (each under
    /// its caller); without one, only those the origin marks `public`, `s-maxage` or
    /// `must-revalidate`, as RFC 9111 §3.5 asks of shared caches.
    pub fn scope(
        mut self,
        scope: impl Fn(&http::request::Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.scope = Some(Arc::new(scope));
        self
    }

    /// Stores only responses that state their freshness (`max-age`, `s-maxage`, `Expires`).
    /// By default a response that states none is fresh for the cache's TTL, if its status is
    /// one RFC 9110 calls heuristically cacheable (200, 203, 204, 300, 301, 308, 404, 405,
    /// 410, 414, 501).
    pub fn require_explicit_freshness(mut self) -> Self {
        self.explicit_only = true;
        self
    }

    /// Answers requests marked `Cache-Control: no-cache` (or `max-age=0`) from the cache
    /// anyway. By default they go to the origin, whose answer is then stored: honest, but a
    /// client can use it to reach the origin at will.
    pub fn ignore_request_no_cache(mut self) -> Self {
        self.honor_no_cache = false;
        self
    }

    /// Leaves the stored response of a URI alone when a `POST`, `PUT`, `PATCH` or `DELETE`
    /// to it succeeds. By default such a request drops it (RFC 9111 §4.4).
    pub fn keep_on_unsafe_methods(mut self) -> Self {
        self.invalidate_on_unsafe = false;
        self
    }

    /// Which statuses are failures (5xx by default): never stored, and answered with a stale
    /// response within its stale-if-error window.
    pub fn failure_statuses(mut self, failures: HttpStatus) -> Self {
        self.failures = failures;
        self
    }

    /// Builds the layer and its cache.
    ///
    /// # Errors
    ///
    /// [`BuildError`] for a bad cache setting, or a zero body limit.
    pub fn build(self) -> Result<ResponseCacheLayer, BuildError> {
        if self.max_body == 0 {
            return Err(BuildError::Invalid("the body limit must be above zero"));
        }
        let cache = self
            .cache
            .admit(|stored: &StoredResponse| {
                if stored.stored() {
                    Admit::For(stored.lifetime())
                } else {
                    Admit::Skip
                }
            })
            .build()?;
        let name = http::HeaderValue::from_str(cache.name())
            .map_err(|_| BuildError::Name(cache.name().to_owned()))?;
        let hit = http::HeaderValue::from_str(&format!("{}; hit", cache.name()))
            .map_err(|_| BuildError::Name(cache.name().to_owned()))?;
        Ok(ResponseCacheLayer {
            shared: Arc::new(Shared {
                cache,
                name,
                hit,
                max_body: self.max_body,
                scope: self.scope,
                explicit_only: self.explicit_only,
                honor_no_cache: self.honor_no_cache,
                invalidate_on_unsafe: self.invalidate_on_unsafe,
                failures: self.failures,
            }),
        })
    }
}
