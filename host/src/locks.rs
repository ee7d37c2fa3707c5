//! Stampede protection: one async mutex per FULL key (`prefix:namespace:key`),
//! shared by every handle and namespace of a store, so N concurrent misses
//! of one key run one L2 read and one factory. Entries are removed from the
//! table when the last holder or waiter goes away, on every path (success,
//! error, timeout, cancellation) because release is tied to `Drop`.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

/// A value the holder of a key's lock shares with the callers waiting for
/// it: the stale-within-grace entry it found (type-erased; a waiter reading
/// another type ignores it).
pub(crate) type SharedStale = Arc<dyn Any + Send + Sync>;

/// One key's lock, and what its holder shares while holding it. A new key
/// costs two allocations: this and its key, which the table shares.
struct KeyLock {
    key: Arc<str>,
    /// One permit: the lock (fair, first come first served, as tokio's
    /// `Mutex`, which is built the same way).
    permit: Semaphore,
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
    table: Mutex<HashMap<Arc<str>, Arc<KeyLock>>>,
}

/// Interest in one key's lock; dropping it removes the table entry when
/// nobody else holds or waits for it.
struct Interest {
    locks: Arc<StampedeLocks>,
    lock: Arc<KeyLock>,
}

impl Drop for Interest {
    fn drop(&mut self) {
        let mut table = self.locks.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The table and this interest hold the only references: nobody waits.
        if Arc::strong_count(&self.lock) == 2 {
            table.remove(&self.lock.key);
        }
    }
}

/// A held per-key lock; released on drop.
pub(crate) struct LockGuard {
    interest: Interest,
}

impl LockGuard {
    /// The lock's permit, taken (and forgotten) by the caller, becomes
    /// this guard, which gives it back on drop.
    fn holding(interest: Interest) -> LockGuard {
        LockGuard { interest }
    }

    /// Let the callers waiting for this lock (and those arriving while it
    /// is held) serve `stale` under their own soft timeout instead of
    /// waiting for the whole refresh.
    pub fn share_stale(&self, stale: SharedStale) {
        self.interest.lock.set_stale(Some(stale));
        self.interest.lock.shared.notify_waiters();
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // The refresh is over: what it shared is outdated. The permit goes
        // back before the interest is dropped (after this body), so the
        // table cleanup sees the true reference count.
        self.interest.lock.set_stale(None);
        self.interest.lock.permit.add_permits(1);
    }
}

impl StampedeLocks {
    fn interest(self: &Arc<Self>, key: &str) -> Interest {
        let mut table = self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let lock = match table.get(key) {
            Some(lock) => lock.clone(),
            None => {
                let key: Arc<str> = Arc::from(key);
                let lock = Arc::new(KeyLock {
                    key: key.clone(),
                    permit: Semaphore::new(1),
                    stale: Mutex::new(None),
                    shared: Notify::new(),
                });
                table.insert(key, lock.clone());
                lock
            }
        };
        Interest { locks: self.clone(), lock }
    }

    /// Wait for the lock of `key`, at most `timeout`; `None` on timeout.
    pub async fn acquire(self: &Arc<Self>, key: &str, timeout: Option<Duration>) -> Option<LockGuard> {
        let interest = self.interest(key);
        {
            let locking = interest.lock.permit.acquire();
            let permit = match timeout {
                Some(timeout) => tokio::time::timeout(timeout, locking).await.ok()?,
                None => locking.await,
            };
            permit.expect("a key's semaphore is never closed").forget();
        }
        Some(LockGuard::holding(interest))
    }

    /// Like [`StampedeLocks::acquire`], but also ends when the holder
    /// shares a stale entry ([`LockGuard::share_stale`]), or has already.
    pub async fn acquire_or_stale(self: &Arc<Self>, key: &str, timeout: Option<Duration>) -> Acquired {
        let interest = self.interest(key);
        let outcome = {
            let state: &KeyLock = &interest.lock;
            let locking = state.permit.acquire();
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
                        permit = &mut locking => {
                            permit.expect("a key's semaphore is never closed").forget();
                            return Ok(());
                        }
                        _ = shared => {}
                    }
                }
            };
            match timeout {
                Some(timeout) => tokio::time::timeout(timeout, waiting).await.ok(),
                None => Some(waiting.await),
            }
        };
        match outcome {
            Some(Ok(())) => Acquired::Locked(LockGuard::holding(interest)),
            Some(Err(stale)) => Acquired::Stale(stale),
            None => Acquired::TimedOut,
        }
    }

    /// The lock of `key` if it is free right now.
    pub fn try_acquire(self: &Arc<Self>, key: &str) -> Option<LockGuard> {
        let interest = self.interest(key);
        interest.lock.permit.try_acquire().ok()?.forget();
        Some(LockGuard::holding(interest))
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
    async fn waiters_get_the_lock_in_arrival_order_and_a_given_up_wait_keeps_nothing() {
        let locks = Arc::new(StampedeLocks::default());
        let held = locks.acquire("k", None).await.unwrap();
        // Gives up while the lock is held: takes nothing with it.
        assert!(locks.acquire("k", Some(Duration::from_millis(10))).await.is_none());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for n in 0..3 {
            let (locks, order) = (locks.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let guard = locks.acquire("k", None).await.unwrap();
                order.lock().unwrap().push(n);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(guard);
            }));
            // Let each waiter queue before the next arrives.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(held);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert!(locks.try_acquire("k").is_some(), "every permit came back");
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
