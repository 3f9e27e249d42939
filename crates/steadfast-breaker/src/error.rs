//! The breaker's errors: a refused call, and a refused-or-inner error.

use std::fmt;
use std::time::Duration;

use crate::State;

/// A call the breaker refused without calling the inner service.
///
/// It is one word and `Copy`: building one allocates nothing, and it comes back from
/// admission in registers, so refusing stays cheaper than calling.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// `[retry-after in ms, plus one; 0 for unknown: 61][state: 3]`.
    packed: u64,
}

const STATE_BITS: u32 = 3;
const MAX_RETRY_MS: u64 = (1 << (64 - STATE_BITS)) - 2;

impl Rejected {
    /// A refusal in `state`; `retry_after` is kept to the millisecond.
    #[inline]
    pub(crate) fn new(state: State, retry_after: Option<Duration>) -> Self {
        let wait = match retry_after {
            Some(after) => {
                u64::try_from(after.as_millis()).map_or(MAX_RETRY_MS, |ms| ms.min(MAX_RETRY_MS)) + 1
            }
            None => 0,
        };
        Self {
            packed: u64::from(state.as_code()) | wait << STATE_BITS,
        }
    }

    /// The state the breaker was in: open, half-open (all probe slots taken) or forced open.
    #[must_use]
    pub fn state(&self) -> State {
        State::from_code((self.packed & ((1 << STATE_BITS) - 1)) as u8)
    }

    /// How long until the breaker lets a probe through, when that is known (open, not forced),
    /// to the millisecond.
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self.packed >> STATE_BITS {
            0 => None,
            wait => Some(Duration::from_millis(wait - 1)),
        }
    }
}

impl fmt::Debug for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("state", &self.state())
            .field("retry_after", &self.retry_after())
            .finish()
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state() {
            State::HalfOpen => {
                f.write_str("circuit breaker is half-open and its probe slots are taken")?
            }
            State::ForcedOpen => f.write_str("circuit breaker is forced open")?,
            _ => f.write_str("circuit breaker is open")?,
        }
        if let Some(after) = self.retry_after() {
            write!(f, "; retry in {:.3}s", after.as_secs_f64())?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

/// A call that outlived the layer's call timeout (see
/// [`CircuitBreakerLayer::timeout`](crate::CircuitBreakerLayer::timeout)); the breaker counted
/// it as a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut {
    after: Duration,
}

impl TimedOut {
    pub(crate) const fn new(after: Duration) -> Self {
        Self { after }
    }

    /// The timeout that ran out.
    #[must_use]
    pub const fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call timed out after {:?}", self.after)
    }
}

impl std::error::Error for TimedOut {}

/// The error of a breaker-wrapped service in the default (typed) mode: the breaker refused the
/// call, the call timed out, or the inner service failed.
#[derive(Debug)]
pub enum Error<E> {
    /// The breaker refused the call.
    Rejected(Rejected),
    /// The call outlived the layer's call timeout.
    TimedOut(TimedOut),
    /// The inner service's own error.
    Inner(E),
}

impl<E> Error<E> {
    /// The refusal, if the breaker refused.
    pub const fn rejected(&self) -> Option<&Rejected> {
        match self {
            Error::Rejected(rejected) => Some(rejected),
            _ => None,
        }
    }

    /// Whether the call outlived the layer's call timeout.
    pub const fn is_timed_out(&self) -> bool {
        matches!(self, Error::TimedOut(_))
    }

    /// Whether the breaker refused the call.
    pub const fn is_rejected(&self) -> bool {
        matches!(self, Error::Rejected(_))
    }

    /// The inner service's error, if it was one.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Inner(error) => Some(error),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rejected(rejected) => rejected.fmt(f),
            Error::TimedOut(timed_out) => timed_out.fmt(f),
            Error::Inner(error) => error.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Rejected(_) | Error::TimedOut(_) => None,
            Error::Inner(error) => Some(error),
        }
    }
}

impl<E> From<Rejected> for Error<E> {
    fn from(rejected: Rejected) -> Self {
        Error::Rejected(rejected)
    }
}

#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
impl From<Rejected> for tonic::Status {
    /// `UNAVAILABLE`, with a `grpc-retry-pushback-ms` hint when the wait is known, which gRPC
    /// retry policies honour. The status's `source()` is the [`Rejected`], so an outer layer
    /// tells a refusal from an `UNAVAILABLE` the server sent.
    fn from(rejected: Rejected) -> Self {
        let mut status = tonic::Status::unavailable(rejected.to_string());
        status.set_source(std::sync::Arc::new(rejected));
        if let Some(after) = rejected.retry_after() {
            if let Ok(value) = after.as_millis().to_string().parse() {
                status
                    .metadata_mut()
                    .insert("grpc-retry-pushback-ms", value);
            }
        }
        status
    }
}

#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
impl From<TimedOut> for tonic::Status {
    /// `DEADLINE_EXCEEDED`, with the [`TimedOut`] as its `source()`.
    fn from(timed_out: TimedOut) -> Self {
        let mut status = tonic::Status::deadline_exceeded(timed_out.to_string());
        status.set_source(std::sync::Arc::new(timed_out));
        status
    }
}

#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
impl<E: Into<steadfast_core::BoxError>> From<Error<E>> for tonic::Status {
    /// A refusal becomes `UNAVAILABLE`; an inner error is converted as tonic converts errors.
    fn from(error: Error<E>) -> Self {
        match error {
            Error::Rejected(rejected) => rejected.into(),
            Error::TimedOut(timed_out) => timed_out.into(),
            Error::Inner(error) => tonic::Status::from_error(error.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_happened() {
        let open = Rejected::new(State::Open, Some(Duration::from_millis(1500)));
        assert_eq!(open.state(), State::Open);
        assert_eq!(open.retry_after(), Some(Duration::from_millis(1500)));
        let forced = Rejected::new(State::ForcedOpen, None);
        assert_eq!(forced.state(), State::ForcedOpen);
        assert_eq!(forced.retry_after(), None);
        let zero = Rejected::new(State::Open, Some(Duration::ZERO));
        assert_eq!(zero.retry_after(), Some(Duration::ZERO));
        let huge = Rejected::new(State::Open, Some(Duration::MAX));
        assert_eq!(huge.state(), State::Open);
        assert!(huge.retry_after().is_some());
        assert_eq!(open.to_string(), "circuit breaker is open; retry in 1.500s");
        let error: Error<std::io::Error> = open.into();
        assert!(error.is_rejected());
        assert!(std::error::Error::source(&error).is_none());
        let inner: Error<std::io::Error> = Error::Inner(std::io::Error::other("reset"));
        assert_eq!(inner.to_string(), "reset");
        assert!(std::error::Error::source(&inner).is_some());
    }

    #[cfg(feature = "tonic")]
    #[test]
    fn converts_to_unavailable() {
        let status: tonic::Status = Rejected::new(State::Open, Some(Duration::from_secs(2))).into();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            status.metadata().get("grpc-retry-pushback-ms").unwrap(),
            "2000"
        );
        let source = std::error::Error::source(&status).expect("the refusal is the source");
        assert!(source.downcast_ref::<Rejected>().is_some());
    }
}
