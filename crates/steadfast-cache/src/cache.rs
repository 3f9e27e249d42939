//! The cache itself: L1 lookups, writes, invalidations and the notices from other instances.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use steadfast_breaker::CircuitBreaker;
use steadfast_core::{Clock, Reason};

use crate::builder::{AdmitFnRef, Policy};
use crate::cached::{Cached, Source, Stale, Status};
use crate::codec::Codec;
use crate::envelope::{Envelope, HEADER_LEN};
use crate::error::{Error, RemoteError};
use crate::flight::Flight;
use crate::l1::L1;
use crate::metrics::Metrics;
use crate::notice::{Notice, Op};
use crate::remote::{BoxFuture, Incoming, Listener, RemoteTier};
use crate::stats::Counters;
use crate::{Admit, Builder, CacheKey, Stats};

/// A two-tier cache: moka in process (L1) in front of an optional shared tier (L2, Redis),
/// in front of your loader.
///
/// Cloning is cheap and every clone shares one cache. See the [crate docs](crate) for the read
/// path, and [`Builder`] for the settings.
pub struct TieredCache<K, V> {
    pub(crate) inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for TieredCache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V> fmt::Debug for TieredCache<K, V>
where
    K: CacheKey,
    V: Clone + Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredCache")
            .field("name", &self.inner.name)
            .field("l1_entries", &self.inner.l1.entry_count())
            .field("remote", &self.inner.remote.is_some())
            .finish()
    }
}

/// One L1 entry: the value and its times on the cache's clock.
#[derive(Clone)]
pub(crate) struct Entry<V> {
    pub(crate) value: V,
    pub(crate) negative: bool,
    pub(crate) fresh_until: u64,
    pub(crate) revalidate_until: u64,
    pub(crate) stale_until: u64,
    /// The invalidation-feed epoch the entry was stored in: an entry from before the feed last
    /// reconnected may have missed a notice and is never fresh.
    pub(crate) epoch: u64,
    /// After a failed load answered this entry stale: until then, reads answer it stale at
    /// once instead of loading again, so an outage is not met with a load per read.
    pub(crate) quiet_until: u64,
    pub(crate) failure: Reason,
}

/// How an admitted value is kept: its TTL and stale windows, capped by the cache's settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Keep {
    pub(crate) negative: bool,
    pub(crate) ttl: Duration,
    pub(crate) revalidate: Duration,
    pub(crate) stale: Duration,
}

/// What an L1 lookup found.
pub(crate) enum Lookup<V> {
    Fresh(V),
    /// A load just failed: answer it stale, for this reason, without loading again yet.
    Quiet(V, Reason),
    /// Within stale-while-revalidate: answer it, refresh in the background.
    Revalidate(V),
    /// Past fresh but within stale-if-error: load, and answer it if the load fails.
    Stale(Entry<V>),
    Miss,
}

impl<V: Clone> Entry<V> {
    /// What the entry is worth at `now`, taking its value out: a hit clones the value once,
    /// in moka's `get`, and no more.
    pub(crate) fn into_lookup(self, now: u64, epoch: u64) -> Lookup<V> {
        if now < self.fresh_until && self.epoch == epoch {
            Lookup::Fresh(self.value)
        } else if now < self.quiet_until && now < self.stale_until {
            Lookup::Quiet(self.value, self.failure)
        } else if self.revalidate_until > self.fresh_until && now < self.revalidate_until {
            Lookup::Revalidate(self.value)
        } else if now < self.stale_until {
            Lookup::Stale(self)
        } else {
            Lookup::Miss
        }
    }
}

/// The shared tier with the codec, breaker and timeout the cache calls it through.
pub(crate) struct Remote<V> {
    pub(crate) tier: Arc<dyn RemoteTier>,
    pub(crate) codec: Arc<dyn Codec<V>>,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) timeout: Duration,
}

/// Wall-clock milliseconds and the cache's clock at one moment, to turn one into the other:
/// L2 entries carry wall times every instance understands, L1 entries the cache's own clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timebase {
    pub(crate) wall_ms: u64,
    pub(crate) clock_ns: u64,
}

