//! Rate thresholds compared exactly.
//!
//! A threshold given as `0.55` is not 55/100 in binary floating point: the nearest `f64` is a
//! hair above it, so `55.0 >= 0.55 * 100.0` is false and a breaker at exactly its threshold
//! stays closed. The threshold is therefore turned, once, into the rational number it stands
//! for, and rates are compared with integers: `failures * den >= num * calls`.
//!
//! Which rational an `f64` stands for: the simplest one (the first continued-fraction
//! convergent) that rounds to it. A number written with up to about seven decimal places, or a
//! fraction `p / q` with `q` below 2^26, is recovered exactly: two rationals with such
//! denominators cannot round to one `f64`. Any other `f64` keeps a convergent within its own
//! rounding error, with a denominator of at most 2^62.

/// A rate threshold as an exact fraction `num / den`, `0 < num <= den`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Threshold {
    num: u64,
    den: u64,
}

const MAX_DEN: u128 = 1 << 62;

impl Threshold {
    /// The rational that `rate` (finite, in `(0, 1]`) stands for.
    pub(crate) fn new(rate: f64) -> Self {
        debug_assert!(rate.is_finite() && rate > 0.0 && rate <= 1.0);
        if rate >= 1.0 {
            return Self { num: 1, den: 1 };
        }
        // rate = m / 2^k exactly.
        let bits = rate.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as i32;
        let fraction = bits & ((1 << 52) - 1);
        let (m, k) = if exponent == 0 {
            (fraction, 1074)
        } else {
            (fraction | (1 << 52), 1075 - exponent)
        };
        // Rates below 2^-70 are below any rate a window can show apart from zero; they trip
        // on the first failure, as the smallest representable fraction does.
        if k > 120 {
            return Self {
                num: 1,
                den: MAX_DEN as u64,
            };
        }
        let (m, pow) = (u128::from(m), 1u128 << k);
        // Continued fraction of m / pow, convergents h / q.
        let (mut x, mut y) = (m, pow);
        let (mut h_prev, mut h) = (0u128, 1u128);
        let (mut q_prev, mut q) = (1u128, 0u128);
        let mut best = Self { num: 1, den: 1 };
        while y != 0 {
            let a = x / y;
            (x, y) = (y, x - a * y);
            let h_next = a * h + h_prev;
            let q_next = a * q + q_prev;
            if q_next > MAX_DEN {
                break;
            }
            (h_prev, h, q_prev, q) = (h, h_next, q, q_next);
            if h == 0 {
                continue;
            }
            best = Self {
                num: h as u64,
                den: q as u64,
            };
            // Within half a unit in the last place of `rate`: |m/pow - h/q| <= 1/(2 pow).
            let (mq, hp) = (m * q, h.checked_mul(pow));
            if let Some(hp) = hp {
                if 2 * mq.abs_diff(hp) <= q {
                    return best;
                }
            }
        }
        best
    }

    /// Whether `part / calls >= num / den`; false when `calls` is zero.
    #[inline]
    pub(crate) fn reached(self, part: u64, calls: u64) -> bool {
        calls != 0
            && u128::from(part) * u128::from(self.den) >= u128::from(self.num) * u128::from(calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimals_are_recovered() {
        assert_eq!(Threshold::new(0.55), Threshold { num: 11, den: 20 });
        assert_eq!(Threshold::new(0.07), Threshold { num: 7, den: 100 });
        assert_eq!(Threshold::new(0.28), Threshold { num: 7, den: 25 });
        assert_eq!(Threshold::new(0.5), Threshold { num: 1, den: 2 });
        assert_eq!(Threshold::new(1.0), Threshold { num: 1, den: 1 });
        assert_eq!(Threshold::new(2.0 / 3.0), Threshold { num: 2, den: 3 });
        assert_eq!(
            Threshold::new(0.1234567),
            Threshold {
                num: 1_234_567,
                den: 10_000_000
            }
        );
    }

    #[test]
    fn the_reported_cases_trip() {
        assert!(Threshold::new(0.55).reached(55, 100));
        assert!(Threshold::new(0.07).reached(7, 100));
        assert!(Threshold::new(0.28).reached(7, 25));
        assert!(!Threshold::new(0.55).reached(54, 100));
        assert!(!Threshold::new(0.5).reached(0, 0));
    }

    #[test]
    fn odd_values_do_not_panic() {
        for rate in [
            f64::MIN_POSITIVE,
            5e-324,
            1e-30,
            1e-12,
            0.999_999_999_999_999_9,
            0.3,
        ] {
            let threshold = Threshold::new(rate);
            assert!(
                threshold.num >= 1 && threshold.num <= threshold.den,
                "{rate}"
            );
            assert!(threshold.reached(1, 1));
        }
    }

    proptest! {
        /// Every threshold written as a fraction of small integers (computed in `f64`, as a
        /// config would) or as a decimal with up to six places trips exactly when the exact
        /// rational comparison says so.
        #[test]
        fn fractions_compare_exactly(calls in 1u64..2_000, failures_seed in any::<u64>(), p in 1u64..1_000, q_seed in any::<u64>()) {
            let q = p + q_seed % 1_000;
            let failures = failures_seed % (calls + 1);
            let rate = p as f64 / q as f64;
            let exact = u128::from(failures) * u128::from(q) >= u128::from(p) * u128::from(calls);
            prop_assert_eq!(Threshold::new(rate).reached(failures, calls), exact, "{}/{} at {}/{}", failures, calls, p, q);
        }

        #[test]
        fn decimals_compare_exactly(calls in 1u64..2_000, failures_seed in any::<u64>(), places in 1u32..=6, digits in any::<u64>()) {
            let scale = 10u64.pow(places);
            let k = 1 + digits % scale;
            let failures = failures_seed % (calls + 1);
            let rate: f64 = format!("{}", k as f64 / scale as f64).parse().unwrap();
            let exact = u128::from(failures) * u128::from(scale) >= u128::from(k) * u128::from(calls);
            prop_assert_eq!(Threshold::new(rate).reached(failures, calls), exact, "{}/{} at {}/{}", failures, calls, k, scale);
        }

        /// The rate a window shows, `failures / calls` in `f64`, as a threshold: reached by
        /// exactly that many failures, never by one fewer.
        #[test]
        fn every_ratio_reaches_itself(calls in 1u64..100_000, failures_seed in any::<u64>()) {
            let failures = 1 + failures_seed % calls;
            let threshold = Threshold::new(failures as f64 / calls as f64);
            prop_assert!(threshold.reached(failures, calls));
            prop_assert!(!threshold.reached(failures - 1, calls));
        }
    }
}
