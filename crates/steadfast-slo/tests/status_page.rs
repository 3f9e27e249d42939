//! The status router over real sockets: its JSON and freeze routes read with a real HTTP
//! client, the bearer-token nesting of its docs, and its page loaded by a headless Chromium
//! (a screenshot is left for people to look at).
#![cfg(feature = "axum")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use http::{header, HeaderMap, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use steadfast_breaker::{CircuitBreaker, State};
use steadfast_core::Clock;
use steadfast_fallback::{Degrader, Flip};
use steadfast_slo::status::{self, StatusBoard};
use steadfast_slo::{Severity, Slo, SloReport};

/// What the board under test is made of; the handles stay alive and steerable.
struct Fixture {
    board: StatusBoard,
    payments: CircuitBreaker,
    slos: Vec<Slo>,
    _degrader: Degrader,
    #[cfg(feature = "cache")]
    _prices: steadfast_cache::TieredCache<String, String>,
}

/// A board with a tripped `payments` breaker and a closed `inventory` one under `checkout`,
/// a switch at level 1, an SLO of `checkout` that has spent its budget and a healthy one of
/// `catalog`, and (with `cache`) a cache that has seen four lookups.
async fn fixture() -> Fixture {
    let payments = CircuitBreaker::builder("payments")
        .consecutive_failures(3)
        .open_duration(Duration::from_secs(600))
        .build()
        .unwrap();
    let inventory = CircuitBreaker::builder("inventory").build().unwrap();
    for _ in 0..3 {
        let _ = payments.call(|| Err::<(), _>("connection refused"));
    }
    assert_eq!(payments.state(), State::Open);
    inventory.call(|| Ok::<_, ()>(())).unwrap();

    let degrader = Degrader::new();
    degrader.switch("search-suggestions").unwrap();
    degrader
        .set(
            "recommendations",
            1,
            Flip::new("alice", "payments are down"),
        )
        .unwrap();

    // A mock clock, moved past the minute the events fall in, so that they count whatever
    // the minute boundaries.
    let (clock, time) = Clock::mock();
    let spent = Slo::builder("checkout-availability")
        .service("checkout")
        .objective(0.99)
        .clock(clock.clone())
        .build()
        .unwrap();
    let healthy = Slo::builder("catalog-availability")
        .service("catalog")
        .objective(0.99)
        .clock(clock)
        .build()
        .unwrap();
    for i in 0..100 {
        if i % 5 == 0 {
            spent.bad();
        } else {
            spent.good();
        }
        healthy.good();
    }
    time.advance(Duration::from_secs(180));

    let board = StatusBoard::new();
    board.breaker("checkout", &payments);
    board.breaker("checkout", &inventory);
    board.degrader(&degrader);
    let sources = (spent.clone(), healthy.clone());
    board.slo_reports(move || vec![sources.0.report(), sources.1.report()]);

    #[cfg(feature = "cache")]
    let prices = {
        let prices = steadfast_cache::TieredCache::<String, String>::builder("prices")
            .ttl(Duration::from_secs(600))
            .build()
            .unwrap();
        for _ in 0..3 {
            let value = prices
                .get_with("sku-1".to_owned(), || async {
                    Ok::<_, std::io::Error>("12.50".to_owned())
                })
                .await
                .unwrap();
            assert_eq!(*value, "12.50");
        }
        assert_eq!(prices.peek(&"sku-2".to_owned()), None);
        board.cache("catalog", &prices);
        prices
    };

    Fixture {
        board,
        payments,
        slos: vec![spent, healthy],
        _degrader: degrader,
        #[cfg(feature = "cache")]
        _prices: prices,
    }
}

