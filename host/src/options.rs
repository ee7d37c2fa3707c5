//! Cache options in three layers: operation > store > global.
//!
//! [`CacheOptions`] is the override set a user writes (every field optional,
//! also readable from a config file with durations like `"10s"`, `"2.5h"`);
//! [`Settings`] is what one operation actually runs with, after layering
//! the overrides on the defaults of SPEC §5.

use crate::human::{optional_duration, optional_ttl};
use serde::Deserialize;
use std::time::Duration;

/// Default logical TTL: 30 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 60);
/// Default grace backoff: 10 seconds.
pub const DEFAULT_GRACE_BACKOFF: Duration = Duration::from_secs(10);
/// Default key prefix of a store.
pub const DEFAULT_PREFIX: &str = "bentocache";
/// Default lifetime of a fleet-wide (`distributed_lock`) lock: 10 seconds.
pub const DEFAULT_DISTRIBUTED_LOCK_TTL: Duration = Duration::from_secs(10);
/// Default time limit of one L2 call: 5 seconds.
pub const DEFAULT_L2_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound of the auto-recovery queue (L2 writes and invalidations
/// that failed, replayed when L2 answers again): 10 000 keys.
pub const DEFAULT_AUTO_RECOVERY_MAX_ITEMS: usize = 10_000;

/// Options that override the layer below (operation > store > global >
/// defaults). Everything not set inherits.
///
/// Set options with the chained setters below; a setter's name is also the
/// option's key in a config file (`ttl = "10m"`, `grace = false`), apart
/// from the per-operation ones.
/// `get_*` methods read back what a layer sets: `None` = inherits, and for
/// an option that can be switched off (`forever`, `no_grace`, `no_*`),
/// `Some(None)` = switched off.
///
/// ```
/// use bento::CacheOptions;
/// use std::time::Duration;
///
/// let options = CacheOptions::new().ttl(Duration::from_secs(60)).grace(Duration::from_secs(3600));
/// assert_eq!(options.get_ttl(), Some(Some(Duration::from_secs(60))));
/// assert_eq!(options.get_prefix(), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheOptions {
    // Each field: `None` = inherit. For `Option<Option<Duration>>` fields,
    // `Some(None)` = explicitly none (forever, disabled, unbounded). The
    // setters document what each one means.
    #[serde(default, with = "optional_ttl")]
    ttl: Option<Option<Duration>>,
    #[serde(default, with = "optional_ttl")]
    grace: Option<Option<Duration>>,
    #[serde(default, with = "optional_duration")]
    grace_backoff: Option<Duration>,
    #[serde(default, with = "optional_ttl")]
    timeout: Option<Option<Duration>>,
    #[serde(default, with = "optional_ttl")]
    hard_timeout: Option<Option<Duration>>,
    #[serde(default, with = "optional_ttl")]
    lock_timeout: Option<Option<Duration>>,
    #[serde(default)]
    suppress_l2_errors: Option<bool>,
    #[serde(default, with = "optional_ttl")]
    l2_circuit_breaker_duration: Option<Option<Duration>>,
    #[serde(default, with = "optional_ttl")]
    l2_timeout: Option<Option<Duration>>,
    #[serde(default)]
    auto_recovery_max_items: Option<usize>,
    #[serde(default)]
    strict_decoding: Option<bool>,
    #[serde(default)]
    record_keys: Option<bool>,
    #[serde(default, with = "optional_ttl")]
    jitter_max: Option<Option<Duration>>,
    #[serde(default)]
    eager_refresh: Option<f64>,
    #[serde(default)]
    distributed_lock: Option<bool>,
    #[serde(default, with = "optional_duration")]
    distributed_lock_ttl: Option<Duration>,
    #[serde(default)]
    prefix: Option<String>,
    // Per-operation only: not read from config files.
    #[serde(skip)]
    force_fresh: Option<bool>,
    #[serde(skip)]
    skip_l2_write: Option<bool>,
    #[serde(skip)]
    skip_bus_notify: Option<bool>,
}

