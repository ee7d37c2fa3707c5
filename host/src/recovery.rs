//! Auto-recovery (FusionCache's name for it): L2 writes and invalidations
//! that failed — or that must wait behind one that failed — are kept, one
//! per key with the last operation winning, and replayed in order once L2
//! answers again, so a value deleted during an outage never comes back
//! from L2 afterwards. While an operation is pending, reads of its key
//! answer from the queue instead of the outdated L2 copy.
//!
//! The queue is in memory and bounded: past `auto_recovery_max_items` the
//! oldest operation is dropped with a warning and the
//! `bento_auto_recovery_dropped_total` metric. Replaying is the job of the
//! write pipeline (`write.rs`), which orders it with the key's other writes.

use crate::l2::L2Driver;
use crate::telemetry::{counter, gauge, Counter, Gauge};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What is waiting to reach L2.
#[derive(Clone)]
pub(crate) enum PendingOp {
    /// Store these bytes until `physical_expiration` (ms, `None` = forever);
    /// `notify` publishes the bus Set once the replay succeeded.
    Set { bytes: Vec<u8>, physical_expiration: Option<u64>, notify: bool },
    /// Remove the key.
    Delete,
    /// Logically expire the key at `at` (ms), keeping `grace`.
    Expire { at: u64, grace: Option<Duration> },
    /// Remove every key under the prefix.
    Clear,
}

/// What a pending operation is about: one full key, or a whole prefix.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) enum Target {
    Key(String),
    Prefix(String),
}

impl Target {
    fn covered_by_prefix(&self, prefix: &str) -> bool {
        let text = match self {
            Target::Key(key) => key,
            Target::Prefix(other) => other,
        };
        prefix.is_empty() || text == prefix || text.strip_prefix(prefix).is_some_and(|rest| rest.starts_with(':'))
    }
}

/// One queued operation, with the namespaced driver handle to replay it
/// on and the key relative to that handle.
#[derive(Clone)]
pub(crate) struct Pending {
    pub seq: u64,
    pub target: Target,
    pub driver: Arc<dyn L2Driver>,
    /// Key relative to `driver` (empty for a clear).
    pub key: String,
    /// The handle's full prefix (bus namespace).
    pub namespace: String,
    pub op: PendingOp,
}

/// What a read of one key must believe instead of L2.
pub(crate) enum PendingRead {
    /// L2 will hold these bytes.
    Value(Vec<u8>, Option<u64>),
    /// L2 will not hold the key.
    Gone,
    /// L2's entry is logically expired from `at`.
    ExpiredAt(u64),
}

#[derive(Default)]
struct Queue {
    order: BTreeMap<u64, Target>,
    items: HashMap<Target, Pending>,
    next_seq: u64,
}

/// The bounded queue of one store, shared by its namespaces.
pub(crate) struct AutoRecovery {
    queue: Mutex<Queue>,
    len: AtomicUsize,
    max_items: usize,
    store: Arc<str>,
    dropped: Counter,
    length: Gauge,
    /// Woken when something is queued (the replay task waits on it).
    pub queued: tokio::sync::Notify,
}

impl AutoRecovery {
    pub fn new(store: &str, max_items: usize) -> Self {
        AutoRecovery {
            queue: Mutex::default(),
            len: AtomicUsize::new(0),
            max_items,
            store: Arc::from(store),
            dropped: counter!("bento_auto_recovery_dropped_total", "store" => store.to_string()),
            length: gauge!("bento_auto_recovery_queue_length", "store" => store.to_string()),
            queued: tokio::sync::Notify::new(),
        }
    }

