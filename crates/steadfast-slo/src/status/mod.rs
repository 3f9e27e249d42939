//! The status board: the page a person on call opens first.
//!
//! A [`StatusBoard`] gathers what the process knows about its own health (breakers, keyed
//! breaker registries, degradation switches, SLO reports and, with the `cache` feature,
//! cache hit rates) and reads it all at once into a [`Status`]: services ranked by
//! [health](health_score), worst first, then the breakers, switches, SLOs and caches behind
//! that ranking. With the `axum` feature, `router` serves it as an HTML page, as JSON and as a
//! freeze flag for deploy pipelines. The repository's `docs/status-page.png` shows the page.
//!
//! ```
//! use steadfast_breaker::{CircuitBreaker, State};
//! use steadfast_fallback::{Degrader, Flip};
//! use steadfast_slo::status::StatusBoard;
//!
//! let payments = CircuitBreaker::builder("payments").build().unwrap();
//! let search = CircuitBreaker::builder("search").build().unwrap();
//! let degrader = Degrader::new();
//!
//! let board = StatusBoard::new();
//! board.breaker("checkout", &payments);
//! board.breaker("catalog", &search);
//! board.degrader(&degrader);
//!
//! // Registered once, read live: later changes show in the next snapshot.
//! payments.force_open();
//! degrader
//!     .set("recommendations", 1, Flip::new("alice", "payments are down"))
//!     .unwrap();
//!
//! let status = board.snapshot();
//! assert_eq!(status.services[0].name, "checkout"); // hurting most, so first
//! assert_eq!(status.services[0].health.score, 70.0);
//! assert_eq!(status.services[1].health.score, 100.0);
//! assert_eq!(status.breakers[0].state, State::ForcedOpen);
//! assert_eq!((&*status.switches[0].name, status.switches[0].level), ("recommendations", 1));
//! assert_eq!(status.flips[0].who, "alice");
//! assert!(!status.freeze);
//! ```
//!
//! # Where it sits
//!
//! The board is not a layer and takes no part in any call: it reads the shared state that the
//! layers keep (a breaker's counters, a degrader's switches, an SLO's windows), so it can be
//! registered before or after the layers are built, in any order. Every handle it holds is a
//! clone of one the layers share.
//!
//! The router has no authorisation of its own: the page names every dependency and its state,
//! which is not for everyone. Nest it behind the check the rest of your admin surface uses;
//! `router` shows how.
//!
//! # Bounds
//!
//! A keyed registry shows its worst [`MAX_REGISTRY_ROWS`] keys (open and half-open first), with
//! its totals in [`Status::registries`]; keys are cut to [`MAX_KEY_LEN`] bytes, since callers
//! choose them. The page shows the last [`FLIPS_SHOWN`] flips.

mod health;
mod html;
#[cfg(feature = "axum")]
mod router;
mod snapshot;

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::RwLock;
use steadfast_breaker::{BreakerRegistry, CircuitBreaker, State};
use steadfast_fallback::Degrader;

pub use health::{breaker_worth, health_score, Health};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use router::router;
pub(crate) use snapshot::rfc3339;
pub use snapshot::{
    BreakerStatus, CacheStatus, Firing, FlipStatus, RegistryStatus, ServiceStatus, Status,
    SwitchStatus,
};

use crate::report::SloReport;

/// The most rows a keyed registry adds to [`Status::breakers`].
pub const MAX_REGISTRY_ROWS: usize = 20;
/// Registry keys longer than this many bytes are cut (on a character boundary) in rows.
pub const MAX_KEY_LEN: usize = 128;
/// How many flips [`Status::flips`] keeps, newest first.
pub const FLIPS_SHOWN: usize = 10;

type BreakerSource = Arc<dyn Fn() -> BreakerReading + Send + Sync>;
type SloSource = Arc<dyn Fn() -> Vec<SloReport> + Send + Sync>;
#[cfg_attr(not(feature = "cache"), allow(dead_code))]
type CacheSource = Arc<dyn Fn() -> CacheStatus + Send + Sync>;

/// What the status page shows, gathered from registered breakers, registries, degraders, SLO
/// sources and caches.
///
/// Cheap to clone: clones share the registrations, so a board handed to the `router` still sees
/// what is registered afterwards. Registration takes `&self`.
#[derive(Clone, Default)]
pub struct StatusBoard {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    breakers: RwLock<Vec<BreakerSource>>,
    degraders: RwLock<Vec<Degrader>>,
    slos: RwLock<Vec<SloSource>>,
    caches: RwLock<Vec<CacheSource>>,
}

/// One registered breaker or registry, read.
struct BreakerReading {
    service: String,
    /// What it adds to its service's health; `None` for a registry with no live key.
    worth: Option<f64>,
    /// Breakers refusing calls (open or forced open).
    open: usize,
    rows: Vec<BreakerStatus>,
    registry: Option<RegistryStatus>,
}