/// A setter `name(value) -> Self` storing `Some(value)`, and a getter
/// `get_name() -> Option<..>` returning what this layer sets.
macro_rules! option {
    ($(#[$doc:meta])* $name:ident, $getter:ident: $ty:ty => $field:ident: $stored:ty = $value:expr) => {
        $(#[$doc])*
        pub fn $name(mut self, $field: $ty) -> Self {
            self.$field = Some($value);
            self
        }

        #[doc = concat!("What this layer sets for [`", stringify!($name), "`](Self::", stringify!($name), "); `None` = inherits.")]
        pub fn $getter(&self) -> Option<$stored> {
            self.$field
        }
    };
}

impl CacheOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    option!(
        /// Logical time to live: after it the entry is stale (served only
        /// within [`grace`](Self::grace)). See [`forever`](Self::forever).
        /// Default: 30 min.
        ttl, get_ttl: Duration => ttl: Option<Duration> = Some(ttl));
    option!(
        /// How long a logically expired entry may still be served (when the
        /// factory or L2 fails). See [`no_grace`](Self::no_grace).
        /// Default: disabled.
        grace, get_grace: Duration => grace: Option<Duration> = Some(grace));
    option!(
        /// After a factory failure served a graced value, the entry is fresh
        /// again until now + this. Default: 10 s.
        grace_backoff, get_grace_backoff: Duration => grace_backoff: Duration = grace_backoff);
    option!(
        /// Soft timeout: with a graced value, wait this long for the
        /// factory, then serve the stale value while the factory finishes in
        /// the background. Zero = stale-while-revalidate; see
        /// [`no_timeout`](Self::no_timeout). Default: 0.
        timeout, get_timeout: Duration => timeout: Option<Duration> = Some(timeout));
    option!(
        /// Fail with `Error::HardTimeout` when the factory takes longer (it
        /// still finishes and its value is cached). See
        /// [`no_hard_timeout`](Self::no_hard_timeout). Default: none.
        hard_timeout, get_hard_timeout: Duration => hard_timeout: Option<Duration> = Some(hard_timeout));
    option!(
        /// Fail with `Error::LockTimeout` (or serve a graced value) when
        /// waiting for another caller computing the same key takes longer.
        /// See [`no_lock_timeout`](Self::no_lock_timeout). Default: none.
        lock_timeout, get_lock_timeout: Duration => lock_timeout: Option<Duration> = Some(lock_timeout));
    option!(
        /// Log L2 errors and carry on with L1 instead of returning them.
        /// Default: true when the store has an L1, false otherwise.
        suppress_l2_errors, get_suppress_l2_errors: bool => suppress_l2_errors: bool = suppress_l2_errors);
    option!(
        /// After an L2 error, skip L2 for this long. Store/global level
        /// only. See [`no_l2_circuit_breaker`](Self::no_l2_circuit_breaker).
        /// Default: none (never skip).
        l2_circuit_breaker_duration, get_l2_circuit_breaker_duration: Duration
            => l2_circuit_breaker_duration: Option<Duration> = Some(l2_circuit_breaker_duration));
    option!(
        /// Time limit of each L2 call; a call past it fails with a `TIMEOUT`
        /// driver error, which counts as an L2 error (breaker, grace and
        /// suppression apply). See [`no_l2_timeout`](Self::no_l2_timeout).
        /// Default: 5 s.
        l2_timeout, get_l2_timeout: Duration => l2_timeout: Option<Duration> = Some(l2_timeout));
    option!(
        /// How many failed L2 writes/invalidations (one per key, the last
        /// one wins) the auto-recovery queue keeps for replay; past it the
        /// oldest is dropped with a warning and the
        /// `bento_auto_recovery_dropped_total` metric. 0 disables
        /// auto-recovery. Store/global level only. Default: 10 000.
        auto_recovery_max_items, get_auto_recovery_max_items: usize
            => auto_recovery_max_items: usize = auto_recovery_max_items);
    option!(
        /// A value that does not decode as the requested type (another type,
        /// corrupt or foreign data) fails the read with
        /// `Error::Serialization` instead of reading as a miss (logged once
        /// per key, counted in `bento_decode_failures_total`,
        /// `CacheEvent::DecodeFailed`). Default: false.
        strict_decoding, get_strict_decoding: bool => strict_decoding: bool = strict_decoding);
    option!(
        /// Spans carry the key itself (`key`) instead of a hash of it
        /// (`key_hash`); keys may be personal data. Store/global level only.
        /// Default: false.
        record_keys, get_record_keys: bool => record_keys: bool = record_keys);
    option!(
        /// Each write's logical TTL gets a random extra in
        /// `[0, jitter_max]`, so entries written together do not all expire
        /// together. See [`no_jitter`](Self::no_jitter). Default: none.
        jitter_max, get_jitter_max: Duration => jitter_max: Option<Duration> = Some(jitter_max));
    option!(
        /// `get_or_set`: a hit after this fraction of the entry's TTL
        /// (0 < f < 1, e.g. 0.8) returns the value at once and refreshes it
        /// in the background, once (stampede-protected). Default: none.
        eager_refresh, get_eager_refresh: f64 => eager_refresh: f64 = eager_refresh);
    option!(
        /// `get_or_set`: the lock of a missing key is fleet-wide, held in L2
        /// through the driver's lock (`Capabilities::LOCK`), so one instance
        /// of the fleet runs the factory and the others read its value from
        /// L2. Building a store with it fails when its L2 declares no lock.
        /// Store/global level only. Default: false.
        distributed_lock, get_distributed_lock: bool => distributed_lock: bool = distributed_lock);
    option!(
        /// How long a fleet-wide lock lives without being released: a holder
        /// that crashed blocks the key at most this long. Store/global level
        /// only. Default: 10 s.
        distributed_lock_ttl, get_distributed_lock_ttl: Duration
            => distributed_lock_ttl: Duration = distributed_lock_ttl);
    option!(
        /// `get_or_set`: run the factory even when a fresh value exists.
        /// Per operation (not read from config files). Default: false.
        force_fresh, get_force_fresh: bool => force_fresh: bool = force_fresh);
    option!(
        /// Writes: do not write L2 (L1 only). Per operation (not read from
        /// config files). Default: false.
        skip_l2_write, get_skip_l2_write: bool => skip_l2_write: bool = skip_l2_write);
    option!(
        /// Writes: do not notify the bus. Per operation (not read from
        /// config files). Default: false.
        skip_bus_notify, get_skip_bus_notify: bool => skip_bus_notify: bool = skip_bus_notify);

    /// Key prefix of the store (store/global level only). Default:
    /// `"bentocache"`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// What this layer sets for [`prefix`](Self::prefix); `None` = inherits.
    pub fn get_prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// Entries never expire logically (the [`ttl`](Self::ttl) is none).
    pub fn forever(mut self) -> Self {
        self.ttl = Some(None);
        self
    }

    /// Disable [`grace`](Self::grace).
    pub fn no_grace(mut self) -> Self {
        self.grace = Some(None);
        self
    }

    /// Wait for the factory however long it takes (no soft
    /// [`timeout`](Self::timeout)).
    pub fn no_timeout(mut self) -> Self {
        self.timeout = Some(None);
        self
    }

    /// No [`hard_timeout`](Self::hard_timeout), whatever a lower layer sets.
    pub fn no_hard_timeout(mut self) -> Self {
        self.hard_timeout = Some(None);
        self
    }

    /// No [`lock_timeout`](Self::lock_timeout), whatever a lower layer sets.
    pub fn no_lock_timeout(mut self) -> Self {
        self.lock_timeout = Some(None);
        self
    }

    /// No [`l2_circuit_breaker_duration`](Self::l2_circuit_breaker_duration):
    /// L2 is never skipped after an error.
    pub fn no_l2_circuit_breaker(mut self) -> Self {
        self.l2_circuit_breaker_duration = Some(None);
        self
    }

    /// L2 calls are not time-limited (no [`l2_timeout`](Self::l2_timeout)).
    pub fn no_l2_timeout(mut self) -> Self {
        self.l2_timeout = Some(None);
        self
    }

    /// No [`jitter_max`](Self::jitter_max), whatever a lower layer sets.
    pub fn no_jitter(mut self) -> Self {
        self.jitter_max = Some(None);
        self
    }

    /// `self` layered over `base`: fields set here win.
    pub fn over(&self, base: &CacheOptions) -> CacheOptions {
        CacheOptions {
            ttl: self.ttl.or(base.ttl),
            grace: self.grace.or(base.grace),
            grace_backoff: self.grace_backoff.or(base.grace_backoff),
            timeout: self.timeout.or(base.timeout),
            hard_timeout: self.hard_timeout.or(base.hard_timeout),
            lock_timeout: self.lock_timeout.or(base.lock_timeout),
            suppress_l2_errors: self.suppress_l2_errors.or(base.suppress_l2_errors),
            l2_circuit_breaker_duration: self.l2_circuit_breaker_duration.or(base.l2_circuit_breaker_duration),
            l2_timeout: self.l2_timeout.or(base.l2_timeout),
            auto_recovery_max_items: self.auto_recovery_max_items.or(base.auto_recovery_max_items),
            strict_decoding: self.strict_decoding.or(base.strict_decoding),
            record_keys: self.record_keys.or(base.record_keys),
            jitter_max: self.jitter_max.or(base.jitter_max),
            eager_refresh: self.eager_refresh.or(base.eager_refresh),
            distributed_lock: self.distributed_lock.or(base.distributed_lock),
            distributed_lock_ttl: self.distributed_lock_ttl.or(base.distributed_lock_ttl),
            prefix: self.prefix.clone().or_else(|| base.prefix.clone()),
            force_fresh: self.force_fresh.or(base.force_fresh),
            skip_l2_write: self.skip_l2_write.or(base.skip_l2_write),
            skip_bus_notify: self.skip_bus_notify.or(base.skip_bus_notify),
        }
    }

    /// Check values that can be wrong whatever the layer.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if self.ttl == Some(Some(Duration::ZERO)) {
            return Err(crate::Error::InvalidOptions("ttl must be positive (use forever() for no expiry)".into()));
        }
        if self.grace == Some(Some(Duration::ZERO)) {
            return Err(crate::Error::InvalidOptions("grace must be positive (use no_grace() to disable)".into()));
        }
        if let Some(fraction) = self.eager_refresh {
            if !(fraction > 0.0 && fraction < 1.0) {
                return Err(crate::Error::InvalidOptions(format!(
                    "eager_refresh must be a fraction of the TTL between 0 and 1 (exclusive), got {fraction}"
                )));
            }
        }
        if self.distributed_lock_ttl == Some(Duration::ZERO) {
            return Err(crate::Error::InvalidOptions("distributed_lock_ttl must be positive".into()));
        }
        if self.l2_timeout == Some(Some(Duration::ZERO)) {
            return Err(crate::Error::InvalidOptions("l2_timeout must be positive".into()));
        }
        if self.hard_timeout == Some(Some(Duration::ZERO)) {
            return Err(crate::Error::InvalidOptions("hard_timeout must be positive".into()));
        }
        Ok(())
    }
}

