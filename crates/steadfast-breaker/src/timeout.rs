//! A call timeout inside the breaker, so that a timeout counts as a failure.
//!
//! Where the timeout sits decides what the breaker sees. Outside the breaker, a call that
//! hangs is dropped when the timeout fires, and the breaker sees a dropped call, not a failure
//! (see [`DropPolicy`](crate::DropPolicy)). Inside, the breaker sees the timeout as the call's
//! failure and trips on a dependency that hangs as on one that refuses.
//! [`CircuitBreakerLayer::timeout`](crate::CircuitBreakerLayer::timeout) puts it inside:
//!
//! ```
//! use std::time::Duration;
//! use steadfast_breaker::{CircuitBreaker, State};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let breaker = CircuitBreaker::builder("pricing").consecutive_failures(3).build().unwrap();
//! let client = ServiceBuilder::new()
//!     .layer(breaker.layer().timeout(Duration::from_millis(250)))
//!     .service(service_fn(|_: ()| std::future::pending::<Result<u32, std::io::Error>>()));
//!
//! for _ in 0..3 {
//!     let error = client.clone().oneshot(()).await.unwrap_err();
//!     assert!(error.is_timed_out());
//! }
//! assert_eq!(breaker.state(), State::Open);
//! # }
//! ```
//!
//! The timer is tokio's: the service must run inside a tokio runtime with time enabled.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project::pin_project;

/// Starts a timer per call; the timer's output is how long it waited.
pub trait CallTimeout: Clone {
    /// The timer of one call.
    type Timer: Future<Output = Duration>;

    /// Starts the timer of a call that is about to begin.
    fn start(&self) -> Self::Timer;
}

/// No timeout: the layer's default.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTimeout;

/// The timer of [`NoTimeout`]: never fires, and costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTimer;

impl Future for NoTimer {
    type Output = Duration;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Duration> {
        Poll::Pending
    }
}

impl CallTimeout for NoTimeout {
    type Timer = NoTimer;

    #[inline(always)]
    fn start(&self) -> NoTimer {
        NoTimer
    }
}

/// A call timeout of a fixed length, on tokio's timer.
#[derive(Clone, Copy, Debug)]
pub struct Timeout {
    after: Duration,
}

impl Timeout {
    /// Calls longer than `after` time out.
    #[must_use]
    pub const fn new(after: Duration) -> Self {
        Self { after }
    }

    /// How long a call may take.
    #[must_use]
    pub const fn after(&self) -> Duration {
        self.after
    }
}

/// The timer of a [`Timeout`].
#[pin_project]
#[derive(Debug)]
pub struct Timer {
    #[pin]
    sleep: tokio::time::Sleep,
    after: Duration,
}

impl Future for Timer {
    type Output = Duration;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Duration> {
        let this = self.project();
        this.sleep.poll(cx).map(|()| *this.after)
    }
}

impl CallTimeout for Timeout {
    type Timer = Timer;

    fn start(&self) -> Timer {
        Timer {
            sleep: tokio::time::sleep(self.after),
            after: self.after,
        }
    }
}
