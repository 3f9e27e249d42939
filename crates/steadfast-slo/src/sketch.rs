//! A mergeable latency sketch with bounded memory.
//!
//! Latency-percentile SLIs ("p95 under 300 ms") need quantiles over many calls without keeping
//! every call. A [`Sketch`] counts latencies in fixed log-linear buckets (HDR-histogram style):
//! each power of two of nanoseconds is split into 32 equal sub-buckets, so a bucket is never wider
//! than 1/32 of its lower bound and its middle is never further than [`RELATIVE_ERROR`] (1/64,
//! about 1.6 %) from any value in it. Recording is integer arithmetic only (a leading-zero count
//! and a shift), and two sketches merge by adding their counts, so per-minute sketches add up to
//! any window exactly as if every call had been recorded into one.
//!
//! ```
//! use std::time::Duration;
//! use steadfast_slo::sketch::{Sketch, RELATIVE_ERROR};
//!
//! let mut this_minute = Sketch::new();
//! let mut last_minute = Sketch::new();
//! for ms in 1..=90 {
//!     last_minute.record(Duration::from_millis(ms));
//! }
//! for ms in 91..=100 {
//!     this_minute.record(Duration::from_millis(ms));
//! }
//! let mut window = last_minute.clone();
//! window.merge(&this_minute);
//! assert_eq!(window.count(), 100);
//!
//! // The exact p95 of 1..=100 ms is 95 ms; the sketch reads it within its stated error.
//! let p95 = window.quantile(0.95).unwrap();
//! let exact = Duration::from_millis(95);
//! assert!(p95.abs_diff(exact) <= exact.mul_f64(RELATIVE_ERROR));
//! assert!(p95 < Duration::from_millis(300));
//! ```
//!
//! # Error
//!
//! [`Sketch::quantile`] answers with the representative value (the middle) of the bucket that
//! holds the exact nearest-rank value of the recorded data, so:
//!
//! - from 1 µs up to [`MAX_NANOS`] (2^42 ns, about 73 minutes) the answer is within
//!   [`RELATIVE_ERROR`] of the exact value;
//! - below 1 µs the buckets are a flat 32 ns wide, so the answer is within 16 ns of the exact
//!   value (a latency SLO has no use for finer steps);
//! - at and above [`MAX_NANOS`] every value falls into one overflow bucket, which reads as exactly
//!   [`MAX_NANOS`]: a quantile that answers `MAX_NANOS` means "at least that long".
//!
//! # Memory
//!
//! [`BUCKETS`] counters per sketch, whatever is recorded: about 8.3 KiB for a [`Sketch`] (`u64`
//! counts), about 4.1 KiB for the crate's lock-free recording form (`u32` counts).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two, as bits: 32 linear steps per octave.
const SUB_BITS: u32 = 5;
const SUB_COUNT: usize = 1 << SUB_BITS;
/// Below `2^LINEAR_BITS` ns (1 024 ns) buckets stop shrinking and stay 32 ns wide.
const LINEAR_BITS: u32 = 10;
/// The first power of two that is no longer tracked bucket by bucket.
const TOP_BITS: u32 = 42;
/// The overflow bucket: every value at or above [`MAX_NANOS`].
const OVERFLOW: usize = (TOP_BITS - LINEAR_BITS + 1) as usize * SUB_COUNT;

/// The largest relative error of a quantile, for values from 1 µs up to [`MAX_NANOS`]: 1/64.
///
/// A bucket `[lo, lo + w)` is at most `lo / 32` wide and answers with its middle, so it is at most
/// `w / 2 <= lo / 64` away from any value in it.
pub const RELATIVE_ERROR: f64 = 1.0 / 64.0;

/// Values at or above this many nanoseconds (2^42 ns, about 73.3 minutes) share the last bucket,
/// which reads as exactly this value: read a quantile equal to it as "at least this".
pub const MAX_NANOS: u64 = 1 << TOP_BITS;

/// The number of buckets of every sketch (1 057), which fixes its memory.
pub const BUCKETS: usize = OVERFLOW + 1;

