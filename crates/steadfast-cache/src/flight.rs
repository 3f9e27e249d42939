//! Loads: one per key in this process (single-flight), one across instances through the shared
//! tier's lock, each on its own task, bounded by the load timeout, answering stale on failure.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use steadfast_core::Reason;
use tokio::sync::watch;

use crate::cache::{nanos, Entry, Inner, Lookup, Remote};
use crate::cached::{Cached, Source, Stale, Status};
use crate::error::Error;
use crate::remote::{Fetched, Fill, Version};
use crate::CacheKey;

/// A load under way, which every caller missing the same key waits on.
pub(crate) struct Flight<V> {
    landed: watch::Sender<Option<Landed<V>>>,
}

/// How a load ended.
#[derive(Clone)]
pub(crate) enum Landed<V> {
    Value(Cached<V>),
    Failed(Failure),
}

#[derive(Clone)]
pub(crate) enum Failure {
    /// The loader's error, shared by every waiter (each downcasts it to its own `E`).
    Load(Arc<dyn Any + Send + Sync>),
    TimedOut(Duration),
    Panicked,
}

impl<V: Clone> Flight<V> {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            landed: watch::Sender::new(None),
        })
    }

    async fn wait(&self) -> Landed<V> {
        let mut receiver = self.landed.subscribe();
        let landed = match receiver.wait_for(Option::is_some).await {
            Ok(landed) => landed.clone(),
            // The sender lives as long as this flight, which we hold: unreachable, but a
            // failed read is the honest answer if it ever were.
            Err(_) => None,
        };
        landed.unwrap_or(Landed::Failed(Failure::Panicked))
    }
}

