//! Per-key write ordering between the tiers (SPEC §5: two concurrent
//! writers of one key never leave L1 ≠ L2).
//!
//! * Writers of a full key (sets, invalidations, auto-recovery replays)
//!   hold the key's [`KeyOrder::lock`] across their L1 and L2 effects, so
//!   both tiers see the writes of one key in the same order.
//! * A read that copies an L2 hit into L1 (write-back) takes a
//!   [`Snapshot`] of the key's generation before reading L2, and copies
//!   only if nothing changed the key meanwhile: no local write, no bus
//!   message from another instance, no clear. Otherwise the value it read
//!   may already be outdated, and L1 is left alone.
//!
//! Generations are striped (a counter per hash bucket, plus one epoch for
//! clears): a write to another key of the same bucket only makes a
//! write-back skip, which costs a later L2 read, never a wrong value.

use crate::locks::{LockGuard, StampedeLocks};
use smallvec::SmallVec;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const STRIPES: usize = 1024;

/// The write-order state of one store.
pub(crate) struct KeyOrder {
    locks: Arc<StampedeLocks>,
    stripes: Box<[AtomicU64]>,
    epoch: AtomicU64,
    /// Every change of any key of the store (see [`KeyOrder::writes`]).
    writes: AtomicU64,
    hasher: std::collections::hash_map::RandomState,
}

/// The write-order locks a writer holds (released on drop).
pub(crate) type Guards = SmallVec<[LockGuard; 1]>;

/// A key's generation at some point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot {
    stripe: usize,
    generation: u64,
    epoch: u64,
}

impl Default for KeyOrder {
    fn default() -> Self {
        KeyOrder {
            locks: Arc::default(),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl KeyOrder {
    fn stripe(&self, full_key: &str) -> usize {
        (self.hasher.hash_one(full_key) as usize) % STRIPES
    }

    /// Hold the write order of `full_key` (released on drop).
    pub async fn lock(&self, full_key: &str) -> LockGuard {
        self.locks.acquire(full_key, None).await.expect("an unbounded lock wait always ends with the lock")
    }

    /// Hold the write order of several keys, in a fixed order so two
    /// batch writers cannot deadlock. One key (most writes) allocates
    /// nothing beyond its lock.
    pub async fn lock_all(&self, full_keys: &[String]) -> Guards {
        let mut sorted: SmallVec<[&String; 4]> = full_keys.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut guards = Guards::with_capacity(sorted.len());
        for key in sorted {
            guards.push(self.lock(key).await);
        }
        guards
    }

    /// The key's generation now.
    pub fn snapshot(&self, full_key: &str) -> Snapshot {
        let stripe = self.stripe(full_key);
        Snapshot {
            stripe,
            generation: self.stripes[stripe].load(Ordering::SeqCst),
            epoch: self.epoch.load(Ordering::SeqCst),
        }
    }

    /// True when nothing changed the key since `snapshot`.
    pub fn unchanged(&self, snapshot: &Snapshot) -> bool {
        self.stripes[snapshot.stripe].load(Ordering::SeqCst) == snapshot.generation
            && self.epoch.load(Ordering::SeqCst) == snapshot.epoch
    }

    /// Record that `full_key` changed (once its L1 and L2 effects are done).
    pub fn changed(&self, full_key: &str) {
        self.stripes[self.stripe(full_key)].fetch_add(1, Ordering::SeqCst);
        self.writes.fetch_add(1, Ordering::SeqCst);
    }

    /// Record that a whole namespace changed (a clear).
    pub fn changed_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.writes.fetch_add(1, Ordering::SeqCst);
    }

    /// How many changes the store has seen: read before looking a key up
    /// in L1, it tells later whether what L1 showed may have changed since
    /// (one load, no hashing — cheap enough for the hit path).
    #[inline]
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Keys with a writer holding or awaiting their order (tests).
    pub fn pending(&self) -> usize {
        self.locks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_or_a_clear_invalidates_a_snapshot() {
        let order = KeyOrder::default();
        let snapshot = order.snapshot("p:a");
        assert!(order.unchanged(&snapshot));
        order.changed("p:a");
        assert!(!order.unchanged(&snapshot));
        let snapshot = order.snapshot("p:a");
        order.changed_all();
        assert!(!order.unchanged(&snapshot));
    }

    #[tokio::test]
    async fn batch_locks_are_taken_once_per_key() {
        let order = KeyOrder::default();
        let guards = order.lock_all(&["b".into(), "a".into(), "b".into()]).await;
        assert_eq!(guards.len(), 2);
        assert_eq!(order.pending(), 2);
        drop(guards);
        assert_eq!(order.pending(), 0);
    }
}
