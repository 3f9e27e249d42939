//! Which failures a fallback answers, and how an error tells what it was.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use steadfast_core::{BoxError, Reason};

/// A set of [`Reason`]s: the policy of which failures a fallback answers.
///
/// ```
/// use steadfast_fallback::{Reason, Reasons};
///
/// // "Only when the breaker is open", apart from "on any error".
/// let open = Reasons::BREAKER_OPEN;
/// assert!(open.contains(Reason::BreakerOpen));
/// assert!(!open.contains(Reason::Error));
/// assert!(Reasons::ALL.contains(Reason::Error));
/// assert_eq!((Reasons::TIMEOUT | Reasons::OVERLOAD).len(), 2);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reasons(u8);

impl Reasons {
    /// No reason: the fallback never answers (useful to switch one off in a table).
    pub const NONE: Reasons = Reasons(0);
    /// A circuit breaker refused the call.
    pub const BREAKER_OPEN: Reasons = Reasons::of(Reason::BreakerOpen);
    /// The call timed out.
    pub const TIMEOUT: Reasons = Reasons::of(Reason::Timeout);
    /// The call was shed for overload.
    pub const OVERLOAD: Reasons = Reasons::of(Reason::Overload);
    /// The inner service failed with an error its classifier calls a failure.
    pub const ERROR: Reasons = Reasons::of(Reason::Error);
    /// The inner service answered with a failure-classified response.
    pub const FAILURE_RESPONSE: Reasons = Reasons::of(Reason::FailureResponse);
    /// A degradation switch is at or above the route's level.
    pub const SWITCH: Reasons = Reasons::of(Reason::Switch);
    /// Every error, refusal, timeout and shed call, but not failure responses or switches.
    pub const ANY_ERROR: Reasons = Reasons(
        Reasons::BREAKER_OPEN.0 | Reasons::TIMEOUT.0 | Reasons::OVERLOAD.0 | Reasons::ERROR.0,
    );
    /// Every reason: the default.
    pub const ALL: Reasons =
        Reasons(Reasons::ANY_ERROR.0 | Reasons::FAILURE_RESPONSE.0 | Reasons::SWITCH.0);

    /// The set holding only `reason`.
    #[must_use]
    pub const fn of(reason: Reason) -> Reasons {
        Reasons(1 << reason as u8)
    }

    /// Whether `reason` is in the set.
    #[inline]
    #[must_use]
    pub const fn contains(self, reason: Reason) -> bool {
        self.0 & (1 << reason as u8) != 0
    }

    /// The set with `reason` added.
    #[must_use]
    pub const fn with(self, reason: Reason) -> Reasons {
        Reasons(self.0 | 1 << reason as u8)
    }

    /// The set with `reason` taken out.
    #[must_use]
    pub const fn without(self, reason: Reason) -> Reasons {
        Reasons(self.0 & !(1 << reason as u8))
    }

    /// How many reasons the set holds.
    #[must_use]
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The reasons in the set.
    pub fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL
            .into_iter()
            .filter(move |reason| self.contains(*reason))
    }
}

impl Default for Reasons {
    fn default() -> Self {
        Reasons::ALL
    }
}

impl BitOr for Reasons {
    type Output = Reasons;
    fn bitor(self, rhs: Reasons) -> Reasons {
        Reasons(self.0 | rhs.0)
    }
}

impl BitOrAssign for Reasons {
    fn bitor_assign(&mut self, rhs: Reasons) {
        self.0 |= rhs.0;
    }
}

impl From<Reason> for Reasons {
    fn from(reason: Reason) -> Self {
        Reasons::of(reason)
    }
}

impl FromIterator<Reason> for Reasons {
    fn from_iter<I: IntoIterator<Item = Reason>>(iter: I) -> Self {
        iter.into_iter().fold(Reasons::NONE, Reasons::with)
    }
}

impl fmt::Debug for Reasons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Reason::as_str))
            .finish()
    }
}

/// Tells what kind of failure an error is: a breaker's refusal, a timeout, an overload, or an
/// error of the inner service ([`Reason::Error`], the default).
///
/// Implemented for the errors of Steadfast and tower's middleware, for `BoxError` (it looks
/// through the whole `source()` chain), `tonic::Status` (through its source), `std::io::Error`
/// (a `TimedOut` kind is a timeout) and strings. For an error type of your own, one line
/// does, or write `diagnose` when the error wraps a timeout:
///
/// ```
/// use steadfast_fallback::{Diagnose, Reason};
///
/// #[derive(Debug)]
/// struct LedgerError;
/// impl Diagnose for LedgerError {}
///
/// assert_eq!(LedgerError.diagnose(), Reason::Error);
/// ```
pub trait Diagnose {
    /// The kind of failure; [`Reason::Error`] unless the error says otherwise.
    fn diagnose(&self) -> Reason {
        Reason::Error
    }
}