    /// Whether auto-recovery is on (a zero bound disables it).
    pub fn enabled(&self) -> bool {
        self.max_items > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of queued operations.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Queue `op`; it replaces what was queued for the same target, and a
    /// clear replaces everything queued under its prefix.
    pub fn push(&self, target: Target, driver: Arc<dyn L2Driver>, key: String, namespace: String, op: PendingOp) {
        if !self.enabled() {
            return;
        }
        let mut queue = self.lock();
        let superseded: Vec<Target> = match &target {
            Target::Key(_) => queue.items.contains_key(&target).then(|| target.clone()).into_iter().collect(),
            Target::Prefix(prefix) => {
                queue.items.keys().filter(|queued| queued.covered_by_prefix(prefix)).cloned().collect()
            }
        };
        for old in superseded {
            if let Some(item) = queue.items.remove(&old) {
                queue.order.remove(&item.seq);
            }
        }
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.order.insert(seq, target.clone());
        queue.items.insert(target.clone(), Pending { seq, target, driver, key, namespace, op });
        while queue.items.len() > self.max_items {
            let Some((_, oldest)) = queue.order.pop_first() else { break };
            queue.items.remove(&oldest);
            self.dropped.increment(1);
            tracing::warn!(store = %self.store, target = ?oldest, max_items = self.max_items,
                "auto-recovery queue full: the oldest pending L2 operation was dropped");
        }
        self.published(&queue);
        drop(queue);
        self.queued.notify_one();
    }

    fn published(&self, queue: &Queue) {
        self.len.store(queue.items.len(), Ordering::Release);
        self.length.set(queue.items.len() as f64);
    }

    /// True when an operation on `full_key` (or a clear above it) waits:
    /// a new write of that key must queue behind it to keep the order.
    pub fn blocks(&self, full_key: &str) -> bool {
        self.len() > 0 && self.pending_for(full_key).is_some()
    }

    /// What a read of `full_key` must believe instead of L2, if anything
    /// is pending for it.
    pub fn read(&self, full_key: &str) -> Option<PendingRead> {
        if self.len() == 0 {
            return None;
        }
        Some(match self.pending_for(full_key)? {
            PendingOp::Set { bytes, physical_expiration, .. } => PendingRead::Value(bytes, physical_expiration),
            PendingOp::Delete | PendingOp::Clear => PendingRead::Gone,
            PendingOp::Expire { at, .. } => PendingRead::ExpiredAt(at),
        })
    }

    /// The latest operation that applies to `full_key`.
    fn pending_for(&self, full_key: &str) -> Option<PendingOp> {
        let queue = self.lock();
        let key = Target::Key(full_key.to_string());
        let mut latest: Option<&Pending> = queue.items.get(&key);
        for (target, item) in &queue.items {
            if let Target::Prefix(prefix) = target {
                if key.covered_by_prefix(prefix) && latest.is_none_or(|found| item.seq > found.seq) {
                    latest = Some(item);
                }
            }
        }
        latest.map(|item| item.op.clone())
    }

    /// The oldest queued operation.
    pub fn front(&self) -> Option<Pending> {
        let queue = self.lock();
        let (_, target) = queue.order.first_key_value()?;
        queue.items.get(target).cloned()
    }

    /// Remove `item` once replayed, unless a newer operation replaced it.
    pub fn complete(&self, item: &Pending) {
        let mut queue = self.lock();
        if queue.items.get(&item.target).is_some_and(|queued| queued.seq == item.seq) {
            queue.items.remove(&item.target);
            queue.order.remove(&item.seq);
        }
        self.published(&queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l2::tests::NullDriver;

    fn recovery(max: usize) -> AutoRecovery {
        AutoRecovery::new("test", max)
    }

    fn push(queue: &AutoRecovery, target: Target, op: PendingOp) {
        queue.push(target, Arc::new(NullDriver), String::new(), String::new(), op);
    }

    fn key(k: &str) -> Target {
        Target::Key(k.to_string())
    }

    fn set(byte: u8) -> PendingOp {
        PendingOp::Set { bytes: vec![byte], physical_expiration: None, notify: true }
    }

    #[test]
    fn the_last_operation_per_key_wins_and_keeps_its_place_at_the_end() {
        let queue = recovery(10);
        push(&queue, key("p:a"), set(1));
        push(&queue, key("p:b"), PendingOp::Delete);
        push(&queue, key("p:a"), PendingOp::Delete);
        assert_eq!(queue.len(), 2);
        assert!(matches!(queue.read("p:a"), Some(PendingRead::Gone)));
        let first = queue.front().unwrap();
        assert_eq!(first.target, key("p:b"));
        queue.complete(&first);
        push(&queue, key("p:a"), set(2));
        assert!(matches!(queue.read("p:a"), Some(PendingRead::Value(bytes, None)) if bytes == [2]));
    }

    #[test]
    fn a_clear_supersedes_what_it_covers_and_hides_older_values() {
        let queue = recovery(10);
        push(&queue, key("p:ns:a"), set(1));
        push(&queue, key("pother:a"), set(1));
        push(&queue, Target::Prefix("p".into()), PendingOp::Clear);
        assert_eq!(queue.len(), 2);
        assert!(matches!(queue.read("p:ns:a"), Some(PendingRead::Gone)));
        assert!(matches!(queue.read("pother:a"), Some(PendingRead::Value(..))));
        push(&queue, key("p:ns:a"), set(3));
        assert!(matches!(queue.read("p:ns:a"), Some(PendingRead::Value(bytes, _)) if bytes == [3]));
        assert!(queue.blocks("p:zzz"));
        assert!(!queue.blocks("q:zzz"));
    }

    #[test]
    fn the_oldest_is_dropped_past_the_bound_and_replaced_items_are_not_completed() {
        let queue = recovery(2);
        push(&queue, key("a"), set(1));
        push(&queue, key("b"), set(1));
        push(&queue, key("c"), set(1));
        assert_eq!(queue.len(), 2);
        assert!(queue.read("a").is_none());
        let b = queue.front().unwrap();
        push(&queue, key("b"), set(9));
        queue.complete(&b);
        assert!(matches!(queue.read("b"), Some(PendingRead::Value(bytes, _)) if bytes == [9]));
        let disabled = recovery(0);
        push(&disabled, key("a"), set(1));
        assert_eq!(disabled.len(), 0);
    }
}
