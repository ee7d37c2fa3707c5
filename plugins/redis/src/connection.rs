//! The connection shared by a root handle and all its namespaces: one
//! auto-reconnecting multiplexed connection to a single server, or a
//! cluster connection. It bounds every round trip by a deadline, maps
//! redis-rs errors to [`ErrorKind`]s, and can be closed once for all
//! handles.

use crate::direct::{self, DirectConnection};
use crate::options::{IoMode, RedisOptions, Topology};
use bento_plugin_api::{DriverError, DriverResult, ErrorKind};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, Value};
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// How many times a broken connection is re-dialled (with exponential
/// backoff) before requests see the error; the next request tries again.
const RECONNECT_RETRIES: usize = 2;

/// The live connection, cheap to clone (each kind is a handle to a
/// background task).
#[derive(Clone)]
enum Backend {
    /// A single server, `io: "plugin"` (or TLS): redis-rs's reconnecting
    /// manager on the plugin runtime.
    Single(ConnectionManager),
    /// A single server, `io: "auto"`: on the caller's runtime when the host
    /// lends it (see `direct`).
    Direct(Arc<DirectConnection>),
    Cluster(ClusterConnection),
}

/// A primary node of a cluster, as the cluster announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// What a command was about, for error messages: the command name and the
/// stored key it touched, if one.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Command name, e.g. `GET`.
    pub command: &'static str,
    /// The stored key, when the command touches one.
    pub key: Option<&'a str>,
}

impl<'a> Context<'a> {
    /// A command touching `key`.
    pub fn key(command: &'static str, key: &'a str) -> Self {
        Context { command, key: Some(key) }
    }