/// The options one operation runs with: every layer resolved, defaults
/// filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Logical TTL; `None` = forever.
    pub ttl: Option<Duration>,
    /// Grace period; `None` = disabled.
    pub grace: Option<Duration>,
    /// Grace backoff.
    pub grace_backoff: Duration,
    /// Soft timeout; `None` = wait for the factory.
    pub timeout: Option<Duration>,
    /// Hard timeout.
    pub hard_timeout: Option<Duration>,
    /// Lock timeout.
    pub lock_timeout: Option<Duration>,
    /// Whether L2 errors are swallowed.
    pub suppress_l2_errors: bool,
    /// Circuit breaker duration.
    pub l2_circuit_breaker_duration: Option<Duration>,
    /// Time limit of each L2 call; `None` = unbounded.
    pub l2_timeout: Option<Duration>,
    /// Bound of the auto-recovery queue (store level; 0 = disabled).
    pub auto_recovery_max_items: usize,
    /// Whether undecodable values fail the read.
    pub strict_decoding: bool,
    /// Whether spans carry keys (store level).
    pub record_keys: bool,
    /// Random extra TTL bound per write.
    pub jitter_max: Option<Duration>,
    /// Eager refresh fraction of the TTL.
    pub eager_refresh: Option<f64>,
    /// Fleet-wide stampede lock through L2 (store level).
    pub distributed_lock: bool,
    /// Lifetime of a fleet-wide lock (store level).
    pub distributed_lock_ttl: Duration,
    /// Store prefix.
    pub prefix: String,
    /// Run the factory even when fresh.
    pub force_fresh: bool,
    /// Skip the L2 write.
    pub skip_l2_write: bool,
    /// Skip the bus notification.
    pub skip_bus_notify: bool,
}

