//! Sliding windows of call outcomes.
//!
//! The time window is a ring of epoch-tagged buckets (the LeapArray of Sentinel, the sliding
//! time window of resilience4j), striped so that threads record into different cache lines. A
//! call records with one relaxed add into its thread's stripe; a bucket whose epoch has passed
//! is reset by the first writer that sees it. Totals are summed over stripes and live buckets
//! when a rule needs them, which is when a failure or a slow call is recorded, so their cost
//! depends on the window's shape, never on how many calls it holds.
//!
//! The count window keeps the last N outcomes in a ring with running totals. "The last N" is a
//! global order, so every call writes the ring's shared head: count windows serialize calls on
//! one cache line and do not scale across cores the way time windows do.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};

use crossbeam_utils::CachePadded;
use strength_reduce::StrengthReducedU64;

/// Outcome totals over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

/// A sliding window of outcomes, by time or by count.
// One per breaker, inside its Arc: boxing the larger variant would only add a pointer chase to
// every record.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Window {
    Time(TimeWindow),
    Count(CountWindow),
}

impl Window {
    #[inline]
    pub(crate) fn record(&self, now_ns: u64, failure: bool, slow: bool) {
        match self {
            Window::Time(window) => window.record(now_ns, failure, slow),
            Window::Count(window) => window.record(failure, slow),
        }
    }

    pub(crate) fn totals(&self, now_ns: u64) -> Totals {
        match self {
            Window::Time(window) => window.totals(now_ns),
            Window::Count(window) => window.totals(),
        }
    }

    pub(crate) fn reset(&self) {
        match self {
            Window::Time(window) => window.reset(),
            Window::Count(window) => window.reset(),
        }
    }
}

pub(crate) use steadfast_core::stripe::{default_stripes, thread_stripe};

/// Epochs are stored plus one, so that zero means "never written".
const NEVER: u64 = 0;
/// A bucket being reset by one writer; others wait the few instructions it takes.
const RESETTING: u64 = u64::MAX;
const BUCKETS_PER_LINE: usize = 4;

#[derive(Debug, Default)]
struct Bucket {
    epoch: AtomicU64,
    calls: AtomicU64,
    /// Failures and slow calls have words of their own, touched only when they happen: a
    /// success is one add, and no count can overflow into another.
    failures: AtomicU64,
    slow: AtomicU64,
}

/// A time-based sliding window of `buckets` buckets of `bucket_ns` each, in `stripes` stripes.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    /// Stripe `s` owns lines `s * lines_per_stripe ..`; stripes never share a cache line.
    lines: Box<[CachePadded<[Bucket; BUCKETS_PER_LINE]>]>,
    lines_per_stripe: usize,
    stripe_mask: usize,
    buckets: u64,
    width_ns: u64,
    bucket_ns: StrengthReducedU64,
    bucket_count: StrengthReducedU64,
    /// The newest bucket seen, as `epoch << INDEX_BITS | index`: most calls fall in it and
    /// find their bucket with a multiply and a compare instead of two divisions.
    current: AtomicU64,
}

/// Bits of the bucket index in `TimeWindow::current`; config allows at most 1000 buckets.
const INDEX_BITS: u32 = 10;

impl TimeWindow {
    /// `stripes` must be a power of two; `buckets` and `bucket_ns` non-zero.
    pub(crate) fn new(bucket_ns: u64, buckets: u32, stripes: usize) -> Self {
        debug_assert!(stripes.is_power_of_two() && buckets > 0 && bucket_ns > 0);
        let lines_per_stripe = (buckets as usize).div_ceil(BUCKETS_PER_LINE);
        let lines = (0..lines_per_stripe * stripes)
            .map(|_| CachePadded::new(Default::default()))
            .collect();
        Self {
            lines,
            lines_per_stripe,
            stripe_mask: stripes - 1,
            buckets: u64::from(buckets),
            width_ns: bucket_ns,
            bucket_ns: StrengthReducedU64::new(bucket_ns),
            bucket_count: StrengthReducedU64::new(u64::from(buckets)),
            current: AtomicU64::new(NEVER),
        }
    }