/// The bucket of a value in nanoseconds: monotonic, and always below [`BUCKETS`].
#[inline]
pub(crate) fn bucket_of(nanos: u64) -> usize {
    // Or-ing in 2^10 puts every value below 1 024 ns on the first octave's scale (shift 5), so
    // the linear range needs no branch of its own.
    let msb = 63 - (nanos | (1 << LINEAR_BITS)).leading_zeros();
    let shift = msb - SUB_BITS;
    // `nanos >> shift` is the leading 6 bits (32..64), or 0..32 in the linear range.
    let bucket = ((msb - LINEAR_BITS) as usize * SUB_COUNT) + (nanos >> shift) as usize;
    bucket.min(OVERFLOW)
}

/// The lowest value of a bucket and the shift giving its width (`1 << shift`).
#[inline]
fn lower_and_shift(bucket: usize) -> (u64, u32) {
    let level = (bucket / SUB_COUNT) as u32;
    let sub = (bucket % SUB_COUNT) as u64;
    if level == 0 {
        (sub << SUB_BITS, SUB_BITS)
    } else {
        let shift = level + LINEAR_BITS - 1 - SUB_BITS;
        ((SUB_COUNT as u64 + sub) << shift, shift)
    }
}

/// The values a bucket holds, `[low, high)`; the overflow bucket holds `[MAX_NANOS, u64::MAX]`.
#[cfg(test)]
fn bounds_of(bucket: usize) -> (u64, u64) {
    if bucket >= OVERFLOW {
        return (MAX_NANOS, u64::MAX);
    }
    let (low, shift) = lower_and_shift(bucket);
    (low, low + (1 << shift))
}

/// The value a bucket reads as: its middle, or [`MAX_NANOS`] for the overflow bucket.
#[inline]
pub(crate) fn value_of(bucket: usize) -> u64 {
    if bucket >= OVERFLOW {
        return MAX_NANOS;
    }
    let (low, shift) = lower_and_shift(bucket);
    low + (1 << (shift - 1))
}

fn nanos_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A latency distribution in [`BUCKETS`] fixed log-linear buckets; see the [module docs](self)
/// for its error and memory.
#[derive(Clone, PartialEq, Eq)]
pub struct Sketch {
    counts: Box<[u64]>,
    count: u64,
}

impl Default for Sketch {
    fn default() -> Self {
        Self::new()
    }
}

impl Sketch {
    /// An empty sketch.
    #[must_use]
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
        }
    }

    /// Records one latency (saturating at `u64::MAX` ns, which lands in the overflow bucket).
    #[inline]
    pub fn record(&mut self, latency: Duration) {
        self.record_nanos(nanos_of(latency));
    }

    /// Records one latency in nanoseconds.
    #[inline]
    pub fn record_nanos(&mut self, nanos: u64) {
        self.add(bucket_of(nanos), 1);
    }

    #[inline]
    fn add(&mut self, bucket: usize, n: u64) {
        if let Some(slot) = self.counts.get_mut(bucket) {
            *slot = slot.saturating_add(n);
            self.count = self.count.saturating_add(n);
        }
    }

    /// Adds every value recorded in `other`, as if they had been recorded here.
    pub fn merge(&mut self, other: &Sketch) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
        self.count = self.count.saturating_add(other.count);
    }

    /// How many values were recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether nothing was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The nearest-rank quantile: the value of rank `ceil(q * n)` (1-based) among the `n`
    /// recorded values, `q` clamped to `[0, 1]`, `q = 0` reading the minimum and `q = 1` the
    /// maximum. `None` when nothing was recorded or `q` is NaN.
    ///
    /// The answer is within [`RELATIVE_ERROR`] of the exact nearest-rank value of the same data
    /// (see the [module docs](self) for values below 1 µs and at or above [`MAX_NANOS`]).
    #[must_use]
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 || q.is_nan() {
            return None;
        }
        // The float-to-int cast saturates, and the clamp keeps rank in 1..=n.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0u64;
        let mut last = None;
        for (bucket, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            seen = seen.saturating_add(n);
            last = Some(bucket);
            if seen >= rank {
                break;
            }
        }
        last.map(|bucket| Duration::from_nanos(value_of(bucket)))
    }

    /// How many recorded values lie in buckets above the bucket of `threshold`.
    ///
    /// This never counts a value at or below `threshold`, and counts every value at or above the
    /// end of `threshold`'s bucket (less than `threshold / 32` above it, from 1 µs up); values in
    /// between share `threshold`'s bucket and are not counted. A threshold at or above
    /// [`MAX_NANOS`] counts nothing.
    #[must_use]
    pub fn count_above(&self, threshold: Duration) -> u64 {
        let from = bucket_of(nanos_of(threshold)) + 1;
        self.counts
            .get(from..)
            .unwrap_or_default()
            .iter()
            .fold(0u64, |sum, &n| sum.saturating_add(n))
    }

    /// Forgets every recorded value, keeping the memory.
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.count = 0;
    }

    /// The heap bytes of every sketch: its buckets.
    #[must_use]
    pub const fn heap_bytes() -> usize {
        BUCKETS * size_of::<u64>()
    }

    /// The bytes this sketch occupies, its buckets included: the same for every sketch.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>() + size_of_val::<[u64]>(&self.counts)
    }
}

