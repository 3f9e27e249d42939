//! The registry: a bounded, sharded map from keys to breakers, with an eviction that keeps
//! breakers that have state ahead of clean closed ones.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use foldhash::fast::RandomState;
use indexmap::map::raw_entry_v1::{RawEntryApiV1, RawEntryMut};
use indexmap::IndexMap;
use metrics::Gauge;
use parking_lot::RwLock;
use steadfast_core::metrics::{BREAKER_KEYS, LABEL_BREAKER};
use steadfast_core::Clock;

use crate::breaker::Builder;
use crate::{CircuitBreaker, ConfigError, Snapshot};

/// A bounded map from keys to breakers, all built from one template.
///
/// Cheap to clone; clones share the map. Every key's breaker carries the template's name (in
/// events, errors, snapshots and metrics: series must not multiply with keys that callers
/// choose); [`BreakerRegistry::snapshots`] pairs each snapshot with its key.
///
/// The registry never holds more than `max_keys` breakers. When it must make room it evicts a
/// clean closed breaker before one with state (see [the module docs](crate::keyed#eviction)),
/// and a key unused for `idle` is forgotten. A breaker that a call still holds lives on until
/// the call ends, evicted or not.
pub struct BreakerRegistry<K> {
    inner: Arc<RegistryInner<K>>,
}

struct RegistryInner<K> {
    shards: Box<[CachePadded<RwLock<Shard<K>>>]>,
    /// `shards.len() - 1`; the shard count is a power of two.
    shard_mask: usize,
    /// Seeded per registry: keys come from callers, who must not be able to aim at one shard
    /// or one chain of a map.
    hasher: RandomState,
    template: Builder,
    clock: Clock,
    /// `idle` in ticks, rounded up.
    idle_ticks: u32,
    max_keys: u64,
    /// The keys gauge: +1 per breaker made for a new key, -1 per breaker forgotten.
    keys: Gauge,
}

struct Shard<K> {
    map: IndexMap<K, Slot, RandomState>,
    /// How many breakers this shard may hold: the shard capacities add up to `max_keys`.
    capacity: usize,
}

struct Slot {
    breaker: CircuitBreaker,
    /// The tick of the last lookup; written only when it changes, so that the lookups of a hot
    /// key stay reads of its cache line.
    last_used: AtomicU32,
}

impl Slot {
    fn new(breaker: CircuitBreaker, now: u32) -> Self {
        Self {
            breaker,
            last_used: AtomicU32::new(now),
        }
    }

    #[inline]
    fn last_used(&self) -> u32 {
        self.last_used.load(Ordering::Relaxed)
    }

    #[inline]
    fn touch(&self, now: u32) {
        if self.last_used() < now {
            self.last_used.fetch_max(now, Ordering::Relaxed);
        }
    }
}

/// Time in the registry is counted in ticks of 2^30 ns (about 1.07 s): `idle` needs no finer
/// grain, and a tick fits in 32 bits for 146 years of uptime.
const TICK_SHIFT: u32 = 30;

/// A breaker has no use for idle times over 100 years; a tick count of 100 years fits in a u32.
const MAX_IDLE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Entries sampled per eviction round.
const SAMPLES: usize = 8;
/// Rounds of sampling before eviction settles for a breaker with state.
const ROUNDS: usize = 4;
/// Shards of at most this many entries are scanned whole instead of sampled.
const SCAN_ALL: usize = SAMPLES * ROUNDS;
/// Shards per unit of parallelism.
const SHARDS_PER_THREAD: usize = 4;

