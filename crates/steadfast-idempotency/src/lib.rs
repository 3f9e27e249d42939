//! Idempotency keys for Tower: a client that retries a payment after a timeout is charged
//! once, on one instance or on twenty behind a load balancer.
//!
//! Three forms share one engine, [`Idempotency`], and its [`store`]:
//!
//! - **HTTP** (`http::IdempotencyLayer`, feature `http`): the IETF HTTPAPI draft's
//!   `Idempotency-Key` header, with Stripe's practice where the draft is silent; works in axum.
//! - **Business calls**: [`Idempotency::run`], and the `#[idempotent]` attribute of
//!   `steadfast-macros`, for operations that are not routes.
//! - **Any tower service** ([`generic::IdempotentLayer`]): key, scope and fingerprint from an
//!   extractor, the response stored through serde; for in-process clients and gRPC metadata.
//!
//! ```
//! use steadfast_idempotency::{Fingerprint, Idempotency, IdempotencyKey, RunError};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let payments = Idempotency::in_memory();
//! let key = IdempotencyKey::parse(b"\"3f2a-retry-safe\"").unwrap();
//! let print = Fingerprint::builder().part(b"card 4242").part(b"1000").finish();
//!
//! let first: String = payments
//!     .run("alice", &key, print, || async { Ok::<_, std::io::Error>("receipt 1".to_owned()) })
//!     .await
//!     .unwrap();
//! // The retry after a timeout: the stored receipt, the body not run again.
//! let retry: String = payments
//!     .run("alice", &key, print, || async { Ok::<_, std::io::Error>("receipt 2".to_owned()) })
//!     .await
//!     .unwrap();
//! assert_eq!(first, retry);
//!
//! // The same key for another payment is refused.
//! let other = Fingerprint::builder().part(b"card 4242").part(b"9999").finish();
//! let refused = payments
//!     .run("alice", &key, other, || async { Ok::<_, std::io::Error>(String::new()) })
//!     .await;
//! assert!(matches!(refused, Err(RunError::Mismatch)));
//! # }
//! ```
//!
//! # Records
//!
//! A first call *claims* its key: an in-progress record with a **lease** (a crashed handler
//! does not hold its key forever) and a **fencing token** (a finisher whose lease ran out and
//! whose key was claimed again cannot overwrite the newer claim). It then *completes* the
//! record, kept for the **retention** (24 h by default), or *releases* it when the call
//! failed, panicked or was dropped, so a retry runs again. Keys are **scoped** by the
//! caller's identity: one client never replays another's answer. Records are hashed into
//! bounded store keys under a Redis Cluster hash tag, and encoded in a versioned format whose
//! decoder refuses anything malformed ([`record`]).
//!
//! # Its place among the layers
//!
//! For a server route, outermost first: SLI recording → **idempotency** → response cache →
//! the handler. It sits outside the cache, so a replay is answered before any cache lookup,
//! and inside SLI recording, so a replay counts as the good answer the caller got.
//!
//! Why the dependencies: `moka` holds the in-memory store (bounded, per-record expiry),
//! `sha2` hashes fingerprints and store keys (collision-resistant: a forged collision would
//! replay someone else's answer), `serde_json` stores business results, `fastrand` draws
//! fencing tokens; `fred` (feature `redis`) talks to Redis; `http-body-util` bounds bodies.
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
