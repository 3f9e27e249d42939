//! Errors: a read that could not be answered, a cache that could not be built, a shared tier
//! that failed.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use steadfast_core::Reason;

/// A read with nothing to answer: the load failed and no stale value was within its
/// stale-if-error window.
///
/// Every caller waiting on one load gets the same error, so the loader's error is shared as an
/// `Arc`.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error<E> {
    /// The loader failed.
    Load(Arc<E>),
    /// The loader ran past the cache's load timeout and was dropped.
    TimedOut(Duration),
    /// The loader panicked, or its task never ran (no Tokio runtime, or one shutting down).
    Panicked,
}

impl<E> Clone for Error<E> {
    fn clone(&self) -> Self {
        match self {
            Error::Load(error) => Error::Load(error.clone()),
            Error::TimedOut(after) => Error::TimedOut(*after),
            Error::Panicked => Error::Panicked,
        }
    }
}

impl<E: 'static> Error<E> {
    /// The kind of failure, as the fallback crate names it: `Timeout` for a load timeout,
    /// `BreakerOpen` when the loader's error is (or wraps) a breaker's refusal, else `Error`.
    #[must_use]
    pub fn reason(&self) -> Reason {
        match self {
            Error::Load(error) => crate::flight::reason_of(&**error),
            Error::TimedOut(_) => Reason::Timeout,
            Error::Panicked => Reason::Error,
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Load(error) => write!(f, "cache load failed: {error}"),
            Error::TimedOut(after) => write!(f, "cache load timed out after {after:?}"),
            Error::Panicked => f.write_str("cache loader panicked"),
        }
    }
}

impl<E> std::error::Error for Error<E>
where
    E: std::error::Error + 'static,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Load(error) => Some(&**error),
            _ => None,
        }
    }
}

/// A cache configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The name is empty, longer than 200 bytes, or holds `{`, `}`, `:`, whitespace or control
    /// characters (it becomes part of Redis keys, where `:` would let two caches' keys meet,
    /// and of metric labels).
    Name(String),
    /// A setting out of range: which one and why.
    Invalid(&'static str),
    /// The shared tier's breaker could not be built.
    Breaker(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Name(name) => write!(
                f,
                "cache name {name:?} must be 1 to 200 bytes without braces, colons, spaces or control characters"
            ),
            BuildError::Invalid(why) => write!(f, "invalid cache setting: {why}"),
            BuildError::Breaker(why) => write!(f, "the shared tier's breaker: {why}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// A call to the shared tier that did not succeed.
///
/// Reads never surface it (they fall back to L1 and the loader); writes and invalidations
/// return it, because another instance may then keep serving the old value until its TTL.
#[derive(Debug)]
#[non_exhaustive]
pub enum RemoteError {
    /// The tier's breaker is open: the call was not made.
    Rejected,
    /// The call took longer than the tier's timeout.
    TimedOut,
    /// The server or client failed.
    Failed(Box<dyn std::error::Error + Send + Sync>),
    /// The value could not be encoded for the shared tier.
    Encode(crate::codec::CodecError),
}

impl RemoteError {
    /// Wraps a client's error.
    pub fn failed(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        RemoteError::Failed(error.into())
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteError::Rejected => f.write_str("shared cache tier refused: its breaker is open"),
            RemoteError::TimedOut => f.write_str("shared cache tier timed out"),
            RemoteError::Failed(error) => write!(f, "shared cache tier failed: {error}"),
            RemoteError::Encode(error) => {
                write!(f, "value not written to the shared tier: {error}")
            }
        }
    }
}

impl std::error::Error for RemoteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RemoteError::Failed(error) => Some(&**error),
            RemoteError::Encode(error) => Some(error),
            _ => None,
        }
    }
}
