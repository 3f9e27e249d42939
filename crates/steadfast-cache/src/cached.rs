//! What a read answers: the value, whether it is fresh, and where it came from.

use std::ops::Deref;

use steadfast_core::Reason;

/// A value read from a [`TieredCache`](crate::TieredCache), with how fresh it is and where it
/// came from. Dereferences to the value.
///
/// A stale value is one the cache chose to serve rather than fail: check
/// [`is_stale`](Cached::is_stale) and tell your caller (a response header, a field in the
/// answer), as the fallback crate marks its answers `Degraded`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached<V> {
    value: V,
    status: Status,
    source: Source,
}

impl<V> Cached<V> {
    pub(crate) const fn new(value: V, status: Status, source: Source) -> Self {
        Self {
            value,
            status,
            source,
        }
    }

    /// The value.
    #[must_use]
    pub const fn value(&self) -> &V {
        &self.value
    }

    /// The value, owned.
    #[must_use]
    pub fn into_inner(self) -> V {
        self.value
    }

    /// Fresh, or stale and why.
    #[must_use]
    pub const fn status(&self) -> Status {
        self.status
    }

    /// `true` when the value is past its fresh time.
    #[must_use]
    pub const fn is_stale(&self) -> bool {
        matches!(self.status, Status::Stale(_))
    }

    /// The tier that answered, or the loader.
    #[must_use]
    pub const fn source(&self) -> Source {
        self.source
    }

    /// Maps the value, keeping its status and source.
    pub fn map<U>(self, f: impl FnOnce(V) -> U) -> Cached<U> {
        Cached::new(f(self.value), self.status, self.source)
    }
}

impl<V> Deref for Cached<V> {
    type Target = V;

    fn deref(&self) -> &V {
        &self.value
    }
}

/// How fresh an answer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Within its time to live.
    Fresh,
    /// Past its time to live, served anyway.
    Stale(Stale),
}

/// Why a stale value was served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// Stale-while-revalidate: a refresh runs in the background; the next read gets its value.
    Revalidating,
    /// Stale-if-error: the load failed, for this reason (`BreakerOpen` when the loader's
    /// breaker refused, `Timeout` when it ran past its time, `Error` otherwise).
    LoadFailed(Reason),
}

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The in-process tier.
    L1,
    /// The shared tier.
    L2,
    /// The loader, just now.
    Loader,
}