    #[inline]
    fn bucket(&self, stripe: usize, index: usize) -> &Bucket {
        let line = stripe * self.lines_per_stripe + index / BUCKETS_PER_LINE;
        &self.lines[line][index % BUCKETS_PER_LINE]
    }

    #[inline]
    fn epoch(&self, now_ns: u64) -> u64 {
        now_ns / self.bucket_ns + 1
    }

    /// The epoch and bucket index of `now_ns`.
    #[inline]
    fn locate(&self, now_ns: u64) -> (u64, usize) {
        let current = self.current.load(Ordering::Relaxed);
        let epoch = current >> INDEX_BITS;
        // Epochs are stored plus one, so epoch `e` covers [(e - 1) * width, e * width).
        let end = epoch.wrapping_mul(self.width_ns);
        if end.wrapping_sub(now_ns).wrapping_sub(1) < self.width_ns {
            return (epoch, (current & ((1 << INDEX_BITS) - 1)) as usize);
        }
        self.locate_slow(now_ns)
    }

    #[cold]
    fn locate_slow(&self, now_ns: u64) -> (u64, usize) {
        let epoch = self.epoch(now_ns);
        let index = epoch % self.bucket_count;
        // The newest epoch wins, so a thread that read the time long ago cannot move it back.
        self.current
            .fetch_max((epoch << INDEX_BITS) | index, Ordering::Relaxed);
        (epoch, index as usize)
    }