/// The reason told by one error of a chain, if it is one Steadfast or tower knows.
fn known(error: &(dyn std::error::Error + 'static)) -> Option<Reason> {
    if error.is::<steadfast_breaker::Rejected>() {
        Some(Reason::BreakerOpen)
    } else if error.is::<steadfast_breaker::TimedOut>()
        || error.is::<tower::timeout::error::Elapsed>()
        || error.is::<tokio::time::error::Elapsed>()
    {
        Some(Reason::Timeout)
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        Some(Reason::Overload)
    } else if let Some(io) = error.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::TimedOut {
            return Some(Reason::Timeout);
        }
        // An `io::Error` made from another error hides it from `source()`.
        io.get_ref().and_then(|inner| known(inner))
    } else {
        None
    }
}

/// Walks a `source()` chain for a reason Steadfast or tower knows.
///
/// The walk is bounded, so a cyclic chain cannot hang it.
#[must_use]
pub fn diagnose_chain(error: &(dyn std::error::Error + 'static)) -> Reason {
    let mut next = Some(error);
    for _ in 0..32 {
        let Some(error) = next else { break };
        if let Some(reason) = known(error) {
            return reason;
        }
        next = error.source();
    }
    Reason::Error
}

impl Diagnose for BoxError {
    fn diagnose(&self) -> Reason {
        diagnose_chain(&**self)
    }
}

impl<E: Diagnose> Diagnose for steadfast_breaker::Error<E> {
    fn diagnose(&self) -> Reason {
        match self {
            steadfast_breaker::Error::Rejected(_) => Reason::BreakerOpen,
            steadfast_breaker::Error::TimedOut(_) => Reason::Timeout,
            steadfast_breaker::Error::Inner(error) => error.diagnose(),
        }
    }
}

impl Diagnose for steadfast_breaker::Rejected {
    fn diagnose(&self) -> Reason {
        Reason::BreakerOpen
    }
}

impl Diagnose for steadfast_breaker::TimedOut {
    fn diagnose(&self) -> Reason {
        Reason::Timeout
    }
}

impl Diagnose for tower::timeout::error::Elapsed {
    fn diagnose(&self) -> Reason {
        Reason::Timeout
    }
}

impl Diagnose for tower::load_shed::error::Overloaded {
    fn diagnose(&self) -> Reason {
        Reason::Overload
    }
}

impl Diagnose for std::io::Error {
    fn diagnose(&self) -> Reason {
        diagnose_chain(self)
    }
}

impl Diagnose for std::convert::Infallible {}
impl Diagnose for String {}
impl Diagnose for &'static str {}

#[cfg(feature = "tonic")]
impl Diagnose for tonic::Status {
    /// A status made from a breaker's refusal or timeout keeps it as its source; any other
    /// status is an error (the classifier then decides whether its code is a failure).
    fn diagnose(&self) -> Reason {
        std::error::Error::source(self).map_or(Reason::Error, diagnose_chain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use steadfast_breaker::{CircuitBreaker, Rejected};

    fn rejected() -> Rejected {
        let breaker = CircuitBreaker::builder("r").build().unwrap();
        breaker.force_open();
        let refused = match breaker.try_acquire() {
            Ok(_) => panic!("the breaker is forced open"),
            Err(rejected) => rejected,
        };
        refused
    }

    #[test]
    fn boxed_errors_are_diagnosed_through_their_chain() {
        let open: BoxError = Box::new(rejected());
        assert_eq!(open.diagnose(), Reason::BreakerOpen);
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        assert_eq!(elapsed.diagnose(), Reason::Timeout);
        let shed: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
        assert_eq!(shed.diagnose(), Reason::Overload);
        let wrapped: BoxError = Box::new(std::io::Error::other(rejected()));
        assert_eq!(wrapped.diagnose(), Reason::BreakerOpen);
        let plain: BoxError = "refused".into();
        assert_eq!(plain.diagnose(), Reason::Error);
        let io = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(io.diagnose(), Reason::Timeout);
    }

    #[test]
    fn breaker_errors_say_what_they_are() {
        type E = steadfast_breaker::Error<String>;
        assert_eq!(E::Rejected(rejected()).diagnose(), Reason::BreakerOpen);
        assert_eq!(E::Inner("x".into()).diagnose(), Reason::Error);
        let _ = Duration::ZERO;
    }

    #[test]
    fn sets() {
        let set: Reasons = [Reason::Timeout, Reason::Switch].into_iter().collect();
        assert_eq!(set, Reasons::TIMEOUT | Reasons::SWITCH);
        assert_eq!(format!("{set:?}"), r#"{"timeout", "switch"}"#);
        assert_eq!(Reasons::ALL.len(), Reason::ALL.len());
        assert!(Reasons::NONE.is_empty());
        assert!(!Reasons::ALL.without(Reason::Error).contains(Reason::Error));
    }
}
