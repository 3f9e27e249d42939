//! Degradation switches: named levels shared by the process, flipped at runtime.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use indexmap::IndexMap;
use parking_lot::{Mutex, RwLock};
use steadfast_core::metrics as names;
use steadfast_core::Listener;

/// The longest switch name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The most switches one [`Degrader`] holds: names come from config files and admin calls,
/// and a typo must not grow memory or metric series without bound.
pub const MAX_SWITCHES: usize = 1024;
/// `who` and `why` of a flip are cut to this many bytes in metric labels.
const MAX_LABEL_LEN: usize = 64;

/// The process's degradation switches.
///
/// Each switch has a name and a level: 0 is full service, higher levels shed more (say 1 = no
/// recommendations, 2 = read-only). Routes bind to a switch and a level with
/// [`FallbackLayer::switch`](crate::FallbackLayer::switch); while the switch is at or above
/// that level, the route answers from its fallback without calling the inner service.
///
/// Cloning a `Degrader` is cheap and shares its switches. Reading a switch on the request path
/// is one atomic load ([`Switch::level`]).
///
/// ```
/// use steadfast_fallback::{Degrader, Flip};
///
/// let degrader = Degrader::new();
/// let recommendations = degrader.switch("recommendations").unwrap();
/// assert_eq!(recommendations.level(), 0);
///
/// degrader
///     .set("recommendations", 1, Flip::new("alice", "black friday"))
///     .unwrap();
/// assert_eq!(recommendations.level(), 1);
/// ```
#[derive(Clone, Default)]
pub struct Degrader {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    switches: RwLock<IndexMap<Arc<str>, Switch>>,
    listeners: RwLock<Vec<Arc<dyn Listener<FlipEvent>>>>,
    /// Serializes flips, so that a reload applies as one and events queue in the order
    /// levels changed.
    flips: Mutex<()>,
    /// Events not yet delivered. Listeners run outside every lock, so a listener may flip
    /// another switch (a cascade, or the SLO loop) or add a listener without deadlocking.
    pending: Mutex<VecDeque<FlipEvent>>,
    /// Whether a thread is delivering events; a flip made meanwhile (by a listener, or by
    /// another thread) queues its event for that thread to deliver, in order.
    delivering: AtomicBool,
    /// The last flips, newest last, for status pages and the admin router.
    history: Mutex<VecDeque<FlipEvent>>,
    /// The levels the last config applied, so that a reload changes only what the file
    /// changed (an admin's flip of a switch the file did not touch stands) and resets the
    /// switches the file no longer names.
    #[cfg(feature = "serde")]
    from_config: Mutex<std::collections::BTreeMap<String, u8>>,
}

/// How many flips [`Degrader::history`] keeps.
pub const HISTORY_LEN: usize = 64;

/// One named switch. Cloning shares it; [`level`](Switch::level) is one atomic load.
#[derive(Clone)]
pub struct Switch {
    inner: Arc<SwitchInner>,
}

struct SwitchInner {
    level: AtomicU8,
    name: Arc<str>,
    gauge: metrics::Gauge,
}

impl Switch {
    /// The switch's level now: one relaxed atomic load.
    #[inline]
    #[must_use]
    pub fn level(&self) -> u8 {
        self.inner.level.load(Ordering::Relaxed)
    }

    /// Whether the switch is at or above `level` (level 0 is never "on").
    #[inline]
    #[must_use]
    pub fn is_at_least(&self, level: u8) -> bool {
        level != 0 && self.level() >= level
    }

    /// The switch's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }
}

impl fmt::Debug for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Switch")
            .field("name", &self.name())
            .field("level", &self.level())
            .finish()
    }
}

/// Who flipped a switch and why: the flip's event and the history carry both; its metric
/// counts by who.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flip {
    who: Cow<'static, str>,
    why: Cow<'static, str>,
    source: Source,
}

impl Flip {
    /// A flip from code by `who`, because of `why`.
    pub fn new(who: impl Into<Cow<'static, str>>, why: impl Into<Cow<'static, str>>) -> Self {
        Self {
            who: who.into(),
            why: why.into(),
            source: Source::Code,
        }
    }

    /// The same flip, from another source.
    #[must_use]
    pub fn from_source(mut self, source: Source) -> Self {
        self.source = source;
        self
    }

    /// Who flipped.
    #[must_use]
    pub fn who(&self) -> &str {
        &self.who
    }

    /// Why.
    #[must_use]
    pub fn why(&self) -> &str {
        &self.why
    }

    /// Where the flip came from.
    #[must_use]
    pub const fn source(&self) -> Source {
        self.source
    }
}

/// Where a flip came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// A call from the program's code.
    Code,
    /// A config file, loaded or reloaded.
    Config,
    /// The admin router.
    Admin,
    /// A budget policy, when an error budget burns (the SLO crate).
    Budget,
}

impl Source {
    /// The source in `snake_case`, as metric labels spell it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Code => "code",
            Source::Config => "config",
            Source::Admin => "admin",
            Source::Budget => "budget",
        }
    }
}

