//! Handles that scale: the default layer's way of keeping a breaker alive per call.
//!
//! A response future must own a reference to its breaker, since it may outlive the service
//! that made it. With one `Arc`, every call writes the same reference count twice (clone and
//! drop), and on two cores that one cache line bouncing between them costs more than the rest
//! of the call. So a layer makes one *stub* per stripe (per core): a cache-padded `Arc` of its
//! own, each holding the breaker. A call clones the stub of the core it runs on; a service
//! cloned per request (as axum does) takes its core's stub too. Threads on different cores
//! never write the same count.
//!
//! Who keeps the stubs alive: the layer, and every service the layer made directly, hold all
//! of them (the `Family`); a clone of a service holds just its stub. A stub knows its
//! siblings only weakly (a strong link back would be a cycle that is never freed). Should
//! every holder of the family be gone, clones fall back to the stub they hold: still correct,
//! only no longer spread over cores.

use std::borrow::Borrow;
use std::fmt;
use std::sync::{Arc, OnceLock, Weak};

use crossbeam_utils::CachePadded;

use crate::future::Admission;
use crate::service::{BreakerProvider, MakeProvider};
use crate::window::thread_stripe;
use crate::{CircuitBreaker, Rejected};

/// The default layer's provider: a breaker with one handle per core. Made by
/// [`CircuitBreaker::layer`]; cheap to clone.
#[derive(Clone)]
pub struct Striped {
    family: Arc<Family>,
}

struct Family {
    stubs: Box<[Arc<Stub>]>,
}

type Stub = CachePadded<StubData>;

struct StubData {
    breaker: CircuitBreaker,
    index: usize,
    siblings: Arc<Siblings>,
}

struct Siblings {
    slots: Box<[OnceLock<Weak<Stub>>]>,
}

impl Striped {
    /// One stub per counter stripe of `breaker` (a power of two).
    pub(crate) fn new(breaker: CircuitBreaker) -> Self {
        let stripes = breaker.inner.stripes.max(1);
        let siblings = Arc::new(Siblings {
            slots: (0..stripes).map(|_| OnceLock::new()).collect(),
        });
        let stubs: Box<[Arc<Stub>]> = (0..stripes)
            .map(|index| {
                Arc::new(CachePadded::new(StubData {
                    breaker: breaker.clone(),
                    index,
                    siblings: siblings.clone(),
                }))
            })
            .collect();
        for (slot, stub) in siblings.slots.iter().zip(stubs.iter()) {
            let _ = slot.set(Arc::downgrade(stub));
        }
        Self {
            family: Arc::new(Family { stubs }),
        }
    }

    /// The breaker.
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.family.stubs[0].breaker
    }
}

impl MakeProvider for Striped {
    type Provider = StripedProvider;

    fn make_provider(&self) -> StripedProvider {
        let stubs = &self.family.stubs;
        StripedProvider {
            stub: stubs[thread_stripe() & (stubs.len() - 1)].clone(),
            family: Some(self.family.clone()),
        }
    }
}

impl fmt::Debug for Striped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Striped")
            .field("breaker", self.breaker())
            .field("stripes", &self.family.stubs.len())
            .finish()
    }
}

/// What a service of the default layer holds: the stub of the core it was made or cloned on.
pub struct StripedProvider {
    stub: Arc<Stub>,
    /// Set on services a layer made; clones leave it out, so that cloning a service per
    /// request writes only its own core's count.
    family: Option<Arc<Family>>,
}

impl StripedProvider {
    /// The breaker.
    #[must_use]
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.stub.breaker
    }

    /// A counted handle on the stub of the calling core.
    #[inline(always)]
    fn lease(&self) -> Lease {
        let data: &StubData = &self.stub;
        let slots = &data.siblings.slots;
        let index = thread_stripe() & (slots.len() - 1);
        if index == data.index {
            return Lease(self.stub.clone());
        }
        self.lease_sibling(index)
    }

    #[inline(never)]
    fn lease_sibling(&self, index: usize) -> Lease {
        match self.stub.siblings.slots[index]
            .get()
            .and_then(Weak::upgrade)
        {
            Some(stub) => Lease(stub),
            None => Lease(self.stub.clone()),
        }
    }
}

impl Clone for StripedProvider {
    #[inline]
    fn clone(&self) -> Self {
        Self {
            stub: self.lease().0,
            family: None,
        }
    }
}

impl<Req> BreakerProvider<Req> for StripedProvider {
    type Handle = Lease;

    #[inline(always)]
    fn admit(&self, _request: &Req) -> Result<Admission<Lease>, Rejected> {
        // The stub is counted only once the call is admitted: refusals touch no count.
        Admission::borrowed(&self.stub.breaker, |_| self.lease())
    }
}

impl fmt::Debug for StripedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripedProvider")
            .field("breaker", self.breaker())
            .field("stripe", &self.stub.index)
            .field("keeps_family", &self.family.is_some())
            .finish()
    }
}

/// A call's counted handle on its breaker, through the stub of the core it started on.
pub struct Lease(Arc<Stub>);

impl Borrow<CircuitBreaker> for Lease {
    #[inline(always)]
    fn borrow(&self) -> &CircuitBreaker {
        &self.0.breaker
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Lease").field(&self.0.breaker).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_spread_and_free() {
        let breaker = CircuitBreaker::builder("striped")
            .stripes(4)
            .build()
            .unwrap();
        let weak = Arc::downgrade(&breaker.inner);
        let striped = Striped::new(breaker.clone());
        assert_eq!(striped.family.stubs.len(), 4);
        let provider = striped.make_provider();
        let clones: Vec<_> = std::thread::scope(|scope| {
            (0..4)
                .map(|_| scope.spawn(|| provider.clone()))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect()
        });
        // New threads take new stripes (other tests' threads may take some in between).
        let mut used: Vec<_> = clones.iter().map(|clone| clone.stub.index).collect();
        used.sort_unstable();
        used.dedup();
        assert!(used.len() >= 2, "{used:?}");
        drop((striped, provider, clones, breaker));
        assert!(weak.upgrade().is_none(), "the breaker was not freed");
    }
}
