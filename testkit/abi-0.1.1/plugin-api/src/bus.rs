//! The trait a bus author implements (multi-instance L1 sync, SPEC §6).

use crate::error::DriverResult;
use std::future::Future;
use std::sync::Arc;

/// Receives every payload published on a subscribed channel. Called from
/// the plugin's threads; keep it short (push into a channel).
pub type BusMessageHandler = Arc<dyn Fn(&str, Vec<u8>) + Send + Sync>;

/// Called after the bus re-established its connection.
pub type ReconnectHandler = Arc<dyn Fn() + Send + Sync>;

/// A message bus, written as plain async Rust. Payloads are opaque bytes;
/// the host owns the message format.
pub trait CacheBus: Send + Sync + Sized + 'static {
    /// The bus options, deserialized from JSON.
    type Options: serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static;

    /// Connect.
    fn connect(options: Self::Options) -> impl Future<Output = DriverResult<Self>> + Send;

    /// Publish `payload` on `channel`. An error means it was not sent.
    fn publish(&self, channel: &str, payload: Vec<u8>) -> impl Future<Output = DriverResult<()>> + Send;

    /// Deliver every message on `channel` to `handler`, resubscribing after
    /// reconnections, until [`CacheBus::unsubscribe`].
    fn subscribe(&self, channel: &str, handler: BusMessageHandler) -> impl Future<Output = DriverResult<()>> + Send;

    /// Stop delivering `channel`.
    fn unsubscribe(&self, channel: &str) -> impl Future<Output = DriverResult<()>> + Send;

    /// Register `handler`, run after every reconnection.
    fn on_reconnect(&self, handler: ReconnectHandler);

    /// Close; idempotent.
    fn disconnect(&self) -> impl Future<Output = DriverResult<()>> + Send;
}
