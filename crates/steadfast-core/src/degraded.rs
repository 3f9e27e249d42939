//! Why an answer came from a fallback, and the marker such an answer carries.
//!
//! The fallback layer (`steadfast-fallback`) writes a [`Degraded`] into the extensions of every
//! response it produces; the cache reads it so that it never stores a degraded answer, and a
//! client sees it as a header when the layer is asked to add one.
//!
//! ```
//! use steadfast_core::{Degraded, Reason};
//!
//! let mut response = http::Response::new(());
//! response.extensions_mut().insert(Degraded::new(Reason::BreakerOpen));
//! assert_eq!(
//!     response.extensions().get::<Degraded>().map(Degraded::reason),
//!     Some(Reason::BreakerOpen)
//! );
//! assert_eq!(Reason::BreakerOpen.as_str(), "breaker_open");
//! ```

use std::fmt;

/// Why the fallback answered instead of the inner service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum Reason {
    /// A circuit breaker refused the call (open, half-open and full, or forced open).
    BreakerOpen,
    /// The call timed out (`tower::timeout`, or a breaker's call timeout).
    Timeout,
    /// The call was shed for overload (`tower::load_shed`).
    Overload,
    /// The inner service failed with an error the policy's classifier calls a failure.
    Error,
    /// The inner service answered with a response the classifier calls a failure (an HTTP
    /// 5xx, a gRPC status such as `UNAVAILABLE`).
    FailureResponse,
    /// A degradation switch is at or above the route's level: the inner service was not called.
    Switch,
}

impl Reason {
    /// Every reason, in the order of their bits.
    pub const ALL: [Reason; 6] = [
        Reason::BreakerOpen,
        Reason::Timeout,
        Reason::Overload,
        Reason::Error,
        Reason::FailureResponse,
        Reason::Switch,
    ];

    /// The reason in `snake_case`, as metric labels, headers and config files spell it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::BreakerOpen => "breaker_open",
            Reason::Timeout => "timeout",
            Reason::Overload => "overload",
            Reason::Error => "error",
            Reason::FailureResponse => "failure_response",
            Reason::Switch => "switch",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s spelling.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Reason> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == name)
    }

    /// The reason's position among [`ALL`](Self::ALL).
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::BreakerOpen => "the circuit breaker is open",
            Reason::Timeout => "the call timed out",
            Reason::Overload => "the service is overloaded",
            Reason::Error => "the call failed",
            Reason::FailureResponse => "the response was a failure",
            Reason::Switch => "a degradation switch is on",
        })
    }
}

/// The marker of a response produced by a fallback: a response extension.
///
/// Caches must not store a response that carries it; clients learn of it through the header
/// the fallback layer adds when asked to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Degraded {
    reason: Reason,
}

impl Degraded {
    /// A marker for an answer given because of `reason`.
    #[must_use]
    pub const fn new(reason: Reason) -> Self {
        Self { reason }
    }

    /// Why the fallback answered.
    #[must_use]
    pub const fn reason(&self) -> Reason {
        self.reason
    }

    /// Whether `response` was produced by a fallback.
    #[cfg(feature = "http")]
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[must_use]
    pub fn is_marked<B>(response: &http::Response<B>) -> bool {
        response.extensions().get::<Degraded>().is_some()
    }
}

impl fmt::Display for Degraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "degraded: {}", self.reason)
    }
}

/// A `Degraded` is also an error, so that a failure can carry its reason in a `source()`
/// chain: the cache reads it there to mark a stale answer with why the load failed.
impl std::error::Error for Degraded {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (index, reason) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(Reason::from_name(reason.as_str()), Some(reason));
            assert_eq!(reason.index(), index);
        }
        assert_eq!(Reason::from_name("open"), None);
    }
}