/// A switch changed level.
#[derive(Clone, Debug)]
pub struct FlipEvent {
    /// The switch.
    pub switch: Arc<str>,
    /// The level it left.
    pub from: u8,
    /// The level it entered.
    pub to: u8,
    /// Who flipped it, why, and from where.
    pub flip: Flip,
    /// When.
    pub at: SystemTime,
}

/// A switch name the degrader refuses, or a degrader that is full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwitchError {
    /// Names are 1 to 64 bytes of ASCII letters, digits, `_`, `-` and `.`.
    InvalidName(String),
    /// The degrader already holds [`MAX_SWITCHES`] switches.
    TooMany,
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SwitchError::InvalidName(name) => write!(
                f,
                "invalid switch name {name:?}: use 1 to {MAX_NAME_LEN} ASCII letters, digits, '_', '-' or '.'"
            ),
            SwitchError::TooMany => write!(f, "a degrader holds at most {MAX_SWITCHES} switches"),
        }
    }
}

impl std::error::Error for SwitchError {}

/// Checks a switch name.
///
/// # Errors
///
/// [`SwitchError::InvalidName`] for an empty, long or oddly spelled name.
pub fn validate_name(name: &str) -> Result<(), SwitchError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(SwitchError::InvalidName(name.to_owned()))
    }
}

impl Degrader {
    /// A degrader with no switches.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The switch named `name`, made at level 0 if it does not exist yet.
    ///
    /// # Errors
    ///
    /// A name [`validate_name`] refuses, or a degrader already full.
    pub fn switch(&self, name: &str) -> Result<Switch, SwitchError> {
        if let Some(switch) = self.shared.switches.read().get(name) {
            return Ok(switch.clone());
        }
        validate_name(name)?;
        let mut switches = self.shared.switches.write();
        if let Some(switch) = switches.get(name) {
            return Ok(switch.clone());
        }
        if switches.len() >= MAX_SWITCHES {
            return Err(SwitchError::TooMany);
        }
        let name: Arc<str> = name.into();
        let gauge =
            metrics::gauge!(names::DEGRADATION_LEVEL, names::LABEL_SWITCH => name.to_string());
        gauge.set(0.0);
        let switch = Switch {
            inner: Arc::new(SwitchInner {
                level: AtomicU8::new(0),
                name: name.clone(),
                gauge,
            }),
        };
        switches.insert(name, switch.clone());
        Ok(switch)
    }

