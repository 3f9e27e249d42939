//! Recording: outcomes into the window, trip rules, probes deciding half-open.

use std::sync::atomic::Ordering;
use std::time::Duration;

use steadfast_core::Outcome;

use super::inner::Inner;
use super::ticket::{Ticket, TicketKind, TIME_UNIT_SHIFT};
use crate::config::DropPolicy;
use crate::state::{ms_until, Word};
use crate::window::Totals;
use crate::State;

impl Inner {
    /// Records the outcome of the call of `ticket`, timing it on the breaker's clock.
    #[inline(always)]
    pub(crate) fn record(&self, ticket: Ticket, outcome: Outcome) {
        match ticket.kind() {
            TicketKind::Counted => {
                let slow = self.rules.slow_threshold_units.is_some()
                    && outcome != Outcome::Ignored
                    && self.timed_slow(ticket);
                self.record_counted(ticket, outcome, slow);
            }
            TicketKind::Probe => {
                let slow = outcome != Outcome::Ignored && self.timed_slow(ticket);
                self.record_probe(ticket, outcome, slow);
            }
            TicketKind::Untracked => {}
        }
    }

    /// Records an outcome whose duration was measured by the caller.
    pub(crate) fn record_elapsed(&self, ticket: Ticket, outcome: Outcome, elapsed: Duration) {
        let units = u64::try_from(elapsed.as_nanos() >> TIME_UNIT_SHIFT).unwrap_or(u64::MAX);
        let slow = outcome != Outcome::Ignored && self.slow_units(units);
        match ticket.kind() {
            TicketKind::Counted => self.record_counted(ticket, outcome, slow),
            TicketKind::Probe => self.record_probe(ticket, outcome, slow),
            TicketKind::Untracked => {}
        }
    }

    /// A call that ended without an outcome: dropped before it finished. What it counts as is
    /// the [`DropPolicy`]'s choice.
    #[cold]
    pub(crate) fn dropped(&self, ticket: Ticket) {
        match self.on_drop {
            DropPolicy::Failure => self.record(ticket, Outcome::Failure),
            DropPolicy::CountSlow
                if ticket.kind() != TicketKind::Untracked
                    && self.rules.slow_threshold_units.is_some()
                    && self.timed_slow(ticket) =>
            {
                // Slow, and no verdict: counted as a slow call that did not fail.
                match ticket.kind() {
                    TicketKind::Probe => self.record_probe(ticket, Outcome::Success, true),
                    _ => self.record_counted(ticket, Outcome::Success, true),
                }
            }
            _ => self.release(ticket),
        }
    }

    /// Frees the probe slot of a call that counts as nothing.
    pub(crate) fn release(&self, ticket: Ticket) {
        if ticket.kind() == TicketKind::Probe {
            self.probes.release(ticket.generation());
        }
    }

    /// Whether the call of `ticket` has run for at least the slow-call threshold; reports it.
    #[inline]
    fn timed_slow(&self, ticket: Ticket) -> bool {
        self.rules.slow_threshold_units.is_some()
            && self.slow_units(ticket.elapsed_units(self.call_time()))
    }

    /// Whether `units` (of 2^10 ns) reach the threshold; reports a slow call.
    fn slow_units(&self, units: u64) -> bool {
        // Compared in whole units: a call at the threshold is slow wherever its start fell
        // within a unit.
        match self.rules.slow_threshold_units {
            Some(threshold) if units >= threshold => {
                self.note_slow_call(Duration::from_nanos(
                    units.saturating_mul(1 << TIME_UNIT_SHIFT),
                ));
                true
            }
            _ => false,
        }
    }

    #[inline(always)]
    fn record_counted(&self, ticket: Ticket, outcome: Outcome, slow: bool) {
        if outcome == Outcome::Ignored {
            return;
        }
        let word = self.state.load();
        if word.generation() != ticket.generation() {
            // Admitted before a transition: its outcome belongs to a period that is over.
            return;
        }
        let now = self.clock.recent();
        let failure = outcome == Outcome::Failure;
        self.window.record(now, failure, slow);
        if failure {
            self.record_failure(word, now);
        } else {
            // Only write when there is something to clear, so that successes on many threads
            // keep the line shared instead of bouncing it between cores.
            if self.rules.consecutive.is_some() && self.consecutive.load(Ordering::Relaxed) != 0 {
                self.consecutive.store(0, Ordering::Relaxed);
            }
            if slow {
                self.evaluate(word, now, 0);
            }
        }
    }

    #[inline(never)]
    fn record_failure(&self, word: Word, now_ns: u64) {
        let in_a_row = match self.rules.consecutive {
            // The counter itself wraps (after 4 billion failures in metrics-only mode); the
            // count in a row saturates.
            Some(_) => self
                .consecutive
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1),
            None => 0,
        };
        self.evaluate(word, now_ns, in_a_row);
    }

    /// Checks the trip rules after a failure or a slow call.
    #[cold]
    fn evaluate(&self, word: Word, now_ns: u64, in_a_row: u32) {
        if !word.is_closed() {
            // Metrics-only: counted, never tripped.
            return;
        }
        let trip = self
            .rules
            .consecutive
            .is_some_and(|limit| in_a_row >= limit)
            || self.rate_rules_trip(self.window.totals(now_ns));
        if trip {
            self.open(word);
        }
    }

    /// The rate rules, compared exactly: a rate equal to its threshold trips.
    pub(super) fn rate_rules_trip(&self, totals: Totals) -> bool {
        if totals.calls < self.rules.minimum_calls || totals.calls == 0 {
            return false;
        }
        self.rules
            .failure_rate
            .is_some_and(|rate| rate.reached(totals.failures, totals.calls))
            || self
                .rules
                .slow_rate
                .is_some_and(|rate| rate.reached(totals.slow, totals.calls))
    }

    #[inline(never)]
    fn record_probe(&self, ticket: Ticket, outcome: Outcome, slow: bool) {
        let word = self.state.load();
        if word.state() != State::HalfOpen || word.generation() != ticket.generation() {
            return;
        }
        let deadline = word.time_ms();
        if deadline != 0 && ms_until(deadline, self.now_ms()).is_none() {
            // The probe outlived the half-open cap: whatever it says, half-open is over and
            // the breaker is open from the moment the cap passed.
            self.open_after_half_open_cap(word);
            return;
        }
        match outcome {
            Outcome::Ignored => self.probes.release(ticket.generation()),
            Outcome::Failure => {
                self.open(word);
            }
            Outcome::Success if slow => {
                self.open(word);
            }
            Outcome::Success => {
                if self.probes.succeed(ticket.generation()) >= self.probe_limit {
                    // Nothing records into the window while half-open, so it can be cleared
                    // before the breaker closes.
                    self.window.reset();
                    self.consecutive.store(0, Ordering::Relaxed);
                    if self.state.transition(word, word.next(State::Closed, 0)) {
                        self.open_streak.store(0, Ordering::Relaxed);
                        self.announce(State::HalfOpen, State::Closed);
                    }
                }
            }
        }
    }
}
