//! The seam between [`BusNode`](super::BusNode) and whatever moves bytes:
//! a bus plugin ([`crate::Bus`]) or the in-process [`MemoryBus`](super::MemoryBus).
//! Transports know nothing of the message format; payloads are opaque.

#[cfg(feature = "plugins")]
use crate::driver::Bus;
use bento_plugin_api::DriverError;
use futures::future::BoxFuture;
use std::sync::Arc;

/// Receives `(channel, payload)` for every message on a subscribed channel.
/// Runs on the transport's threads: keep it short.
pub type PayloadHandler = Arc<dyn Fn(&str, Vec<u8>) + Send + Sync>;

/// Runs after the transport re-established its connection.
pub type ReconnectHook = Arc<dyn Fn() + Send + Sync>;

/// Moves opaque payloads between the nodes subscribed to a channel,
/// including the publisher itself when it is subscribed (as Redis pub/sub
/// does); receivers filter their own messages.
pub trait BusTransport: Send + Sync + 'static {
    /// Publish `payload` on `channel`. An error means it was not sent.
    fn publish<'a>(&'a self, channel: &'a str, payload: Vec<u8>) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Deliver every message on `channel` to `handler` until
    /// [`BusTransport::unsubscribe`], across reconnections.
    fn subscribe<'a>(&'a self, channel: &'a str, handler: PayloadHandler) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Stop delivering `channel`.
    fn unsubscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), DriverError>>;

    /// Run `hook` after every reconnection.
    fn on_reconnect(&self, hook: ReconnectHook);

    /// Close; idempotent.
    fn disconnect(&self) -> BoxFuture<'_, Result<(), DriverError>>;
}

#[cfg(feature = "plugins")]
impl BusTransport for Bus {
    fn publish<'a>(&'a self, channel: &'a str, payload: Vec<u8>) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(Bus::publish(self, channel, payload))
    }

    fn subscribe<'a>(&'a self, channel: &'a str, handler: PayloadHandler) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(Bus::subscribe(self, channel, move |channel: &str, payload: Vec<u8>| handler(channel, payload)))
    }

    fn unsubscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), DriverError>> {
        Box::pin(Bus::unsubscribe(self, channel))
    }

    fn on_reconnect(&self, hook: ReconnectHook) {
        Bus::on_reconnect(self, move || hook())
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        Box::pin(Bus::disconnect(self))
    }
}

impl<T: BusTransport + ?Sized> BusTransport for Arc<T> {
    fn publish<'a>(&'a self, channel: &'a str, payload: Vec<u8>) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).publish(channel, payload)
    }

    fn subscribe<'a>(&'a self, channel: &'a str, handler: PayloadHandler) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).subscribe(channel, handler)
    }

    fn unsubscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), DriverError>> {
        (**self).unsubscribe(channel)
    }

    fn on_reconnect(&self, hook: ReconnectHook) {
        (**self).on_reconnect(hook)
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        (**self).disconnect()
    }
}
