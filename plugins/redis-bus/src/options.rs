//! The bus's JSON options.

pub use bento_driver_redis::IoMode;
use bento_plugin_api::toolkit::require_at_least_one;
use bento_plugin_api::DriverResult;
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;

/// The URL used when `url` is not given.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// Options of the Redis bus, passed as JSON by the host.
///
/// ```json
/// { "url": "redis://127.0.0.1:6379", "connection_timeout_ms": 5000, "response_timeout_ms": 5000 }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RedisBusOptions {
    /// Server URL, `redis://[user:password@]host:port`. Pub/sub ignores the
    /// database index. Default: `redis://127.0.0.1:6379`.
    pub url: String,
    /// How long one connection attempt may take, in milliseconds (≥ 1).
    /// Default: 5000.
    pub connection_timeout_ms: u64,
    /// How long the server may take to answer PUBLISH, SUBSCRIBE or PING,
    /// in milliseconds (≥ 1). Default: 5000.
    pub response_timeout_ms: u64,
    /// Longest wait between two reconnection attempts of the subscriber
    /// connection, in milliseconds (≥ 1); waits start at 50 ms and double.
    /// Default: 2000.
    pub reconnect_max_delay_ms: u64,
    /// How often the subscriber connection is checked with PING, in
    /// milliseconds, to notice a connection that died silently; 0 disables.
    /// Default: 5000.
    pub health_check_interval_ms: u64,
    /// Which tokio runtime drives the bus's connections when the bus is
    /// loaded as a plugin, as the redis driver's option of the same name:
    /// `"auto"` (the default) runs the publishing connection on the
    /// caller's runtime when the host lends it (so a PUBLISH wakes no
    /// plugin thread), and the subscriber connection and its task on the
    /// host runtime that connected the bus (so a received message wakes no
    /// plugin thread); each falls back to the plugin's own runtime where
    /// the host lends none (an older host, a current-thread runtime), and
    /// the subscriber moves there if its host runtime shuts down.
    /// `"plugin"` always uses the plugin's runtime.
    pub io: IoMode,
}

impl Default for RedisBusOptions {
    fn default() -> Self {
        RedisBusOptions {
            url: DEFAULT_URL.to_string(),
            connection_timeout_ms: 5000,
            response_timeout_ms: 5000,
            reconnect_max_delay_ms: 2000,
            health_check_interval_ms: 5000,
            io: IoMode::Auto,
        }
    }
}

impl RedisBusOptions {
    /// Reject values that cannot work, naming the option.
    pub fn validate(&self) -> DriverResult<()> {
        require_at_least_one(&[
            ("connection_timeout_ms", self.connection_timeout_ms),
            ("response_timeout_ms", self.response_timeout_ms),
            ("reconnect_max_delay_ms", self.reconnect_max_delay_ms),
        ])
    }

    /// [`RedisBusOptions::connection_timeout_ms`] as a duration.
    pub fn connection_timeout(&self) -> Duration {
        Duration::from_millis(self.connection_timeout_ms)
    }

    /// [`RedisBusOptions::response_timeout_ms`] as a duration.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }

    /// [`RedisBusOptions::reconnect_max_delay_ms`] as a duration.
    pub fn reconnect_max_delay(&self) -> Duration {
        Duration::from_millis(self.reconnect_max_delay_ms)
    }

    /// The health-check period, if enabled.
    pub fn health_check_interval(&self) -> Option<Duration> {
        (self.health_check_interval_ms > 0).then(|| Duration::from_millis(self.health_check_interval_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_to_missing_fields() {
        let options: RedisBusOptions = serde_json::from_str(r#"{"url":"redis://h:1"}"#).unwrap();
        assert_eq!(options.url, "redis://h:1");
        assert_eq!(options.response_timeout(), Duration::from_secs(5));
        assert_eq!(options.health_check_interval(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn zero_timeout_is_refused_by_name() {
        let options = RedisBusOptions { response_timeout_ms: 0, ..Default::default() };
        assert!(options.validate().unwrap_err().message.contains("response_timeout_ms"));
    }
}