impl<K, V> Inner<K, V>
where
    K: CacheKey,
    V: Clone + Send + Sync + 'static,
{
    /// Joins the load of `key` under way, or starts one; waits for its end.
    pub(crate) async fn load<F, Fut, E>(
        self: &Arc<Self>,
        key: K,
        loader: F,
        stale: Option<Entry<V>>,
    ) -> Result<Cached<V>, Error<E>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let (flight, leader) = self.join(&key);
        let mut loader = Some(loader);
        if leader {
            if let Some(loader) = loader.take() {
                self.start(key.clone(), loader, stale.clone(), flight.clone());
            }
        }
        match flight.wait().await {
            Landed::Value(cached) => Ok(cached),
            Landed::Failed(Failure::Load(error)) => match error.downcast::<E>() {
                Ok(error) => Err(Error::Load(error)),
                // Another caller's loader of another error type failed: ours has not run, so
                // run it, alone.
                Err(_) => match loader {
                    Some(loader) => {
                        let own = Flight::new();
                        self.start(key, loader, stale, own.clone());
                        match own.wait().await {
                            Landed::Value(cached) => Ok(cached),
                            Landed::Failed(failure) => Err(failure.into_error()),
                        }
                    }
                    None => Err(Error::Panicked),
                },
            },
            Landed::Failed(failure) => Err(failure.into_error()),
        }
    }

    /// Stale-while-revalidate: starts a load of `key` in the background unless one runs.
    pub(crate) fn refresh<F, Fut, E>(self: &Arc<Self>, key: K, loader: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let (flight, leader) = self.join(&key);
        if leader {
            let stale = self.l1.get(&key);
            self.start(key, loader, stale, flight);
        }
    }

    fn join(&self, key: &K) -> (Arc<Flight<V>>, bool) {
        let mut flights = self.flights.lock();
        if let Some(flight) = flights.get(key) {
            return (flight.clone(), false);
        }
        let flight = Flight::new();
        flights.insert(key.clone(), flight.clone());
        (flight, true)
    }

    fn start<F, Fut, E>(
        self: &Arc<Self>,
        key: K,
        loader: F,
        stale: Option<Entry<V>>,
        flight: Arc<Flight<V>>,
    ) where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        // Built before the task, and moved into it: if the task never runs (no runtime, or
        // one shutting down drops it unpolled), dropping the guard still answers the waiters.
        let mut landing = Landing {
            inner: self.clone(),
            key,
            flight,
            epoch: self.epoch.load(Ordering::Relaxed),
            landed: false,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let inner = landing.inner.clone();
            let key = landing.key.clone();
            let stale = stale.map(|entry| (entry, Source::L1));
            inner.resolve(&key, loader, stale, &mut landing).await;
        });
    }

    /// L2, then the lock across instances, then the loader; lands the answer; then writes L2.
    async fn resolve<F, Fut, E>(
        &self,
        key: &K,
        loader: F,
        mut stale: Option<(Entry<V>, Source)>,
        landing: &mut Landing<K, V>,
    ) where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let text = self.entry_key(key);
        let mut version = Version::default();
        let mut token = None;
        if let Some(remote) = &self.remote {
            match self.read_remote(remote, &text, &mut stale, landing).await {
                RemoteRead::Answered => return,
                RemoteRead::Missed { fetched, locked } => {
                    version = fetched;
                    // Wait for another instance's load if it holds the lock, or takes it first.
                    let wait = locked || {
                        let mine = fastrand::u64(1..);
                        let ttl = self
                            .policy
                            .load_timeout
                            .saturating_add(self.policy.load_timeout / 2);
                        match self
                            .guarded(remote, || remote.tier.lock(&text, mine, ttl))
                            .await
                        {
                            Ok(true) => {
                                token = Some(mine);
                                false
                            }
                            Ok(false) => true,
                            Err(_) => false,
                        }
                    };
                    if wait {
                        match self.wait_for_peer(remote, &text, &mut stale, landing).await {
                            RemoteRead::Answered => return,
                            RemoteRead::Missed { fetched, .. } => version = fetched,
                            RemoteRead::Down => {}
                        }
                    }
                }
                RemoteRead::Down => {}
            }
        }

        let started = self.clock.now();
        let result = tokio::time::timeout(self.policy.load_timeout, loader()).await;
        #[allow(clippy::cast_precision_loss)]
        self.metrics
            .load_seconds
            .record(self.clock.now().saturating_sub(started) as f64 / 1e9);
        let failure = match result {
            Ok(Ok(value)) => {
                self.metrics.loads_ok.increment(1);
                let keep = self.admit(&value);
                let entry = keep.map(|keep| self.entry(value.clone(), keep, landing.epoch));
                landing.land(
                    Landed::Value(Cached::new(value, Status::Fresh, Source::Loader)),
                    entry.clone(),
                );
                if let (Some(remote), Some(entry)) = (&self.remote, entry) {
                    if let Ok(bytes) = self.encode(remote, &entry) {
                        let fill = [Fill {
                            key: text.clone(),
                            value: bytes,
                            ttl: self.l2_ttl(&entry),
                            version,
                        }];
                        // Refused: a write came after the load started, so what this load
                        // put in L1 may be older than L2; the next read takes L2's.
                        if let Ok(0) = self.guarded(remote, || remote.tier.fill(&fill)).await {
                            self.l1.invalidate(key);
                        }
                    }
                }
                None
            }
            Ok(Err(error)) => {
                self.metrics.loads_error.increment(1);
                let reason = reason_of(&error);
                Some((Failure::Load(Arc::new(error)), reason))
            }
            Err(_) => {
                self.metrics.loads_timeout.increment(1);
                Some((Failure::TimedOut(self.policy.load_timeout), Reason::Timeout))
            }
        };
        if let Some((failure, reason)) = failure {
            let now = self.clock.recent();
            let (landed, held) = match stale.filter(|(entry, _)| now < entry.stale_until) {
                Some((entry, source)) => {
                    self.metrics.stale_error.increment(1);
                    // Kept in L1, quiet for a while: the next reads answer it at once.
                    let mut held = entry.clone();
                    held.quiet_until = now.saturating_add(nanos(self.policy.retry_after_error));
                    held.failure = reason;
                    let answer = Cached::new(
                        entry.value,
                        Status::Stale(Stale::LoadFailed(reason)),
                        source,
                    );
                    (Landed::Value(answer), Some(held))
                }
                None => (Landed::Failed(failure), None),
            };
            landing.land(landed, held);
        }
        if let (Some(remote), Some(token)) = (&self.remote, token) {
            let _ = self
                .guarded(remote, || remote.tier.unlock(&text, token))
                .await;
        }
    }

    /// One L2 read: a fresh entry lands; a stale one becomes the stale-if-error candidate.
    async fn read_remote(
        &self,
        remote: &Remote<V>,
        text: &str,
        stale: &mut Option<(Entry<V>, Source)>,
        landing: &mut Landing<K, V>,
    ) -> RemoteRead {
        let keys = [text.to_owned()];
        let fetched = match self.guarded(remote, || remote.tier.fetch(&keys)).await {
            Ok(mut fetched) => fetched.pop().unwrap_or_default(),
            Err(_) => return RemoteRead::Down,
        };
        let Fetched {
            value,
            version,
            locked,
        } = fetched;
        if let Some(entry) = value.and_then(|bytes| self.decode(remote, &bytes, landing.epoch)) {
            let now = self.clock.recent();
            match entry.clone().into_lookup(now, entry.epoch) {
                Lookup::Fresh(value) => {
                    self.metrics.hits_l2.increment(1);
                    landing.land(
                        Landed::Value(Cached::new(value, Status::Fresh, Source::L2)),
                        Some(entry),
                    );
                    return RemoteRead::Answered;
                }
                Lookup::Miss => {}
                Lookup::Quiet(..) | Lookup::Revalidate(_) | Lookup::Stale(_) => {
                    let newer = stale
                        .as_ref()
                        .is_none_or(|(held, _)| held.stale_until < entry.stale_until);
                    if newer {
                        *stale = Some((entry, Source::L2));
                    }
                }
            }
        }
        self.metrics.misses_l2.increment(1);
        RemoteRead::Missed {
            fetched: version,
            locked,
        }
    }

    /// Another instance holds the load lock: look for its value until the lock is gone or the
    /// wait is over, then load here.
    async fn wait_for_peer(
        &self,
        remote: &Remote<V>,
        text: &str,
        stale: &mut Option<(Entry<V>, Source)>,
        landing: &mut Landing<K, V>,
    ) -> RemoteRead {
        let deadline = tokio::time::Instant::now() + self.policy.lock_wait;
        let mut last = RemoteRead::Down;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(self.policy.lock_poll.min(left)).await;
            last = self.read_remote(remote, text, stale, landing).await;
            match last {
                RemoteRead::Answered => return last,
                RemoteRead::Missed { locked: true, .. } => {}
                // The holder finished without a value, or gave up, or Redis is gone.
                RemoteRead::Missed { locked: false, .. } | RemoteRead::Down => return last,
            }
        }
        last
    }
}