impl<K> Clone for BreakerRegistry<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K> BreakerRegistry<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    /// A registry of at most `max_keys` breakers built from `template`; a key unused for
    /// `idle` is forgotten (its breaker replaced by a fresh one on its next use, and removed
    /// when a miss samples it or [`BreakerRegistry::sweep`] runs).
    ///
    /// Times come from the template's clock: [`Builder::clock`] sets a mock one for tests.
    ///
    /// # Errors
    ///
    /// The template's [`ConfigError`], or [`ConfigError::OutOfRange`] for a zero `max_keys`,
    /// or an `idle` that is zero or over 100 years.
    pub fn new(template: Builder, max_keys: u64, idle: Duration) -> Result<Self, ConfigError> {
        template.validate()?;
        if max_keys == 0 {
            return Err(ConfigError::OutOfRange {
                field: "max_keys",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        if idle.is_zero() || idle > MAX_IDLE {
            return Err(ConfigError::OutOfRange {
                field: "idle",
                value: format!("{idle:?}"),
                expected: "a duration above zero and at most 100 years",
            });
        }
        // Asked once per registry: it reads cgroup files, tens of microseconds.
        let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self::with_shards(
            template,
            max_keys,
            idle,
            shard_count(parallelism, max_keys),
        ))
    }

    /// A registry of `shard_count` shards (a power of two, at most `max_keys`) from checked
    /// arguments.
    fn with_shards(template: Builder, max_keys: u64, idle: Duration, shard_count: usize) -> Self {
        debug_assert!(shard_count.is_power_of_two() && shard_count as u64 <= max_keys);
        let idle_ticks = u32::try_from(idle.as_nanos().div_ceil(1 << TICK_SHIFT))
            .expect("100 years of ticks fit in a u32");
        let hasher = RandomState::default();
        let shards = (0..shard_count)
            .map(|index| {
                CachePadded::new(RwLock::new(Shard {
                    map: IndexMap::with_hasher(hasher.clone()),
                    capacity: shard_capacity(max_keys, shard_count, index),
                }))
            })
            .collect();

        let keys = metrics::gauge!(BREAKER_KEYS, LABEL_BREAKER => template.name().to_owned());
        let clock = template.configured_clock();
        Self {
            inner: Arc::new(RegistryInner {
                shards,
                shard_mask: shard_count - 1,
                hasher,
                template,
                clock,
                idle_ticks,
                max_keys,
                keys,
            }),
        }
    }

    /// The breaker for `key`, made on first use, and made afresh if `key` was idle for longer
    /// than `idle`.
    ///
    /// A hit takes a shard's read lock, clones the breaker's `Arc` and, at most once per tick,
    /// stores the time of use. A miss builds a breaker, takes the shard's write lock and, if the
    /// shard is full, evicts one entry.
    pub fn get(&self, key: K) -> CircuitBreaker {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(&key);
        let shard = inner.shard(hash);
        let now = inner.now();
        {
            let shard = shard.read();
            if let Some((_, slot)) = shard.map.raw_entry_v1().from_key_hashed_nocheck(hash, &key) {
                if !inner.is_idle(slot.last_used(), now) {
                    slot.touch(now);
                    return slot.breaker.clone();
                }
            }
        }
        self.get_slow(shard, hash, key, now)
    }

    #[cold]
    fn get_slow(&self, shard: &RwLock<Shard<K>>, hash: u64, key: K, now: u32) -> CircuitBreaker {
        let inner = &*self.inner;
        // Built before the lock is taken, to keep the write lock short; another thread may
        // have made the key's breaker meanwhile, and then this one is dropped unused.
        let fresh = inner.template.for_key().build_validated();
        // What leaves the map is dropped after the lock is released.
        let mut dropped: Vec<Slot> = Vec::new();
        let breaker = {
            let mut shard = shard.write();
            let shard = &mut *shard;
            if let RawEntryMut::Occupied(mut entry) = shard
                .map
                .raw_entry_mut_v1()
                .from_key_hashed_nocheck(hash, &key)
            {
                let slot = entry.get_mut();
                if !inner.is_idle(slot.last_used(), now) {
                    slot.touch(now);
                    return slot.breaker.clone();
                }
                // Idle for too long: forgotten, and made afresh in place.
                dropped.push(std::mem::replace(slot, Slot::new(fresh.clone(), now)));
                fresh
            } else {
                let before = shard.map.len();
                inner.prune(&mut shard.map, now, &mut dropped);
                if shard.map.len() >= shard.capacity {
                    if let Some(victim) = inner.evict(&mut shard.map, now) {
                        dropped.push(victim);
                    }
                }
                match shard
                    .map
                    .raw_entry_mut_v1()
                    .from_key_hashed_nocheck(hash, &key)
                {
                    RawEntryMut::Vacant(entry) => {
                        entry.insert_hashed_nocheck(hash, key, Slot::new(fresh.clone(), now));
                    }
                    // Not found under this same lock a moment ago.
                    RawEntryMut::Occupied(_) => unreachable!("the key was absent"),
                }
                inner.count(before, shard.map.len());
                fresh
            }
        };
        drop(dropped);
        breaker
    }

    /// The breaker for `key`, if the registry holds one that is not idle. Peeking does not
    /// count as a use: it keeps no key alive.
    pub fn peek(&self, key: &K) -> Option<CircuitBreaker> {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(key);
        let now = inner.now();
        let shard = inner.shard(hash).read();
        shard
            .map
            .raw_entry_v1()
            .from_key_hashed_nocheck(hash, key)
            .filter(|(_, slot)| !inner.is_idle(slot.last_used(), now))
            .map(|(_, slot)| slot.breaker.clone())
    }

    /// Forgets the breaker for `key`; its next use makes a fresh, closed one. Calls in flight
    /// keep the old breaker until they end, and record into it.
    pub fn remove(&self, key: &K) {
        let inner = &*self.inner;
        let hash = inner.hasher.hash_one(key);
        let removed = {
            let mut shard = inner.shard(hash).write();
            let removed = match shard
                .map
                .raw_entry_mut_v1()
                .from_key_hashed_nocheck(hash, key)
            {
                RawEntryMut::Occupied(entry) => Some(entry.swap_remove()),
                RawEntryMut::Vacant(_) => None,
            };
            if removed.is_some() {
                inner.count(1, 0);
            }
            removed
        };
        drop(removed);
    }

    /// Removes every breaker unused for longer than `idle`.
    ///
    /// Not needed for the bound: a full shard evicts on its own, and every miss removes the
    /// idle entries it samples. A registry whose traffic stops, though, keeps its breakers
    /// until the keys come back; run `sweep` from a timer (every `idle` or so) to give that
    /// memory back. Each shard is read-locked to look, and write-locked only if it holds an
    /// idle entry.
    pub fn sweep(&self) {
        let inner = &*self.inner;
        let now = inner.now();
        for shard in inner.shards.iter() {
            let any_idle = shard
                .read()
                .map
                .values()
                .any(|slot| inner.is_idle(slot.last_used(), now));
            if !any_idle {
                continue;
            }
            let mut dropped = Vec::new();
            {
                let mut shard = shard.write();
                let before = shard.map.len();
                let mut index = shard.map.len();
                while index > 0 {
                    index -= 1;
                    if inner.is_idle(shard.map[index].last_used(), now) {
                        // Swaps in the last entry, which has been looked at already.
                        if let Some((_, slot)) = shard.map.swap_remove_index(index) {
                            dropped.push(slot);
                        }
                    }
                }
                inner.count(before, shard.map.len());
                // Give back the memory of a map that has shrunk a lot.
                if shard.map.capacity() > 4 * shard.map.len().max(8) {
                    shard.map.shrink_to_fit();
                }
            }
            drop(dropped);
        }
    }

    /// How many breakers the registry holds, idle ones not yet removed included. Exact: the
    /// shards are counted one after another, so with concurrent misses the sum may mix
    /// moments, but it never exceeds `max_keys`.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.read().map.len() as u64)
            .sum()
    }

    /// Whether the registry holds no breaker.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.inner
            .shards
            .iter()
            .all(|shard| shard.read().map.is_empty())
    }

    /// A snapshot of every breaker that is not idle, with its key, for status pages.
    ///
    /// Each shard is read-locked while its keys and breakers are cloned; the snapshots are
    /// taken after the lock is released.
    #[must_use]
    pub fn snapshots(&self) -> Vec<(K, Snapshot)> {
        let inner = &*self.inner;
        let now = inner.now();
        let mut out = Vec::new();
        let mut breakers = Vec::new();
        for shard in inner.shards.iter() {
            breakers.clear();
            breakers.extend(
                shard
                    .read()
                    .map
                    .iter()
                    .filter(|(_, slot)| !inner.is_idle(slot.last_used(), now))
                    .map(|(key, slot)| (key.clone(), slot.breaker.clone())),
            );
            out.extend(
                breakers
                    .drain(..)
                    .map(|(key, breaker)| (key, breaker.snapshot())),
            );
        }
        out
    }
}