/// The non-empty buckets, as representative value (ns) → count, so `{:?}` stays short.
struct NonEmpty<'a>(&'a [u64]);

impl fmt::Debug for NonEmpty<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n != 0)
                    .map(|(bucket, n)| (value_of(bucket), n)),
            )
            .finish()
    }
}

impl fmt::Debug for Sketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sketch")
            .field("count", &self.count)
            .field("buckets_ns", &NonEmpty(&self.counts))
            .finish()
    }
}

/// The live, shared form of a [`Sketch`]: recording is one relaxed `fetch_add` on one bucket,
/// with no total counter (a second shared write per call); totals are summed when read.
///
/// Counts are `u32`: a per-minute slot is drained every minute, and overflowing one bucket would
/// take 2^32 calls in one minute within one ~3 % latency band (over 70 million a second), far
/// beyond one process. Half the width halves the memory of every slot kept for a window.
pub(crate) struct AtomicSketch {
    counts: Box<[AtomicU32]>,
}

impl AtomicSketch {
    /// The heap bytes of every atomic sketch: its buckets.
    pub(crate) const fn heap_bytes() -> usize {
        BUCKETS * size_of::<AtomicU32>()
    }

    /// An empty sketch.
    pub(crate) fn new() -> Self {
        Self {
            counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Records one latency in nanoseconds.
    #[inline]
    pub(crate) fn record_nanos(&self, nanos: u64) {
        if let Some(slot) = self.counts.get(bucket_of(nanos)) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Moves every count into `out`, leaving this sketch empty. A value recorded concurrently is
    /// either moved now or left for the next drain, never lost or counted twice.
    pub(crate) fn drain_into(&self, out: &mut Sketch) {
        for (bucket, slot) in self.counts.iter().enumerate() {
            // Loading first keeps the untouched buckets' cache lines shared with recorders.
            if slot.load(Ordering::Relaxed) != 0 {
                out.add(bucket, u64::from(slot.swap(0, Ordering::Relaxed)));
            }
        }
    }

    /// Adds every count into `out`, leaving this sketch as it is.
    pub(crate) fn add_into(&self, out: &mut Sketch) {
        for (bucket, slot) in self.counts.iter().enumerate() {
            let n = slot.load(Ordering::Relaxed);
            if n != 0 {
                out.add(bucket, u64::from(n));
            }
        }
    }
}

impl fmt::Debug for AtomicSketch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut snapshot = Sketch::new();
        self.add_into(&mut snapshot);
        f.debug_struct("AtomicSketch")
            .field("count", &snapshot.count)
            .field("buckets_ns", &NonEmpty(&snapshot.counts))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `read` is within the module's stated error of `exact`.
    fn within_error(read: u64, exact: u64) -> bool {
        let diff = read.abs_diff(exact);
        if exact >= MAX_NANOS {
            read == MAX_NANOS
        } else if exact >= 1_000 {
            // diff / exact <= 1/64, in integers.
            diff * 64 <= exact
        } else {
            diff <= 16
        }
    }

    /// Values around every power of two and every bucket edge, up past the top.
    fn edge_values() -> Vec<u64> {
        let mut values = Vec::new();
        for bucket in 0..BUCKETS {
            let (low, high) = bounds_of(bucket);
            for v in [low, low + 1, high - 1, high] {
                values.push(v);
            }
        }
        for bit in 0..64 {
            let p = 1u64 << bit;
            values.extend([p - 1, p, p + 1]);
        }
        values.push(u64::MAX);
        values
    }

    #[test]
    fn layout_constants() {
        assert_eq!(BUCKETS, 1057);
        assert_eq!(OVERFLOW, BUCKETS - 1);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(31), 0);
        assert_eq!(bucket_of(32), 1);
        assert_eq!(bucket_of(1023), 31);
        assert_eq!(bucket_of(1024), 32);
        assert_eq!(bucket_of(1024 + 31), 32);
        assert_eq!(bucket_of(1024 + 32), 33);
        assert_eq!(bucket_of(2047), 63);
        assert_eq!(bucket_of(2048), 64);
        assert_eq!(bucket_of(2048 + 63), 64);
        assert_eq!(bucket_of(2048 + 64), 65);
        assert_eq!(bucket_of(MAX_NANOS - 1), OVERFLOW - 1);
        assert_eq!(bucket_of(MAX_NANOS), OVERFLOW);
        assert_eq!(bucket_of(u64::MAX), OVERFLOW);
        assert_eq!(value_of(OVERFLOW), MAX_NANOS);
        assert_eq!(bounds_of(OVERFLOW - 1).1, MAX_NANOS);
    }

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        let mut expected_low = 0;
        for bucket in 0..OVERFLOW {
            let (low, high) = bounds_of(bucket);
            assert_eq!(low, expected_low, "bucket {bucket}");
            assert!(high > low);
            // Never wider than 1/32 of the lower bound, from the first octave on.
            if low >= 1 << LINEAR_BITS {
                assert!((high - low) * 32 <= low, "bucket {bucket}");
            }
            assert_eq!(bucket_of(low), bucket);
            assert_eq!(bucket_of(high - 1), bucket);
            let mid = value_of(bucket);
            assert!(low <= mid && mid < high);
            expected_low = high;
        }
        assert_eq!(expected_low, MAX_NANOS);
    }

