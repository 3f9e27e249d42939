//! One SLO: its SLI's counts, its objective, period, budget and burn-rate signals.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crossbeam_utils::CachePadded;
use metrics::{Counter, Gauge};
use parking_lot::Mutex;
use steadfast_core::metrics as names;
use steadfast_core::stripe::{default_stripes, thread_stripe};
use steadfast_core::{Clock, Outcome};

use crate::burn::{window_label, BurnWindow};
use crate::counts::{Counts, DowntimeTracker, History, Live, RING, SETTLE};
use crate::error::{check_name, ConfigError};
use crate::event::SloEventKind;
use crate::report::{Budget, BurnRate, Downtime, LatencyReport, SignalReport, SloReport};
use crate::sketch::{AtomicSketch, Sketch};
use crate::time::{whole_minutes, Maintenance, Period, TimeBase, MAX_PERIOD};

/// Minutes kept at minute resolution: three days and an hour, enough for the workbook's
/// longest window (3 d) to be exact.
const MINUTE_SPAN: u64 = 3 * 24 * 60 + 60;
/// The most maintenance windows an SLO keeps; past ones are dropped first.
pub const MAX_MAINTENANCE: usize = 256;
/// Five-minute blocks of latency sketches kept for the quantile readings (an hour and one).
const LATENCY_BLOCKS: usize = 13;

/// A service level objective over one SLI, and the recording handle of that SLI.
///
/// The SLI counts good and bad events (calls, by default classified by
/// [`Classify`](steadfast_core::Classify) in [`SliLayer`](crate::SliLayer)); the SLO holds it
/// to an objective over a period, which gives an error budget and burn rates.
///
/// Cloning shares the counts. Recording ([`record`](Slo::record)) allocates nothing and, but
/// for one event a minute per thread stripe, takes no lock: one clock load, one load of the
/// current slot's minute, one relaxed add into the calling thread's own stripe.
///
/// ```
/// use std::time::Duration;
/// use steadfast_core::{Clock, Outcome};
/// use steadfast_slo::{Period, Slo};
///
/// let (clock, time) = Clock::mock();
/// let checkout = Slo::builder("checkout")
///     .objective(0.99)
///     .period(Period::days(30))
///     .clock(clock)
///     .build()
///     .unwrap();
///
/// for i in 0..1000 {
///     checkout.record(if i % 200 == 0 { Outcome::Failure } else { Outcome::Success });
/// }
/// time.advance(Duration::from_secs(60));
/// let report = checkout.report();
/// assert_eq!((report.total, report.good), (1000, 995));
/// // 10 bad events allowed (1 % of 1000), 5 spent: half the budget is left.
/// assert!((report.budget.remaining - 0.5).abs() < 1e-9);
/// ```
#[derive(Clone)]
pub struct Slo {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) name: Arc<str>,
    pub(crate) service: Option<String>,
    pub(crate) objective: f64,
    pub(crate) period: Period,
    pub(crate) windows: Vec<BurnWindow>,
    /// Calls slower than this are bad even when they succeed; `u64::MAX` for none.
    threshold_ns: u64,
    latency: Option<LatencyLive>,
    pub(crate) freeze_below: f64,
    pub(crate) time: TimeBase,
    live: Live,
    state: Mutex<State>,
    handles: Handles,
}

/// A latency SLI's live sketches, one per live slot.
struct LatencyLive {
    quantile: f64,
    threshold: Duration,
    sketches: Box<[CachePadded<[AtomicSketch; RING]>]>,
}

struct State {
    history: History,
    downtime: Option<DowntimeTracker>,
    maintenance: Vec<Maintenance>,
    /// The minute the SLO was built: uptime does not count minutes before it.
    created: u64,
    signals: Vec<SignalState>,
    frozen: bool,
    published: Counts,
    published_down: u64,
    /// Latency sketches of five-minute blocks, for the quantile readings.
    blocks: Vec<(u64, Sketch)>,
}

