//! Idempotency keys for Tower.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod fingerprint;
pub mod generic;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
mod key;
pub mod record;
mod run;
pub mod store;

pub use fingerprint::{Fingerprint, FingerprintBuilder};
pub use key::{IdempotencyKey, KeyError, MAX_KEY_LEN};
pub use run::{Idempotency, Refusal, RunError};
