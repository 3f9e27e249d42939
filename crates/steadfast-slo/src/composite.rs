//! Composite SLOs: a weighted blend of SLIs.

use crate::report::SloReport;

/// A weighted blend of SLOs, read as one: its objective is `Σ wᵢ · objectiveᵢ` and its
/// attainment `Σ wᵢ · attainedᵢ` (weights normalised to sum to one), so a checkout flow made of
/// "cart" (weight 1) and "payment" (weight 3) is held mostly to payment's.
///
/// ```
/// use steadfast_slo::Composite;
///
/// let flow = Composite::new("checkout_flow").part("cart", 1.0).part("payment", 3.0);
/// assert_eq!(flow.parts().len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Composite {
    name: String,
    #[cfg_attr(feature = "serde", serde(default))]
    service: Option<String>,
    parts: Vec<(String, f64)>,
}

impl Composite {
    /// A composite named `name`, with no parts yet.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            service: None,
            parts: Vec::new(),
        }
    }

    /// Adds the SLO named `slo` with `weight`.
    #[must_use]
    pub fn part(mut self, slo: impl Into<String>, weight: f64) -> Self {
        self.parts.push((slo.into(), weight));
        self
    }

    /// The service it belongs to.
    #[must_use]
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SLOs blended, with their weights.
    #[must_use]
    pub fn parts(&self) -> &[(String, f64)] {
        &self.parts
    }

    pub(crate) fn check(&self, known: impl Fn(&str) -> bool) -> Result<(), crate::ConfigError> {
        crate::error::check_name(&self.name)?;
        if self.parts.is_empty() {
            return Err(crate::ConfigError::Weight);
        }
        for (slo, weight) in &self.parts {
            if !known(slo) {
                return Err(crate::ConfigError::UnknownSlo(slo.clone()));
            }
            if !(weight.is_finite() && *weight > 0.0) {
                return Err(crate::ConfigError::Weight);
            }
        }
        Ok(())
    }

    /// Blends the parts' reports.
    pub(crate) fn blend(&self, reports: &[SloReport]) -> CompositeReport {
        let total_weight: f64 = self.parts.iter().map(|(_, w)| w).sum();
        let mut all_objective = 0.0;
        let mut objective = 0.0;
        let mut attained = 0.0;
        let mut measured = 0.0;
        for (name, weight) in &self.parts {
            let Some(report) = reports.iter().find(|r| r.name == *name) else {
                continue;
            };
            let w = weight / total_weight;
            all_objective += w * report.objective;
            if let Some(value) = report.attained {
                objective += w * report.objective;
                attained += w * value;
                measured += w;
            }
        }
        // Parts without events yet do not drag the blend either way: the blend is taken over
        // the parts with events, objective and attainment alike.
        let (objective, attained) = if measured > 0.0 {
            (objective / measured, Some(attained / measured))
        } else {
            (all_objective, None)
        };
        let budget_remaining = attained.map_or(1.0, |a| 1.0 - (1.0 - a) / (1.0 - objective));
        CompositeReport {
            name: self.name.clone(),
            service: self.service.clone(),
            objective,
            attained,
            budget_remaining,
        }
    }
}

/// What a [`Composite`] reads as now.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CompositeReport {
    /// The composite's name.
    pub name: String,
    /// Its service.
    pub service: Option<String>,
    /// `Σ wᵢ · objectiveᵢ`, over the parts with events (over all before any has).
    pub objective: f64,
    /// `Σ wᵢ · attainedᵢ` over the parts with events (weights renormalised over them).
    pub attained: Option<f64>,
    /// `1 - (1 - attained) / (1 - objective)`; 1 with no events.
    pub budget_remaining: f64,
}
