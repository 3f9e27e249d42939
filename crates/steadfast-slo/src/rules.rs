//! Prometheus recording and alert rules generated from SLO definitions, so the alerts a
//! Prometheus server sends agree with the burn-rate signals the process computes itself.
//!
//! ```
//! use steadfast_slo::rules::{PrometheusRules, RuleSpec};
//!
//! // 99.9 % of checkout calls succeed; the workbook's four burn-rate signals.
//! let rules = PrometheusRules::new().slo(RuleSpec::new("checkout", 0.999).with_service("shop"))?;
//! let yaml = rules.to_yaml();
//! assert!(yaml.contains(r#"record: "steadfast_slo:error_ratio:rate5m""#));
//! println!("{yaml}"); // write it to a file that Prometheus' `rule_files` names
//! # Ok::<(), steadfast_slo::rules::RulesError>(())
//! ```
//!
//! # What is generated
//!
//! One rule group per SLO, `steadfast-slo-<name>`, holding, in this order (rules of a group run
//! in order, so the alerts read what the recording rules wrote in the same evaluation):
//!
//! - `steadfast_slo:error_ratio:rate<W>` for every window `W` that a signal uses, long or
//!   short: errors over events in the last `W`, summed over every instance of the service;
//! - `steadfast_slo:objective:ratio`: the objective, for dashboards;
//! - one `SteadfastErrorBudgetBurn` alert per signal, labelled `slo`, `signal` and `severity`
//!   (and `service` when set), with a `summary` and a `description`.
//!
//! The page signal of a 99.9 % SLO, for example:
//!
//! ```yaml
//! - alert: "SteadfastErrorBudgetBurn"
//!   expr: "steadfast_slo:error_ratio:rate1h{slo=\"checkout\"} > (14.4 * 0.001) and steadfast_slo:error_ratio:rate5m{slo=\"checkout\"} > (14.4 * 0.001)"
//!   labels:
//!     slo: "checkout"
//!     signal: "page_1h"
//!     severity: "page"
//! ```
//!
//! # How the rules agree with the in-process signals
//!
//! In process, a signal fires while, over both its windows, `(bad / total) / (1 - objective)`
//! is above its factor. The rules compute the same thing from the same counters:
//!
//! - `bad / total` over a window is `steadfast_slo_errors_total` over
//!   `steadfast_slo_events_total`, both labelled `slo`. The ratio of their `rate`s is the ratio
//!   of their increases (the per-second division cancels), and `rate` sees through counter
//!   resets when an instance restarts. Maintenance is excluded from both counters, so from
//!   both sides.
//! - Dividing by `1 - objective`, which is positive, is the same as comparing the error ratio
//!   with `factor * (1 - objective)`; the rules write that product out, `(14.4 * 0.001)`, so a
//!   reader sees both numbers. `1 - objective` is worked out in decimals, so it is written
//!   as a person would (0.001, not the float subtraction's 0.0010000000000000009); the two
//!   thresholds differ by less than one part in a trillion.
//! - Both windows must be over the threshold: `and`.
//! - With no events in a window the ratio is `0 / 0`, NaN in PromQL, and no comparison with
//!   NaN holds, so nothing fires, as in process where no events means a burn rate of 0.
//!
//! They differ only in when they see events: Prometheus sees a counter at each scrape and
//! evaluates rules at its own interval, so it fires up to a scrape and an evaluation interval
//! later, and `rate` extrapolates at the edges of a window where the process counts exact
//! buckets. A series that appears only with its first error loses that first increase to
//! `rate`, which is why the counters are registered at zero before the first event.
//!
//! The alerts have no `for:` clause. The two windows already debounce: the long one fires
//! only once a real share of the budget is gone, and the short one only while the burn goes
//! on. A `for:` would delay every page by its length and leave Prometheus behind the
//! in-process signal, which fires at once.
//!
//! Rule names are global in Prometheus: SLO names must be unique among everything one
//! Prometheus server scrapes, since the recording rules sum every series with that `slo`
//! label.

