//! # bento-driver-redis
//!
//! Bento's Redis / Valkey driver plugin: the driver contract (SPEC §3) over
//! redis-rs with tokio, usable as the remote (L2) layer. Stored keys are
//! `prefix:key`, the layout BentoCache 1.x uses (`bentocache:user:1`), and
//! values are stored as raw bytes, so a Node service on BentoCache and a
//! Rust service on Bento can share one Redis. The driver never looks inside
//! values; entry encoding, grace periods and tags belong to the host.
//!
//! Commands: `SET key value PX ms` (plain `SET` without a TTL; Redis
//! expires natively, so `prune` is a no-op), `GET`, `GETDEL` for `pull`
//! (Redis ≥ 6.2), `EXISTS`, `UNLINK` for deletes, `MGET` and a pipeline for
//! the batch forms. `clear()` walks `SCAN MATCH <escaped prefix>:* COUNT
//! 1000` and `UNLINK`s each batch; with the empty prefix the driver owns the
//! whole database and `clear()` is `FLUSHDB`.
//!
//! Connections: one auto-reconnecting multiplexed connection shared by a
//! handle and all its namespaces — with `io: "auto"` (the default) and a
//! single plain-TCP or Unix server, on the caller's runtime when the host
//! lends it (redialled by the driver after a connection error); with
//! `io: "plugin"`, redis-rs's `ConnectionManager` on the plugin's runtime —
//! or, with
//! the `cluster` option, a Redis Cluster connection: `clear()` then scans
//! every primary, and multi-key commands are split per slot so they never
//! fail with `CROSSSLOT`. Every round trip is bounded by
//! `connection_timeout_ms + response_timeout_ms`, so a vanished server gives
//! a `Connection` or `Timeout` error, never a hang.
//!
//! Locks: declares [`Capabilities::LOCK`]. The lock of stored key `k` is
//! the Redis key [`toolkit::lock_key`]`(k)` (`0xFF "lock:" k`, which no
//! entry key can equal and no prefix `SCAN MATCH` of `clear()` matches;
//! `FLUSHDB` of the empty prefix drops locks too), holding the owner. Both
//! lock methods are one `EVAL` touching that single key, so they are atomic
//! and cluster-safe: `try_lock` is `SET NX PX`, or `PEXPIRE` when the owner
//! already holds it; `unlock` deletes only when the owner holds it. Redis
//! expires locks natively.
//!
//! Options (JSON): see [`RedisOptions`]. Not for: pub/sub (the `redis-bus`
//! plugin), Sentinel, or use as an L1.
//!
//! This crate is the library: link it statically through `bento::Native`
//! (any number of bundled drivers and buses fit in one executable). The
//! plugin file `libbento_driver_redis.so` is built by the thin
//! `bento-driver-redis-plugin` crate (`plugins/redis/plugin`).

mod connection;
mod direct;
mod glob;
mod options;

pub use connection::{error_kind, Connection, Context, NodeAddress};
pub use glob::escape_glob;
pub use options::{IoMode, RedisOptions, Topology, DEFAULT_URL};

use bento_plugin_api::toolkit;
use bento_plugin_api::{CacheDriver, Capabilities, DriverConfig, DriverResult, Prefix, SetItem};
use redis::Value;
use std::sync::Arc;
use std::time::Duration;

/// How many keys one `SCAN` step asks for during `clear()`; each step's
/// keys are removed with one `UNLINK`.
const SCAN_BATCH: usize = 1000;

/// A Redis driver handle: a key prefix over the connection it shares with
/// its root handle and sibling namespaces.
pub struct RedisDriver {
    connection: Arc<Connection>,
    prefix: Prefix,
    /// TTL of entries set without one (`None` = forever).
    default_ttl: Option<Duration>,
}

/// Take `KEYS[1]` for owner `ARGV[1]` for `ARGV[2]` ms: when free (`SET NX
/// PX`), or when already the owner's (then its TTL restarts). 1 = held.
const TRY_LOCK_SCRIPT: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Delete `KEYS[1]` only when owner `ARGV[1]` holds it. 1 = released.
const UNLOCK_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// `EVAL script 1 key args..`: one key, so a cluster routes it to its slot.
fn eval_command(script: &str, key: &[u8], args: &[&[u8]]) -> redis::Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(script).arg(1).arg(key);
    for arg in args {
        command.arg(*arg);
    }
    command
}

