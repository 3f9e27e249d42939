//! Helpers shared by the integration tests that run the breaker behind real servers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use steadfast::breaker::CircuitBreaker;
use steadfast::core::{Clock, MockClock};

/// How long the test breakers stay open: long enough that nothing but the mock clock moves
/// them on.
pub(crate) const OPEN_FOR: Duration = Duration::from_secs(30);

/// Fails to compile unless `T` can be shared by a multi-threaded server.
pub(crate) fn assert_send_sync_clone<T: Clone + Send + Sync + 'static>() {}

/// A breaker on a mock clock that opens after `failures` failures in a row, stays open
/// [`OPEN_FOR`], and closes after `probes` successful probes.
pub(crate) fn mock_breaker(name: &str, failures: u32, probes: u32) -> (CircuitBreaker, MockClock) {
    let (clock, time) = Clock::mock();
    let breaker = CircuitBreaker::builder(name)
        .consecutive_failures(failures)
        .open_duration(OPEN_FOR)
        .half_open_probes(probes)
        .clock(clock)
        .build()
        .expect("a valid breaker config");
    (breaker, time)
}

/// A shared call counter.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// Counts one call.
    pub(crate) fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// Calls counted so far.
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}