    /// A command touching no single key.
    pub fn command(command: &'static str) -> Context<'static> {
        Context { command, key: None }
    }
}

/// The shared connection. Closing it (on `disconnect`) drops the
/// connection; every later call returns `Disconnected`.
pub struct Connection {
    backend: RwLock<Option<Backend>>,
    /// Upper bound for one round trip, reconnection included.
    deadline: Duration,
}

impl Connection {
    /// Connect as the options say; fails with `InvalidOptions`,
    /// `Connection` or `Timeout`.
    pub async fn open(options: &RedisOptions) -> DriverResult<Connection> {
        let topology = options.topology()?;
        let (connection_timeout, response_timeout) = (options.connection_timeout(), options.response_timeout());
        let deadline = connection_timeout + response_timeout;
        let connect = Context::command("connect");
        let backend = match topology {
            Topology::Single(url) => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|error| DriverError::invalid_options(format!("invalid option `url`: {error}")))?;
                let info = client.get_connection_info();
                if options.io == IoMode::Auto && direct::supports(info) {
                    let direct = DirectConnection::new(info.clone(), connection_timeout, RECONNECT_RETRIES);
                    // The first dial retries as a reconnect does; allow it
                    // all attempts plus the backoff between them.
                    let budget = connection_timeout * (RECONNECT_RETRIES as u32 + 1) + Duration::from_secs(1);
                    bounded(budget, connect, direct.connect()).await?;
                    return Ok(Connection { backend: RwLock::new(Some(Backend::Direct(Arc::new(direct)))), deadline });
                }
                // One timer per request: `bounded` (connection + response
                // timeout) already covers the reply, so redis-rs adds no
                // response timer of its own. Each (re)connection attempt,
                // handshake included, keeps redis-rs's connection timeout.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connection_timeout))
                    .set_response_timeout(None)
                    .set_number_of_retries(RECONNECT_RETRIES)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(1));
                // The first dial retries too; allow it the same budget as
                // a reconnect (all attempts plus the backoff between them).
                let budget = deadline + connection_timeout * RECONNECT_RETRIES as u32 + Duration::from_secs(1);
                let manager = bounded(budget, connect, ConnectionManager::new_with_config(client, config)).await?;
                Backend::Single(manager)
            }
            Topology::Cluster(nodes) => {
                let client = ClusterClient::builder(nodes)
                    .connection_timeout(connection_timeout)
                    .response_timeout(response_timeout)
                    .retries(RECONNECT_RETRIES as u32)
                    .build()
                    .map_err(|error| DriverError::invalid_options(format!("invalid option `cluster`: {error}")))?;
                let budget = deadline + Duration::from_secs(1);
                Backend::Cluster(bounded(budget, connect, client.get_async_connection()).await?)
            }
        };
        Ok(Connection { backend: RwLock::new(Some(backend)), deadline })
    }

    fn backend(&self) -> DriverResult<Backend> {
        // A poisoned lock only means another thread panicked while
        // swapping an Option; the value is still consistent.
        let guard = self.backend.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.clone().ok_or_else(DriverError::disconnected)
    }

    /// `Disconnected` once [`Connection::close`] ran.
    pub fn ensure_open(&self) -> DriverResult<()> {
        self.backend().map(drop)
    }

    /// True when talking to a Redis Cluster.
    pub fn is_cluster(&self) -> DriverResult<bool> {
        Ok(matches!(self.backend()?, Backend::Cluster(_)))
    }

    /// Drop the connection; idempotent. Requests already in flight finish
    /// on their own clone; new ones get `Disconnected`.
    pub fn close(&self) {
        let mut guard = self.backend.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.take();
    }

    /// Run one command (routed by key in cluster mode; multi-key commands
    /// such as MGET and UNLINK are split per slot by redis-rs).
    pub async fn query<T: FromRedisValue>(&self, command: &Cmd, context: Context<'_>) -> DriverResult<T> {
        match self.backend()? {
            Backend::Single(mut manager) => bounded(self.deadline, context, command.query_async(&mut manager)).await,
            Backend::Direct(direct) => {
                let request =
                    direct.request(|mut connection| async move { command.query_async(&mut connection).await });
                bounded(self.deadline, context, request).await
            }
            Backend::Cluster(mut cluster) => bounded(self.deadline, context, command.query_async(&mut cluster)).await,
        }
    }

    /// Run a pipeline in one round trip. Cluster mode requires every
    /// command of the pipeline to hash to one slot.
    pub async fn pipeline<T: FromRedisValue>(&self, pipeline: &Pipeline, context: Context<'_>) -> DriverResult<T> {
        match self.backend()? {
            Backend::Single(mut manager) => bounded(self.deadline, context, pipeline.query_async(&mut manager)).await,
            Backend::Direct(direct) => {
                let request =
                    direct.request(|mut connection| async move { pipeline.query_async(&mut connection).await });
                bounded(self.deadline, context, request).await
            }
            Backend::Cluster(mut cluster) => bounded(self.deadline, context, pipeline.query_async(&mut cluster)).await,
        }
    }

    /// The primaries of the cluster (from `CLUSTER SLOTS`); for a single
    /// server, an empty list.
    pub async fn primaries(&self) -> DriverResult<Vec<NodeAddress>> {
        let Backend::Cluster(mut cluster) = self.backend()? else {
            return Ok(Vec::new());
        };
        let context = Context::command("CLUSTER SLOTS");
        let mut command = redis::cmd("CLUSTER");
        command.arg("SLOTS");
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        let slots = bounded(self.deadline, context, cluster.route_command(command, routing)).await?;
        parse_cluster_slots(slots).map_err(|reason| DriverError::backend(format!("redis CLUSTER SLOTS: {reason}")))
    }

    /// Run one command on one cluster node (for per-node commands such as
    /// SCAN).
    pub async fn query_node<T: FromRedisValue>(
        &self,
        node: &NodeAddress,
        command: Cmd,
        context: Context<'_>,
    ) -> DriverResult<T> {
        let Backend::Cluster(mut cluster) = self.backend()? else {
            return self.query(&command, context).await;
        };
        let routing =
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host: node.host.clone(), port: node.port });
        let value = bounded(self.deadline, context, cluster.route_command(command, routing)).await?;
        redis::from_redis_value(value).map_err(|error| to_driver_error(error.into(), context))
    }
}