impl StatusBoard {
    /// A board with nothing registered.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Shows `breaker` as one of `service`'s dependencies.
    pub fn breaker(&self, service: &str, breaker: &CircuitBreaker) {
        let service = service.to_owned();
        let breaker = breaker.clone();
        self.shared.breakers.write().push(Arc::new(move || {
            let row = BreakerStatus::new(&service, None, breaker.snapshot());
            BreakerReading {
                worth: Some(breaker_worth(row.state)),
                open: usize::from(row.state.refuses_calls()),
                service: service.clone(),
                rows: vec![row],
                registry: None,
            }
        }));
    }

    /// Shows a keyed registry as one of `service`'s dependencies: its worst
    /// [`MAX_REGISTRY_ROWS`] keys as breaker rows (open and forced open first, then half-open,
    /// then by failure rate), and its totals as a [`RegistryStatus`]. For the health score the
    /// registry counts as one breaker, worth the mean over its live keys.
    pub fn registry<K>(&self, service: &str, registry: &BreakerRegistry<K>)
    where
        K: Hash + Eq + Clone + Send + Sync + fmt::Display + 'static,
    {
        let service = service.to_owned();
        let registry = registry.clone();
        self.shared.breakers.write().push(Arc::new(move || {
            let mut snapshots = registry.snapshots();
            let keys = snapshots.len();
            let count = |f: fn(State) -> bool| snapshots.iter().filter(|(_, s)| f(s.state)).count();
            let open = count(State::refuses_calls);
            let half_open = count(|state| state == State::HalfOpen);
            let worth = (keys != 0).then(|| {
                let sum: f64 = snapshots.iter().map(|(_, s)| breaker_worth(s.state)).sum();
                sum / keys as f64
            });
            snapshots.sort_by(|(_, a), (_, b)| {
                severity(a.state)
                    .cmp(&severity(b.state))
                    .then(b.failure_rate.total_cmp(&a.failure_rate))
                    .then(b.calls.cmp(&a.calls))
            });
            snapshots.truncate(MAX_REGISTRY_ROWS);
            let name = snapshots.first().map(|(_, snapshot)| snapshot.name.clone());
            let rows: Vec<BreakerStatus> = snapshots
                .into_iter()
                .map(|(key, snapshot)| {
                    BreakerStatus::new(&service, Some(cut_key(&key.to_string())), snapshot)
                })
                .collect();
            BreakerReading {
                worth,
                open,
                registry: Some(RegistryStatus {
                    name,
                    service: service.clone(),
                    keys,
                    open,
                    half_open,
                    shown: rows.len(),
                }),
                service: service.clone(),
                rows,
            }
        }));
    }

    /// Shows every switch of `degrader` (a `Degrader` or a reference to one) and its last
    /// flips.
    pub fn degrader(&self, degrader: impl Borrow<Degrader>) {
        self.shared
            .degraders
            .write()
            .push(degrader.borrow().clone());
    }

    /// Shows the SLOs of `set` (read when the board is read; the set's own evaluation loop
    /// fires the signals).
    pub fn slos(&self, set: &crate::SloSet) {
        let set = set.clone();
        self.slo_reports(move || set.reports());
    }

    /// Adds a source of SLO reports, called at every snapshot. Reports with a
    /// [`service`](SloReport::service) count towards that service's health.
    pub fn slo_reports(&self, source: impl Fn() -> Vec<SloReport> + Send + Sync + 'static) {
        self.shared.slos.write().push(Arc::new(source));
    }

    /// Shows a cache's hit rate and lookups as one of `service`'s parts. Caches do not count
    /// towards the health score: a cold cache is slow, not broken.
    #[cfg(feature = "cache")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
    pub fn cache<K, V>(&self, service: &str, cache: &steadfast_cache::TieredCache<K, V>)
    where
        K: steadfast_cache::CacheKey,
        V: Clone + Send + Sync + 'static,
    {
        let service = service.to_owned();
        let cache = cache.clone();
        self.shared.caches.write().push(Arc::new(move || {
            let stats = cache.stats();
            CacheStatus {
                name: cache.name().to_owned(),
                service: service.clone(),
                hit_rate: stats.hit_rate(),
                lookups: stats.lookups(),
                fresh: stats.fresh,
                l2: stats.l2,
                stale: stats.stale,
                misses: stats.misses,
            }
        }));
    }

    /// Every SLO report of every source, in registration order: what `GET /freeze` reads
    /// without taking a whole snapshot.
    #[must_use]
    pub fn reports(&self) -> Vec<SloReport> {
        let sources = self.shared.slos.read().clone();
        sources.iter().flat_map(|source| source()).collect()
    }

