//! The cache table: its validated name, schema and every statement the
//! driver runs. All SQL of the crate is here.

use crate::SqliteDriverError;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

type Result<T> = std::result::Result<T, SqliteDriverError>;

/// Longest accepted table name.
const MAX_TABLE_NAME_LEN: usize = 64;

/// The SQL for one validated table name.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    name: String,
    create: String,
    create_index: String,
    check_exists: String,
    get: String,
    has: String,
    set: String,
    take: String,
    clear_all: String,
    clear_range: String,
    prune: String,
    try_lock: String,
    unlock: String,
}

fn op<'a>(operation: &'static str, key: &'a str) -> impl FnOnce(rusqlite::Error) -> SqliteDriverError + 'a {
    move |source| SqliteDriverError::Query { operation, key: key.to_string(), source }
}

impl Table {
    /// Validate `name` (ASCII letters, digits and `_`, not starting with a
    /// digit, at most 64 chars) and prepare the statements.
    pub(crate) fn new(name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= MAX_TABLE_NAME_LEN
            && !name.as_bytes()[0].is_ascii_digit()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.to_ascii_lowercase().starts_with("sqlite_");
        if !valid {
            return Err(SqliteDriverError::InvalidTableName { table: name.to_string() });
        }
        // Validated names need no escaping; quoting still keeps keywords
        // such as `order` usable.
        let t = format!("\"{name}\"");
        Ok(Table {
            name: name.to_string(),
            create: format!(
                "CREATE TABLE IF NOT EXISTS {t} (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, expires_at INTEGER NULL)"
            ),
            create_index: format!("CREATE INDEX IF NOT EXISTS \"{name}_expires_at\" ON {t} (expires_at)"),
            check_exists: format!("SELECT key, value, expires_at FROM {t} LIMIT 0"),
            get: format!("SELECT value FROM {t} WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)"),
            has: format!("SELECT 1 FROM {t} WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)"),
            set: format!(
                "INSERT INTO {t} (key, value, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
            ),
            take: format!("DELETE FROM {t} WHERE key = ?1 RETURNING value, expires_at"),
            clear_all: format!("DELETE FROM {t}"),
            clear_range: format!("DELETE FROM {t} WHERE key >= ?1 AND key < ?2"),
            prune: format!("DELETE FROM {t} WHERE expires_at IS NOT NULL AND expires_at <= ?1"),
            // Inserted, or taken over when expired or already ours; one
            // statement under SQLite's write lock, so it is atomic across
            // connections and processes.
            try_lock: format!(
                "INSERT INTO {t} (key, value, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at \
                 WHERE {t}.expires_at <= ?4 OR {t}.value = excluded.value"
            ),
            unlock: format!("DELETE FROM {t} WHERE key = ?1 AND value = ?2 AND expires_at > ?3"),
        })
    }

    /// Create the table and its expiry index if missing.
    pub(crate) fn create(&self, connection: &Connection) -> Result<()> {
        connection.execute(&self.create, []).map_err(op("create table", &self.name))?;
        connection.execute(&self.create_index, []).map_err(op("create index", &self.name))?;
        Ok(())
    }

    /// Fail with [`SqliteDriverError::MissingTable`] unless the table exists
    /// with the expected columns.
    pub(crate) fn check_exists(&self, connection: &Connection) -> Result<()> {
        connection
            .prepare(&self.check_exists)
            .map(drop)
            .map_err(|source| SqliteDriverError::MissingTable { table: self.name.clone(), source })
    }

    pub(crate) fn get(&self, connection: &Connection, key: &str, now_ms: i64) -> Result<Option<Vec<u8>>> {
        let mut statement = connection.prepare_cached(&self.get).map_err(op("get", key))?;
        statement.query_row(params![key, now_ms], |row| row.get(0)).optional().map_err(op("get", key))
    }

    pub(crate) fn get_many(
        &self,
        connection: &mut Connection,
        keys: &[String],
        now_ms: i64,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        // One read transaction: a consistent snapshot, one lock round.
        let transaction = connection.transaction().map_err(op("begin", ""))?;
        let values = keys.iter().map(|key| self.get(&transaction, key, now_ms)).collect::<Result<Vec<_>>>()?;
        transaction.commit().map_err(op("commit", ""))?;
        Ok(values)
    }

    pub(crate) fn has(&self, connection: &Connection, key: &str, now_ms: i64) -> Result<bool> {
        let mut statement = connection.prepare_cached(&self.has).map_err(op("has", key))?;
        statement.exists(params![key, now_ms]).map_err(op("has", key))
    }

