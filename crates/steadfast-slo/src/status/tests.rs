use std::time::{Duration, UNIX_EPOCH};

use steadfast_breaker::{BreakerRegistry, CircuitBreaker, State};
use steadfast_fallback::{Degrader, Flip};

use super::health::tests::report;
use super::*;
use crate::burn::Severity;

fn breaker(name: &str) -> CircuitBreaker {
    CircuitBreaker::builder(name)
        .consecutive_failures(2)
        .open_duration(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn trip(breaker: &CircuitBreaker) {
    for _ in 0..2 {
        let _ = breaker.call(|| Err::<(), _>("refused"));
    }
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn services_rank_worst_first_and_registrations_after_cloning_show() {
    let board = StatusBoard::new();
    let handed_out = board.clone();
    let payments = breaker("payments");
    let search = breaker("search");
    board.breaker("checkout", &payments);
    board.breaker("catalog", &search);
    board.slo_reports(|| {
        vec![
            report("catalog-availability", "catalog", 0.5, &[]),
            report("ledger-latency", "ledger", 1.0, &[Severity::Ticket]),
        ]
    });
    trip(&payments);

    let status = handed_out.snapshot();
    let ranked: Vec<(&str, f64)> = status
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.health.score))
        .collect();
    // checkout: 40 + 0 + 30; ledger: 40 + 30 + 15; catalog: 20 + 30 + 30.
    assert_eq!(
        ranked,
        vec![("checkout", 70.0), ("catalog", 80.0), ("ledger", 85.0)]
    );
    assert_eq!(status.services[0].breakers_open, 1);
    assert!(status.services[0].firing.is_empty());
    assert_eq!(status.services[2].firing.len(), 1);
    assert_eq!(status.services[2].firing[0].slo, "ledger-latency");

    assert_eq!(status.breakers[0].name, "payments");
    assert_eq!(status.breakers[0].state, State::Open);
    assert_eq!(status.breakers[0].failures, 2);
    assert!(status.breakers[0].retry_after.is_some());
    assert_eq!(status.breakers[1].state, State::Closed);
    // The SLO in most trouble first.
    assert_eq!(status.slos[0].name, "catalog-availability");
    assert!(!status.freeze);
}

#[test]
fn a_registry_shows_its_worst_keys_and_counts_as_one_breaker() {
    let template = CircuitBreaker::builder("hosts").consecutive_failures(1);
    let registry =
        BreakerRegistry::<String>::new(template, 1000, Duration::from_secs(600)).unwrap();
    for i in 0..30 {
        let breaker = registry.get(format!("host-{i:02}"));
        breaker.call(|| Ok::<_, ()>(())).unwrap();
    }
    for i in [7, 21, 29] {
        let _ = registry
            .get(format!("host-{i:02}"))
            .call(|| Err::<(), _>(()));
    }
    registry.get("host-03".to_owned()).half_open();
    registry.get("x".repeat(MAX_KEY_LEN + 10)).force_open();

    let board = StatusBoard::new();
    board.registry("edge", &registry);
    let status = board.snapshot();

    assert_eq!(status.breakers.len(), MAX_REGISTRY_ROWS);
    let refusing: Vec<State> = status.breakers[..4].iter().map(|b| b.state).collect();
    // Equally refusing: the higher failure rate first.
    assert_eq!(
        refusing,
        [State::Open, State::Open, State::Open, State::ForcedOpen]
    );
    assert_eq!(status.breakers[4].state, State::HalfOpen);
    assert!(status.breakers[5..]
        .iter()
        .all(|b| b.state == State::Closed));
    assert!(status.breakers.iter().all(|b| b.name == "hosts"));
    let long = status
        .breakers
        .iter()
        .find_map(|b| b.key.as_deref().filter(|k| k.starts_with('x')))
        .unwrap();
    assert!(long.len() <= MAX_KEY_LEN + '…'.len_utf8() && long.ends_with('…'));

    assert_eq!(
        status.registries,
        vec![RegistryStatus {
            name: Some("hosts".to_owned()),
            service: "edge".to_owned(),
            keys: 31,
            open: 4,
            half_open: 1,
            shown: MAX_REGISTRY_ROWS,
        }]
    );
    // One breaker worth (26 + 0.5) / 31: 100 × (0.4 + 0.3 × 26.5 / 31 + 0.3) = 95.6.
    let edge = &status.services[0];
    assert_eq!((edge.breakers, edge.breakers_open), (31, 4));
    assert_eq!(edge.health.score, 95.6);
}

#[test]
fn switches_rank_by_level_and_flips_read_newest_first() {
    let degrader = Degrader::new();
    degrader.switch("search-suggestions").unwrap();
    let board = StatusBoard::new();
    board.degrader(degrader.clone());
    for i in 0..12u8 {
        degrader
            .set(
                "recommendations",
                i % 3,
                Flip::new("bob", format!("flip {i}")),
            )
            .unwrap();
    }
    let status = board.snapshot();
    assert_eq!(status.switches[0].name, "recommendations");
    assert_eq!(status.switches[0].level, 2);
    assert_eq!(status.switches[1].level, 0);
    assert_eq!(status.flips.len(), FLIPS_SHOWN);
    assert_eq!(status.flips[0].why, "flip 11");
    assert_eq!((status.flips[0].from, status.flips[0].to), (1, 2));
    assert!(status.flips.windows(2).all(|w| w[0].at >= w[1].at));
}

#[test]
fn any_freezing_slo_freezes() {
    let board = StatusBoard::new();
    board.slo_reports(|| vec![report("a", "s", 0.9, &[])]);
    assert!(!board.snapshot().freeze);
    board.slo_reports(|| vec![report("b", "s", 0.05, &[Severity::Page])]);
    let status = board.snapshot();
    assert!(status.freeze);
    let page = status.html();
    assert!(page.contains("id=\"freeze\""));
    assert!(page.contains("<b>b</b>"));
    assert!(page.contains("<title>FREEZE · Status</title>"));
    assert!(page.contains("data-slo=\"b\" data-freeze=\"true\""));
    assert!(page.contains("class=\"signal firing page\""));
    assert_eq!(board.reports().len(), 2);
}

#[test]
fn the_page_escapes_names_and_marks_rows() {
    let hostile = breaker("<script>alert('x')</script>");
    let payments = breaker("payments");
    trip(&payments);
    let board = StatusBoard::new();
    board.breaker("a&b \"quoted\"", &hostile);
    board.breaker("checkout", &payments);
    let page = board.snapshot().html();

    assert!(!page.contains("<script"));
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(page.contains("data-service=\"a&amp;b &quot;quoted&quot;\""));
    assert!(page.contains(
        "<tr data-breaker=\"payments\" data-service=\"checkout\" data-state=\"open\" \
         class=\"state-open\">"
    ));
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    assert!(!page.contains("id=\"freeze\""));
    // Sections in the order on-call reads them.
    let at = |id: &str| page.find(&format!("<section id=\"{id}\"")).unwrap();
    assert!(at("services") < at("breakers"));
    assert!(at("breakers") < at("switches"));
    assert!(at("switches") < at("slos"));
    assert!(at("slos") < at("caches"));
}

#[test]
fn an_empty_board_renders() {
    let status = StatusBoard::new().snapshot();
    assert!(status.services.is_empty() && !status.freeze);
    let page = status.html();
    assert!(page.contains("No breaker registered."));
    assert!(page.ends_with("</body></html>\n"));
}

#[test]
fn times_read_as_rfc3339() {
    let at = |secs| rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(0), "1970-01-01T00:00:00Z");
    assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(at(1_709_210_096), "2024-02-29T12:34:56Z");
    assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    assert_eq!(
        rfc3339(UNIX_EPOCH - Duration::from_secs(5)),
        "1970-01-01T00:00:00Z"
    );
}

#[cfg(feature = "serde")]
#[test]
fn the_json_shape() {
    let payments = breaker("payments");
    payments.force_open();
    let board = StatusBoard::new();
    board.breaker("checkout", &payments);
    board.slo_reports(|| vec![report("avail", "checkout", 0.05, &[])]);
    let json = serde_json::to_value(board.snapshot()).unwrap();
    let generated = json["generated_at"].as_str().unwrap();
    assert_eq!(generated.len(), "2024-02-29T12:34:56Z".len());
    assert_eq!(json["freeze"], true);
    assert_eq!(json["services"][0]["name"], "checkout");
    assert_eq!(json["services"][0]["health"]["score"], 32.0);
    assert_eq!(json["breakers"][0]["state"], "forced_open");
    assert_eq!(json["breakers"][0]["key"], serde_json::Value::Null);
    assert_eq!(json["slos"][0]["name"], "avail");
}
