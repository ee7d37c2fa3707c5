//! The L2 layer: any driver behind the small [`L2Driver`] trait (a loaded
//! plugin [`Driver`] implements it; tests wrap one to count calls), plus the
//! circuit breaker that skips L2 for a while after it failed.

use crate::driver::Driver;
use async_trait::async_trait;
use bento_plugin_api::{DriverError, ErrorKind, SetItem};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the cache manager needs from a remote store. Keys are relative to
/// the handle's prefix; values are opaque bytes.
#[async_trait]
pub trait L2Driver: Send + Sync + 'static {
    /// A handle on `prefix:namespace` sharing the connection.
    fn namespace(&self, namespace: &str) -> Result<Arc<dyn L2Driver>, DriverError>;
    /// The value of `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError>;
    /// Values of `keys`, in order (one round trip where the backend can).
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, DriverError>;
    /// Store `value` for `ttl` (`None` = forever).
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<bool, DriverError>;
    /// Store many entries.
    async fn set_many(&self, items: Vec<SetItem>) -> Result<bool, DriverError>;
    /// True iff the key exists.
    async fn has(&self, key: &str) -> Result<bool, DriverError>;
    /// True iff the key existed.
    async fn delete(&self, key: &str) -> Result<bool, DriverError>;
    /// How many of `keys` existed.
    async fn delete_many(&self, keys: &[String]) -> Result<u64, DriverError>;
    /// Remove everything under the prefix.
    async fn clear(&self) -> Result<(), DriverError>;
    /// Remove expired entries.
    async fn prune(&self) -> Result<(), DriverError>;
    /// Close the connection.
    async fn disconnect(&self) -> Result<(), DriverError>;
}

#[async_trait]
impl L2Driver for Driver {
    fn namespace(&self, namespace: &str) -> Result<Arc<dyn L2Driver>, DriverError> {
        Ok(Arc::new(Driver::namespace(self, namespace)?))
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError> {
        Driver::get(self, key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, DriverError> {
        Driver::get_many(self, keys).await
    }
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<bool, DriverError> {
        Driver::set(self, key, value, ttl).await
    }
    async fn set_many(&self, items: Vec<SetItem>) -> Result<bool, DriverError> {
        Driver::set_many(self, items).await
    }
    async fn has(&self, key: &str) -> Result<bool, DriverError> {
        Driver::has(self, key).await
    }
    async fn delete(&self, key: &str) -> Result<bool, DriverError> {
        Driver::delete(self, key).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<u64, DriverError> {
        Driver::delete_many(self, keys).await
    }
    async fn clear(&self) -> Result<(), DriverError> {
        Driver::clear(self).await
    }
    async fn prune(&self) -> Result<(), DriverError> {
        Driver::prune(self).await
    }
    async fn disconnect(&self) -> Result<(), DriverError> {
        Driver::disconnect(self).await
    }
}

/// After an L2 error, L2 is skipped for `duration` (if set). Shared by every
/// namespace of a store.
#[derive(Debug, Default)]
pub(crate) struct CircuitBreaker {
    duration: Option<Duration>,
    open_until_ms: AtomicU64,
}

impl CircuitBreaker {
    pub fn new(duration: Option<Duration>) -> Self {
        CircuitBreaker { duration, open_until_ms: AtomicU64::new(0) }
    }

    pub fn is_open(&self, now: u64) -> bool {
        now < self.open_until_ms.load(Ordering::Relaxed)
    }

    pub fn record_failure(&self, now: u64) {
        if let Some(duration) = self.duration {
            self.open_until_ms.store(crate::entry::ms_after(now, duration), Ordering::Relaxed);
        }
    }
}

/// One namespace's L2 handle and the store's breaker.
#[derive(Clone)]
pub(crate) struct L2 {
    pub driver: Arc<dyn L2Driver>,
    pub breaker: Arc<CircuitBreaker>,
}

impl L2 {
    pub fn namespace(&self, namespace: &str) -> Result<L2, DriverError> {
        Ok(L2 { driver: self.driver.namespace(namespace)?, breaker: self.breaker.clone() })
    }

    /// Run one driver call through the breaker.
    pub async fn call<R>(
        &self,
        operation: impl std::future::Future<Output = Result<R, DriverError>>,
    ) -> Result<R, DriverError> {
        let now = crate::entry::now_ms();
        if self.breaker.is_open(now) {
            return Err(DriverError::new(ErrorKind::CONNECTION, "L2 circuit breaker is open"));
        }
        let result = operation.await;
        if result.is_err() {
            self.breaker.record_failure(crate::entry::now_ms());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_for_its_duration_only() {
        let breaker = CircuitBreaker::new(Some(Duration::from_millis(100)));
        assert!(!breaker.is_open(1000));
        breaker.record_failure(1000);
        assert!(breaker.is_open(1050));
        assert!(!breaker.is_open(1100));
        let never = CircuitBreaker::new(None);
        never.record_failure(1000);
        assert!(!never.is_open(1001));
    }
}
