//! Stampede protection: one async mutex per FULL key (`prefix:namespace:key`),
//! shared by every handle and namespace of a store, so N concurrent misses
//! of one key run one L2 read and one factory. Entries are removed from the
//! table when the last holder or waiter goes away, on every path (success,
//! error, timeout, cancellation) because release is tied to `Drop`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type KeyMutex = Arc<AsyncMutex<()>>;

/// The per-key lock table of one store.
#[derive(Default)]
pub(crate) struct StampedeLocks {
    table: Mutex<HashMap<String, KeyMutex>>,
}

/// Interest in one key's mutex; dropping it removes the table entry when
/// nobody else holds or waits for it.
struct Interest {
    locks: Arc<StampedeLocks>,
    key: String,
    mutex: KeyMutex,
}

impl Drop for Interest {
    fn drop(&mut self) {
        let mut table = self.locks.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The table and this interest hold the only references: nobody waits.
        if Arc::strong_count(&self.mutex) == 2 {
            table.remove(&self.key);
        }
    }
}

/// A held per-key lock; released on drop.
pub(crate) struct LockGuard {
    // Field order matters: the mutex is unlocked before the interest is
    // dropped, so the table cleanup sees the true reference count.
    _guard: OwnedMutexGuard<()>,
    _interest: Interest,
}

impl StampedeLocks {
    fn interest(self: &Arc<Self>, key: &str) -> Interest {
        let mut table = self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mutex = table.entry(key.to_string()).or_default().clone();
        Interest { locks: self.clone(), key: key.to_string(), mutex }
    }

    /// Wait for the lock of `key`, at most `timeout`; `None` on timeout.
    pub async fn acquire(self: &Arc<Self>, key: &str, timeout: Option<Duration>) -> Option<LockGuard> {
        let interest = self.interest(key);
        let locking = interest.mutex.clone().lock_owned();
        let guard = match timeout {
            Some(timeout) => tokio::time::timeout(timeout, locking).await.ok()?,
            None => locking.await,
        };
        Some(LockGuard { _guard: guard, _interest: interest })
    }

    /// The lock of `key` if it is free right now.
    pub fn try_acquire(self: &Arc<Self>, key: &str) -> Option<LockGuard> {
        let interest = self.interest(key);
        let guard = interest.mutex.clone().try_lock_owned().ok()?;
        Some(LockGuard { _guard: guard, _interest: interest })
    }

    /// Keys with a holder or waiter (for tests of lock hygiene).
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lock_is_exclusive_and_table_is_cleaned() {
        let locks = Arc::new(StampedeLocks::default());
        let first = locks.acquire("k", None).await.unwrap();
        assert!(locks.try_acquire("k").is_none());
        assert!(locks.acquire("k", Some(Duration::from_millis(20))).await.is_none());
        assert!(locks.try_acquire("other").is_some());
        drop(first);
        assert_eq!(locks.len(), 0);
        let again = locks.try_acquire("k");
        assert!(again.is_some());
        drop(again);
        assert_eq!(locks.len(), 0);
    }

    #[tokio::test]
    async fn cancelled_waiter_does_not_leak() {
        let locks = Arc::new(StampedeLocks::default());
        let held = locks.acquire("k", None).await.unwrap();
        let waiter = locks.acquire("k", None);
        let _ = tokio::time::timeout(Duration::from_millis(10), waiter).await;
        drop(held);
        assert_eq!(locks.len(), 0);
    }
}
