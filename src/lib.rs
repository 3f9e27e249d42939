//! Steadfast: Tower middleware that keeps a service up when what it depends on is not.
//!
//! This crate is the facade: it re-exports the Steadfast crates behind features and holds no
//! logic of its own.
//!
//! | feature | what it brings |
//! |---|---|
//! | `breaker` (default) | [`breaker`]: the lock-free circuit breaker |
//! | `fallback` (default) | [`fallback`]: fallbacks and degradation switches |
//! | `idempotency` (default) | [`idempotency`]: Idempotency-Key for HTTP, idempotent business calls |
//! | `cache` (default) | [`cache`]: the two-tier cache (moka in process, Redis shared) |
//! | `macros` | `#[idempotent]` and `#[cached]` |
//! | `redis` | the Redis idempotency stores and the Redis cache tier |
//! | `http` (default) | HTTP classification, the problem+json error mode and the response cache layer, for axum |
//! | `tonic` | gRPC classification and errors as `tonic::Status` |
//! | `serde` | configs that deserialize from files |
//! | `axum` | per-route fallback tables and the degradation admin router |
//! | `full` | all of the above |
//!
//! The README follows.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

pub use steadfast_core as core;

#[cfg(feature = "breaker")]
#[cfg_attr(docsrs, doc(cfg(feature = "breaker")))]
pub use steadfast_breaker as breaker;

#[cfg(feature = "fallback")]
#[cfg_attr(docsrs, doc(cfg(feature = "fallback")))]
pub use steadfast_fallback as fallback;

#[cfg(feature = "idempotency")]
#[cfg_attr(docsrs, doc(cfg(feature = "idempotency")))]
pub use steadfast_idempotency as idempotency;

#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use steadfast_cache as cache;

#[cfg(feature = "slo")]
#[cfg_attr(docsrs, doc(cfg(feature = "slo")))]
pub use steadfast_slo as slo;

#[cfg(all(feature = "macros", feature = "idempotency"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "macros", feature = "idempotency"))))]
pub use steadfast_macros::idempotent;

#[cfg(all(feature = "macros", feature = "cache"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "macros", feature = "cache"))))]
pub use steadfast_macros::cached;

/// Guides, compiled and run as doc tests.
#[cfg(all(
    feature = "breaker",
    feature = "http",
    feature = "tonic",
    feature = "serde"
))]
#[cfg_attr(
    docsrs,
    doc(cfg(all(
        feature = "breaker",
        feature = "http",
        feature = "tonic",
        feature = "serde"
    )))
)]
pub mod guides {
    /// The circuit breaker guide.
    #[doc = include_str!("../docs/breaker.md")]
    pub mod breaker {}

    /// The fallback and degradation guide.
    #[cfg(all(feature = "fallback", feature = "axum"))]
    #[doc = include_str!("../docs/fallback.md")]
    pub mod fallback {}

    /// The idempotency guide.
    #[cfg(all(feature = "idempotency", feature = "macros"))]
    #[doc = include_str!("../docs/idempotency.md")]
    pub mod idempotency {}

    /// The cache guide.
    #[cfg(all(feature = "cache", feature = "macros", feature = "axum"))]
    #[doc = include_str!("../docs/cache.md")]
    pub mod cache {}

    /// The SLO guide: SLIs, error budgets, burn-rate signals, budget policies, the status page.
    #[cfg(all(feature = "slo", feature = "axum"))]
    #[doc = include_str!("../docs/slo.md")]
    pub mod slo {}

    /// The `axum_shop` example: every layer in one axum service, its policies in one TOML file.
    #[cfg(all(
        feature = "slo",
        feature = "axum",
        feature = "idempotency",
        feature = "cache"
    ))]
    #[doc = include_str!("../docs/axum_shop.md")]
    pub mod axum_shop {}

    /// The `tonic_client` and `tonic_server` examples: breaker and fallback per gRPC method on
    /// the client; idempotency from metadata and a cached read method on the server.
    #[cfg(all(
        feature = "tonic",
        feature = "idempotency",
        feature = "cache",
        feature = "fallback"
    ))]
    #[doc = include_str!("../docs/tonic_shop.md")]
    pub mod tonic_shop {}
}

/// The names most programs need, in one import.
///
/// ```
/// use steadfast::prelude::*;
///
/// let breaker = CircuitBreaker::builder("inventory").build().unwrap();
/// assert_eq!(breaker.state(), State::Closed);
/// assert_eq!(AnyError.classify(Err::<&(), _>(&"down")), Outcome::Failure);
/// ```
pub mod prelude {
    #[cfg(feature = "tonic")]
    pub use steadfast_core::GrpcCodes;
    #[cfg(feature = "http")]
    pub use steadfast_core::HttpStatus;
    pub use steadfast_core::{classify_fn, AnyError, Classify, Clock, Outcome};

    #[cfg(feature = "breaker")]
    pub use steadfast_breaker::{
        CircuitBreaker, CircuitBreakerLayer, KeyedCircuitBreakerLayer, Rejected, State,
    };

    #[cfg(feature = "fallback")]
    pub use steadfast_fallback::{
        Degraded, Degrader, FallbackLayer, FallbackRequest, Flip, Reason, Reasons,
    };

    #[cfg(feature = "cache")]
    pub use steadfast_cache::{Admit, Cached, TieredCache};
}
