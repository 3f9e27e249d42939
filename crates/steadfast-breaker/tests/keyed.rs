//! Keyed breakers: the registry's bound, its eviction under a flood of keys, idle expiry, and
//! the keyed layer's extractors.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use steadfast_breaker::keyed::BreakerRegistry;
use steadfast_breaker::{Builder, CircuitBreaker, CircuitBreakerLayer, State};
use steadfast_core::Clock;
use tower::{service_fn, ServiceBuilder, ServiceExt};

// ---------------------------------------------------------------------------------------------
// A counting allocator, for the memory per key.

struct Counting;

thread_local! {
    // Per thread, so that the clock's thread and the other tests do not count.
    static LIVE_BYTES: Cell<i64> = const { Cell::new(0) };
}

fn add_live(bytes: i64) {
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + bytes));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add_live(layout.size() as i64);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add_live(-(layout.size() as i64));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add_live(new_size as i64 - layout.size() as i64);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_bytes() -> i64 {
    LIVE_BYTES.with(Cell::get)
}

// ---------------------------------------------------------------------------------------------
// The flood: one failing host among many one-shot keys.

const HOST: u64 = u64::MAX;
const MAX_KEYS: u64 = 1000;
const FLOOD_PER_CALL: u64 = 20_000;

fn flood_registry(template: Builder) -> BreakerRegistry<u64> {
    // A mock clock that never moves: nothing goes idle, the test is about eviction alone.
    let (clock, _time) = Clock::mock();
    BreakerRegistry::new(template.clock(clock), MAX_KEYS, Duration::from_secs(600)).unwrap()
}

/// Five failing calls to the host, each followed by 20,000 distinct flood keys making one
/// successful call each: the host's breaker must open by its rule at the fifth call.
fn flood_through_the_registry(template: Builder) {
    let registry = flood_registry(template);
    let mut flood = 0..;
    for call in 1..=5 {
        let host = registry.get(HOST);
        assert_eq!(host.state(), State::Closed, "open after {} calls", call - 1);
        host.try_acquire()
            .expect("a closed breaker admits")
            .failure();
        for key in flood.by_ref().take(FLOOD_PER_CALL as usize) {
            registry.get(key).try_acquire().unwrap().success();
            if key % 1000 == 0 {
                assert!(registry.len() <= MAX_KEYS, "{} keys", registry.len());
            }
        }
        assert_eq!(registry.len(), MAX_KEYS);
        let kept = registry
            .peek(&HOST)
            .expect("the host's breaker was evicted");
        assert_eq!(kept.snapshot().failures, call);
    }
    let host = registry.get(HOST);
    assert_eq!(host.state(), State::Open);
    assert!(host.try_acquire().is_err());
}

#[test]
fn a_failing_host_opens_by_consecutive_failures_through_a_flood() {
    flood_through_the_registry(CircuitBreaker::builder("hosts").consecutive_failures(5));
}

#[test]
fn a_failing_host_opens_by_failure_rate_through_a_flood() {
    flood_through_the_registry(
        CircuitBreaker::builder("hosts")
            .failure_rate(0.5)
            .minimum_calls(5),
    );
}

#[tokio::test]
async fn a_failing_host_opens_through_a_flood_of_requests_to_the_layer() {
    let registry = flood_registry(CircuitBreaker::builder("hosts").consecutive_failures(5));
    let host_calls = Arc::new(AtomicUsize::new(0));
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::keyed(
            registry.clone(),
            |request: &(u64, &'static str)| request.0,
        ))
        .service(service_fn({
            let host_calls = host_calls.clone();
            move |(key, _): (u64, &'static str)| {
                let host_calls = host_calls.clone();
                async move {
                    if key == HOST {
                        host_calls.fetch_add(1, Ordering::Relaxed);
                        Err("connection refused")
                    } else {
                        Ok("ok")
                    }
                }
            }
        }));
    let mut flood = 0..;
    for _ in 0..5 {
        let error = service.clone().oneshot((HOST, "/")).await.unwrap_err();
        assert!(!error.is_rejected());
        for key in flood.by_ref().take(FLOOD_PER_CALL as usize) {
            service.clone().oneshot((key, "/")).await.unwrap();
        }
        assert!(registry.len() <= MAX_KEYS);
    }
    let error = service.clone().oneshot((HOST, "/")).await.unwrap_err();
    assert!(error.is_rejected(), "{error:?}");
    assert_eq!(host_calls.load(Ordering::Relaxed), 5);
}

