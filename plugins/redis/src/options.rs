//! The driver's JSON options and their validation.

use bento_plugin_api::toolkit::require_at_least_one;
use bento_plugin_api::{DriverError, DriverResult};
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;

/// The URL used when neither `url` nor `cluster` is given.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// Options of the Redis driver, passed as JSON by the host.
///
/// ```json
/// { "url": "redis://127.0.0.1:6379/0", "connection_timeout_ms": 5000, "response_timeout_ms": 5000 }
/// { "cluster": ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"] }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisOptions {
    /// Server URL, `redis://[user:password@]host:port[/database]` (TLS is
    /// not built in). The database index is the URL path. Default: `redis://127.0.0.1:6379` (database 0). Must not be
    /// combined with `cluster`.
    #[serde(default)]
    pub url: Option<String>,

    /// Redis Cluster seed nodes (`redis://host:port` each). When set, the
    /// driver talks to the cluster (slot routing, MOVED/ASK handling,
    /// per-node SCAN for `clear`). Default: not set (single server).
    #[serde(default)]
    pub cluster: Option<Vec<String>>,

    /// How long one connection attempt may take, in milliseconds (≥ 1).
    /// Default: 5000.
    #[serde(default = "default_timeout_ms")]
    pub connection_timeout_ms: u64,

    /// How long the server may take to answer one command, in milliseconds
    /// (≥ 1). Default: 5000.
    #[serde(default = "default_timeout_ms")]
    pub response_timeout_ms: u64,

    /// Which tokio runtime drives the connection when the driver is loaded
    /// as a plugin. `"auto"` (the default): for a single server over plain
    /// TCP or a Unix socket, the connection's socket and task run on the
    /// caller's runtime, lent by the host, so a request and its reply never
    /// wake another thread; the driver then redials by itself after a
    /// connection error (the next request dials, on the runtime current at
    /// that moment). It falls back to the plugin's own runtime where the
    /// host lends none (hosts before plugin-api 0.1.2, a current-thread
    /// runtime, or a request made outside any tokio runtime). `"plugin"`:
    /// always the plugin's own runtime, with redis-rs's reconnecting
    /// connection manager, as before this option existed. Cluster
    /// connections always use the plugin's runtime. Default: `"auto"`.
    #[serde(default)]
    pub io: IoMode,
}

/// Where the driver's connection I/O runs; see `RedisOptions::io`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// On the caller's runtime when the host lends it, else the plugin's.
    #[default]
    Auto,
    /// Always on the plugin's own runtime (redis-rs `ConnectionManager`).
    Plugin,
}

fn default_timeout_ms() -> u64 {
    5000
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            url: None,
            cluster: None,
            connection_timeout_ms: default_timeout_ms(),
            response_timeout_ms: default_timeout_ms(),
            io: IoMode::Auto,
        }
    }
}

/// Where to connect, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (or a proxy in front of many).
    Single(String),
    /// A Redis Cluster reached through these seed nodes.
    Cluster(Vec<String>),
}

impl RedisOptions {
    /// Check the options and say where to connect. Errors are
    /// `InvalidOptions` naming the offending field.
    pub fn topology(&self) -> DriverResult<Topology> {
        require_at_least_one(&[
            ("connection_timeout_ms", self.connection_timeout_ms),
            ("response_timeout_ms", self.response_timeout_ms),
        ])?;
        match (&self.url, &self.cluster) {
            (Some(_), Some(_)) => Err(invalid("cluster", "set either `url` or `cluster`, not both")),
            (_, Some(nodes)) => {
                if nodes.is_empty() {
                    return Err(invalid("cluster", "needs at least one node URL"));
                }
                for (index, node) in nodes.iter().enumerate() {
                    check_url(node).map_err(|reason| invalid(&format!("cluster[{index}]"), &reason))?;
                }
                Ok(Topology::Cluster(nodes.clone()))
            }
            (url, None) => {
                let url = url.as_deref().unwrap_or(DEFAULT_URL);
                check_url(url).map_err(|reason| invalid("url", &reason))?;
                Ok(Topology::Single(url.to_string()))
            }
        }
    }

    /// [`RedisOptions::connection_timeout_ms`] as a duration.
    pub fn connection_timeout(&self) -> Duration {
        Duration::from_millis(self.connection_timeout_ms)
    }

    /// [`RedisOptions::response_timeout_ms`] as a duration.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }
}

fn check_url(url: &str) -> Result<(), String> {
    redis::Client::open(url).map(drop).map_err(|error| format!("`{url}` is not a valid Redis URL: {error}"))
}

fn invalid(field: &str, reason: &str) -> DriverError {
    DriverError::invalid_options(format!("invalid option `{field}`: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bento_plugin_api::ErrorKind;

    fn parse(json: &str) -> RedisOptions {
        serde_json::from_str(json).expect("valid options JSON")
    }

    #[test]
    fn defaults() {
        let options = parse("{}");
        assert_eq!(options, RedisOptions::default());
        assert_eq!(options.topology().unwrap(), Topology::Single(DEFAULT_URL.to_string()));
        assert_eq!(options.response_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn invalid_url_names_the_field() {
        let error = parse(r#"{"url":"http://nope"}"#).topology().unwrap_err();
        assert_eq!(error.kind, ErrorKind::INVALID_OPTIONS);
        assert!(error.message.contains("`url`"), "{error}");
    }

    #[test]
    fn url_and_cluster_are_exclusive() {
        let error = parse(r#"{"url":"redis://a:1","cluster":["redis://b:2"]}"#).topology().unwrap_err();
        assert!(error.message.contains("`cluster`"), "{error}");
    }

    #[test]
    fn bad_cluster_node_is_named() {
        let error = parse(r#"{"cluster":["redis://a:1","nope://"]}"#).topology().unwrap_err();
        assert!(error.message.contains("cluster[1]"), "{error}");
    }

    #[test]
    fn zero_timeout_is_rejected() {
        let error = parse(r#"{"response_timeout_ms":0}"#).topology().unwrap_err();
        assert!(error.message.contains("response_timeout_ms"), "{error}");
    }

    #[test]
    fn io_mode_parses() {
        assert_eq!(parse("{}").io, IoMode::Auto);
        assert_eq!(parse(r#"{"io":"plugin"}"#).io, IoMode::Plugin);
        assert_eq!(parse(r#"{"io":"auto"}"#).io, IoMode::Auto);
        assert!(serde_json::from_str::<RedisOptions>(r#"{"io":"host"}"#).is_err());
    }

    #[test]
    fn unknown_field_is_rejected() {
        assert!(serde_json::from_str::<RedisOptions>(r#"{"urll":"redis://x"}"#).is_err());
    }
}