/// How the cache pairs wall time with its own clock.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Timebases {
    /// A clock given to the builder (a mock, in tests): paired once, so that moving it moves
    /// the times written to L2 too.
    Fixed(Timebase),
    /// The real clock: paired afresh at each L2 read and write, so that a wall clock stepped
    /// after start (a VM that booted before its time sync) skews nothing for long.
    Live,
}

impl Timebases {
    pub(crate) fn now(self, clock: &Clock) -> Timebase {
        match self {
            Timebases::Fixed(timebase) => timebase,
            Timebases::Live => Timebase {
                wall_ms: wall_ms(),
                clock_ns: clock.recent(),
            },
        }
    }
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl Timebase {
    pub(crate) fn wall(self, clock_ns: u64) -> u64 {
        if clock_ns >= self.clock_ns {
            self.wall_ms
                .saturating_add((clock_ns - self.clock_ns) / 1_000_000)
        } else {
            self.wall_ms
                .saturating_sub((self.clock_ns - clock_ns) / 1_000_000)
        }
    }

    pub(crate) fn clock(self, wall_ms: u64) -> u64 {
        if wall_ms >= self.wall_ms {
            self.clock_ns
                .saturating_add((wall_ms - self.wall_ms).saturating_mul(1_000_000))
        } else {
            self.clock_ns
                .saturating_sub((self.wall_ms - wall_ms).saturating_mul(1_000_000))
        }
    }
}

pub(crate) struct Inner<K, V> {
    pub(crate) name: Arc<str>,
    /// `sf:{name:` — an entry key is this, the key's text, and `}`.
    pub(crate) prefix: String,
    pub(crate) l1: L1<K, V>,
    pub(crate) policy: Policy,
    pub(crate) admit: Option<AdmitFnRef<V>>,
    pub(crate) clock: Clock,
    pub(crate) epoch: AtomicU64,
    /// Writes and invalidations so far: a batch read fills L1 only if none came while it
    /// loaded (it is not a flight, so it cannot be superseded key by key).
    pub(crate) writes: AtomicU64,
    pub(crate) flights: Mutex<HashMap<K, Arc<Flight<V>>>>,
    pub(crate) remote: Option<Remote<V>>,
    pub(crate) metrics: Metrics,
    pub(crate) stats: Counters,
    pub(crate) timebase: Timebases,
    pub(crate) instance: u64,
}

impl<K, V> TieredCache<K, V>
where
    K: CacheKey,
    V: Clone + Send + Sync + 'static,
{
    /// Starts building a cache named `name` (a metric label and part of its Redis keys).
    pub fn builder(name: impl Into<String>) -> Builder<K, V> {
        Builder::new(name)
    }

    /// The cache's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Reads `key`: a fresh L1 entry at once (L1 is read when this is called, and the future
    /// is then ready at its first poll); otherwise L2, then `loader`, with one load per key
    /// in this process (and, with a shared tier, one across instances) however many callers
    /// miss together.
    ///
    /// The load runs on its own Tokio task: a caller that goes away (a client that disconnects)
    /// neither cancels it nor leaves the other callers without an answer. It is cut off after
    /// the [load timeout](Builder::load_timeout).
    ///
    /// # Errors
    ///
    /// When the load fails and no stale value is within the stale-if-error window. Reads never
    /// fail because of the shared tier.
    pub fn get_with<F, Fut, E>(&self, key: K, loader: F) -> GetWith<V, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        match self.inner.lookup(&key) {
            Lookup::Fresh(value) => GetWith::ready(Cached::new(value, Status::Fresh, Source::L1)),
            other => self.not_fresh(other, key, loader),
        }
    }

