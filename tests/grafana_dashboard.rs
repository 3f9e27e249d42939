//! The Grafana dashboard of `examples/grafana` cannot drift from the documented metrics: every
//! `steadfast_*` metric its queries name is in the table of `steadfast_core::metrics`.

use std::collections::BTreeSet;

use serde_json::Value;

const DASHBOARD: &str = include_str!("../examples/grafana/dashboard.json");
const METRICS_DOCS: &str = include_str!("../crates/steadfast-core/src/metrics.rs");

/// Every PromQL expression of the dashboard: panel targets (rows' nested panels included) and
/// the template variables' queries.
fn expressions(dashboard: &Value) -> Vec<String> {
    fn panels(list: &Value, out: &mut Vec<String>) {
        for panel in list.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push(expr.to_owned());
                }
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] == "query" {
            let query = &variable["query"];
            let text = query["query"].as_str().or_else(|| query.as_str());
            out.extend(text.map(str::to_owned));
        }
    }
    out
}

/// The `steadfast_` metric names an expression reads: recording rules (`a:b:c`) left out,
/// histogram series turned back into the histogram's name, string literals (label values)
/// skipped.
fn metric_names(expr: &str) -> Vec<String> {
    let mut code = String::with_capacity(expr.len());
    let mut quote = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(open) if c == open => {
                quote = None;
                code.push(' ');
            }
            Some(_) => {}
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None => code.push(c),
        }
    }
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    code.split(|c: char| !is_name(c))
        .filter(|word| word.starts_with("steadfast_") && !word.contains(':'))
        .map(|word| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word)
                .to_owned()
        })
        .collect()
}

/// The names in the first column of the module docs' table: `//! | `name` | kind | ...`.
fn documented() -> BTreeSet<&'static str> {
    METRICS_DOCS
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("//! | `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name))
        .collect()
}

#[test]
fn every_metric_the_dashboard_reads_is_documented() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is valid JSON");
    let documented = documented();
    assert!(
        documented.contains("steadfast_breaker_state"),
        "the table of steadfast_core::metrics was not found: {documented:?}"
    );

    let expressions = expressions(&dashboard);
    let read: BTreeSet<String> = expressions
        .iter()
        .flat_map(|expr| metric_names(expr))
        .collect();
    // A walk that found nothing would pass whatever the dashboard says.
    assert!(
        expressions.len() >= 20 && read.len() >= 20,
        "{} expressions, {} metrics",
        expressions.len(),
        read.len()
    );

    let undocumented: Vec<&String> = read
        .iter()
        .filter(|name| !documented.contains(name.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "the dashboard reads metrics that steadfast_core::metrics does not document: {undocumented:?}"
    );
}

#[test]
fn the_dashboard_is_tidy() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is valid JSON");
    assert_eq!(dashboard["schemaVersion"], 39);
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|variable| variable["name"].as_str())
        .collect();
    for name in ["DS_PROMETHEUS", "slo", "breaker", "cache", "switch"] {
        assert!(variables.contains(&name), "no variable {name}");
    }

    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} twice");
        let title = panel["title"].as_str().unwrap_or_default();
        let grid = &panel["gridPos"];
        let (x, w) = (grid["x"].as_u64(), grid["w"].as_u64());
        assert!(
            matches!((x, w), (Some(x), Some(w)) if w > 0 && x + w <= 24),
            "panel {title:?} is outside the 24-column grid: {grid}"
        );
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel {title:?} does not use the data source variable"
            );
        }
    }
}

#[test]
fn names_are_taken_from_expressions_as_promql_reads_them() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.99, sum by (le) (rate(steadfast_cache_load_seconds_bucket[5m])))"
        ),
        ["steadfast_cache_load_seconds"]
    );
    assert_eq!(
        metric_names(
            r#"max by (slo) (steadfast_slo:error_ratio:rate5m{slo=~"$slo"}) or steadfast_slo_errors_total"#
        ),
        ["steadfast_slo_errors_total"]
    );
    assert_eq!(
        metric_names(
            r#"steadfast_breaker_state{breaker="steadfast_x\"y"} + up{job='steadfast_z'}"#
        ),
        ["steadfast_breaker_state"]
    );
}
