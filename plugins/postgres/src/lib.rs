//! # bento-driver-postgres
//!
//! Bento's PostgreSQL driver: the driver contract (SPEC §3) over one table,
//! exported as a plugin that serves the remote (L2) layer. Use it when the
//! cache must be shared by several processes and PostgreSQL is already
//! there; it is not a local (L1) store and knows nothing of grace periods,
//! tags or locks (the host does).
//!
//! ## Client
//!
//! [`tokio_postgres`] with a [`deadpool_postgres`] pool: tokio-postgres is
//! the plain, well-kept async client (no compile-time query machinery, which
//! a driver with a handful of fixed statements does not need), and deadpool
//! adds the pool plus a per-connection prepared-statement cache
//! (`prepare_cached`), so every statement is parsed once per connection.
//!
//! ## Storage
//!
//! ```sql
//! CREATE TABLE "bentocache" (key BYTEA PRIMARY KEY, value BYTEA NOT NULL, expires_at TIMESTAMPTZ NULL)
//! ```
//!
//! Keys are stored as `BYTEA` (the UTF-8 bytes of `prefix:key`) because a
//! `TEXT` column cannot hold NUL, which is a legal key character. Expiry is
//! computed and checked with the server's clock (`now()`), so clients with
//! skewed clocks agree; `TIMESTAMPTZ` keeps microseconds, more than the
//! millisecond precision the contract needs. An expired row is never
//! returned; `prune()` (or the optional `prune_interval_ms` task) deletes
//! them. `clear()` uses `LIKE` with `%`, `_` and `\` escaped in the prefix.
//!
//! ## Locks
//!
//! Declares [`Capabilities::LOCK`]. A lock is a row of the same table under
//! [`bento_plugin_api::toolkit::lock_key`] (`0xFF "lock:" prefix:key`, which
//! no entry key can equal and no prefix `clear()` matches), holding the
//! owner as its value. `try_lock` is one `INSERT .. ON CONFLICT DO UPDATE ..
//! WHERE` (taken when absent, expired or already the owner's), `unlock` one
//! owner-checked `DELETE`; expiry uses the server clock like entries, and
//! `prune()` removes expired locks too.
//!
//! ## Options (JSON, all optional)
//!
//! See [`PostgresOptions`]: `url`, `table`, `auto_create_table`,
//! `pool_size`, `connect_timeout_ms`, `timeout_ms`, `prune_interval_ms`.
//!
//! This crate is the library: link it statically through `bento::Native`
//! (any number of bundled drivers and buses fit in one executable). The
//! plugin file `libbento_driver_postgres.so` is built by the thin
//! `bento-driver-postgres-plugin` crate (`plugins/postgres/plugin`).

use bento_plugin_api::toolkit::{self, require_at_least_one, Lifecycle};
use bento_plugin_api::{
    CacheDriver, Capabilities, DriverConfig, DriverError, DriverResult, ErrorKind, Prefix, SetItem,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

/// Options of the PostgreSQL driver.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresOptions {
    /// Connection URL (libpq style, `postgres://user:password@host:port/database`).
    /// Default: `postgres://postgres@127.0.0.1:5432/test`.
    pub url: String,
    /// Table holding the entries: letters, digits and `_`, not starting with
    /// a digit, at most 63 bytes. Default: `bentocache`.
    pub table: String,
    /// Create the table (and its expiry index) when it does not exist.
    /// Default: `true`.
    pub auto_create_table: bool,
    /// Maximum number of pooled connections. Default: `8`.
    pub pool_size: usize,
    /// Bound on establishing one connection, in milliseconds. Default: `5000`.
    pub connect_timeout_ms: u64,
    /// Bound on every operation (waiting for a pooled connection included),
    /// in milliseconds; also sent to the server as `statement_timeout`.
    /// Default: `5000`.
    pub timeout_ms: u64,
    /// When set, expired rows are deleted every this many milliseconds by a
    /// background task. Default: none (call `prune()` yourself).
    pub prune_interval_ms: Option<u64>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            url: "postgres://postgres@127.0.0.1:5432/test".to_string(),
            table: "bentocache".to_string(),
            auto_create_table: true,
            pool_size: 8,
            connect_timeout_ms: 5000,
            timeout_ms: 5000,
            prune_interval_ms: None,
        }
    }
}