    #[inline(never)]
    fn not_fresh<F, Fut, E>(&self, found: Lookup<V>, key: K, loader: F) -> GetWith<V, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<V, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let stale = match found {
            Lookup::Fresh(value) => {
                return GetWith::ready(Cached::new(value, Status::Fresh, Source::L1));
            }
            Lookup::Revalidate(value) => {
                self.inner.stats.stale();
                self.inner.refresh(key, loader);
                let status = Status::Stale(Stale::Revalidating);
                return GetWith::ready(Cached::new(value, status, Source::L1));
            }
            Lookup::Quiet(value, reason) => {
                self.inner.stats.stale();
                let status = Status::Stale(Stale::LoadFailed(reason));
                return GetWith::ready(Cached::new(value, status, Source::L1));
            }
            Lookup::Stale(entry) => Some(entry),
            Lookup::Miss => None,
        };
        let inner = self.inner.clone();
        GetWith {
            state: GetWithState::Loading(Box::pin(async move {
                let answer = inner.load(key, loader, stale).await;
                // Counted per caller, not per load: every caller joining a load is a lookup.
                if let Ok(cached) = &answer {
                    match (cached.status(), cached.source()) {
                        (Status::Fresh, Source::L2) => inner.stats.fresh_l2(),
                        (Status::Stale(_), _) => inner.stats.stale(),
                        (Status::Fresh, _) => {}
                    }
                }
                answer
            })),
        }
    }

    /// The fresh L1 value of `key`, if there is one: no L2, no load, no stale value.
    #[must_use]
    pub fn peek(&self, key: &K) -> Option<V> {
        match self.inner.lookup(key) {
            Lookup::Fresh(value) => Some(value),
            _ => None,
        }
    }

    /// Writes `value` under `key`: into L1, then into L2, and tells the other instances, whose
    /// L1 drops the key. A load of the key already under way no longer fills either tier.
    ///
    /// # Errors
    ///
    /// [`RemoteError`] when the shared tier could not be written or told: this instance has
    /// the value, but others may serve the old one until its TTL.
    pub async fn insert(&self, key: K, value: V) -> Result<(), RemoteError> {
        let inner = &self.inner;
        // The cache's admit rule holds for writes too: a value it would not keep is a delete.
        let Some(keep) = inner.admit(&value) else {
            return self.invalidate(&key).await;
        };
        let entry = inner.entry(value, keep, inner.epoch.load(Ordering::Relaxed));
        let text = inner.entry_key(&key);
        let bytes = match &inner.remote {
            Some(remote) => Some(inner.encode(remote, &entry).map_err(RemoteError::Encode)?),
            None => None,
        };
        let ttl = inner.l2_ttl(&entry);
        inner.supersede(&key);
        inner.l1.insert(key.clone(), entry.clone());
        if let (Some(remote), Some(bytes)) = (&inner.remote, bytes) {
            let written = inner
                .guarded(remote, || remote.tier.put(&text, bytes, ttl))
                .await;
            // A load that read L2 before the write reached it may have landed meanwhile.
            inner.supersede(&key);
            inner.l1.insert(key.clone(), entry);
            written?;
            inner.notify(remote, Op::Put, &key).await?;
        }
        Ok(())
    }

    /// Drops `key` from L1 and L2, and from the other instances' L1. A load of the key already
    /// under way no longer fills either tier.
    ///
    /// # Errors
    ///
    /// [`RemoteError`] when the shared tier could not be written or told.
    pub async fn invalidate(&self, key: &K) -> Result<(), RemoteError> {
        let inner = &self.inner;
        inner.supersede(key);
        inner.l1.invalidate(key);
        if let Some(remote) = &inner.remote {
            let text = [inner.entry_key(key)];
            let deleted = inner.guarded(remote, || remote.tier.delete(&text)).await;
            // A load that read L2 before the delete reached it may have landed meanwhile.
            inner.supersede(key);
            inner.l1.invalidate(key);
            deleted?;
            inner.notify(remote, Op::Delete, key).await?;
        }
        Ok(())
    }

    /// Marks every L1 entry of this instance as due for revalidation: none is fresh again
    /// until reloaded (each stays available as a stale value within its windows). What the
    /// cache does by itself when its invalidation feed reconnects.
    pub fn revalidate_all(&self) {
        self.inner.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// How this cache's lookups were answered since it was built: fresh (and of those, from
    /// L2), stale, missed. Kept by the cache itself, so it reads the same with or without a
    /// `metrics` recorder; a status page can show [`Stats::hit_rate`] from it.
    ///
    /// A reading sums per-thread counters, one after another: it is not a snapshot across
    /// counters, and under load may be a few lookups apart between them (`hit_rate` stays
    /// within 0 to 1). Costs one load per thread stripe and counter, no lock.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.inner.stats.read()
    }

    /// The number of entries in L1 (approximate, as moka counts).
    #[must_use]
    pub fn l1_len(&self) -> u64 {
        self.inner.l1.entry_count()
    }
}

