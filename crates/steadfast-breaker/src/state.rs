//! The breaker's state word and its half-open probe counter.
//!
//! The state, a generation and a time (when an open breaker may probe again, or when a
//! half-open one gives up) live in one `AtomicU64`, so a transition is one compare-and-swap and
//! exactly one thread wins it. The generation grows with every transition: a call admitted under
//! one generation cannot record into the next, and a probe of an earlier half-open period cannot
//! close a later one.

use std::fmt;

#[cfg(steadfast_loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(steadfast_loom))]
use std::sync::atomic::{AtomicU64, Ordering};

/// The state of a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize, serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum State {
    /// Calls pass and their outcomes are counted.
    Closed,
    /// Calls are refused until the open period ends.
    Open,
    /// A fixed number of probe calls pass; their outcomes decide between closed and open.
    HalfOpen,
    /// Set by hand: every call passes and nothing is counted.
    Disabled,
    /// Set by hand: every call is refused until the breaker is reset.
    ForcedOpen,
    /// Set by hand: every call passes; outcomes are counted and reported but never trip.
    MetricsOnly,
}

impl State {
    const ALL: [State; 6] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::Disabled,
        State::ForcedOpen,
        State::MetricsOnly,
    ];

    /// The state's name in snake case, as used in metric labels.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::Disabled => "disabled",
            State::ForcedOpen => "forced_open",
            State::MetricsOnly => "metrics_only",
        }
    }

    /// The state whose [`State::as_code`] is `code`; codes out of range read as closed.
    pub(crate) fn from_code(code: u8) -> State {
        State::ALL
            .get(usize::from(code))
            .copied()
            .unwrap_or(State::Closed)
    }

    /// The number the `steadfast_breaker_state` gauge reports for this state.
    #[must_use]
    pub const fn as_code(self) -> u8 {
        self as u8
    }

    /// Whether calls are refused in this state (half-open refuses all but its probes).
    #[must_use]
    pub const fn refuses_calls(self) -> bool {
        matches!(self, State::Open | State::ForcedOpen)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const STATE_BITS: u32 = 3;
pub(crate) const GEN_BITS: u32 = 21;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
pub(crate) const GEN_MASK: u64 = (1 << GEN_BITS) - 1;
const TIME_SHIFT: u32 = STATE_BITS + GEN_BITS;
/// Times are milliseconds since the clock's origin, in 40 bits: about 34 years.
pub(crate) const MAX_TIME_MS: u64 = (1 << (64 - TIME_SHIFT)) - 1;

/// Milliseconds from `now_ms` until `target_ms`, both taken modulo 2^40; `None` once the target
/// has passed. Config keeps every duration under 2^39 ms, so half the ring is the future.
#[inline]
pub(crate) const fn ms_until(target_ms: u64, now_ms: u64) -> Option<u64> {
    let ahead = target_ms.wrapping_sub(now_ms) & MAX_TIME_MS;
    if ahead != 0 && ahead <= MAX_TIME_MS / 2 {
        Some(ahead)
    } else {
        None
    }
}

/// One decoded value of the state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(u64);

impl Word {
    pub(crate) const fn initial(state: State) -> Self {
        Self(state as u64)
    }

    /// A first word in `state` with a time (see [`Word::time_ms`]), generation zero.
    pub(crate) const fn initial_at(state: State, time_ms: u64) -> Self {
        Self(state as u64 | (time_ms & MAX_TIME_MS) << TIME_SHIFT)
    }

    /// The same state and period with another time: an open period moved by hand.
    pub(crate) const fn with_time(self, time_ms: u64) -> Self {
        Self(self.0 & ((1 << TIME_SHIFT) - 1) | (time_ms & MAX_TIME_MS) << TIME_SHIFT)
    }

    #[inline]
    pub(crate) fn state(self) -> State {
        // Every stored word was built from a `State`, so the index is in range.
        State::ALL[(self.0 & STATE_MASK) as usize]
    }

    #[inline]
    pub(crate) const fn is_closed(self) -> bool {
        self.0 & STATE_MASK == State::Closed as u64
    }

    /// The generation, which changes with every transition.
    #[inline]
    pub(crate) const fn generation(self) -> u32 {
        ((self.0 >> STATE_BITS) & GEN_MASK) as u32
    }

    /// Open: when probing may start. Half-open: when it gives up (0 for never).
    #[inline]
    pub(crate) const fn time_ms(self) -> u64 {
        self.0 >> TIME_SHIFT
    }

    /// The word a transition from `self` to `state` stores. Times wrap at 40 bits; compare
    /// them with [`ms_until`].
    pub(crate) const fn next(self, state: State, time_ms: u64) -> Self {
        let generation = (self.generation() as u64 + 1) & GEN_MASK;
        let time = time_ms & MAX_TIME_MS;
        Self(state as u64 | (generation << STATE_BITS) | (time << TIME_SHIFT))
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Word")
            .field("state", &self.state())
            .field("generation", &self.generation())
            .field("time_ms", &self.time_ms())
            .finish()
    }
}

/// The atomic cell holding the state word.
pub(crate) struct StateCell(AtomicU64);

impl StateCell {
    pub(crate) fn new(word: Word) -> Self {
        Self(AtomicU64::new(word.0))
    }

    #[inline]
    pub(crate) fn load(&self) -> Word {
        Word(self.0.load(Ordering::Acquire))
    }

    /// Replaces `current` with `new`; true for the one thread whose swap took effect.
    #[inline]
    pub(crate) fn transition(&self, current: Word, new: Word) -> bool {
        self.0
            .compare_exchange(current.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

const PROBE_COUNT_BITS: u32 = 20;
const PROBE_COUNT_MASK: u64 = (1 << PROBE_COUNT_BITS) - 1;
/// The most probes a half-open period may admit.
pub(crate) const MAX_PROBES: u32 = PROBE_COUNT_MASK as u32;

/// Probes admitted and succeeded in the current half-open period, tagged with its generation.
///
/// Layout: `[generation: 24][admitted: 20][succeeded: 20]`. A word whose generation is not the
/// current half-open one counts as zero/zero, so entering half-open needs no reset (a reset
/// could race with the first admissions and let N+1 probes in).
pub(crate) struct Probes(AtomicU64);

/// The tag of a word no half-open period has written yet; no 21-bit generation equals it.
const NO_PERIOD: u32 = (1 << (64 - 2 * PROBE_COUNT_BITS)) - 1;

#[derive(Clone, Copy)]
struct ProbeCounts {
    generation: u32,
    admitted: u32,
    succeeded: u32,
}

impl ProbeCounts {
    fn decode(word: u64) -> Self {
        Self {
            generation: (word >> (2 * PROBE_COUNT_BITS)) as u32,
            admitted: ((word >> PROBE_COUNT_BITS) & PROBE_COUNT_MASK) as u32,
            succeeded: (word & PROBE_COUNT_MASK) as u32,
        }
    }

    fn encode(self) -> u64 {
        ((self.generation as u64) << (2 * PROBE_COUNT_BITS))
            | ((self.admitted as u64) << PROBE_COUNT_BITS)
            | self.succeeded as u64
    }
}

impl Probes {
    pub(crate) fn new() -> Self {
        Self(AtomicU64::new(
            ProbeCounts {
                generation: NO_PERIOD,
                admitted: 0,
                succeeded: 0,
            }
            .encode(),
        ))
    }

    fn update(&self, f: impl Fn(ProbeCounts) -> Option<ProbeCounts>) -> Option<ProbeCounts> {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let next = f(ProbeCounts::decode(current))?;
            match self.0.compare_exchange_weak(
                current,
                next.encode(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(next),
                Err(actual) => current = actual,
            }
        }
    }

    /// Takes one of `limit` probe slots of half-open period `generation`.
    ///
    /// The first admission of a period starts its count from zero, but only while
    /// `is_current()` says the breaker is still half-open in that period: a caller holding an
    /// earlier generation is refused, so it can never reset a newer period's count. (Ordering
    /// generations by their numbers would break once they wrap around.)
    pub(crate) fn try_admit(
        &self,
        generation: u32,
        limit: u32,
        is_current: impl Fn() -> bool,
    ) -> bool {
        self.update(|counts| {
            if counts.generation == generation {
                (counts.admitted < limit).then_some(ProbeCounts {
                    admitted: counts.admitted + 1,
                    ..counts
                })
            } else if limit > 0 && is_current() {
                Some(ProbeCounts {
                    generation,
                    admitted: 1,
                    succeeded: 0,
                })
            } else {
                None
            }
        })
        .is_some()
    }

    /// Counts a successful probe of period `generation`; returns how many have succeeded in
    /// it, or 0 if that period is over.
    pub(crate) fn succeed(&self, generation: u32) -> u32 {
        self.update(|counts| {
            (counts.generation == generation).then_some(ProbeCounts {
                succeeded: counts.succeeded + 1,
                ..counts
            })
        })
        .map_or(0, |counts| counts.succeeded)
    }

    /// Gives a probe slot back: the probe ended without saying anything (ignored or dropped).
    pub(crate) fn release(&self, generation: u32) {
        self.update(|counts| {
            (counts.generation == generation && counts.admitted > 0).then_some(ProbeCounts {
                admitted: counts.admitted - 1,
                ..counts
            })
        });
    }

    /// Probes admitted and succeeded in period `generation`.
    pub(crate) fn counts(&self, generation: u32) -> (u32, u32) {
        let counts = ProbeCounts::decode(self.0.load(Ordering::Acquire));
        if counts.generation == generation {
            (counts.admitted, counts.succeeded)
        } else {
            (0, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_round_trips() {
        let word = Word::initial(State::Closed);
        assert_eq!(word.state(), State::Closed);
        assert!(word.is_closed());
        let open = word.next(State::Open, 123_456);
        assert_eq!(open.state(), State::Open);
        assert_eq!(open.generation(), 1);
        assert_eq!(open.time_ms(), 123_456);
        let wrapped = open.next(State::HalfOpen, MAX_TIME_MS + 6);
        assert_eq!(wrapped.time_ms(), 5);
        let capped = wrapped;
        assert_eq!(capped.generation(), 2);
        for state in State::ALL {
            assert_eq!(word.next(state, 9).state(), state);
        }
    }

    #[test]
    fn times_compare_across_the_wrap() {
        assert_eq!(ms_until(10, 4), Some(6));
        assert_eq!(ms_until(4, 10), None);
        assert_eq!(ms_until(7, 7), None);
        // A target just past the wrap is still ahead of a time just before it.
        assert_eq!(ms_until(2, MAX_TIME_MS - 1), Some(4));
        assert_eq!(ms_until(MAX_TIME_MS - 1, 2), None);
    }

    #[test]
    fn generation_wraps() {
        let mut word = Word::initial(State::Closed);
        for _ in 0..(1 << GEN_BITS) {
            word = word.next(State::Closed, 0);
        }
        assert_eq!(word.generation(), 0);
    }

    #[test]
    fn probes_are_per_generation() {
        let probes = Probes::new();
        assert!(probes.try_admit(4, 2, || true));
        assert!(probes.try_admit(4, 2, || true));
        assert!(!probes.try_admit(4, 2, || true));
        probes.release(4);
        assert!(probes.try_admit(4, 2, || true));
        assert_eq!(probes.succeed(4), 1);
        // A new period starts from zero without a reset.
        assert!(probes.try_admit(5, 1, || true));
        assert!(!probes.try_admit(5, 1, || true));
        assert_eq!(probes.counts(5), (1, 0));
        // A caller of an earlier period is refused and cannot reset the later one.
        assert!(!probes.try_admit(4, 10, || false));
        assert_eq!(probes.succeed(4), 0);
        assert_eq!(probes.counts(5), (1, 0));
    }

    #[test]
    fn a_period_that_is_not_current_cannot_take_over() {
        let probes = Probes::new();
        assert!(probes.try_admit(9, 1, || true));
        assert!(!probes.try_admit(2, 1, || false));
        assert_eq!(probes.counts(9), (1, 0));
    }
}

/// Loom models: `RUSTFLAGS="--cfg steadfast_loom" cargo test -p steadfast-breaker --lib loom`.
#[cfg(all(test, steadfast_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    /// Two threads race to open a closed breaker: exactly one transition happens.
    #[test]
    fn exactly_one_thread_wins_a_transition() {
        loom::model(|| {
            let cell = Arc::new(StateCell::new(Word::initial(State::Closed)));
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let cell = cell.clone();
                    thread::spawn(move || {
                        let current = cell.load();
                        current.is_closed()
                            && cell.transition(current, current.next(State::Open, 10))
                    })
                })
                .collect();
            let wins = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|won| *won)
                .count();
            assert_eq!(wins, 1);
            let word = cell.load();
            assert_eq!(word.state(), State::Open);
            assert_eq!(word.generation(), 1);
        });
    }

    /// Three threads ask for two probe slots while a fourth moves to a new period: never more
    /// than two admissions in one period.
    #[test]
    fn probe_slots_are_never_exceeded() {
        loom::model(|| {
            let probes = Arc::new(Probes::new());
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let probes = probes.clone();
                    thread::spawn(move || probes.try_admit(7, 2, || true))
                })
                .collect();
            let admitted = handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|ok| *ok)
                .count();
            assert_eq!(admitted, 2);
            assert_eq!(probes.counts(7).0, 2);
        });
    }

    /// A half-open → closed transition races a stale probe from the period before: the stale
    /// probe's success never counts toward the new period.
    #[test]
    fn stale_probe_cannot_close_a_new_period() {
        loom::model(|| {
            let probes = Arc::new(Probes::new());
            assert!(probes.try_admit(1, 1, || true));
            let stale = {
                let probes = probes.clone();
                thread::spawn(move || probes.succeed(1))
            };
            let fresh = {
                let probes = probes.clone();
                thread::spawn(move || probes.try_admit(3, 1, || true))
            };
            stale.join().unwrap();
            assert!(fresh.join().unwrap());
            assert_eq!(probes.counts(3), (1, 0));
        });
    }

    /// A caller that read half-open period A races the moves A → open → B and B's first
    /// probe: B still admits exactly its limit, whatever the interleaving.
    #[test]
    fn stale_period_cannot_steal_a_new_periods_slots() {
        loom::model(|| {
            let half_open = Word::initial(State::Closed).next(State::HalfOpen, 0);
            let cell = Arc::new(StateCell::new(half_open));
            let probes = Arc::new(Probes::new());
            let stale_generation = half_open.generation();

            let stale = {
                let (cell, probes) = (cell.clone(), probes.clone());
                thread::spawn(move || {
                    probes.try_admit(stale_generation, 1, || {
                        let word = cell.load();
                        word.state() == State::HalfOpen && word.generation() == stale_generation
                    })
                })
            };
            let open = half_open.next(State::Open, 0);
            assert!(cell.transition(half_open, open));
            let fresh = open.next(State::HalfOpen, 0);
            assert!(cell.transition(open, fresh));
            let generation = fresh.generation();
            let is_current = || cell.load().generation() == generation;
            assert!(probes.try_admit(generation, 1, is_current));
            let _ = stale.join().unwrap();
            // Period B's single slot is taken by its own probe, never by the stale caller.
            assert!(!probes.try_admit(generation, 1, is_current));
            assert_eq!(probes.counts(generation), (1, 0));
        });
    }

    /// A reader that finds the half-open cap passed (half-open → open, anchored at the cap)
    /// races the period's last probe succeeding (half-open → closed): exactly one move
    /// happens, and a probe that lost can no longer count toward any period.
    #[test]
    fn the_cap_and_a_late_probe_never_both_win() {
        loom::model(|| {
            let half_open = Word::initial(State::Closed).next(State::HalfOpen, 100);
            let cell = Arc::new(StateCell::new(half_open));
            let probes = Arc::new(Probes::new());
            let generation = half_open.generation();
            assert!(probes.try_admit(generation, 1, || true));

            let reader = {
                let cell = cell.clone();
                thread::spawn(move || {
                    let word = cell.load();
                    word.state() == State::HalfOpen
                        && cell.transition(word, word.next(State::Open, word.time_ms() + 5))
                })
            };
            let probe = {
                let (cell, probes) = (cell.clone(), probes.clone());
                thread::spawn(move || {
                    let word = cell.load();
                    word.state() == State::HalfOpen
                        && word.generation() == generation
                        && probes.succeed(generation) >= 1
                        && cell.transition(word, word.next(State::Closed, 0))
                })
            };
            let opened = reader.join().unwrap();
            let closed = probe.join().unwrap();
            assert!(opened ^ closed, "opened {opened}, closed {closed}");
            let word = cell.load();
            assert_eq!(word.generation(), generation + 1);
            assert_eq!(
                word.state(),
                if opened { State::Open } else { State::Closed }
            );
        });
    }
}
