//! # bento-driver-file
//!
//! A Bento driver that keeps each entry in its own file under one directory:
//! a zero-dependency L2 for a single machine (several processes may share
//! the directory). Not for network filesystems without atomic `rename`, and
//! not a fast L1: every operation is a filesystem call.
//!
//! Options (JSON): `directory` (required; created if missing),
//! `prune_interval_ms` (default: no background pruning), `sync_writes`
//! (default false).
//!
//! ## Why hashed file names instead of a folder per namespace
//!
//! The stored key `prefix:key` decides the path:
//! `<directory>/<h[0..2]>/<h>`, `h` = hex SHA-256 of the stored key, and the
//! stored key is written inside the file. A folder-per-namespace layout
//! would make `clear()` cheap, but keys are arbitrary UTF-8 up to 1024 bytes
//! (and longer): percent-encoded segments overflow the 255-byte file-name
//! limit, a key of many `:` nests past `PATH_MAX`, and `users` (an entry)
//! versus `users:1` (inside a `users` folder) needs extra escaping to stay
//! injective. Hashing has none of these problems: names are 64 hex chars,
//! so no key can escape the directory or collide with anything, and
//! `root.get("users:1")` and `root.namespace("users").get("1")` hit the same
//! file by construction. The price is that `clear()` of a non-empty prefix
//! reads the head of every entry file to find the ones it owns
//! ([`Prefix::owns`], so `users` never clears `usersAbc`).
//!
//! Writes go to a temp file in the same folder and are renamed over the
//! entry, so readers see the old or the new value, never a torn one.
//! `pull` and `delete` claim the entry by renaming it away first: of N
//! concurrent claims exactly one rename succeeds. Expired and corrupt files
//! read as missing and are removed on read and by `prune()`.
//!
//! Locks (unix): declares [`Capabilities::LOCK`]; see `locks.rs`: one file
//! per lock under `<directory>/locks/`, every lock operation serialized by a
//! `flock` so it is atomic across the processes sharing the directory. On
//! other platforms the driver declares no capability.
//!
//! This crate is the library: link it statically through `bento::Native`
//! (any number of bundled drivers and buses fit in one executable). The
//! plugin file `libbento_driver_file.so` is built by the thin
//! `bento-driver-file-plugin` crate (`plugins/file/plugin`).

mod entry;
#[cfg(unix)]
mod locks;
mod store;

use bento_plugin_api::toolkit::{self, now_ms, require_at_least_one, Lifecycle};
use bento_plugin_api::{CacheDriver, Capabilities, DriverConfig, DriverError, DriverResult, Prefix, SetItem};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use store::FileStore;

/// Options of the file driver.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileDriverOptions {
    /// Directory holding the entries; created with its parents if missing.
    /// Required. With an empty prefix the driver owns it: `clear()` removes
    /// every entry file in it (other files are left alone).
    pub directory: PathBuf,
    /// Run `prune()` in the background every this many milliseconds (on the
    /// plugin's runtime, stopped by `disconnect()`). Default: never; call
    /// `prune()` yourself.
    #[serde(default)]
    pub prune_interval_ms: Option<u64>,
    /// `fsync` every entry before it replaces the old one, so it survives a
    /// power loss. Default: false (a cache can lose entries).
    #[serde(default)]
    pub sync_writes: bool,
}

impl FileDriverOptions {
    /// Options for the cache directory `directory`, every other option at
    /// its default, as the plugin's JSON `{"directory": ...}` gives.
    pub fn new(directory: impl Into<PathBuf>) -> Self {
        FileDriverOptions { directory: directory.into(), prune_interval_ms: None, sync_writes: false }
    }
}

/// Everything that can go wrong in this driver.
#[derive(Debug, thiserror::Error)]
pub enum FileDriverError {
    /// The cache directory could not be created.
    #[error("cannot create the cache directory {path}: {source}")]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `directory` option names something that is not a directory.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A filesystem operation on an entry failed.
    #[error("cannot {operation} {path}: {source}")]
    Io {
        /// What was being done (`read`, `rename`, …).
        operation: &'static str,
        /// The file or folder involved.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl From<FileDriverError> for DriverError {
    fn from(error: FileDriverError) -> Self {
        match error {
            FileDriverError::CreateDirectory { .. } | FileDriverError::NotADirectory { .. } => {
                DriverError::invalid_options(error)
            }
            FileDriverError::Io { .. } => DriverError::backend(error),
        }
    }
}

/// State shared by a root handle and all its namespaces.
struct Shared {
    store: FileStore,
    #[cfg(unix)]
    locks: locks::LockDir,
    lifecycle: Lifecycle,
    /// TTL of entries set without one (`None` = forever).
    default_ttl: Option<Duration>,
}

impl AsRef<Lifecycle> for Shared {
    fn as_ref(&self) -> &Lifecycle {
        &self.lifecycle
    }
}

/// The file driver: a directory plus this handle's key prefix.
pub struct FileDriver {
    shared: Arc<Shared>,
    prefix: Prefix,
}

/// The stored expiry for `ttl` set now: 0 = never, else ms since the epoch,
/// with the TTL rounded up to whole milliseconds.
fn expires_at(ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(ttl) => {
            let ms = ttl.as_nanos().div_ceil(1_000_000);
            now_ms().saturating_add(u64::try_from(ms).unwrap_or(u64::MAX)).max(1)
        }
    }
}

