//! Event counts: a striped ring of live minutes, written without locks, for recording, and a bounded
//! history of harvested minutes and hours for reading windows and periods.
//!
//! Recording touches only the calling thread's stripe: one load of the slot's minute tag and
//! one relaxed `fetch_add` of a word holding both the total (high half) and the bad count (low
//! half). Once a minute per stripe, a slot is reused for a new minute; the thread doing so
//! harvests what the ring holds into the history first, under the history's lock.
//!
//! A minute is harvested once it is two minutes old, so writers that read the clock just
//! before a minute turned still land in a slot nobody harvests at the same moment.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// Live minutes per stripe. A slot is reused four minutes on, well after its harvest.
pub(crate) const RING: usize = 4;
/// How old a minute must be before it is harvested.
pub(crate) const SETTLE: u64 = 2;
const TOTAL_ONE: u64 = 1 << 32;
const BAD_MASK: u64 = TOTAL_ONE - 1;

/// Good and bad events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) total: u64,
    pub(crate) bad: u64,
}

impl Counts {
    fn unpack(word: u64) -> Self {
        Self {
            total: word >> 32,
            bad: word & BAD_MASK,
        }
    }

    pub(crate) fn add(&mut self, other: Counts) {
        self.total += other.total;
        self.bad += other.bad;
    }

    fn sub(&mut self, other: Counts) {
        self.total = self.total.saturating_sub(other.total);
        self.bad = self.bad.saturating_sub(other.bad);
    }
}

pub(crate) struct Slot {
    pub(crate) minute: AtomicU64,
    counts: AtomicU64,
}

/// The live minutes, one ring per stripe.
pub(crate) struct Live {
    stripes: Box<[CachePadded<[Slot; RING]>]>,
    mask: usize,
}

impl Live {
    pub(crate) fn new(stripes: usize) -> Self {
        let stripes = stripes.max(1).next_power_of_two();
        Self {
            stripes: (0..stripes)
                .map(|_| {
                    CachePadded::new(std::array::from_fn(|_| Slot {
                        minute: AtomicU64::new(0),
                        counts: AtomicU64::new(0),
                    }))
                })
                .collect(),
            mask: stripes - 1,
        }
    }

    /// The slot of `minute` in the calling thread's stripe.
    #[inline]
    pub(crate) fn slot(&self, stripe: usize, minute: u64) -> &Slot {
        // The ring length is a power of two; the cast keeps the low bits.
        #[allow(clippy::cast_possible_truncation)]
        let index = (minute as usize) & (RING - 1);
        &self.stripes[stripe & self.mask][index]
    }

    #[inline]
    pub(crate) fn add(slot: &Slot, bad: bool) {
        slot.counts
            .fetch_add(TOTAL_ONE | u64::from(bad), Ordering::Relaxed);
    }

    /// Takes every settled minute's counts out of the ring, oldest stripes first.
    /// `into` gets the stripe and slot indices too, for state kept beside the counts.
    pub(crate) fn harvest(&self, now: u64, mut into: impl FnMut(usize, usize, u64, Counts)) {
        for (s, stripe) in self.stripes.iter().enumerate() {
            for (i, slot) in stripe.iter().enumerate() {
                let minute = slot.minute.load(Ordering::Acquire);
                if minute + SETTLE <= now {
                    let word = slot.counts.swap(0, Ordering::AcqRel);
                    if word != 0 {
                        into(s, i, minute, Counts::unpack(word));
                    }
                }
            }
        }
    }

    /// Reads, without taking, the counts of minutes `from..=now` still in the ring.
    pub(crate) fn peek(&self, from: u64, now: u64, mut into: impl FnMut(u64, Counts)) {
        for stripe in self.stripes.iter() {
            for slot in stripe.iter() {
                let minute = slot.minute.load(Ordering::Acquire);
                if (from..=now).contains(&minute) {
                    let word = slot.counts.load(Ordering::Acquire);
                    if word != 0 {
                        into(minute, Counts::unpack(word));
                    }
                }
            }
        }
    }

