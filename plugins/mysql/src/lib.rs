//! # bento-driver-mysql
//!
//! Bento's MySQL / MariaDB driver: the driver contract (SPEC §3) over one
//! InnoDB table, exported as a plugin that serves the remote (L2) layer. Use
//! it when the cache must be shared by several processes and MySQL or
//! MariaDB is already there; it is not a local (L1) store and knows nothing
//! of grace periods, tags or locks (the host does).
//!
//! ## Client
//!
//! [`mysql_async`] (tokio-based, with its own pool and per-connection
//! prepared-statement cache), built without a TLS stack.
//!
//! ## Storage
//!
//! ```sql
//! CREATE TABLE `bentocache` (
//!   key_hash BINARY(32) NOT NULL PRIMARY KEY,  -- SHA-256 of cache_key
//!   cache_key VARBINARY(4096) NOT NULL,        -- the full stored key
//!   value LONGBLOB NOT NULL,
//!   expires_at BIGINT NULL,                    -- ms since the epoch, server clock
//!   KEY (expires_at)
//! ) ENGINE=InnoDB
//! ```
//!
//! InnoDB limits index keys to 3072 bytes, less than a 1024-character key
//! can take, so the primary key is the SHA-256 of the stored key; reads also
//! compare the full key, and a stored key longer than 4096 bytes is refused
//! with `InvalidKey` (never truncated). Expiry uses the server's clock in
//! milliseconds (sessions run in UTC). An expired row is never returned;
//! `prune()` (or the optional `prune_interval_ms` task) deletes them.
//! `pull()` is a transaction (`SELECT .. FOR UPDATE`, then `DELETE`), which
//! works on MySQL and MariaDB alike. `clear()` uses `LIKE` with `%`, `_` and
//! the escape character escaped in the prefix.
//!
//! Declares [`Capabilities::LOCK`]: a lock is a row of the same table under
//! [`toolkit::lock_key`] (`0xFF "lock:" prefix:key`, which no entry key can
//! equal and no prefix `clear()` matches) holding the owner as its value.
//! `try_lock` is one transaction: delete the row if it expired or is already
//! the owner's, then `INSERT` it (a duplicate key means another owner holds
//! it; InnoDB's row lock on the deleted row makes racing callers wait for
//! the outcome). `unlock` is one owner-checked `DELETE`. Expiry uses the server clock like entries, and
//! `prune()` removes expired locks too.
//!
//! Values are bounded by the server's `max_allowed_packet` (MariaDB's
//! default is 16 MiB, too small for a 16 MiB value plus protocol overhead):
//! a larger value is refused with a `Backend` error naming the setting.
//! Raise it on the server, e.g. `SET GLOBAL max_allowed_packet=67108864`.
//!
//! ## Options (JSON, all optional)
//!
//! See [`MysqlOptions`]: `url`, `table`, `auto_create_table`, `pool_size`,
//! `connect_timeout_ms`, `timeout_ms`, `prune_interval_ms`.
//!
//! This crate is the library: link it statically through `bento::Native`
//! (any number of bundled drivers and buses fit in one executable). The
//! plugin file `libbento_driver_mysql.so` is built by the thin
//! `bento-driver-mysql-plugin` crate (`plugins/mysql/plugin`).