impl Settings {
    /// Resolve `options` over the defaults; `has_l1` decides the default of
    /// `suppress_l2_errors`.
    pub fn resolve(options: &CacheOptions, has_l1: bool) -> Settings {
        Settings {
            ttl: options.ttl.unwrap_or(Some(DEFAULT_TTL)),
            grace: options.grace.unwrap_or(None),
            grace_backoff: options.grace_backoff.unwrap_or(DEFAULT_GRACE_BACKOFF),
            timeout: options.timeout.unwrap_or(Some(Duration::ZERO)),
            hard_timeout: options.hard_timeout.unwrap_or(None),
            lock_timeout: options.lock_timeout.unwrap_or(None),
            suppress_l2_errors: options.suppress_l2_errors.unwrap_or(has_l1),
            l2_circuit_breaker_duration: options.l2_circuit_breaker_duration.unwrap_or(None),
            l2_timeout: options.l2_timeout.unwrap_or(Some(DEFAULT_L2_TIMEOUT)),
            auto_recovery_max_items: options.auto_recovery_max_items.unwrap_or(DEFAULT_AUTO_RECOVERY_MAX_ITEMS),
            strict_decoding: options.strict_decoding.unwrap_or(false),
            record_keys: options.record_keys.unwrap_or(false),
            jitter_max: options.jitter_max.unwrap_or(None),
            eager_refresh: options.eager_refresh,
            distributed_lock: options.distributed_lock.unwrap_or(false),
            distributed_lock_ttl: options.distributed_lock_ttl.unwrap_or(DEFAULT_DISTRIBUTED_LOCK_TTL),
            prefix: options.prefix.clone().unwrap_or_else(|| DEFAULT_PREFIX.to_string()),
            force_fresh: options.force_fresh.unwrap_or(false),
            skip_l2_write: options.skip_l2_write.unwrap_or(false),
            skip_bus_notify: options.skip_bus_notify.unwrap_or(false),
        }
    }