impl<K> RegistryInner<K> {
    #[inline]
    fn shard(&self, hash: u64) -> &RwLock<Shard<K>> {
        // The middle bits: the maps use the low bits for a position and the top seven as a
        // tag, and keys of one shard must not all share them.
        &self.shards[(hash >> 32) as usize & self.shard_mask]
    }

    /// The current tick.
    #[inline]
    fn now(&self) -> u32 {
        (self.clock.recent() >> TICK_SHIFT) as u32
    }

    /// Whether an entry last used at `last_used` is idle at `now`: more than `idle` has
    /// passed, however the two fell within their ticks.
    #[inline]
    fn is_idle(&self, last_used: u32, now: u32) -> bool {
        now.saturating_sub(last_used) > self.idle_ticks
    }

    /// Moves the keys gauge by a shard's change in size.
    fn count(&self, before: usize, after: usize) {
        if after > before {
            self.keys.increment((after - before) as f64);
        } else if before > after {
            self.keys.decrement((before - after) as f64);
        }
    }

    /// Removes the idle entries among a few sampled ones, so that a registry whose keys have
    /// moved on shrinks as new keys come.
    fn prune<S>(&self, map: &mut IndexMap<K, Slot, S>, now: u32, dropped: &mut Vec<Slot>) {
        for _ in 0..SAMPLES {
            if map.is_empty() {
                return;
            }
            let index = fastrand::usize(..map.len());
            if self.is_idle(map[index].last_used(), now) {
                if let Some((_, slot)) = map.swap_remove_index(index) {
                    dropped.push(slot);
                }
            }
        }
    }