use bento_plugin_api::toolkit::{self, require_at_least_one, Lifecycle};
use bento_plugin_api::{
    CacheDriver, Capabilities, DriverConfig, DriverError, DriverResult, ErrorKind, Prefix, SetItem,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, TxOpts, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Options of the MySQL / MariaDB driver.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MysqlOptions {
    /// Connection URL, `mysql://user:password@host:port/database`, with
    /// mysql_async's URL parameters (e.g. `?prefer_socket=false` keeps a
    /// loopback connection on TCP instead of moving to the server's Unix
    /// socket). Default: `mysql://root@127.0.0.1:3306/test`.
    pub url: String,
    /// Table holding the entries: letters, digits and `_`, not starting with
    /// a digit, at most 64 bytes. Default: `bentocache`.
    pub table: String,
    /// Create the table when it does not exist. Default: `true`.
    pub auto_create_table: bool,
    /// Maximum number of pooled connections. Default: `8`.
    pub pool_size: usize,
    /// Bound on connecting when the driver is created, in milliseconds.
    /// Default: `5000`.
    pub connect_timeout_ms: u64,
    /// Bound on every operation (waiting for or opening a pooled connection
    /// included), in milliseconds. Default: `5000`.
    pub timeout_ms: u64,
    /// When set, expired rows are deleted every this many milliseconds by a
    /// background task. Default: none (call `prune()` yourself).
    pub prune_interval_ms: Option<u64>,
}

impl Default for MysqlOptions {
    fn default() -> Self {
        MysqlOptions {
            url: "mysql://root@127.0.0.1:3306/test".to_string(),
            table: "bentocache".to_string(),
            auto_create_table: true,
            pool_size: 8,
            connect_timeout_ms: 5000,
            timeout_ms: 5000,
            prune_interval_ms: None,
        }
    }
}

/// Longest stored key (`prefix:key` in bytes) the key column holds.
const MAX_STORED_KEY_BYTES: usize = 4096;
/// Most rows per multi-row statement (4 placeholders each, far below the
/// protocol's 65 535 placeholder limit).
const BATCH_ROWS: usize = 1000;
/// Most bytes of values per multi-row statement (a single bigger value
/// gets a statement of its own).
const BATCH_BYTES: usize = 1 << 20;
/// Room for the key, the other columns and protocol headers next to a value
/// when checking it against `max_allowed_packet`.
const PACKET_OVERHEAD: usize = MAX_STORED_KEY_BYTES + 1024;
/// TTLs longer than this are stored as "forever".
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;
/// The server's clock in milliseconds since the epoch (sessions are UTC).
macro_rules! now_ms {
    () => {
        "CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)"
    };
}
const NOW_MS: &str = now_ms!();
/// True for a row that has not expired.
const LIVE: &str = concat!("(expires_at IS NULL OR expires_at > ", now_ms!(), ")");

/// MySQL error codes the driver maps to specific kinds.
mod codes {
    /// ER_NET_PACKET_TOO_LARGE.
    pub const PACKET_TOO_LARGE: u16 = 1153;
    /// ER_WARN_ALLOWED_PACKET_OVERFLOWED.
    pub const PACKET_OVERFLOWED: u16 = 1301;
    /// ER_STATEMENT_TIMEOUT (MariaDB `max_statement_time`).
    pub const STATEMENT_TIMEOUT: u16 = 1969;
    /// ER_QUERY_TIMEOUT (MySQL `max_execution_time`).
    pub const QUERY_TIMEOUT: u16 = 3024;
    /// ER_LOCK_WAIT_TIMEOUT.
    pub const LOCK_WAIT_TIMEOUT: u16 = 1205;
    /// ER_LOCK_DEADLOCK.
    pub const DEADLOCK: u16 = 1213;
    /// ER_TABLE_EXISTS_ERROR.
    pub const TABLE_EXISTS: u16 = 1050;
    /// ER_DUP_ENTRY.
    pub const DUPLICATE_ENTRY: u16 = 1062;
}

/// `true` for an unquoted-identifier-safe table name.
fn valid_table_name(table: &str) -> bool {
    let mut chars = table.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && table.len() <= 64
}

/// `LIKE` pattern matching every key that starts with `scope`, for
/// `ESCAPE '!'`. `!` rather than `\` because a backslash in a string literal
/// means different things depending on the server's `NO_BACKSLASH_ESCAPES`.
fn like_prefix_pattern(scope: &str) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(scope.len() + 1);
    for byte in scope.bytes() {
        if matches!(byte, b'%' | b'_' | b'!') {
            pattern.push(b'!');
        }
        pattern.push(byte);
    }
    pattern.push(b'%');
    pattern
}

