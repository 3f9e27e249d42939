//! The status page: server-rendered HTML with inline CSS and no script.
//!
//! Sections come in the order a person on call reads them: the freeze banner (when any SLO asks
//! deploys to wait), services by health (worst first), breakers, degradation switches, SLOs
//! and caches. Every name is escaped (names come from config files, and registry keys from
//! callers). Rows carry stable `id` and `data-*` attributes (`data-breaker`, `data-state`,
//! `data-service`, `data-switch`, `data-slo`, `data-cache`) for tests and scrapers.

use std::fmt::{self, Display, Write};
use std::time::Duration;

use steadfast_breaker::State;

use super::{rfc3339, Health, Status};
use crate::burn::Severity;
use crate::report::SloReport;

/// How often the page reloads itself, in seconds.
const REFRESH_SECS: u32 = 5;

const CSS: &str = "\
:root{color-scheme:light;--red:#c62828;--red-bg:#fdecea;--amber:#b26a00;--amber-bg:#fff4d6;\
--green:#2e7d32;--green-bg:#e8f5e9;--line:#e0e0e0;--muted:#666}\
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;\
padding:16px 24px;max-width:1200px;color:#212121;background:#fafafa}\
h1{font-size:22px;margin:0}h2{font-size:16px;margin:24px 0 8px}h3{font-size:14px;margin:12px 0 4px}\
.meta,.note,.empty{color:var(--muted)}.meta{margin:2px 0 12px}\
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}\
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}\
th{background:#f2f2f2;font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.03em}\
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\
.banner{background:var(--red);color:#fff;padding:10px 14px;border-radius:4px;margin:8px 0;font-size:15px}\
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;font-weight:600;\
background:var(--green-bg);color:var(--green)}\
.badge.bad,tr.state-open .state,tr.state-forced_open .state{background:var(--red-bg);color:var(--red)}\
.badge.warn,tr.state-half_open .state,tr.on .level{background:var(--amber-bg);color:var(--amber)}\
tr.state-open,tr.state-forced_open,tr[data-freeze=true]{background:#fff6f5}tr.state-half_open{background:#fffbf0}\
.bar{display:inline-block;width:90px;height:8px;background:#eee;border-radius:4px;\
vertical-align:middle;margin-right:6px;overflow:hidden}.bar span{display:block;height:100%;background:var(--green)}\
.meter{white-space:nowrap}.meter.warn .bar span{background:#f9a825}.meter.bad .bar span{background:var(--red)}\
.signal{display:inline-block;margin:0 4px 2px 0;padding:0 6px;border:1px solid var(--line);\
border-radius:3px;font-size:12px;color:var(--muted)}\
.signal.firing{font-weight:700;color:#fff;border-color:transparent}\
.signal.firing.page{background:var(--red)}.signal.firing.ticket{background:#f9a825;color:#212121}\
.burn{display:inline-block;margin-right:8px;font-size:12px;font-variant-numeric:tabular-nums}\
.burn.hot{color:var(--red);font-weight:700}ol{margin:4px 0;padding-left:20px}\
.muted{color:var(--muted)}";

/// The page for `status`; `json_href` links the JSON form when the router knows where it is.
pub(super) fn render(status: &Status, json_href: Option<&str>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = page(&mut out, status, json_href);
    out
}

fn page(out: &mut String, status: &Status, json_href: Option<&str>) -> fmt::Result {
    let generated = rfc3339(status.generated_at);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}Status</title><style>{CSS}</style></head><body>\
         <header><h1>Status</h1><p class=\"meta\">Generated <time id=\"generated-at\" \
         datetime=\"{generated}\">{generated}</time> · reloads every {REFRESH_SECS} s",
        if status.freeze { "FREEZE · " } else { "" },
    )?;
    if let Some(href) = json_href {
        write!(out, " · <a href=\"{}\">JSON</a>", Esc(href))?;
    }
    out.push_str("</p></header>\n");
    freeze(out, status)?;
    services(out, status)?;
    breakers(out, status)?;
    switches(out, status)?;
    slos(out, status)?;
    caches(out, status)?;
    out.push_str("</body></html>\n");
    Ok(())
}

