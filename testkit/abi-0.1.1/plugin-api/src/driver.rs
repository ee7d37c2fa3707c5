//! The trait a driver author implements.

use crate::capabilities::Capabilities;
use crate::error::{DriverError, DriverResult};
use std::future::Future;
use std::time::Duration;

/// The parameters every driver receives besides its own options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DriverConfig {
    /// The TTL of entries set without one: [`CacheDriver::set`] and
    /// [`CacheDriver::set_many`] items with `ttl: None` expire after it.
    /// `None` (the default) = such entries are kept forever. The cache
    /// manager always passes explicit TTLs; this serves drivers used
    /// directly (`set(key, value, None)`).
    pub default_ttl: Option<Duration>,
    /// Key prefix of the root handle; empty = the driver owns its keyspace.
    pub prefix: String,
}

/// One item of [`CacheDriver::set_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetItem {
    /// Key relative to the handle's prefix.
    pub key: String,
    /// Value bytes (may be empty, may be non-UTF-8).
    pub value: Vec<u8>,
    /// Time to live with millisecond precision; `None` = the driver's
    /// [`DriverConfig::default_ttl`], forever when it has none.
    pub ttl: Option<Duration>,
}

/// A cache driver, written as plain async Rust.
///
/// Keys are UTF-8 strings relative to the handle's prefix; the stored key is
/// `prefix:key` ([`crate::Prefix`] implements the layout). Values are bytes:
/// empty and non-UTF-8 values are values, not "missing". Drivers know nothing
/// of grace periods, tags or stampede policy; the host does. A driver may
/// offer the host a backend lock ([`CacheDriver::try_lock`]), a primitive
/// the host builds its fleet-wide stampede protection on.
///
/// TTLs have millisecond precision: round a sub-millisecond remainder up,
/// never down (a backend with whole seconds rounds up to the next second).
/// `None` means the [`DriverConfig::default_ttl`] the driver was created
/// with, and forever when it has none; namespaces keep their root's default.
/// A zero TTL (which the cache manager never passes) means "expires at
/// once" (rounding it up to 1 ms is fine), never forever and never an error. Very long TTLs (10 years) must
/// work: no overflow, no panic, no 32-bit millisecond wrap.
///
/// Every method may run on any thread. When [`CacheDriver::NEEDS_RUNTIME`] is
/// true (the default) the futures run inside the plugin's own tokio runtime
/// context, so `tokio::spawn`, timers and tokio-based clients work.
pub trait CacheDriver: Send + Sync + Sized + 'static {
    /// The driver's options, deserialized from the JSON the host passes.
    /// Use `#[serde(deny_unknown_fields)]` so typos are reported.
    type Options: serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static;

    /// Whether the driver's futures need the plugin's tokio runtime. A
    /// purely in-memory driver sets this to false and saves the context
    /// switch on every call.
    const NEEDS_RUNTIME: bool = true;

    /// Worker threads the plugin's runtime should have, when this driver
    /// starts it (`None`: 2, at most the CPU count; the
    /// `BENTO_PLUGIN_THREADS` environment variable overrides either). A
    /// driver whose I/O is one connection task (a multiplexed client) is
    /// best served by 1: a second worker only adds cross-thread wake-ups.
    const RUNTIME_THREADS: Option<usize> = None;

    /// Create the root handle: connect, create tables, etc.
    fn connect(options: Self::Options, config: DriverConfig) -> impl Future<Output = DriverResult<Self>> + Send;

    /// A new handle whose prefix is `prefix:namespace`, sharing the
    /// connection; nested namespaces join with `:`.
    fn namespace(&self, namespace: &str) -> DriverResult<Self>;

    /// The value of `key`; an expired entry is never returned.
    fn get(&self, key: &str) -> impl Future<Output = DriverResult<Option<Vec<u8>>>> + Send;

    /// Get and delete atomically: of N concurrent pulls exactly one wins.
    fn pull(&self, key: &str) -> impl Future<Output = DriverResult<Option<Vec<u8>>>> + Send;

    /// Store or overwrite, replacing the old value AND its expiry; `ttl` has
    /// millisecond precision, `None` = the [`DriverConfig::default_ttl`]
    /// (forever without one). Returns true when stored.
    fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> impl Future<Output = DriverResult<bool>> + Send;

    /// True iff the key existed (and was not expired) before removal.
    fn delete(&self, key: &str) -> impl Future<Output = DriverResult<bool>> + Send;

    /// Remove every key under this handle's prefix (nested namespaces
    /// included) and nothing else; with an empty prefix, everything.
    fn clear(&self) -> impl Future<Output = DriverResult<()>> + Send;

    /// Close connections. Idempotent; later operations return
    /// [`crate::ErrorKind::DISCONNECTED`].
    fn disconnect(&self) -> impl Future<Output = DriverResult<()>> + Send;

    /// True iff [`CacheDriver::get`] would return a value.
    fn has(&self, key: &str) -> impl Future<Output = DriverResult<bool>> + Send {
        async move { Ok(self.get(key).await?.is_some()) }
    }

    /// Values of `keys`, in order. Override with one round trip where the
    /// backend allows it.
    fn get_many(&self, keys: &[String]) -> impl Future<Output = DriverResult<Vec<Option<Vec<u8>>>>> + Send {
        async move {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.get(key).await?);
            }
            Ok(values)
        }
    }

    /// Store many entries; true when all were stored.
    fn set_many(&self, items: Vec<SetItem>) -> impl Future<Output = DriverResult<bool>> + Send {
        async move {
            let mut all = true;
            for item in items {
                all &= self.set(&item.key, item.value, item.ttl).await?;
            }
            Ok(all)
        }
    }

    /// Remove `keys`; returns how many existed. An empty list is fine.
    fn delete_many(&self, keys: &[String]) -> impl Future<Output = DriverResult<u64>> + Send {
        async move {
            let mut removed = 0;
            for key in keys {
                removed += u64::from(self.delete(key).await?);
            }
            Ok(removed)
        }
    }

    /// Remove expired entries from storage; a no-op where the backend
    /// expires natively.
    fn prune(&self) -> impl Future<Output = DriverResult<()>> + Send {
        async { Ok(()) }
    }

    /// What this driver supports beyond the base contract. Default:
    /// [`Capabilities::NONE`]. Return [`Capabilities::LOCK`] exactly when
    /// [`CacheDriver::try_lock`] and [`CacheDriver::unlock`] are implemented
    /// atomically in the backend; the host only calls them then.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    /// Take the lock named `key` for `owner`, for `ttl`, atomically in the
    /// backend. Returns true when `owner` holds the lock afterwards: it was
    /// free, expired, or already held by `owner` (then its TTL restarts from
    /// now, so a retried call is harmless); false when another owner holds
    /// it. The default returns an [`crate::ErrorKind::UNSUPPORTED`] error.
    ///
    /// The contract for drivers declaring [`Capabilities::LOCK`]:
    /// * mutual exclusion across every handle on the same storage: other
    ///   namespaces' handles, other connections, other processes;
    /// * lock names follow the key layout (`prefix:key`, so
    ///   `root.try_lock("a:b")` and `root.namespace("a").try_lock("b")` are
    ///   one lock) but live apart from cache entries: a lock never reads,
    ///   overwrites or deletes the entry of the same key, and `get`/`has`
    ///   never see it;
    /// * a lock expires `ttl` after it was taken (millisecond precision,
    ///   rounded up; a zero TTL counts as 1 ms), so a crashed holder cannot
    ///   block the key forever;
    /// * `clear()` need not remove locks (with the empty prefix it may), and
    ///   `prune()` may remove expired ones.
    fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> impl Future<Output = DriverResult<bool>> + Send {
        let _ = (key, owner, ttl);
        async { Err(DriverError::unsupported(crate::abi::NO_LOCK)) }
    }

    /// Release the lock named `key` if `owner` holds it (and it has not
    /// expired), atomically in the backend; true when released. A lock held
    /// by another owner is left alone and false returned. The default
    /// returns an [`crate::ErrorKind::UNSUPPORTED`] error.
    fn unlock(&self, key: &str, owner: &str) -> impl Future<Output = DriverResult<bool>> + Send {
        let _ = (key, owner);
        async { Err(DriverError::unsupported(crate::abi::NO_LOCK)) }
    }
}