use std::collections::{BTreeSet, HashSet};
use std::error::Error;
use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::burn::{window_label, BurnWindow};

/// The counter of every event the SLI counts, labelled `slo`.
const EVENTS: &str = "steadfast_slo_events_total";
/// The counter of the bad ones, labelled `slo`.
const ERRORS: &str = "steadfast_slo_errors_total";
/// The name of every alert; `slo`, `signal` and `severity` tell them apart.
const ALERT: &str = "SteadfastErrorBudgetBurn";
const MAX_SLO_NAME: usize = 64;
const MAX_SIGNAL_NAME: usize = 32;

/// One SLO as the rules need it: its name, objective and burn-rate signals.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    /// The SLO's name, the value of the `slo` label on its counters: `[a-zA-Z0-9_:-]`, 1 to 64
    /// bytes.
    pub slo: String,
    /// The objective, a fraction strictly between 0 and 1 (0.999 for 99.9 %).
    pub objective: f64,
    /// The burn-rate signals, one alert each; [`BurnWindow::defaults`] from [`RuleSpec::new`].
    /// Names are `[a-z0-9_]`, 1 to 32 bytes, distinct; factors finite and above 0; windows
    /// whole seconds, the short one shorter than the long one.
    pub windows: Vec<BurnWindow>,
    /// A `service` label added to every rule of this SLO, for routing alerts; any non-empty
    /// text.
    pub service: Option<String>,
}

impl RuleSpec {
    /// The SLO `slo` with `objective` and the default signals, without a service label.
    #[must_use]
    pub fn new(slo: impl Into<String>, objective: f64) -> Self {
        Self {
            slo: slo.into(),
            objective,
            windows: BurnWindow::defaults(),
            service: None,
        }
    }

    /// The same with these signals instead.
    #[must_use]
    pub fn with_windows(mut self, windows: Vec<BurnWindow>) -> Self {
        self.windows = windows;
        self
    }

    /// The same with a `service` label on every rule.
    #[must_use]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    fn validate(&self) -> Result<(), RulesError> {
        let slo = || self.slo.clone();
        let name_ok = |s: &str, max: usize, ok: fn(u8) -> bool| {
            !s.is_empty() && s.len() <= max && s.bytes().all(ok)
        };
        if !name_ok(&self.slo, MAX_SLO_NAME, |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-')
        }) {
            return Err(RulesError::InvalidSloName { slo: slo() });
        }
        // Written this way so that NaN fails too.
        if !(self.objective > 0.0 && self.objective < 1.0) {
            return Err(RulesError::InvalidObjective {
                slo: slo(),
                objective: self.objective,
            });
        }
        if self.service.as_deref() == Some("") {
            return Err(RulesError::EmptyService { slo: slo() });
        }
        if self.windows.is_empty() {
            return Err(RulesError::NoWindows { slo: slo() });
        }
        let mut seen = HashSet::new();
        for w in &self.windows {
            let signal = || w.name.clone();
            if !name_ok(&w.name, MAX_SIGNAL_NAME, |b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
            }) {
                return Err(RulesError::InvalidSignalName {
                    slo: slo(),
                    signal: signal(),
                });
            }
            if !seen.insert(w.name.as_str()) {
                return Err(RulesError::DuplicateSignal {
                    slo: slo(),
                    signal: signal(),
                });
            }
            if !(w.factor > 0.0 && w.factor.is_finite()) {
                return Err(RulesError::InvalidFactor {
                    slo: slo(),
                    signal: signal(),
                    factor: w.factor,
                });
            }
            // PromQL durations are written in whole seconds here (`window_label`), so a
            // fraction would be silently cut off.
            let whole = |d: Duration| d.as_secs() > 0 && d.subsec_nanos() == 0;
            if !(whole(w.long) && whole(w.short) && w.short < w.long) {
                return Err(RulesError::InvalidWindows {
                    slo: slo(),
                    signal: signal(),
                    long: w.long,
                    short: w.short,
                });
            }
        }
        Ok(())
    }
}