/// The TTL parameter: whole milliseconds rounded up, or NULL for "forever".
fn ttl_param(ttl: Option<Duration>) -> Value {
    let Some(ttl) = ttl else { return Value::NULL };
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let ms = if Duration::from_millis(ms) < ttl { ms.saturating_add(1) } else { ms };
    if ms <= MAX_TTL_MS {
        Value::Int(i64::try_from(ms).expect("bounded by MAX_TTL_MS"))
    } else {
        Value::NULL
    }
}

/// A stored key with its hash, ready to be bound.
struct StoredKey {
    hash: Vec<u8>,
    key: Vec<u8>,
}

impl StoredKey {
    fn new(stored: String) -> DriverResult<Self> {
        if stored.len() > MAX_STORED_KEY_BYTES {
            let shown: String = stored.chars().take(64).collect();
            return Err(DriverError::invalid_key(format!(
                "key {shown:?}… is {} bytes with its prefix; the mysql driver stores at most {MAX_STORED_KEY_BYTES}",
                stored.len()
            )));
        }
        Ok(StoredKey { hash: Sha256::digest(stored.as_bytes()).to_vec(), key: stored.into_bytes() })
    }

    /// The row of the lock named `stored` ([`toolkit::lock_key`]).
    fn lock(stored: String) -> DriverResult<Self> {
        let key = toolkit::lock_key(&stored);
        if key.len() > MAX_STORED_KEY_BYTES {
            return Err(DriverError::invalid_key(format!(
                "the lock key is {} bytes with its prefix; the mysql driver stores at most {MAX_STORED_KEY_BYTES}",
                key.len()
            )));
        }
        Ok(StoredKey { hash: Sha256::digest(&key).to_vec(), key })
    }
}

/// The fixed statements of one table, built once at connect time.
struct Statements {
    table: String,
    get: String,
    has: String,
    set: String,
    pull_select: String,
    pull_delete: String,
    delete: String,
    clear_prefix: String,
    clear_all: String,
    prune: String,
    lock_release_stale: String,
    lock_insert: String,
    unlock: String,
}

const UPSERT: &str =
    "ON DUPLICATE KEY UPDATE cache_key = VALUES(cache_key), `value` = VALUES(`value`), expires_at = VALUES(expires_at)";

impl Statements {
    fn new(table: &str) -> Self {
        let t = format!("`{table}`");
        let by_key = "key_hash = ? AND cache_key = ?";
        Statements {
            get: format!("SELECT `value` FROM {t} WHERE {by_key} AND {LIVE}"),
            has: format!("SELECT 1 FROM {t} WHERE {by_key} AND {LIVE}"),
            set: format!(
                "INSERT INTO {t} (key_hash, cache_key, `value`, expires_at) VALUES (?, ?, ?, {NOW_MS} + ?) {UPSERT}"
            ),
            pull_select: format!("SELECT `value`, {LIVE} FROM {t} WHERE {by_key} FOR UPDATE"),
            pull_delete: format!("DELETE FROM {t} WHERE {by_key}"),
            delete: format!("DELETE FROM {t} WHERE {by_key} AND {LIVE}"),
            clear_prefix: format!("DELETE FROM {t} WHERE cache_key LIKE ? ESCAPE '!'"),
            clear_all: format!("DELETE FROM {t}"),
            prune: format!("DELETE FROM {t} WHERE expires_at <= {NOW_MS}"),
            lock_release_stale: format!("DELETE FROM {t} WHERE {by_key} AND (expires_at <= {NOW_MS} OR `value` = ?)"),
            lock_insert: format!(
                "INSERT INTO {t} (key_hash, cache_key, `value`, expires_at) VALUES (?, ?, ?, {NOW_MS} + ?)"
            ),
            unlock: format!("DELETE FROM {t} WHERE {by_key} AND `value` = ? AND expires_at > {NOW_MS}"),
            table: t,
        }
    }