    /// Moves `slot` to `minute` once its old counts are harvested (the caller holds the
    /// history's lock and has harvested).
    pub(crate) fn reuse(slot: &Slot, minute: u64) {
        slot.minute.store(minute, Ordering::Release);
    }

    /// Heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.stripes.len() * std::mem::size_of::<CachePadded<[Slot; RING]>>()
    }
}

/// A ring of per-unit counts (a unit being a minute or an hour), the newest at `head`.
struct Ring {
    cells: Box<[Counts]>,
    /// The newest unit written, or `None` before the first.
    head: Option<u64>,
}

impl Ring {
    fn new(len: u64) -> Self {
        let len = usize::try_from(len.max(1)).unwrap_or(usize::MAX);
        Self {
            cells: vec![Counts::default(); len].into_boxed_slice(),
            head: None,
        }
    }

    fn len(&self) -> u64 {
        self.cells.len() as u64
    }

    fn index(&self, unit: u64) -> usize {
        usize::try_from(unit % self.len()).unwrap_or(0)
    }

    /// The oldest unit the ring still holds.
    fn oldest(&self) -> Option<u64> {
        self.head.map(|head| (head + 1).saturating_sub(self.len()))
    }

    fn add(&mut self, unit: u64, counts: Counts) {
        match self.head {
            Some(head) if unit <= head => {
                if unit + self.len() <= head {
                    return; // older than the ring holds
                }
            }
            Some(head) => {
                // Clears the units between the old head and the new one.
                let clear = (unit - head).min(self.len());
                for u in (unit + 1 - clear)..=unit {
                    let i = self.index(u);
                    self.cells[i] = Counts::default();
                }
                self.head = Some(unit);
            }
            None => self.head = Some(unit),
        }
        let i = self.index(unit);
        self.cells[i].add(counts);
    }

    /// The counts of unit `unit`, if the ring holds it.
    fn get(&self, unit: u64) -> Counts {
        match (self.oldest(), self.head) {
            (Some(oldest), Some(head)) if (oldest..=head).contains(&unit) => {
                self.cells[self.index(unit)]
            }
            _ => Counts::default(),
        }
    }
}

/// Harvested counts: per minute over the last `minute_span` minutes, per hour over the last
/// `hour_span` hours.
pub(crate) struct History {
    minutes: Ring,
    hours: Ring,
    /// Everything harvested, for the exported counters.
    pub(crate) ever: Counts,
}

impl History {
    pub(crate) fn new(minute_span: u64, hour_span: u64) -> Self {
        Self {
            minutes: Ring::new(minute_span),
            hours: Ring::new(hour_span),
            ever: Counts::default(),
        }
    }

    pub(crate) fn add(&mut self, minute: u64, counts: Counts) {
        self.minutes.add(minute, counts);
        self.hours.add(minute / 60, counts);
        self.ever.add(counts);
    }

    /// The counts of one minute, if still held at minute resolution.
    pub(crate) fn minute(&self, minute: u64) -> Counts {
        self.minutes.get(minute)
    }

    pub(crate) fn minute_span(&self) -> u64 {
        self.minutes.len()
    }