    /// Reads everything registered, now.
    ///
    /// Sources are called outside the board's locks, so a source may register more (it shows
    /// from the next snapshot on).
    #[must_use]
    pub fn snapshot(&self) -> Status {
        let generated_at = SystemTime::now();
        let breaker_sources = self.shared.breakers.read().clone();
        let degraders = self.shared.degraders.read().clone();
        let cache_sources = self.shared.caches.read().clone();

        let readings: Vec<BreakerReading> = breaker_sources.iter().map(|source| source()).collect();
        let mut slos = self.reports();
        let caches: Vec<CacheStatus> = cache_sources.iter().map(|source| source()).collect();

        let services = rank_services(&readings, &slos, &caches);
        for service in &services {
            metrics::gauge!(
                steadfast_core::metrics::SLO_HEALTH_SCORE,
                steadfast_core::metrics::LABEL_SERVICE => service.name.clone(),
            )
            .set(service.health.score);
        }

        let mut breakers = Vec::new();
        let mut registries = Vec::new();
        for reading in readings {
            breakers.extend(reading.rows);
            registries.extend(reading.registry);
        }
        // Stable: equally bad rows keep the order they were registered in.
        breakers.sort_by_key(|row| severity(row.state));

        let mut switches = Vec::new();
        let mut flips = Vec::new();
        for degrader in &degraders {
            switches.extend(
                degrader
                    .levels()
                    .into_iter()
                    .map(|(name, level)| SwitchStatus {
                        name: name.to_string(),
                        level,
                    }),
            );
            flips.extend(degrader.history().into_iter().map(|event| FlipStatus {
                switch: event.switch.to_string(),
                from: event.from,
                to: event.to,
                who: event.flip.who().to_owned(),
                why: event.flip.why().to_owned(),
                source: event.flip.source().as_str(),
                at: event.at,
            }));
        }
        switches.sort_by_key(|switch| std::cmp::Reverse(switch.level));
        flips.sort_by_key(|flip| std::cmp::Reverse(flip.at));
        flips.truncate(FLIPS_SHOWN);

        slos.sort_by(|a, b| {
            let (a, b) = (Health::of([a], []).score, Health::of([b], []).score);
            a.total_cmp(&b)
        });

        Status {
            generated_at,
            freeze: slos.iter().any(|report| report.freeze),
            services,
            breakers,
            registries,
            switches,
            flips,
            slos,
            caches,
        }
    }
}

/// The services named by any registration, each with its health, worst first.
fn rank_services(
    readings: &[BreakerReading],
    slos: &[SloReport],
    caches: &[CacheStatus],
) -> Vec<ServiceStatus> {
    #[derive(Default)]
    struct Parts<'a> {
        slos: Vec<&'a SloReport>,
        worths: Vec<f64>,
        breakers: usize,
        open: usize,
    }
    let mut by_service: BTreeMap<&str, Parts<'_>> = BTreeMap::new();
    for reading in readings {
        let parts = by_service.entry(&reading.service).or_default();
        parts.worths.extend(reading.worth);
        parts.breakers += reading
            .registry
            .as_ref()
            .map_or(1, |registry| registry.keys);
        parts.open += reading.open;
    }
    for report in slos {
        if let Some(service) = &report.service {
            by_service.entry(service).or_default().slos.push(report);
        }
    }
    for cache in caches {
        by_service.entry(&cache.service).or_default();
    }
    let mut services: Vec<ServiceStatus> = by_service
        .into_iter()
        .map(|(name, parts)| ServiceStatus {
            name: name.to_owned(),
            health: Health::of(parts.slos.iter().copied(), parts.worths),
            slos: parts.slos.len(),
            breakers: parts.breakers,
            breakers_open: parts.open,
            firing: parts
                .slos
                .iter()
                .flat_map(|report| {
                    report
                        .signals
                        .iter()
                        .filter(|signal| signal.firing)
                        .map(|signal| Firing {
                            slo: report.name.clone(),
                            signal: signal.name.clone(),
                            severity: signal.severity,
                        })
                })
                .collect(),
        })
        .collect();
    // Stable over names in order, so equal scores read alphabetically.
    services.sort_by(|a, b| a.health.score.total_cmp(&b.health.score));
    services
}

/// Sort rank of a breaker state on the page: refusing first, then probing, then the rest.
const fn severity(state: State) -> u8 {
    match state {
        State::Open | State::ForcedOpen => 0,
        State::HalfOpen => 1,
        _ => 2,
    }
}

/// `key` cut to [`MAX_KEY_LEN`] bytes on a character boundary, marked with `…` when cut.
fn cut_key(key: &str) -> String {
    if key.len() <= MAX_KEY_LEN {
        return key.to_owned();
    }
    let mut end = MAX_KEY_LEN;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &key[..end])
}

impl fmt::Debug for StatusBoard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &*self.shared;
        f.debug_struct("StatusBoard")
            .field("breakers", &shared.breakers.read().len())
            .field("degraders", &shared.degraders.read().len())
            .field("slo_sources", &shared.slos.read().len())
            .field("caches", &shared.caches.read().len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