    /// These settings with an operation's overrides applied (fields that
    /// only make sense per store, like the prefix, are ignored).
    pub fn with(&self, op: &CacheOptions) -> Settings {
        Settings {
            ttl: op.ttl.unwrap_or(self.ttl),
            grace: op.grace.unwrap_or(self.grace),
            grace_backoff: op.grace_backoff.unwrap_or(self.grace_backoff),
            timeout: op.timeout.unwrap_or(self.timeout),
            hard_timeout: op.hard_timeout.unwrap_or(self.hard_timeout),
            lock_timeout: op.lock_timeout.unwrap_or(self.lock_timeout),
            suppress_l2_errors: op.suppress_l2_errors.unwrap_or(self.suppress_l2_errors),
            l2_circuit_breaker_duration: self.l2_circuit_breaker_duration,
            l2_timeout: op.l2_timeout.unwrap_or(self.l2_timeout),
            auto_recovery_max_items: self.auto_recovery_max_items,
            strict_decoding: op.strict_decoding.unwrap_or(self.strict_decoding),
            record_keys: self.record_keys,
            jitter_max: op.jitter_max.unwrap_or(self.jitter_max),
            eager_refresh: op.eager_refresh.or(self.eager_refresh),
            distributed_lock: self.distributed_lock,
            distributed_lock_ttl: self.distributed_lock_ttl,
            prefix: self.prefix.clone(),
            force_fresh: op.force_fresh.unwrap_or(self.force_fresh),
            skip_l2_write: op.skip_l2_write.unwrap_or(self.skip_l2_write),
            skip_bus_notify: op.skip_bus_notify.unwrap_or(self.skip_bus_notify),
        }
    }