    fn create_table(table: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS `{table}` (\
             key_hash BINARY(32) NOT NULL PRIMARY KEY, \
             cache_key VARBINARY({MAX_STORED_KEY_BYTES}) NOT NULL, \
             `value` LONGBLOB NOT NULL, \
             expires_at BIGINT NULL, \
             KEY expires_at (expires_at)\
             ) ENGINE=InnoDB"
        )
    }

    /// `SELECT` of the live rows among `count` keys.
    fn get_many(&self, count: usize) -> String {
        format!("SELECT cache_key, `value` FROM {} WHERE key_hash IN ({}) AND {LIVE}", self.table, placeholders(count))
    }

    /// `DELETE` of the live rows among `count` keys. A row is matched by
    /// hash and by full key, so it is one of the listed keys.
    fn delete_many(&self, count: usize) -> String {
        let list = placeholders(count);
        format!("DELETE FROM {} WHERE key_hash IN ({list}) AND cache_key IN ({list}) AND {LIVE}", self.table)
    }

    /// Multi-row upsert of `count` entries.
    fn set_many(&self, count: usize) -> String {
        let row = format!("(?, ?, ?, {NOW_MS} + ?)");
        let rows = vec![row.as_str(); count].join(", ");
        format!("INSERT INTO {} (key_hash, cache_key, `value`, expires_at) VALUES {rows} {UPSERT}", self.table)
    }
}

fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// Turn a mysql_async error into the driver's error kinds.
fn mysql_error(context: &str, error: mysql_async::Error) -> DriverError {
    use mysql_async::{DriverError as Driver, Error};
    let kind = match &error {
        Error::Server(server) => match server.code {
            codes::PACKET_TOO_LARGE | codes::PACKET_OVERFLOWED => {
                return DriverError::backend(format!(
                    "mysql {context}: {server} (the server's max_allowed_packet is too small for this value; \
                     raise it, e.g. SET GLOBAL max_allowed_packet=67108864)"
                ));
            }
            codes::STATEMENT_TIMEOUT | codes::QUERY_TIMEOUT | codes::LOCK_WAIT_TIMEOUT => ErrorKind::TIMEOUT,
            _ => ErrorKind::BACKEND,
        },
        Error::Driver(Driver::PoolDisconnected) => return DriverError::disconnected(),
        Error::Driver(Driver::ConnectionClosed) | Error::Io(_) | Error::Other(_) => ErrorKind::CONNECTION,
        Error::Driver(_) => ErrorKind::BACKEND,
        Error::Url(_) => ErrorKind::INVALID_OPTIONS,
    };
    DriverError::new(kind, format!("mysql {context}: {error}"))
}

/// State shared by the root handle and all its namespaces.
struct Shared {
    pool: Pool,
    statements: Statements,
    timeout: Duration,
    /// The server's `max_allowed_packet` when the driver connected.
    max_allowed_packet: usize,
    lifecycle: Lifecycle,
    /// TTL of entries set without one (`None` = forever).
    default_ttl: Option<Duration>,
}

impl AsRef<Lifecycle> for Shared {
    fn as_ref(&self) -> &Lifecycle {
        &self.lifecycle
    }
}

