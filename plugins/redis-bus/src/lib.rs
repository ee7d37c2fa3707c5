//! # bento-bus-redis
//!
//! A Bento bus plugin over Redis pub/sub (SPEC §6): the host's bus messages
//! travel as PUBLISH payloads on `bentocache.notifications:<store>`, so Bento
//! and BentoCache (Node) instances pointed at the same Redis see each other.
//!
//! Publishing uses the redis driver's connection (`bento_driver_redis::
//! Connection`): with `io: "auto"` its socket and task run on the caller's
//! runtime lent by the host, so a PUBLISH wakes no plugin thread; it
//! redials after a connection error. Subscriptions live on a dedicated pub/sub
//! connection read by one supervisor task ([`subscriber`]), on the same
//! runtime as the publisher's (with `io: "auto"`, the host runtime that
//! connected the bus, so a received message — this instance's own echo
//! included — wakes no plugin thread): when that connection breaks, it
//! reconnects with backoff, subscribes every channel again and then runs
//! the `on_reconnect` handlers (the host retries its queued publishes
//! there). Messages published while the subscriber was away are lost —
//! Redis pub/sub keeps nothing.
//!
//! Not a cache driver: use `bento-driver-redis` for the L2. Options: see
//! [`RedisBusOptions`].
//!
//! This crate is the library: link it statically through `bento::NativeBus`
//! (any number of bundled drivers and buses fit in one executable). The
//! plugin file `libbento_bus_redis.so` is built by the thin
//! `bento-bus-redis-plugin` crate (`plugins/redis-bus/plugin`).

mod options;
mod resp;
pub mod subscriber;

pub use options::{IoMode, RedisBusOptions, DEFAULT_URL};

use bento_driver_redis::{Connection, Context, RedisOptions};
use bento_plugin_api::{BusMessageHandler, CacheBus, DriverError, DriverResult, ReconnectHandler};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use subscriber::Subscriber;

/// The Redis bus: a publishing connection plus the supervised subscriber.
pub struct RedisBus {
    publisher: Connection,
    subscriber: Arc<Subscriber>,
}

impl CacheBus for RedisBus {
    type Options = RedisBusOptions;

    async fn connect(options: RedisBusOptions) -> DriverResult<Self> {
        options.validate()?;
        let client = redis::Client::open(options.url.as_str())
            .map_err(|error| DriverError::invalid_options(format!("invalid option `url`: {error}")))?;
        let publisher = Connection::open(&RedisOptions {
            url: Some(options.url.clone()),
            connection_timeout_ms: options.connection_timeout_ms,
            response_timeout_ms: options.response_timeout_ms,
            io: options.io,
            ..RedisOptions::default()
        })
        .await
        .map_err(|error| {
            DriverError::new(error.kind, format!("redis bus connect to {}: {}", options.url, error.message))
        })?;
        let subscriber = Subscriber::start(client.get_connection_info().clone(), options).await?;
        Ok(RedisBus { publisher, subscriber })
    }

    async fn publish(&self, channel: &str, payload: Vec<u8>) -> DriverResult<()> {
        if self.subscriber.disconnected.load(Ordering::Acquire) {
            return Err(DriverError::disconnected());
        }
        let mut command = redis::cmd("PUBLISH");
        command.arg(channel).arg(payload);
        let _receivers: i64 = self.publisher.query(&command, Context::command("PUBLISH")).await?;
        Ok(())
    }

    async fn subscribe(&self, channel: &str, handler: BusMessageHandler) -> DriverResult<()> {
        self.subscriber.subscribe(channel, handler).await
    }

    async fn unsubscribe(&self, channel: &str) -> DriverResult<()> {
        self.subscriber.unsubscribe(channel).await
    }

    fn on_reconnect(&self, handler: ReconnectHandler) {
        self.subscriber.on_reconnect(handler)
    }

    async fn disconnect(&self) -> DriverResult<()> {
        self.subscriber.disconnect().await;
        self.publisher.close();
        Ok(())
    }
}
