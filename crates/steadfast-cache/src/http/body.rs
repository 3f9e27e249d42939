//! The body of a response that passed through the response cache.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project::pin_project;

/// The body of a [`ResponseCache`](super::ResponseCache) response: buffered bytes for an
/// answer from the cache (or one the cache buffered), or the inner service's own body,
/// streamed, when it was not buffered, or was too large to be.
#[pin_project]
pub struct ResponseBody<B: Body> {
    #[pin]
    kind: Kind<B>,
}

#[pin_project(project = KindProj)]
enum Kind<B: Body> {
    Buffered(Option<Bytes>),
    Streamed(#[pin] B),
    /// Read in part before the cache gave up on it: what was read, then the rest.
    Resumed {
        head: Option<Bytes>,
        trailers: Option<HeaderMap>,
        error: Option<B::Error>,
        ended: bool,
        rest: Pin<Box<B>>,
    },
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn buffered(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Buffered(Some(bytes)),
        }
    }

    pub(crate) fn empty() -> Self {
        Self {
            kind: Kind::Buffered(None),
        }
    }

    pub(crate) fn streamed(body: B) -> Self {
        Self {
            kind: Kind::Streamed(body),
        }
    }

    pub(crate) fn resumed(
        head: Bytes,
        trailers: Option<HeaderMap>,
        error: Option<B::Error>,
        ended: bool,
        rest: Pin<Box<B>>,
    ) -> Self {
        Self {
            kind: Kind::Resumed {
                head: Some(head).filter(|head| !head.is_empty()),
                trailers,
                error,
                ended,
                rest,
            },
        }
    }
}

impl<B: Body> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Buffered(_) => "buffered",
            Kind::Streamed(_) => "streamed",
            Kind::Resumed { .. } => "resumed",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

fn to_bytes<D: Buf>(frame: Frame<D>) -> Frame<Bytes> {
    frame.map_data(|mut data| data.copy_to_bytes(data.remaining()))
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Buffered(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            KindProj::Streamed(body) => body
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map(to_bytes))),
            KindProj::Resumed {
                head,
                trailers,
                error,
                ended,
                rest,
            } => {
                if let Some(head) = head.take() {
                    return Poll::Ready(Some(Ok(Frame::data(head))));
                }
                if let Some(error) = error.take() {
                    *ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
                if let Some(trailers) = trailers.take() {
                    *ended = true;
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                if *ended {
                    return Poll::Ready(None);
                }
                rest.as_mut()
                    .poll_frame(cx)
                    .map(|frame| frame.map(|frame| frame.map(to_bytes)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Buffered(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Streamed(body) => body.is_end_stream(),
            Kind::Resumed {
                head,
                trailers,
                error,
                ended,
                rest,
            } => {
                head.is_none()
                    && trailers.is_none()
                    && error.is_none()
                    && (*ended || rest.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Buffered(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Streamed(body) => body.size_hint(),
            Kind::Resumed {
                head, rest, ended, ..
            } => {
                let head = head.as_ref().map_or(0, |b| b.len() as u64);
                if *ended {
                    return SizeHint::with_exact(head);
                }
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower().saturating_add(head));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper.saturating_add(head));
                }
                hint
            }
        }
    }
}