    /// Removes the entry least worth keeping among sampled ones: an idle one if seen, else the
    /// lowest `(retention, last_used)`. Samples again while every entry seen has state.
    fn evict<S>(&self, map: &mut IndexMap<K, Slot, S>, now: u32) -> Option<Slot> {
        let len = map.len();
        let mut best: Option<(usize, (u8, u32))> = None;
        // Scores one entry; true if it is idle, and so the victim at once.
        let consider = |best: &mut Option<(usize, (u8, u32))>, index: usize| {
            let slot: &Slot = &map[index];
            let last_used = slot.last_used();
            if self.is_idle(last_used, now) {
                return true;
            }
            let score = (slot.breaker.retention(), last_used);
            if best.is_none_or(|(_, best)| score < best) {
                *best = Some((index, score));
            }
            false
        };
        let mut idle = None;
        if len <= SCAN_ALL {
            // A small shard is cheaper to scan than to sample, and the scan finds the best.
            idle = (0..len).find(|&index| consider(&mut best, index));
        } else {
            'rounds: for _ in 0..ROUNDS {
                for _ in 0..SAMPLES {
                    let index = fastrand::usize(..len);
                    if consider(&mut best, index) {
                        idle = Some(index);
                        break 'rounds;
                    }
                }
                if best.is_some_and(|(_, (retention, _))| retention == 0) {
                    break;
                }
            }
        }
        let victim = idle.or(best.map(|(index, _)| index))?;
        map.swap_remove_index(victim).map(|(_, slot)| slot)
    }
}

impl<K> Drop for RegistryInner<K> {
    fn drop(&mut self) {
        let held: usize = self.shards.iter().map(|shard| shard.read().map.len()).sum();
        self.count(held, 0);
    }
}

/// The number of shards: about `SHARDS_PER_THREAD` per thread the machine runs at once, as a
/// power of two, and never more than `max_keys` (every shard holds at least one key).
fn shard_count(parallelism: usize, max_keys: u64) -> usize {
    let wanted = parallelism
        .saturating_mul(SHARDS_PER_THREAD)
        .clamp(1, 1 << 16)
        .next_power_of_two();
    // The largest power of two at most `max_keys`.
    let most = 1u64 << (63 - max_keys.leading_zeros());
    wanted.min(usize::try_from(most).unwrap_or(usize::MAX))
}

/// The capacity of shard `index` of `shards`: `max_keys` shared out, the first
/// `max_keys % shards` shards taking one more, so that the capacities add up to `max_keys`.
fn shard_capacity(max_keys: u64, shards: usize, index: usize) -> usize {
    let shards = shards as u64;
    let extra = u64::from((index as u64) < max_keys % shards);
    usize::try_from(max_keys / shards + extra).unwrap_or(usize::MAX)
}