impl<K, V> Inner<K, V>
where
    K: CacheKey,
    V: Clone + Send + Sync + 'static,
{
    /// Wall-clock milliseconds now, as this cache reckons them: moved by a clock given to
    /// the builder (a mock), so that times written into values agree with the cache's own.
    /// The L1 value of `key` whatever its freshness: a probe that loads nothing.
    #[cfg(feature = "http")]
    pub(crate) fn peek_any(&self, key: &K) -> Option<V> {
        self.l1.get(key).map(|entry| entry.value)
    }

    #[cfg(feature = "http")]
    pub(crate) fn wall_now(&self) -> u64 {
        let now = self.clock.recent();
        self.timebase.now(&self.clock).wall(now)
    }

    /// An L1 read. The fresh hit is checked first, on its own, so that it compiles to little
    /// more than the store's `get`; everything else goes out of line.
    #[inline]
    /// A fresh value from L1, counting nothing: for a caller that counts the hit itself, or
    /// whose miss the load that follows counts (the response cache's fast path).
    #[cfg(feature = "http")]
    pub(crate) fn peek_quiet(&self, key: &K) -> Option<V> {
        let entry = self.l1.get(key)?;
        let now = self.clock.recent();
        let epoch = self.epoch.load(Ordering::Relaxed);
        if now < entry.fresh_until && entry.epoch == epoch {
            return Some(entry.value);
        }
        match entry.into_lookup(now, epoch) {
            Lookup::Fresh(value) => Some(value),
            _ => None,
        }
    }

    /// Counts a fresh L1 answer found by [`peek_quiet`](Self::peek_quiet).
    #[cfg(feature = "http")]
    pub(crate) fn count_hit(&self) {
        self.metrics.hits_l1.increment(1);
        self.stats.fresh_l1();
    }

    pub(crate) fn lookup(&self, key: &K) -> Lookup<V> {
        let Some(entry) = self.l1.get(key) else {
            self.metrics.misses_l1.increment(1);
            self.stats.not_fresh_l1();
            return Lookup::Miss;
        };
        let now = self.clock.recent();
        let epoch = self.epoch.load(Ordering::Relaxed);
        if now < entry.fresh_until && entry.epoch == epoch {
            self.metrics.hits_l1.increment(1);
            self.stats.fresh_l1();
            return Lookup::Fresh(entry.value);
        }
        self.not_fresh(entry, now, epoch)
    }

    #[cold]
    #[inline(never)]
    fn not_fresh(&self, entry: Entry<V>, now: u64, epoch: u64) -> Lookup<V> {
        let found = entry.into_lookup(now, epoch);
        // A stale answer is counted where it is served: `peek` serves none.
        if matches!(found, Lookup::Fresh(_)) {
            self.stats.fresh_l1();
        } else {
            self.stats.not_fresh_l1();
        }
        match &found {
            Lookup::Fresh(_) => self.metrics.hits_l1.increment(1),
            Lookup::Revalidate(_) => self.metrics.stale_revalidate.increment(1),
            Lookup::Quiet(..) => self.metrics.stale_error.increment(1),
            Lookup::Stale(_) | Lookup::Miss => self.metrics.misses_l1.increment(1),
        }
        found
    }

    /// An entry for `value` stored now, kept as `keep` says (the TTL less its jitter).
    pub(crate) fn entry(&self, value: V, keep: Keep, epoch: u64) -> Entry<V> {
        let now = self.clock.recent();
        let mut ttl = nanos(keep.ttl);
        if self.policy.jitter > 0.0 {
            // Truncation is the point: a whole number of nanoseconds off the TTL.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let cut = (ttl as f64 * self.policy.jitter * fastrand::f64()) as u64;
            ttl -= cut.min(ttl.saturating_sub(1));
        }
        let fresh_until = now.saturating_add(ttl);
        Entry {
            value,
            negative: keep.negative,
            fresh_until,
            revalidate_until: fresh_until.saturating_add(nanos(keep.revalidate)),
            stale_until: fresh_until.saturating_add(nanos(keep.revalidate.max(keep.stale))),
            epoch,
            quiet_until: 0,
            failure: Reason::Error,
        }
    }

    /// How a loaded value is kept, by the cache's rule: `None` when it is not kept.
    pub(crate) fn admit(&self, value: &V) -> Option<Keep> {
        let policy = &self.policy;
        let rule = self
            .admit
            .as_ref()
            .map_or(Admit::Value, |admit| admit(value));
        match rule {
            Admit::Value => Some(Keep {
                negative: false,
                ttl: policy.ttl,
                revalidate: policy.stale_while_revalidate,
                stale: policy.stale_if_error,
            }),
            Admit::For(lifetime) if !lifetime.ttl().is_zero() => Some(Keep {
                negative: false,
                ttl: lifetime.ttl().min(policy.ttl),
                revalidate: lifetime
                    .stale_while_revalidate_window()
                    .min(policy.stale_while_revalidate),
                stale: lifetime.stale_if_error_window().min(policy.stale_if_error),
            }),
            Admit::Negative if !policy.negative_ttl.is_zero() => Some(Keep {
                negative: true,
                ttl: policy.negative_ttl,
                revalidate: Duration::ZERO,
                stale: Duration::ZERO,
            }),
            Admit::Negative | Admit::Skip | Admit::For(_) => None,
        }
    }

    /// `sf:{name:key}`: the hash tag covers the cache name and key, so the entry, its version
    /// and its lock (suffixes after the brace) share a Redis Cluster slot.
    pub(crate) fn entry_key(&self, key: &K) -> String {
        let mut text = String::with_capacity(self.prefix.len() + 24);
        text.push_str(&self.prefix);
        key.write_text(&mut text);
        text.push('}');
        text
    }

    /// How long L2 keeps an entry: until its stale-until.
    pub(crate) fn l2_ttl(&self, entry: &Entry<V>) -> Duration {
        Duration::from_nanos(
            entry
                .stale_until
                .saturating_sub(self.clock.recent())
                .max(1_000_000),
        )
    }

    pub(crate) fn encode(
        &self,
        remote: &Remote<V>,
        entry: &Entry<V>,
    ) -> Result<Bytes, crate::codec::CodecError> {
        let now = self.clock.recent();
        let timebase = self.timebase.now(&self.clock);
        let envelope = Envelope {
            negative: entry.negative,
            written_ms: timebase.wall(now),
            fresh_until_ms: timebase.wall(entry.fresh_until.max(now)),
            stale_until_ms: timebase.wall(entry.stale_until.max(now)),
        };
        let mut bytes = Vec::with_capacity(HEADER_LEN + 64);
        envelope.encode_header(&mut bytes);
        remote.codec.encode(&entry.value, &mut bytes)?;
        Ok(Bytes::from(bytes))
    }

    /// An L2 entry as an L1 entry, or `None` (counted) for bytes that are not one.
    pub(crate) fn decode(&self, remote: &Remote<V>, bytes: &[u8], epoch: u64) -> Option<Entry<V>> {
        let decoded = Envelope::decode(bytes)
            .ok()
            .and_then(|(envelope, payload)| Some((envelope, remote.codec.decode(payload).ok()?)));
        let Some((envelope, value)) = decoded else {
            self.metrics.corrupt.increment(1);
            return None;
        };
        let timebase = self.timebase.now(&self.clock);
        let fresh_until = timebase.clock(envelope.fresh_until_ms);
        let stale_until = timebase.clock(envelope.stale_until_ms);
        // The window is not on the wire: the admit rule gives it again for this value.
        let revalidate = match self.admit(&value) {
            Some(keep) if !envelope.negative => nanos(keep.revalidate),
            _ => 0,
        };
        Some(Entry {
            value,
            negative: envelope.negative,
            fresh_until,
            revalidate_until: fresh_until.saturating_add(revalidate).min(stale_until),
            stale_until,
            epoch,
            quiet_until: 0,
            failure: Reason::Error,
        })
    }

    /// Stops a load under way for `key` from filling the tiers: a write or invalidation came
    /// after it started, so its value may be older.
    pub(crate) fn supersede(&self, key: &K) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.flights.lock().remove(key);
    }

    /// Runs a shared-tier call through the tier's breaker and timeout.
    pub(crate) async fn guarded<'a, T>(
        &self,
        remote: &Remote<V>,
        call: impl FnOnce() -> BoxFuture<'a, Result<T, RemoteError>>,
    ) -> Result<T, RemoteError> {
        let Ok(permit) = remote.breaker.try_acquire() else {
            self.metrics.remote_errors.increment(1);
            return Err(RemoteError::Rejected);
        };
        let result = match tokio::time::timeout(remote.timeout, call()).await {
            Ok(result) => result,
            Err(_) => Err(RemoteError::TimedOut),
        };
        if result.is_ok() {
            permit.success();
        } else {
            permit.failure();
            self.metrics.remote_errors.increment(1);
        }
        result
    }

    async fn notify(&self, remote: &Remote<V>, op: Op, key: &K) -> Result<(), RemoteError> {
        let mut text = String::new();
        key.write_text(&mut text);
        let notice = Notice {
            instance: self.instance,
            op,
            cache: &self.name,
            key: &text,
        };
        let bytes = Bytes::from(notice.encode());
        self.guarded(remote, || remote.tier.publish(bytes)).await?;
        self.metrics.sent.increment(1);
        Ok(())
    }
}

