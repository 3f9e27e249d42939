//! The shared vocabulary of Steadfast.
//!
//! Every Steadfast middleware speaks the same few words, defined here once:
//!
//! - [`Classify`] turns the result of a call into an [`Outcome`]: success, failure, or
//!   ignored. Breakers count failures with it; later, SLIs count good events with it.
//! - [`Clock`] is a cheap, coarse clock for hot paths, with a [`MockClock`] for tests.
//! - [`Reason`] says why a fallback answered, and [`Degraded`] marks its response.
//! - [`Listener`] receives a middleware's events, and [`metrics`] names what is exported
//!   through the `metrics` facade.
//!
//! ```
//! use steadfast_core::{AnyError, Classify, Outcome};
//!
//! let ok: Result<u32, &str> = Ok(7);
//! let err: Result<u32, &str> = Err("refused");
//! assert_eq!(AnyError.classify(ok.as_ref()), Outcome::Success);
//! assert_eq!(AnyError.classify(err.as_ref()), Outcome::Failure);
//! ```
//!
//! Why the dependencies: `quanta` reads the TSC, calibrated, for precise call timing; `metrics`
//! is the facade every exporter plugs into.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod classify;
mod clock;
pub mod degraded;
mod event;
pub mod metrics;
pub mod stripe;

#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub use classify::GrpcCodes;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use classify::HttpStatus;
pub use classify::{classify_fn, AnyError, Classify, ClassifyFn, Outcome};
pub use clock::{Clock, MockClock};
pub use degraded::{Degraded, Reason};
pub use event::Listener;

/// A type-erased error, as tower and hyper use it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
