//! Helpers shared by the Steadfast benchmarks (`cargo bench -p steadfast-benches`); see
//! `BENCHMARKS.md` for what each measures and how to run it.

use std::future::Future;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Polls a future that must complete at once, with a no-op waker.
///
/// # Panics
///
/// If the future is pending: every benchmarked future completes in one poll.
#[inline(always)]
pub fn poll_once<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("benchmarked futures complete in one poll"),
    }
}

/// One call the way Tower wants it: `poll_ready`, `call`, then polls the response future once,
/// with a no-op waker.
///
/// # Errors
///
/// The service's own error, from `poll_ready` or the call.
///
/// # Panics
///
/// If the service is not ready or its future is pending: every benchmarked service is always
/// ready and answers with a future that completes in one poll.
#[inline(always)]
pub fn call_once<S: tower_service::Service<R>, R>(
    service: &mut S,
    request: R,
) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(error)) => return Err(error),
        Poll::Pending => panic!("benchmarked services are always ready"),
    }
    poll_once(service.call(request))
}

/// Runs `make()`'s work `iters` times on each of `threads` threads started together; each
/// thread calls `make()` itself, so that what it clones is cloned on that thread (as a
/// server's worker thread clones a service per connection or request).
///
/// Returns the wall-clock time from the first start to the last finish divided by `threads`,
/// so that criterion's per-iteration estimate is the wall-clock time per call over all
/// threads: the inverse of the throughput.
///
/// # Panics
///
/// If a worker panics, or `threads` is 0.
pub fn parallel<W: FnMut()>(threads: u32, iters: u64, make: impl Fn() -> W + Sync) -> Duration {
    let barrier = Barrier::new(threads as usize);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (make, barrier) = (&make, &barrier);
                scope.spawn(move || {
                    let mut work = make();
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        work();
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("worker panicked"))
            .collect()
    });
    let first = spans.iter().map(|span| span.0).min().expect("threads > 0");
    let last = spans.iter().map(|span| span.1).max().expect("threads > 0");
    (last - first) / threads
}