    #[test]
    fn bucket_of_is_monotonic() {
        let mut values = edge_values();
        values.sort_unstable();
        for pair in values.windows(2) {
            assert!(bucket_of(pair[0]) <= bucket_of(pair[1]), "{pair:?}");
        }
        let mut previous = 0;
        for v in 0..(1u64 << 16) {
            let bucket = bucket_of(v);
            assert!(bucket == previous || bucket == previous + 1, "{v}");
            previous = bucket;
        }
    }

    #[test]
    fn value_of_bucket_of_is_within_error() {
        for v in 0..(1u64 << 18) {
            assert!(within_error(value_of(bucket_of(v)), v), "{v}");
        }
        for v in edge_values() {
            assert!(within_error(value_of(bucket_of(v)), v), "{v}");
        }
        // A spread of values that are not on edges: a multiplicative walk over the whole range.
        let mut v = 1_000u64;
        while v < MAX_NANOS * 4 {
            assert!(within_error(value_of(bucket_of(v)), v), "{v}");
            v = v + v / 97 + 13;
        }
        // The bound is tight: the lowest value of an octave is exactly 1/64 away.
        let v = 1u64 << 20;
        assert_eq!(value_of(bucket_of(v)) - v, v / 64);
    }

    #[test]
    fn values_above_the_top_clamp_into_the_overflow_bucket() {
        let mut sketch = Sketch::new();
        sketch.record(Duration::from_secs(3 * 3600));
        sketch.record(Duration::MAX);
        sketch.record_nanos(MAX_NANOS);
        assert_eq!(sketch.count(), 3);
        assert_eq!(sketch.quantile(0.0), Some(Duration::from_nanos(MAX_NANOS)));
        assert_eq!(sketch.quantile(1.0), Some(Duration::from_nanos(MAX_NANOS)));
        assert_eq!(sketch.count_above(Duration::from_secs(3600)), 3);
        assert_eq!(sketch.count_above(Duration::from_secs(5 * 3600)), 0);
    }

