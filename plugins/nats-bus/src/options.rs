//! The bus's JSON options.

use bento_plugin_api::toolkit::require_at_least_one;
use bento_plugin_api::DriverResult;
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;

/// The URL used when `url` is not given.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// Options of the NATS bus, passed as JSON by the host.
///
/// ```json
/// { "url": "nats://127.0.0.1:4222", "connection_timeout_ms": 5000, "response_timeout_ms": 5000 }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NatsBusOptions {
    /// Server URL(s), `nats://[user:password@]host:port`, several separated
    /// by commas. Default: `nats://127.0.0.1:4222`.
    pub url: String,
    /// How long one connection attempt may take, in milliseconds (≥ 1).
    /// Default: 5000.
    pub connection_timeout_ms: u64,
    /// How long a publish or subscribe may take, in milliseconds (≥ 1).
    /// Default: 5000.
    pub response_timeout_ms: u64,
    /// Longest wait between two reconnection attempts, in milliseconds
    /// (≥ 1); waits start at 50 ms and double. Default: 2000.
    pub reconnect_max_delay_ms: u64,
    /// How often the client PINGs the server to notice a connection that
    /// died silently, in milliseconds (≥ 1). Default: 5000.
    pub health_check_interval_ms: u64,
}

impl Default for NatsBusOptions {
    fn default() -> Self {
        NatsBusOptions {
            url: DEFAULT_URL.to_string(),
            connection_timeout_ms: 5000,
            response_timeout_ms: 5000,
            reconnect_max_delay_ms: 2000,
            health_check_interval_ms: 5000,
        }
    }
}

impl NatsBusOptions {
    /// Reject values that cannot work, naming the option.
    pub fn validate(&self) -> DriverResult<()> {
        require_at_least_one(&[
            ("connection_timeout_ms", self.connection_timeout_ms),
            ("response_timeout_ms", self.response_timeout_ms),
            ("reconnect_max_delay_ms", self.reconnect_max_delay_ms),
            ("health_check_interval_ms", self.health_check_interval_ms),
        ])
    }

    /// [`NatsBusOptions::connection_timeout_ms`] as a duration.
    pub fn connection_timeout(&self) -> Duration {
        Duration::from_millis(self.connection_timeout_ms)
    }

    /// [`NatsBusOptions::response_timeout_ms`] as a duration.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }

    /// The wait before reconnection attempt number `attempts` (from 1).
    pub fn reconnect_delay(&self, attempts: usize) -> Duration {
        let exponent = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
        Duration::from_millis((50u64 << exponent).min(self.reconnect_max_delay_ms))
    }

    /// [`NatsBusOptions::health_check_interval_ms`] as a duration.
    pub fn health_check_interval(&self) -> Duration {
        Duration::from_millis(self.health_check_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_to_missing_fields() {
        let options: NatsBusOptions = serde_json::from_str(r#"{"url":"nats://h:1"}"#).unwrap();
        assert_eq!(options.url, "nats://h:1");
        assert_eq!(options.connection_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn reconnect_delay_doubles_up_to_the_maximum() {
        let options = NatsBusOptions::default();
        assert_eq!(options.reconnect_delay(0), Duration::from_millis(50));
        assert_eq!(options.reconnect_delay(1), Duration::from_millis(50));
        assert_eq!(options.reconnect_delay(2), Duration::from_millis(100));
        assert_eq!(options.reconnect_delay(100), Duration::from_millis(2000));
    }

    #[test]
    fn zero_timeout_is_refused_by_name() {
        let options = NatsBusOptions { connection_timeout_ms: 0, ..Default::default() };
        assert!(options.validate().unwrap_err().message.contains("connection_timeout_ms"));
    }
}
