//! A cache entry and its wire form, byte-compatible with BentoCache 1.x
//! (SPEC §7):
//!
//! ```text
//! {"value":{"name":"Ada"},"logicalExpiration":1795546853391,"tags":["users"],"createdAt":1795546253391}
//! ```
//!
//! Times are milliseconds since the Unix epoch; `logicalExpiration` is
//! absent when the entry never expires.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One cached value with its metadata, as stored in L2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry<V> {
    /// The cached value.
    pub value: V,
    /// When the value stops being fresh (ms since epoch); `None` = never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_expiration: Option<u64>,
    /// Tags for `delete_by_tag` / `expire_by_tag`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When the value was computed (ms since epoch).
    #[serde(default)]
    pub created_at: u64,
}

impl<V> Entry<V> {
    /// True when the entry is logically expired at `now` (ms).
    pub fn is_expired(&self, now: u64) -> bool {
        self.logical_expiration.is_some_and(|at| at <= now)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `now` plus `duration` in ms, saturating.
pub fn ms_after(now: u64, duration: Duration) -> u64 {
    now.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Logical expiration for a TTL starting at `now` (`None` = never).
pub fn logical_expiration(now: u64, ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|ttl| ms_after(now, ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_inclusive_and_forever_never_expires() {
        let entry = Entry { value: 1, logical_expiration: Some(100), tags: vec![], created_at: 0 };
        assert!(!entry.is_expired(99));
        assert!(entry.is_expired(100));
        assert!(!Entry { logical_expiration: None, ..entry }.is_expired(u64::MAX));
    }
}