/// Serves `app` on a free loopback port for the rest of the test.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `GET http://addr/path` with a real HTTP client, with a bearer token if given.
async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (StatusCode, HeaderMap, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = http::Request::get(format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, headers, body) = get(addr, path, None).await;
    assert_eq!(status, StatusCode::OK, "{path}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    serde_json::from_slice(&body).unwrap()
}

/// The signals part of the health score, computed from the reports as the JSON gives them.
fn signals_part(reports: &[&Value]) -> f64 {
    let firing = |severity: &str| {
        reports.iter().any(|report| {
            report["signals"]
                .as_array()
                .unwrap()
                .iter()
                .any(|signal| signal["firing"] == true && signal["severity"] == severity)
        })
    };
    if firing(Severity::Page.as_str()) {
        0.0
    } else if firing(Severity::Ticket.as_str()) {
        0.5
    } else {
        1.0
    }
}

#[tokio::test]
async fn json_and_freeze_routes() {
    let fixture = fixture().await;
    let reports: Vec<SloReport> = fixture.slos.iter().map(Slo::report).collect();
    assert!(reports[0].freeze, "the checkout SLO has spent its budget");
    assert!(!reports[1].freeze);
    let addr = serve(status::router(fixture.board.clone())).await;

    let status = get_json(addr, "/status.json").await;
    assert_eq!(status["freeze"], true);
    assert!(status["generated_at"].as_str().unwrap().ends_with('Z'));

    // Checkout: no budget left and one breaker of two open; catalog: all well.
    let services = status["services"].as_array().unwrap();
    assert_eq!(services.len(), 2);
    assert_eq!(services[0]["name"], "checkout");
    let checkout_slo = &status["slos"][0];
    assert_eq!(checkout_slo["name"], "checkout-availability");
    let expected = 100.0 * (0.4 * 0.0 + 0.3 * 0.5 + 0.3 * signals_part(&[checkout_slo]));
    assert_eq!(
        services[0]["health"]["score"],
        (expected * 10.0).round() / 10.0
    );
    assert_eq!(services[0]["breakers"], 2);
    assert_eq!(services[0]["breakers_open"], 1);
    assert_eq!(services[1]["name"], "catalog");
    let catalog_slo = &status["slos"][1];
    let expected = 100.0 * (0.4 + 0.3 + 0.3 * signals_part(&[catalog_slo]));
    assert_eq!(
        services[1]["health"]["score"],
        (expected * 10.0).round() / 10.0
    );

    let breakers = status["breakers"].as_array().unwrap();
    assert_eq!(breakers.len(), 2);
    let payments = &breakers[0];
    assert_eq!(payments["name"], "payments");
    assert_eq!(payments["service"], "checkout");
    assert_eq!(payments["state"], "open");
    assert_eq!(payments["calls"], 3);
    assert_eq!(payments["failures"], 3);
    assert_eq!(payments["failure_rate"], 1.0);
    let retry_after = payments["retry_after"].as_str().unwrap();
    // Ten minutes or just under, as humantime writes it ("10m", "9m 59s 990ms").
    assert!(
        retry_after.starts_with("10m") || retry_after.starts_with("9m"),
        "{retry_after}"
    );
    assert_eq!(breakers[1]["name"], "inventory");
    assert_eq!(breakers[1]["state"], "closed");
    assert_eq!(breakers[1]["retry_after"], Value::Null);

    assert_eq!(status["switches"][0]["name"], "recommendations");
    assert_eq!(status["switches"][0]["level"], 1);
    assert_eq!(status["switches"][1]["name"], "search-suggestions");
    assert_eq!(status["switches"][1]["level"], 0);
    let flip = &status["flips"][0];
    assert_eq!(
        (flip["switch"].as_str(), flip["to"].as_u64()),
        (Some("recommendations"), Some(1))
    );
    assert_eq!(
        (flip["who"].as_str(), flip["source"].as_str()),
        (Some("alice"), Some("code"))
    );

    #[cfg(feature = "cache")]
    {
        let cache = &status["caches"][0];
        assert_eq!(cache["name"], "prices");
        assert_eq!(cache["service"], "catalog");
        // One load, two fresh hits and one peek that found nothing.
        assert_eq!(cache["lookups"], 4);
        assert_eq!(cache["fresh"], 2);
        assert_eq!(cache["misses"], 2);
        assert_eq!(cache["hit_rate"], 0.5);
    }

    let freeze = get_json(addr, "/freeze").await;
    assert_eq!(freeze["freeze"], true);
    let slos = freeze["slos"].as_array().unwrap();
    assert_eq!(slos.len(), 2);
    assert_eq!(slos[0]["name"], "checkout-availability");
    assert_eq!(slos[0]["freeze"], true);
    assert_eq!(slos[0]["budget_remaining"], reports[0].budget.remaining);
    assert!(reports[0].budget.remaining < 0.1);
    assert_eq!(slos[1]["name"], "catalog-availability");
    assert_eq!(slos[1]["freeze"], false);
    assert_eq!(slos[1]["budget_remaining"], 1.0);

    // The board reads live state: a reset shows on the next request.
    fixture.payments.reset();
    let status = get_json(addr, "/status.json").await;
    assert_eq!(status["breakers"][0]["state"], "closed");
}

async fn ops_only(request: Request, next: Next) -> Result<Response, StatusCode> {
    match request.headers().get(header::AUTHORIZATION) {
        Some(token) if token == "Bearer ops-token" => Ok(next.run(request).await),
        _ => Err(StatusCode::UNAUTHORIZED),
    }
}

#[tokio::test]
async fn nested_behind_a_bearer_check() {
    let fixture = fixture().await;
    let app = Router::new().nest(
        "/status",
        status::router(fixture.board.clone()).route_layer(middleware::from_fn(ops_only)),
    );
    let addr = serve(app).await;

    for path in ["/status", "/status/status.json", "/status/freeze"] {
        let (status, _, body) = get(addr, path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert!(body.is_empty());
        let (status, _, _) = get(addr, path, Some("guess")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _, body) = get(addr, path, Some("ops-token")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.is_empty());
    }

    let (_, headers, body) = get(addr, "/status", Some("ops-token")).await;
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let page = String::from_utf8(body.to_vec()).unwrap();
    // The page links its JSON where it is mounted.
    assert!(page.contains("<a href=\"/status/status.json\">JSON</a>"));
}

/// Chromium from `CHROMIUM`, or `chromium` or `chromium-browser` on `PATH`.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return path.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "this test needs a headless Chromium: install Debian's `chromium` package \
         (scripts/test does), or set CHROMIUM to its path"
    );
}

