//! Idempotency for any tower service: the key, scope and fingerprint come from an extractor,
//! and the response is stored through serde. For in-process clients and for gRPC, where the
//! key travels in metadata.
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::sync::Arc;
//! use steadfast_idempotency::generic::{IdempotentLayer, Keyed};
//! use steadfast_idempotency::{Fingerprint, Idempotency, IdempotencyKey};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! #[derive(Clone)]
//! struct Charge { customer: String, request_id: String, cents: u64 }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let charged = Arc::new(AtomicU32::new(0));
//! let counter = charged.clone();
//! let ledger = service_fn(move |charge: Charge| {
//!     let counter = counter.clone();
//!     async move {
//!         counter.fetch_add(1, Ordering::SeqCst);
//!         Ok::<_, std::io::Error>(format!("charged {} cents", charge.cents))
//!     }
//! });
//! let layer = IdempotentLayer::new(Idempotency::in_memory(), |charge: &Charge| {
//!     Some(Keyed {
//!         scope: charge.customer.clone(),
//!         key: IdempotencyKey::try_from(charge.request_id.as_str()).ok()?,
//!         fingerprint: Fingerprint::of(&charge.cents.to_be_bytes()),
//!     })
//! });
//! let ledger = layer.layer(ledger);
//! let charge = Charge { customer: "alice".into(), request_id: "r-1".into(), cents: 1000 };
//! assert_eq!(ledger.clone().oneshot(charge.clone()).await.unwrap(), "charged 1000 cents");
//! assert_eq!(ledger.oneshot(charge).await.unwrap(), "charged 1000 cents");
//! assert_eq!(charged.load(Ordering::SeqCst), 1);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tower_layer::Layer;
use tower_service::Service;

use crate::run::RunError;
use crate::store::{MemoryStore, Store};
use crate::{Fingerprint, Idempotency, IdempotencyKey};

/// What an extractor finds in a request: whose it is, its key, and what makes it the same
/// request.
#[derive(Clone, Debug)]
pub struct Keyed {
    /// The caller's identity: keys are scoped by it.
    pub scope: String,
    /// The idempotency key.
    pub key: IdempotencyKey,
    /// The request's fingerprint.
    pub fingerprint: Fingerprint,
}

/// Makes a service idempotent for requests the extractor keys (`None` passes through).
pub struct IdempotentLayer<X, S = MemoryStore> {
    engine: Idempotency<S>,
    extract: Arc<X>,
}

impl<X, S: Store> IdempotentLayer<X, S> {
    /// A layer over `engine`, keying requests with `extract`.
    pub fn new(engine: Idempotency<S>, extract: X) -> Self {
        Self {
            engine,
            extract: Arc::new(extract),
        }
    }
}

impl<X, S: Store> Clone for IdempotentLayer<X, S> {
    fn clone(&self) -> Self {
        Self {
            engine: self.engine.clone(),
            extract: self.extract.clone(),
        }
    }
}

impl<X, S: fmt::Debug> fmt::Debug for IdempotentLayer<X, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotentLayer")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl<Inner, X, S: Store> Layer<Inner> for IdempotentLayer<X, S> {
    type Service = IdempotentService<Inner, X, S>;

    fn layer(&self, inner: Inner) -> Self::Service {
        IdempotentService {
            inner,
            engine: self.engine.clone(),
            extract: self.extract.clone(),
        }
    }
}

/// The service of an [`IdempotentLayer`]. Its errors are [`RunError`]s: the inner error as
/// `Failed`, or why the call was refused.
pub struct IdempotentService<Inner, X, S = MemoryStore> {
    inner: Inner,
    engine: Idempotency<S>,
    extract: Arc<X>,
}

impl<Inner: Clone, X, S: Store> Clone for IdempotentService<Inner, X, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            engine: self.engine.clone(),
            extract: self.extract.clone(),
        }
    }
}

impl<Inner: fmt::Debug, X, S: fmt::Debug> fmt::Debug for IdempotentService<Inner, X, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdempotentService")
            .field("inner", &self.inner)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// The response future of [`IdempotentService`].
pub type IdempotentFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, RunError<E>>> + Send>>;

impl<Inner, X, S, Req> Service<Req> for IdempotentService<Inner, X, S>
where
    Inner: Service<Req> + Clone + Send + 'static,
    Inner::Future: Send + 'static,
    Inner::Response: Serialize + DeserializeOwned + Send + 'static,
    Inner::Error: Send + 'static,
    X: Fn(&Req) -> Option<Keyed> + Send + Sync + 'static,
    S: Store,
    Req: Send + 'static,
{
    type Response = Inner::Response;
    type Error = RunError<Inner::Error>;
    type Future = IdempotentFuture<Inner::Response, Inner::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(RunError::Failed)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let Some(keyed) = (self.extract)(&request) else {
            return Box::pin(async move { inner.call(request).await.map_err(RunError::Failed) });
        };
        let engine = self.engine.clone();
        Box::pin(async move {
            engine
                .run(&keyed.scope, &keyed.key, keyed.fingerprint, move || {
                    inner.call(request)
                })
                .await
        })
    }
}
