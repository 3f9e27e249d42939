//! Idempotent business calls: `idempotency.run(scope, key, fingerprint, || async { … })`.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::record::{Completed, Payload, Token};
use crate::store::{Claim, MemoryStore, Store, StoreError, StoreKey};
use crate::{Fingerprint, IdempotencyKey};

/// The longest lease, retention or wait: about 557 years, within what every store and clock
/// can represent.
const LONGEST: Duration = Duration::from_millis(1 << 44);

/// The engine every form shares: a store and the rules of its records.
///
/// ```
/// use steadfast_idempotency::{Fingerprint, Idempotency, IdempotencyKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let idempotency = Idempotency::in_memory();
/// let key = IdempotencyKey::try_from("charge-42").unwrap();
/// let print = Fingerprint::of(b"charge 10 EUR to card 4242");
/// let charges = std::sync::atomic::AtomicU32::new(0);
/// for _ in 0..3 {
///     let receipt: String = idempotency
///         .run("alice", &key, print, || async {
///             charges.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
///             Ok::<_, std::io::Error>("receipt #1".to_owned())
///         })
///         .await
///         .unwrap();
///     assert_eq!(receipt, "receipt #1");
/// }
/// assert_eq!(charges.into_inner(), 1, "charged once");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Idempotency<S = MemoryStore> {
    pub(crate) store: S,
    pub(crate) lease: Duration,
    pub(crate) retention: Duration,
    pub(crate) wait: Option<Duration>,
    pub(crate) fail_open: bool,
}

/// Why an idempotent call gave no result.
#[derive(Debug)]
pub enum RunError<E> {
    /// The call ran and failed; the key was released, so a retry runs it again.
    Failed(E),
    /// The key is held by a call still running (after waiting, if the policy waits).
    InFlight,
    /// The key was used with another fingerprint: a different request under the same key.
    Mismatch,
    /// The store failed, and the policy fails closed.
    Store(StoreError),
    /// A stored result could not be read back as the type asked for.
    Decode(serde_json::Error),
}

/// Why an idempotent call was refused without running: every [`RunError`] but the call's
/// own error. Error types convert from it (`impl From<Refusal> for MyError`) so that the
/// `#[idempotent]` attribute keeps a function's own error type.
#[derive(Debug)]
pub enum Refusal {
    /// The key is held by a call still running.
    InFlight,
    /// The key was used with another fingerprint.
    Mismatch,
    /// The store failed, and the policy fails closed.
    Store(StoreError),
    /// A stored result could not be read back.
    Decode(serde_json::Error),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InFlight => f.write_str("a call with this idempotency key is still running"),
            Refusal::Mismatch => {
                f.write_str("this idempotency key was used for a different request")
            }
            Refusal::Store(error) => error.fmt(f),
            Refusal::Decode(error) => write!(f, "the stored result cannot be read: {error}"),
        }
    }
}

impl std::error::Error for Refusal {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Refusal::Store(error) => Some(error),
            Refusal::Decode(error) => Some(error),
            Refusal::InFlight | Refusal::Mismatch => None,
        }
    }
}

impl<E> RunError<E> {
    /// The call's own error, or why the call was refused.
    ///
    /// # Errors
    ///
    /// The [`Refusal`] when the call did not run.
    pub fn into_failed(self) -> Result<E, Refusal> {
        match self {
            RunError::Failed(error) => Ok(error),
            RunError::InFlight => Err(Refusal::InFlight),
            RunError::Mismatch => Err(Refusal::Mismatch),
            RunError::Store(error) => Err(Refusal::Store(error)),
            RunError::Decode(error) => Err(Refusal::Decode(error)),
        }
    }
}

impl<E: fmt::Display> fmt::Display for RunError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Failed(error) => error.fmt(f),
            RunError::InFlight => f.write_str("a call with this idempotency key is still running"),
            RunError::Mismatch => {
                f.write_str("this idempotency key was used for a different request")
            }
            RunError::Store(error) => error.fmt(f),
            RunError::Decode(error) => write!(f, "the stored result cannot be read: {error}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RunError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Failed(error) => Some(error),
            RunError::Store(error) => Some(error),
            RunError::Decode(error) => Some(error),
            RunError::InFlight | RunError::Mismatch => None,
        }
    }
}