#[derive(Clone, Copy, Default)]
struct SignalState {
    firing: bool,
    /// Monotonic nanoseconds of the last change.
    changed: Option<u64>,
}

struct Handles {
    events: Counter,
    errors: Counter,
    downtime: Counter,
    budget: Gauge,
    /// One per distinct window, in the order of `BurnRate`s in a report.
    burn: Vec<(Duration, Gauge)>,
    signals: Vec<SignalHandles>,
    freeze: [Counter; 2],
    latency: Option<Gauge>,
}

struct SignalHandles {
    firing: Gauge,
    /// Changes to firing, and to clear.
    changes: [Counter; 2],
}

impl Slo {
    /// Starts an SLO named `name` (a metric label: `[A-Za-z0-9_:-]`, at most 64 bytes) with
    /// the defaults: 99.9 % of events good over a rolling 30 days, the workbook's four burn-rate
    /// signals, a freeze under 10 % of the budget left.
    pub fn builder(name: impl Into<String>) -> SloBuilder {
        SloBuilder::new(name.into())
    }

    /// The SLO's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The service it belongs to.
    #[must_use]
    pub fn service(&self) -> Option<&str> {
        self.inner.service.as_deref()
    }

    /// The objective, a fraction.
    #[must_use]
    pub fn objective(&self) -> f64 {
        self.inner.objective
    }

    /// The period.
    #[must_use]
    pub fn period(&self) -> Period {
        self.inner.period
    }

    /// The burn-rate signals.
    #[must_use]
    pub fn windows(&self) -> &[BurnWindow] {
        &self.inner.windows
    }

    /// Whether recording needs a call's elapsed time (a latency threshold or a latency SLI):
    /// layers read the precise clock only then.
    #[must_use]
    pub fn times_calls(&self) -> bool {
        self.inner.threshold_ns != u64::MAX || self.inner.latency.is_some()
    }

    /// Records one event: a success is good, a failure bad, an ignored outcome nothing.
    ///
    /// A latency SLI or a latency threshold needs the call's time: use
    /// [`record_elapsed`](Slo::record_elapsed); here a success counts as good.
    #[inline]
    pub fn record(&self, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.inner.count(false, None),
            Outcome::Failure => self.inner.count(true, None),
            Outcome::Ignored => {}
        }
    }

    /// Records one event with the call's elapsed time: a success slower than the latency
    /// threshold is bad. For a latency SLI the time goes into the minute's sketch (failures
    /// included: their time is what callers waited).
    #[inline]
    pub fn record_elapsed(&self, outcome: Outcome, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        match outcome {
            Outcome::Success => self
                .inner
                .count(nanos > self.inner.threshold_ns, Some(nanos)),
            Outcome::Failure => self.inner.count(true, Some(nanos)),
            Outcome::Ignored => {}
        }
    }

    /// Records a good event.
    #[inline]
    pub fn good(&self) {
        self.inner.count(false, None);
    }

    /// Records a bad event.
    #[inline]
    pub fn bad(&self) {
        self.inner.count(true, None);
    }

    /// Declares a maintenance window: its minutes count neither as good nor as bad. Windows
    /// past the period are dropped; at most [`MAX_MAINTENANCE`] are kept (the one ending first
    /// goes first).
    ///
    /// Minutes are excluded as they are moved into the history, about two minutes after they
    /// end: declare windows ahead of time. A window declared after the fact excludes only the
    /// minutes not yet moved.
    pub fn add_maintenance(&self, window: Maintenance) {
        let mut state = self.inner.state.lock();
        let now = self.inner.time.minute();
        let horizon = self.inner.period.start(now);
        state.maintenance.retain(|w| w.end_minute() > horizon);
        if state.maintenance.len() == MAX_MAINTENANCE {
            if let Some(first) =
                (0..state.maintenance.len()).min_by_key(|&i| state.maintenance[i].end_minute())
            {
                state.maintenance.remove(first);
            }
        }
        state.maintenance.push(window);
    }

    /// Reads the SLO now. Signals read as the rates say; [`SloSet::evaluate`](crate::SloSet::evaluate)
    /// is what turns their changes into events, metrics and policy flips.
    #[must_use]
    pub fn report(&self) -> SloReport {
        let mut state = self.inner.state.lock();
        let now = self.inner.time.minute();
        self.inner.harvest(&mut state, now);
        self.inner.report(&state, now)
    }

    /// Heap bytes this SLO holds: fixed when it is built, whatever the traffic.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        let state = self.inner.state.lock();
        let latency = self.inner.latency.as_ref().map_or(0, |l| {
            l.sketches.len() * std::mem::size_of::<CachePadded<[AtomicSketch; RING]>>()
                + l.sketches.len() * RING * AtomicSketch::heap_bytes()
                + state
                    .blocks
                    .iter()
                    .map(|(_, s)| s.memory_bytes())
                    .sum::<usize>()
        });
        self.inner.live.bytes()
            + state.history.bytes()
            + state.downtime.as_ref().map_or(0, DowntimeTracker::bytes)
            + state.maintenance.capacity() * std::mem::size_of::<Maintenance>()
            + latency
    }

    /// The layer recording every call of a service into this SLO; see [`SliLayer`](crate::SliLayer).
    #[must_use]
    pub fn layer(&self) -> crate::SliLayer {
        crate::SliLayer::new(self.clone())
    }

    /// Evaluates and returns the report with the changes since the last evaluation.
    pub(crate) fn evaluate(&self) -> (SloReport, Vec<SloEventKind>) {
        self.inner.evaluate()
    }
}

