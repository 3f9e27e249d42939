//! Answers for a tonic client's fallbacks (feature `tonic`).
//!
//! A fallback on a tonic channel answers at the HTTP level, as the server would: [`reply`]
//! encodes a message into a gRPC response, [`status`] answers with a status. The generated
//! client decodes either as it decodes a server's answer.
//!
//! ```
//! use steadfast_fallback::grpc;
//!
//! let response = grpc::reply(&String::from("cached"));
//! assert_eq!(response.headers()["content-type"], "application/grpc");
//! let refused = grpc::status(tonic::Status::unavailable("try later"));
//! assert_eq!(refused.headers()["grpc-status"], "14");
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response};
use http_body::Frame;
use tonic::body::Body;

/// A gRPC response holding `message`, as a server would send it: one length-prefixed,
/// uncompressed message, then trailers with `grpc-status: 0`.
pub fn reply<M: prost::Message>(message: &M) -> Response<Body> {
    let len = message.encoded_len();
    let mut frame = BytesMut::with_capacity(5 + len);
    frame.put_u8(0);
    // A message over 4 GiB cannot be framed; gRPC limits messages far below that.
    frame.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    message
        .encode(&mut frame)
        .expect("the buffer was sized to the message");
    let mut trailers = HeaderMap::with_capacity(1);
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let mut response = Response::new(Body::new(Once {
        data: Some(frame.freeze()),
        trailers: Some(trailers),
    }));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

/// A trailers-only gRPC response carrying `status`.
#[must_use]
pub fn status(status: tonic::Status) -> Response<Body> {
    status.into_http()
}

/// One data frame, then trailers.
struct Once {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for Once {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(
            self.trailers
                .take()
                .map(|trailers| Ok(Frame::trailers(trailers))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}