    #[test]
    fn quantiles_follow_nearest_rank() {
        let mut sketch = Sketch::new();
        assert_eq!(sketch.quantile(0.5), None);
        assert!(sketch.is_empty());
        // 1..=10 ms: rank ceil(q * 10).
        for ms in (1..=10).rev() {
            sketch.record(Duration::from_millis(ms));
        }
        let read = |q: f64| sketch.quantile(q).map(nanos_of);
        let near = |q: f64, ms: u64| {
            let exact = ms * 1_000_000;
            read(q).is_some_and(|r| within_error(r, exact))
        };
        assert!(near(0.0, 1));
        assert!(near(-3.0, 1));
        assert!(near(0.1, 1));
        assert!(near(0.11, 2));
        assert!(near(0.5, 5));
        assert!(near(0.51, 6));
        assert!(near(0.95, 10));
        assert!(near(1.0, 10));
        assert!(near(7.0, 10));
        assert!(near(f64::INFINITY, 10));
        assert_eq!(sketch.quantile(f64::NAN), None);
        // Neighbouring milliseconds land in different buckets, so ranks are told apart.
        assert_ne!(read(0.5), read(0.51));
    }

    #[test]
    fn merge_equals_recording_into_one() {
        let values: Vec<u64> = (0..5_000u64)
            .map(|i| (i * 7_919 + 13).pow(2) % (1 << 40))
            .collect();
        let mut all = Sketch::new();
        let mut parts = [Sketch::new(), Sketch::new(), Sketch::new()];
        for (i, &v) in values.iter().enumerate() {
            all.record_nanos(v);
            parts[i % 3].record_nanos(v);
        }
        let mut merged = Sketch::new();
        for part in &parts {
            merged.merge(part);
        }
        assert_eq!(merged, all);
        assert_eq!(merged.count(), 5_000);
        merged.clear();
        assert_eq!(merged, Sketch::default());
        assert!(merged.is_empty());
    }

    #[test]
    fn count_above_brackets_the_exact_count() {
        let mut sketch = Sketch::new();
        let values: Vec<u64> = (1..=2_000u64).map(|i| i * 150_000).collect();
        for &v in &values {
            sketch.record_nanos(v);
        }
        for threshold in [
            0,
            1,
            100_000,
            150_000,
            300_000_000,
            299_999_999,
            1 << 30,
            MAX_NANOS,
        ] {
            let counted = sketch.count_above(Duration::from_nanos(threshold));
            let above = values.iter().filter(|&&v| v > threshold).count() as u64;
            let end = bounds_of(bucket_of(threshold)).1;
            let past_bucket = values.iter().filter(|&&v| v >= end).count() as u64;
            assert!(past_bucket <= counted && counted <= above, "{threshold}");
        }
        assert_eq!(sketch.count_above(Duration::ZERO), 2_000);
    }

    #[test]
    fn atomic_sketch_drains_and_reads() {
        let live = AtomicSketch::new();
        let mut expected = Sketch::new();
        for v in [0, 5, 1_000, 250_000, 250_001, 3_000_000_000, u64::MAX] {
            live.record_nanos(v);
            expected.record_nanos(v);
        }
        let mut read = Sketch::new();
        live.add_into(&mut read);
        assert_eq!(read, expected);
        let mut drained = Sketch::new();
        live.drain_into(&mut drained);
        assert_eq!(drained, expected);
        let mut again = Sketch::new();
        live.drain_into(&mut again);
        live.add_into(&mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn atomic_sketch_loses_nothing_under_concurrent_drains() {
        let live = AtomicSketch::new();
        let mut total = Sketch::new();
        std::thread::scope(|scope| {
            for t in 0..2u64 {
                let live = &live;
                scope.spawn(move || {
                    for i in 0..20_000u64 {
                        live.record_nanos((i % 500 + t) * 10_000);
                    }
                });
            }
            for _ in 0..50 {
                live.drain_into(&mut total);
            }
        });
        live.drain_into(&mut total);
        assert_eq!(total.count(), 40_000);
    }

    #[test]
    fn memory_is_fixed_and_debug_is_short() {
        let mut sketch = Sketch::new();
        let empty = sketch.memory_bytes();
        assert_eq!(empty, size_of::<Sketch>() + Sketch::heap_bytes());
        assert_eq!(Sketch::heap_bytes(), BUCKETS * 8);
        assert_eq!(AtomicSketch::heap_bytes(), BUCKETS * 4);
        sketch.record(Duration::from_millis(3));
        assert_eq!(sketch.memory_bytes(), empty);
        let shown = format!("{sketch:?}");
        assert!(shown.contains("count: 1"), "{shown}");
        assert!(shown.len() < 80, "{shown}");
        let shown = format!("{:?}", AtomicSketch::new());
        assert!(shown.contains("count: 0"), "{shown}");
    }
}