impl fmt::Debug for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slo")
            .field("name", &self.inner.name)
            .field("objective", &self.inner.objective)
            .field("period", &self.inner.period)
            .finish_non_exhaustive()
    }
}

impl Inner {
    #[inline]
    fn count(&self, bad: bool, nanos: Option<u64>) {
        let minute = self.time.minute();
        let stripe = thread_stripe();
        let slot = self.live.slot(stripe, minute);
        if slot.minute.load(std::sync::atomic::Ordering::Acquire) != minute {
            self.roll(stripe, minute);
        }
        if let (Some(latency), Some(nanos)) = (&self.latency, nanos) {
            latency.sketch(stripe, minute).record_nanos(nanos);
        }
        Live::add(slot, bad);
    }

    /// A thread's first event of a minute: the slot still holds a minute four old, which is
    /// harvested before the slot is reused.
    #[cold]
    #[inline(never)]
    fn roll(&self, stripe: usize, minute: u64) {
        let mut state = self.state.lock();
        let slot = self.live.slot(stripe, minute);
        if slot.minute.load(std::sync::atomic::Ordering::Acquire) >= minute {
            return;
        }
        self.harvest(&mut state, minute);
        Live::reuse(slot, minute);
    }

    /// Moves every settled minute from the live ring into the history, then judges downtime.
    fn harvest(&self, state: &mut State, now: u64) {
        let State {
            history,
            maintenance,
            downtime,
            blocks,
            ..
        } = state;
        let in_maintenance = |m: u64| maintenance.iter().any(|w| w.holds(m));
        match &self.latency {
            None => self.live.harvest(now, |_, _, minute, counts| {
                if !in_maintenance(minute) {
                    history.add(minute, counts);
                }
            }),
            Some(latency) => {
                let mut minutes: Vec<(u64, Sketch)> = Vec::new();
                self.live.harvest(now, |stripe, index, minute, _| {
                    let mut drained = Sketch::new();
                    latency.sketches[stripe][index].drain_into(&mut drained);
                    if in_maintenance(minute) || drained.is_empty() {
                        return;
                    }
                    match minutes.iter_mut().find(|(m, _)| *m == minute) {
                        Some((_, sketch)) => sketch.merge(&drained),
                        None => minutes.push((minute, drained)),
                    }
                });
                for (minute, sketch) in minutes {
                    let bad = sketch
                        .quantile(latency.quantile)
                        .is_some_and(|q| q > latency.threshold);
                    history.add(
                        minute,
                        Counts {
                            total: 1,
                            bad: u64::from(bad),
                        },
                    );
                    let block = minute / 5;
                    match blocks.iter_mut().find(|(b, _)| *b == block) {
                        Some((_, held)) => held.merge(&sketch),
                        None => {
                            if blocks.len() == LATENCY_BLOCKS {
                                if let Some(oldest) = (0..blocks.len()).min_by_key(|&i| blocks[i].0)
                                {
                                    blocks.swap_remove(oldest);
                                }
                            }
                            blocks.push((block, sketch));
                        }
                    }
                }
            }
        }
        if let Some(tracker) = downtime {
            tracker.judge(now.saturating_sub(SETTLE), history);
        }
    }