    /// The switch named `name`, if it exists.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<Switch> {
        self.shared.switches.read().get(name).cloned()
    }

    /// Every switch and its level, in the order they were made.
    #[must_use]
    pub fn levels(&self) -> Vec<(Arc<str>, u8)> {
        self.shared
            .switches
            .read()
            .iter()
            .map(|(name, switch)| (name.clone(), switch.level()))
            .collect()
    }

    /// Sets the switch `name` (made if needed) to `level`, and returns the level it left.
    ///
    /// Setting the level a switch already has changes nothing and reports nothing. Otherwise
    /// the flip is an event to every listener, an entry in [`history`](Self::history) and a
    /// metric: the gauge `steadfast_degradation_level{switch}` and the counter
    /// `steadfast_degradation_flips_total{switch, source, who}` (`why`, free text, is in the
    /// event and the history, not a label).
    ///
    /// # Errors
    ///
    /// As [`switch`](Self::switch).
    pub fn set(&self, name: &str, level: u8, flip: Flip) -> Result<u8, SwitchError> {
        let switch = self.switch(name)?;
        let from = {
            let _order = self.shared.flips.lock();
            self.flip_locked(&switch, level, flip)
        };
        self.deliver();
        Ok(from)
    }

    /// Sets several switches as one: every name is checked before any level changes.
    ///
    /// # Errors
    ///
    /// The first name refused; then no switch has changed.
    pub fn set_all<'a, I>(&self, levels: I, flip: &Flip) -> Result<usize, SwitchError>
    where
        I: IntoIterator<Item = (&'a str, u8)>,
    {
        let levels: Vec<(&str, u8)> = levels.into_iter().collect();
        for (name, _) in &levels {
            validate_name(name)?;
        }
        let fresh = levels
            .iter()
            .filter(|(name, _)| self.get(name).is_none())
            .count();
        if self.shared.switches.read().len() + fresh > MAX_SWITCHES {
            return Err(SwitchError::TooMany);
        }
        let switches = levels
            .iter()
            .map(|(name, level)| Ok((self.switch(name)?, *level)))
            .collect::<Result<Vec<_>, SwitchError>>()?;
        let mut changed = 0;
        {
            let _order = self.shared.flips.lock();
            for (switch, level) in switches {
                if self.flip_locked(&switch, level, flip.clone()) != level {
                    changed += 1;
                }
            }
        }
        self.deliver();
        Ok(changed)
    }

    fn flip_locked(&self, switch: &Switch, level: u8, flip: Flip) -> u8 {
        let from = switch.inner.level.swap(level, Ordering::Relaxed);
        if from == level {
            return from;
        }
        switch.inner.gauge.set(f64::from(level));
        // `why` is free text: a label would make a series per reason given. It is in the
        // event and in the history instead.
        metrics::counter!(
            names::DEGRADATION_FLIPS,
            names::LABEL_SWITCH => switch.inner.name.to_string(),
            names::LABEL_SOURCE => flip.source.as_str(),
            names::LABEL_WHO => label(&flip.who),
        )
        .increment(1);
        let event = FlipEvent {
            switch: switch.inner.name.clone(),
            from,
            to: level,
            flip,
            at: SystemTime::now(),
        };
        {
            let mut history = self.shared.history.lock();
            if history.len() == HISTORY_LEN {
                history.pop_front();
            }
            history.push_back(event.clone());
        }
        self.shared.pending.lock().push_back(event);
        from
    }

    /// Delivers queued events, unless a thread (this one, in a listener, or another) already
    /// is: then that thread delivers them, after the one it is delivering.
    fn deliver(&self) {
        let shared = &*self.shared;
        loop {
            if shared.delivering.swap(true, Ordering::Acquire) {
                return;
            }
            {
                // Cleared on the way out, also when a listener panics.
                let _delivering = Delivering(&shared.delivering);
                loop {
                    let Some(event) = shared.pending.lock().pop_front() else {
                        break;
                    };
                    let listeners = shared.listeners.read().clone();
                    for listener in &listeners {
                        // A listener that panics must not cost the others their event, nor
                        // the flipper its flip: the level has changed already.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            listener.on_event(&event);
                        }));
                    }
                }
            }
            // An event queued after the queue was found empty, but before the flag was
            // cleared, would otherwise wait for the next flip.
            if shared.pending.lock().is_empty() {
                return;
            }
        }
    }

    /// The levels the last applied config set (see `Degrader::apply`).
    #[cfg(feature = "serde")]
    pub(crate) fn shared_from_config(&self) -> &Mutex<std::collections::BTreeMap<String, u8>> {
        &self.shared.from_config
    }

    /// The last flips ([`HISTORY_LEN`] at most), oldest first: who flipped what, when, and why.
    #[must_use]
    pub fn history(&self) -> Vec<FlipEvent> {
        self.shared.history.lock().iter().cloned().collect()
    }

    /// Adds a listener for every flip from now on (the SLO crate and status pages use this).
    ///
    /// Listeners run outside the degrader's locks, one event at a time and in the order levels
    /// changed, on the thread that flipped, or on a thread already delivering an earlier
    /// event. A listener may flip switches: its flips' events follow the current one. A
    /// listener that panics loses its own event; the others still get it.
    pub fn listen(&self, listener: impl Listener<FlipEvent>) {
        self.shared.listeners.write().push(Arc::new(listener));
    }
}

struct Delivering<'a>(&'a AtomicBool);

impl Drop for Delivering<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A label value of bounded length, cut on a character boundary.
fn label(value: &str) -> String {
    cut(value, MAX_LABEL_LEN).to_owned()
}

/// `value` cut to at most `max` bytes, on a character boundary.
pub(crate) fn cut(value: &str, max: usize) -> &str {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

impl fmt::Debug for Degrader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.levels()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let degrader = Degrader::new();
        assert!(degrader.switch("read-only.v2").is_ok());
        for bad in ["", "with space", "é", &"x".repeat(65)] {
            assert!(matches!(
                degrader.switch(bad),
                Err(SwitchError::InvalidName(_))
            ));
        }
    }

    #[test]
    fn flips_are_ordered_events_and_repeats_are_silent() {
        let degrader = Degrader::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        degrader.listen(move |event: &FlipEvent| sink.lock().push((event.from, event.to)));
        let flip = Flip::new("test", "drill");
        assert_eq!(degrader.set("a", 2, flip.clone()).unwrap(), 0);
        assert_eq!(degrader.set("a", 2, flip.clone()).unwrap(), 2);
        assert_eq!(degrader.set("a", 0, flip).unwrap(), 2);
        assert_eq!(*seen.lock(), vec![(0, 2), (2, 0)]);
    }

    #[test]
    fn the_number_of_switches_is_bounded() {
        let degrader = Degrader::new();
        for i in 0..MAX_SWITCHES {
            degrader.switch(&format!("s{i}")).unwrap();
        }
        assert_eq!(
            degrader.switch("one-more").err(),
            Some(SwitchError::TooMany)
        );
        assert!(degrader.switch("s0").is_ok());
    }

    #[test]
    fn set_all_checks_every_name_first() {
        let degrader = Degrader::new();
        let flip = Flip::new("test", "reload");
        let result = degrader.set_all([("good", 1), ("bad name", 2)], &flip);
        assert!(result.is_err());
        assert!(degrader.get("good").is_none());
        assert_eq!(degrader.set_all([("good", 1)], &flip), Ok(1));
    }

    #[test]
    fn labels_are_cut_on_char_boundaries() {
        assert_eq!(label(&"é".repeat(40)).len(), 64);
        assert_eq!(label("short"), "short");
    }
}
