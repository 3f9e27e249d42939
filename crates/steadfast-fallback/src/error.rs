//! The errors of a fallback-wrapped service.

use std::fmt;

use steadfast_core::{BoxError, Reason};

/// What the boxed and gRPC modes carry when a fallback fails: downcast a `BoxError` (or a
/// `tonic::Status`'s source) to this.
pub type BoxedFallbackFailed = FallbackFailed<BoxError, FallbackError>;

/// A fallback's error, boxed.
#[derive(Debug)]
pub struct FallbackError(pub BoxError);

impl fmt::Display for FallbackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for FallbackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The inner call failed, the fallback ran, and the fallback failed too.
///
/// Both causes are kept: the message names the reason the fallback ran and the inner error
/// (when there was one), and `source()` is the fallback's own error, whose chain follows.
/// [`original`](Self::original) and [`fallback_error`](Self::fallback_error) give each.
pub struct FallbackFailed<E, FE> {
    reason: Reason,
    original: Option<E>,
    error: FE,
}

impl<E, FE> FallbackFailed<E, FE> {
    pub(crate) const fn new(reason: Reason, original: Option<E>, error: FE) -> Self {
        Self {
            reason,
            original,
            error,
        }
    }

    /// Why the fallback ran.
    pub const fn reason(&self) -> Reason {
        self.reason
    }

    /// The inner service's error, when the fallback ran because of one (not for a failure
    /// response or a switch).
    pub const fn original(&self) -> Option<&E> {
        self.original.as_ref()
    }

    /// The fallback's error.
    pub const fn fallback_error(&self) -> &FE {
        &self.error
    }

    /// The reason, the inner error and the fallback's error.
    pub fn into_parts(self) -> (Reason, Option<E>, FE) {
        (self.reason, self.original, self.error)
    }

    /// Both errors boxed, as the boxed and gRPC modes carry them.
    pub(crate) fn boxed(self) -> BoxedFallbackFailed
    where
        E: Into<BoxError>,
        FE: Into<BoxError>,
    {
        FallbackFailed {
            reason: self.reason,
            original: self.original.map(Into::into),
            error: FallbackError(self.error.into()),
        }
    }
}

impl<E: fmt::Debug, FE: fmt::Debug> fmt::Debug for FallbackFailed<E, FE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackFailed")
            .field("reason", &self.reason)
            .field("original", &self.original)
            .field("error", &self.error)
            .finish()
    }
}

impl<E: fmt::Display, FE> fmt::Display for FallbackFailed<E, FE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the fallback failed after {}", self.reason)?;
        if let Some(original) = &self.original {
            write!(f, " ({original})")?;
        }
        Ok(())
    }
}

impl<E, FE> std::error::Error for FallbackFailed<E, FE>
where
    E: fmt::Debug + fmt::Display,
    FE: std::error::Error + 'static,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The error of a fallback-wrapped service in the typed mode.
#[derive(Debug)]
pub enum Error<E, FE> {
    /// The inner service failed for a reason the policy does not answer: its error, as is.
    Inner(E),
    /// The fallback ran and failed.
    Fallback(FallbackFailed<E, FE>),
}

impl<E, FE> Error<E, FE> {
    /// The inner error, when the fallback did not run.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Inner(error) => Some(error),
            Error::Fallback(_) => None,
        }
    }

    /// The failed fallback, if the fallback ran.
    pub const fn fallback_failed(&self) -> Option<&FallbackFailed<E, FE>> {
        match self {
            Error::Fallback(failed) => Some(failed),
            Error::Inner(_) => None,
        }
    }
}

impl<E: fmt::Display, FE> fmt::Display for Error<E, FE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Inner(error) => error.fmt(f),
            Error::Fallback(failed) => failed.fmt(f),
        }
    }
}

impl<E, FE> std::error::Error for Error<E, FE>
where
    E: std::error::Error + 'static,
    FE: std::error::Error + 'static,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Inner(error) => error.source(),
            Error::Fallback(failed) => failed.source(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn both_causes_are_kept() {
        let failed = FallbackFailed::new(
            Reason::Error,
            Some(std::io::Error::other("connection reset")),
            std::io::Error::other("fallback store down"),
        );
        assert_eq!(
            failed.to_string(),
            "the fallback failed after the call failed (connection reset)"
        );
        assert_eq!(failed.source().unwrap().to_string(), "fallback store down");
        assert_eq!(failed.original().unwrap().to_string(), "connection reset");
    }
}