// ---------------------------------------------------------------------------------------------
// The registry.

#[test]
fn the_registry_holds_exactly_max_keys_at_most() {
    for max_keys in [1, 3, 100, 1000] {
        let registry = BreakerRegistry::<u64>::new(
            CircuitBreaker::builder("bound"),
            max_keys,
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(registry.is_empty());
        for key in 0..max_keys * 50 {
            let _ = registry.get(key);
            assert!(registry.len() <= max_keys);
        }
        // Fifty keys for every slot fill every shard.
        assert_eq!(registry.len(), max_keys);
        assert!(!registry.is_empty());
    }
}

#[test]
fn the_bound_holds_under_concurrent_misses_removals_and_sweeps() {
    let registry = BreakerRegistry::<u32>::new(
        CircuitBreaker::builder("concurrent").consecutive_failures(2),
        500,
        Duration::from_secs(60),
    )
    .unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4u32 {
            let registry = &registry;
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(u64::from(thread));
                for _ in 0..50_000 {
                    let key = rng.u32(..5000);
                    if let Ok(permit) = registry.get(key).try_acquire() {
                        if key % 7 == 0 {
                            permit.failure();
                        } else {
                            permit.success();
                        }
                    }
                }
            });
        }
        let registry = &registry;
        scope.spawn(move || {
            for round in 0..2000u32 {
                registry.remove(&(round % 5000));
                registry.sweep();
                assert!(registry.len() <= 500);
                assert!(registry.snapshots().len() <= 500);
            }
        });
    });
    assert!(registry.len() <= 500);
}

#[test]
fn idle_keys_are_replaced_and_swept() {
    let (clock, time) = Clock::mock();
    let idle = Duration::from_secs(60);
    let registry = BreakerRegistry::<&'static str>::new(
        CircuitBreaker::builder("idle")
            .consecutive_failures(1)
            .open_duration(Duration::from_secs(3600))
            .clock(clock),
        100,
        idle,
    )
    .unwrap();
    registry.get("a").try_acquire().unwrap().failure();
    assert_eq!(registry.get("a").state(), State::Open);

    // Within `idle` of its last use, a key keeps its breaker.
    time.advance(idle - Duration::from_secs(1));
    let _ = registry.get("b");
    assert_eq!(registry.peek(&"a").unwrap().state(), State::Open);

    // Past it, the key is forgotten: peek finds nothing, and use makes a fresh breaker in place.
    time.advance(Duration::from_secs(4));
    assert!(registry.peek(&"a").is_none());
    assert_eq!(registry.len(), 2, "not removed before a sweep or a miss");
    let fresh = registry.get("a");
    assert_eq!(fresh.state(), State::Closed);
    assert_eq!(fresh.snapshot().failures, 0);
    assert_eq!(registry.len(), 2);

    // "b" has been idle since its one use; a sweep removes it and keeps "a".
    time.advance(idle - Duration::from_secs(2));
    registry.sweep();
    assert_eq!(registry.len(), 1);
    assert!(registry.peek(&"a").is_some());
    time.advance(idle + Duration::from_secs(3));
    registry.sweep();
    assert!(registry.is_empty());
}

#[test]
fn misses_remove_the_idle_keys_they_sample() {
    let (clock, time) = Clock::mock();
    let registry = BreakerRegistry::<u32>::new(
        CircuitBreaker::builder("shrink").clock(clock),
        1000,
        Duration::from_secs(10),
    )
    .unwrap();
    for key in 0..500 {
        let _ = registry.get(key);
    }
    time.advance(Duration::from_secs(15));
    for key in 1000..1500 {
        let _ = registry.get(key);
    }
    let old_left = registry.len() - 500;
    assert!(old_left < 100, "{old_left} idle keys left of 500");
}