fn freeze(out: &mut String, status: &Status) -> fmt::Result {
    if !status.freeze {
        return Ok(());
    }
    out.push_str(
        "<div id=\"freeze\" class=\"banner\" role=\"alert\" data-freeze=\"true\">\
         <strong>Deploy freeze.</strong> Error budget under the freeze threshold:",
    );
    for (i, report) in status.slos.iter().filter(|r| r.freeze).enumerate() {
        let sep = if i == 0 { " " } else { ", " };
        write!(out, "{sep}<b>{}</b>", Esc(&report.name))?;
    }
    out.push_str(".</div>\n");
    Ok(())
}

fn services(out: &mut String, status: &Status) -> fmt::Result {
    section(out, "services", "Services by health");
    if status.services.is_empty() {
        return empty(out, "No service registered.");
    }
    out.push_str(
        "<table><thead><tr><th>Service</th><th class=\"num\">Health</th><th>Budget left</th>\
         <th>Breakers</th><th>Signals firing</th></tr></thead><tbody>",
    );
    for service in &status.services {
        let health = &service.health;
        write!(
            out,
            "<tr data-service=\"{name}\" data-score=\"{score:.1}\">\
             <td>{name}</td><td class=\"num\"><span class=\"badge {class}\">{score:.1}</span></td>\
             <td>{budget}</td><td>",
            name = Esc(&service.name),
            score = health.score,
            class = score_class(health),
            budget = Bar(health.budget),
        )?;
        if service.breakers == 0 {
            out.push_str("<span class=\"muted\">none</span>");
        } else {
            write!(
                out,
                "{} open of {}",
                service.breakers_open, service.breakers
            )?;
        }
        out.push_str("</td><td>");
        if service.firing.is_empty() {
            out.push_str("<span class=\"muted\">none</span>");
        }
        for firing in &service.firing {
            write!(
                out,
                "<span class=\"signal firing {}\" title=\"{}\">{}</span>",
                firing.severity.as_str(),
                Esc(&firing.slo),
                Esc(&firing.signal)
            )?;
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table></section>\n");
    Ok(())
}

fn breakers(out: &mut String, status: &Status) -> fmt::Result {
    section(out, "breakers", "Circuit breakers");
    if status.breakers.is_empty() && status.registries.is_empty() {
        return empty(out, "No breaker registered.");
    }
    if !status.breakers.is_empty() {
        out.push_str(
            "<table><thead><tr><th>Breaker</th><th>Key</th><th>Service</th><th>State</th>\
             <th class=\"num\">Failures</th><th class=\"num\">Slow</th><th class=\"num\">Calls</th>\
             <th class=\"num\">Rejected</th><th class=\"num\">Probes in</th></tr></thead><tbody>",
        );
    }
    for row in &status.breakers {
        let state = row.state.as_str();
        write!(
            out,
            "<tr data-breaker=\"{name}\" data-service=\"{service}\" data-state=\"{state}\"",
            name = Esc(&row.name),
            service = Esc(&row.service),
        )?;
        if let Some(key) = &row.key {
            write!(out, " data-key=\"{}\"", Esc(key))?;
        }
        write!(
            out,
            " class=\"state-{state}\"><td>{name}</td><td>{key}</td><td>{service}</td>\
             <td><span class=\"badge state\">{label}</span></td><td class=\"num\">{failures}</td>\
             <td class=\"num\">{slow}</td><td class=\"num\">{calls}</td>\
             <td class=\"num\">{rejected}</td><td class=\"num\">{probe}</td></tr>",
            name = Esc(&row.name),
            key = Esc(row.key.as_deref().unwrap_or("")),
            service = Esc(&row.service),
            label = state_label(row.state),
            failures = Percent(row.failure_rate),
            slow = Percent(row.slow_call_rate),
            calls = row.calls,
            rejected = row.rejected,
            probe = row
                .retry_after
                .map(Human)
                .map_or(String::new(), |d| d.to_string()),
        )?;
    }
    if !status.breakers.is_empty() {
        out.push_str("</tbody></table>");
    }
    for registry in &status.registries {
        let name = registry.name.as_deref().unwrap_or("keyed breakers");
        write!(
            out,
            "<p class=\"note\" data-registry=\"{name}\" data-service=\"{service}\">\
             {name} ({service}): {keys} live keys, {open} open, {half} half-open; \
             the worst {shown} shown.</p>",
            name = Esc(name),
            service = Esc(&registry.service),
            keys = registry.keys,
            open = registry.open,
            half = registry.half_open,
            shown = registry.shown,
        )?;
    }
    out.push_str("</section>\n");
    Ok(())
}

fn switches(out: &mut String, status: &Status) -> fmt::Result {
    section(out, "switches", "Degradation switches");
    if status.switches.is_empty() {
        return empty(out, "No switch registered.");
    }
    out.push_str(
        "<table><thead><tr><th>Switch</th><th class=\"num\">Level</th></tr></thead><tbody>",
    );
    for switch in &status.switches {
        write!(
            out,
            "<tr data-switch=\"{name}\" data-level=\"{level}\"{class}><td>{name}</td>\
             <td class=\"num\"><span class=\"badge level\">{level}</span></td></tr>",
            name = Esc(&switch.name),
            level = switch.level,
            class = if switch.level > 0 {
                " class=\"on\""
            } else {
                ""
            },
        )?;
    }
    out.push_str("</tbody></table>");
    if !status.flips.is_empty() {
        out.push_str("<h3>Last flips</h3><ol id=\"flips\">");
        for flip in &status.flips {
            let at = rfc3339(flip.at);
            write!(
                out,
                "<li data-flip=\"{switch}\"><time datetime=\"{at}\">{at}</time> \
                 <b>{switch}</b> {from} → {to} by {who} ({source}): {why}</li>",
                switch = Esc(&flip.switch),
                from = flip.from,
                to = flip.to,
                who = Esc(&flip.who),
                source = flip.source,
                why = Esc(&flip.why),
            )?;
        }
        out.push_str("</ol>");
    }
    out.push_str("</section>\n");
    Ok(())
}

fn slos(out: &mut String, status: &Status) -> fmt::Result {
    section(out, "slos", "Service level objectives");
    if status.slos.is_empty() {
        return empty(out, "No SLO registered.");
    }
    out.push_str(
        "<table><thead><tr><th>SLO</th><th>Service</th><th class=\"num\">Objective</th>\
         <th class=\"num\">Attained</th><th>Budget left</th><th>Burn rate</th><th>Signals</th>\
         </tr></thead><tbody>",
    );
    for report in &status.slos {
        slo_row(out, report)?;
    }
    out.push_str("</tbody></table></section>\n");
    Ok(())
}

fn slo_row(out: &mut String, report: &SloReport) -> fmt::Result {
    write!(
        out,
        "<tr data-slo=\"{name}\" data-freeze=\"{freeze}\"><td>{name}",
        name = Esc(&report.name),
        freeze = report.freeze,
    )?;
    if report.freeze {
        out.push_str(" <span class=\"badge bad\">freeze</span>");
    }
    write!(
        out,
        "<br><span class=\"muted\">{kind}, {period}</span></td><td>{service}</td>\
         <td class=\"num\">{objective}</td><td class=\"num\">{attained}</td>\
         <td data-budget=\"{remaining}\">{bar}</td><td>",
        kind = report.kind,
        period = Esc(&report.period),
        service = Esc(report.service.as_deref().unwrap_or("")),
        objective = Percent(report.objective),
        attained = report
            .attained
            .map_or("–".to_owned(), |a| Percent(a).to_string()),
        remaining = report.budget.remaining,
        bar = Bar(report.budget.remaining),
    )?;
    for burn in &report.burn_rates {
        write!(
            out,
            "<span class=\"burn{}\" data-window=\"{}\">{} {:.1}×</span>",
            // Over 1, the budget runs out before the period ends.
            if burn.rate > 1.0 { " hot" } else { "" },
            Esc(&burn.window),
            Esc(&burn.window),
            burn.rate
        )?;
    }
    out.push_str("</td><td>");
    for signal in &report.signals {
        write!(
            out,
            "<span class=\"signal{firing}\" data-signal=\"{name}\" data-firing=\"{on}\" \
             title=\"{factor}× over both windows\">{name}</span>",
            firing = if signal.firing {
                match signal.severity {
                    Severity::Page => " firing page",
                    Severity::Ticket => " firing ticket",
                }
            } else {
                ""
            },
            name = Esc(&signal.name),
            on = signal.firing,
            factor = signal.factor,
        )?;
    }
    out.push_str("</td></tr>");
    Ok(())
}

fn caches(out: &mut String, status: &Status) -> fmt::Result {
    section(out, "caches", "Caches");
    if status.caches.is_empty() {
        return empty(out, "No cache registered.");
    }
    out.push_str(
        "<table><thead><tr><th>Cache</th><th>Service</th><th>Hit rate</th>\
         <th class=\"num\">Lookups</th><th class=\"num\">Fresh</th><th class=\"num\">L2</th>\
         <th class=\"num\">Stale</th><th class=\"num\">Misses</th></tr></thead><tbody>",
    );
    for cache in &status.caches {
        write!(
            out,
            "<tr data-cache=\"{name}\" data-service=\"{service}\"><td>{name}</td>\
             <td>{service}</td><td>{rate}</td><td class=\"num\">{lookups}</td>\
             <td class=\"num\">{fresh}</td><td class=\"num\">{l2}</td>\
             <td class=\"num\">{stale}</td><td class=\"num\">{misses}</td></tr>",
            name = Esc(&cache.name),
            service = Esc(&cache.service),
            rate = cache.hit_rate.map_or(
                "<span class=\"muted\">no lookups</span>".to_owned(),
                |rate| { Bar(rate).to_string() }
            ),
            lookups = cache.lookups,
            fresh = cache.fresh,
            l2 = cache.l2,
            stale = cache.stale,
            misses = cache.misses,
        )?;
    }
    out.push_str("</tbody></table></section>\n");
    Ok(())
}

fn section(out: &mut String, id: &str, title: &str) {
    let _ = write!(out, "<section id=\"{id}\"><h2>{title}</h2>");
}

fn empty(out: &mut String, text: &str) -> fmt::Result {
    writeln!(out, "<p class=\"empty\">{text}</p></section>")
}

/// Red under 50, amber under 80, green otherwise.
fn score_class(health: &Health) -> &'static str {
    if health.score < 50.0 {
        "bad"
    } else if health.score < 80.0 {
        "warn"
    } else {
        "ok"
    }
}

fn state_label(state: State) -> &'static str {
    match state {
        State::Closed => "closed",
        State::Open => "open",
        State::HalfOpen => "half-open",
        State::Disabled => "disabled",
        State::ForcedOpen => "forced open",
        State::MetricsOnly => "metrics only",
    }
}