/// Why a [`RuleSpec`] was refused.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RulesError {
    /// The SLO name is empty, longer than 64 bytes or has a byte outside `[a-zA-Z0-9_:-]`.
    InvalidSloName {
        /// The name given.
        slo: String,
    },
    /// Another SLO of the same rules has this name.
    DuplicateSlo {
        /// The name given twice.
        slo: String,
    },
    /// The objective is not strictly between 0 and 1.
    InvalidObjective {
        /// The SLO.
        slo: String,
        /// The objective given.
        objective: f64,
    },
    /// The service label is empty, which Prometheus reads as no label.
    EmptyService {
        /// The SLO.
        slo: String,
    },
    /// The SLO has no burn-rate signal, so nothing would ever alert.
    NoWindows {
        /// The SLO.
        slo: String,
    },
    /// A signal name is empty, longer than 32 bytes or has a byte outside `[a-z0-9_]`.
    InvalidSignalName {
        /// The SLO.
        slo: String,
        /// The name given.
        signal: String,
    },
    /// Two signals of one SLO have the same name.
    DuplicateSignal {
        /// The SLO.
        slo: String,
        /// The name given twice.
        signal: String,
    },
    /// A factor is not a finite number above 0.
    InvalidFactor {
        /// The SLO.
        slo: String,
        /// The signal.
        signal: String,
        /// The factor given.
        factor: f64,
    },
    /// A window is zero or not whole seconds, or the short window is not shorter than the long.
    InvalidWindows {
        /// The SLO.
        slo: String,
        /// The signal.
        signal: String,
        /// The long window given.
        long: Duration,
        /// The short window given.
        short: Duration,
    },
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSloName { slo } => write!(
                f,
                "SLO name {slo:?} must be 1 to {MAX_SLO_NAME} bytes of [a-zA-Z0-9_:-]"
            ),
            Self::DuplicateSlo { slo } => write!(f, "SLO {slo:?} is given twice"),
            Self::InvalidObjective { slo, objective } => write!(
                f,
                "SLO {slo:?}: objective {objective} must be strictly between 0 and 1"
            ),
            Self::EmptyService { slo } => write!(f, "SLO {slo:?}: the service label is empty"),
            Self::NoWindows { slo } => write!(f, "SLO {slo:?} has no burn-rate signal"),
            Self::InvalidSignalName { slo, signal } => write!(
                f,
                "SLO {slo:?}: signal name {signal:?} must be 1 to {MAX_SIGNAL_NAME} bytes of [a-z0-9_]"
            ),
            Self::DuplicateSignal { slo, signal } => {
                write!(f, "SLO {slo:?}: signal {signal:?} is given twice")
            }
            Self::InvalidFactor {
                slo,
                signal,
                factor,
            } => write!(
                f,
                "SLO {slo:?}, signal {signal:?}: factor {factor} must be finite and above 0"
            ),
            Self::InvalidWindows {
                slo,
                signal,
                long,
                short,
            } => write!(
                f,
                "SLO {slo:?}, signal {signal:?}: windows {long:?} and {short:?} must be whole \
                 seconds above 0, the short one shorter than the long one"
            ),
        }
    }
}

impl Error for RulesError {}

/// A Prometheus rule file for a set of SLOs: add each with [`push`](Self::push) or
/// [`slo`](Self::slo), which validate it, then write [`to_yaml`](Self::to_yaml) out.
#[derive(Clone, Debug, Default)]
pub struct PrometheusRules {
    specs: Vec<RuleSpec>,
}

impl PrometheusRules {
    /// No SLOs yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an SLO, or says why it cannot be written as rules (the rules stay as they were).
    ///
    /// # Errors
    ///
    /// The [`RulesError`] for the first thing wrong with `spec` (see [`RuleSpec`]'s fields),
    /// or [`RulesError::DuplicateSlo`] if an SLO of that name is already here.
    pub fn push(&mut self, spec: RuleSpec) -> Result<&mut Self, RulesError> {
        spec.validate()?;
        if self.specs.iter().any(|s| s.slo == spec.slo) {
            return Err(RulesError::DuplicateSlo { slo: spec.slo });
        }
        self.specs.push(spec);
        Ok(self)
    }

