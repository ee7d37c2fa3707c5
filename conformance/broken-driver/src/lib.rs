//! # bento-broken-driver
//!
//! Deliberately broken drivers that the conformance suite must catch. ONE
//! crate, one bug per Cargo feature (see Cargo.toml for the list and the
//! case expected to catch each); build with exactly one feature:
//!
//! ```text
//! cargo build -p bento-broken-driver --no-default-features --features pull_not_atomic
//! ```
//!
//! Without any feature the driver is correct. It wraps the same
//! [`MemoryStore`] as the memory plugin, but keeps one store with the empty
//! prefix and lays out keys itself, so a bug can reach keys of other
//! prefixes exactly like a wrong `DEL pattern*` or `LIKE 'prefix%'` would.
//!
//! The `wrong_api_version` feature exports a hand-written root module whose
//! API-version marker says `0.0.1`, so the loader must refuse it.
//!
//! Not for: anything but the conformance crate's own tests.

use bento_memory_store::{MemoryStore, MemoryStoreOptions};
use bento_plugin_api::{CacheDriver, DriverConfig, DriverError, DriverResult, Prefix, SetItem};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest stored key kept by the `truncates_long_keys` bug.
const TRUNCATE_AT: usize = 250;

/// The memory driver with one bug, chosen at build time.
pub struct BrokenDriver {
    /// One store for every prefix: the driver lays out keys itself.
    store: MemoryStore<Vec<u8>>,
    prefix: Prefix,
    /// The prefix the driver was created with (the `namespace_ignored_by_*`
    /// bugs use it instead of the handle's).
    root: Prefix,
    disconnected: Arc<AtomicBool>,
    default_ttl: Option<Duration>,
    /// The expiry each stored key was last given (`None` = never), for the
    /// `overwrite_keeps_*` bugs.
    expiries: Arc<Mutex<HashMap<String, Option<Instant>>>>,
}

impl BrokenDriver {
    fn check(&self) -> DriverResult<()> {
        if !self.disconnected.load(Ordering::Acquire) {
            Ok(())
        } else if cfg!(feature = "disconnect_hangs_or_panics") {
            panic!("the connection is gone")
        } else {
            Err(DriverError::disconnected())
        }
    }

    /// The stored key for `key`.
    fn stored_key(&self, key: &str) -> String {
        let mut full = self.prefix.key(key);
        if cfg!(feature = "sanitizes_keys") {
            full = full.replace(['/', '\\'], "_");
        }
        if cfg!(feature = "truncates_long_keys") && full.len() > TRUNCATE_AT {
            let mut end = TRUNCATE_AT;
            while !full.is_char_boundary(end) {
                end -= 1;
            }
            full.truncate(end);
        }
        full
    }

    /// The stored key for `key` in a method that, with `bug`, ignores the
    /// namespace and uses the root prefix.
    fn method_key(&self, key: &str, bug: bool) -> String {
        if bug {
            self.root.key(key)
        } else {
            self.stored_key(key)
        }
    }

    /// The TTL actually stored for a set of `stored` with `ttl`.
    fn ttl(&self, stored: &str, ttl: Option<Duration>) -> Option<Duration> {
        let ttl = if cfg!(feature = "ignores_default_ttl") { ttl } else { ttl.or(self.default_ttl) };
        let ttl = if cfg!(feature = "ignores_ttl") {
            None
        } else if cfg!(feature = "ttl_in_seconds_rounded_down") {
            ttl.map(|ttl| Duration::from_secs(ttl.as_secs()))
        } else if cfg!(feature = "ttl_wraps_at_u32_millis") {
            ttl.map(|ttl| Duration::from_millis(u64::from(ttl.as_millis() as u32)))
        } else {
            ttl
        };
        if cfg!(feature = "long_ttl_panics") {
            // What an unchecked `Instant + ttl` or a narrow integer does.
            assert!(ttl.is_none_or(|ttl| ttl < Duration::from_secs(366 * 24 * 3600)), "TTL overflow");
        }
        self.overwrite_ttl(stored, ttl)
    }

