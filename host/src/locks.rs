//! Stampede protection: one async mutex per FULL key (`prefix:namespace:key`),
//! shared by every handle and namespace of a store, so N concurrent misses
//! of one key run one L2 read and one factory. Entries are removed from the
//! table when the last holder or waiter goes away, on every path (success,
//! error, timeout, cancellation) because release is tied to `Drop`.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Mutex as AsyncMutex, Notify, OwnedMutexGuard};

/// A value the holder of a key's lock shares with the callers waiting for
/// it: the stale-within-grace entry it found (type-erased; a waiter reading
/// another type ignores it).
pub(crate) type SharedStale = Arc<dyn Any + Send + Sync>;

/// One key's mutex, and what its holder shares while holding it.
#[derive(Default)]
struct KeyLock {
    mutex: Arc<AsyncMutex<()>>,
    stale: Mutex<Option<SharedStale>>,
    shared: Notify,
}

impl KeyLock {
    fn stale(&self) -> Option<SharedStale> {
        self.stale.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn set_stale(&self, stale: Option<SharedStale>) {
        *self.stale.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = stale;
    }
}

type KeyMutex = Arc<KeyLock>;

/// How waiting for a lock ended.
pub(crate) enum Acquired {
    /// The lock is ours.
    Locked(LockGuard),
    /// The holder shared a stale entry before we got the lock.
    Stale(SharedStale),
    /// The wait timed out.
    TimedOut,
}

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
    interest: Interest,
}

impl LockGuard {
    /// Let the callers waiting for this lock (and those arriving while it
    /// is held) serve `stale` under their own soft timeout instead of
    /// waiting for the whole refresh.
    pub fn share_stale(&self, stale: SharedStale) {
        self.interest.mutex.set_stale(Some(stale));
        self.interest.mutex.shared.notify_waiters();
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // The refresh is over: what it shared is outdated.
        self.interest.mutex.set_stale(None);
    }
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
        let locking = interest.mutex.mutex.clone().lock_owned();
        let guard = match timeout {
            Some(timeout) => tokio::time::timeout(timeout, locking).await.ok()?,
            None => locking.await,
        };
        Some(LockGuard { _guard: guard, interest })
    }

    /// Like [`StampedeLocks::acquire`], but also ends when the holder
    /// shares a stale entry ([`LockGuard::share_stale`]), or has already.
    pub async fn acquire_or_stale(self: &Arc<Self>, key: &str, timeout: Option<Duration>) -> Acquired {
        let interest = self.interest(key);
        let state: &KeyLock = &interest.mutex;
        let locking = state.mutex.clone().lock_owned();
        tokio::pin!(locking);
        let waiting = async {
            loop {
                // Register before looking, so a share in between is not missed.
                let shared = state.shared.notified();
                tokio::pin!(shared);
                shared.as_mut().enable();
                if let Some(stale) = state.stale() {
                    return Err(stale);
                }
                tokio::select! {
                    biased;
                    guard = &mut locking => return Ok(guard),
                    _ = shared => {}
                }
            }
        };
        let outcome = match timeout {
            Some(timeout) => tokio::time::timeout(timeout, waiting).await.ok(),
            None => Some(waiting.await),
        };
        match outcome {
            Some(Ok(guard)) => Acquired::Locked(LockGuard { _guard: guard, interest }),
            Some(Err(stale)) => Acquired::Stale(stale),
            None => Acquired::TimedOut,
        }
    }

    /// The lock of `key` if it is free right now.
    pub fn try_acquire(self: &Arc<Self>, key: &str) -> Option<LockGuard> {
        let interest = self.interest(key);
        let guard = interest.mutex.mutex.clone().try_lock_owned().ok()?;
        Some(LockGuard { _guard: guard, interest })
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
    async fn waiters_see_what_the_holder_shares_until_it_releases() {
        let locks = Arc::new(StampedeLocks::default());
        let held = locks.acquire("k", None).await.unwrap();
        assert!(matches!(locks.acquire_or_stale("k", Some(Duration::from_millis(20))).await, Acquired::TimedOut));
        let waiter = tokio::spawn({
            let locks = locks.clone();
            async move { locks.acquire_or_stale("k", None).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        held.share_stale(Arc::new(7u32));
        match waiter.await.unwrap() {
            Acquired::Stale(stale) => assert_eq!(stale.downcast_ref::<u32>(), Some(&7)),
            _ => panic!("the waiter should have received the shared value"),
        }
        // A caller arriving later sees it at once.
        assert!(matches!(locks.acquire_or_stale("k", None).await, Acquired::Stale(_)));
        drop(held);
        // Released: nothing shared any more, the lock is free.
        assert!(matches!(locks.acquire_or_stale("k", None).await, Acquired::Locked(_)));
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
