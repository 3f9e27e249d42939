//! Per-thread stripes, for counters that many cores write at once.
//!
//! A counter written by every core on one cache line costs more than the work it counts, so
//! hot counters are split into cache-padded stripes and each thread writes its own. Readers sum
//! the stripes.
//!
//! ```
//! use steadfast_core::stripe::{default_stripes, thread_stripe};
//!
//! let stripes = default_stripes();
//! assert!(stripes.is_power_of_two() && stripes <= 32);
//! // A thread keeps its index.
//! assert_eq!(thread_stripe(), thread_stripe());
//! ```

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The stripe index of the calling thread: each thread takes the next index once, so threads
/// spread over the stripes evenly instead of by a hash that might collide. Mask it with the
/// number of stripes less one.
#[inline]
#[must_use]
pub fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|stripe| {
        let mut index = stripe.get();
        if index == usize::MAX {
            index = NEXT.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1);
            stripe.set(index);
        }
        index
    })
}

/// The default number of stripes: the machine's parallelism as a power of two, at most 32.
///
/// Asked of the OS once per process: `available_parallelism` reads cgroup files (tens of
/// microseconds), which keyed registries would otherwise pay for every key they create.
#[must_use]
pub fn default_stripes() -> usize {
    static STRIPES: OnceLock<usize> = OnceLock::new();
    *STRIPES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .next_power_of_two()
            .min(32)
    })
}