    /// Counts of the minutes `from..=now`: the history, and the live minutes not yet harvested
    /// (events only: a latency minute is judged once it is settled).
    fn window(&self, state: &State, from: u64, now: u64) -> Counts {
        let mut counts = state.history.sum(from, now);
        if self.latency.is_none() {
            self.live.peek(from, now, |minute, live| {
                if !state.maintenance.iter().any(|w| w.holds(minute)) {
                    counts.add(live);
                }
            });
        }
        counts
    }

    fn burn_rate(&self, counts: Counts) -> f64 {
        if counts.total == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let ratio = counts.bad as f64 / counts.total as f64;
        ratio / (1.0 - self.objective)
    }

    fn report(&self, state: &State, now: u64) -> SloReport {
        let period = self.window(state, self.period.start(now), now);
        #[allow(clippy::cast_precision_loss)]
        let (good, total, bad) = (
            period.total - period.bad.min(period.total),
            period.total,
            period.bad as f64,
        );
        #[allow(clippy::cast_precision_loss)]
        let allowed = (1.0 - self.objective) * total as f64;
        let budget = Budget {
            allowed,
            spent: period.bad,
            remaining_events: allowed - bad,
            remaining: if total == 0 { 1.0 } else { 1.0 - bad / allowed },
        };
        #[allow(clippy::cast_precision_loss)]
        let attained = (total != 0).then(|| good as f64 / total as f64);

        let rate = |length: Duration| {
            let counts = self.window(state, (now + 1).saturating_sub(whole_minutes(length)), now);
            (self.burn_rate(counts), counts)
        };
        let burn_rates = self
            .handles
            .burn
            .iter()
            .map(|(length, _)| {
                let (value, counts) = rate(*length);
                BurnRate {
                    window: window_label(*length),
                    length: *length,
                    rate: value,
                    total: counts.total,
                    bad: counts.bad,
                }
            })
            .collect::<Vec<_>>();
        let rate_of = |length: Duration| {
            burn_rates
                .iter()
                .find(|r| r.length == length)
                .map_or(0.0, |r| r.rate)
        };
        let mono = self.time.mono();
        let signals = self
            .windows
            .iter()
            .zip(&state.signals)
            .map(|(window, held)| {
                let (long_rate, short_rate) = (rate_of(window.long), rate_of(window.short));
                SignalReport {
                    name: window.name.clone(),
                    severity: window.severity,
                    firing: long_rate > window.factor && short_rate > window.factor,
                    factor: window.factor,
                    long_rate,
                    short_rate,
                    for_duration: held
                        .changed
                        .map(|at| Duration::from_nanos(mono.saturating_sub(at))),
                }
            })
            .collect();

        let downtime = state.downtime.as_ref().map(|tracker| {
            let judged = now.saturating_sub(SETTLE);
            let from = self.period.start(now).max(state.created);
            let down = tracker.down(from, judged);
            let span = (judged + 1).saturating_sub(from);
            let maintenance: u64 = state
                .maintenance
                .iter()
                .map(|w| w.overlap(from, judged))
                .sum();
            Downtime {
                down_minutes: down,
                up_minutes: span.saturating_sub(down).saturating_sub(maintenance),
            }
        });

        let latency = self.latency.as_ref().map(|latency| {
            let judged = now.saturating_sub(SETTLE);
            let merged = |minutes: u64| {
                let first = (judged + 1).saturating_sub(minutes) / 5;
                let mut sketch = Sketch::new();
                for (block, held) in &state.blocks {
                    if (first..=judged / 5).contains(block) {
                        sketch.merge(held);
                    }
                }
                sketch.quantile(latency.quantile)
            };
            LatencyReport {
                quantile: latency.quantile,
                threshold: latency.threshold,
                last_5m: merged(5),
                last_1h: merged(60),
            }
        });

        SloReport {
            name: self.name.to_string(),
            service: self.service.clone(),
            kind: if self.latency.is_some() {
                "latency"
            } else {
                "events"
            },
            objective: self.objective,
            period: self.period.to_string(),
            good,
            total,
            attained,
            budget,
            burn_rates,
            signals,
            downtime,
            latency,
            // Judged once the budget allows at least one bad event: before that, one error is a
            // budget spent many times over, and a freeze would flap on every young period.
            freeze: self.freeze_below > 0.0
                && allowed >= 1.0
                && budget.remaining < self.freeze_below,
        }
    }