/// Text escaped for HTML content and double- or single-quoted attribute values.
struct Esc<'a>(&'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// A fraction as a percentage: `99.9 %`, to the precision the value needs (at most three
/// decimals), `–` for a value that is not a number.
struct Percent(f64);

impl Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0 * 100.0;
        if !value.is_finite() {
            return f.write_str("–");
        }
        let text = format!("{value:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        write!(f, "{text} %")
    }
}

/// A fraction as a bar and a percentage; the bar is clamped to `0..=100 %`, the number is not
/// (an overspent budget reads as negative).
struct Bar(f64);

impl Display for Bar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = if self.0.is_nan() {
            0.0
        } else {
            (self.0 * 100.0).clamp(0.0, 100.0)
        };
        let class = if width < 25.0 {
            "bad"
        } else if width < 50.0 {
            "warn"
        } else {
            "ok"
        };
        write!(
            f,
            "<span class=\"meter {class}\"><span class=\"bar\"><span style=\"width:{width:.1}%\">\
             </span></span>{:.1} %</span>",
            if self.0.is_finite() {
                self.0 * 100.0
            } else {
                0.0
            }
        )
    }
}

/// A duration for people: `850 ms`, `12 s`, `4 min 3 s`, `2 h 5 min`.
struct Human(Duration);

