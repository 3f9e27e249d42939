//! What a call was admitted as, carried from admission to recording.

use std::fmt;

use crate::state::{GEN_BITS, GEN_MASK};

/// A call's admission in one word: `[start: 41][generation: 21][kind: 2]`, the start in units
/// of 1024 ns.
///
/// One word moves in a register; a struct of mixed-width fields was written to the stack field
/// by field and read back whole, which stalls store forwarding on every call.
#[derive(Clone, Copy)]
pub(crate) struct Ticket(u64);

const KIND_BITS: u32 = 2;
const START_SHIFT: u32 = KIND_BITS + GEN_BITS;
/// Call times are kept in units of 2^10 ns, about a microsecond: 41 bits of them wrap after
/// 26 days, far beyond any call worth timing.
pub(crate) const TIME_UNIT_SHIFT: u32 = 10;
pub(crate) const START_MASK: u64 = (1 << (64 - START_SHIFT)) - 1;

impl Ticket {
    #[inline]
    pub(crate) fn new(kind: TicketKind, generation: u32, start_ns: u64) -> Self {
        Self(
            kind as u64
                | (u64::from(generation) & GEN_MASK) << KIND_BITS
                | ((start_ns >> TIME_UNIT_SHIFT) & START_MASK) << START_SHIFT,
        )
    }

    #[inline]
    pub(crate) fn kind(self) -> TicketKind {
        match self.0 & ((1 << KIND_BITS) - 1) {
            0 => TicketKind::Counted,
            1 => TicketKind::Probe,
            _ => TicketKind::Untracked,
        }
    }

    #[inline]
    pub(crate) fn generation(self) -> u32 {
        ((self.0 >> KIND_BITS) & GEN_MASK) as u32
    }

    /// Time units from the call's start to `now_ns`, modulo the 41-bit range.
    #[inline]
    pub(crate) fn elapsed_units(self, now_ns: u64) -> u64 {
        let now = (now_ns >> TIME_UNIT_SHIFT) & START_MASK;
        now.wrapping_sub(self.0 >> START_SHIFT) & START_MASK
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("kind", &self.kind())
            .field("generation", &self.generation())
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum TicketKind {
    /// Closed or metrics-only: the outcome goes into the window.
    Counted,
    /// A half-open probe.
    Probe,
    /// Disabled: nothing is recorded.
    Untracked,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_round_trips() {
        let ticket = Ticket::new(TicketKind::Probe, 0x1F_FFFF, 123 << TIME_UNIT_SHIFT);
        assert_eq!(ticket.kind(), TicketKind::Probe);
        assert_eq!(ticket.generation(), 0x1F_FFFF);
        assert_eq!(ticket.elapsed_units(200 << TIME_UNIT_SHIFT), 77);
        // Start times wrap; elapsed time does not notice.
        let late = Ticket::new(TicketKind::Counted, 1, (START_MASK - 1) << TIME_UNIT_SHIFT);
        assert_eq!(late.elapsed_units((START_MASK + 4) << TIME_UNIT_SHIFT), 5);
    }
}