impl Shared {
    /// Run `operation` on a pooled connection, bounded by the configured
    /// timeout; fails fast once disconnected. An operation InnoDB picked as
    /// a deadlock victim was rolled back whole, so it is run again (with a
    /// short, growing pause) until it succeeds or the timeout expires:
    /// racing upserts, deletes and pulls of one key do deadlock.
    async fn with_conn<T, F, Fut>(&self, context: &'static str, operation: F) -> DriverResult<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<T, mysql_async::Error>>,
    {
        self.lifecycle.ensure_connected()?;
        let work = async {
            let mut pause = Duration::from_micros(500);
            loop {
                let conn = self.pool.get_conn().await.map_err(|error| mysql_error(context, error))?;
                match operation(conn).await {
                    Err(mysql_async::Error::Server(server)) if server.code == codes::DEADLOCK => {
                        tokio::time::sleep(pause + jitter(pause)).await;
                        pause = (pause * 2).min(Duration::from_millis(50));
                    }
                    result => return result.map_err(|error| mysql_error(context, error)),
                }
            }
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(DriverError::timeout(format!("mysql {context}: no answer within {:?}", self.timeout))),
        }
    }

    fn check_value_size(&self, key: &StoredKey, value: &[u8]) -> DriverResult<()> {
        if value.len().saturating_add(PACKET_OVERHEAD) > self.max_allowed_packet {
            return Err(DriverError::backend(format!(
                "mysql set {:?}: a value of {} bytes does not fit the server's max_allowed_packet ({} bytes); \
                 raise it, e.g. SET GLOBAL max_allowed_packet=67108864",
                String::from_utf8_lossy(&key.key),
                value.len(),
                self.max_allowed_packet
            )));
        }
        Ok(())
    }

    async fn prune(&self) -> DriverResult<()> {
        self.with_conn("prune", |mut conn| async move { conn.exec_drop(&self.statements.prune, ()).await }).await
    }
}

/// A MySQL / MariaDB driver handle: the shared pool plus this handle's prefix.
pub struct MysqlDriver {
    shared: Arc<Shared>,
    prefix: Prefix,
}

impl MysqlDriver {
    fn stored_key(&self, key: &str) -> DriverResult<StoredKey> {
        StoredKey::new(self.prefix.key(key))
    }
}

/// Parse the URL and apply the driver's session settings.
fn connection_opts(options: &MysqlOptions) -> DriverResult<Opts> {
    let url_opts = Opts::from_url(&options.url)
        .map_err(|error| DriverError::invalid_options(format!("invalid option `url`: {error}")))?;
    // Idle connections are kept up to `pool_size` (mysql_async closes every
    // idle connection above `min` at once unless an idle TTL is set). No
    // reset on return to the pool: it would drop the prepared-statement
    // cache, and the driver leaves no session state behind.
    let pool_opts = PoolOpts::new()
        .with_constraints(PoolConstraints::new(1, options.pool_size).expect("1 <= pool_size, checked above"))
        .with_inactive_connection_ttl(Duration::from_secs(60))
        .with_reset_connection(false);
    Ok(OptsBuilder::from_opts(url_opts)
        .pool_opts(pool_opts)
        .setup(vec![
            "SET time_zone = '+00:00'",
            // No gap locks: fewer deadlocks between racing upserts and pulls.
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
        ])
        .into())
}

async fn create_table(conn: &mut Conn, table: &str) -> Result<(), mysql_async::Error> {
    match conn.query_drop(Statements::create_table(table)).await {
        // Another process created it between our check and create.
        Err(mysql_async::Error::Server(server)) if server.code == codes::TABLE_EXISTS => Ok(()),
        other => other,
    }
}

impl CacheDriver for MysqlDriver {
    type Options = MysqlOptions;

    async fn connect(options: MysqlOptions, config: DriverConfig) -> DriverResult<Self> {
        if !valid_table_name(&options.table) {
            return Err(DriverError::invalid_options(format!(
                "invalid option `table`: {:?} is not a plain identifier (letters, digits, `_`, at most 64 bytes)",
                options.table
            )));
        }
        require_at_least_one(&[("pool_size", options.pool_size as u64), ("timeout_ms", options.timeout_ms)])?;
        let pool = Pool::new(connection_opts(&options)?);
        let connect_timeout = Duration::from_millis(options.connect_timeout_ms.max(1));
        let timeout = Duration::from_millis(options.timeout_ms);

        // Connect once now so a wrong URL or a down server fails here.
        let startup = async {
            let mut conn = pool.get_conn().await?;
            if options.auto_create_table {
                create_table(&mut conn, &options.table).await?;
            }
            let max_allowed_packet: Option<u64> = conn.query_first("SELECT @@max_allowed_packet").await?;
            Ok::<_, mysql_async::Error>(max_allowed_packet)
        };
        let max_allowed_packet = match tokio::time::timeout(connect_timeout + timeout, startup).await {
            Ok(Ok(max_allowed_packet)) => max_allowed_packet,
            Ok(Err(error)) => {
                let error = mysql_error("connect", error);
                // Access denied, unknown database, ...: the driver could not connect.
                let kind = if error.kind == ErrorKind::BACKEND { ErrorKind::CONNECTION } else { error.kind };
                let _ = pool.disconnect().await;
                return Err(DriverError::new(kind, error.message));
            }
            Err(_) => {
                drop(pool);
                return Err(DriverError::timeout(format!("mysql connect: no answer within {connect_timeout:?}")));
            }
        };

        let shared = Arc::new(Shared {
            pool,
            statements: Statements::new(&options.table),
            timeout,
            max_allowed_packet: max_allowed_packet.and_then(|n| usize::try_from(n).ok()).unwrap_or(usize::MAX),
            lifecycle: Lifecycle::new(),
            default_ttl: config.default_ttl,
        });
        if let Some(interval_ms) = options.prune_interval_ms.filter(|ms| *ms > 0) {
            // A failed prune is retried at the next tick.
            toolkit::spawn_periodic(&shared, Duration::from_millis(interval_ms), |shared| async move {
                let _ = shared.prune().await;
            })?;
        }
        Ok(MysqlDriver { shared, prefix: Prefix::new(&config.prefix) })
    }

