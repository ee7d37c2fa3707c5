//! # bento-bus-redis
//!
//! A Bento bus plugin over Redis pub/sub (SPEC §6): the host's bus messages
//! travel as PUBLISH payloads on `bentocache.notifications:<store>`, so Bento
//! and BentoCache (Node) instances pointed at the same Redis see each other.
//!
//! Publishing uses a normal, auto-reconnecting connection (redis-rs
//! `ConnectionManager`). Subscriptions live on a dedicated pub/sub
//! connection watched by a supervisor task ([`subscriber`]): when that
//! connection breaks, it reconnects with backoff, subscribes every channel
//! again and then runs the `on_reconnect` handlers (the host retries its
//! queued publishes there). Messages published while the subscriber was
//! away are lost — Redis pub/sub keeps nothing.
//!
//! Not a cache driver: use `bento-driver-redis` for the L2. Options: see
//! [`RedisBusOptions`].
//!
//! This crate is the library: link it statically through `bento::NativeBus`
//! (any number of bundled drivers and buses fit in one executable). The
//! plugin file `libbento_bus_redis.so` is built by the thin
//! `bento-bus-redis-plugin` crate (`plugins/redis-bus/plugin`).

mod options;
pub mod subscriber;

pub use options::{RedisBusOptions, DEFAULT_URL};

use bento_plugin_api::{BusMessageHandler, CacheBus, DriverError, DriverResult, ReconnectHandler};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use subscriber::Subscriber;

/// The Redis bus: a publishing connection plus the supervised subscriber.
pub struct RedisBus {
    publisher: ConnectionManager,
    subscriber: Arc<Subscriber>,
    options: RedisBusOptions,
}

fn redis_error(action: &str, error: redis::RedisError) -> DriverError {
    if error.is_timeout() {
        DriverError::timeout(format!("redis bus {action}: {error}"))
    } else if error.is_io_error() || error.is_connection_dropped() || error.is_connection_refusal() {
        DriverError::connection(format!("redis bus {action}: {error}"))
    } else {
        DriverError::backend(format!("redis bus {action}: {error}"))
    }
}

impl CacheBus for RedisBus {
    type Options = RedisBusOptions;

    async fn connect(options: RedisBusOptions) -> DriverResult<Self> {
        options.validate()?;
        let client = redis::Client::open(options.url.as_str())
            .map_err(|error| DriverError::invalid_options(format!("invalid option `url`: {error}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connection_timeout()))
            .set_response_timeout(Some(options.response_timeout()))
            .set_number_of_retries(1)
            .set_max_delay(options.reconnect_max_delay());
        let publisher = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(|error| redis_error(&format!("connect to {}", options.url), error))?;
        let subscriber = Subscriber::start(client, options.clone()).await?;
        Ok(RedisBus { publisher, subscriber, options })
    }

    async fn publish(&self, channel: &str, payload: Vec<u8>) -> DriverResult<()> {
        if self.subscriber.disconnected.load(Ordering::Acquire) {
            return Err(DriverError::disconnected());
        }
        let mut connection = self.publisher.clone();
        let mut command = redis::cmd("PUBLISH");
        command.arg(channel).arg(payload);
        let command = command.query_async::<i64>(&mut connection);
        match tokio::time::timeout(self.options.response_timeout(), command).await {
            Ok(Ok(_receivers)) => Ok(()),
            Ok(Err(error)) => Err(redis_error(&format!("PUBLISH to {channel}"), error)),
            Err(_) => Err(DriverError::timeout(format!(
                "redis bus PUBLISH to {channel}: no answer within {} ms",
                self.options.response_timeout_ms
            ))),
        }
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
        Ok(())
    }
}
