//! The generated rules, as Prometheus itself reads and runs them: `promtool check rules` on the
//! file, and `promtool test rules` on made-up counters for an outage and for a steady trickle
//! of errors, asserting exactly which burn-rate alerts fire when.
//!
//! promtool comes with Debian's `prometheus` package; `PROMTOOL` may name it instead.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use steadfast_slo::rules::{PrometheusRules, RuleSpec};
use steadfast_slo::{BurnWindow, Severity};

/// A label value that needs every kind of quoting: YAML's (`"`, `#`, `: `, `\`) and PromQL's.
const SERVICE: &str = r#"shop "edge" #1: a\b é"#;
/// The same as a YAML double-quoted scalar, written by hand rather than by the code under test.
const SERVICE_YAML: &str = r#""shop \"edge\" #1: a\\b é""#;

fn promtool() -> PathBuf {
    if let Some(path) = std::env::var_os("PROMTOOL").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "promtool is not on PATH (and PROMTOOL is not set): these tests need it. \
                 scripts/test installs Debian's `prometheus` package, which ships it \
                 (apt-get install prometheus), or set PROMTOOL to its path."
            )
        })
}

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "steadfast-slo-promtool-{}-{nanos}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("create the temporary directory");
        Self(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool")
}

fn must_pass(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The rules under test: the checkout SLO of the unit tests below, and a second SLO with its own
/// signals, so that the file has two groups.
fn rule_file() -> String {
    let minutes = |m: u64| Duration::from_secs(m * 60);
    let custom = vec![BurnWindow::new(
        "fast_15m",
        Severity::Page,
        20.0,
        minutes(15),
        minutes(1),
    )];
    PrometheusRules::new()
        .slo(RuleSpec::new("checkout", 0.999).with_service(SERVICE))
        .and_then(|r| r.slo(RuleSpec::new("search:v2", 0.95).with_windows(custom)))
        .expect("valid specs")
        .to_yaml()
}

#[test]
fn promtool_checks_the_rule_file() {
    let dir = TempDir::new();
    dir.write("rules.yml", &rule_file());
    let out = must_pass(&dir.0, &["check", "rules", "rules.yml"]);
    // checkout: 7 windows, the objective and 4 alerts; search:v2: 2 windows, the objective and
    // 1 alert.
    assert!(out.contains("SUCCESS: 16 rules found"), "{out}");
}

/// One expected `SteadfastErrorBudgetBurn` alert of the checkout SLO. `value` is the error ratio
/// over the long window as `humanizePercentage` writes it (`%.4g` of the ratio times 100).
fn alert(signal: &str, value: &str) -> String {
    // (severity, factor, long window, short window, factor × 0.001 as a percentage)
    let (severity, factor, long, short, threshold) = match signal {
        "page_1h" => ("page", "14.4", "1h", "5m", "1.44"),
        "page_6h" => ("page", "6", "6h", "30m", "0.6"),
        "ticket_1d" => ("ticket", "3", "1d", "2h", "0.3"),
        "ticket_3d" => ("ticket", "1", "3d", "6h", "0.1"),
        _ => panic!("no signal {signal}"),
    };
    format!(
        "
          - exp_labels:
              slo: checkout
              service: {SERVICE_YAML}
              signal: {signal}
              severity: {severity}
            exp_annotations:
              summary: \"SLO checkout is burning its error budget over {factor} times too fast ({signal})\"
              description: \"SLO checkout (objective 99.9%) is spending its error budget at more than {factor} times the sustainable rate over both the last {long} and the last {short}: the error ratio over {long} is {value}, above {threshold}%.\""
    )
}

/// An `alert_rule_test` entry: at `minute`, exactly `alerts` fire.
fn at(minute: u32, alerts: &[String]) -> String {
    let mut out = format!(
        "
      - eval_time: {minute}m
        alertname: SteadfastErrorBudgetBurn
        exp_alerts:"
    );
    if alerts.is_empty() {
        out.push_str(" []");
    }
    for a in alerts {
        out.push_str(a);
    }
    out
}

/// A unit-test file for `promtool test rules`: the checkout counters of two instances, every
/// minute, and the tests.
fn test_file(series: &[(&str, &str, &str)], alert_tests: &[String], expr_tests: &str) -> String {
    let mut out = String::from(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:",
    );
    for (counter, instance, values) in series {
        let _ = write!(
            out,
            "\n      - series: 'steadfast_slo_{counter}_total{{slo=\"checkout\", instance=\"{instance}\"}}'\n        values: '{values}'"
        );
    }
    out.push_str("\n    alert_rule_test:");
    for t in alert_tests {
        out.push_str(t);
    }
    out.push_str("\n    promql_expr_test:");
    out.push_str(expr_tests);
    out.push('\n');
    out
}

fn run_tests(test: &str) -> Output {
    let dir = TempDir::new();
    dir.write("rules.yml", &rule_file());
    dir.write("test.yml", test);
    run(&dir.0, &["test", "rules", "test.yml"])
}

fn assert_passes(test: &str) {
    let out = run_tests(test);
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}{}\n--- test file ---\n{test}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Three days (4320 minutes) of good traffic, so that even the 3-day window is full, then an
/// outage where every call fails from minute 4320 to minute 4350, then good traffic again.
///
/// Each of two instances serves 50 events a minute, so the SLO sees 100 a minute, and in the
/// outage 100 errors a minute. At minute 4320 + k (k ≤ 30) a window of W minutes that reaches
/// back before the outage holds 100·k errors among 100·W events: an error ratio of k / W.
/// (Samples fall on whole minutes, as do the windows' edges, so `rate` does not extrapolate.)
///
/// A signal fires when both ratios pass factor × (1 - 0.999):
/// - page_1h, 14.4 × 0.001 = 1.44 % of the 1 h window is 0.864 min: k / 60 passes from k = 1
///   (1.667 %), and k / 5 over the short window from k = 1 too;
/// - page_6h, 6 × 0.001 = 0.6 % of 360 min is 2.16 min: k = 2 gives 0.556 %, k = 3 gives
///   0.8333 %; the 30 m window passes from k = 1;
/// - ticket_1d, 3 × 0.001 = 0.3 % of 1440 min is 4.32 min, so from k = 5 (0.3472 %);
/// - ticket_3d, 1 × 0.001 = 0.1 % of 4320 min is 4.32 min, so from k = 5 (0.1157 %).
///
/// After the outage (3000 errors in all), each signal clears when its short window holds no
/// error any more: page_1h at 4355 (5 m), page_6h at 4380 (30 m), while the tickets still
/// fire, their short windows (2 h, 6 h) still holding all 3000 errors.
fn outage_series() -> Vec<(&'static str, &'static str, &'static str)> {
    // `a+bxn` is a, a+b, … a+n·b at minutes 0 to n; `0x4320` is 4321 zeros (minutes 0–4320),
    // then 50 to 1500 at minutes 4321–4350, then 1500 until minute 4420.
    let events = "0+50x4420";
    let errors = "0x4320 50+50x29 1500x70";
    vec![
        ("events", "a", events),
        ("events", "b", events),
        ("errors", "a", errors),
        ("errors", "b", errors),
    ]
}

fn outage_alert_tests() -> Vec<String> {
    vec![
        // Before the outage: nothing, whatever the window (the 3-day window fills at 4320).
        at(60, &[]),
        at(1440, &[]),
        at(4320, &[]),
        // k = 1: page_1h only, its 1 h ratio 1/60 = 1.667 %.
        at(4321, &[alert("page_1h", "1.667%")]),
        // k = 2: page_6h's 2/360 = 0.556 % is still under 0.6 %.
        at(4322, &[alert("page_1h", "3.333%")]),
        // k = 3: 3/60 = 5 %, 3/360 = 0.8333 %.
        at(4323, &[alert("page_1h", "5%"), alert("page_6h", "0.8333%")]),
        // k = 4: the tickets' 4/1440 = 0.2778 % and 4/4320 = 0.09259 % are under their lines.
        at(
            4324,
            &[alert("page_1h", "6.667%"), alert("page_6h", "1.111%")],
        ),
        // k = 5: 5/60, 5/360, 5/1440, 5/4320.
        at(
            4325,
            &[
                alert("page_1h", "8.333%"),
                alert("page_6h", "1.389%"),
                alert("ticket_1d", "0.3472%"),
                alert("ticket_3d", "0.1157%"),
            ],
        ),
        // 4 minutes after the outage the last 5 m still hold 100 errors (20 %): page_1h on,
        // 3000/6000 = 50 % over 1 h.
        at(
            4354,
            &[
                alert("page_1h", "50%"),
                alert("page_6h", "8.333%"),
                alert("ticket_1d", "2.083%"),
                alert("ticket_3d", "0.6944%"),
            ],
        ),
        // 5 minutes after: the 5 m window is clean and page_1h clears, though 1 h is at 50 %.
        at(
            4355,
            &[
                alert("page_6h", "8.333%"),
                alert("ticket_1d", "2.083%"),
                alert("ticket_3d", "0.6944%"),
            ],
        ),
        // 30 minutes after: page_6h's 30 m window is clean too; 3000/144000 and 3000/432000.
        at(
            4380,
            &[alert("ticket_1d", "2.083%"), alert("ticket_3d", "0.6944%")],
        ),
    ]
}

/// At k = 15 the last hour holds 1500 errors among 6000 events, the last 5 minutes nothing but
/// errors, and the objective is the objective.
const OUTAGE_EXPRS: &str = r#"
      - eval_time: 4335m
        expr: steadfast_slo:error_ratio:rate1h
        exp_samples:
          - labels: 'steadfast_slo:error_ratio:rate1h{slo="checkout", service="shop \"edge\" #1: a\\b é"}'
            value: 0.25
      - eval_time: 4335m
        expr: steadfast_slo:error_ratio:rate5m{slo="checkout"}
        exp_samples:
          - labels: 'steadfast_slo:error_ratio:rate5m{slo="checkout", service="shop \"edge\" #1: a\\b é"}'
            value: 1
      - eval_time: 10m
        expr: steadfast_slo:objective:ratio
        exp_samples:
          - labels: 'steadfast_slo:objective:ratio{slo="checkout", service="shop \"edge\" #1: a\\b é"}'
            value: 0.999
          - labels: 'steadfast_slo:objective:ratio{slo="search:v2"}'
            value: 0.95"#;

#[test]
fn an_outage_pages_then_tickets_and_clears_short_window_first() {
    assert_passes(&test_file(
        &outage_series(),
        &outage_alert_tests(),
        OUTAGE_EXPRS,
    ));
}

/// The tests above are not vacuous: promtool fails them when an alert is expected one minute
/// early, at k = 2, where page_6h's 6 h ratio (0.556 %) is just under its 0.6 % line.
#[test]
fn promtool_rejects_an_alert_one_minute_early() {
    let early = at(
        4322,
        &[alert("page_1h", "3.333%"), alert("page_6h", "0.5556%")],
    );
    let out = run_tests(&test_file(&outage_series(), &[early], ""));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "promtool passed:\n{text}");
    assert!(text.contains("page_6h"), "{text}");
}

/// 2000 events and 1 error a minute, for three days and two hours: a steady 0.05 % error ratio,
/// half of the 0.1 % that even the slowest signal (1 × over 3 d and 6 h) needs. Nothing fires.
#[test]
fn a_steady_trickle_of_errors_never_alerts() {
    let series = [
        ("events", "a", "0+1000x4440"),
        ("events", "b", "0+1000x4440"),
        ("errors", "a", "0+1x4440"),
        ("errors", "b", "0x4440"),
    ];
    let quiet: Vec<String> = [5, 60, 360, 1440, 2000, 4320, 4440]
        .into_iter()
        .map(|m| at(m, &[]))
        .collect();
    // 60 errors among 120000 events in the last hour, at any minute after the first hour.
    let exprs = r#"
      - eval_time: 3000m
        expr: steadfast_slo:error_ratio:rate1h{slo="checkout"} * 10000
        exp_samples:
          - labels: '{slo="checkout", service="shop \"edge\" #1: a\\b é"}'
            value: 5"#;
    assert_passes(&test_file(&series, &quiet, exprs));
}
