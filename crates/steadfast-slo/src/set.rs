//! The SLOs of a process, evaluated together: events, metrics and budget policies.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use metrics::Gauge;
use parking_lot::{Mutex, RwLock};
use steadfast_core::metrics as names;
use steadfast_core::Listener;

use crate::composite::{Composite, CompositeReport};
use crate::error::ConfigError;
use crate::event::SloEvent;
use crate::policy::{Bound, BudgetPolicy};
use crate::report::SloReport;
use crate::Slo;

/// The SLOs of a process, with their composites, budget policies and listeners.
///
/// [`evaluate`](SloSet::evaluate) reads every SLO, and turns each signal change into an event
/// (to the listeners), a metric and, through the policies, a degradation switch flip — all at
/// once, in the same call. [`spawn`](SloSet::spawn) evaluates on an interval in the background
/// (a second by default is plenty: the shortest window is minutes).
///
/// Cloning is cheap and shares everything.
///
/// ```
/// use std::time::Duration;
/// use steadfast_core::Clock;
/// use steadfast_fallback::Degrader;
/// use steadfast_slo::{BudgetPolicy, Slo, SloSet};
///
/// let (clock, time) = Clock::mock();
/// let degrader = Degrader::new();
/// let checkout = Slo::builder("checkout").clock(clock).build().unwrap();
/// let set = SloSet::builder()
///     .slo(checkout.clone())
///     .policy("checkout", BudgetPolicy::new(&degrader, "recommendations", 1))
///     .build()
///     .unwrap();
///
/// // An outage: every call fails.
/// for _ in 0..50 {
///     for _ in 0..100 {
///         checkout.bad();
///     }
///     time.advance(Duration::from_secs(1));
///     set.evaluate();
/// }
/// assert_eq!(degrader.get("recommendations").unwrap().level(), 1);
/// ```
#[derive(Clone)]
pub struct SloSet {
    inner: Arc<SetInner>,
}

struct SetInner {
    slos: Vec<Slo>,
    composites: Vec<Composite>,
    policies: Mutex<Vec<Bound>>,
    listeners: RwLock<Vec<Arc<dyn Listener<SloEvent>>>>,
    freeze: Gauge,
    /// Serialises evaluations, so events go out in the order changes were seen.
    evaluating: Mutex<()>,
}

impl SloSet {
    /// Starts a set.
    #[must_use]
    pub fn builder() -> SloSetBuilder {
        SloSetBuilder::default()
    }

    /// The SLOs, in the order they were added.
    #[must_use]
    pub fn slos(&self) -> &[Slo] {
        &self.inner.slos
    }

    /// The SLO named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Slo> {
        self.inner.slos.iter().find(|slo| slo.name() == name)
    }

    /// Adds a listener of signal changes. Listeners run inside the evaluation: they must not
    /// evaluate the set themselves (nor may listeners of a degrader the set's policies flip).
    /// A listener that panics is skipped, and the evaluation goes on.
    pub fn listen(&self, listener: impl Listener<SloEvent>) {
        self.inner.listeners.write().push(Arc::new(listener));
    }

    /// Reads every SLO without acting on what changed.
    #[must_use]
    pub fn reports(&self) -> Vec<SloReport> {
        self.inner.slos.iter().map(Slo::report).collect()
    }

    /// Reads every composite.
    #[must_use]
    pub fn composites(&self) -> Vec<CompositeReport> {
        let reports = self.reports();
        self.inner
            .composites
            .iter()
            .map(|c| c.blend(&reports))
            .collect()
    }

    /// Whether some SLO's budget is nearly spent: deploys should wait.
    #[must_use]
    pub fn freeze(&self) -> bool {
        self.reports().iter().any(|r| r.freeze)
    }

    /// Evaluates every SLO: signal changes become events to the listeners and metrics, budget
    /// policies flip their switches, and the exported counters and gauges are brought up to
    /// date. Returns the reports.
    #[allow(
        clippy::must_use_candidate,
        reason = "called for what it does; the reports are a convenience"
    )]
    pub fn evaluate(&self) -> Vec<SloReport> {
        let _order = self.inner.evaluating.lock();
        let mut reports = Vec::with_capacity(self.inner.slos.len());
        let mut events = Vec::new();
        for slo in &self.inner.slos {
            let (report, changes) = slo.evaluate();
            let at = slo.inner.time.wall();
            events.extend(changes.into_iter().map(|kind| SloEvent {
                slo: slo.inner.name.clone(),
                kind,
                budget_remaining: report.budget.remaining,
                at,
            }));
            reports.push(report);
        }
        // Events first, then the flips they cause, so listeners read them in that order.
        if !events.is_empty() {
            let listeners = self.inner.listeners.read().clone();
            for event in &events {
                for listener in &listeners {
                    // A listener that panics must not stop the loop: the evaluation task
                    // would die with it, and a raised switch would never return.
                    let _ = catch_unwind(AssertUnwindSafe(|| listener.on_event(event)));
                }
            }
        }
        {
            let mut policies = self.inner.policies.lock();
            for i in 0..policies.len() {
                let Some((slo, report)) = self
                    .inner
                    .slos
                    .iter()
                    .zip(&reports)
                    .find(|(slo, _)| slo.name() == policies[i].slo)
                else {
                    continue;
                };
                let switch = policies[i].policy.switch.clone();
                let others_hold = policies.iter().enumerate().any(|(j, other)| {
                    j != i && other.policy.switch == switch && other.held_from().is_some()
                });
                let step = catch_unwind(AssertUnwindSafe(|| {
                    policies[i].step(report, slo.inner.time.mono(), others_hold)
                }));
                if let Ok(Some(before)) = step {
                    for (j, other) in policies.iter_mut().enumerate() {
                        if j != i && other.policy.switch == switch {
                            other.inherit(before);
                        }
                    }
                }
            }
        }
        self.inner
            .freeze
            .set(f64::from(u8::from(reports.iter().any(|r| r.freeze))));
        reports
    }

    /// Evaluates every `every` on the current Tokio runtime until every clone of the set is
    /// dropped (or the task is aborted).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, as [`tokio::spawn`] does.
    #[allow(
        clippy::must_use_candidate,
        reason = "dropping the handle leaves the task running"
    )]
    pub fn spawn(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<SetInner> = Arc::downgrade(&self.inner);
        let every = every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                SloSet { inner }.evaluate();
            }
        })
    }

    /// The Prometheus recording and alert rules of every SLO, agreeing with the in-process
    /// signals; see [`rules`](crate::rules).
    ///
    /// # Errors
    ///
    /// None for SLOs that built, whose names and windows were checked then; the type is the
    /// rules' own check.
    pub fn prometheus_rules(
        &self,
    ) -> Result<crate::rules::PrometheusRules, crate::rules::RulesError> {
        let mut rules = crate::rules::PrometheusRules::new();
        for slo in &self.inner.slos {
            let mut spec = crate::rules::RuleSpec::new(slo.name(), slo.objective())
                .with_windows(slo.windows().to_vec());
            if let Some(service) = slo.service() {
                spec = spec.with_service(service);
            }
            rules.push(spec)?;
        }
        Ok(rules)
    }

    /// When the wall clock of the first SLO reads now (the clock the set evaluates on).
    #[must_use]
    pub fn now(&self) -> SystemTime {
        self.inner
            .slos
            .first()
            .map_or_else(SystemTime::now, |slo| slo.inner.time.wall())
    }
}

