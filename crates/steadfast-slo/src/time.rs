//! Time for SLOs: absolute minutes, calendar periods and maintenance windows.
//!
//! Counts are kept per UTC minute since the Unix epoch, so that calendar periods and declared
//! maintenance windows line up with wall-clock time, while the minute itself is read from the
//! monotonic coarse [`Clock`] (one atomic load on the recording path).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use steadfast_core::Clock;

pub(crate) const MINUTE_NS: u64 = 60_000_000_000;
const MINUTES_PER_DAY: u64 = 24 * 60;

/// The monotonic clock, anchored to wall-clock time once.
#[derive(Clone, Debug)]
pub(crate) struct TimeBase {
    clock: Clock,
    /// Unix nanoseconds at the clock's zero.
    origin: u64,
}

impl TimeBase {
    /// Anchors `clock`'s current reading at `now` (wall-clock).
    pub(crate) fn new(clock: Clock, now: SystemTime) -> Self {
        let unix = unix_nanos(now);
        let origin = unix.saturating_sub(clock.recent());
        Self { clock, origin }
    }

    /// The current minute since the Unix epoch.
    #[inline]
    pub(crate) fn minute(&self) -> u64 {
        (self.origin + self.clock.recent()) / MINUTE_NS
    }

    /// Nanoseconds on the monotonic clock, for hold times and elapsed times.
    #[inline]
    pub(crate) fn mono(&self) -> u64 {
        self.clock.recent()
    }

    /// The precise monotonic time, for timing a call.
    #[inline]
    pub(crate) fn precise(&self) -> u64 {
        self.clock.now()
    }

    /// The wall-clock time now.
    pub(crate) fn wall(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.origin + self.clock.recent())
    }
}

pub(crate) fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The period over which an SLO's objective and error budget are counted.
///
/// ```
/// use std::time::Duration;
/// use steadfast_slo::Period;
///
/// assert_eq!(Period::days(30).to_string(), "30d rolling");
/// assert_eq!(Period::Month.to_string(), "calendar month");
/// assert_eq!(Period::Rolling(Duration::from_secs(7 * 86_400)), Period::days(7));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Period {
    /// The last so long, up to now (30 days is the usual choice). Accurate to the minute over
    /// the last three days, and to the hour beyond.
    Rolling(Duration),
    /// The current calendar month, UTC.
    Month,
    /// The current calendar week, starting Monday 00:00 UTC.
    Week,
}

/// The longest rolling period: a quarter and a day.
pub const MAX_PERIOD: Duration = Duration::from_secs(93 * 86_400);

impl Period {
    /// A rolling period of `days` days.
    #[must_use]
    pub const fn days(days: u64) -> Self {
        Period::Rolling(Duration::from_secs(days * 86_400))
    }

    /// The first minute of the period holding `now`.
    pub(crate) fn start(self, now: u64) -> u64 {
        match self {
            Period::Rolling(length) => (now + 1).saturating_sub(whole_minutes(length)),
            Period::Week => {
                let day = now / MINUTES_PER_DAY;
                // 1970-01-01 was a Thursday: three days after a Monday.
                let monday = day.saturating_sub((day + 3) % 7);
                monday * MINUTES_PER_DAY
            }
            Period::Month => {
                let (year, month, _) = civil_from_days(now / MINUTES_PER_DAY);
                days_from_civil(year, month, 1) * MINUTES_PER_DAY
            }
        }
    }

    /// The longest the period can be, in minutes: the history it needs.
    pub(crate) fn max_minutes(self) -> u64 {
        match self {
            Period::Rolling(length) => whole_minutes(length),
            Period::Week => 7 * MINUTES_PER_DAY,
            Period::Month => 31 * MINUTES_PER_DAY,
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Rolling(length) => {
                write!(f, "{} rolling", crate::burn::window_label(*length))
            }
            Period::Month => f.write_str("calendar month"),
            Period::Week => f.write_str("calendar week"),
        }
    }
}

