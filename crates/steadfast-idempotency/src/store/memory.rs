//! The in-memory store: moka, bounded, each record expiring on its own schedule.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use moka::sync::Cache;
use moka::Expiry;

use super::{Claim, Store, StoreError, StoreKey};
use crate::record::{Completed, Record, Token};
use crate::Fingerprint;

/// Records in this process's memory: the default, no server needed. Bounded in entries; each
/// record expires after its own lease or retention.
///
/// One process only: instances behind a load balancer each have their own, so a retry that
/// reaches another instance runs again. Use the Redis store to charge once across instances.
/// At its bound the least recently used records are evicted (LRU: moka's default admission
/// policy would refuse new claims silently), and a key whose record was evicted runs again:
/// size `max_records` for the traffic of a retention period. Memory is bounded by
/// `max_records` times the layer's `max_response_body`.
///
/// ```
/// use std::time::Duration;
/// use steadfast_idempotency::store::{Claim, MemoryStore, Store, StoreKey};
/// use steadfast_idempotency::{Fingerprint, IdempotencyKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new(10_000);
/// let key = StoreKey::new("alice", &IdempotencyKey::try_from("order-1").unwrap());
/// let print = Fingerprint::of(b"POST /orders {..}");
/// let Claim::Acquired(_token) = store.claim(&key, print, Duration::from_secs(30)).await.unwrap() else {
///     panic!("a new key is free")
/// };
/// assert_eq!(
///     store.claim(&key, print, Duration::from_secs(30)).await.unwrap(),
///     Claim::InFlight(print)
/// );
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    records: Cache<StoreKey, Entry>,
}

#[derive(Clone)]
struct Entry {
    record: Arc<Record>,
    ttl: Duration,
    /// When an in-progress record's lease ends, on tokio's clock (so paused-time tests see
    /// leases end exactly); moka's own expiry, on the real clock, only reclaims the memory.
    lease_until: Option<tokio::time::Instant>,
}

impl Entry {
    /// The record, unless it is a claim whose lease has run out.
    fn live(&self) -> Option<&Record> {
        match self.lease_until {
            Some(until) if until <= tokio::time::Instant::now() => None,
            _ => Some(&self.record),
        }
    }
}

struct PerEntry;

impl Expiry<StoreKey, Entry> for PerEntry {
    fn expire_after_create(&self, _: &StoreKey, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &StoreKey,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("records", &self.records.entry_count())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl MemoryStore {
    /// A store holding at most `max_records` records.
    #[must_use]
    pub fn new(max_records: u64) -> Self {
        Self {
            records: Cache::builder()
                .max_capacity(max_records)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .expire_after(PerEntry)
                .build(),
        }
    }

    fn claim_now(&self, key: &StoreKey, fingerprint: Fingerprint, lease: Duration) -> Claim {
        // A replay is a read: answer it without the entry computation a claim needs.
        if let Some(entry) = self.records.get(key) {
            if let Some(Record::Completed(completed)) = entry.live() {
                return Claim::Completed(completed.clone());
            }
        }
        let mut claim = None;
        self.records.entry_by_ref(key).and_compute_with(|existing| {
            match existing.as_ref().and_then(|entry| entry.value().live()) {
                Some(record) => {
                    claim = Some(match record {
                        Record::InProgress { fingerprint, .. } => Claim::InFlight(*fingerprint),
                        Record::Completed(completed) => Claim::Completed(completed.clone()),
                    });
                    Op::Nop
                }
                None => {
                    let token = Token::fresh();
                    claim = Some(Claim::Acquired(token));
                    Op::Put(Entry {
                        record: Arc::new(Record::InProgress { token, fingerprint }),
                        ttl: lease,
                        // A lease too long to represent never ends.
                        lease_until: tokio::time::Instant::now().checked_add(lease),
                    })
                }
            }
        });
        claim.unwrap_or(Claim::InFlight(fingerprint))
    }

    fn finish(&self, key: &StoreKey, token: Token, replacement: Option<Entry>) -> bool {
        let mut written = false;
        self.records.entry_by_ref(key).and_compute_with(|existing| {
            let ours = match existing.as_ref().and_then(|entry| entry.value().live()) {
                Some(Record::InProgress { token: held, .. }) => *held == token,
                // A lease that ran out with no claim since: completing is safe; releasing
                // has nothing to release.
                None => replacement.is_some(),
                Some(Record::Completed(_)) => false,
            };
            if !ours {
                return Op::Nop;
            }
            written = true;
            match &replacement {
                Some(entry) => Op::Put(entry.clone()),
                None => Op::Remove,
            }
        });
        written
    }
}

impl Store for MemoryStore {
    async fn claim(
        &self,
        key: &StoreKey,
        fingerprint: Fingerprint,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        Ok(self.claim_now(key, fingerprint, lease))
    }

    async fn complete(
        &self,
        key: &StoreKey,
        token: Token,
        completed: &Completed,
        retention: Duration,
    ) -> Result<bool, StoreError> {
        let entry = Entry {
            record: Arc::new(Record::Completed(completed.clone())),
            ttl: retention,
            lease_until: None,
        };
        Ok(self.finish(key, token, Some(entry)))
    }

    async fn release(&self, key: &StoreKey, token: Token) -> Result<bool, StoreError> {
        Ok(self.finish(key, token, None))
    }

    async fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        Ok(self
            .records
            .get(key)
            .and_then(|entry| entry.live().cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IdempotencyKey;

    #[tokio::test]
    async fn at_its_bound_the_newest_claims_stay() {
        // moka's default admission would drop a new, unused key at once when full; with LRU
        // the least recently used go, and a claim just made always holds.
        let store = MemoryStore::new(16);
        let print = Fingerprint::of(b"request");
        for round in 0..200 {
            let key = StoreKey::new(
                "s",
                &IdempotencyKey::try_from(format!("k{round}").as_str()).unwrap(),
            );
            let claim = store
                .claim(&key, print, Duration::from_secs(60))
                .await
                .unwrap();
            assert!(matches!(claim, Claim::Acquired(_)), "round {round}");
            store.records.run_pending_tasks();
            assert_eq!(
                store
                    .claim(&key, print, Duration::from_secs(60))
                    .await
                    .unwrap(),
                Claim::InFlight(print),
                "round {round}: the claim just made was dropped"
            );
        }
        assert!(store.records.entry_count() <= 16);
    }
}