/// TTLs longer than this are stored as "forever": `now() + ttl` would leave
/// PostgreSQL's timestamp range long before it matters to a cache.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// `true` for an unquoted-identifier-safe table name.
fn valid_table_name(table: &str) -> bool {
    let mut chars = table.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && table.len() <= 63
}

/// `LIKE` pattern matching every key that starts with `scope`.
fn like_prefix_pattern(scope: &str) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(scope.len() + 1);
    for byte in scope.bytes() {
        if matches!(byte, b'%' | b'_' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(byte);
    }
    pattern.push(b'%');
    pattern
}

/// The TTL parameter: whole milliseconds, or NULL for "forever".
fn ttl_param(ttl: Option<Duration>) -> Option<i64> {
    let ttl = ttl?;
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let ms = if Duration::from_millis(ms) < ttl { ms.saturating_add(1) } else { ms };
    (ms <= MAX_TTL_MS).then(|| i64::try_from(ms).expect("bounded by MAX_TTL_MS"))
}

/// The statements of one table, built once at connect time.
struct Statements {
    get: String,
    get_many: String,
    has: String,
    set: String,
    set_many: String,
    pull: String,
    delete: String,
    delete_many: String,
    clear_prefix: String,
    clear_all: String,
    prune: String,
    try_lock: String,
    unlock: String,
}

impl Statements {
    fn new(table: &str) -> Self {
        let t = format!("\"{table}\"");
        const LIVE: &str = "(expires_at IS NULL OR expires_at > now())";
        const EXPIRY: &str = "now() + $3::bigint * interval '1 millisecond'";
        const UPSERT: &str = "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at";
        Statements {
            get: format!("SELECT value FROM {t} WHERE key = $1 AND {LIVE}"),
            get_many: format!("SELECT key, value FROM {t} WHERE key = ANY($1) AND {LIVE}"),
            has: format!("SELECT 1 FROM {t} WHERE key = $1 AND {LIVE}"),
            set: format!("INSERT INTO {t} (key, value, expires_at) VALUES ($1, $2, {EXPIRY}) {UPSERT}"),
            set_many: format!(
                "INSERT INTO {t} (key, value, expires_at) \
                 SELECT k, v, now() + ttl * interval '1 millisecond' \
                 FROM unnest($1::bytea[], $2::bytea[], $3::bigint[]) AS items(k, v, ttl) {UPSERT}"
            ),
            pull: format!("DELETE FROM {t} WHERE key = $1 RETURNING value, {LIVE}"),
            delete: format!(
                "WITH removed AS (DELETE FROM {t} WHERE key = $1 RETURNING expires_at) \
                 SELECT count(*) FROM removed WHERE {LIVE}"
            ),
            delete_many: format!(
                "WITH removed AS (DELETE FROM {t} WHERE key = ANY($1) RETURNING expires_at) \
                 SELECT count(*) FROM removed WHERE {LIVE}"
            ),
            clear_prefix: format!("DELETE FROM {t} WHERE key LIKE $1::bytea ESCAPE $2::bytea"),
            clear_all: format!("DELETE FROM {t}"),
            prune: format!("DELETE FROM {t} WHERE expires_at <= now()"),
            // Inserted, or taken over when expired or already ours; one
            // statement, so concurrent callers serialize on the row.
            try_lock: format!(
                "INSERT INTO {t} AS held (key, value, expires_at) VALUES ($1, $2, {EXPIRY}) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at \
                 WHERE held.expires_at <= now() OR held.value = EXCLUDED.value"
            ),
            unlock: format!("DELETE FROM {t} WHERE key = $1 AND value = $2 AND expires_at > now()"),
        }
    }

    fn create_table(table: &str) -> [String; 2] {
        [
            format!(
                "CREATE TABLE IF NOT EXISTS \"{table}\" \
                 (key BYTEA PRIMARY KEY, value BYTEA NOT NULL, expires_at TIMESTAMPTZ NULL)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_expires_at\" ON \"{table}\" (expires_at) \
                 WHERE expires_at IS NOT NULL"
            ),
        ]
    }
}