    fn evaluate(&self) -> (SloReport, Vec<SloEventKind>) {
        let mut state = self.state.lock();
        let now = self.time.minute();
        self.harvest(&mut state, now);
        let mut report = self.report(&state, now);
        let mono = self.time.mono();
        let mut changes = Vec::new();
        for (i, signal) in report.signals.iter_mut().enumerate() {
            let held = &mut state.signals[i];
            if signal.firing != held.firing {
                held.firing = signal.firing;
                held.changed = Some(mono);
                signal.for_duration = Some(Duration::ZERO);
                let handles = &self.handles.signals[i];
                handles.firing.set(f64::from(u8::from(signal.firing)));
                handles.changes[usize::from(!signal.firing)].increment(1);
                changes.push(if signal.firing {
                    SloEventKind::Fired {
                        signal: signal.name.clone(),
                        severity: signal.severity,
                        long_rate: signal.long_rate,
                        short_rate: signal.short_rate,
                    }
                } else {
                    SloEventKind::Cleared {
                        signal: signal.name.clone(),
                        severity: signal.severity,
                    }
                });
            }
        }
        if report.freeze != state.frozen {
            state.frozen = report.freeze;
            self.handles.freeze[usize::from(!report.freeze)].increment(1);
            changes.push(if report.freeze {
                SloEventKind::Frozen
            } else {
                SloEventKind::Thawed
            });
        }

        // The exported counters: everything harvested plus the live minutes, so that a scrape
        // sees events within the evaluation interval.
        let mut seen = state.history.ever;
        if self.latency.is_none() {
            self.live
                .peek(now.saturating_sub(SETTLE - 1), now, |minute, live| {
                    if !state.maintenance.iter().any(|w| w.holds(minute)) {
                        seen.add(live);
                    }
                });
        }
        self.handles
            .events
            .increment(seen.total.saturating_sub(state.published.total));
        self.handles
            .errors
            .increment(seen.bad.saturating_sub(state.published.bad));
        state.published.total = state.published.total.max(seen.total);
        state.published.bad = state.published.bad.max(seen.bad);
        if let Some(tracker) = &state.downtime {
            self.handles
                .downtime
                .increment(tracker.ever.saturating_sub(state.published_down));
            state.published_down = state.published_down.max(tracker.ever);
        }
        self.handles.budget.set(report.budget.remaining);
        for ((_, gauge), rate) in self.handles.burn.iter().zip(&report.burn_rates) {
            gauge.set(rate.rate);
        }
        if let (Some(gauge), Some(latency)) = (&self.handles.latency, &report.latency) {
            if let Some(value) = latency.last_5m {
                gauge.set(value.as_secs_f64());
            }
        }
        (report, changes)
    }
}