#[test]
fn remove_forgets_a_key() {
    let registry = BreakerRegistry::<String>::new(
        CircuitBreaker::builder("remove").consecutive_failures(1),
        10,
        Duration::from_secs(60),
    )
    .unwrap();
    let breaker = registry.get("x".to_owned());
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), State::Open);
    registry.remove(&"x".to_owned());
    registry.remove(&"never there".to_owned());
    assert!(registry.peek(&"x".to_owned()).is_none());
    assert!(registry.is_empty());
    assert_eq!(registry.get("x".to_owned()).state(), State::Closed);
    // A breaker handed out before the removal lives on for its holder.
    assert_eq!(breaker.state(), State::Open);
}

#[test]
fn snapshots_pair_tuple_keys_with_breakers_named_after_the_template() {
    let registry = BreakerRegistry::<(String, u16)>::new(
        CircuitBreaker::builder("backend").consecutive_failures(1),
        10,
        Duration::from_secs(60),
    )
    .unwrap();
    let down = ("db.internal".to_owned(), 5432);
    let up = ("db.internal".to_owned(), 5433);
    registry.get(down.clone()).try_acquire().unwrap().failure();
    registry.get(up.clone()).try_acquire().unwrap().success();
    assert_eq!(registry.get(down.clone()).name(), "backend");

    let mut snapshots = registry.snapshots();
    snapshots.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(snapshots.len(), 2);
    assert_eq!(snapshots[0].0, down);
    assert_eq!(snapshots[0].1.state, State::Open);
    assert_eq!(snapshots[0].1.name, "backend");
    assert_eq!(snapshots[1].0, up);
    assert_eq!(snapshots[1].1.state, State::Closed);
    assert_eq!(snapshots[1].1.calls, 1);
    let debug = format!("{registry:?}");
    assert!(
        debug.contains("backend") && debug.contains("keys: 2"),
        "{debug}"
    );
}

// ---------------------------------------------------------------------------------------------
// The keyed layer.

type Request = http::Request<String>;

fn request(uri: &str) -> Request {
    http::Request::builder()
        .uri(uri)
        .body(String::new())
        .unwrap()
}

/// An inner service that fails every call, counting them.
fn failing(
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<Request, Response = (), Error = &'static str, Future: Send> + Clone {
    service_fn(move |_request: Request| {
        calls.fetch_add(1, Ordering::Relaxed);
        async { Err::<(), _>("refused") }
    })
}

#[tokio::test]
async fn an_option_extractor_lets_keyless_requests_through_no_breaker() {
    let registry = BreakerRegistry::<String>::new(
        CircuitBreaker::builder("hosts").consecutive_failures(1),
        100,
        Duration::from_secs(60),
    )
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    // The closure's argument type is inferred from `keyed`'s bound: no cast to a `fn` type.
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::keyed(
            registry.clone(),
            |request: &Request| request.uri().host().map(str::to_owned),
        ))
        .service(failing(calls.clone()));

    // No host, no key: every call reaches the service and nothing is recorded anywhere.
    for _ in 0..10 {
        let error = service
            .clone()
            .oneshot(request("/relative"))
            .await
            .unwrap_err();
        assert!(!error.is_rejected());
    }
    assert_eq!(calls.load(Ordering::Relaxed), 10);
    assert!(registry.is_empty());

    // With a host, the host's breaker opens at its first failure.
    let error = service
        .clone()
        .oneshot(request("http://a.example/"))
        .await
        .unwrap_err();
    assert!(!error.is_rejected());
    let error = service
        .clone()
        .oneshot(request("http://a.example/"))
        .await
        .unwrap_err();
    assert!(error.is_rejected());
    assert_eq!(calls.load(Ordering::Relaxed), 11);
    assert_eq!(registry.len(), 1);
    assert_eq!(
        registry.peek(&"a.example".to_owned()).unwrap().state(),
        State::Open
    );

    // Keyless requests still pass.
    let error = service
        .clone()
        .oneshot(request("/relative"))
        .await
        .unwrap_err();
    assert!(!error.is_rejected());
    assert_eq!(calls.load(Ordering::Relaxed), 12);
}