/// Await `request` for at most `deadline`; map its error.
async fn bounded<T>(
    deadline: Duration,
    context: Context<'_>,
    request: impl Future<Output = Result<T, RedisError>>,
) -> DriverResult<T> {
    match tokio::time::timeout(deadline, request).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(to_driver_error(error, context)),
        Err(_) => {
            Err(DriverError::timeout(format!("{}: no answer within {} ms", describe(context), deadline.as_millis())))
        }
    }
}

/// The kind of a redis-rs error: I/O and dropped or refused connections
/// are `Connection`, I/O timeouts `Timeout`, server replies `Backend`.
pub fn error_kind(error: &RedisError) -> ErrorKind {
    if error.is_timeout() {
        ErrorKind::TIMEOUT
    } else if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.kind() == redis::ErrorKind::ClusterConnectionNotFound
    {
        ErrorKind::CONNECTION
    } else {
        ErrorKind::BACKEND
    }
}

fn to_driver_error(error: RedisError, context: Context<'_>) -> DriverError {
    DriverError::new(error_kind(&error), format!("{}: {error}", describe(context)))
}

fn describe(context: Context<'_>) -> String {
    const SHOWN: usize = 120;
    match context.key {
        None => format!("redis {}", context.command),
        Some(key) if key.len() <= SHOWN => format!("redis {} {key:?}", context.command),
        Some(key) => {
            let cut = (0..=SHOWN).rev().find(|&i| key.is_char_boundary(i)).unwrap_or(0);
            format!("redis {} {:?}… ({} bytes)", context.command, &key[..cut], key.len())
        }
    }
}

/// Primary addresses from a `CLUSTER SLOTS` reply:
/// `[[start, end, [host, port, id, …], replicas…], …]`, deduplicated.
fn parse_cluster_slots(reply: Value) -> Result<Vec<NodeAddress>, String> {
    let Value::Array(ranges) = reply else {
        return Err(format!("expected an array, got {reply:?}"));
    };
    let mut primaries: Vec<NodeAddress> = Vec::new();
    for range in ranges {
        let Value::Array(mut fields) = range else {
            return Err("a slot range is not an array".to_string());
        };
        if fields.len() < 3 {
            return Err("a slot range has no primary".to_string());
        }
        let Value::Array(mut node) = fields.swap_remove(2) else {
            return Err("a slot range's primary is not an array".to_string());
        };
        if node.len() < 2 {
            return Err("a primary has no host and port".to_string());
        }
        let port: u16 = redis::from_redis_value(node.swap_remove(1)).map_err(|error| error.to_string())?;
        let host: String = redis::from_redis_value(node.swap_remove(0)).map_err(|error| error.to_string())?;
        let address = NodeAddress { host, port };
        if !primaries.contains(&address) {
            primaries.push(address);
        }
    }
    Ok(primaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn cluster_slots_reply_gives_unique_primaries() {
        let node = |port: i64| Value::Array(vec![bulk("127.0.0.1"), Value::Int(port), bulk("id")]);
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(0), Value::Int(10), node(7000), node(7100)]),
            Value::Array(vec![Value::Int(11), Value::Int(20), node(7001)]),
            Value::Array(vec![Value::Int(21), Value::Int(30), node(7000)]),
        ]);
        let primaries = parse_cluster_slots(reply).unwrap();
        let ports: Vec<u16> = primaries.iter().map(|node| node.port).collect();
        assert_eq!(ports, [7000, 7001]);
    }

    #[test]
    fn long_keys_are_shortened_in_messages() {
        let key = "é".repeat(200);
        let text = describe(Context::key("GET", &key));
        assert!(text.contains("400 bytes"), "{text}");
        assert!(text.len() < 200, "{text}");
    }
}