impl Idempotency<MemoryStore> {
    /// An engine over a fresh in-memory store (100 000 records).
    #[must_use]
    pub fn in_memory() -> Self {
        Self::new(MemoryStore::default())
    }
}

impl<S: Store> Idempotency<S> {
    /// An engine over `store`: a 30 s lease, 24 h retention, no waiting, failing closed.
    pub fn new(store: S) -> Self {
        Self {
            store,
            lease: Duration::from_secs(30),
            retention: Duration::from_secs(24 * 60 * 60),
            wait: None,
            fail_open: false,
        }
    }

    /// How long a claim holds its key before another may take it: longer than the call may
    /// run, or a slow call and its retry both run. 30 s by default.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(Duration::from_millis(1), LONGEST);
        self
    }

    /// How long a completed record is kept for replay: 24 h by default.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention.clamp(Duration::from_millis(1), LONGEST);
        self
    }

    /// Waits up to `max` for a call still running with the same key, and returns its result,
    /// instead of refusing at once (`409` over HTTP, [`RunError::InFlight`] here).
    #[must_use]
    pub fn wait_for_in_flight(mut self, max: Duration) -> Self {
        self.wait = Some(max.min(LONGEST));
        self
    }

    /// When the store fails: run the call anyway (`true`) or refuse (`false`, the default).
    /// Failing open risks a second charge while the store is down.
    #[must_use]
    pub fn fail_open(mut self, open: bool) -> Self {
        self.fail_open = open;
        self
    }

    /// The same engine keeping completed records for `retention` (the store is shared).
    #[must_use]
    pub fn with_retention(&self, retention: Duration) -> Self {
        self.clone().retention(retention)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Runs `call` once for `key` within `scope`: a first call runs it and stores its `Ok`
    /// value (through serde) for the retention; a repeat with the same fingerprint gets the
    /// stored value without running it; an `Err` releases the key, so a retry runs again; a
    /// call dropped or panicking releases it too (or its lease runs out).
    ///
    /// # Errors
    ///
    /// [`RunError`]: the call's own error, a key in flight, a fingerprint mismatch, the store.
    pub async fn run<T, E, F, Fut>(
        &self,
        scope: &str,
        key: &IdempotencyKey,
        fingerprint: Fingerprint,
        call: F,
    ) -> Result<T, RunError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let store_key = StoreKey::new(scope, key);
        let token = match self.acquire(&store_key, fingerprint).await {
            Ok(Acquired::Token(token)) => Some(token),
            Ok(Acquired::Replay(completed)) => {
                return match completed.payload {
                    Payload::Value(bytes) => {
                        serde_json::from_slice(&bytes).map_err(RunError::Decode)
                    }
                    Payload::Response(_) => Err(RunError::Mismatch),
                };
            }
            Err(Refused::Store(StoreError::Unavailable(_))) if self.fail_open => None,
            Err(Refused::Store(error)) => return Err(RunError::Store(error)),
            Err(Refused::InFlight) => return Err(RunError::InFlight),
            Err(Refused::Mismatch) => return Err(RunError::Mismatch),
        };
        let Some(token) = token else {
            return call().await.map_err(RunError::Failed);
        };
        let guard = Release::new(self.store.clone(), store_key.clone(), token);
        let result = call().await;
        match result {
            Ok(value) => {
                // The call succeeded: the key is never released again. A value serde cannot
                // write is completed with an empty record, which a retry cannot read back: it
                // is refused, never run again.
                let bytes = serde_json::to_vec(&value).unwrap_or_default();
                let completed = Completed {
                    fingerprint,
                    payload: Payload::Value(Bytes::from(bytes)),
                };
                guard.complete_now(completed, self.retention).await;
                Ok(value)
            }
            Err(error) => {
                guard.release_now().await;
                Err(RunError::Failed(error))
            }
        }
    }

    /// Claims `key`, waiting for a call in flight when the policy says so.
    pub(crate) async fn acquire(
        &self,
        key: &StoreKey,
        fingerprint: Fingerprint,
    ) -> Result<Acquired, Refused> {
        let deadline = self
            .wait
            .and_then(|wait| tokio::time::Instant::now().checked_add(wait));
        let mut pause = Duration::from_millis(5);
        loop {
            match self.store.claim(key, fingerprint, self.lease).await {
                Ok(Claim::Acquired(token)) => return Ok(Acquired::Token(token)),
                Ok(Claim::Completed(completed)) => {
                    return if completed.fingerprint == fingerprint {
                        Ok(Acquired::Replay(completed))
                    } else {
                        Err(Refused::Mismatch)
                    };
                }
                Ok(Claim::InFlight(held)) => {
                    if held != fingerprint {
                        return Err(Refused::Mismatch);
                    }
                    match (self.wait, deadline) {
                        // A wait too long to represent waits as long as the call runs.
                        (Some(_), None) => {
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_millis(200));
                        }
                        (_, Some(deadline)) if tokio::time::Instant::now() + pause <= deadline => {
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_millis(200));
                        }
                        _ => return Err(Refused::InFlight),
                    }
                }
                Err(error) => return Err(Refused::Store(error)),
            }
        }
    }
}

