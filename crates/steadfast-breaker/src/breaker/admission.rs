//! Admission: whether a call may go ahead, and as what.

use std::time::Duration;

use super::inner::Inner;
use super::ticket::{Ticket, TicketKind};
use crate::state::{ms_until, Word};
use crate::{Rejected, State};

/// The retry hint of a half-open refusal: probes are under way and decide soon, so the caller
/// is told to come back within a second (or when the half-open cap runs out, if sooner).
const HALF_OPEN_RETRY: Duration = Duration::from_secs(1);

impl Inner {
    #[inline]
    fn start_time(&self) -> u64 {
        match self.rules.slow_threshold_units {
            None => 0,
            Some(_) => self.call_time(),
        }
    }

    /// The time used to measure calls: the coarse clock where its millisecond is small next to
    /// the slow-call threshold (it is one load; the precise clock can cost tens of nanoseconds),
    /// the precise clock otherwise.
    #[inline]
    pub(super) fn call_time(&self) -> u64 {
        if self.rules.coarse_timing {
            self.clock.recent()
        } else {
            self.clock.now()
        }
    }

    /// Admission. Closed costs one atomic load (and a clock read only with slow-call timing).
    #[inline(always)]
    pub(crate) fn acquire(&self) -> Result<Ticket, Rejected> {
        let word = self.state.load();
        if word.is_closed() {
            return Ok(Ticket::new(
                TicketKind::Counted,
                word.generation(),
                self.start_time(),
            ));
        }
        self.acquire_other(word)
    }

    #[inline(never)]
    fn acquire_other(&self, mut word: Word) -> Result<Ticket, Rejected> {
        loop {
            let ticket = |kind| Ticket::new(kind, word.generation(), self.start_time());
            match word.state() {
                State::Closed | State::MetricsOnly => return Ok(ticket(TicketKind::Counted)),
                State::Disabled => return Ok(ticket(TicketKind::Untracked)),
                State::ForcedOpen => return Err(self.reject(State::ForcedOpen, None)),
                State::Open => {
                    let now = self.now_ms();
                    if let Some(wait) = ms_until(word.time_ms(), now) {
                        return Err(self.reject(State::Open, Some(Duration::from_millis(wait))));
                    }
                    let next = word.next(State::HalfOpen, self.half_open_deadline(now));
                    if self.state.transition(word, next) {
                        self.announce(State::Open, State::HalfOpen);
                        word = next;
                    } else {
                        word = self.state.load();
                    }
                }
                State::HalfOpen => {
                    let deadline = word.time_ms();
                    let left = if deadline == 0 {
                        None
                    } else {
                        match ms_until(deadline, self.now_ms()) {
                            Some(left) => Some(left),
                            None => {
                                // Probing took too long: treat it as a failed probe.
                                self.open_after_half_open_cap(word);
                                word = self.state.load();
                                continue;
                            }
                        }
                    };
                    let generation = word.generation();
                    let is_current = || self.state.load().generation() == generation;
                    if self
                        .probes
                        .try_admit(generation, self.probe_limit, is_current)
                    {
                        return Ok(ticket(TicketKind::Probe));
                    }
                    let retry = left.map_or(HALF_OPEN_RETRY, |left| {
                        HALF_OPEN_RETRY.min(Duration::from_millis(left))
                    });
                    return Err(self.reject(State::HalfOpen, Some(retry)));
                }
            }
        }
    }

    #[cold]
    fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        self.count_rejection();
        self.emit(crate::EventKind::Rejected { state });
        Rejected::new(state, retry_after)
    }
}