impl Inner {
    /// The latency threshold of an events SLI (`Duration::MAX` for none).
    /// The time past which a call is slow: the latency SLI's threshold, or the events SLI's
    /// latency threshold (`Duration::MAX` for none).
    pub(crate) fn threshold(&self) -> Duration {
        if let Some(latency) = &self.latency {
            return latency.threshold;
        }
        if self.threshold_ns == u64::MAX {
            Duration::MAX
        } else {
            Duration::from_nanos(self.threshold_ns)
        }
    }
}

impl LatencyLive {
    #[inline]
    fn sketch(&self, stripe: usize, minute: u64) -> &AtomicSketch {
        #[allow(clippy::cast_possible_truncation)]
        let index = (minute as usize) & (RING - 1);
        &self.sketches[stripe & (self.sketches.len() - 1)][index]
    }
}

/// Builds an [`Slo`]; made by [`Slo::builder`].
#[derive(Clone, Debug)]
pub struct SloBuilder {
    name: String,
    service: Option<String>,
    objective: f64,
    period: Period,
    windows: Vec<BurnWindow>,
    latency_threshold: Option<Duration>,
    percentile: Option<(f64, Duration)>,
    downtime: Option<(f64, u32)>,
    maintenance: Vec<Maintenance>,
    freeze_below: f64,
    clock: Option<Clock>,
    start: Option<SystemTime>,
    stripes: Option<usize>,
}

impl SloBuilder {
    fn new(name: String) -> Self {
        Self {
            name,
            service: None,
            objective: 0.999,
            period: Period::days(30),
            windows: BurnWindow::defaults(),
            latency_threshold: None,
            percentile: None,
            downtime: None,
            maintenance: Vec::new(),
            freeze_below: 0.1,
            clock: None,
            start: None,
            stripes: None,
        }
    }

    /// The service this SLO belongs to: the status page groups and scores by it.
    #[must_use]
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// The objective, a fraction in (0, 1): 0.999 for 99.9 % (the default).
    #[must_use]
    pub fn objective(mut self, objective: f64) -> Self {
        self.objective = objective;
        self
    }

    /// The period (default 30 days rolling).
    #[must_use]
    pub fn period(mut self, period: Period) -> Self {
        self.period = period;
        self
    }

    /// Replaces the burn-rate signals (default [`BurnWindow::defaults`]). Windows are kept to
    /// the minute and may be at most three days long.
    #[must_use]
    pub fn windows(mut self, windows: Vec<BurnWindow>) -> Self {
        self.windows = windows;
        self
    }

    /// A call is good only if it succeeded within `threshold` (the layer times calls then).
    #[must_use]
    pub fn latency_threshold(mut self, threshold: Duration) -> Self {
        self.latency_threshold = Some(threshold);
        self
    }

    /// Makes this a latency SLI: "the `quantile` of call times stays within `threshold`",
    /// judged per minute from a sketch of that minute's calls (see [`sketch`](crate::sketch)
    /// for its error). Events are then minutes: a minute with calls is good when its quantile
    /// is within the threshold. Minutes are judged once settled, two minutes on.
    #[must_use]
    pub fn percentile(mut self, quantile: f64, threshold: Duration) -> Self {
        self.percentile = Some((quantile, threshold));
        self
    }

    /// Counts downtime minutes as SLA reports do: a minute is down when its error rate passes
    /// `error_rate`, and a run of such minutes counts once it lasts `min_minutes`.
    #[must_use]
    pub fn downtime(mut self, error_rate: f64, min_minutes: u32) -> Self {
        self.downtime = Some((error_rate, min_minutes));
        self
    }