impl<K> fmt::Debug for BreakerRegistry<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let len: usize = inner
            .shards
            .iter()
            .map(|shard| shard.read().map.len())
            .sum();
        f.debug_struct("BreakerRegistry")
            .field("template", &inner.template.name())
            .field("keys", &len)
            .field("max_keys", &inner.max_keys)
            .field("shards", &inner.shards.len())
            .field(
                "idle",
                &Duration::from_nanos(u64::from(inner.idle_ticks) << TICK_SHIFT),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_counts_are_powers_of_two_with_room_in_each() {
        assert_eq!(shard_count(2, 1000), 8);
        assert_eq!(shard_count(1, 1), 1);
        assert_eq!(shard_count(64, 3), 2);
        assert_eq!(shard_count(64, 1000), 256);
        assert_eq!(shard_count(3, u64::MAX), 16);
        assert_eq!(shard_count(usize::MAX, u64::MAX), 1 << 16);
        for max_keys in [1, 2, 3, 7, 8, 999, 1000, 1001, 123_457] {
            for parallelism in [1, 2, 3, 16, 100] {
                let shards = shard_count(parallelism, max_keys);
                assert!(shards.is_power_of_two());
                let capacities: Vec<usize> = (0..shards)
                    .map(|index| shard_capacity(max_keys, shards, index))
                    .collect();
                assert!(capacities.iter().all(|&capacity| capacity >= 1));
                assert_eq!(capacities.iter().sum::<usize>() as u64, max_keys);
            }
        }
    }

    #[test]
    fn every_shard_fills_to_its_capacity_and_no_further() {
        let registry = BreakerRegistry::<u32>::new(
            CircuitBreaker::builder("tenant"),
            1001,
            Duration::from_secs(60),
        )
        .unwrap();
        for key in 0..50_000 {
            let _ = registry.get(key);
        }
        assert_eq!(registry.len(), 1001);
        for shard in registry.inner.shards.iter() {
            let shard = shard.read();
            assert_eq!(shard.map.len(), shard.capacity);
        }
    }

    #[test]
    fn a_full_shard_evicts_the_least_used_clean_breaker_first() {
        let (clock, time) = Clock::mock();
        let template = CircuitBreaker::builder("tenant")
            .consecutive_failures(3)
            .clock(clock);
        // One shard of four: small enough to be scanned whole, so the choice is exact.
        let registry = BreakerRegistry::<u32>::with_shards(template, 4, Duration::from_secs(60), 1);
        let step = || time.advance(Duration::from_secs(2));
        // Key 0 fails once: state worth keeping, though it is the least recently used.
        registry.get(0).try_acquire().unwrap().failure();
        for key in 1..4 {
            step();
            registry.get(key).try_acquire().unwrap().success();
        }
        step();
        let _ = registry.get(4);
        assert!(registry.peek(&0).is_some(), "the failing key was evicted");
        assert!(registry.peek(&1).is_none(), "the oldest clean key stayed");
        // Open is worth more than failures in the window: with only breakers with state
        // left, the one with less state goes first, then the older one.
        for _ in 0..2 {
            registry.get(0).try_acquire().unwrap().failure();
        }
        assert_eq!(registry.get(0).state(), crate::State::Open);
        for key in [2, 3, 4] {
            step();
            registry.get(key).try_acquire().unwrap().failure();
        }
        step();
        let _ = registry.get(5);
        assert!(registry.peek(&0).is_some(), "the open breaker was evicted");
        assert!(registry.peek(&2).is_none(), "the oldest failing key stayed");
        assert_eq!(registry.len(), 4);
    }

    #[test]
    fn idle_entries_go_first_whatever_their_state() {
        let (clock, time) = Clock::mock();
        let template = CircuitBreaker::builder("tenant")
            .consecutive_failures(1)
            .clock(clock);
        let registry = BreakerRegistry::<u32>::with_shards(template, 2, Duration::from_secs(10), 1);
        registry.get(0).try_acquire().unwrap().failure();
        assert_eq!(registry.get(0).state(), crate::State::Open);
        time.advance(Duration::from_secs(20));
        let _ = registry.get(1);
        let _ = registry.get(2);
        assert!(registry.peek(&0).is_none());
        assert_eq!(registry.len(), 2);
    }
}
