//! # bento-bus-nats
//!
//! A Bento bus plugin over NATS core pub/sub (SPEC §6): each bus channel
//! (`bentocache.notifications:<store>`) is a NATS subject, payloads are the
//! host's opaque bus messages.
//!
//! async-nats reconnects by itself and re-sends every subscription on the
//! new connection; this plugin only watches the connection events and runs
//! the `on_reconnect` handlers on each `Connected` that follows a
//! `Disconnected` (the host retries its queued publishes there). While the
//! connection is down `publish` fails with a connection error instead of
//! letting async-nats buffer the message, so the host's retry queue (with
//! its dedup and size limit) is the one place failed notifications wait.
//! Messages published by others during an outage are lost: core NATS keeps
//! nothing.
//!
//! Not a cache driver. Options: see [`NatsBusOptions`].
//!
//! This crate is the library: link it statically through `bento::NativeBus`
//! (any number of bundled drivers and buses fit in one executable). The
//! plugin file `libbento_bus_nats.so` is built by the thin
//! `bento-bus-nats-plugin` crate (`plugins/nats-bus/plugin`).

mod options;

pub use options::{NatsBusOptions, DEFAULT_URL};

use async_nats::client::RequestErrorKind;
use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, Event};
use bento_plugin_api::{BusMessageHandler, CacheBus, DriverError, DriverResult, ReconnectHandler};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::task::JoinHandle;

/// The NATS bus: one client, one reader task per subscribed subject.
pub struct NatsBus {
    client: Client,
    options: NatsBusOptions,
    connection: Arc<ConnectionWatch>,
    subscriptions: Mutex<HashMap<String, JoinHandle<()>>>,
}

/// Follows the client's connection events.
#[derive(Default)]
struct ConnectionWatch {
    reconnect_handlers: Mutex<Vec<ReconnectHandler>>,
    lost: AtomicBool,
    disconnected: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Handlers are never called under these locks.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ConnectionWatch {
    fn on_event(&self, event: Event) {
        match event {
            Event::Disconnected => {
                tracing::warn!("nats bus connection lost; async-nats is reconnecting");
                self.lost.store(true, Ordering::Release);
            }
            Event::Connected if self.lost.swap(false, Ordering::AcqRel) => {
                tracing::info!("nats bus reconnected");
                if !self.disconnected.load(Ordering::Acquire) {
                    let handlers = lock(&self.reconnect_handlers).clone();
                    for handler in handlers {
                        handler();
                    }
                }
            }
            other => tracing::debug!(event = %other, "nats bus connection event"),
        }
    }
}

/// NATS subjects cannot be empty or contain whitespace; say so instead of
/// letting the server drop the connection.
fn check_subject(channel: &str) -> DriverResult<()> {
    if channel.is_empty() || channel.chars().any(char::is_whitespace) {
        return Err(DriverError::invalid_key(format!(
            "nats bus channel {channel:?} is not a valid NATS subject (empty or contains whitespace)"
        )));
    }
    Ok(())
}

impl NatsBus {
    fn check_open(&self) -> DriverResult<()> {
        if self.connection.disconnected.load(Ordering::Acquire) {
            Err(DriverError::disconnected())
        } else {
            Ok(())
        }
    }