    /// [`push`](Self::push), by value, for chains: `PrometheusRules::new().slo(a)?.slo(b)?`.
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub fn slo(mut self, spec: RuleSpec) -> Result<Self, RulesError> {
        self.push(spec)?;
        Ok(self)
    }

    /// The SLOs added so far, in order.
    #[must_use]
    pub fn specs(&self) -> &[RuleSpec] {
        &self.specs
    }

    /// The rule file, as YAML: one group per SLO, in the order they were added.
    #[must_use]
    pub fn to_yaml(&self) -> String {
        let mut out = String::from(
            "# Prometheus rules generated by steadfast-slo from SLO definitions: regenerate, \
             do not edit.\n",
        );
        if self.specs.is_empty() {
            out.push_str("groups: []\n");
            return out;
        }
        out.push_str("groups:\n");
        for spec in &self.specs {
            write_group(&mut out, spec);
        }
        out
    }
}

fn write_group(out: &mut String, spec: &RuleSpec) {
    let slo = spec.slo.as_str();
    // Validated names need no escaping inside PromQL strings.
    let selector = format!("{{slo=\"{slo}\"}}");
    let mut labels = vec![("slo", slo)];
    if let Some(service) = &spec.service {
        labels.push(("service", service));
    }
    let budget = budget(spec.objective);

    let _ = writeln!(out, "  - name: {}", quote(&format!("steadfast-slo-{slo}")));
    out.push_str("    rules:\n");
    let windows: BTreeSet<Duration> = spec
        .windows
        .iter()
        .flat_map(|w| [w.long, w.short])
        .collect();
    for window in windows {
        let w = window_label(window);
        let expr =
            format!("sum(rate({ERRORS}{selector}[{w}])) / sum(rate({EVENTS}{selector}[{w}]))");
        write_rule(
            out,
            "record",
            &format!("steadfast_slo:error_ratio:rate{w}"),
            &expr,
        );
        write_map(out, "labels", &labels);
    }
    write_rule(
        out,
        "record",
        "steadfast_slo:objective:ratio",
        &fmt_num(spec.objective),
    );
    write_map(out, "labels", &labels);

    for w in &spec.windows {
        let (long, short) = (window_label(w.long), window_label(w.short));
        let threshold = format!("({} * {budget})", fmt_num(w.factor));
        let expr = format!(
            "steadfast_slo:error_ratio:rate{long}{selector} > {threshold} and \
             steadfast_slo:error_ratio:rate{short}{selector} > {threshold}"
        );
        write_rule(out, "alert", ALERT, &expr);
        // The service comes with the series too; written out so a reader sees what routes.
        let mut alert_labels = labels.clone();
        alert_labels.push(("signal", &w.name));
        alert_labels.push(("severity", w.severity.as_str()));
        write_map(out, "labels", &alert_labels);
        // Everything here but the template is validated names and numbers, so no `{{` can
        // reach Prometheus' template engine from the spec.
        let summary = format!(
            "SLO {slo} is burning its error budget over {} times too fast ({})",
            fmt_num(w.factor),
            w.name
        );
        let description = format!(
            "SLO {slo} (objective {}%) is spending its error budget at more than {} times the \
             sustainable rate over both the last {long} and the last {short}: the error ratio \
             over {long} is {{{{ $value | humanizePercentage }}}}, above {}%.",
            fmt_num(spec.objective * 100.0),
            fmt_num(w.factor),
            fmt_num(w.factor * (1.0 - spec.objective) * 100.0),
        );
        write_map(
            out,
            "annotations",
            &[("summary", &summary), ("description", &description)],
        );
    }
}

fn write_rule(out: &mut String, kind: &str, name: &str, expr: &str) {
    let _ = writeln!(out, "      - {kind}: {}", quote(name));
    let _ = writeln!(out, "        expr: {}", quote(expr));
}