    /// Counts of minutes `from..=to`. Exact where the minute ring reaches; beyond it, whole
    /// hours that start at or after `from`.
    pub(crate) fn sum(&self, from: u64, to: u64) -> Counts {
        let mut total = Counts::default();
        if from > to {
            return total;
        }
        let Some(oldest) = self.minutes.oldest() else {
            return total;
        };
        let exact_from = from.max(oldest);
        for minute in exact_from..=to {
            total.add(self.minutes.get(minute));
        }
        if from < exact_from {
            // The hour holding `exact_from` is partly in the minute ring: its hour total less
            // the minutes the ring still has gives the part the ring no longer has.
            let split = exact_from / 60;
            if exact_from % 60 != 0 && split * 60 >= from {
                let mut early = self.hours.get(split);
                let mut held = Counts::default();
                for minute in exact_from..(split * 60 + 60).min(to + 1) {
                    held.add(self.minutes.get(minute));
                }
                early.sub(held);
                // Minutes of this hour after `to` are in the hour total too; windows end now,
                // so there are none.
                total.add(early);
            }
            let first_hour = from.div_ceil(60);
            let last_hour = if exact_from % 60 == 0 {
                exact_from / 60
            } else {
                split
            };
            for hour in first_hour..last_hour {
                total.add(self.hours.get(hour));
            }
        }
        total
    }

    /// Heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        (self.minutes.cells.len() + self.hours.cells.len()) * std::mem::size_of::<Counts>()
    }
}

/// Minutes counted down, as SLA reports count them: a minute is down when its error rate
/// passes the threshold, and a run of such minutes counts once it lasts the minimum length.
pub(crate) struct DowntimeTracker {
    pub(crate) error_rate: f64,
    pub(crate) min_run: u64,
    /// One bit per minute, a ring over the longest period.
    bits: Box<[u64]>,
    /// The newest minute judged.
    judged: Option<u64>,
    run: u64,
    /// Every minute counted down, for the exported counter.
    pub(crate) ever: u64,
}

impl DowntimeTracker {
    pub(crate) fn new(error_rate: f64, min_run: u64, span: u64) -> Self {
        let words = usize::try_from(span.div_ceil(64).max(1)).unwrap_or(1);
        Self {
            error_rate,
            min_run: min_run.max(1),
            bits: vec![0; words].into_boxed_slice(),
            judged: None,
            run: 0,
            ever: 0,
        }
    }