    /// Apply the `overwrite_keeps_*` bugs and record the resulting expiry.
    fn overwrite_ttl(&self, stored: &str, ttl: Option<Duration>) -> Option<Duration> {
        let now = Instant::now();
        let mut expiries = self.expiries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let old = if self.store.has(stored) { expiries.get(stored).copied() } else { None };
        let at = ttl.map(|ttl| now + ttl);
        let at = match (old, at) {
            (Some(Some(old)), Some(new)) if cfg!(feature = "overwrite_keeps_earlier_expiry") => Some(old.min(new)),
            (Some(Some(old)), Some(new)) if cfg!(feature = "overwrite_keeps_later_expiry") => Some(old.max(new)),
            (Some(None), Some(_)) if cfg!(feature = "overwrite_keeps_no_expiry") => None,
            _ => at,
        };
        expiries.insert(stored.to_string(), at);
        at.map(|at| at.saturating_duration_since(now))
    }

    fn read(&self, key: &str) -> Option<Vec<u8>> {
        let value = self.store.get(&self.stored_key(key));
        if cfg!(feature = "empty_value_is_missing") {
            value.filter(|value| !value.is_empty())
        } else {
            value
        }
    }
}

/// Does `text` match the SQL-LIKE/glob-like `pattern` (`_` `?` one
/// character, `%` `*` any run, `[..]` a class)? What an unescaped prefix
/// turns into.
fn wildcard_match(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('%' | '*', rest)) => (0..=text.len()).any(|skip| wildcard_match(rest, &text[skip..])),
        Some(('_' | '?', rest)) => !text.is_empty() && wildcard_match(rest, &text[1..]),
        Some(('[', rest)) => match rest.iter().position(|c| *c == ']') {
            Some(close) => {
                !text.is_empty() && rest[..close].contains(&text[0]) && wildcard_match(&rest[close + 1..], &text[1..])
            }
            None => text.first() == Some(&'[') && wildcard_match(rest, &text[1..]),
        },
        Some((c, rest)) => text.first() == Some(c) && wildcard_match(rest, &text[1..]),
    }
}

impl CacheDriver for BrokenDriver {
    type Options = MemoryStoreOptions;

    async fn connect(options: MemoryStoreOptions, config: DriverConfig) -> DriverResult<Self> {
        if cfg!(feature = "hanging_connect") {
            std::future::pending::<()>().await;
        }
        Ok(BrokenDriver {
            store: MemoryStore::new(&options, ""),
            prefix: Prefix::new(&config.prefix),
            root: Prefix::new(&config.prefix),
            disconnected: Arc::new(AtomicBool::new(false)),
            default_ttl: config.default_ttl,
            expiries: Arc::default(),
        })
    }

    fn namespace(&self, namespace: &str) -> DriverResult<Self> {
        self.check()?;
        if cfg!(feature = "empty_namespace_refused") && namespace.is_empty() {
            return Err(DriverError::invalid_key("the namespace is empty"));
        }
        let prefix = if cfg!(feature = "namespace_shares_root") {
            self.prefix.clone()
        } else if cfg!(feature = "empty_root_namespace_adds_separator") && self.prefix.is_empty() {
            Prefix::new(&format!(":{namespace}"))
        } else {
            self.prefix.namespace(namespace)
        };
        Ok(BrokenDriver {
            store: self.store.clone(),
            prefix,
            root: self.root.clone(),
            disconnected: self.disconnected.clone(),
            default_ttl: self.default_ttl,
            expiries: self.expiries.clone(),
        })
    }

    async fn get(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        self.check()?;
        if cfg!(feature = "hanging_get") {
            std::future::pending::<()>().await;
        }
        if cfg!(feature = "blocking_get") {
            // Blocks the thread polling this future, as a deadlock or a
            // blocking socket read would: no timer can cancel it.
            loop {
                std::thread::park();
            }
        }
        if cfg!(feature = "panicking_get") {
            panic!("the get path is broken");
        }
        Ok(self.read(key))
    }

