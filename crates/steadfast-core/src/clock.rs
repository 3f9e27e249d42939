use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How often the background thread refreshes the coarse time.
const UPKEEP_INTERVAL: Duration = Duration::from_millis(1);

/// The coarse time, in nanoseconds since the process's clock origin.
static COARSE_NANOS: AtomicU64 = AtomicU64::new(0);
static REAL: OnceLock<Real> = OnceLock::new();

struct Real {
    clock: quanta::Clock,
    origin: u64,
    /// False where the upkeep thread could not start: `recent` then reads the precise time.
    coarse: bool,
}

impl Real {
    fn now(&self) -> u64 {
        self.clock.delta_as_nanos(self.origin, self.clock.raw())
    }

    fn get() -> &'static Real {
        REAL.get_or_init(|| {
            let clock = quanta::Clock::new();
            let origin = clock.raw();
            COARSE_NANOS.store(0, Ordering::Relaxed);
            let upkeep_clock = clock.clone();
            let coarse = std::thread::Builder::new()
                .name("steadfast-clock".into())
                .spawn(move || loop {
                    let now = upkeep_clock.delta_as_nanos(origin, upkeep_clock.raw());
                    COARSE_NANOS.fetch_max(now, Ordering::Relaxed);
                    std::thread::sleep(UPKEEP_INTERVAL);
                })
                .is_ok();
            Real {
                clock,
                origin,
                coarse,
            }
        })
    }
}

/// A monotonic clock that is cheap to read on a hot path.
///
/// [`Clock::recent`] reads a coarse time that one background thread refreshes every millisecond
/// for the whole process, so reading it costs one atomic load and no conversion. [`Clock::now`]
/// reads the precise time (the TSC where the CPU has a stable one, through quanta) for the rare
/// paths that time a call.
///
/// Both count nanoseconds from an origin: the first use of a real clock in the process, or zero
/// for a mock. Values of one clock compare with each other, never with another clock's.
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
    source: Source,
}

#[derive(Clone)]
enum Source {
    Real(&'static Real),
    Mock(Arc<AtomicU64>),
}

impl Clock {
    /// A clock on real time.
    ///
    /// The first call in a process calibrates the TSC and starts the thread that keeps the
    /// coarse time fresh.
    #[must_use]
    pub fn new() -> Self {
        Self {
            source: Source::Real(Real::get()),
        }
    }

    /// A clock that only moves when told to, for tests. It starts at zero.
    #[must_use]
    pub fn mock() -> (Self, MockClock) {
        let nanos = Arc::new(AtomicU64::new(0));
        (
            Self {
                source: Source::Mock(nanos.clone()),
            },
            MockClock(nanos),
        )
    }

    /// The coarse time in nanoseconds: one atomic load, at most a millisecond or so behind
    /// [`Clock::now`].
    #[inline]
    #[must_use]
    pub fn recent(&self) -> u64 {
        match &self.source {
            Source::Real(real) if real.coarse => COARSE_NANOS.load(Ordering::Relaxed),
            Source::Real(real) => real.now(),
            Source::Mock(nanos) => nanos.load(Ordering::Relaxed),
        }
    }

    /// The precise time in nanoseconds.
    #[inline]
    #[must_use]
    pub fn now(&self) -> u64 {
        match &self.source {
            Source::Real(real) => real.now(),
            Source::Mock(nanos) => nanos.load(Ordering::Relaxed),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.source {
            Source::Real(_) => "real",
            Source::Mock(_) => "mock",
        };
        f.debug_struct("Clock")
            .field("kind", &kind)
            .field("recent_ns", &self.recent())
            .finish()
    }
}

/// The control side of [`Clock::mock`]: moves the mocked time forward.
#[derive(Clone)]
pub struct MockClock(Arc<AtomicU64>);

impl MockClock {
    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Saturates rather than wraps, so that time never runs backwards.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
                Some(now.saturating_add(nanos))
            });
    }
}

impl fmt::Debug for MockClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MockClock")
            .field(&self.0.load(Ordering::Relaxed))
            .finish()
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
        assert!(b >= a + 3_000_000, "{b} < {a} + 3ms");
        // The coarse time trails the precise time by about the upkeep interval.
        let recent = clock.recent();
        assert!(recent <= clock.now());
        assert!(
            clock.now() - recent < 500_000_000,
            "coarse time is stale: {recent}"
        );
    }

    #[test]
    fn clones_share_the_time() {
        let (clock, mock) = Clock::mock();
        let copy = clock.clone();
        mock.advance(Duration::from_secs(2));
        assert_eq!(copy.recent(), 2_000_000_000);
        assert_eq!(clock.recent(), copy.recent());
        mock.advance(Duration::MAX);
        assert_eq!(clock.now(), u64::MAX);
    }
}