/// Runs headless Chromium with `args` in a fresh profile, killing it after 30 seconds.
async fn run_chromium(args: &[String]) -> Output {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let profile = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "chromium-profile-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let mut command = tokio::process::Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("Chromium did not finish within 30 seconds")
        .expect("Chromium could not be started");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "Chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The start tags named `name` in `dom`, each with its attributes and the markup after it.
fn start_tags<'a>(dom: &'a str, name: &str) -> Vec<(HashMap<String, String>, &'a str)> {
    let open = format!("<{name}");
    let mut tags = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find(&open) {
        rest = &rest[at + open.len()..];
        if !rest.starts_with([' ', '>']) {
            continue;
        }
        let end = rest.find('>').unwrap();
        let mut attributes = HashMap::new();
        let mut text = &rest[..end];
        // Chromium writes every attribute as name="value", with `"` in values escaped.
        while let Some(eq) = text.find("=\"") {
            let key = text[..eq].trim().to_owned();
            let value_end = text[eq + 2..].find('"').unwrap();
            let value = text[eq + 2..eq + 2 + value_end]
                .replace("&quot;", "\"")
                .replace("&amp;", "&");
            attributes.insert(key, value);
            text = &text[eq + 2 + value_end + 1..];
        }
        tags.push((attributes, &rest[end + 1..]));
    }
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_headless_chromium() {
    let fixture = fixture().await;
    let addr = serve(status::router(fixture.board.clone())).await;
    let url = format!("http://{addr}/");

    let output = run_chromium(&["--dump-dom".to_owned(), url.clone()]).await;
    let dom = String::from_utf8(output.stdout).unwrap();
    // Kept beside the screenshot, for a look when an assertion below fails.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(tmp.join("status-page.html"), &dom).unwrap();
    let rows = start_tags(&dom, "tr");

    let (payments, inside) = rows
        .iter()
        .find(|(attributes, _)| {
            attributes.get("data-breaker").map(String::as_str) == Some("payments")
        })
        .unwrap_or_else(|| panic!("no row for the payments breaker in:\n{dom}"));
    assert_eq!(payments["data-state"], "open");
    assert_eq!(payments["data-service"], "checkout");
    let row = &inside[..inside.find("</tr>").unwrap()];
    assert!(row.contains(">open</span>"), "{row}");

    let inventory = rows
        .iter()
        .find(|(attributes, _)| {
            attributes.get("data-breaker").map(String::as_str) == Some("inventory")
        })
        .unwrap();
    assert_eq!(inventory.0["data-state"], "closed");

    let services: Vec<&str> = rows
        .iter()
        .filter_map(|(attributes, _)| {
            attributes.get("data-service").filter(|_| {
                !attributes.contains_key("data-breaker") && !attributes.contains_key("data-cache")
            })
        })
        .map(String::as_str)
        .collect();
    assert_eq!(services, ["checkout", "catalog"]);

    let switch = rows
        .iter()
        .find(|(attributes, _)| attributes.contains_key("data-switch"))
        .unwrap();
    assert_eq!(
        (
            switch.0["data-switch"].as_str(),
            switch.0["data-level"].as_str()
        ),
        ("recommendations", "1")
    );

    let slo = rows
        .iter()
        .find(|(attributes, _)| {
            attributes.get("data-slo").map(String::as_str) == Some("checkout-availability")
        })
        .unwrap();
    assert_eq!(slo.0["data-freeze"], "true");
    let banner = start_tags(&dom, "div")
        .into_iter()
        .find(|(attributes, _)| attributes.get("id").map(String::as_str) == Some("freeze"))
        .expect("a freeze banner");
    assert!(banner.1.contains("checkout-availability"));

    let shot = tmp.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    run_chromium(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1200,900".to_owned(),
        "--hide-scrollbars".to_owned(),
        url,
    ])
    .await;
    let png = std::fs::read(&shot).expect("Chromium wrote no screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a screenshot of {} bytes shows next to nothing",
        png.len()
    );
    println!("status page screenshot: {}", shot.display());
}