/// `length` in whole minutes, rounded up, at least one.
pub(crate) fn whole_minutes(length: Duration) -> u64 {
    length.as_secs().div_ceil(60).max(1)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    u64::try_from(era * 146_097 + doe - 719_468).unwrap_or(0)
}

/// The date of a day since 1970-01-01.
pub(crate) fn civil_from_days(days: u64) -> (i64, u32, u32) {
    let z = i64::try_from(days).unwrap_or(i64::MAX / 2) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A declared maintenance window: its minutes count neither as good nor as bad, and are not
/// part of uptime.
///
/// Windows are kept to the minute: a minute is in maintenance when it starts inside the window.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use steadfast_slo::Maintenance;
///
/// let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
/// let window = Maintenance::new(start, start + Duration::from_secs(1800)).unwrap();
/// assert_eq!(window.length(), Duration::from_secs(1800));
/// assert!(Maintenance::new(start, start).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Maintenance {
    start: u64,
    end: u64,
}

impl Maintenance {
    /// The window from `start` (inclusive) to `end` (exclusive).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Maintenance`](crate::ConfigError::Maintenance) if it does not end after it
    /// starts, or lasts over the longest period.
    pub fn new(start: SystemTime, end: SystemTime) -> Result<Self, crate::ConfigError> {
        let (s, e) = (unix_nanos(start), unix_nanos(end));
        if e <= s || e - s > u64::try_from(MAX_PERIOD.as_nanos()).unwrap_or(u64::MAX) {
            return Err(crate::ConfigError::Maintenance);
        }
        Ok(Self {
            start: s.div_ceil(MINUTE_NS),
            end: e.div_ceil(MINUTE_NS),
        })
    }

    /// How long the window lasts, to the minute.
    #[must_use]
    pub fn length(&self) -> Duration {
        Duration::from_secs((self.end - self.start) * 60)
    }

    /// Whether minute `m` is in the window.
    pub(crate) fn holds(&self, m: u64) -> bool {
        (self.start..self.end).contains(&m)
    }

    pub(crate) fn end_minute(&self) -> u64 {
        self.end
    }

    /// How many of the minutes `from..=to` are in the window.
    pub(crate) fn overlap(&self, from: u64, to: u64) -> u64 {
        let lo = self.start.max(from);
        let hi = self.end.min(to + 1);
        hi.saturating_sub(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for day in [0u64, 59, 60, 365, 10_957, 19_782, 20_513, 47_482] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2024 is a leap year.
        assert_eq!(
            civil_from_days(days_from_civil(2024, 2, 29) + 1),
            (2024, 3, 1)
        );
        assert_eq!(days_from_civil(2026, 11, 21), 20_778);
    }

    #[test]
    fn period_starts() {
        // 2026-11-21 (a Saturday) 13:37 UTC.
        let now = 20_778 * MINUTES_PER_DAY + 13 * 60 + 37;
        assert_eq!(
            Period::Month.start(now),
            days_from_civil(2026, 11, 1) * MINUTES_PER_DAY
        );
        assert_eq!(
            Period::Week.start(now),
            days_from_civil(2026, 11, 16) * MINUTES_PER_DAY
        );
        // A Monday starts its own week.
        let monday = days_from_civil(2026, 11, 16) * MINUTES_PER_DAY;
        assert_eq!(Period::Week.start(monday + 5), monday);
        assert_eq!(Period::days(1).start(now), now + 1 - 1440);
        assert_eq!(Period::Month.max_minutes(), 31 * 1440);
    }

    #[test]
    fn maintenance_minutes() {
        let at = |min: u64| UNIX_EPOCH + Duration::from_secs(min * 60);
        let window = Maintenance::new(at(100), at(130)).unwrap();
        assert!(window.holds(100) && window.holds(129) && !window.holds(130) && !window.holds(99));
        assert_eq!(window.overlap(90, 110), 11);
        assert_eq!(window.overlap(0, 50), 0);
        assert!(Maintenance::new(at(5), at(4)).is_err());
    }
}
