//! Batch reads: L1, then one round trip to L2 for the rest, then one loader call for what is
//! still missing.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use steadfast_core::Reason;

use crate::cache::{Entry, Lookup};
use crate::cached::{Cached, Source, Stale, Status};
use crate::error::Error;
use crate::flight::reason_of;
use crate::remote::{Fill, Version};
use crate::{CacheKey, TieredCache};

/// Keys per L2 round trip of a batch.
const CHUNK: usize = 128;

impl<K, V> TieredCache<K, V>
where
    K: CacheKey,
    V: Clone + Send + Sync + 'static,
{
    /// Reads many keys: fresh L1 entries first, then one L2 round trip (`MGET`, per 128 keys)
    /// for the rest,
    /// then **one** call of `loader` with only the keys still missing; what it returns fills
    /// both tiers by the cache's [admit rule](crate::Builder::admit).
    ///
    /// The answer holds every key found or loaded; a key the loader leaves out is "not found"
    /// and is absent. Repeated keys are read once.
    ///
    /// Unlike [`get_with`](Self::get_with), a batch load runs in the caller's task (a caller
    /// that goes away cancels it) and does not join the single-flight of single-key reads.
    ///
    /// # Errors
    ///
    /// When the loader fails or times out and some key it was asked for has no stale value
    /// within its stale-if-error window. If every such key has one, the answer holds them,
    /// marked stale.
    pub async fn get_many<I, F, Fut, E>(
        &self,
        keys: I,
        loader: F,
    ) -> Result<HashMap<K, Cached<V>>, Error<E>>
    where
        I: IntoIterator<Item = K>,
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = Result<HashMap<K, V>, E>>,
        E: 'static,
    {
        let inner = &self.inner;
        let now = inner.clock.recent();
        let epoch = inner.epoch.load(Ordering::Relaxed);
        let writes = inner.writes.load(Ordering::Relaxed);
        let mut found = HashMap::new();
        let mut seen = HashSet::new();
        let mut missing = Vec::new();
        let mut stale: HashMap<K, (Entry<V>, Source)> = HashMap::new();
        for key in keys {
            if !seen.insert(key.clone()) {
                continue;
            }
            let entry = inner.l1.get(&key);
            match entry.clone().map(|entry| entry.into_lookup(now, epoch)) {
                Some(Lookup::Fresh(value)) => {
                    inner.metrics.hits_l1.increment(1);
                    inner.stats.fresh_l1();
                    found.insert(key, Cached::new(value, Status::Fresh, Source::L1));
                }
                Some(Lookup::Quiet(..) | Lookup::Revalidate(_) | Lookup::Stale(_)) => {
                    inner.metrics.misses_l1.increment(1);
                    inner.stats.not_fresh_l1();
                    if let Some(entry) = entry {
                        stale.insert(key.clone(), (entry, Source::L1));
                    }
                    missing.push(key);
                }
                Some(Lookup::Miss) | None => {
                    inner.metrics.misses_l1.increment(1);
                    inner.stats.not_fresh_l1();
                    missing.push(key);
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }

        let texts: Vec<String> = missing.iter().map(|key| inner.entry_key(key)).collect();
        let mut versions = vec![Version::default(); missing.len()];
        let mut still = vec![true; missing.len()];
        if let Some(remote) = &inner.remote {
            // One round trip per chunk, each under the tier's timeout: a huge batch neither
            // runs one command past the timeout nor trips the tier's breaker for it.
            let mut fetched = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(CHUNK) {
                match inner.guarded(remote, || remote.tier.fetch(chunk)).await {
                    Ok(part) if part.len() == chunk.len() => fetched.extend(part),
                    _ => break,
                }
            }
            {
                let now = inner.clock.recent();
                for (index, fetched) in fetched.into_iter().enumerate().take(missing.len()) {
                    versions[index] = fetched.version;
                    let Some(entry) = fetched
                        .value
                        .and_then(|bytes| inner.decode(remote, &bytes, epoch))
                    else {
                        inner.metrics.misses_l2.increment(1);
                        continue;
                    };
                    let key = &missing[index];
                    match entry.clone().into_lookup(now, entry.epoch) {
                        Lookup::Fresh(value) => {
                            inner.metrics.hits_l2.increment(1);
                            inner.stats.fresh_l2();
                            if inner.writes.load(Ordering::Relaxed) == writes {
                                inner.l1.insert(key.clone(), entry);
                            }
                            found
                                .insert(key.clone(), Cached::new(value, Status::Fresh, Source::L2));
                            still[index] = false;
                        }
                        Lookup::Quiet(..) | Lookup::Revalidate(_) | Lookup::Stale(_) => {
                            inner.metrics.misses_l2.increment(1);
                            stale.insert(key.clone(), (entry, Source::L2));
                        }
                        Lookup::Miss => inner.metrics.misses_l2.increment(1),
                    }
                }
            }
        }
        let load: Vec<usize> = (0..missing.len()).filter(|&index| still[index]).collect();
        if load.is_empty() {
            return Ok(found);
        }

        let asked: Vec<K> = load.iter().map(|&index| missing[index].clone()).collect();
        let started = inner.clock.now();
        let result = tokio::time::timeout(inner.policy.load_timeout, loader(asked)).await;
        #[allow(clippy::cast_precision_loss)]
        inner
            .metrics
            .load_seconds
            .record(inner.clock.now().saturating_sub(started) as f64 / 1e9);
        let failure = match result {
            Ok(Ok(mut loaded)) => {
                inner.metrics.loads_ok.increment(1);
                let mut fills = Vec::new();
                for index in load {
                    let key = &missing[index];
                    let Some(value) = loaded.remove(key) else {
                        continue;
                    };
                    if let Some(keep) = inner.admit(&value) {
                        let entry = inner.entry(value.clone(), keep, epoch);
                        if let Some(remote) = &inner.remote {
                            if let Ok(bytes) = inner.encode(remote, &entry) {
                                fills.push(Fill {
                                    key: texts[index].clone(),
                                    value: bytes,
                                    ttl: inner.l2_ttl(&entry),
                                    version: std::mem::take(&mut versions[index]),
                                });
                            }
                        }
                        inner.l1.insert(key.clone(), entry);
                    }
                    found.insert(
                        key.clone(),
                        Cached::new(value, Status::Fresh, Source::Loader),
                    );
                }
                if let (Some(remote), false) = (&inner.remote, fills.is_empty()) {
                    for chunk in fills.chunks(CHUNK) {
                        let _ = inner.guarded(remote, || remote.tier.fill(chunk)).await;
                    }
                }
                return Ok(found);
            }
            Ok(Err(error)) => {
                inner.metrics.loads_error.increment(1);
                let reason = reason_of(&error);
                (Error::Load(Arc::new(error)), reason)
            }
            Err(_) => {
                inner.metrics.loads_timeout.increment(1);
                (Error::TimedOut(inner.policy.load_timeout), Reason::Timeout)
            }
        };
        let (error, reason) = failure;
        let now = inner.clock.recent();
        for index in load {
            let key = &missing[index];
            match stale
                .remove(key)
                .filter(|(entry, _)| now < entry.stale_until)
            {
                Some((entry, source)) => {
                    inner.metrics.stale_error.increment(1);
                    inner.stats.stale();
                    let status = Status::Stale(Stale::LoadFailed(reason));
                    found.insert(key.clone(), Cached::new(entry.value, status, source));
                }
                None => return Err(error),
            }
        }
        Ok(found)
    }
}