    #[inline]
    pub(crate) fn record(&self, now_ns: u64, failure: bool, slow: bool) {
        let (epoch, index) = self.locate(now_ns);
        let bucket = self.bucket(thread_stripe() & self.stripe_mask, index);
        if bucket.epoch.load(Ordering::Acquire) != epoch && !Self::advance(bucket, epoch) {
            return;
        }
        bucket.calls.fetch_add(1, Ordering::Relaxed);
        if failure {
            bucket.failures.fetch_add(1, Ordering::Relaxed);
        }
        if slow {
            bucket.slow.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Brings `bucket` to `epoch`; false if the bucket already holds a later epoch (this call
    /// read the time long ago, so it no longer belongs in the window).
    #[cold]
    fn advance(bucket: &Bucket, epoch: u64) -> bool {
        let mut spins = 0u32;
        loop {
            let current = bucket.epoch.load(Ordering::Acquire);
            if current == epoch {
                return true;
            }
            if current == RESETTING {
                spins += 1;
                if spins % 64 == 0 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            if current > epoch {
                return false;
            }
            if bucket
                .epoch
                .compare_exchange(current, RESETTING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                bucket.calls.store(0, Ordering::Relaxed);
                bucket.failures.store(0, Ordering::Relaxed);
                bucket.slow.store(0, Ordering::Relaxed);
                bucket.epoch.store(epoch, Ordering::Release);
                return true;
            }
        }
    }

    pub(crate) fn totals(&self, now_ns: u64) -> Totals {
        let newest = self.epoch(now_ns);
        let oldest = newest.saturating_sub(self.buckets - 1).max(1);
        let mut totals = Totals::default();
        for line in self.lines.iter() {
            for bucket in line.iter() {
                let epoch = bucket.epoch.load(Ordering::Acquire);
                if epoch < oldest || epoch > newest {
                    continue;
                }
                totals.calls += bucket.calls.load(Ordering::Relaxed);
                totals.failures += bucket.failures.load(Ordering::Relaxed);
                totals.slow += bucket.slow.load(Ordering::Relaxed);
            }
        }
        totals
    }

    pub(crate) fn reset(&self) {
        for line in self.lines.iter() {
            for bucket in line.iter() {
                bucket.epoch.store(NEVER, Ordering::Release);
                bucket.calls.store(0, Ordering::Relaxed);
                bucket.failures.store(0, Ordering::Relaxed);
                bucket.slow.store(0, Ordering::Relaxed);
            }
        }
    }
}

const EMPTY: u8 = 0;
const RECORDED: u8 = 1;
const FAILED: u8 = 2;
const SLOW: u8 = 4;

#[derive(Debug, Default)]
struct Running {
    calls: AtomicI64,
    failures: AtomicI64,
    slow: AtomicI64,
}

/// A count-based sliding window: the last `size` outcomes.
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    size: StrengthReducedU64,
    head: CachePadded<AtomicU64>,
    running: CachePadded<Running>,
}

impl CountWindow {
    pub(crate) fn new(size: u32) -> Self {
        debug_assert!(size > 0);
        Self {
            slots: (0..size).map(|_| AtomicU8::new(EMPTY)).collect(),
            size: StrengthReducedU64::new(u64::from(size)),
            head: CachePadded::new(AtomicU64::new(0)),
            running: CachePadded::new(Running::default()),
        }
    }

    #[inline]
    pub(crate) fn record(&self, failure: bool, slow: bool) {
        let index = (self.head.fetch_add(1, Ordering::Relaxed) % self.size) as usize;
        let code = RECORDED | if failure { FAILED } else { 0 } | if slow { SLOW } else { 0 };
        let old = self.slots[index].swap(code, Ordering::AcqRel);
        if old == EMPTY {
            self.running.calls.fetch_add(1, Ordering::Relaxed);
        }
        let failed = i64::from(code & FAILED != 0) - i64::from(old & FAILED != 0);
        if failed != 0 {
            self.running.failures.fetch_add(failed, Ordering::Relaxed);
        }
        let slowed = i64::from(code & SLOW != 0) - i64::from(old & SLOW != 0);
        if slowed != 0 {
            self.running.slow.fetch_add(slowed, Ordering::Relaxed);
        }
    }

    pub(crate) fn totals(&self) -> Totals {
        // Running totals may lag one another by a write in flight; clamp instead of wrapping.
        let read = |value: &AtomicI64| value.load(Ordering::Relaxed).max(0) as u64;
        Totals {
            calls: read(&self.running.calls),
            failures: read(&self.running.failures),
            slow: read(&self.running.slow),
        }
    }

    /// Empties the ring slot by slot, taking each slot's own contribution off the totals: a
    /// record racing with the reset then leaves slots and totals in step (zeroing the totals
    /// wholesale would not, and the error would never heal).
    pub(crate) fn reset(&self) {
        for slot in self.slots.iter() {
            let old = slot.swap(EMPTY, Ordering::AcqRel);
            if old == EMPTY {
                continue;
            }
            self.running.calls.fetch_sub(1, Ordering::Relaxed);
            if old & FAILED != 0 {
                self.running.failures.fetch_sub(1, Ordering::Relaxed);
            }
            if old & SLOW != 0 {
                self.running.slow.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn time_window_forgets_old_buckets() {
        let window = TimeWindow::new(100 * MS, 10, 4);
        window.record(0, true, false);
        window.record(50 * MS, false, true);
        assert_eq!(
            window.totals(60 * MS),
            Totals {
                calls: 2,
                failures: 1,
                slow: 1
            }
        );
        // Still inside one second.
        assert_eq!(window.totals(999 * MS).calls, 2);
        // The first bucket has left the window.
        assert_eq!(window.totals(1000 * MS).calls, 0);
        window.record(1000 * MS, false, false);
        assert_eq!(window.totals(1000 * MS).calls, 1);
        window.reset();
        assert_eq!(window.totals(1000 * MS), Totals::default());
    }

    #[test]
    fn stale_writer_is_dropped() {
        let window = TimeWindow::new(100 * MS, 2, 1);
        window.record(250 * MS, false, false);
        // Same slot, one full window earlier: no longer in the window, not counted.
        window.record(50 * MS, true, false);
        assert_eq!(window.totals(250 * MS).calls, 1);
        assert_eq!(window.totals(250 * MS).failures, 0);
    }

    #[test]
    fn count_window_keeps_the_last_n() {
        let window = CountWindow::new(3);
        window.record(true, false);
        window.record(true, true);
        window.record(false, false);
        assert_eq!(
            window.totals(),
            Totals {
                calls: 3,
                failures: 2,
                slow: 1
            }
        );
        window.record(false, false);
        window.record(false, false);
        assert_eq!(
            window.totals(),
            Totals {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
    }

    #[test]
    fn count_window_reset_under_load_keeps_totals_in_step() {
        let window = std::sync::Arc::new(CountWindow::new(10));
        for _ in 0..50 {
            std::thread::scope(|scope| {
                for _ in 0..3 {
                    let window = window.clone();
                    scope.spawn(move || {
                        for i in 0..2_000 {
                            window.record(i % 3 == 0, i % 5 == 0);
                        }
                    });
                }
                for _ in 0..20 {
                    window.reset();
                }
            });
            // Quiet now: ten more records fill the ring, and the totals must match it.
            for _ in 0..10 {
                window.record(true, false);
            }
            assert_eq!(
                window.totals(),
                Totals {
                    calls: 10,
                    failures: 10,
                    slow: 0
                }
            );
        }
    }

    #[test]
    fn stripes_are_summed_across_threads() {
        let window = std::sync::Arc::new(TimeWindow::new(100 * MS, 10, 8));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let window = window.clone();
                scope.spawn(move || {
                    for i in 0..1000 {
                        window.record(5 * MS, i % 10 == 0, false);
                    }
                });
            }
        });
        assert_eq!(
            window.totals(5 * MS),
            Totals {
                calls: 4000,
                failures: 400,
                slow: 0
            }
        );
    }

    /// A plain model: every event kept in a list, totals by a scan.
    fn model_time_totals(
        events: &[(u64, bool, bool)],
        now: u64,
        bucket: u64,
        buckets: u64,
    ) -> Totals {
        let newest = now / bucket;
        let mut totals = Totals::default();
        for &(at, failure, slow) in events {
            let epoch = at / bucket;
            if epoch + buckets > newest && epoch <= newest {
                totals.calls += 1;
                totals.failures += u64::from(failure);
                totals.slow += u64::from(slow);
            }
        }
        totals
    }

    proptest! {
        #[test]
        fn time_window_matches_model(
            bucket_ms in 1u64..50,
            buckets in 1u32..12,
            steps in proptest::collection::vec((0u64..40, any::<bool>(), any::<bool>()), 1..300),
        ) {
            let bucket = bucket_ms * MS;
            let window = TimeWindow::new(bucket, buckets, 2);
            let mut events = Vec::new();
            let mut now = 0;
            for (advance_ms, failure, slow) in steps {
                now += advance_ms * MS / 4;
                window.record(now, failure, slow);
                events.push((now, failure, slow));
                prop_assert_eq!(
                    window.totals(now),
                    model_time_totals(&events, now, bucket, u64::from(buckets))
                );
            }
            let later = now + bucket * 3;
            prop_assert_eq!(
                window.totals(later),
                model_time_totals(&events, later, bucket, u64::from(buckets))
            );
        }

        #[test]
        fn count_window_matches_model(
            size in 1u32..40,
            steps in proptest::collection::vec((any::<bool>(), any::<bool>()), 1..200),
        ) {
            let window = CountWindow::new(size);
            let mut events = Vec::new();
            for (failure, slow) in steps {
                window.record(failure, slow);
                events.push((failure, slow));
                let last = &events[events.len().saturating_sub(size as usize)..];
                let expected = Totals {
                    calls: last.len() as u64,
                    failures: last.iter().filter(|e| e.0).count() as u64,
                    slow: last.iter().filter(|e| e.1).count() as u64,
                };
                prop_assert_eq!(window.totals(), expected);
            }
        }
    }
}
