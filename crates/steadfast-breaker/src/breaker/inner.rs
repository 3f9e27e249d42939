//! The shared state behind every handle of one breaker, and its reads.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use steadfast_core::Clock;

use super::builder::OpenDurationFn;
use super::rate::Threshold;
use super::ticket::TIME_UNIT_SHIFT;
use super::{OpenContext, Snapshot};
use crate::config::{Config, DropPolicy};
use crate::event::{BreakerListener, Event, EventKind, Metrics};
use crate::state::{ms_until, Probes, StateCell, Word, MAX_TIME_MS};
use crate::window::{thread_stripe, Window};
use crate::State;

pub(super) const NANOS_PER_MS: u64 = 1_000_000;

/// The longest open period, as config bounds durations: a quarter of the state word's time ring.
const MAX_DURATION: Duration = Duration::from_millis(MAX_TIME_MS / 4);

pub(crate) struct Inner {
    pub(super) state: CachePadded<StateCell>,
    pub(super) probes: CachePadded<Probes>,
    pub(crate) consecutive: CachePadded<AtomicU32>,
    pub(super) open_streak: AtomicU32,
    pub(crate) window: Window,
    /// Refused calls since the breaker was built, striped like the window.
    rejected: Box<[CachePadded<AtomicU64>]>,
    pub(super) rules: Rules,
    pub(super) open: OpenPolicy,
    pub(super) probe_limit: u32,
    pub(super) max_half_open_ms: Option<u64>,
    pub(super) on_drop: DropPolicy,
    pub(crate) count_nested_refusals: bool,
    pub(crate) stripes: usize,
    pub(crate) clock: Clock,
    pub(super) name: Box<str>,
    listener: Option<Arc<BreakerListener>>,
    metrics: Metrics,
    pub(super) config: Config,
}

pub(super) struct Rules {
    pub(super) failure_rate: Option<Threshold>,
    pub(super) minimum_calls: u64,
    /// The slow-call threshold in the ticket's time units.
    pub(super) slow_threshold_units: Option<u64>,
    pub(super) slow_rate: Option<Threshold>,
    /// Time calls with the coarse clock: the threshold is at least `COARSE_TIMING_FROM`.
    pub(super) coarse_timing: bool,
    pub(super) consecutive: Option<u32>,
}

/// Slow-call thresholds from this length are timed with the coarse clock, whose error (about a
/// millisecond) is then at most 2% of the threshold.
const COARSE_TIMING_FROM: Duration = Duration::from_millis(50);

impl Rules {
    pub(super) fn new(config: &Config) -> Self {
        Self {
            failure_rate: config.failure_rate.map(Threshold::new),
            minimum_calls: u64::from(config.minimum_calls),
            slow_threshold_units: config
                .slow_calls
                .map(|s| (s.threshold.as_nanos() as u64) >> TIME_UNIT_SHIFT),
            slow_rate: config.slow_calls.map(|s| Threshold::new(s.rate)),
            coarse_timing: config
                .slow_calls
                .is_some_and(|s| s.threshold >= COARSE_TIMING_FROM),
            consecutive: config.consecutive_failures,
        }
    }
}

pub(super) struct OpenPolicy {
    pub(super) base: Duration,
    pub(super) multiplier: f64,
    pub(super) max: Duration,
    pub(super) jitter: f64,
    pub(super) function: Option<Arc<OpenDurationFn>>,
}

impl OpenPolicy {
    /// The length of the open period after `failed_probes` failed probes in a row.
    pub(super) fn duration(&self, context: &OpenContext) -> Duration {
        if let Some(function) = &self.function {
            return function(context).clamp(Duration::from_millis(1), MAX_DURATION);
        }
        let streak = context.failed_probes;
        let grown = self.base.as_secs_f64() * self.multiplier.powi(streak.min(64) as i32);
        let mut secs = grown.min(self.max.as_secs_f64());
        if self.jitter > 0.0 {
            secs *= 1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0);
        }
        Duration::from_secs_f64(secs.max(0.001))
    }
}