impl<K, V> Listener for Inner<K, V>
where
    K: CacheKey,
    V: Clone + Send + Sync + 'static,
{
    fn hear(&self, incoming: Incoming<'_>) {
        match incoming {
            Incoming::Reconnected => {
                self.epoch.fetch_add(1, Ordering::Relaxed);
                self.metrics.resyncs.increment(1);
            }
            Incoming::Notice(bytes) => {
                let Some(notice) = Notice::decode(bytes) else {
                    self.metrics.corrupt.increment(1);
                    return;
                };
                if notice.cache != &*self.name || notice.instance == self.instance {
                    return;
                }
                self.metrics.received.increment(1);
                match (notice.op, K::from_text(notice.key)) {
                    (Op::Put | Op::Delete, Some(key)) => {
                        self.supersede(&key);
                        self.l1.invalidate(&key);
                    }
                    // A key this instance cannot read back: every entry is suspect.
                    _ => {
                        self.epoch.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The future of [`TieredCache::get_with`]: ready at once for an L1 answer, else the load.
#[must_use = "futures do nothing unless polled"]
pub struct GetWith<V, E> {
    state: GetWithState<V, E>,
}

type Loading<V, E> = Pin<Box<dyn Future<Output = Result<Cached<V>, Error<E>>> + Send>>;

enum GetWithState<V, E> {
    Ready(Option<Cached<V>>),
    Loading(Loading<V, E>),
}

impl<V, E> GetWith<V, E> {
    const fn ready(cached: Cached<V>) -> Self {
        Self {
            state: GetWithState::Ready(Some(cached)),
        }
    }
}

// The ready value is moved out, never pinned, and the load is boxed: nothing here is
// structurally pinned.
impl<V, E> Unpin for GetWith<V, E> {}

impl<V, E> Future for GetWith<V, E> {
    type Output = Result<Cached<V>, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            GetWithState::Ready(cached) => match cached.take() {
                Some(cached) => Poll::Ready(Ok(cached)),
                None => panic!("`GetWith` polled after it completed"),
            },
            GetWithState::Loading(load) => load.as_mut().poll(cx),
        }
    }
}

impl<V, E> fmt::Debug for GetWith<V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            GetWithState::Ready(_) => "ready",
            GetWithState::Loading(_) => "loading",
        };
        f.debug_struct("GetWith").field("state", &state).finish()
    }
}