    /// A maintenance window, excluded from good and total.
    #[must_use]
    pub fn maintenance(mut self, window: Maintenance) -> Self {
        self.maintenance.push(window);
        self
    }

    /// Raise the freeze signal when less than this fraction of the budget is left (default
    /// 0.1; 0 turns it off).
    #[must_use]
    pub fn freeze_below(mut self, fraction: f64) -> Self {
        self.freeze_below = fraction;
        self
    }

    /// The clock (default the real coarse clock); tests pass [`Clock::mock`].
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The wall-clock time the clock's current reading stands for (default now). With a mock
    /// clock this places the test in the calendar.
    #[must_use]
    pub fn start_at(mut self, now: SystemTime) -> Self {
        self.start = Some(now);
        self
    }

    /// Counter stripes (default: the machine's parallelism as a power of two, at most 32).
    #[must_use]
    pub fn stripes(mut self, stripes: usize) -> Self {
        self.stripes = Some(stripes);
        self
    }

    /// Checks the definition and builds the SLO, registering its metrics with the recorder
    /// installed now.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first thing wrong.
    pub fn build(self) -> Result<Slo, ConfigError> {
        check_name(&self.name)?;
        if let Some(service) = &self.service {
            check_name(service)?;
        }
        if !(self.objective > 0.0 && self.objective < 1.0) {
            return Err(ConfigError::Objective(self.objective));
        }
        if let Period::Rolling(length) = self.period {
            if length < Duration::from_secs(60) || length > MAX_PERIOD {
                return Err(ConfigError::Period);
            }
        }
        let minute_limit = Duration::from_secs(MINUTE_SPAN * 60 - 3600);
        if self.windows.is_empty() {
            return Err(ConfigError::Window("at least one signal is needed".into()));
        }
        for window in &self.windows {
            // Signal names become alert labels: the rules' own charset and length.
            let name_ok = !window.name.is_empty()
                && window.name.len() <= 32
                && window
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !name_ok {
                return Err(ConfigError::Window(format!(
                    "name {:?}: use 1 to 32 of [a-z0-9_]",
                    window.name
                )));
            }
            // Counts are per minute, and Prometheus must read the same windows.
            let whole = |d: Duration| d.subsec_nanos() == 0 && d.as_secs() % 60 == 0;
            if !whole(window.short) || !whole(window.long) {
                return Err(ConfigError::Window(format!(
                    "{}: windows must be whole minutes",
                    window.name
                )));
            }
            if window.short.is_zero() || window.long.is_zero() {
                return Err(ConfigError::Window(format!(
                    "{}: a zero window",
                    window.name
                )));
            }
            if window.short >= window.long {
                return Err(ConfigError::Window(format!(
                    "{}: the short window must be shorter than the long one",
                    window.name
                )));
            }
            if window.long > minute_limit {
                return Err(ConfigError::Window(format!(
                    "{}: windows may be at most 3 days",
                    window.name
                )));
            }
            if !(window.factor.is_finite() && window.factor > 0.0) {
                return Err(ConfigError::Window(format!(
                    "{}: the factor must be a positive number",
                    window.name
                )));
            }
        }
        if self
            .windows
            .iter()
            .enumerate()
            .any(|(i, w)| self.windows[..i].iter().any(|other| other.name == w.name))
        {
            return Err(ConfigError::Window("two signals share a name".into()));
        }
        if let Some((quantile, threshold)) = self.percentile {
            if !(quantile > 0.0 && quantile < 1.0) || threshold.is_zero() {
                return Err(ConfigError::Latency);
            }
        }
        if self.latency_threshold.is_some_and(|t| t.is_zero())
            || (self.latency_threshold.is_some() && self.percentile.is_some())
        {
            return Err(ConfigError::Latency);
        }
        if let Some((rate, run)) = self.downtime {
            if !(0.0..1.0).contains(&rate) || run == 0 {
                return Err(ConfigError::Downtime);
            }
        }
        if !(0.0..=1.0).contains(&self.freeze_below) {
            return Err(ConfigError::Freeze(self.freeze_below));
        }
        if self.maintenance.len() > MAX_MAINTENANCE {
            return Err(ConfigError::Maintenance);
        }

        let clock = self.clock.unwrap_or_default();
        let time = TimeBase::new(clock, self.start.unwrap_or_else(SystemTime::now));
        let stripes = self
            .stripes
            .unwrap_or_else(default_stripes)
            .max(1)
            .next_power_of_two();
        let span = self.period.max_minutes();
        let name: Arc<str> = Arc::from(self.name.as_str());
        let handles = Handles::new(&name, &self.windows, self.percentile.map(|p| p.0));
        let created = time.minute();
        let latency = self.percentile.map(|(quantile, threshold)| LatencyLive {
            quantile,
            threshold,
            sketches: (0..stripes)
                .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicSketch::new())))
                .collect(),
        });
        let state = State {
            history: History::new(MINUTE_SPAN, span.div_ceil(60) + 1),
            downtime: self
                .downtime
                .map(|(rate, run)| DowntimeTracker::new(rate, u64::from(run), span)),
            maintenance: self.maintenance,
            created,
            signals: vec![SignalState::default(); self.windows.len()],
            frozen: false,
            published: Counts::default(),
            published_down: 0,
            blocks: Vec::new(),
        };
        Ok(Slo {
            inner: Arc::new(Inner {
                name,
                service: self.service,
                objective: self.objective,
                period: self.period,
                windows: self.windows,
                threshold_ns: self.latency_threshold.map_or(u64::MAX, |t| {
                    u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
                }),
                latency,
                freeze_below: self.freeze_below,
                time,
                live: Live::new(stripes),
                state: Mutex::new(state),
                handles,
            }),
        })
    }
}

