//! # bento-abi-0-1-1-fixture
//!
//! A driver built against the frozen `bento-plugin-api` 0.1.1 (`../plugin-api`):
//! the BTreeMap driver of the abi-0.1 fixture plus the lock methods 0.1.1
//! added, declared through `capabilities()`. It knows nothing of
//! `attach_host_runtime` (0.1.2); the host must still load it, see its lock,
//! run the whole conformance suite on it, and lend it no runtime.

use bento_plugin_api::{CacheDriver, Capabilities, DriverConfig, DriverError, DriverResult, Prefix};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Options of the BTreeMap driver, deserialized from the JSON the host
/// passes. Unknown fields are refused, naming the field.
#[derive(serde::Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct BTreeOptions {
    /// Refuse keys longer than this many bytes with `InvalidKey`.
    /// Default: 65536.
    #[serde(default = "default_max_key_len")]
    pub max_key_len: usize,
}

fn default_max_key_len() -> usize {
    65_536
}

/// One stored value and when it expires (`None` = never).
struct Stored {
    value: Vec<u8>,
    expires_at: Option<Instant>,
}

impl Stored {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// A held lock: its owner and when it expires (`None`: a TTL too long
/// for the clock, never).
struct HeldLock {
    owner: String,
    expires_at: Option<Instant>,
}

impl HeldLock {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }
}

/// What every namespace handle of one driver shares: the map (keyed by
/// the full stored key `prefix:key`), the lock table (same keys, apart from
/// the entries) and the "disconnected" flag.
struct Shared {
    map: Mutex<BTreeMap<String, Stored>>,
    locks: Mutex<HashMap<String, HeldLock>>,
    disconnected: AtomicBool,
    max_key_len: usize,
}

/// The driver: shared state plus this handle's prefix.
pub struct BTreeDriver {
    shared: Arc<Shared>,
    prefix: Prefix,
    /// Applied to `set(.., None)`: the driver contract as it is today (the
    /// 0.1.0 docs called it informational; the driver, not the ABI, follows
    /// the newer rule, as an author updating only their code would).
    default_ttl: Option<Duration>,
}

impl BTreeDriver {
    /// The map, or `Disconnected` once `disconnect` was called.
    fn map(&self) -> DriverResult<MutexGuard<'_, BTreeMap<String, Stored>>> {
        if self.shared.disconnected.load(Ordering::Acquire) {
            return Err(DriverError::disconnected());
        }
        // A poisoned lock only means another call panicked mid-way; the
        // map itself is still consistent (every update is one insert/remove).
        Ok(self.shared.map.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The lock table, or `Disconnected` once `disconnect` was called.
    fn locks(&self) -> DriverResult<MutexGuard<'_, HashMap<String, HeldLock>>> {
        if self.shared.disconnected.load(Ordering::Acquire) {
            return Err(DriverError::disconnected());
        }
        Ok(self.shared.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// The stored key for `key`, refusing keys we will not store.
    fn stored_key(&self, key: &str) -> DriverResult<String> {
        if key.len() > self.shared.max_key_len {
            return Err(DriverError::invalid_key(format!("key of {} bytes exceeds max_key_len", key.len())));
        }
        Ok(self.prefix.key(key))
    }
}

impl CacheDriver for BTreeDriver {
    type Options = BTreeOptions;

    // Nothing here awaits tokio I/O, so skip the plugin runtime.
    const NEEDS_RUNTIME: bool = false;

    async fn connect(options: BTreeOptions, config: DriverConfig) -> DriverResult<Self> {
        let shared = Shared {
            map: Mutex::new(BTreeMap::new()),
            locks: Mutex::new(HashMap::new()),
            disconnected: AtomicBool::new(false),
            max_key_len: options.max_key_len,
        };
        Ok(BTreeDriver {
            shared: Arc::new(shared),
            prefix: Prefix::new(&config.prefix),
            default_ttl: config.default_ttl,
        })
    }

    fn namespace(&self, namespace: &str) -> DriverResult<Self> {
        // `namespace("")` is the parent's prefix (today's rule).
        let prefix = if namespace.is_empty() { self.prefix.clone() } else { self.prefix.namespace(namespace) };
        Ok(BTreeDriver { shared: self.shared.clone(), prefix, default_ttl: self.default_ttl })
    }

    async fn get(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = self.stored_key(key)?;
        let now = Instant::now();
        let mut map = self.map()?;
        match map.get(&key) {
            Some(stored) if stored.is_live(now) => Ok(Some(stored.value.clone())),
            Some(_) => {
                map.remove(&key); // lazy expiry
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn pull(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = self.stored_key(key)?;
        // One lock for get-and-remove: concurrent pulls cannot both win.
        let removed = self.map()?.remove(&key);
        Ok(removed.filter(|stored| stored.is_live(Instant::now())).map(|stored| stored.value))
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> DriverResult<bool> {
        let key = self.stored_key(key)?;
        let expires_at = ttl.or(self.default_ttl).and_then(|ttl| Instant::now().checked_add(ttl));
        self.map()?.insert(key, Stored { value, expires_at });
        Ok(true)
    }

    async fn delete(&self, key: &str) -> DriverResult<bool> {
        let key = self.stored_key(key)?;
        let removed = self.map()?.remove(&key);
        Ok(removed.is_some_and(|stored| stored.is_live(Instant::now())))
    }

    async fn clear(&self) -> DriverResult<()> {
        let mut map = self.map()?;
        if self.prefix.is_empty() {
            map.clear();
        } else {
            // Keys are sorted, so everything under `prefix:` is one range.
            let scope = self.prefix.scope();
            let doomed: Vec<String> = map
                .range(scope.clone()..)
                .map(|(key, _)| key)
                .take_while(|key| key.starts_with(&scope))
                .cloned()
                .collect();
            for key in doomed {
                map.remove(&key);
            }
        }
        Ok(())
    }

    async fn prune(&self) -> DriverResult<()> {
        let now = Instant::now();
        self.map()?.retain(|_, stored| stored.is_live(now));
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LOCK
    }

    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> DriverResult<bool> {
        let key = self.stored_key(key)?;
        let now = Instant::now();
        // Millisecond precision, a zero TTL counting as 1 ms (the contract).
        let ttl = ttl.max(Duration::from_millis(1));
        let mut locks = self.locks()?;
        if let Some(held) = locks.get(&key) {
            if held.is_live(now) && held.owner != owner {
                return Ok(false);
            }
        }
        locks.insert(key, HeldLock { owner: owner.to_string(), expires_at: now.checked_add(ttl) });
        Ok(true)
    }

    async fn unlock(&self, key: &str, owner: &str) -> DriverResult<bool> {
        let key = self.stored_key(key)?;
        let now = Instant::now();
        let mut locks = self.locks()?;
        match locks.get(&key) {
            Some(held) if held.owner == owner && held.is_live(now) => {
                locks.remove(&key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn disconnect(&self) -> DriverResult<()> {
        self.shared.disconnected.store(true, Ordering::Release);
        Ok(())
    }
}

bento_plugin_api::export_plugin! {
    name: "abi-0.1.1-fixture",
    layers: [local, remote],
    driver: BTreeDriver,
}