#[tokio::test]
async fn a_closure_extractor_returning_a_key_is_inferred() {
    let registry = BreakerRegistry::<(String, u16)>::new(
        CircuitBreaker::builder("hosts").consecutive_failures(2),
        100,
        Duration::from_secs(60),
    )
    .unwrap();
    let service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::keyed(
            registry.clone(),
            |request: &Request| {
                let uri = request.uri();
                let host = uri.host().unwrap_or_default().to_owned();
                (host, uri.port_u16().unwrap_or(80))
            },
        ))
        .service(service_fn(|request: Request| async move {
            match request.uri().port_u16() {
                Some(8080) => Err("down"),
                _ => Ok("ok"),
            }
        }));
    for _ in 0..2 {
        let error = service
            .clone()
            .oneshot(request("http://a.example:8080/"))
            .await
            .unwrap_err();
        assert!(!error.is_rejected());
    }
    let error = service
        .clone()
        .oneshot(request("http://a.example:8080/"))
        .await
        .unwrap_err();
    assert!(error.is_rejected());
    assert_eq!(
        service
            .clone()
            .oneshot(request("http://a.example/"))
            .await
            .unwrap(),
        "ok"
    );

    let mut snapshots = registry.snapshots();
    snapshots.sort_by(|a, b| a.0.cmp(&b.0));
    let states: Vec<_> = snapshots
        .into_iter()
        .map(|(key, snapshot)| (key, snapshot.state))
        .collect();
    assert_eq!(
        states,
        [
            (("a.example".to_owned(), 80), State::Closed),
            (("a.example".to_owned(), 8080), State::Open),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Costs.

/// Read system calls made by this thread so far.
#[cfg(target_os = "linux")]
fn read_syscalls() -> u64 {
    std::fs::read_to_string("/proc/thread-self/io")
        .expect("/proc/thread-self/io")
        .lines()
        .find_map(|line| line.strip_prefix("syscr:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("a syscr line")
}

/// `available_parallelism` reads cgroup files on Linux; asked per key, it would cost tens of
/// microseconds per new key. Counted in read system calls, not timed.
#[cfg(target_os = "linux")]
#[test]
fn making_keys_asks_the_os_nothing() {
    let before = read_syscalls();
    for _ in 0..10 {
        let _ = std::thread::available_parallelism();
    }
    let per_ask = (read_syscalls() - before) / 10;
    if per_ask == 0 {
        eprintln!("available_parallelism reads no file here: nothing to count");
        return;
    }

    let registry = BreakerRegistry::<u64>::new(
        CircuitBreaker::builder("cost"),
        200_000,
        Duration::from_secs(60),
    )
    .unwrap();
    let before = read_syscalls();
    for key in 0..100_000 {
        let _ = registry.get(key);
    }
    let reads = read_syscalls() - before;
    assert_eq!(registry.len(), 100_000);
    assert!(
        reads < 100,
        "{reads} read calls for 100,000 keys ({per_ask} per available_parallelism)"
    );
}

/// The memory a key costs: its breaker, with the default window (10 buckets, one stripe),
/// and its entry in the map. Measured with the counting allocator, on this thread only.
#[test]
fn memory_per_key() {
    const KEYS: u64 = 50_000;
    // The first breaker of the process starts the clock: not a key's cost.
    drop(CircuitBreaker::builder("warm-up").build().unwrap());
    let before = live_bytes();
    let breaker = CircuitBreaker::builder("tenant")
        .stripes(1)
        .build()
        .unwrap();
    let per_breaker = live_bytes() - before;
    drop(breaker);

    let before = live_bytes();
    let registry = BreakerRegistry::<u64>::new(
        CircuitBreaker::builder("tenant"),
        1_000_000,
        Duration::from_secs(60),
    )
    .unwrap();
    let empty = live_bytes() - before;
    for key in 0..KEYS {
        let _ = registry.get(key);
    }
    let per_key = (live_bytes() - before - empty) / KEYS as i64;
    eprintln!("one breaker: {per_breaker} B; empty registry: {empty} B; per u64 key: {per_key} B");
    assert!(
        per_breaker > 0 && per_key >= per_breaker,
        "{per_key} < {per_breaker}"
    );
    // The module docs state about 2 KB per key: update them if this moves.
    assert!(per_key < 2560, "{per_key} bytes per key");
    drop(registry);
    assert!(live_bytes() - before < 1024, "the registry leaks");
}