impl fmt::Debug for SloSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SloSet")
            .field("slos", &self.inner.slos)
            .field("composites", &self.inner.composites)
            .finish_non_exhaustive()
    }
}

/// Builds an [`SloSet`].
#[derive(Default)]
pub struct SloSetBuilder {
    slos: Vec<Slo>,
    composites: Vec<Composite>,
    policies: Vec<(String, BudgetPolicy)>,
    listeners: Vec<Arc<dyn Listener<SloEvent>>>,
}

impl SloSetBuilder {
    /// Adds an SLO.
    #[must_use]
    pub fn slo(mut self, slo: Slo) -> Self {
        self.slos.push(slo);
        self
    }

    /// Adds a composite of SLOs of the set.
    #[must_use]
    pub fn composite(mut self, composite: Composite) -> Self {
        self.composites.push(composite);
        self
    }

    /// Binds a budget policy to the SLO named `slo`.
    #[must_use]
    pub fn policy(mut self, slo: impl Into<String>, policy: BudgetPolicy) -> Self {
        self.policies.push((slo.into(), policy));
        self
    }

    /// Adds a listener of signal changes.
    #[must_use]
    pub fn listener(mut self, listener: impl Listener<SloEvent>) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Checks the set and builds it.
    ///
    /// # Errors
    ///
    /// Two SLOs with one name; a policy or composite naming an SLO not in the set; a policy's
    /// switch name refused by its degrader; composite weights that are not positive.
    pub fn build(self) -> Result<SloSet, ConfigError> {
        for (i, slo) in self.slos.iter().enumerate() {
            if self.slos[..i]
                .iter()
                .any(|other| other.name() == slo.name())
            {
                return Err(ConfigError::Duplicate(slo.name().to_owned()));
            }
        }
        let known = |name: &str| self.slos.iter().any(|slo| slo.name() == name);
        for composite in &self.composites {
            composite.check(known)?;
        }
        for (slo, policy) in &self.policies {
            let Some(bound) = self.slos.iter().find(|s| s.name() == slo) else {
                return Err(ConfigError::UnknownSlo(slo.clone()));
            };
            if policy.level() == 0 {
                return Err(ConfigError::Switch(format!(
                    "the policy on {:?} sets level 0, so it would never act",
                    policy.switch()
                )));
            }
            if let crate::Trigger::Signal(signal) = policy.trigger() {
                if !bound.windows().iter().any(|w| w.name == *signal) {
                    return Err(ConfigError::Switch(format!(
                        "SLO {slo:?} has no signal {signal:?}"
                    )));
                }
            }
            steadfast_fallback::validate_name(policy.switch())
                .map_err(|e| ConfigError::Switch(e.to_string()))?;
        }
        Ok(SloSet {
            inner: Arc::new(SetInner {
                slos: self.slos,
                composites: self.composites,
                policies: Mutex::new(
                    self.policies
                        .into_iter()
                        .map(|(slo, policy)| Bound::new(slo, policy))
                        .collect(),
                ),
                listeners: RwLock::new(self.listeners),
                freeze: metrics::gauge!(names::SLO_FREEZE),
                evaluating: Mutex::new(()),
            }),
        })
    }
}

impl fmt::Debug for SloSetBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SloSetBuilder")
            .field("slos", &self.slos)
            .field("policies", &self.policies.len())
            .finish_non_exhaustive()
    }
}