impl Inner {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        name: Box<str>,
        rules: Rules,
        window: Window,
        stripes: usize,
        open: OpenPolicy,
        clock: Clock,
        listener: Option<Arc<BreakerListener>>,
        metrics: Metrics,
        config: Config,
    ) -> Self {
        let initial = config.initial_state;
        let mut inner = Self {
            state: CachePadded::new(StateCell::new(Word::initial(State::Closed))),
            probes: CachePadded::new(Probes::new()),
            consecutive: CachePadded::new(AtomicU32::new(0)),
            open_streak: AtomicU32::new(0),
            window,
            rejected: (0..stripes).map(|_| CachePadded::default()).collect(),
            rules,
            probe_limit: config.half_open_probes,
            max_half_open_ms: config.max_half_open.map(|d| d.as_millis() as u64),
            on_drop: config.on_drop,
            count_nested_refusals: config.count_nested_refusals,
            stripes,
            open,
            clock,
            name,
            listener,
            metrics,
            config,
        };
        let now = inner.now_ms();
        let time = match initial {
            State::Open => {
                let context = OpenContext::new(State::Closed, 0, inner.open.base);
                now + (inner.open.duration(&context).as_millis() as u64).max(1)
            }
            State::HalfOpen => inner.half_open_deadline(now),
            _ => 0,
        };
        inner.state = CachePadded::new(StateCell::new(Word::initial_at(initial, time)));
        inner
    }

    #[inline]
    pub(super) fn now_ms(&self) -> u64 {
        self.clock.recent() / NANOS_PER_MS
    }

    /// When a half-open period entered at `now_ms` gives up; 0 for never.
    pub(super) fn half_open_deadline(&self, now_ms: u64) -> u64 {
        // Zero means "no deadline", so a deadline that wraps to zero moves by 1 ms.
        self.max_half_open_ms
            .map_or(0, |max| ((now_ms + max.max(1)) & MAX_TIME_MS).max(1))
    }

    /// The state word with any half-open period past its cap moved to open: that move is a
    /// fact the moment the cap passes, whether or not a call comes to see it.
    pub(super) fn settled(&self) -> Word {
        loop {
            let word = self.state.load();
            if word.state() != State::HalfOpen || word.time_ms() == 0 {
                return word;
            }
            if ms_until(word.time_ms(), self.now_ms()).is_some() {
                return word;
            }
            self.open_after_half_open_cap(word);
        }
    }

    /// The state as a reader should see it: the settled word, and an open period that has
    /// passed shown as half-open (a probe is due), without waiting for a call to move it.
    pub(super) fn effective(&self) -> (Word, State) {
        let word = self.settled();
        let state = match word.state() {
            State::Open if ms_until(word.time_ms(), self.now_ms()).is_none() => State::HalfOpen,
            state => state,
        };
        (word, state)
    }

    /// Half-open outlived its cap: open again, as after a failed probe, for an open period
    /// counted from the moment the cap passed.
    pub(super) fn open_after_half_open_cap(&self, word: Word) -> bool {
        self.open_from(word, word.time_ms())
    }

    /// Opens from closed or half-open, for an open period starting at `from_ms`; the period
    /// grows with failed probes in a row.
    pub(super) fn open_from(&self, word: Word, from_ms: u64) -> bool {
        let from = word.state();
        let streak = if from == State::HalfOpen {
            self.open_streak.load(Ordering::Relaxed).saturating_add(1)
        } else {
            0
        };
        let duration = self
            .open
            .duration(&OpenContext::new(from, streak, self.open.base));
        let until = from_ms + (duration.as_millis() as u64).max(1);
        if !self.state.transition(word, word.next(State::Open, until)) {
            return false;
        }
        self.open_streak.store(streak, Ordering::Relaxed);
        self.announce(from, State::Open);
        true
    }

    /// Opens now.
    pub(super) fn open(&self, word: Word) -> bool {
        self.open_from(word, self.now_ms())
    }

    pub(super) fn announce(&self, from: State, to: State) {
        self.metrics.transition(from, to);
        if let Some(listener) = &self.listener {
            listener.on_event(&Event {
                breaker: &self.name,
                kind: EventKind::Transition { from, to },
            });
        }
    }

    #[inline]
    pub(super) fn count_rejection(&self) {
        self.rejected[thread_stripe() & (self.stripes - 1)].fetch_add(1, Ordering::Relaxed);
        self.metrics.rejected();
    }

    pub(super) fn emit(&self, kind: EventKind) {
        if let Some(listener) = &self.listener {
            listener.on_event(&Event {
                breaker: &self.name,
                kind,
            });
        }
    }

    pub(super) fn note_slow_call(&self, elapsed: Duration) {
        self.metrics.slow_call();
        self.emit(EventKind::SlowCall { elapsed });
    }

    pub(super) fn snapshot(&self) -> Snapshot {
        let (word, state) = self.effective();
        let now_ns = self.clock.recent();
        let totals = self.window.totals(now_ns);
        let rate = |part: u64| {
            if totals.calls == 0 {
                0.0
            } else {
                part as f64 / totals.calls as f64
            }
        };
        let rejected = self
            .rejected
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add);
        Snapshot {
            name: self.name.to_string(),
            state,
            calls: totals.calls,
            failures: totals.failures,
            slow_calls: totals.slow,
            failure_rate: rate(totals.failures),
            slow_call_rate: rate(totals.slow),
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            rejected,
            retry_after: (state == State::Open).then(|| {
                Duration::from_millis(ms_until(word.time_ms(), now_ns / NANOS_PER_MS).unwrap_or(0))
            }),
            probes: (state == State::HalfOpen).then(|| {
                if word.state() == State::HalfOpen {
                    self.probes.counts(word.generation())
                } else {
                    (0, 0)
                }
            }),
        }
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("name", &self.name)
            .field("state", &self.state.load())
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}
