//! The in-process tier: moka (the default) or quick_cache, behind one small interface.

use std::time::Duration;

use metrics::Counter;

use crate::cache::Entry;
use crate::metrics::Metrics;
use crate::CacheKey;

/// Which in-process store holds L1.
///
/// Both are bounded by entry count, and with either the cache checks every entry's own fresh
/// and stale times on each read, so the choice changes speed and housekeeping, not answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum L1Kind {
    /// moka: TinyLFU admission, LRU eviction, entries dropped at the end of their longest
    /// window by its own housekeeping, evictions counted by cause.
    #[default]
    Moka,
    /// quick_cache: CLOCK-PRO eviction, a hit several times cheaper than moka's. Dead entries
    /// are not swept: they are read as misses and leave when the capacity needs their room.
    /// Evictions are counted as `size`.
    Quick,
}

pub(crate) enum L1<K, V> {
    Moka(moka::sync::Cache<K, Entry<V>>),
    Quick(
        quick_cache::sync::Cache<
            K,
            Entry<V>,
            quick_cache::UnitWeighter,
            quick_cache::DefaultHashBuilder,
            Evictions,
        >,
    ),
}

/// Counts quick_cache's evictions.
#[derive(Clone)]
pub(crate) struct Evictions(Counter);

impl<K, V> quick_cache::Lifecycle<K, V> for Evictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: K, _value: V) {
        self.0.increment(1);
    }
}

impl<K, V> L1<K, V>
where
    K: CacheKey,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(kind: L1Kind, capacity: u64, lifetime: Duration, metrics: &Metrics) -> Self {
        match kind {
            L1Kind::Moka => {
                let size = metrics.evicted_size.clone();
                let expired = metrics.evicted_expired.clone();
                L1::Moka(
                    moka::sync::Cache::builder()
                        .max_capacity(capacity)
                        .time_to_live(lifetime.max(Duration::from_millis(1)))
                        .eviction_listener(move |_key, _value, cause| match cause {
                            moka::notification::RemovalCause::Size => size.increment(1),
                            moka::notification::RemovalCause::Expired => expired.increment(1),
                            _ => {}
                        })
                        .build(),
                )
            }
            L1Kind::Quick => {
                let items = usize::try_from(capacity).unwrap_or(usize::MAX);
                L1::Quick(quick_cache::sync::Cache::with(
                    items,
                    capacity,
                    quick_cache::UnitWeighter,
                    quick_cache::DefaultHashBuilder::default(),
                    Evictions(metrics.evicted_size.clone()),
                ))
            }
        }
    }

    #[inline]
    pub(crate) fn get(&self, key: &K) -> Option<Entry<V>> {
        match self {
            L1::Moka(cache) => cache.get(key),
            L1::Quick(cache) => cache.get(key),
        }
    }

    pub(crate) fn insert(&self, key: K, entry: Entry<V>) {
        match self {
            L1::Moka(cache) => cache.insert(key, entry),
            L1::Quick(cache) => cache.insert(key, entry),
        }
    }

    pub(crate) fn invalidate(&self, key: &K) {
        match self {
            L1::Moka(cache) => cache.invalidate(key),
            L1::Quick(cache) => {
                cache.remove(key);
            }
        }
    }

    pub(crate) fn entry_count(&self) -> u64 {
        match self {
            L1::Moka(cache) => cache.entry_count(),
            L1::Quick(cache) => cache.len() as u64,
        }
    }
}
