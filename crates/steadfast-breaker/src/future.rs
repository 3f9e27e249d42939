//! The response future: no box, no allocation.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use pin_project::pin_project;
use steadfast_core::{Classify, Outcome};

use crate::breaker::Ticket;
use crate::mode::Mode;
use crate::{CircuitBreaker, Rejected};

/// An admitted call's claim on the breaker; dropped unrecorded (the future was cancelled), it
/// records nothing and frees a probe slot.
pub(crate) struct OwnedPermit {
    breaker: CircuitBreaker,
    ticket: Ticket,
    armed: bool,
}

impl OwnedPermit {
    pub(crate) fn new(breaker: CircuitBreaker, ticket: Ticket) -> Self {
        Self {
            breaker,
            ticket,
            armed: true,
        }
    }

    fn record(&mut self, outcome: Outcome) {
        if std::mem::take(&mut self.armed) {
            self.breaker.inner.record(self.ticket, outcome);
        }
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.inner.release(self.ticket);
        }
    }
}

/// The future of [`CircuitBreakerService`](crate::CircuitBreakerService).
#[pin_project]
pub struct ResponseFuture<F, C, M> {
    #[pin]
    kind: Kind<F, C>,
    mode: M,
}

#[pin_project(project = KindProj)]
enum Kind<F, C> {
    Called {
        #[pin]
        future: F,
        permit: OwnedPermit,
        classifier: C,
    },
    Rejected {
        rejected: Option<Rejected>,
    },
}

impl<F, C, M> ResponseFuture<F, C, M> {
    pub(crate) fn called(future: F, permit: OwnedPermit, classifier: C, mode: M) -> Self {
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

impl<F, C, M, Res, E> Future for ResponseFuture<F, C, M>
where
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

impl<F, C, M> fmt::Debug for ResponseFuture<F, C, M> {
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