    /// TTL given to drivers: ttl + grace when grace is enabled (BentoCache
    /// uses grace alone, which drops entries early), forever stays forever.
    pub fn physical_ttl(&self) -> Option<Duration> {
        physical_ttl(self.ttl, self.grace)
    }
}

/// Physical TTL for a logical `ttl` and `grace`.
pub fn physical_ttl(ttl: Option<Duration>, grace: Option<Duration>) -> Option<Duration> {
    match (ttl, grace) {
        (None, _) => None,
        (Some(ttl), Some(grace)) => Some(ttl.saturating_add(grace)),
        (Some(ttl), None) => Some(ttl),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec() {
        let with_l1 = Settings::resolve(&CacheOptions::new(), true);
        assert_eq!(with_l1.ttl, Some(Duration::from_secs(1800)));
        assert_eq!(with_l1.prefix, "bentocache");
        assert_eq!(with_l1.grace, None);
        assert_eq!(with_l1.grace_backoff, Duration::from_secs(10));
        assert_eq!(with_l1.timeout, Some(Duration::ZERO));
        assert_eq!(with_l1.hard_timeout, None);
        assert_eq!(with_l1.lock_timeout, None);
        assert!(with_l1.suppress_l2_errors);
        assert!(!Settings::resolve(&CacheOptions::new(), false).suppress_l2_errors);
    }

    #[test]
    fn operation_beats_store_beats_global() {
        let global = CacheOptions::new().ttl(Duration::from_secs(1)).grace(Duration::from_secs(5));
        let store = CacheOptions::new().ttl(Duration::from_secs(2));
        let settings = Settings::resolve(&store.over(&global), true);
        assert_eq!(settings.ttl, Some(Duration::from_secs(2)));
        assert_eq!(settings.grace, Some(Duration::from_secs(5)));
        let op = settings.with(&CacheOptions::new().forever().no_grace());
        assert_eq!((op.ttl, op.grace), (None, None));
    }

    #[test]
    fn no_setters_switch_off_what_a_lower_layer_sets() {
        let store = CacheOptions::new().hard_timeout(Duration::from_secs(1)).l2_timeout(Duration::from_secs(2));
        let op = CacheOptions::new().no_hard_timeout().no_l2_timeout();
        assert_eq!(op.get_hard_timeout(), Some(None));
        let settings = Settings::resolve(&op.over(&store), true);
        assert_eq!((settings.hard_timeout, settings.l2_timeout), (None, None));
        assert_eq!(Settings::resolve(&store, true).hard_timeout, Some(Duration::from_secs(1)));
    }

    #[test]
    fn physical_ttl_adds_grace() {
        let ttl = Some(Duration::from_secs(60));
        assert_eq!(physical_ttl(ttl, Some(Duration::from_secs(10))), Some(Duration::from_secs(70)));
        assert_eq!(physical_ttl(ttl, None), ttl);
        assert_eq!(physical_ttl(None, Some(Duration::from_secs(10))), None);
    }

    #[test]
    fn config_durations_parse() {
        let options: CacheOptions =
            toml::from_str("ttl = \"10m\"\ngrace = \"2.5h\"\ngrace_backoff = \"10s\"\nhard_timeout = false").unwrap();
        assert_eq!(options.ttl, Some(Some(Duration::from_secs(600))));
        assert_eq!(options.grace, Some(Some(Duration::from_secs(9000))));
        assert_eq!(options.grace_backoff, Some(Duration::from_secs(10)));
        assert_eq!(options.hard_timeout, Some(None));
        assert!(toml::from_str::<CacheOptions>("ttl = \"ten\"").is_err());
        assert!(toml::from_str::<CacheOptions>("tll = \"10s\"").is_err());
    }
}
