//! # bento-driver-sqlite
//!
//! A Bento driver over one SQLite table: the embedded default L2 (a file on
//! local disk, or `:memory:`), shared by every process that opens the same
//! file. Not for network filesystems (SQLite's locking needs a local disk).
//!
//! Options (JSON): `path` (required), `table` (default `bentocache`),
//! `auto_create_table` (default true), `prune_interval_ms` (default: none),
//! `busy_timeout_ms` (default 5000), `pool_size` (default 4; always 1 for
//! `:memory:`).
//!
//! Schema: `key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at INTEGER
//! NULL` (ms since the Unix epoch, NULL = never) plus an index on
//! `expires_at` for `prune()`. The database runs in WAL mode, so reads on
//! one pooled connection proceed while another writes. SQLite calls block:
//! they run on the plugin runtime's blocking pool, never on async workers.
//! `pull` is one `DELETE … RETURNING` statement (atomic); batch methods run
//! in one transaction; `clear()` deletes a key range (see
//! `Table::clear` for why not `LIKE`).
//!
//! Declares [`Capabilities::LOCK`]: a lock is a row of the same table whose
//! key is the BLOB [`toolkit::lock_key`] (`0xFF "lock:" prefix:key`) and
//! whose value is the owner. SQLite orders every BLOB after every TEXT and
//! never equates the two, so no entry read and no prefix `clear()` (a TEXT
//! range) sees a lock; `prune()` removes expired ones. `try_lock` is one
//! upsert with a `WHERE` (taken when absent, expired or already the
//! owner's) under SQLite's write lock; expiry uses each process's wall clock,
//! which processes on one machine share.
//!
//! This crate is the library: link it statically through `bento::Native`
//! (any number of bundled drivers and buses fit in one executable). The
//! plugin file `libbento_driver_sqlite.so` is built by the thin
//! `bento-driver-sqlite-plugin` crate (`plugins/sqlite/plugin`).

mod pool;
mod table;

use bento_plugin_api::toolkit::{self, Lifecycle};
use bento_plugin_api::{CacheDriver, Capabilities, DriverConfig, DriverError, DriverResult, Prefix, SetItem};
use pool::Pool;
use rusqlite::{Connection, ErrorCode};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use table::Table;

fn default_table() -> String {
    "bentocache".to_string()
}

fn default_true() -> bool {
    true
}

fn default_busy_timeout_ms() -> u64 {
    5000
}

/// Options of the SQLite driver.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqliteDriverOptions {
    /// Database file (created if missing; its folder must exist), or
    /// `:memory:` for a private in-memory database. Required.
    pub path: PathBuf,
    /// Table holding the entries: ASCII letters, digits and `_`, not
    /// starting with a digit, at most 64 chars. Default: `bentocache`.
    #[serde(default = "default_table")]
    pub table: String,
    /// Create the table (and its expiry index) if missing. When false, a
    /// missing table is an error at connect time. Default: true.
    #[serde(default = "default_true")]
    pub auto_create_table: bool,
    /// Delete expired rows in the background every this many
    /// milliseconds (stopped by `disconnect()`). Default: never.
    #[serde(default)]
    pub prune_interval_ms: Option<u64>,
    /// How long a statement waits for a lock held by another connection or
    /// process before failing with a timeout error. Default: 5000.
    #[serde(default = "default_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
    /// Number of pooled connections. Default: 4 (`:memory:`: always 1,
    /// since every connection would open its own empty database).
    #[serde(default)]
    pub pool_size: Option<usize>,
}

impl SqliteDriverOptions {
    /// Options for the database file `path` (or `:memory:`), every other
    /// option at its default, as the plugin's JSON `{"path": ...}` gives.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteDriverOptions {
            path: path.into(),
            table: default_table(),
            auto_create_table: true,
            prune_interval_ms: None,
            busy_timeout_ms: default_busy_timeout_ms(),
            pool_size: None,
        }
    }
}