pub(crate) enum Acquired {
    Token(Token),
    Replay(Completed),
}

pub(crate) enum Refused {
    InFlight,
    Mismatch,
    Store(StoreError),
}

/// Completes a claim with `completed` on a task of its own, so that dropping the caller's
/// future cannot cancel the write, retrying a store that is briefly unavailable.
pub(crate) async fn complete_detached<S: Store>(
    store: S,
    key: StoreKey,
    token: Token,
    completed: Completed,
    retention: Duration,
) {
    let write = async move {
        let mut pause = Duration::from_millis(20);
        for _ in 0..3 {
            match store.complete(&key, token, &completed, retention).await {
                Err(StoreError::Unavailable(_)) => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                // Written, fenced off by a newer claim, or a corrupt record: nothing to retry.
                _ => return,
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let _ = runtime.spawn(write).await;
        }
        Err(_) => write.await,
    }
}

/// What happens to a claim if the call's future is dropped or panics.
pub(crate) struct Release<S: Store> {
    armed: Option<(S, StoreKey, Token)>,
    /// Once the call has succeeded, dropping must not release the key (the side effect is
    /// done): it completes the record with this instead, so retries never run again.
    on_drop: Option<(Completed, Duration)>,
}

impl<S: Store> Release<S> {
    pub(crate) fn new(store: S, key: StoreKey, token: Token) -> Self {
        Self {
            armed: Some((store, key, token)),
            on_drop: None,
        }
    }

    /// The call succeeded: from now on a drop completes the record with `completed`.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    pub(crate) fn complete_on_drop(&mut self, completed: Completed, retention: Duration) {
        self.on_drop = Some((completed, retention));
    }

    /// Completes the record now, surviving the caller's drop.
    pub(crate) async fn complete_now(mut self, completed: Completed, retention: Duration) {
        if let Some((store, key, token)) = self.armed.take() {
            complete_detached(store, key, token, completed, retention).await;
        }
    }

    pub(crate) async fn release_now(mut self) {
        if let Some((store, key, token)) = self.armed.take() {
            let _ = store.release(&key, token).await;
        }
    }
}

impl<S: Store> Drop for Release<S> {
    fn drop(&mut self) {
        if let Some((store, key, token)) = self.armed.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                match self.on_drop.take() {
                    Some((completed, retention)) => {
                        runtime.spawn(complete_detached(store, key, token, completed, retention));
                    }
                    None => {
                        runtime.spawn(async move {
                            let _ = store.release(&key, token).await;
                        });
                    }
                }
            }
        }
    }
}