/// Turn a tokio-postgres error into the driver's error kinds.
fn pg_error(context: &str, error: tokio_postgres::Error) -> DriverError {
    let kind = match error.code() {
        Some(code) if *code == SqlState::QUERY_CANCELED => ErrorKind::TIMEOUT,
        Some(code)
            if code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW =>
        {
            ErrorKind::CONNECTION
        }
        Some(_) => ErrorKind::BACKEND,
        // No SQLSTATE: the connection failed or broke (I/O, closed, TLS, protocol).
        None => ErrorKind::CONNECTION,
    };
    // `Display` of a server error is just "db error"; the details are in `DbError`.
    match error.as_db_error() {
        Some(db_error) => DriverError::new(kind, format!("postgres {context}: {db_error}")),
        None => DriverError::new(kind, format!("postgres {context}: {error}")),
    }
}

fn pool_error(context: &str, error: PoolError) -> DriverError {
    match error {
        PoolError::Backend(error) => pg_error(context, error),
        PoolError::Timeout(_) => DriverError::timeout(format!("postgres {context}: no connection available in time")),
        PoolError::Closed => DriverError::disconnected(),
        other => DriverError::connection(format!("postgres {context}: {other}")),
    }
}

/// State shared by the root handle and all its namespaces.
struct Shared {
    pool: Pool,
    statements: Statements,
    timeout: Duration,
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
    /// Run `operation` with a pooled connection, bounded by the configured
    /// timeout; fails fast once disconnected.
    async fn with_client<T, F, Fut>(&self, context: &'static str, operation: F) -> DriverResult<T>
    where
        F: FnOnce(deadpool_postgres::Object) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        self.lifecycle.ensure_connected()?;
        let work = async {
            let client = self.pool.get().await.map_err(|error| pool_error(context, error))?;
            operation(client).await.map_err(|error| pg_error(context, error))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(DriverError::timeout(format!("postgres {context}: no answer within {:?}", self.timeout))),
        }
    }

    async fn prune(&self) -> DriverResult<()> {
        self.with_client("prune", |client| async move {
            let statement = client.prepare_cached(&self.statements.prune).await?;
            client.execute(&statement, &[]).await.map(drop)
        })
        .await
    }
}

/// A PostgreSQL driver handle: the shared pool plus this handle's prefix.
pub struct PostgresDriver {
    shared: Arc<Shared>,
    prefix: Prefix,
}

impl PostgresDriver {
    fn stored_key(&self, key: &str) -> Vec<u8> {
        self.prefix.key(key).into_bytes()
    }

    fn stored_keys(&self, keys: &[String]) -> Vec<Vec<u8>> {
        keys.iter().map(|key| self.stored_key(key)).collect()
    }
}

/// Create the table and its expiry index unless they exist.
async fn create_table(pool: &Pool, table: &str) -> DriverResult<()> {
    let client = pool.get().await.map_err(|error| pool_error("connect", error))?;
    for statement in Statements::create_table(table) {
        if let Err(error) = client.batch_execute(&statement).await {
            // Two processes creating the table at once race on the catalog;
            // the loser sees one of these, and the table exists either way.
            let benign = error.code().is_some_and(|code| {
                *code == SqlState::UNIQUE_VIOLATION
                    || *code == SqlState::DUPLICATE_TABLE
                    || *code == SqlState::DUPLICATE_OBJECT
            });
            if !benign {
                return Err(pg_error(&format!("create table {table:?}"), error));
            }
        }
    }
    Ok(())
}

impl CacheDriver for PostgresDriver {
    type Options = PostgresOptions;