enum RemoteRead {
    Answered,
    Missed { fetched: Version, locked: bool },
    Down,
}

/// Ends a flight exactly once: with its answer, or, if the load task ends without one (the
/// loader panicked, the runtime shut down), with [`Failure::Panicked`] so no waiter hangs.
pub(crate) struct Landing<K: CacheKey, V: Clone + Send + Sync + 'static> {
    inner: Arc<Inner<K, V>>,
    key: K,
    flight: Arc<Flight<V>>,
    /// The invalidation-feed epoch when the load started: what it stores is no fresher.
    pub(crate) epoch: u64,
    landed: bool,
}

impl<K, V> Landing<K, V>
where
    K: CacheKey,
    V: Clone + Send + Sync + 'static,
{
    /// Answers the waiters and, unless a write superseded this load, fills L1.
    pub(crate) fn land(&mut self, landed: Landed<V>, entry: Option<Entry<V>>) {
        if self.landed {
            return;
        }
        {
            let mut flights = self.inner.flights.lock();
            let current = flights
                .get(&self.key)
                .is_some_and(|flight| Arc::ptr_eq(flight, &self.flight));
            if current {
                flights.remove(&self.key);
                if let Some(entry) = entry {
                    self.inner.l1.insert(self.key.clone(), entry);
                }
            }
        }
        self.flight.landed.send_replace(Some(landed));
        // Only now: should anything above panic, the drop still answers the waiters.
        self.landed = true;
    }
}

impl<K, V> Drop for Landing<K, V>
where
    K: CacheKey,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if !self.landed {
            self.inner.metrics.loads_panic.increment(1);
            self.land(Landed::Failed(Failure::Panicked), None);
        }
    }
}

impl Failure {
    fn into_error<E: Send + Sync + 'static>(self) -> Error<E> {
        match self {
            Failure::Load(error) => match error.downcast::<E>() {
                Ok(error) => Error::Load(error),
                Err(_) => Error::Panicked,
            },
            Failure::TimedOut(after) => Error::TimedOut(after),
            Failure::Panicked => Error::Panicked,
        }
    }
}

/// The kind of a loader's failure, for the stale marker: a breaker's refusal or a timeout, told
/// by type (directly, or anywhere in a boxed error's `source()` chain), or the reason of a
/// [`Degraded`](steadfast_core::Degraded) found in that chain; anything else is `Error`.
pub(crate) fn reason_of<E: 'static>(error: &E) -> Reason {
    let any: &dyn Any = error;
    if let Some(reason) = known(any) {
        return reason;
    }
    let boxed: Option<&(dyn std::error::Error + 'static)> =
        if let Some(boxed) = any.downcast_ref::<Box<dyn std::error::Error + Send + Sync>>() {
            Some(&**boxed)
        } else if let Some(io) = any.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return Reason::Timeout;
            }
            io.get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static))
        } else {
            None
        };
    let mut next = boxed;
    while let Some(error) = next {
        if let Some(marker) = error.downcast_ref::<steadfast_core::Degraded>() {
            return marker.reason();
        }
        if error.is::<steadfast_breaker::Rejected>() {
            return Reason::BreakerOpen;
        }
        if error.is::<steadfast_breaker::TimedOut>() || error.is::<tokio::time::error::Elapsed>() {
            return Reason::Timeout;
        }
        next = error.source();
    }
    Reason::Error
}

fn known(any: &dyn Any) -> Option<Reason> {
    if any.is::<steadfast_breaker::Rejected>() {
        Some(Reason::BreakerOpen)
    } else if any.is::<steadfast_breaker::TimedOut>() || any.is::<tokio::time::error::Elapsed>() {
        Some(Reason::Timeout)
    } else {
        None
    }
}