fn write_map(out: &mut String, key: &str, entries: &[(&str, &str)]) {
    let _ = writeln!(out, "        {key}:");
    for (k, v) in entries {
        let _ = writeln!(out, "          {k}: {}", quote(v));
    }
}

/// `x` rounded to 12 significant digits, then written in the shortest form that reads back
/// as that value: `1.44` for `14.4 * 0.001 * 100.0`, `6` for `6.0`.
fn fmt_num(x: f64) -> String {
    let rounded: f64 = format!("{x:.11e}").parse().unwrap_or(x);
    format!("{rounded}")
}

/// `1 - objective`, worked out on the objective's shortest decimal form so it is exactly what
/// a person would write: `0.00001` for 0.99999, where the float subtraction gives
/// 0.0000099999999999545 (too noisy even for rounding to 12 digits).
fn budget(objective: f64) -> String {
    let text = format!("{objective}");
    let Some(digits) = text
        .strip_prefix("0.")
        .filter(|d| !d.is_empty() && !d.ends_with('0') && d.bytes().all(|b| b.is_ascii_digit()))
    else {
        return fmt_num(1.0 - objective);
    };
    // 10^n - digits, from the right: the last digit (never 0 in a shortest form) from 10, the
    // others from 9.
    let mut complement: Vec<u8> = digits.bytes().map(|b| b'9' - (b - b'0')).collect();
    if let Some(last) = complement.last_mut() {
        *last += 1;
    }
    let mut out = String::from("0.");
    out.extend(complement.iter().map(|&b| char::from(b)));
    out
}

