//! SLIs, error budgets and burn-rate signals, in-process: the SRE loop of Steadfast.
//!
//! An [`Slo`] counts good and bad events of one endpoint or dependency (its SLI) and holds them
//! to an objective over a period. From the counts come the error budget, the burn rates over
//! the Google SRE workbook's windows, and the signals that fire when the budget burns too fast.
//! An [`SloSet`] evaluates them together: each signal change is an event and a metric at once,
//! and [`BudgetPolicy`]s flip the fallback crate's degradation switches, so the service sheds
//! load by itself within a minute of an outage and returns when it is over.
//!
//! ```
//! use std::time::Duration;
//! use steadfast_core::Clock;
//! use steadfast_fallback::Degrader;
//! use steadfast_slo::{BudgetPolicy, Slo, SloSet};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (clock, time) = Clock::mock(); // real code leaves the clock out
//! let degrader = Degrader::new();
//! let search = Slo::builder("search").objective(0.999).clock(clock).build().unwrap();
//! let slos = SloSet::builder()
//!     .slo(search.clone())
//!     .policy("search", BudgetPolicy::new(&degrader, "suggestions", 1).on_signal("page_1h"))
//!     .build()
//!     .unwrap();
//! // In a service: `slos.spawn(Duration::from_secs(1));` evaluates in the background.
//!
//! let service = ServiceBuilder::new()
//!     .layer(search.layer())
//!     .service(service_fn(|_: ()| async { Err::<(), _>("index unavailable") }));
//! for _ in 0..30 {
//!     for _ in 0..10 {
//!         let _ = service.clone().oneshot(()).await;
//!     }
//!     time.advance(Duration::from_secs(1));
//!     slos.evaluate();
//! }
//! assert!(slos.reports()[0].signals.iter().any(|s| s.name == "page_1h" && s.firing));
//! assert_eq!(degrader.get("suggestions").unwrap().level(), 1);
//! # }
//! ```
//!
//! # What it has
//!
//! - **SLIs**: events (a call is good when its outcome is a success, optionally within a
//!   latency threshold) or latency percentiles ("p95 within 300 ms", judged per minute from a
//!   [`sketch`]). Recorded by [`SliLayer`] or by hand ([`Slo::record`]).
//! - **Periods**: rolling ([`Period::Rolling`], up to 93 days) or calendar ([`Period::Month`],
//!   [`Period::Week`] from Monday, UTC); [`Maintenance`] windows excluded from good and total.
//! - **Budgets and burn rates**: [`SloReport`] with the budget left (fraction and events) and
//!   the burn rate of every window; [`BurnWindow::defaults`] are the workbook's four signals.
//! - **Downtime minutes** as SLA reports count them ([`SloBuilder::downtime`]), **composites**
//!   ([`Composite`]), and a **health score** per service on the [`status`] board.
//! - **The loop**: [`BudgetPolicy`] sets a switch when a signal fires and sets it back after a
//!   hold time once it clears; a **freeze** signal when the budget is nearly spent, for deploy
//!   pipelines (the status router's `/freeze`).
//! - **Outside the process**: the metrics in `steadfast_core::metrics` (names, labels, units),
//!   Prometheus recording and alert [`rules`] generated from the same definitions, a status page
//!   ([`status`]); configs from files ([`config`], feature `serde`).
//!
//! # Its place among the layers
//!
//! Outermost, for a client of a dependency: **SLI recording** → fallback → cache → breaker →
//! timeout → the client; for a server route: **SLI recording** → idempotency → response cache
//! → the handler. Outermost, it sees what the caller sees. Put it inside the fallback instead to
//! measure the dependency rather than the experience.
//!
//! # The recording path
//!
//! Counts live per UTC minute in a small ring per thread stripe (cache-padded): recording is a
//! coarse clock read, one load and one relaxed add into the calling thread's own stripe, with
//! no allocation and, in the common case, no lock. Once a minute a stripe's slot is reused, and
//! the thread doing so moves settled minutes into the history under the SLO's lock. Readings and evaluations read the
//! history (per minute over three days, per hour beyond) and the live minutes. Memory per SLO
//! is fixed when it is built, whatever the traffic (`Slo::memory_bytes`).
//!
//! Why the dependencies: `crossbeam-utils` pads the stripes to cache lines, `parking_lot` locks
//! the history, `tokio` runs the evaluation loop, `metrics` exports, `steadfast-fallback` owns
//! the switches the policies flip and `steadfast-breaker` the breakers the status page shows;
//! `serde`, `humantime` and `toml` read configs, `axum` serves the status router.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod burn;
mod composite;
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub mod config;
mod counts;
mod error;
mod event;
mod layer;
mod policy;
mod report;
pub mod rules;
mod set;
pub mod sketch;
mod slo;
pub mod status;
mod time;

pub use burn::{window_label, BurnWindow, Severity};
pub use composite::{Composite, CompositeReport};
pub use error::ConfigError;
pub use event::{SloEvent, SloEventKind};
pub use layer::{ResponseFuture, Sli, SliLayer};
pub use policy::{BudgetPolicy, Trigger};
pub use report::{Budget, BurnRate, Downtime, LatencyReport, SignalReport, SloReport};
pub use set::{SloSet, SloSetBuilder};
pub use slo::{Slo, SloBuilder, MAX_MAINTENANCE};
pub use time::{Maintenance, Period, MAX_PERIOD};
