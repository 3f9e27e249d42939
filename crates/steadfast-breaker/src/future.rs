//! The response future: no box, no allocation.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;
use steadfast_core::{Classify, Outcome};

use crate::breaker::Ticket;
use crate::mode::Mode;
use crate::{nested, CircuitBreaker, Rejected, TimedOut};

/// Leave for one call, held by its future until the call ends; made by a
/// [`BreakerProvider`](crate::BreakerProvider).
///
/// Dropped without an outcome (the future was cancelled), it counts as the breaker's
/// [`DropPolicy`](crate::DropPolicy) says, and frees its probe slot otherwise.
///
/// An admission records into the period (the run of one state) it was admitted in; an outcome
/// that arrives after the breaker moved on is dropped. Periods are told apart by a 21-bit
/// number, so an admission held across exactly 2^21 (2,097,152) transitions, or a multiple,
/// would record into the period it meets. Automatic transitions need an open period (at least
/// a millisecond) per two, so that takes over 17 minutes of flapping at the shortest open
/// duration, or two million manual transitions; an outcome recorded so is one call counted
/// in the wrong period, never a broken breaker.
pub struct Admission<H: Borrow<CircuitBreaker>> {
    handle: H,
    ticket: Ticket,
    armed: bool,
}

impl<H: Borrow<CircuitBreaker>> Admission<H> {
    /// Asks `handle`'s breaker for leave to call, keeping `handle` for the call's end.
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the breaker refuses.
    #[inline]
    pub fn new(handle: H) -> Result<Self, Rejected> {
        let ticket = handle.borrow().inner.acquire()?;
        Ok(Self {
            handle,
            ticket,
            armed: true,
        })
    }

    /// Asks `breaker` for leave to call, and only once admitted makes the handle to keep.
    ///
    /// # Errors
    ///
    /// [`Rejected`] when the breaker refuses.
    #[inline]
    pub fn borrowed(
        breaker: &CircuitBreaker,
        handle: impl FnOnce(&CircuitBreaker) -> H,
    ) -> Result<Self, Rejected> {
        let ticket = breaker.inner.acquire()?;
        Ok(Self {
            handle: handle(breaker),
            ticket,
            armed: true,
        })
    }

    /// Records the call's outcome (once; later calls do nothing).
    #[inline(always)]
    pub fn record(&mut self, outcome: Outcome) {
        if std::mem::take(&mut self.armed) {
            self.handle.borrow().inner.record(self.ticket, outcome);
        }
    }

    /// Records the call's outcome with a duration measured by the caller (once).
    pub fn record_elapsed(&mut self, outcome: Outcome, elapsed: Duration) {
        if std::mem::take(&mut self.armed) {
            self.handle
                .borrow()
                .inner
                .record_elapsed(self.ticket, outcome, elapsed);
        }
    }

    /// The outcome to record for a call classified `outcome`, whose inner call started when
    /// this thread had answered `before` refusals: a failure that was a nested breaker's
    /// refusal is ignored, unless the breaker counts them.
    #[inline(always)]
    pub(crate) fn nested(&self, outcome: Outcome, before: u32) -> Outcome {
        if outcome == Outcome::Failure && nested::refusals() != before {
            self.nested_refusal()
        } else {
            outcome
        }
    }

    #[cold]
    fn nested_refusal(&self) -> Outcome {
        if self.handle.borrow().inner.count_nested_refusals {
            Outcome::Failure
        } else {
            Outcome::Ignored
        }
    }
}

impl<H: Borrow<CircuitBreaker>> Drop for Admission<H> {
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            self.handle.borrow().inner.dropped(self.ticket);
        }
    }
}

impl<H: Borrow<CircuitBreaker>> fmt::Debug for Admission<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("breaker", &self.handle.borrow().name())
            .field("ticket", &self.ticket)
            .finish()
    }
}

/// The future of [`CircuitBreakerService`](crate::CircuitBreakerService).
///
/// `T` is the call timer: [`NoTimer`](crate::timeout::NoTimer), which never fires, or the
/// timer of [`CircuitBreakerLayer::timeout`](crate::CircuitBreakerLayer::timeout).
#[pin_project]
pub struct ResponseFuture<
    F,
    C,
    M,
    H: Borrow<CircuitBreaker> = CircuitBreaker,
    T = crate::timeout::NoTimer,
> {
    #[pin]
    kind: Kind<F, C, H, T>,
    mode: M,
}

#[pin_project(project = KindProj)]
enum Kind<F, C, H: Borrow<CircuitBreaker>, T> {
    Called {
        #[pin]
        future: F,
        #[pin]
        timer: T,
        permit: Admission<H>,
        classifier: C,
    },
    Rejected {
        rejected: Option<Rejected>,
    },
}

impl<F, C, M, H: Borrow<CircuitBreaker>, T> ResponseFuture<F, C, M, H, T> {
    #[inline]
    pub(crate) fn called(
        future: F,
        timer: T,
        permit: Admission<H>,
        classifier: C,
        mode: M,
    ) -> Self {
        Self {
            kind: Kind::Called {
                future,
                timer,
                permit,
                classifier,
            },
            mode,
        }
    }

    pub(crate) fn rejected(rejected: Rejected, mode: M) -> Self {
        Self {
            kind: Kind::Rejected {
                rejected: Some(rejected),
            },
            mode,
        }
    }
}

impl<F, C, M, H, T, Res, E> Future for ResponseFuture<F, C, M, H, T>
where
    H: Borrow<CircuitBreaker>,
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res, E>,
    M: Mode<Res, E>,
    T: Future<Output = Duration>,
{
    type Output = Result<Res, M::Error>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Called {
                future,
                timer,
                permit,
                classifier,
            } => {
                let before = nested::refusals();
                match future.poll(cx) {
                    Poll::Ready(result) => {
                        let outcome = permit.nested(classifier.classify(result.as_ref()), before);
                        permit.record(outcome);
                        Poll::Ready(result.map_err(|error| this.mode.inner_error(error)))
                    }
                    Poll::Pending => match timer.poll(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(after) => {
                            permit.record(Outcome::Failure);
                            Poll::Ready(this.mode.timed_out(TimedOut::new(after)))
                        }
                    },
                }
            }
            KindProj::Rejected { rejected } => {
                let rejected = rejected
                    .take()
                    .expect("ResponseFuture polled after completion");
                nested::refused();
                Poll::Ready(this.mode.rejected(rejected))
            }
        }
    }
}

impl<F, C, M, H: Borrow<CircuitBreaker>, T> fmt::Debug for ResponseFuture<F, C, M, H, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