/// `SET key value [PX ms]`, with the TTL rounded up to whole milliseconds.
fn set_command(key: &str, value: &[u8], ttl: Option<Duration>) -> redis::Cmd {
    let mut command = redis::cmd("SET");
    command.arg(key).arg(value);
    if let Some(ttl) = ttl {
        command.arg("PX").arg(ttl_millis(ttl));
    }
    command
}

/// `ttl` in whole milliseconds, rounded up and at least 1 (Redis rejects
/// `PX 0`, and a TTL must never mean "forever").
fn ttl_millis(ttl: Duration) -> u64 {
    let millis = ttl.as_nanos().div_ceil(1_000_000).max(1);
    u64::try_from(millis).unwrap_or(u64::MAX)
}

impl RedisDriver {
    fn key(&self, key: &str) -> String {
        self.prefix.key(key)
    }

    fn command_with_keys(&self, name: &str, keys: &[String]) -> redis::Cmd {
        let mut command = redis::cmd(name);
        for key in keys {
            command.arg(self.key(key));
        }
        command
    }

    async fn set_one(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> DriverResult<bool> {
        let stored_key = self.key(key);
        let command = set_command(&stored_key, value, ttl.or(self.default_ttl));
        let reply: Value = self.connection.query(&command, Context::key("SET", &stored_key)).await?;
        Ok(is_ok(&reply))
    }

    /// `SCAN` one server (or one cluster primary) for keys under this
    /// handle's prefix and `UNLINK` them batch by batch.
    async fn clear_node(&self, node: Option<&NodeAddress>, pattern: &str, scope: &[u8]) -> DriverResult<()> {
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(SCAN_BATCH);
            let context = Context::key("SCAN", pattern);
            let (next, mut keys): (u64, Vec<Vec<u8>>) = match node {
                Some(node) => self.connection.query_node(node, scan, context).await?,
                None => self.connection.query(&scan, context).await?,
            };
            // MATCH already filters; this guards against a server whose
            // glob dialect differs (the prefix must match exactly).
            keys.retain(|key| key.starts_with(scope));
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(keys);
                self.connection.query::<u64>(&unlink, Context::key("UNLINK", pattern)).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

impl CacheDriver for RedisDriver {
    type Options = RedisOptions;

    /// All I/O is one multiplexed connection task (per cluster node in
    /// cluster mode): one worker drives it with the fewest wake-ups
    /// (measured in `scripts/bench.sh compare`, BENCHMARKS.md).
    const RUNTIME_THREADS: Option<usize> = Some(1);

    async fn connect(options: RedisOptions, config: DriverConfig) -> DriverResult<Self> {
        let connection = Connection::open(&options).await?;
        Ok(RedisDriver {
            connection: Arc::new(connection),
            prefix: Prefix::new(&config.prefix),
            default_ttl: config.default_ttl,
        })
    }

    fn namespace(&self, namespace: &str) -> DriverResult<Self> {
        // Refuse to hand out handles on a closed connection.
        self.connection.ensure_open()?;
        Ok(RedisDriver {
            connection: self.connection.clone(),
            prefix: self.prefix.namespace(namespace),
            default_ttl: self.default_ttl,
        })
    }

    async fn get(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = self.key(key);
        let mut command = redis::cmd("GET");
        command.arg(&key);
        self.connection.query(&command, Context::key("GET", &key)).await
    }

    async fn pull(&self, key: &str) -> DriverResult<Option<Vec<u8>>> {
        let key = self.key(key);
        let mut command = redis::cmd("GETDEL");
        command.arg(&key);
        self.connection.query(&command, Context::key("GETDEL", &key)).await
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> DriverResult<bool> {
        self.set_one(key, &value, ttl).await
    }

    async fn has(&self, key: &str) -> DriverResult<bool> {
        let key = self.key(key);
        let mut command = redis::cmd("EXISTS");
        command.arg(&key);
        let count: u64 = self.connection.query(&command, Context::key("EXISTS", &key)).await?;
        Ok(count > 0)
    }

    async fn delete(&self, key: &str) -> DriverResult<bool> {
        let key = self.key(key);
        let mut command = redis::cmd("UNLINK");
        command.arg(&key);
        let removed: u64 = self.connection.query(&command, Context::key("UNLINK", &key)).await?;
        Ok(removed > 0)
    }

    async fn delete_many(&self, keys: &[String]) -> DriverResult<u64> {
        if keys.is_empty() {
            self.connection.ensure_open()?;
            return Ok(0);
        }
        let command = self.command_with_keys("UNLINK", keys);
        self.connection.query(&command, Context::command("UNLINK")).await
    }

    async fn get_many(&self, keys: &[String]) -> DriverResult<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            self.connection.ensure_open()?;
            return Ok(Vec::new());
        }
        let command = self.command_with_keys("MGET", keys);
        self.connection.query(&command, Context::command("MGET")).await
    }

    async fn set_many(&self, items: Vec<SetItem>) -> DriverResult<bool> {
        if self.connection.is_cluster()? {
            // A pipeline must stay within one slot in a cluster; the
            // cluster connection multiplexes these concurrent SETs anyway.
            let sets = items.iter().map(|item| self.set_one(&item.key, &item.value, item.ttl));
            let stored = futures::future::try_join_all(sets).await?;
            return Ok(stored.into_iter().all(|ok| ok));
        }
        if items.is_empty() {
            return Ok(true);
        }
        let mut pipeline = redis::pipe();
        for item in &items {
            pipeline.add_command(set_command(&self.key(&item.key), &item.value, item.ttl.or(self.default_ttl)));
        }
        let replies: Vec<Value> = self.connection.pipeline(&pipeline, Context::command("SET (pipeline)")).await?;
        Ok(replies.len() == items.len() && replies.iter().all(is_ok))
    }

    async fn clear(&self) -> DriverResult<()> {
        if self.prefix.is_empty() {
            // The driver owns the whole database (in a cluster, redis-rs
            // sends FLUSHDB to every primary).
            let command = redis::cmd("FLUSHDB");
            return self.connection.query::<()>(&command, Context::command("FLUSHDB")).await;
        }
        let scope = self.prefix.scope();
        let pattern = format!("{}*", escape_glob(&scope));
        let primaries = self.connection.primaries().await?;
        if primaries.is_empty() {
            return self.clear_node(None, &pattern, scope.as_bytes()).await;
        }
        let per_node = primaries.iter().map(|node| self.clear_node(Some(node), &pattern, scope.as_bytes()));
        futures::future::try_join_all(per_node).await.map(drop)
    }

    /// Redis expires entries natively: nothing to prune.
    async fn prune(&self) -> DriverResult<()> {
        self.connection.ensure_open()
    }

    async fn disconnect(&self) -> DriverResult<()> {
        self.connection.close();
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LOCK
    }

    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> DriverResult<bool> {
        let stored_key = self.key(key);
        // Capped at a century: Redis refuses an expiry past its clock range.
        let ttl = ttl_millis(ttl.min(Duration::from_secs(100 * 365 * 24 * 3600))).to_string();
        let command =
            eval_command(TRY_LOCK_SCRIPT, &toolkit::lock_key(&stored_key), &[owner.as_bytes(), ttl.as_bytes()]);
        let taken: u64 = self.connection.query(&command, Context::key("EVAL (try_lock)", &stored_key)).await?;
        Ok(taken == 1)
    }

    async fn unlock(&self, key: &str, owner: &str) -> DriverResult<bool> {
        let stored_key = self.key(key);
        let command = eval_command(UNLOCK_SCRIPT, &toolkit::lock_key(&stored_key), &[owner.as_bytes()]);
        let released: u64 = self.connection.query(&command, Context::key("EVAL (unlock)", &stored_key)).await?;
        Ok(released == 1)
    }
}

/// `true` for the reply of a successful `SET`.
fn is_ok(reply: &Value) -> bool {
    matches!(reply, Value::Okay) || matches!(reply, Value::SimpleString(text) if text == "OK")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_millis(100)), 100);
        assert_eq!(ttl_millis(Duration::from_micros(100_001)), 101);
        assert_eq!(ttl_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ttl_millis(Duration::ZERO), 1);
    }
}
