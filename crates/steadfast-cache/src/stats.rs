//! Hit statistics kept by the cache itself, readable without a metrics recorder.
//!
//! The counters are striped per thread and cache-padded: an L1 hit is one relaxed add on a
//! cache line that, as long as there are no more busy threads than stripes, no other core
//! writes.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use steadfast_core::stripe::{default_stripes, thread_stripe};

/// How a cache's lookups were answered, since it was built: read with
/// [`TieredCache::stats`](crate::TieredCache::stats).
///
/// A lookup is one [`get_with`](crate::TieredCache::get_with), one
/// [`peek`](crate::TieredCache::peek), or one distinct key of a
/// [`get_many`](crate::TieredCache::get_many). Each is either `fresh` or a miss; a miss may
/// still be answered with a stale value, counted in `stale` as well. Background refreshes
/// are not lookups.
///
/// ```
/// use steadfast_cache::Stats;
///
/// let mut stats = Stats::default();
/// assert_eq!(stats.hit_rate(), None);
/// stats.fresh = 3;
/// stats.misses = 1;
/// stats.stale = 1;
/// assert_eq!(stats.lookups(), 4);
/// assert_eq!(stats.hit_rate(), Some(1.0));
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stats {
    /// Lookups answered fresh, from L1 or L2.
    pub fresh: u64,
    /// Of the `fresh` answers, those that came from L2.
    pub l2: u64,
    /// Stale values served: within stale-while-revalidate, or after a failed load.
    pub stale: u64,
    /// Lookups not answered fresh from any tier: loaded, answered stale, or failed.
    pub misses: u64,
}

impl Stats {
    /// Every lookup: `fresh + misses`.
    #[must_use]
    pub const fn lookups(&self) -> u64 {
        self.fresh.saturating_add(self.misses)
    }

    /// The share of lookups answered without waiting for the loader, fresh or stale:
    /// `(fresh + stale) / lookups`, or `None` before the first lookup.
    #[must_use]
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = self.lookups();
        if lookups == 0 {
            return None;
        }
        let hits = self.fresh.saturating_add(self.stale);
        // A ratio for display: the precision lost past 2^53 lookups does not show. Clamped
        // because counters read one after another may be caught between two bumps.
        #[allow(clippy::cast_precision_loss)]
        Some((hits as f64 / lookups as f64).min(1.0))
    }
}

const FRESH_L1: usize = 0;
const FRESH_L2: usize = 1;
const STALE: usize = 2;
/// L1 lookups that found nothing fresh: a later fresh L2 answer to the same lookup moves it
/// from the misses to the hits, so `misses` is this less `FRESH_L2`.
const NOT_FRESH_L1: usize = 3;

/// The cache's counters: one stripe per thread (as far as there are stripes), each on its own
/// cache line.
pub(crate) struct Counters {
    stripes: Box<[CachePadded<[AtomicU64; 4]>]>,
    mask: usize,
}

impl Counters {
    pub(crate) fn new() -> Self {
        let stripes = default_stripes();
        Self {
            stripes: (0..stripes)
                .map(|_| CachePadded::new(Default::default()))
                .collect(),
            mask: stripes - 1,
        }
    }

    #[inline]
    fn bump(&self, counter: usize) {
        self.stripes[thread_stripe() & self.mask][counter].fetch_add(1, Ordering::Relaxed);
    }

    /// A fresh answer from L1.
    #[inline]
    pub(crate) fn fresh_l1(&self) {
        self.bump(FRESH_L1);
    }

    /// A fresh answer from L2 to a lookup that L1 could not answer fresh.
    pub(crate) fn fresh_l2(&self) {
        self.bump(FRESH_L2);
    }

    /// A stale value served.
    pub(crate) fn stale(&self) {
        self.bump(STALE);
    }

    /// An L1 lookup without a fresh entry.
    pub(crate) fn not_fresh_l1(&self) {
        self.bump(NOT_FRESH_L1);
    }

    fn sum(&self, counter: usize) -> u64 {
        self.stripes.iter().fold(0, |sum, stripe| {
            sum.wrapping_add(stripe[counter].load(Ordering::Relaxed))
        })
    }

    pub(crate) fn read(&self) -> Stats {
        let fresh_l2 = self.sum(FRESH_L2);
        Stats {
            fresh: self.sum(FRESH_L1).wrapping_add(fresh_l2),
            l2: fresh_l2,
            stale: self.sum(STALE),
            // Saturating: a reading may see an L2 answer before the L1 miss that led to it.
            misses: self.sum(NOT_FRESH_L1).saturating_sub(fresh_l2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_are_a_power_of_two_and_summed_across_threads() {
        let counters = Counters::new();
        assert!(counters.stripes.len().is_power_of_two());
        assert!(counters.stripes.len() <= 32);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        counters.fresh_l1();
                        counters.not_fresh_l1();
                    }
                    counters.fresh_l2();
                    counters.stale();
                });
            }
        });
        let stats = counters.read();
        assert_eq!(
            stats,
            Stats {
                fresh: 4004,
                l2: 4,
                stale: 4,
                misses: 3996,
            }
        );
        assert_eq!(stats.lookups(), 8000);
    }

    #[test]
    fn a_stripe_is_its_own_cache_line() {
        assert!(std::mem::align_of::<CachePadded<[AtomicU64; 4]>>() >= 64);
    }
}