    fn namespace(&self, namespace: &str) -> DriverResult<Self> {
        self.shared.lifecycle.ensure_connected()?;
        Ok(MysqlDriver { shared: self.shared.clone(), prefix: self.prefix.namespace(namespace) })
    }

    async fn get(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = self.stored_key(key)?;
        let (key, sql) = (&key, &self.shared.statements.get);
        self.shared.with_conn("get", |mut conn| async move { conn.exec_first(sql, (&key.hash, &key.key)).await }).await
    }

    async fn has(&self, key: &str) -> DriverResult<bool> {
        let key = self.stored_key(key)?;
        let (key, sql) = (&key, &self.shared.statements.has);
        self.shared
            .with_conn("has", |mut conn| async move {
                let found: Option<i64> = conn.exec_first(sql, (&key.hash, &key.key)).await?;
                Ok(found.is_some())
            })
            .await
    }

    async fn get_many(&self, keys: &[String]) -> DriverResult<Vec<Option<Vec<u8>>>> {
        let stored = keys.iter().map(|key| self.stored_key(key)).collect::<DriverResult<Vec<_>>>()?;
        let statements = &self.shared.statements;
        let hashes: &[StoredKey] = &stored;
        let found: HashMap<Vec<u8>, Vec<u8>> = self
            .shared
            .with_conn("get_many", |mut conn| async move {
                let mut found = HashMap::new();
                for chunk in hashes.chunks(BATCH_ROWS) {
                    let params: Vec<Value> = chunk.iter().map(|key| Value::Bytes(key.hash.clone())).collect();
                    let rows: Vec<(Vec<u8>, Vec<u8>)> = conn.exec(statements.get_many(chunk.len()), params).await?;
                    found.extend(rows);
                }
                Ok(found)
            })
            .await?;
        // Rows are matched by hash; the full key is compared here.
        Ok(stored.iter().map(|key| found.get(&key.key).cloned()).collect())
    }

