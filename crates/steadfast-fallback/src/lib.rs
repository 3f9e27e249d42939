//! Fallbacks and degradation switches for Tower.
//!
//! When a dependency is down, the page still renders, with less on it: a [`FallbackLayer`]
//! answers from a fallback when the inner call fails for a reason its policy names (a breaker
//! refused, a timeout, an overload, an error, a failure response). Operators also degrade on
//! purpose: a [`Degrader`] holds named switches with levels, and a route bound to a switch
//! answers from its fallback, without calling its dependency, while the switch is on.
//!
//! ```
//! use steadfast_fallback::{Degrader, FallbackLayer, FallbackRequest, Flip, Reasons};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let degrader = Degrader::new();
//! let recommendations = ServiceBuilder::new()
//!     .layer(
//!         FallbackLayer::from_fn(|_: FallbackRequest<()>| async {
//!             Ok::<_, std::convert::Infallible>(Vec::<&str>::new())
//!         })
//!         .on(Reasons::ANY_ERROR | Reasons::SWITCH)
//!         .switch(degrader.switch("recommendations").unwrap(), 1),
//!     )
//!     .service(service_fn(|_: ()| async { Ok::<_, std::io::Error>(vec!["socks"]) }));
//!
//! assert_eq!(recommendations.clone().oneshot(()).await.unwrap(), ["socks"]);
//!
//! // Before the big sale, an operator sheds recommendations.
//! degrader.set("recommendations", 1, Flip::new("alice", "sale")).unwrap();
//! assert!(recommendations.oneshot(()).await.unwrap().is_empty());
//! # }
//! ```
//!
//! # What it does
//!
//! - **Reasons**, each chosen by policy ([`Reasons`]): breaker open (a Steadfast
//!   `Rejected`), timeout (`tower::timeout`'s `Elapsed` or the breaker's `TimedOut`),
//!   overload (`tower::load_shed`), an inner error the classifier calls a failure, a response
//!   the classifier calls a failure, a switch that is on. How an error tells its kind:
//!   [`Diagnose`].
//! - **What the fallback gets** of the request is chosen per route ([`keep`]), and its cost is
//!   paid only by the routes that ask.
//! - **Marked answers**: in the HTTP and gRPC modes a fallback's response carries
//!   [`Degraded`] as an extension (caches never store it), `Cache-Control: no-store` in the
//!   HTTP mode, and, by option, a `steadfast-degraded` header.
//! - **A failed fallback** gives an error holding both causes ([`FallbackFailed`]); a
//!   fallback that hangs is cut off by [`FallbackLayer::fallback_timeout`].
//! - **Modes** as the breaker has them ([`mode`]): typed, boxed, HTTP (axum routes stay
//!   `Infallible`), gRPC (`tonic::Status`).
//! - **Switches** are flipped from code, from a reloaded config file (feature `serde`), or
//!   from an admin router behind a check you provide (feature `axum`); each flip is an event
//!   and a metric.
//! - **Per endpoint**: a table of routes (or gRPC methods) with their fallbacks, switches,
//!   levels and reasons, in one place (feature `http`).
//!
//! # Its place among the layers
//!
//! For a client of a dependency, outermost first: SLI recording → **fallback** → cache →
//! breaker → timeout → the client. The fallback is outside everything that can give up (the
//! cache's stale value is still a better answer than a fallback, and a breaker's refusal is
//! one of the fallback's reasons); SLI recording is outside it, so the SLI sees what the
//! caller sees, and counts a degraded answer the way the SLI is declared.
//!
//! # The hot path
//!
//! On success the layer costs the keep function, one atomic load when a switch is bound, a
//! clone of the fallback (free for a closure that captures nothing) and a check of the result
//! by the classifier: no lock and no allocation. Reading a switch is one relaxed atomic load.
//! `BENCHMARKS.md` has the numbers.
//!
//! Why the dependencies: `tower` (its `Oneshot` runs the fallback; its timeout and load-shed
//! errors are recognised), `indexmap` and `parking_lot` hold the switches, `pin-project` builds
//! the response future without a box; with `serde`, `toml`, `serde_json` and
//! `serde_path_to_error` read config files and name the field a bad file got wrong.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod admin;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod config;
mod error;
mod future;
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub mod grpc;
pub mod keep;
mod layer;
pub mod mode;
mod reason;
#[cfg(any(feature = "serde", feature = "http"))]
mod route_key;
mod service;
mod switch;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod table;

pub use error::{BoxedFallbackFailed, Error, FallbackError, FallbackFailed};
pub use future::{FallbackRequest, ResponseFuture};
pub use layer::FallbackLayer;
pub use reason::{diagnose_chain, Diagnose, Reasons};
pub use service::FallbackService;
pub use steadfast_core::{Degraded, Reason};
pub use switch::{
    validate_name, Degrader, Flip, FlipEvent, Source, Switch, SwitchError, HISTORY_LEN,
    MAX_NAME_LEN, MAX_SWITCHES,
};