/// Everything that can go wrong in this driver.
#[derive(Debug, thiserror::Error)]
pub enum SqliteDriverError {
    /// The `table` option is not a plain identifier.
    #[error(
        "invalid option `table`: {table:?} is not a valid table name \
         (ASCII letters, digits and `_`, not starting with a digit or `sqlite_`, at most 64 chars)"
    )]
    InvalidTableName {
        /// The rejected name.
        table: String,
    },
    /// Another option is out of range.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The database could not be opened or configured.
    #[error("cannot open SQLite database {path}: {source}")]
    Open {
        /// The database path.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// `auto_create_table` is false and the table does not exist (or lacks
    /// the expected columns).
    #[error("table `{table}` does not exist or lacks the key/value/expires_at columns, and auto_create_table is false: {source}")]
    MissingTable {
        /// The table name.
        table: String,
        /// SQLite's complaint.
        source: rusqlite::Error,
    },
    /// A statement failed.
    #[error("SQLite {operation} failed{}: {source}", if key.is_empty() { String::new() } else { format!(" for key `{key}`") })]
    Query {
        /// What was being done (`get`, `set`, `clear`, …).
        operation: &'static str,
        /// The stored key involved, or empty.
        key: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The driver was disconnected while the call waited for a connection.
    #[error("the driver was disconnected")]
    Disconnected,
}

fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

impl From<SqliteDriverError> for DriverError {
    fn from(error: SqliteDriverError) -> Self {
        match &error {
            SqliteDriverError::InvalidTableName { .. } | SqliteDriverError::InvalidOption { .. } => {
                DriverError::invalid_options(error)
            }
            SqliteDriverError::MissingTable { .. } => DriverError::invalid_options(error),
            SqliteDriverError::Open { .. } => DriverError::connection(error),
            SqliteDriverError::Query { source, .. } if is_busy(source) => DriverError::timeout(error),
            SqliteDriverError::Query { .. } => DriverError::backend(error),
            SqliteDriverError::Disconnected => DriverError::disconnected(),
        }
    }
}

/// State shared by a root handle and all its namespaces.
struct Shared {
    pool: Pool,
    table: Table,
    lifecycle: Lifecycle,
    /// TTL of entries set without one (`None` = forever).
    default_ttl: Option<Duration>,
}

impl AsRef<Lifecycle> for Shared {
    fn as_ref(&self) -> &Lifecycle {
        &self.lifecycle
    }
}

/// The SQLite driver: a connection pool, the table, this handle's prefix.
pub struct SqliteDriver {
    shared: Arc<Shared>,
    prefix: Prefix,
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    toolkit::now_ms() as i64
}

/// The stored expiry for `ttl` set now (TTL rounded up to whole ms).
fn expires_at(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|ttl| {
        let ms = i64::try_from(ttl.as_nanos().div_ceil(1_000_000)).unwrap_or(i64::MAX);
        now_ms().saturating_add(ms)
    })
}

fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, SqliteDriverError> {
    let fail = |source| SqliteDriverError::Open { path: path.to_path_buf(), source };
    let connection = Connection::open(path).map_err(fail)?;
    connection.busy_timeout(busy_timeout).map_err(fail)?;
    // In-memory databases answer "memory": WAL does not apply to them.
    let _mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(fail)?;
    // NORMAL is durable across application crashes in WAL mode; a cache
    // does not need to survive power loss at the cost of an fsync per write.
    connection.execute_batch("PRAGMA synchronous = NORMAL").map_err(fail)?;
    Ok(connection)
}

fn open_pool(options: &SqliteDriverOptions, table: &Table) -> Result<Pool, SqliteDriverError> {
    let in_memory = options.path.as_os_str() == ":memory:";
    let size = if in_memory { 1 } else { options.pool_size.unwrap_or(4) };
    if size == 0 {
        return Err(SqliteDriverError::InvalidOption { option: "pool_size", reason: "must be at least 1" });
    }
    let busy_timeout = Duration::from_millis(options.busy_timeout_ms);
    let first = open_connection(&options.path, busy_timeout)?;
    if options.auto_create_table {
        table.create(&first)?;
    } else {
        table.check_exists(&first)?;
    }
    let mut connections = vec![first];
    for _ in 1..size {
        connections.push(open_connection(&options.path, busy_timeout)?);
    }
    Ok(Pool::new(connections))
}

impl SqliteDriver {
    /// Run blocking SQLite work on a pooled connection, on the plugin
    /// runtime's blocking pool.
    async fn blocking<T, F>(&self, work: F) -> DriverResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Table, &mut Connection) -> Result<T, SqliteDriverError> + Send + 'static,
    {
        self.shared.lifecycle.ensure_connected()?;
        let shared = self.shared.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut connection = shared.pool.get().ok_or(SqliteDriverError::Disconnected)?;
            work(&shared.table, &mut connection)
        });
        match task.await {
            Ok(result) => result.map_err(DriverError::from),
            Err(error) if error.is_panic() => Err(DriverError::from_panic(error.into_panic())),
            Err(error) => Err(DriverError::backend(format!("SQLite operation cancelled: {error}"))),
        }
    }

    fn spawn_pruner(shared: &Arc<Shared>, interval: Duration) -> DriverResult<()> {
        toolkit::spawn_periodic(shared, interval, |shared| async move {
            // Errors are retried at the next tick; a cache keeps serving.
            let _ = tokio::task::spawn_blocking(move || {
                let connection = shared.pool.get().ok_or(SqliteDriverError::Disconnected)?;
                shared.table.prune(&connection, now_ms())
            })
            .await;
        })
    }
}

impl CacheDriver for SqliteDriver {
    type Options = SqliteDriverOptions;