    async fn connect(options: PostgresOptions, config: DriverConfig) -> DriverResult<Self> {
        if !valid_table_name(&options.table) {
            return Err(DriverError::invalid_options(format!(
                "invalid option `table`: {:?} is not a plain identifier (letters, digits, `_`, at most 63 bytes)",
                options.table
            )));
        }
        require_at_least_one(&[("pool_size", options.pool_size as u64), ("timeout_ms", options.timeout_ms)])?;
        let mut pg_config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|error| DriverError::invalid_options(format!("invalid option `url`: {error}")))?;
        let connect_timeout = Duration::from_millis(options.connect_timeout_ms.max(1));
        let timeout = Duration::from_millis(options.timeout_ms);
        pg_config.connect_timeout(connect_timeout);
        pg_config.options(format!("-c statement_timeout={}", options.timeout_ms));
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("bento");
        }
        let manager = Manager::from_config(pg_config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            // Waiting and recycling are bounded by the per-operation timeout
            // around them (one timer per operation instead of three).
            .create_timeout(Some(connect_timeout))
            .build()
            .map_err(|error| DriverError::invalid_options(format!("invalid pool options: {error}")))?;

        // Connect once now so a wrong URL or a down server fails here.
        let startup = async {
            if options.auto_create_table {
                create_table(&pool, &options.table).await
            } else {
                pool.get().await.map(drop).map_err(|error| pool_error("connect", error))
            }
        };
        match tokio::time::timeout(connect_timeout + timeout, startup).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(DriverError::timeout(format!("postgres connect: no answer within {connect_timeout:?}")))
            }
        }

        let shared = Arc::new(Shared {
            pool,
            statements: Statements::new(&options.table),
            timeout,
            lifecycle: Lifecycle::new(),
            default_ttl: config.default_ttl,
        });
        if let Some(interval_ms) = options.prune_interval_ms.filter(|ms| *ms > 0) {
            // A failed prune is retried at the next tick.
            toolkit::spawn_periodic(&shared, Duration::from_millis(interval_ms), |shared| async move {
                let _ = shared.prune().await;
            })?;
        }
        Ok(PostgresDriver { shared, prefix: Prefix::new(&config.prefix) })
    }

    fn namespace(&self, namespace: &str) -> DriverResult<Self> {
        self.shared.lifecycle.ensure_connected()?;
        Ok(PostgresDriver { shared: self.shared.clone(), prefix: self.prefix.namespace(namespace) })
    }

    async fn get(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = self.stored_key(key);
        let sql = &self.shared.statements.get;
        self.shared
            .with_client("get", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                let row = client.query_opt(&statement, &[&key]).await?;
                row.map(|row| row.try_get::<_, Vec<u8>>(0)).transpose()
            })
            .await
    }

    async fn has(&self, key: &str) -> DriverResult<bool> {
        let key = self.stored_key(key);
        let sql = &self.shared.statements.has;
        self.shared
            .with_client("has", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                Ok(client.query_opt(&statement, &[&key]).await?.is_some())
            })
            .await
    }

    async fn get_many(&self, keys: &[String]) -> DriverResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let stored = self.stored_keys(keys);
        let sql = &self.shared.statements.get_many;
        let mut found: HashMap<Vec<u8>, Vec<u8>> = self
            .shared
            .with_client("get_many", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                let rows = client.query(&statement, &[&stored]).await?;
                rows.into_iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
            })
            .await?;
        // A key listed twice gets its value twice.
        let mut values = Vec::with_capacity(keys.len());
        let mut remaining: HashMap<Vec<u8>, usize> = HashMap::new();
        for key in keys {
            *remaining.entry(self.stored_key(key)).or_default() += 1;
        }
        for key in keys {
            let key = self.stored_key(key);
            let count = remaining.get_mut(&key).expect("counted above");
            *count -= 1;
            values.push(if *count == 0 { found.remove(&key) } else { found.get(&key).cloned() });
        }
        Ok(values)
    }

    async fn pull(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = self.stored_key(key);
        let sql = &self.shared.statements.pull;
        self.shared
            .with_client("pull", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                let Some(row) = client.query_opt(&statement, &[&key]).await? else {
                    return Ok(None);
                };
                let live: bool = row.try_get(1)?;
                if live {
                    row.try_get::<_, Vec<u8>>(0).map(Some)
                } else {
                    Ok(None)
                }
            })
            .await
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> DriverResult<bool> {
        let key = self.stored_key(key);
        let ttl = ttl_param(ttl.or(self.shared.default_ttl));
        let sql = &self.shared.statements.set;
        self.shared
            .with_client("set", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                client.execute(&statement, &[&key, &value, &ttl]).await.map(|_| true)
            })
            .await
    }

    async fn set_many(&self, items: Vec<SetItem>) -> DriverResult<bool> {
        if items.is_empty() {
            return Ok(true);
        }
        // One INSERT .. ON CONFLICT may not touch a row twice: keep the last
        // occurrence of each key, like consecutive sets would. Rows go in
        // key order so concurrent batches lock them in the same order and
        // cannot deadlock each other.
        let mut latest: std::collections::BTreeMap<Vec<u8>, (Vec<u8>, Option<i64>)> = Default::default();
        for item in items {
            latest.insert(self.stored_key(&item.key), (item.value, ttl_param(item.ttl.or(self.shared.default_ttl))));
        }
        let (mut keys, mut values, mut ttls) = (Vec::new(), Vec::new(), Vec::new());
        for (key, (value, ttl)) in latest {
            keys.push(key);
            values.push(value);
            ttls.push(ttl);
        }
        let sql = &self.shared.statements.set_many;
        self.shared
            .with_client("set_many", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                let params: [&(dyn ToSql + Sync); 3] = [&keys, &values, &ttls];
                client.execute(&statement, &params).await.map(|_| true)
            })
            .await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LOCK
    }

    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> DriverResult<bool> {
        let key = toolkit::lock_key(&self.prefix.key(key));
        let owner = owner.as_bytes().to_vec();
        // Capped so that a lock always expires (an uncapped TTL means forever).
        let ttl = ttl_param(Some(ttl.min(Duration::from_millis(MAX_TTL_MS))));
        let sql = &self.shared.statements.try_lock;
        self.shared
            .with_client("try_lock", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                Ok(client.execute(&statement, &[&key, &owner, &ttl]).await? == 1)
            })
            .await
    }

    async fn unlock(&self, key: &str, owner: &str) -> DriverResult<bool> {
        let key = toolkit::lock_key(&self.prefix.key(key));
        let owner = owner.as_bytes().to_vec();
        let sql = &self.shared.statements.unlock;
        self.shared
            .with_client("unlock", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                Ok(client.execute(&statement, &[&key, &owner]).await? == 1)
            })
            .await
    }

    async fn delete(&self, key: &str) -> DriverResult<bool> {
        let key = self.stored_key(key);
        let sql = &self.shared.statements.delete;
        self.shared
            .with_client("delete", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                let removed: i64 = client.query_one(&statement, &[&key]).await?.try_get(0)?;
                Ok(removed > 0)
            })
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> DriverResult<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let stored = self.stored_keys(keys);
        let sql = &self.shared.statements.delete_many;
        self.shared
            .with_client("delete_many", |client| async move {
                let statement = client.prepare_cached(sql).await?;
                let removed: i64 = client.query_one(&statement, &[&stored]).await?.try_get(0)?;
                Ok(u64::try_from(removed).unwrap_or(0))
            })
            .await
    }

    async fn clear(&self) -> DriverResult<()> {
        let statements = &self.shared.statements;
        if self.prefix.is_empty() {
            return self
                .shared
                .with_client("clear", |client| async move {
                    let statement = client.prepare_cached(&statements.clear_all).await?;
                    client.execute(&statement, &[]).await.map(drop)
                })
                .await;
        }
        let pattern = like_prefix_pattern(&self.prefix.scope());
        let escape: &[u8] = b"\\";
        self.shared
            .with_client("clear", |client| async move {
                let statement = client.prepare_cached(&statements.clear_prefix).await?;
                client.execute(&statement, &[&pattern, &escape]).await.map(drop)
            })
            .await
    }

    async fn prune(&self) -> DriverResult<()> {
        self.shared.prune().await
    }

    async fn disconnect(&self) -> DriverResult<()> {
        if self.shared.lifecycle.disconnect() {
            self.shared.pool.close();
        }
        Ok(())
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
        assert!(!valid_table_name("cache\"; DROP TABLE x; --"));
        assert!(!valid_table_name("public.cache"));
        assert!(!valid_table_name(&"a".repeat(64)));
    }

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(like_prefix_pattern("a_b:"), b"a\\_b:%".to_vec());
        assert_eq!(like_prefix_pattern("a%b\\c:"), b"a\\%b\\\\c:%".to_vec());
    }

    #[test]
    fn ttl_is_whole_milliseconds_rounded_up() {
        assert_eq!(ttl_param(None), None);
        assert_eq!(ttl_param(Some(Duration::from_millis(100))), Some(100));
        assert_eq!(ttl_param(Some(Duration::from_micros(100_001))), Some(101));
        assert_eq!(ttl_param(Some(Duration::from_secs(u64::MAX))), None);
    }
}
