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
use std::time::Duration;

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
///
/// On the L1 hit path this is the only clock read, and `SystemTime::now()`
/// costs 40–60 ns on virtual machines; so the wall clock is read at most
/// every 100 ms and extrapolated in between with the TSC (`quanta`,
/// ~10 ns). Never behind the wall clock by more than the extrapolation
/// error over 100 ms, i.e. well under a millisecond.
pub(crate) fn now_ms() -> u64 {
    clock::now_ms()
}

mod clock {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{SystemTime, UNIX_EPOCH};

    const RESYNC_NANOS: u64 = 100_000_000;

    struct Anchor {
        clock: quanta::Clock,
        origin_raw: u64,
        origin_wall: u64,
        /// Wall clock minus the extrapolation, refreshed every resync. One
        /// atomic, so a reader racing a resync sees the old or the new
        /// correction, both valid.
        correction: AtomicI64,
        last_sync: AtomicU64,
    }

    fn wall_nanos() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    }

    fn anchor() -> &'static Anchor {
        static ANCHOR: OnceLock<Anchor> = OnceLock::new();
        ANCHOR.get_or_init(|| {
            let clock = quanta::Clock::new();
            let origin_raw = clock.raw();
            Anchor {
                clock,
                origin_raw,
                origin_wall: wall_nanos(),
                correction: AtomicI64::new(0),
                last_sync: AtomicU64::new(0),
            }
        })
    }

    pub(crate) fn now_ms() -> u64 {
        let anchor = anchor();
        let elapsed = anchor.clock.delta_as_nanos(anchor.origin_raw, anchor.clock.raw());
        let extrapolated = anchor.origin_wall.saturating_add(elapsed);
        if elapsed.saturating_sub(anchor.last_sync.load(Ordering::Relaxed)) >= RESYNC_NANOS {
            anchor.last_sync.store(elapsed, Ordering::Relaxed);
            let wall = wall_nanos();
            anchor.correction.store(wall as i64 - extrapolated as i64, Ordering::Relaxed);
            return wall / 1_000_000;
        }
        (extrapolated as i64 + anchor.correction.load(Ordering::Relaxed)) as u64 / 1_000_000
    }
}

/// `now` plus `duration` in ms, saturating.
pub(crate) fn ms_after(now: u64, duration: Duration) -> u64 {
    now.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_ms_follows_the_wall_clock() {
        let wall = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        for _ in 0..3 {
            // Bracketed by two wall-clock reads: a preemption between the
            // reads on a loaded machine widens the bracket, not the error.
            let before = wall();
            let ours = now_ms();
            let after = wall();
            assert!(before.saturating_sub(2) <= ours && ours <= after + 2, "{before} <= {ours} <= {after}");
            std::thread::sleep(Duration::from_millis(120));
        }
    }

    #[test]
    fn expiry_is_inclusive_and_forever_never_expires() {
        let entry = Entry { value: 1, logical_expiration: Some(100), tags: vec![], created_at: 0 };
        assert!(!entry.is_expired(99));
        assert!(entry.is_expired(100));
        assert!(!Entry { logical_expiration: None, ..entry }.is_expired(u64::MAX));
    }
}