    async fn pull(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        self.check()?;
        if cfg!(feature = "pull_not_atomic") {
            let value = self.read(key);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.store.remove(&self.stored_key(key));
            return Ok(value);
        }
        let value = self.store.pull(&self.method_key(key, cfg!(feature = "namespace_ignored_by_pull")));
        if cfg!(feature = "empty_value_is_missing") {
            Ok(value.filter(|value| !value.is_empty()))
        } else {
            Ok(value)
        }
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> DriverResult<bool> {
        self.check()?;
        let weight = value.len() as u64;
        let stored = self.stored_key(key);
        let ttl = self.ttl(&stored, ttl);
        Ok(self.store.insert(&stored, value, ttl, weight))
    }

    async fn has(&self, key: &str) -> DriverResult<bool> {
        self.check()?;
        if cfg!(feature = "has_disagrees_with_get") {
            return Ok(self.store.has(key));
        }
        Ok(self.read(key).is_some())
    }

    async fn delete(&self, key: &str) -> DriverResult<bool> {
        self.check()?;
        let existed = self.store.remove(&self.method_key(key, cfg!(feature = "namespace_ignored_by_delete")));
        Ok(existed || cfg!(feature = "delete_returns_true_for_missing"))
    }

    async fn clear(&self) -> DriverResult<()> {
        self.check()?;
        if cfg!(feature = "clear_ignores_prefix") || self.prefix.is_empty() {
            self.store.clear();
        } else if cfg!(feature = "namespace_clear_not_exact") {
            let prefix = self.prefix.as_str().to_string();
            self.store.retain(|key, _| !key.starts_with(&prefix));
        } else if cfg!(feature = "glob_or_like_unescaped") {
            let pattern: Vec<char> = format!("{}*", self.prefix.scope()).chars().collect();
            self.store.retain(|key, _| !wildcard_match(&pattern, &key.chars().collect::<Vec<_>>()));
        } else {
            let prefix = self.prefix.clone();
            self.store.retain(|key, _| !prefix.owns(key));
        }
        Ok(())
    }

    async fn prune(&self) -> DriverResult<()> {
        self.check()?;
        if cfg!(feature = "prune_removes_live_entries") {
            self.store.clear();
        } else {
            self.store.prune();
        }
        Ok(())
    }

    async fn disconnect(&self) -> DriverResult<()> {
        if cfg!(feature = "disconnect_hangs_or_panics") && self.disconnected.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
        self.disconnected.store(true, Ordering::Release);
        Ok(())
    }

    /// Only the `lock_not_exclusive` build declares a lock, and grants it
    /// to every caller.
    #[cfg(feature = "lock_not_exclusive")]
    fn capabilities(&self) -> bento_plugin_api::Capabilities {
        bento_plugin_api::Capabilities::LOCK
    }

    #[cfg(feature = "lock_not_exclusive")]
    async fn try_lock(&self, _key: &str, _owner: &str, _ttl: Duration) -> DriverResult<bool> {
        self.check()?;
        Ok(true)
    }

    #[cfg(feature = "lock_not_exclusive")]
    async fn unlock(&self, _key: &str, _owner: &str) -> DriverResult<bool> {
        self.check()?;
        Ok(true)
    }

    async fn get_many(&self, keys: &[String]) -> DriverResult<Vec<Option<Vec<u8>>>> {
        self.check()?;
        let mut values: Vec<Option<Vec<u8>>> = if cfg!(feature = "namespace_ignored_by_get_many") {
            keys.iter().map(|key| self.store.get(&self.root.key(key))).collect()
        } else {
            keys.iter().map(|key| self.read(key)).collect()
        };
        if cfg!(feature = "get_many_wrong_order") {
            values.sort_by_key(Option::is_none);
        }
        Ok(values)
    }

    async fn set_many(&self, items: Vec<SetItem>) -> DriverResult<bool> {
        self.check()?;
        let mut all = true;
        for item in items {
            let ttl = if cfg!(feature = "set_many_ignores_item_ttl") { None } else { item.ttl };
            all &= self.set(&item.key, item.value, ttl).await?;
        }
        Ok(all)
    }

    async fn delete_many(&self, keys: &[String]) -> DriverResult<u64> {
        self.check()?;
        let mut removed = 0;
        for key in keys {
            removed += u64::from(self.store.remove(&self.stored_key(key)));
        }
        if cfg!(feature = "delete_many_wrong_count") {
            return Ok(keys.len() as u64);
        }
        Ok(removed)
    }
}

#[cfg(not(feature = "wrong_api_version"))]
bento_plugin_api::export_plugin! {
    name: "broken",
    layers: [local, remote],
    driver: BrokenDriver,
}

/// What `export_plugin!` expands to (plugin-api/src/export.rs), written by
/// hand so the API-version marker and the metadata can claim `0.0.1`.
#[cfg(feature = "wrong_api_version")]
mod wrong_api_version {
    use super::BrokenDriver;
    use abi_stable::std_types::RString;
    use bento_plugin_api::__private::abi_stable;
    use bento_plugin_api::abi::{self, FfiBusBox, FfiDriverBox, FfiDriverConfig, FfiFut};

