//! The response future: no box, no allocation.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project::pin_project;
use steadfast_core::{Classify, Outcome};

use crate::breaker::Ticket;
use crate::mode::Mode;
use crate::{CircuitBreaker, Rejected};

/// Leave for one call, held by its future until the call ends; made by a
/// [`BreakerProvider`](crate::BreakerProvider).
///
/// Dropped without an outcome (the future was cancelled), it records nothing and frees its
/// probe slot.
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
    #[inline]
    pub fn record(&mut self, outcome: Outcome) {
        if std::mem::take(&mut self.armed) {
            self.handle.borrow().inner.record(self.ticket, outcome);
        }
    }
}

impl<H: Borrow<CircuitBreaker>> Drop for Admission<H> {
    #[inline]
    fn drop(&mut self) {
        if self.armed {
            self.handle.borrow().inner.release(self.ticket);
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
#[pin_project]
pub struct ResponseFuture<F, C, M, H: Borrow<CircuitBreaker> = CircuitBreaker> {
    #[pin]
    kind: Kind<F, C, H>,
    mode: M,
}

#[pin_project(project = KindProj)]
enum Kind<F, C, H: Borrow<CircuitBreaker>> {
    Called {
        #[pin]
        future: F,
        permit: Admission<H>,
        classifier: C,
    },
    Rejected {
        rejected: Option<Rejected>,
    },
}

impl<F, C, M, H: Borrow<CircuitBreaker>> ResponseFuture<F, C, M, H> {
    pub(crate) fn called(future: F, permit: Admission<H>, classifier: C, mode: M) -> Self {
        Self {
            kind: Kind::Called {
                future,
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

impl<F, C, M, H, Res, E> Future for ResponseFuture<F, C, M, H>
where
    H: Borrow<CircuitBreaker>,
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res, E>,
    M: Mode<Res, E>,
{
    type Output = Result<Res, M::Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Called {
                future,
                permit,
                classifier,
            } => {
                let result = ready!(future.poll(cx));
                permit.record(classifier.classify(result.as_ref()));
                Poll::Ready(result.map_err(|error| this.mode.inner_error(error)))
            }
            KindProj::Rejected { rejected } => {
                let rejected = rejected
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(this.mode.rejected(rejected))
            }
        }
    }
}

impl<F, C, M, H: Borrow<CircuitBreaker>> fmt::Debug for ResponseFuture<F, C, M, H> {
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