    async fn within_timeout<T, E: std::fmt::Display>(
        &self,
        action: &str,
        future: impl std::future::Future<Output = Result<T, E>>,
    ) -> DriverResult<T> {
        match tokio::time::timeout(self.options.response_timeout(), future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(DriverError::connection(format!("nats bus {action}: {error}"))),
            Err(_) => Err(DriverError::timeout(format!(
                "nats bus {action}: no answer within {} ms",
                self.options.response_timeout_ms
            ))),
        }
    }
}

/// A subject nobody answers: a request there comes back as "no
/// responders" from the server itself.
const BARRIER_SUBJECT: &str = "_BENTO.subscribe-barrier";

impl NatsBus {
    /// `client.subscribe` only queues the SUB; a request the server answers
    /// (with "no responders") proves it has processed everything sent before
    /// it on this connection, so the subscription is live when we return.
    async fn server_round_trip(&self, channel: &str) -> DriverResult<()> {
        let request = self.client.request(BARRIER_SUBJECT, Default::default());
        match tokio::time::timeout(self.options.response_timeout(), request).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) if error.kind() == RequestErrorKind::NoResponders => Ok(()),
            Ok(Err(error)) => Err(DriverError::connection(format!("nats bus subscribe to {channel}: {error}"))),
            Err(_) => Err(DriverError::timeout(format!(
                "nats bus subscribe to {channel}: no confirmation within {} ms",
                self.options.response_timeout_ms
            ))),
        }
    }
}

impl CacheBus for NatsBus {
    type Options = NatsBusOptions;

    async fn connect(options: NatsBusOptions) -> DriverResult<Self> {
        options.validate()?;
        let connection = Arc::new(ConnectionWatch::default());
        let watch = connection.clone();
        let delays = options.clone();
        let connect_options = ConnectOptions::new()
            .connection_timeout(options.connection_timeout())
            .request_timeout(Some(options.response_timeout()))
            .ping_interval(options.health_check_interval())
            .reconnect_delay_callback(move |attempts| delays.reconnect_delay(attempts))
            .event_callback(move |event| {
                watch.on_event(event);
                async {}
            });
        let client = connect_options
            .connect(options.url.as_str())
            .await
            .map_err(|error| DriverError::connection(format!("nats bus connect to {}: {error}", options.url)))?;
        Ok(NatsBus { client, options, connection, subscriptions: Mutex::default() })
    }

    async fn publish(&self, channel: &str, payload: Vec<u8>) -> DriverResult<()> {
        self.check_open()?;
        check_subject(channel)?;
        if self.client.connection_state() != State::Connected {
            return Err(DriverError::connection(format!("nats bus publish to {channel}: not connected")));
        }
        let subject = channel.to_string();
        self.within_timeout(&format!("publish to {channel}"), self.client.publish(subject, payload.into())).await
    }

    async fn subscribe(&self, channel: &str, handler: BusMessageHandler) -> DriverResult<()> {
        self.check_open()?;
        check_subject(channel)?;
        let subject = channel.to_string();
        let mut subscriber =
            self.within_timeout(&format!("subscribe to {channel}"), self.client.subscribe(subject)).await?;
        self.server_round_trip(channel).await?;
        let reader = tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                handler(message.subject.as_str(), message.payload.to_vec());
            }
        });
        // Replacing a subscription ends the old reader; dropping its
        // subscriber unsubscribes it.
        if let Some(previous) = lock(&self.subscriptions).insert(channel.to_string(), reader) {
            previous.abort();
        }
        Ok(())
    }

    async fn unsubscribe(&self, channel: &str) -> DriverResult<()> {
        if let Some(reader) = lock(&self.subscriptions).remove(channel) {
            reader.abort();
        }
        Ok(())
    }

    fn on_reconnect(&self, handler: ReconnectHandler) {
        lock(&self.connection.reconnect_handlers).push(handler);
    }

    async fn disconnect(&self) -> DriverResult<()> {
        if self.connection.disconnected.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let readers: Vec<JoinHandle<()>> = lock(&self.subscriptions).drain().map(|(_, reader)| reader).collect();
        for reader in readers {
            reader.abort();
        }
        if let Err(error) = self.within_timeout("drain", self.client.drain()).await {
            tracing::debug!(%error, "nats bus drain on disconnect failed");
        }
        Ok(())
    }
}

impl Drop for NatsBus {
    fn drop(&mut self) {
        // The readers hold subscribers (and through them the connection).
        for (_, reader) in lock(&self.subscriptions).drain() {
            reader.abort();
        }
    }
}
