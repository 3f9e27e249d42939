//! Refusals by nested breakers, told apart from failures.
//!
//! A global breaker around per-host breakers sees a per-host refusal as its inner call
//! failing; counted, one dead host would trip the global breaker for every host. The result
//! types cannot say "this was a Steadfast refusal" in general (an HTTP-mode refusal is an
//! ordinary `503` response), so the refusing future says it on the side: it bumps a
//! thread-local count when it answers. An outer breaker reads the count before it polls its
//! inner future and again when that future answers with a failure; a change means the failure
//! was a nested refusal, answered within that very poll.
//!
//! What this sees: breakers nested in one task, whatever sits between them, as long as the
//! refusal is answered in the same poll that completes the outer call (true of refusals,
//! which answer at once). What it does not see: a refusal that crosses a task (a `Buffer`
//! between the two breakers), or one followed, within the same poll, by a retry that fails
//! for real — that failure is then not counted.

use std::cell::Cell;

thread_local! {
    static REFUSALS: Cell<u32> = const { Cell::new(0) };
}

/// How many refusals this thread has answered, modulo 2^32.
#[inline]
pub(crate) fn refusals() -> u32 {
    REFUSALS.with(Cell::get)
}

/// Notes that a refusal is being answered on this thread.
#[inline]
pub(crate) fn refused() {
    REFUSALS.with(|count| count.set(count.get().wrapping_add(1)));
}