    fn span(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    fn position(&self, minute: u64) -> (usize, u64) {
        let bit = minute % self.span();
        (usize::try_from(bit / 64).unwrap_or(0), 1 << (bit % 64))
    }

    fn set(&mut self, minute: u64, down: bool) {
        let (word, mask) = self.position(minute);
        if down {
            self.bits[word] |= mask;
        } else {
            self.bits[word] &= !mask;
        }
    }

    fn is_down(&self, minute: u64) -> bool {
        let (word, mask) = self.position(minute);
        self.bits[word] & mask != 0
    }

    /// Judges every settled minute up to `upto`, reading their counts from `history`.
    pub(crate) fn judge(&mut self, upto: u64, history: &History) {
        let start = match self.judged {
            Some(judged) if judged >= upto => return,
            Some(judged) => (judged + 1).max((upto + 1).saturating_sub(history.minute_span())),
            None => match history.minutes.oldest() {
                Some(oldest) => oldest,
                None => return,
            },
        };
        if let Some(judged) = self.judged {
            // Minutes skipped (not held at minute resolution any more) break a run, and their
            // bits, a span old, must not read as down again.
            if start > judged + 1 {
                self.run = 0;
                let skipped = (start - judged - 1).min(self.span());
                for minute in (start - skipped)..start {
                    self.set(minute, false);
                }
            }
        }
        for minute in start..=upto {
            let counts = history.minute(minute);
            #[allow(clippy::cast_precision_loss)]
            let down =
                counts.total > 0 && counts.bad as f64 / counts.total as f64 > self.error_rate;
            self.set(minute, false);
            if down {
                self.run += 1;
                if self.run == self.min_run {
                    for m in (minute + 1 - self.min_run)..=minute {
                        self.set(m, true);
                    }
                    self.ever += self.min_run;
                } else if self.run > self.min_run {
                    self.set(minute, true);
                    self.ever += 1;
                }
            } else {
                self.run = 0;
            }
        }
        self.judged = Some(upto);
    }

    /// Down minutes among `from..=to` (judged ones only).
    pub(crate) fn down(&self, from: u64, to: u64) -> u64 {
        let Some(judged) = self.judged else {
            return 0;
        };
        let from = from.max((judged + 1).saturating_sub(self.span()));
        let to = to.min(judged);
        (from..=to).filter(|&m| self.is_down(m)).count() as u64
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bits.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(total: u64, bad: u64) -> Counts {
        Counts { total, bad }
    }

    #[test]
    fn live_records_and_harvests_settled_minutes() {
        let live = Live::new(2);
        for stripe in 0..2 {
            let slot = live.slot(stripe, 10);
            Live::reuse(slot, 10);
            Live::add(slot, false);
            Live::add(slot, true);
        }
        let mut seen = Vec::new();
        live.harvest(11, |_, _, m, counts| seen.push((m, counts)));
        assert!(seen.is_empty(), "minute 10 is not settled at 11");
        let mut peeked = Counts::default();
        live.peek(10, 11, |_, counts| peeked.add(counts));
        assert_eq!(peeked, c(4, 2));
        live.harvest(12, |_, _, m, counts| seen.push((m, counts)));
        assert_eq!(seen, vec![(10, c(2, 1)), (10, c(2, 1))]);
        let mut again = Vec::new();
        live.harvest(12, |_, _, m, counts| again.push((m, counts)));
        assert!(again.is_empty(), "harvested once");
    }

    #[test]
    fn ring_clears_skipped_units() {
        let mut ring = Ring::new(4);
        ring.add(1, c(1, 0));
        ring.add(2, c(2, 0));
        ring.add(7, c(7, 0));
        assert_eq!(ring.get(2), Counts::default(), "out of the ring");
        assert_eq!(ring.get(7), c(7, 0));
        ring.add(5, c(5, 1));
        assert_eq!(ring.get(5), c(5, 1));
        assert_eq!(ring.get(6), Counts::default());
        ring.add(3, c(3, 0));
        assert_eq!(ring.get(3), Counts::default(), "too old to keep");
    }

    #[test]
    fn sums_are_exact_in_minutes_and_whole_hours_beyond() {
        // 3 hours of minutes kept, days of hours.
        let mut history = History::new(180, 48);
        for minute in 0..600 {
            history.add(minute, c(10, minute % 2));
        }
        // Minutes 420..=599 are held exactly.
        assert_eq!(history.sum(500, 599), c(1000, 50));
        // 360..=599: hour 6 (360..420) comes from the hour ring.
        assert_eq!(history.sum(360, 599), c(2400, 120));
        // A start inside an hour beyond the ring drops that hour's early part (whole hours
        // only beyond the minute ring).
        assert_eq!(history.sum(365, 599), c(1800, 90));
        // The ring boundary inside an hour: 450..=599 held by minutes, 420..450 by the hour.
        let mut short = History::new(150, 48);
        for minute in 0..600 {
            short.add(minute, c(1, 0));
        }
        assert_eq!(short.sum(420, 599), c(180, 0));
        assert_eq!(short.sum(0, 599), c(600, 0));
    }

    #[test]
    fn downtime_counts_runs_of_the_minimum_length() {
        let mut history = History::new(100, 10);
        // Minutes 0..20: down at 3..5 (a run of 2) and 10..14 (a run of 4).
        for minute in 0..20 {
            let bad = if (3..5).contains(&minute) || (10..14).contains(&minute) {
                5
            } else {
                0
            };
            history.add(minute, c(10, bad));
        }
        let mut tracker = DowntimeTracker::new(0.1, 3, 100);
        tracker.judge(19, &history);
        assert_eq!(tracker.down(0, 19), 4);
        assert_eq!(
            tracker.down(0, 9),
            0,
            "a run shorter than the minimum is not downtime"
        );
        assert_eq!(
            tracker.down(12, 19),
            2,
            "a long run counts from its first minute"
        );
        assert_eq!(tracker.ever, 4);
    }
}