    /// The API version this plugin pretends to be built against.
    const CLAIMED_API_VERSION: &str = "0.0.1";

    extern "C" fn metadata() -> abi::PluginMetadata {
        abi::PluginMetadata {
            name: RString::from("broken-wrong-api"),
            version: RString::from(env!("CARGO_PKG_VERSION")),
            api_version: RString::from(CLAIMED_API_VERSION),
            layers: abi::Layers { local: true, remote: true },
            provides_driver: true,
            provides_bus: false,
            driver_options_schema: RString::from("{}"),
            bus_options_schema: RString::from("null"),
        }
    }

    extern "C" fn create_driver(options: RString, config: FfiDriverConfig) -> FfiFut<FfiDriverBox> {
        bento_plugin_api::DriverAdapter::<BrokenDriver>::create(options, config)
    }

    extern "C" fn create_bus(_options: RString) -> FfiFut<FfiBusBox> {
        abi::unsupported_future("this plugin provides no bus")
    }

    extern "C" fn configure_runtime(_worker_threads: u32) -> bool {
        true
    }

    extern "C" fn attach_host_runtime(_runtime: abi::FfiHostRuntimeBox) {}

    fn root_module() -> abi::PluginModRef {
        use abi_stable::prefix_type::PrefixTypeTrait;
        abi::PluginMod { metadata, create_driver, create_bus, configure_runtime, attach_host_runtime }
            .leak_into_prefix()
    }

    /// The API-version marker the host probes before loading: a wrong one.
    #[export_name = "bento_plugin_api_version"]
    pub extern "C" fn bento_plugin_api_version() -> *const std::os::raw::c_char {
        c"0.0.1".as_ptr()
    }

    #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
    pub static BENTO_ROOT_MODULE_LOADER: abi_stable::library::LibHeader = {
        extern "C" fn erased_module() -> abi_stable::library::RootModuleResult {
            abi_stable::library::__call_root_module_loader(root_module)
        }
        // SAFETY: `erased_module` returns the root module of type
        // `PluginModRef`, exactly the module type given here.
        unsafe {
            abi_stable::library::LibHeader::from_constructor::<abi::PluginModRef>(
                erased_module,
                abi_stable::library::CheckTypeLayout::Yes,
            )
        }
    };
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    fn matches(pattern: &str, text: &str) -> bool {
        wildcard_match(&pattern.chars().collect::<Vec<_>>(), &text.chars().collect::<Vec<_>>())
    }

    #[test]
    fn wildcards_match_like_an_unescaped_pattern_would() {
        assert!(matches("a_b:*", "axb:key"));
        assert!(matches("a%b:*", "ab:key"));
        assert!(matches("a[b]:*", "ab:key"));
        assert!(!matches("a_b:*", "ab:key"));
    }
}
