//! SLIs, error budgets and burn-rate signals, in-process: the SRE loop of Steadfast.
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