    pub(crate) fn set(&self, connection: &Connection, key: &str, value: &[u8], expires_at: Option<i64>) -> Result<()> {
        let mut statement = connection.prepare_cached(&self.set).map_err(op("set", key))?;
        statement.execute(params![key, value, expires_at]).map_err(op("set", key))?;
        Ok(())
    }

    pub(crate) fn set_many(&self, connection: &mut Connection, items: &[(String, Vec<u8>, Option<i64>)]) -> Result<()> {
        let transaction =
            connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(op("begin", ""))?;
        for (key, value, expires_at) in items {
            self.set(&transaction, key, value, *expires_at)?;
        }
        transaction.commit().map_err(op("commit", ""))
    }

    /// Delete the row of `key` in one statement and return its value if it
    /// was live. Atomic: of concurrent takes, one sees the row.
    pub(crate) fn take(&self, connection: &Connection, key: &str, now_ms: i64) -> Result<Option<Vec<u8>>> {
        let mut statement = connection.prepare_cached(&self.take).map_err(op("pull", key))?;
        let row: Option<(Vec<u8>, Option<i64>)> = statement
            .query_row(params![key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(op("pull", key))?;
        Ok(row.and_then(|(value, expires_at)| expires_at.is_none_or(|at| at > now_ms).then_some(value)))
    }

    pub(crate) fn delete_many(&self, connection: &mut Connection, keys: &[String], now_ms: i64) -> Result<u64> {
        let transaction =
            connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(op("begin", ""))?;
        let mut removed = 0;
        for key in keys {
            removed += u64::from(self.take(&transaction, key, now_ms)?.is_some());
        }
        transaction.commit().map_err(op("commit", ""))?;
        Ok(removed)
    }

    /// Delete every key starting with `scope` (`prefix:`), or every row when
    /// `scope` is empty.
    ///
    /// A key range instead of `LIKE 'prefix:%'`: SQLite's LIKE ignores ASCII
    /// case (so `users` would clear `USERS:1`) and needs `%`/`_` escaping;
    /// `key >= 'prefix:' AND key < 'prefix;'` (`;` is the byte after `:`)
    /// selects exactly the keys that start with `prefix:` under the BINARY
    /// collation, whatever characters the prefix holds, and uses the
    /// primary-key index.
    pub(crate) fn clear(&self, connection: &Connection, scope: &str) -> Result<()> {
        if scope.is_empty() {
            connection.execute(&self.clear_all, []).map_err(op("clear", scope))?;
        } else {
            let upper = format!("{};", scope.strip_suffix(':').expect("a non-empty scope ends with `:`"));
            let mut statement = connection.prepare_cached(&self.clear_range).map_err(op("clear", scope))?;
            statement.execute(params![scope, upper]).map_err(op("clear", scope))?;
        }
        Ok(())
    }

    /// Take the lock stored at `lock_key` (a BLOB: see the crate docs) for
    /// `owner` until `expires_at` when it is free, expired or `owner`'s.
    pub(crate) fn try_lock(
        &self,
        connection: &Connection,
        lock_key: &[u8],
        owner: &str,
        expires_at: i64,
        now_ms: i64,
    ) -> Result<bool> {
        let shown = String::from_utf8_lossy(lock_key);
        let mut statement = connection.prepare_cached(&self.try_lock).map_err(op("try_lock", &shown))?;
        let changed = statement
            .execute(params![lock_key, owner.as_bytes(), expires_at, now_ms])
            .map_err(op("try_lock", &shown))?;
        Ok(changed == 1)
    }

    /// Release the lock stored at `lock_key` if `owner` holds it.
    pub(crate) fn unlock(&self, connection: &Connection, lock_key: &[u8], owner: &str, now_ms: i64) -> Result<bool> {
        let shown = String::from_utf8_lossy(lock_key);
        let mut statement = connection.prepare_cached(&self.unlock).map_err(op("unlock", &shown))?;
        let removed = statement.execute(params![lock_key, owner.as_bytes(), now_ms]).map_err(op("unlock", &shown))?;
        Ok(removed == 1)
    }

    pub(crate) fn prune(&self, connection: &Connection, now_ms: i64) -> Result<()> {
        connection.execute(&self.prune, params![now_ms]).map_err(op("prune", ""))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_identifiers() {
        for good in ["bentocache", "cache_2", "_x", "Order"] {
            assert!(Table::new(good).is_ok(), "{good}");
        }
        for bad in
            ["", "2cache", "a-b", "a b", "a;drop table x", "a\"b", "main.cache", "sqlite_master", "é", &"x".repeat(65)]
        {
            assert!(matches!(Table::new(bad), Err(SqliteDriverError::InvalidTableName { .. })), "{bad}");
        }
    }
}