impl Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        match secs {
            0 => write!(f, "{} ms", self.0.subsec_millis()),
            1..=59 => write!(f, "{secs} s"),
            60..=3599 => write!(f, "{} min {} s", secs / 60, secs % 60),
            _ => write!(f, "{} h {} min", secs / 3600, secs % 3600 / 60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            Esc("<a href='x'>\"&\"</a>").to_string(),
            "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(Esc("plain é").to_string(), "plain é");
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(Percent(0.999).to_string(), "99.9 %");
        assert_eq!(Percent(0.5).to_string(), "50 %");
        assert_eq!(Percent(0.99995).to_string(), "99.995 %");
        assert_eq!(Percent(f64::NAN).to_string(), "–");
        assert_eq!(Human(Duration::from_millis(850)).to_string(), "850 ms");
        assert_eq!(Human(Duration::from_secs(12)).to_string(), "12 s");
        assert_eq!(Human(Duration::from_secs(243)).to_string(), "4 min 3 s");
        assert_eq!(Human(Duration::from_secs(7500)).to_string(), "2 h 5 min");
        assert!(Bar(-0.5).to_string().contains("width:0.0%"));
        assert!(Bar(-0.5).to_string().contains("-50.0 %"));
        assert!(Bar(0.42).to_string().contains("width:42.0%"));
    }
}