impl Handles {
    fn new(name: &Arc<str>, windows: &[BurnWindow], quantile: Option<f64>) -> Self {
        let slo = name.to_string();
        let mut lengths: Vec<Duration> = windows.iter().flat_map(|w| [w.short, w.long]).collect();
        lengths.sort();
        lengths.dedup();
        let changes = |signal: &str| {
            ["firing", "clear"].map(|to| {
                metrics::counter!(
                    names::SLO_SIGNAL_CHANGES,
                    names::LABEL_SLO => slo.clone(),
                    names::LABEL_SIGNAL => signal.to_owned(),
                    names::LABEL_TO => to,
                )
            })
        };
        Self {
            events: metrics::counter!(names::SLO_EVENTS, names::LABEL_SLO => slo.clone()),
            errors: metrics::counter!(names::SLO_ERRORS, names::LABEL_SLO => slo.clone()),
            downtime: metrics::counter!(names::SLO_DOWNTIME_MINUTES, names::LABEL_SLO => slo.clone()),
            budget: metrics::gauge!(names::SLO_BUDGET_REMAINING, names::LABEL_SLO => slo.clone()),
            burn: lengths
                .into_iter()
                .map(|length| {
                    let gauge = metrics::gauge!(
                        names::SLO_BURN_RATE,
                        names::LABEL_SLO => slo.clone(),
                        names::LABEL_WINDOW => window_label(length),
                    );
                    (length, gauge)
                })
                .collect(),
            signals: windows
                .iter()
                .map(|w| SignalHandles {
                    firing: metrics::gauge!(
                        names::SLO_SIGNAL,
                        names::LABEL_SLO => slo.clone(),
                        names::LABEL_SIGNAL => w.name.clone(),
                        names::LABEL_SEVERITY => w.severity.as_str(),
                    ),
                    changes: changes(&w.name),
                })
                .collect(),
            freeze: changes("freeze"),
            latency: quantile.map(|q| {
                metrics::gauge!(
                    names::SLO_LATENCY,
                    names::LABEL_SLO => slo.clone(),
                    names::LABEL_QUANTILE => q.to_string(),
                )
            }),
        }
    }
}