    async fn connect(options: SqliteDriverOptions, config: DriverConfig) -> DriverResult<Self> {
        let table = Table::new(&options.table)?;
        if options.prune_interval_ms == Some(0) {
            return Err(
                SqliteDriverError::InvalidOption { option: "prune_interval_ms", reason: "must be at least 1" }.into()
            );
        }
        let prune_interval = options.prune_interval_ms.map(Duration::from_millis);
        let opened = tokio::task::spawn_blocking(move || open_pool(&options, &table).map(|pool| (pool, table)))
            .await
            .map_err(|error| DriverError::backend(format!("cannot open the SQLite database: {error}")))?;
        let (pool, table) = opened?;
        let shared = Arc::new(Shared { pool, table, lifecycle: Lifecycle::new(), default_ttl: config.default_ttl });
        if let Some(interval) = prune_interval {
            Self::spawn_pruner(&shared, interval)?;
        }
        Ok(SqliteDriver { shared, prefix: Prefix::new(&config.prefix) })
    }

    fn namespace(&self, namespace: &str) -> DriverResult<Self> {
        self.shared.lifecycle.ensure_connected()?;
        Ok(SqliteDriver { shared: self.shared.clone(), prefix: self.prefix.namespace(namespace) })
    }

    async fn get(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = self.prefix.key(key);
        self.blocking(move |table, connection| table.get(connection, &key, now_ms())).await
    }

    async fn get_many(&self, keys: &[String]) -> DriverResult<Vec<Option<Vec<u8>>>> {
        let keys: Vec<String> = keys.iter().map(|key| self.prefix.key(key)).collect();
        self.blocking(move |table, connection| table.get_many(connection, &keys, now_ms())).await
    }

    async fn pull(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = self.prefix.key(key);
        self.blocking(move |table, connection| table.take(connection, &key, now_ms())).await
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> DriverResult<bool> {
        let key = self.prefix.key(key);
        let expires_at = expires_at(ttl.or(self.shared.default_ttl));
        self.blocking(move |table, connection| table.set(connection, &key, &value, expires_at).map(|()| true)).await
    }

    async fn set_many(&self, items: Vec<SetItem>) -> DriverResult<bool> {
        if items.is_empty() {
            return self.blocking(|_, _| Ok(true)).await;
        }
        let items: Vec<(String, Vec<u8>, Option<i64>)> = items
            .into_iter()
            .map(|item| (self.prefix.key(&item.key), item.value, expires_at(item.ttl.or(self.shared.default_ttl))))
            .collect();
        self.blocking(move |table, connection| table.set_many(connection, &items).map(|()| true)).await
    }

    async fn has(&self, key: &str) -> DriverResult<bool> {
        let key = self.prefix.key(key);
        self.blocking(move |table, connection| table.has(connection, &key, now_ms())).await
    }

    async fn delete(&self, key: &str) -> DriverResult<bool> {
        let key = self.prefix.key(key);
        self.blocking(move |table, connection| Ok(table.take(connection, &key, now_ms())?.is_some())).await
    }

    async fn delete_many(&self, keys: &[String]) -> DriverResult<u64> {
        if keys.is_empty() {
            return self.blocking(|_, _| Ok(0)).await;
        }
        let keys: Vec<String> = keys.iter().map(|key| self.prefix.key(key)).collect();
        self.blocking(move |table, connection| table.delete_many(connection, &keys, now_ms())).await
    }

    async fn clear(&self) -> DriverResult<()> {
        let scope = self.prefix.scope();
        self.blocking(move |table, connection| table.clear(connection, &scope)).await
    }

    async fn prune(&self) -> DriverResult<()> {
        self.blocking(|table, connection| table.prune(connection, now_ms())).await
    }

    async fn disconnect(&self) -> DriverResult<()> {
        self.shared.lifecycle.disconnect();
        self.shared.pool.close();
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LOCK
    }

    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> DriverResult<bool> {
        let lock_key = toolkit::lock_key(&self.prefix.key(key));
        let owner = owner.to_string();
        self.blocking(move |table, connection| {
            let now = now_ms();
            let expires_at = expires_at(Some(ttl)).unwrap_or(i64::MAX);
            table.try_lock(connection, &lock_key, &owner, expires_at, now)
        })
        .await
    }

    async fn unlock(&self, key: &str, owner: &str) -> DriverResult<bool> {
        let lock_key = toolkit::lock_key(&self.prefix.key(key));
        let owner = owner.to_string();
        self.blocking(move |table, connection| table.unlock(connection, &lock_key, &owner, now_ms())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_options_equal_the_plugin_defaults() {
        let from_json: SqliteDriverOptions =
            serde_json::from_str(r#"{"path": "/tmp/bento"}"#).expect("valid options JSON");
        assert_eq!(SqliteDriverOptions::new("/tmp/bento"), from_json);
    }
}
