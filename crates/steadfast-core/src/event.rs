/// Receives the events of a middleware: state transitions, rejections, slow calls.
///
/// A listener runs inline on the thread that caused the event, so it should be quick: count,
/// log, or hand the event to a channel. Closures are listeners:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use steadfast_core::Listener;
///
/// let seen = Arc::new(AtomicUsize::new(0));
/// let counter = {
///     let seen = seen.clone();
///     move |_event: &&str| {
///         seen.fetch_add(1, Ordering::Relaxed);
///     }
/// };
/// counter.on_event(&"opened");
/// assert_eq!(seen.load(Ordering::Relaxed), 1);
/// ```
pub trait Listener<E: ?Sized>: Send + Sync + 'static {
    /// Called once for each event.
    fn on_event(&self, event: &E);
}

impl<E: ?Sized, F> Listener<E> for F
where
    F: Fn(&E) + Send + Sync + 'static,
{
    fn on_event(&self, event: &E) {
        self(event)
    }
}
