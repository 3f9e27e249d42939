//! The response body of the idempotency layer: a stored body, or the inner one passed through
//! (with what was read of it first, when it was too large to store).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;
use steadfast_core::BoxError;

/// The body of a response through [`IdempotencyLayer`](super::IdempotencyLayer).
#[pin_project(project = Proj)]
#[derive(Debug)]
pub enum IdempotencyBody<B> {
    /// A body held whole: a replay, a problem answer, or a response read to store it.
    Full(Option<Bytes>),
    /// The inner body, untouched.
    Inner(#[pin] B),
    /// A body read whole to store it, or a replay: its data, then its trailers.
    Stored {
        /// The data, until sent.
        data: Option<Bytes>,
        /// The trailers, until sent.
        trailers: Option<http::HeaderMap>,
    },
    /// A body too large to store: the frames read so far, then the rest of the inner body.
    Chained {
        /// Frames already read.
        read: VecDeque<Bytes>,
        /// The rest.
        #[pin]
        rest: B,
    },
}

impl<B> IdempotencyBody<B> {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        IdempotencyBody::Full(Some(bytes.into()))
    }
}

impl<B> Body for IdempotencyBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            Proj::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            Proj::Stored { data, trailers } => Poll::Ready(match data.take() {
                Some(data) => Some(Ok(Frame::data(data))),
                None => trailers
                    .take()
                    .map(|trailers| Ok(Frame::trailers(trailers))),
            }),
            Proj::Inner(body) => body.poll_frame(cx).map_err(Into::into),
            Proj::Chained { read, rest } => match read.pop_front() {
                Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                None => rest.poll_frame(cx).map_err(Into::into),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            IdempotencyBody::Full(bytes) => bytes.is_none(),
            IdempotencyBody::Stored { data, trailers } => data.is_none() && trailers.is_none(),
            IdempotencyBody::Inner(body) => body.is_end_stream(),
            IdempotencyBody::Chained { read, rest } => read.is_empty() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            IdempotencyBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |bytes| bytes.len() as u64))
            }
            IdempotencyBody::Stored { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |bytes| bytes.len() as u64))
            }
            IdempotencyBody::Inner(body) => body.size_hint(),
            IdempotencyBody::Chained { read, rest } => {
                let held: u64 = read.iter().map(|bytes| bytes.len() as u64).sum();
                let rest = rest.size_hint();
                // Upper first: each setter checks the bound against the other.
                let mut hint = SizeHint::new();
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(held));
                }
                hint.set_lower(rest.lower().saturating_add(held));
                hint
            }
        }
    }
}
