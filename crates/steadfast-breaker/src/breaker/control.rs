//! Manual control. Every control is idempotent: asking for the state the breaker is already in
//! changes nothing — no event, no metric, no new period, no in-flight outcome lost.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::inner::{Inner, NANOS_PER_MS};
use crate::state::{Word, MAX_TIME_MS};
use crate::State;

/// The longest open period set by hand: a quarter of the state word's time ring, as config
/// bounds durations.
const MAX_MANUAL_MS: u64 = MAX_TIME_MS / 4;

impl Inner {
    /// Moves to `to` (a state with no time: closed, disabled, forced open, metrics only);
    /// false if the breaker was already there.
    pub(super) fn set_manual(&self, to: State) -> bool {
        loop {
            let word = self.settled();
            if word.state() == to {
                return false;
            }
            if to == State::Closed {
                self.clear_counts();
            }
            if self.state.transition(word, word.next(to, 0)) {
                self.announce(word.state(), to);
                return true;
            }
        }
    }

    fn clear_counts(&self) {
        self.window.reset();
        self.consecutive.store(0, Ordering::Relaxed);
        self.open_streak.store(0, Ordering::Relaxed);
    }

    /// Opens for `duration` from now. An open breaker keeps its period and only moves its end:
    /// no event, since the state does not change.
    pub(super) fn open_for(&self, duration: Duration) {
        let ms = u64::try_from(duration.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_MANUAL_MS);
        loop {
            let word = self.settled();
            let until = self.clock.recent() / NANOS_PER_MS + ms;
            let next = if word.state() == State::Open {
                word.with_time(until)
            } else {
                word.next(State::Open, until)
            };
            if next == word {
                return;
            }
            if self.state.transition(word, next) {
                if word.state() != State::Open {
                    self.announce(word.state(), State::Open);
                }
                return;
            }
        }
    }

    /// Starts probing now; nothing happens if the breaker is half-open already.
    pub(super) fn half_open(&self) -> bool {
        loop {
            let word: Word = self.settled();
            if word.state() == State::HalfOpen {
                return false;
            }
            let next = word.next(State::HalfOpen, self.half_open_deadline(self.now_ms()));
            if self.state.transition(word, next) {
                self.announce(word.state(), State::HalfOpen);
                return true;
            }
        }
    }
}
