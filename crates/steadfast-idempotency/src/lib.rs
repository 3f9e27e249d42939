//! Idempotency keys for Tower.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod fingerprint;
mod key;
pub mod record;
pub mod store;

pub use fingerprint::{Fingerprint, FingerprintBuilder};
pub use key::{IdempotencyKey, KeyError, MAX_KEY_LEN};
