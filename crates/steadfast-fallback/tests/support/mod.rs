//! Helpers shared by the fallback crate's integration tests: call counters, a fallback that
//! records what it was called with, a service that is never ready, a breaker forced open.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use steadfast_breaker::CircuitBreaker;
use steadfast_fallback::{FallbackRequest, Reason};
use tower::Service;

/// Fails to compile unless `T` can be shared and cloned across tasks.
pub fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>(_: &T) {}

/// Fails to compile unless `T` can move across threads.
pub fn assert_send<T: Send>(_: &T) {}

/// A shared count of calls.
#[derive(Clone, Debug, Default)]
pub struct Calls(Arc<AtomicUsize>);

impl Calls {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one call.
    pub fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// The calls so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A fallback that records every request it gets, and answers what it is told to.
#[derive(Debug)]
pub struct Recorder<K> {
    seen: Arc<Mutex<Vec<FallbackRequest<K>>>>,
}

impl<K> Clone for Recorder<K> {
    fn clone(&self) -> Self {
        Self {
            seen: self.seen.clone(),
        }
    }
}

impl<K: Send + 'static> Recorder<K> {
    pub fn new() -> Self {
        Self {
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A fallback answering `answer(&request)`, after recording the request.
    pub fn answer_with<R, A>(
        &self,
        answer: A,
    ) -> impl Fn(FallbackRequest<K>) -> Ready<Result<R, Infallible>> + Clone + Send + Sync + 'static
    where
        A: Fn(&FallbackRequest<K>) -> R + Clone + Send + Sync + 'static,
    {
        let seen = self.seen.clone();
        move |request: FallbackRequest<K>| {
            let response = answer(&request);
            seen.lock().unwrap().push(request);
            ready(Ok(response))
        }
    }

    /// A fallback answering a clone of `answer`.
    pub fn answer<R>(
        &self,
        answer: R,
    ) -> impl Fn(FallbackRequest<K>) -> Ready<Result<R, Infallible>> + Clone + Send + Sync + 'static
    where
        R: Clone + Send + Sync + 'static,
    {
        self.answer_with(move |_| answer.clone())
    }

    /// A fallback that fails with `message`, after recording the request.
    pub fn fail<R>(
        &self,
        message: &'static str,
    ) -> impl Fn(FallbackRequest<K>) -> Ready<Result<R, std::io::Error>> + Clone + Send + Sync + 'static
    {
        let seen = self.seen.clone();
        move |request: FallbackRequest<K>| {
            seen.lock().unwrap().push(request);
            ready(Err(std::io::Error::other(message)))
        }
    }

    /// How many times the fallback ran.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The reasons it ran for, in order.
    pub fn reasons(&self) -> Vec<Reason> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|request| request.reason)
            .collect()
    }

    /// The requests it got, taken out.
    pub fn take(&self) -> Vec<FallbackRequest<K>> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// A service that is never ready: under `tower::load_shed` every call is shed. It counts the
/// calls that reach it anyway (there must be none).
#[derive(Clone, Debug, Default)]
pub struct NeverReady {
    pub calls: Calls,
}

impl<Req> Service<Req> for NeverReady {
    type Response = String;
    type Error = std::io::Error;
    type Future = Ready<Result<String, std::io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Pending
    }

    fn call(&mut self, _request: Req) -> Self::Future {
        self.calls.hit();
        ready(Ok("called while not ready".to_owned()))
    }
}

/// A real breaker, forced open: it refuses every call.
pub fn forced_open(name: &str) -> CircuitBreaker {
    let breaker = CircuitBreaker::builder(name).build().unwrap();
    breaker.force_open();
    breaker
}