impl FileDriver {
    /// Run blocking store work on the plugin runtime's blocking pool.
    async fn blocking<T, F>(&self, work: F) -> DriverResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&FileStore) -> Result<T, FileDriverError> + Send + 'static,
    {
        self.shared.lifecycle.ensure_connected()?;
        let shared = self.shared.clone();
        match tokio::task::spawn_blocking(move || work(&shared.store)).await {
            Ok(result) => result.map_err(DriverError::from),
            Err(error) if error.is_panic() => Err(DriverError::from_panic(error.into_panic())),
            Err(error) => Err(DriverError::backend(format!("file operation cancelled: {error}"))),
        }
    }

    fn spawn_pruner(shared: &Arc<Shared>, interval: Duration) -> DriverResult<()> {
        toolkit::spawn_periodic(shared, interval, |shared| async move {
            // Errors are retried at the next tick; a cache keeps serving.
            let _ = tokio::task::spawn_blocking(move || shared.store.prune(now_ms())).await;
        })
    }
}

impl CacheDriver for FileDriver {
    type Options = FileDriverOptions;

    async fn connect(options: FileDriverOptions, config: DriverConfig) -> DriverResult<Self> {
        if let Some(interval) = options.prune_interval_ms {
            require_at_least_one(&[("prune_interval_ms", interval)])?;
        }
        let directory = options.directory.clone();
        #[cfg(unix)]
        let locks = locks::LockDir::new(&directory);
        let sync_writes = options.sync_writes;
        let store = tokio::task::spawn_blocking(move || FileStore::open(directory, sync_writes))
            .await
            .map_err(|error| DriverError::backend(format!("cannot open the cache directory: {error}")))??;
        let shared = Arc::new(Shared {
            store,
            #[cfg(unix)]
            locks,
            lifecycle: Lifecycle::new(),
            default_ttl: config.default_ttl,
        });
        if let Some(interval_ms) = options.prune_interval_ms {
            Self::spawn_pruner(&shared, Duration::from_millis(interval_ms))?;
        }
        Ok(FileDriver { shared, prefix: Prefix::new(&config.prefix) })
    }

    fn namespace(&self, namespace: &str) -> DriverResult<Self> {
        self.shared.lifecycle.ensure_connected()?;
        Ok(FileDriver { shared: self.shared.clone(), prefix: self.prefix.namespace(namespace) })
    }

    async fn get(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = self.prefix.key(key);
        self.blocking(move |store| store.get(&key, now_ms())).await
    }

    async fn get_many(&self, keys: &[String]) -> DriverResult<Vec<Option<Vec<u8>>>> {
        let keys: Vec<String> = keys.iter().map(|key| self.prefix.key(key)).collect();
        self.blocking(move |store| {
            let now = now_ms();
            keys.iter().map(|key| store.get(key, now)).collect()
        })
        .await
    }

    async fn pull(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = self.prefix.key(key);
        self.blocking(move |store| store.take(&key, now_ms(), true)).await
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> DriverResult<bool> {
        let key = self.prefix.key(key);
        let expires_at = expires_at(ttl.or(self.shared.default_ttl));
        self.blocking(move |store| store.set(&key, &value, expires_at).map(|()| true)).await
    }

    async fn set_many(&self, items: Vec<SetItem>) -> DriverResult<bool> {
        let items: Vec<(String, Vec<u8>, u64)> = items
            .into_iter()
            .map(|item| (self.prefix.key(&item.key), item.value, expires_at(item.ttl.or(self.shared.default_ttl))))
            .collect();
        self.blocking(move |store| {
            for (key, value, expires_at) in &items {
                store.set(key, value, *expires_at)?;
            }
            Ok(true)
        })
        .await
    }

    async fn has(&self, key: &str) -> DriverResult<bool> {
        let key = self.prefix.key(key);
        self.blocking(move |store| store.has(&key, now_ms())).await
    }

    async fn delete(&self, key: &str) -> DriverResult<bool> {
        let key = self.prefix.key(key);
        self.blocking(move |store| Ok(store.take(&key, now_ms(), false)?.is_some())).await
    }

    async fn delete_many(&self, keys: &[String]) -> DriverResult<u64> {
        let keys: Vec<String> = keys.iter().map(|key| self.prefix.key(key)).collect();
        self.blocking(move |store| {
            let now = now_ms();
            let mut removed = 0;
            for key in &keys {
                removed += u64::from(store.take(key, now, false)?.is_some());
            }
            Ok(removed)
        })
        .await
    }

    async fn clear(&self) -> DriverResult<()> {
        let prefix = self.prefix.clone();
        self.blocking(move |store| store.clear(&prefix)).await
    }

    async fn prune(&self) -> DriverResult<()> {
        #[cfg(unix)]
        let shared = self.shared.clone();
        self.blocking(move |store| {
            store.prune(now_ms())?;
            #[cfg(unix)]
            shared.locks.prune(now_ms())?;
            Ok(())
        })
        .await
    }

    async fn disconnect(&self) -> DriverResult<()> {
        self.shared.lifecycle.disconnect();
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        if cfg!(unix) {
            Capabilities::LOCK
        } else {
            Capabilities::NONE
        }
    }

    #[cfg(unix)]
    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> DriverResult<bool> {
        let key = self.prefix.key(key);
        let owner = owner.to_string();
        let shared = self.shared.clone();
        let expires_at = expires_at(Some(ttl));
        self.blocking(move |_| shared.locks.try_lock(&key, &owner, expires_at, now_ms())).await
    }

    #[cfg(unix)]
    async fn unlock(&self, key: &str, owner: &str) -> DriverResult<bool> {
        let key = self.prefix.key(key);
        let owner = owner.to_string();
        let shared = self.shared.clone();
        self.blocking(move |_| shared.locks.unlock(&key, &owner, now_ms())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_options_equal_the_plugin_defaults() {
        let from_json: FileDriverOptions =
            serde_json::from_str(r#"{"directory": "/tmp/bento"}"#).expect("valid options JSON");
        assert_eq!(FileDriverOptions::new("/tmp/bento"), from_json);
    }
}