    async fn pull(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = &self.stored_key(key)?;
        let statements = &self.shared.statements;
        self.shared
            .with_conn("pull", |mut conn| async move {
                let mut transaction = conn.start_transaction(TxOpts::default()).await?;
                let row: Option<(Vec<u8>, bool)> =
                    transaction.exec_first(&statements.pull_select, (&key.hash, &key.key)).await?;
                if row.is_some() {
                    transaction.exec_drop(&statements.pull_delete, (&key.hash, &key.key)).await?;
                }
                transaction.commit().await?;
                Ok(row.and_then(|(value, live)| live.then_some(value)))
            })
            .await
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> DriverResult<bool> {
        let key = self.stored_key(key)?;
        self.shared.check_value_size(&key, &value)?;
        let sql = &self.shared.statements.set;
        let params = &Params::Positional(vec![
            Value::Bytes(key.hash),
            Value::Bytes(key.key),
            Value::Bytes(value),
            ttl_param(ttl.or(self.shared.default_ttl)),
        ]);
        self.shared
            .with_conn("set", |mut conn| async move { conn.exec_drop(sql, params.clone()).await.map(|()| true) })
            .await
    }

    async fn set_many(&self, items: Vec<SetItem>) -> DriverResult<bool> {
        if items.is_empty() {
            return Ok(true);
        }
        // The last occurrence of a key wins, like consecutive sets; rows go
        // in primary-key order so concurrent batches lock them in the same
        // order.
        let mut latest = std::collections::BTreeMap::new();
        for item in items {
            let key = self.stored_key(&item.key)?;
            self.shared.check_value_size(&key, &item.value)?;
            latest.insert(key.hash, (key.key, item.value, item.ttl.or(self.shared.default_ttl)));
        }
        let rows = latest.into_iter().map(|(hash, (key, value, ttl))| {
            [Value::Bytes(hash), Value::Bytes(key), Value::Bytes(value), ttl_param(ttl)]
        });
        // Big values go one statement each so a statement stays below
        // max_allowed_packet; small ones share statements.
        let mut batches: Vec<Vec<Value>> = vec![Vec::new()];
        let mut batch_bytes = 0;
        for row in rows {
            let row_bytes: usize = row.iter().map(value_len).sum();
            let current = batches.last().expect("never empty");
            if !current.is_empty() && (current.len() / 4 >= BATCH_ROWS || batch_bytes + row_bytes > BATCH_BYTES) {
                batches.push(Vec::new());
                batch_bytes = 0;
            }
            batch_bytes += row_bytes;
            batches.last_mut().expect("never empty").extend(row);
        }
        let (batches, statements) = (&batches, &self.shared.statements);
        self.shared
            .with_conn("set_many", |mut conn| async move {
                // One transaction keeps the batch all-or-nothing.
                let mut transaction = conn.start_transaction(TxOpts::default()).await?;
                for params in batches {
                    transaction.exec_drop(statements.set_many(params.len() / 4), params.clone()).await?;
                }
                transaction.commit().await?;
                Ok(true)
            })
            .await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LOCK
    }

    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> DriverResult<bool> {
        let key = StoredKey::lock(self.prefix.key(key))?;
        let statements = &self.shared.statements;
        // Capped so that a lock always expires (an uncapped TTL means forever).
        let ttl = ttl_param(Some(ttl.min(Duration::from_millis(MAX_TTL_MS))));
        let insert = &Params::Positional(vec![
            Value::Bytes(key.hash.clone()),
            Value::Bytes(key.key.clone()),
            Value::Bytes(owner.as_bytes().to_vec()),
            ttl,
        ]);
        let stale = &Params::Positional(vec![
            Value::Bytes(key.hash.clone()),
            Value::Bytes(key.key.clone()),
            Value::Bytes(owner.as_bytes().to_vec()),
        ]);
        self.shared
            .with_conn("try_lock", |mut conn| async move {
                let mut transaction = conn.start_transaction(TxOpts::default()).await?;
                transaction.exec_drop(&statements.lock_release_stale, stale.clone()).await?;
                match transaction.exec_drop(&statements.lock_insert, insert.clone()).await {
                    Ok(()) => {
                        transaction.commit().await?;
                        Ok(true)
                    }
                    Err(mysql_async::Error::Server(server)) if server.code == codes::DUPLICATE_ENTRY => {
                        transaction.rollback().await?;
                        Ok(false)
                    }
                    Err(error) => Err(error),
                }
            })
            .await
    }

    async fn unlock(&self, key: &str, owner: &str) -> DriverResult<bool> {
        let key = StoredKey::lock(self.prefix.key(key))?;
        let sql = &self.shared.statements.unlock;
        let params = &Params::Positional(vec![
            Value::Bytes(key.hash),
            Value::Bytes(key.key),
            Value::Bytes(owner.as_bytes().to_vec()),
        ]);
        self.shared
            .with_conn("unlock", |mut conn| async move {
                conn.exec_drop(sql, params.clone()).await?;
                Ok(conn.affected_rows() > 0)
            })
            .await
    }

    async fn delete(&self, key: &str) -> DriverResult<bool> {
        let key = self.stored_key(key)?;
        let (key, sql) = (&key, &self.shared.statements.delete);
        self.shared
            .with_conn("delete", |mut conn| async move {
                conn.exec_drop(sql, (&key.hash, &key.key)).await?;
                Ok(conn.affected_rows() > 0)
            })
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> DriverResult<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let stored = keys.iter().map(|key| self.stored_key(key)).collect::<DriverResult<Vec<_>>>()?;
        let (stored, statements) = (&stored, &self.shared.statements);
        self.shared
            .with_conn("delete_many", |mut conn| async move {
                if stored.len() <= BATCH_ROWS {
                    conn.exec_drop(statements.delete_many(stored.len()), delete_many_params(stored)).await?;
                    return Ok(conn.affected_rows());
                }
                // Several statements: one transaction, so a deadlock retry starts from scratch
                // and the count stays exact.
                let mut transaction = conn.start_transaction(TxOpts::default()).await?;
                let mut removed = 0;
                for chunk in stored.chunks(BATCH_ROWS) {
                    transaction.exec_drop(statements.delete_many(chunk.len()), delete_many_params(chunk)).await?;
                    removed += transaction.affected_rows();
                }
                transaction.commit().await?;
                Ok(removed)
            })
            .await
    }

    async fn clear(&self) -> DriverResult<()> {
        let statements = &self.shared.statements;
        if self.prefix.is_empty() {
            return self
                .shared
                .with_conn("clear", |mut conn| async move { conn.exec_drop(&statements.clear_all, ()).await })
                .await;
        }
        let pattern = &like_prefix_pattern(&self.prefix.scope());
        self.shared
            .with_conn("clear", |mut conn| async move { conn.exec_drop(&statements.clear_prefix, (pattern,)).await })
            .await
    }

    async fn prune(&self) -> DriverResult<()> {
        self.shared.prune().await
    }

    async fn disconnect(&self) -> DriverResult<()> {
        if self.shared.lifecycle.disconnect() {
            // Closing waits for connections in use; bound it like any
            // operation. The pool refuses new work either way.
            let _ = tokio::time::timeout(self.shared.timeout, self.shared.pool.clone().disconnect()).await;
        }
        Ok(())
    }
}

/// Up to `pause` of pseudo-random extra wait, so deadlocked peers retry at
/// different times.
fn jitter(pause: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let pause_nanos = u32::try_from(pause.as_nanos()).unwrap_or(u32::MAX).max(1);
    Duration::from_nanos(u64::from(nanos % pause_nanos))
}

/// Parameters of [`Statements::delete_many`]: every hash, then every key.
fn delete_many_params(keys: &[StoredKey]) -> Vec<Value> {
    let hashes = keys.iter().map(|key| Value::Bytes(key.hash.clone()));
    hashes.chain(keys.iter().map(|key| Value::Bytes(key.key.clone()))).collect()
}

fn value_len(value: &Value) -> usize {
    match value {
        Value::Bytes(bytes) => bytes.len(),
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(valid_table_name("bentocache"));
        assert!(valid_table_name("_cache_2"));
        assert!(!valid_table_name(""));
        assert!(!valid_table_name("2cache"));
        assert!(!valid_table_name("cache`; DROP TABLE x; --"));
        assert!(!valid_table_name(&"a".repeat(65)));
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_prefix_pattern("a_b:"), b"a!_b:%".to_vec());
        assert_eq!(like_prefix_pattern("a%b!c\\:"), b"a!%b!!c\\:%".to_vec());
    }

    #[test]
    fn long_keys_are_refused_not_truncated() {
        assert!(StoredKey::new("k".repeat(MAX_STORED_KEY_BYTES)).is_ok());
        let error = StoredKey::new("k".repeat(MAX_STORED_KEY_BYTES + 1)).err().expect("too long");
        assert_eq!(error.kind, ErrorKind::INVALID_KEY);
    }

    #[test]
    fn ttl_is_whole_milliseconds_rounded_up() {
        assert_eq!(ttl_param(None), Value::NULL);
        assert_eq!(ttl_param(Some(Duration::from_micros(100_001))), Value::Int(101));
        assert_eq!(ttl_param(Some(Duration::from_secs(u64::MAX))), Value::NULL);
    }
}
