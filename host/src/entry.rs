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
/// Read on every write and near-expiry hit, and `SystemTime::now()` can
/// cost 20–60 ns on virtual machines; so the wall clock is read at most
/// every 100 ms and extrapolated in between with the TSC (`quanta`,
/// ~10 ns). Never behind the wall clock by more than the extrapolation
/// error over 100 ms, i.e. well under a millisecond.
pub(crate) fn now_ms() -> u64 {
    clock::now_ms()
}

/// True while [`now_ms`] is before `at_ms`: the freshness test of an L1
/// hit. It first reads the kernel's coarse wall clock (a vDSO read of the
/// last tick's time, about half the cost of the TSC read and scaling
/// [`now_ms`] needs), which lags the wall clock by about one tick; an
/// expiry further away than [`clock::COARSE_MARGIN_MS`] is decided by it
/// alone, a nearer one by [`now_ms`], so the answer is the same.
#[inline]
pub(crate) fn is_before(at_ms: u64) -> bool {
    clock::coarse_ms().is_some_and(|coarse| coarse.saturating_add(clock::COARSE_MARGIN_MS) < at_ms) || now_ms() < at_ms
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
        /// Whether [`coarse_ms`] may be used (read only on Linux).
        #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
        coarse_usable: bool,
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
                coarse_usable: coarse_is_usable(),
            }
        })
    }

    /// How far the coarse clock may lag the wall clock before the coarse
    /// test could be wrong: one tick is the usual lag (1–10 ms); a guest
    /// whose timekeeping CPU is descheduled can lag a few ticks more.
    pub(crate) const COARSE_MARGIN_MS: u64 = 50;

    /// The coarse wall clock in ms; `None` where there is none, or where
    /// its ticks are too coarse (> 10 ms) for [`COARSE_MARGIN_MS`].
    #[cfg(target_os = "linux")]
    #[inline]
    pub(crate) fn coarse_ms() -> Option<u64> {
        use rustix::time::{clock_gettime, ClockId};
        anchor().coarse_usable.then(|| {
            let now = clock_gettime(ClockId::RealtimeCoarse);
            (now.tv_sec as u64).saturating_mul(1000) + now.tv_nsec as u64 / 1_000_000
        })
    }

    #[cfg(not(target_os = "linux"))]
    #[inline]
    pub(crate) fn coarse_ms() -> Option<u64> {
        None
    }

    #[cfg(target_os = "linux")]
    fn coarse_is_usable() -> bool {
        use rustix::time::{clock_getres, ClockId};
        let resolution = clock_getres(ClockId::RealtimeCoarse);
        resolution.tv_sec == 0 && resolution.tv_nsec <= 10_000_000
    }

    #[cfg(not(target_os = "linux"))]
    fn coarse_is_usable() -> bool {
        false
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
    fn is_before_agrees_with_now_ms_near_and_far_from_the_deadline() {
        let now = now_ms();
        assert!(is_before(now + 3_600_000), "an hour away (decided by the coarse clock)");
        assert!(is_before(now + 1_000), "a second away");
        assert!(!is_before(now), "the deadline itself has passed");
        assert!(!is_before(now.saturating_sub(1)));
        assert!(!is_before(0));
        // Within the coarse clock's margin the precise clock decides: a
        // deadline 20 ms away passes after sleeping past it.
        let deadline = now_ms() + 20;
        assert!(is_before(deadline));
        std::thread::sleep(Duration::from_millis(25));
        assert!(!is_before(deadline));
    }

    #[test]
    fn the_coarse_clock_lags_the_wall_clock_by_less_than_the_margin() {
        for _ in 0..50 {
            let Some(coarse) = clock::coarse_ms() else { return };
            let now = now_ms();
            assert!(coarse <= now + 5, "coarse {coarse} ahead of {now}");
            assert!(now < coarse + clock::COARSE_MARGIN_MS, "coarse {coarse} lags {now} by the margin");
            std::thread::sleep(Duration::from_millis(3));
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