/// `s` as a YAML double-quoted scalar, which can hold any text: `"` and `\` are escaped, and so
/// is every character YAML does not allow raw or would fold (controls, line and paragraph
/// separators, the byte-order mark, non-characters).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(spec: RuleSpec) -> String {
        PrometheusRules::new()
            .slo(spec)
            .expect("valid spec")
            .to_yaml()
    }

    #[test]
    fn recording_and_alert_exprs() {
        let yaml = rules(RuleSpec::new("checkout", 0.999));
        assert!(yaml.contains("  - name: \"steadfast-slo-checkout\"\n    rules:\n"));
        let ratio = |w: &str| {
            format!(
                "      - record: \"steadfast_slo:error_ratio:rate{w}\"\n        expr: \
                 \"sum(rate(steadfast_slo_errors_total{{slo=\\\"checkout\\\"}}[{w}])) / \
                 sum(rate(steadfast_slo_events_total{{slo=\\\"checkout\\\"}}[{w}]))\"\n        \
                 labels:\n          slo: \"checkout\"\n"
            )
        };
        // Every distinct window once, shortest first.
        let windows = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];
        let mut last = 0;
        for w in windows {
            let at = yaml
                .find(&ratio(w))
                .unwrap_or_else(|| panic!("{w} in\n{yaml}"));
            assert!(at > last, "{w} out of order");
            last = at;
        }
        assert_eq!(
            yaml.matches("steadfast_slo:error_ratio:rate").count(),
            7 + 2 * 4
        );
        assert!(yaml.contains(
            "      - record: \"steadfast_slo:objective:ratio\"\n        expr: \"0.999\"\n"
        ));
        let alert = "      - alert: \"SteadfastErrorBudgetBurn\"\n        expr: \
            \"steadfast_slo:error_ratio:rate1h{slo=\\\"checkout\\\"} > (14.4 * 0.001) and \
            steadfast_slo:error_ratio:rate5m{slo=\\\"checkout\\\"} > (14.4 * 0.001)\"\n        \
            labels:\n          slo: \"checkout\"\n          signal: \"page_1h\"\n          \
            severity: \"page\"\n        annotations:\n          summary: \"SLO checkout is \
            burning its error budget over 14.4 times too fast (page_1h)\"\n          \
            description: \"SLO checkout (objective 99.9%) is spending its error budget at more \
            than 14.4 times the sustainable rate over both the last 1h and the last 5m: the \
            error ratio over 1h is {{ $value | humanizePercentage }}, above 1.44%.\"\n";
        assert!(yaml.contains(alert), "{yaml}");
        for expr in [
            "rate6h{slo=\\\"checkout\\\"} > (6 * 0.001) and steadfast_slo:error_ratio:rate30m{slo=\\\"checkout\\\"} > (6 * 0.001)\"",
            "rate1d{slo=\\\"checkout\\\"} > (3 * 0.001) and steadfast_slo:error_ratio:rate2h{slo=\\\"checkout\\\"} > (3 * 0.001)\"",
            "rate3d{slo=\\\"checkout\\\"} > (1 * 0.001) and steadfast_slo:error_ratio:rate6h{slo=\\\"checkout\\\"} > (1 * 0.001)\"",
        ] {
            assert!(yaml.contains(expr), "{expr}");
        }
        assert_eq!(yaml.matches("severity: \"ticket\"").count(), 2);
        assert!(!yaml.contains("for:"));
        assert!(!yaml.contains("service"));
    }

    #[test]
    fn numbers_without_binary_noise() {
        assert_eq!(1.0 - 0.999, 0.0010000000000000009);
        assert_eq!(fmt_num(1.0 - 0.999), "0.001");
        assert_eq!(fmt_num(14.4 * (1.0 - 0.999) * 100.0), "1.44");
        assert_eq!(fmt_num(0.999 * 100.0), "99.9");
        for (objective, expected) in [
            (0.999, "0.001"),
            (0.9995, "0.0005"),
            (0.99999, "0.00001"),
            (0.5, "0.5"),
            (0.25, "0.75"),
            (0.123456789, "0.876543211"),
            (0.9999999999999999, "0.0000000000000001"),
            (1e-20, "0.99999999999999999999"),
        ] {
            assert_eq!(budget(objective), expected);
            let back: f64 = expected.parse().expect("a number");
            assert!((back - (1.0 - objective)).abs() < 1e-15, "{objective}");
        }
        assert_eq!(fmt_num(6.0), "6");
        assert_eq!(fmt_num(1.0 / 3.0), "0.333333333333");
        let yaml = rules(RuleSpec::new("a", 0.99999));
        assert!(yaml.contains("> (14.4 * 0.00001) and"), "{yaml}");
    }

    #[test]
    fn service_label_on_every_rule_and_groups_in_order() {
        let mut r = PrometheusRules::new();
        r.push(RuleSpec::new("b", 0.99).with_service("shop"))
            .expect("valid");
        r.push(RuleSpec::new("a", 0.9)).expect("valid");
        let yaml = r.to_yaml();
        // 7 error ratios, the objective and 4 alerts.
        assert_eq!(yaml.matches("          service: \"shop\"\n").count(), 12);
        let (b, a) = (
            yaml.find("steadfast-slo-b\""),
            yaml.find("steadfast-slo-a\""),
        );
        assert!(b.is_some() && a.is_some() && b < a);
        assert_eq!(
            PrometheusRules::new().to_yaml().lines().last(),
            Some("groups: []")
        );
    }

    #[test]
    fn names_are_validated() {
        for good in ["a", "checkout-v2:http_5xx", &"x".repeat(64)] {
            assert!(
                PrometheusRules::new()
                    .slo(RuleSpec::new(good, 0.99))
                    .is_ok(),
                "{good}"
            );
        }
        for bad in ["", "a b", "a\"b", "a{b}", "é", &"x".repeat(65)] {
            let err = PrometheusRules::new()
                .slo(RuleSpec::new(bad, 0.99))
                .unwrap_err();
            assert_eq!(err, RulesError::InvalidSloName { slo: bad.into() });
        }
        let mut r = PrometheusRules::new();
        r.push(RuleSpec::new("a", 0.99)).expect("valid");
        let err = r.push(RuleSpec::new("a", 0.9)).unwrap_err();
        assert_eq!(err, RulesError::DuplicateSlo { slo: "a".into() });
        assert_eq!(r.specs().len(), 1);
        assert!(err.to_string().contains("\"a\" is given twice"));

        let signal = |name: &str| {
            let (long, short) = (Duration::from_secs(3600), Duration::from_secs(300));
            let w = BurnWindow::new(name, crate::Severity::Page, 2.0, long, short);
            RuleSpec::new("a", 0.99).with_windows(vec![w])
        };
        assert!(PrometheusRules::new().slo(signal("fast_1h")).is_ok());
        for bad in ["", "Fast", "a-b", "{{x}}", &"x".repeat(33)] {
            let err = PrometheusRules::new().slo(signal(bad)).unwrap_err();
            assert!(
                matches!(err, RulesError::InvalidSignalName { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn objectives_factors_and_windows_are_validated() {
        let check = |spec: RuleSpec| PrometheusRules::new().slo(spec).err();
        for objective in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
            let err = check(RuleSpec::new("a", objective));
            assert!(
                matches!(err, Some(RulesError::InvalidObjective { .. })),
                "{objective}"
            );
        }
        let one = |factor, long: u64, short: Duration| {
            let w = BurnWindow::new(
                "s",
                crate::Severity::Ticket,
                factor,
                Duration::from_secs(long),
                short,
            );
            RuleSpec::new("a", 0.99).with_windows(vec![w])
        };
        let five_min = Duration::from_secs(300);
        for factor in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = check(one(factor, 3600, five_min));
            assert!(
                matches!(err, Some(RulesError::InvalidFactor { .. })),
                "{factor}"
            );
        }
        for (long, short) in [
            (3600, Duration::ZERO),
            (300, five_min),
            (300, Duration::from_secs(600)),
            (3600, Duration::from_millis(1500)),
        ] {
            let err = check(one(1.0, long, short));
            assert!(
                matches!(err, Some(RulesError::InvalidWindows { .. })),
                "{long} {short:?}"
            );
        }
        let twice = RuleSpec::new("a", 0.99).with_windows(vec![
            BurnWindow::defaults()[0].clone(),
            BurnWindow::defaults()[0].clone(),
        ]);
        assert!(matches!(
            check(twice),
            Some(RulesError::DuplicateSignal { .. })
        ));
        let none = RuleSpec::new("a", 0.99).with_windows(Vec::new());
        assert_eq!(check(none), Some(RulesError::NoWindows { slo: "a".into() }));
        let empty = RuleSpec::new("a", 0.99).with_service("");
        assert_eq!(
            check(empty),
            Some(RulesError::EmptyService { slo: "a".into() })
        );
    }

    /// Reads a double-quoted scalar back as YAML does, for the escapes `quote` writes.
    fn unquote(s: &str) -> Option<String> {
        let inner = s.strip_prefix('"')?.strip_suffix('"')?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return None,
                '\\' => out.push(match chars.next()? {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => '\0',
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                    }
                    c @ ('"' | '\\') => c,
                    _ => return None,
                }),
                c if c.is_control() => return None,
                c => out.push(c),
            }
        }
        Some(out)
    }

    #[test]
    fn odd_label_values_are_quoted() {
        for odd in [
            "plain",
            "a \"quoted\" # not a comment: {x}",
            "back\\slash",
            "line\nbreak\r\ttab\0nul\u{7f}\u{85}",
            "\u{2028}\u{2029}\u{feff}",
            "- [1, 2]",
            "'single' &anchor *alias !tag %directive @ `",
            "ünïcødé 日本 🦀",
            "",
        ] {
            let q = quote(odd);
            assert!(!q.contains('\n') && !q.chars().any(char::is_control), "{q}");
            assert_eq!(unquote(&q).as_deref(), Some(odd), "{q}");
        }
        let yaml = rules(RuleSpec::new("a", 0.99).with_service("x\"y\\z\n#1"));
        assert!(yaml.contains("          service: \"x\\\"y\\\\z\\n#1\"\n"));
        // Every line is a key, a list item or a comment: no value spilled onto a line of its own.
        for line in yaml.lines() {
            let t = line.trim_start();
            assert!(
                t.starts_with('#') || t.starts_with("- ") || t.contains(": ") || t.ends_with(':'),
                "{line}"
            );
        }
    }
}
