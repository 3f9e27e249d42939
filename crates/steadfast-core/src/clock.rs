use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How often the background thread refreshes the coarse time.
const UPKEEP_INTERVAL: Duration = Duration::from_millis(1);

/// A monotonic clock that is cheap to read on a hot path.
///
/// [`Clock::recent`] reads a coarse time, refreshed every millisecond by one background thread
/// for the whole process, so reading it costs one atomic load. [`Clock::now`] reads the precise
/// time (the TSC where the CPU has a stable one) for the rare paths that time a call.
///
/// Both are nanoseconds since the clock was created. Clones share the same origin.
///
/// ```
/// use std::time::Duration;
/// use steadfast_core::Clock;
///
/// let (clock, mock) = Clock::mock();
/// assert_eq!(clock.recent(), 0);
/// mock.advance(Duration::from_millis(5));
/// assert_eq!(clock.recent(), 5_000_000);
/// assert_eq!(clock.now(), 5_000_000);
/// ```
#[derive(Clone)]
pub struct Clock {
    inner: quanta::Clock,
    origin: quanta::Instant,
}

impl Clock {
    /// A clock on real time.
    ///
    /// The first call in a process starts the thread that keeps the coarse time fresh (quanta's
    /// upkeep thread). If another part of the program already runs one, that one is used.
    #[must_use]
    pub fn new() -> Self {
        static UPKEEP: OnceLock<Option<quanta::Handle>> = OnceLock::new();
        UPKEEP.get_or_init(|| quanta::Upkeep::new(UPKEEP_INTERVAL).start().ok());
        let inner = quanta::Clock::new();
        let origin = inner.now();
        Self { inner, origin }
    }

    /// A clock that only moves when told to, for tests. It starts at zero.
    #[must_use]
    pub fn mock() -> (Self, MockClock) {
        let (inner, mock) = quanta::Clock::mock();
        let origin = inner.now();
        (Self { inner, origin }, MockClock(mock))
    }

    /// The coarse time in nanoseconds since the clock was created: one atomic load, at most a
    /// millisecond or so behind [`Clock::now`].
    #[inline]
    #[must_use]
    pub fn recent(&self) -> u64 {
        let recent = self.inner.recent();
        nanos_between(self.origin, recent)
    }

    /// The precise time in nanoseconds since the clock was created.
    #[inline]
    #[must_use]
    pub fn now(&self) -> u64 {
        nanos_between(self.origin, self.inner.now())
    }
}

#[inline]
fn nanos_between(origin: quanta::Instant, later: quanta::Instant) -> u64 {
    // Saturates rather than wraps: a coarse time a moment older than the origin reads as zero.
    let nanos = later.saturating_duration_since(origin).as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clock")
            .field("recent_ns", &self.recent())
            .finish()
    }
}

/// The control side of [`Clock::mock`]: moves the mocked time forward.
#[derive(Clone)]
pub struct MockClock(Arc<quanta::Mock>);

impl MockClock {
    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        self.0.increment(by);
    }
}

impl fmt::Debug for MockClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MockClock").field(&self.0.value()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_clock_moves_forward() {
        let clock = Clock::new();
        let a = clock.now();
        std::thread::sleep(Duration::from_millis(3));
        let b = clock.now();
        assert!(b > a, "{b} <= {a}");
        assert!(clock.recent() <= clock.now() + 1_000_000);
    }

    #[test]
    fn clones_share_the_origin() {
        let (clock, mock) = Clock::mock();
        let copy = clock.clone();
        mock.advance(Duration::from_secs(2));
        assert_eq!(copy.recent(), 2_000_000_000);
        assert_eq!(clock.recent(), copy.recent());
    }
}
