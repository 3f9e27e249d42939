//! The latency sketch against the exact answer on the same data (proptest): quantiles within the
//! stated relative error of the sorted data's nearest-rank value, and merging equal to recording
//! everything into one sketch.

use std::time::Duration;

use proptest::prelude::*;
use steadfast_slo::sketch::{Sketch, RELATIVE_ERROR};

const MICROSECOND: u64 = 1_000;
const HOUR: u64 = 3_600 * 1_000_000_000;

/// A latency from 1 µs to 1 h: uniform over the whole range (mostly minutes), log-uniform (every
/// octave equally likely), or one of a few values (many ties).
fn latency() -> impl Strategy<Value = u64> {
    prop_oneof![
        MICROSECOND..=HOUR,
        (10u32..42, any::<u64>()).prop_map(|(bits, noise)| ((1u64 << bits)
            + noise % (1u64 << bits))
            .clamp(MICROSECOND, HOUR)),
        prop::sample::select(vec![MICROSECOND, 1_024, 2_047, 150_000, 300_000_000, HOUR]),
    ]
}

fn quantile() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(1.0),
        Just(0.5),
        Just(0.95),
        Just(0.99),
        0.0..=1.0f64
    ]
}

/// The nearest-rank quantile of the data, by sorting: rank `ceil(q * n)`, 1-based, at least 1.
fn exact_quantile(values: &[u64], q: f64) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

fn sketch_of(values: &[u64]) -> Sketch {
    let mut sketch = Sketch::new();
    for &v in values {
        sketch.record(Duration::from_nanos(v));
    }
    sketch
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn quantile_is_within_the_stated_error(
        values in prop::collection::vec(latency(), 1..400),
        qs in prop::collection::vec(quantile(), 1..8),
    ) {
        let sketch = sketch_of(&values);
        prop_assert_eq!(sketch.count(), values.len() as u64);
        for q in qs {
            let exact = exact_quantile(&values, q);
            let read = sketch.quantile(q);
            prop_assert!(read.is_some());
            let read = read.map_or(0, |d| d.as_nanos() as u64);
            let error = read.abs_diff(exact) as f64 / exact as f64;
            prop_assert!(
                error <= RELATIVE_ERROR,
                "q {} exact {} read {} error {}", q, exact, read, error
            );
        }
    }

    #[test]
    fn merging_any_split_equals_recording_into_one(
        assigned in prop::collection::vec((latency(), 0usize..4), 0..400),
        q in quantile(),
    ) {
        let values: Vec<u64> = assigned.iter().map(|&(v, _)| v).collect();
        let all = sketch_of(&values);
        let mut parts = vec![Sketch::new(); 4];
        for &(v, part) in &assigned {
            parts[part].record_nanos(v);
        }
        let mut merged = Sketch::new();
        // Merging in reverse order: the result cannot depend on it.
        for part in parts.iter().rev() {
            merged.merge(part);
        }
        prop_assert_eq!(merged.count(), all.count());
        prop_assert_eq!(merged.quantile(q), all.quantile(q));
        prop_assert_eq!(&merged, &all);
        prop_assert_eq!(merged.is_empty(), values.is_empty());
    }

    #[test]
    fn count_above_never_counts_a_value_at_or_below_the_threshold(
        values in prop::collection::vec(latency(), 0..400),
        threshold in latency(),
    ) {
        let sketch = sketch_of(&values);
        let counted = sketch.count_above(Duration::from_nanos(threshold));
        let above = values.iter().filter(|&&v| v > threshold).count() as u64;
        // Values more than 1/32 above the threshold are past its bucket, so always counted.
        let well_above = values.iter().filter(|&&v| v >= threshold + threshold / 32).count() as u64;
        prop_assert!(well_above <= counted && counted <= above,
            "well above {} counted {} above {}", well_above, counted, above);
    }
}
