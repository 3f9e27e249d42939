//! A lock-free circuit breaker for Tower.
//!
//! A breaker watches the outcomes of calls to a dependency. When too many fail (or are slow),
//! it **opens** and refuses calls at once, sparing the dependency and the caller's threads;
//! after a while it goes **half-open** and lets a few probes through; if they succeed it
//! **closes** again.
//!
//! ```
//! use std::time::Duration;
//! use steadfast_breaker::{CircuitBreaker, State};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let breaker = CircuitBreaker::builder("payments")
//!     .failure_rate(0.5)
//!     .minimum_calls(4)
//!     .open_duration(Duration::from_secs(10))
//!     .build()
//!     .unwrap();
//!
//! let service = ServiceBuilder::new()
//!     .layer(breaker.layer())
//!     .service(service_fn(|fail: bool| async move {
//!         if fail { Err("downstream refused") } else { Ok("paid") }
//!     }));
//!
//! for fail in [false, true, true, true] {
//!     let _ = service.clone().oneshot(fail).await;
//! }
//! assert_eq!(breaker.state(), State::Open);
//!
//! let error = service.clone().oneshot(false).await.unwrap_err();
//! assert!(error.is_rejected());
//! # }
//! ```
//!
//! # What it does
//!
//! - **States**: closed, open, half-open; and by hand disabled, forced open, metrics only.
//! - **Trip rules** (any of): failure rate over a minimum number of calls, slow-call rate,
//!   consecutive failures; over a time window (buckets) or a count window.
//! - **Half-open**: exactly N probes, a cap on how long probing may take, and open periods
//!   that may grow with backoff and jitter.
//! - **Keyed breakers**: one per host, route or tenant, in a bounded registry ([`keyed`]).
//! - **Modes**: typed errors, boxed errors, HTTP 503 problem+json with `Retry-After`
//!   (feature `http`), `tonic::Status` UNAVAILABLE (feature `tonic`) — see [`mode`].
//! - **Events** to a [`Listener`](steadfast_core::Listener) and to `metrics`.
//!
//! # The hot path
//!
//! Admission in the closed state is one atomic load of the state word. Recording is a relaxed
//! add into the calling thread's stripe of the current time bucket. No lock, no allocation, and
//! no precise clock read unless slow-call timing is on: bucket times come from a coarse clock
//! refreshed every millisecond. Rules are checked when a failure or a slow call is recorded,
//! at a cost set by the window's shape, not by its traffic. `BENCHMARKS.md` has the numbers.
//!
//! [`CircuitBreaker::layer`] holds the breaker per call through [`striped`] handles,
//! one per core, so calls on different cores write no shared reference count, even when the
//! service is cloned per request as axum does. A breaker that lives for the whole process can
//! be made `'static` with [`CircuitBreaker::leak`]; its
//! [`static_layer`](CircuitBreaker::static_layer) then writes no count at all.
//!
//! # Its place among the layers
//!
//! For a client of a dependency, outermost first: SLI recording → fallback → cache →
//! **breaker** → timeout → the client. The breaker sits inside the cache and the fallback, so
//! that a refusal can be answered from a stale value or a fallback; the timeout sits inside
//! the breaker (use [`CircuitBreakerLayer::timeout`]), so that a call that hangs counts as a
//! failure instead of a dropped call.
//!
//! # Semantics worth knowing
//!
//! - Rules are evaluated when a failure or slow call is recorded: a success never trips.
//! - A rate exactly at its threshold trips (compared as exact fractions, not floats).
//! - In half-open, every probe must succeed; one failure (or slow probe) opens again. Past
//!   `max_half_open` the breaker is open, and a probe still running cannot close it.
//! - Reads are true when read: an open period that has passed reads as half-open, a half-open
//!   period past its cap as open, with no call needed.
//! - A call admitted before a transition does not count after it.
//! - A dropped (cancelled) call counts as [`DropPolicy`] says: by default as a slow call if it
//!   ran past the slow-call threshold, otherwise as nothing.
//! - A refusal by a Steadfast breaker nested inside is not a failure of the outer one
//!   (unless [`Builder::count_nested_refusals`]).
//! - Manual controls are idempotent.
//!
//! `docs/breaker.md` (the guide) has a table of where these differ from resilience4j, Polly and
//! Sentinel, and why.
//!
//! Why the dependencies: `crossbeam-utils` pads counters to cache lines, `strength_reduce`
//! turns the per-call bucket division into a multiply; `indexmap` (sampled eviction),
//! `foldhash` (seeded hashing of attacker-chosen keys) and `parking_lot` (shard locks) make
//! the keyed registry; `fastrand` draws jitter and samples, `pin-project` builds the response
//! future without a box, `tokio` (time only) runs the call timeout.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod breaker;
mod config;
mod error;
mod event;
mod future;
pub mod keyed;
mod layer;
pub mod mode;
mod nested;
mod service;
mod state;
pub mod striped;
pub mod timeout;
mod window;

pub use breaker::{Builder, CircuitBreaker, OpenContext, Permit, Snapshot};
pub use config::{Backoff, Config, ConfigError, DropPolicy, SlowCalls, WindowConfig};
pub use error::{Error, Rejected, TimedOut};
pub use event::{BreakerListener, Event, EventKind};
pub use future::{Admission, ResponseFuture};
pub use keyed::{BreakerRegistry, KeyedCircuitBreakerLayer};
pub use layer::CircuitBreakerLayer;
pub use service::{BreakerProvider, CircuitBreakerService, MakeProvider};
pub use state::State;
