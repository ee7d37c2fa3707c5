//! The supervised pub/sub connection: one dedicated connection carrying
//! every subscription, and a task that reads it, notices when it breaks
//! (end of stream or a failed health-check PING), reconnects with backoff,
//! resubscribes every channel and then runs the reconnect handlers.
//!
//! Subscriptions are the source of truth in [`Subscriber`]'s channel map;
//! the connection only mirrors them. `subscribe` and the reconnection both
//! take the `sink` lock, so a channel added during a reconnection is either
//! in the snapshot the new connection subscribes, or subscribed on the new
//! connection by `subscribe` itself.

use crate::options::RedisBusOptions;
use crate::redis_error;
use bento_plugin_api::{BusMessageHandler, DriverError, DriverResult, ReconnectHandler};
use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// First wait before a reconnection attempt; doubles up to the maximum.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);

/// The subscriber side of the Redis bus.
pub struct Subscriber {
    client: redis::Client,
    options: RedisBusOptions,
    handlers: Mutex<HashMap<String, BusMessageHandler>>,
    reconnect_handlers: Mutex<Vec<ReconnectHandler>>,
    /// The live connection's command side; `None` while reconnecting.
    sink: tokio::sync::Mutex<Option<PubSubSink>>,
    stop: watch::Sender<bool>,
    pub(crate) disconnected: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Handlers are never called under these locks.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Subscriber {
    /// Open the first pub/sub connection (failing if Redis is unreachable)
    /// and start the supervisor task on the current (plugin) runtime.
    pub async fn start(client: redis::Client, options: RedisBusOptions) -> DriverResult<Arc<Subscriber>> {
        let (stop, stopped) = watch::channel(false);
        let subscriber = Arc::new(Subscriber {
            client,
            options,
            handlers: Mutex::default(),
            reconnect_handlers: Mutex::default(),
            sink: tokio::sync::Mutex::new(None),
            stop,
            disconnected: AtomicBool::new(false),
        });
        let (sink, stream) = subscriber.open().await?;
        *subscriber.sink.lock().await = Some(sink);
        tokio::spawn(supervise(Arc::downgrade(&subscriber), stream, stopped));
        Ok(subscriber)
    }

    async fn with_timeout<T>(
        &self,
        action: &str,
        future: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> DriverResult<T> {
        match tokio::time::timeout(self.options.response_timeout(), future).await {
            Ok(result) => result.map_err(|error| redis_error(action, error)),
            Err(_) => Err(DriverError::timeout(format!(
                "redis bus {action}: no answer within {} ms",
                self.options.response_timeout_ms
            ))),
        }
    }

    async fn open(&self) -> DriverResult<(PubSubSink, PubSubStream)> {
        let connect = self.client.get_async_pubsub();
        match tokio::time::timeout(self.options.connection_timeout(), connect).await {
            Ok(Ok(pubsub)) => Ok(pubsub.split()),
            Ok(Err(error)) => Err(redis_error(&format!("connect to {}", self.options.url), error)),
            Err(_) => Err(DriverError::timeout(format!(
                "redis bus connect to {}: no connection within {} ms",
                self.options.url, self.options.connection_timeout_ms
            ))),
        }
    }

    /// Record `handler` for `channel` and subscribe it on the live
    /// connection. While the connection is down the subscription is only
    /// recorded; the reconnection subscribes it. Subscribing a known
    /// channel again only replaces its handler.
    pub async fn subscribe(&self, channel: &str, handler: BusMessageHandler) -> DriverResult<()> {
        if self.disconnected.load(Ordering::Acquire) {
            return Err(DriverError::disconnected());
        }
        let mut sink = self.sink.lock().await;
        let known = lock(&self.handlers).insert(channel.to_string(), handler).is_some();
        if let (Some(live), false) = (sink.as_mut(), known) {
            if let Err(error) = self.with_timeout(&format!("SUBSCRIBE {channel}"), live.subscribe(channel)).await {
                lock(&self.handlers).remove(channel);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Forget `channel`; messages already in flight for it are dropped.
    pub async fn unsubscribe(&self, channel: &str) -> DriverResult<()> {
        let mut sink = self.sink.lock().await;
        if lock(&self.handlers).remove(channel).is_none() {
            return Ok(());
        }
        if let Some(live) = sink.as_mut() {
            if let Err(error) = self.with_timeout(&format!("UNSUBSCRIBE {channel}"), live.unsubscribe(channel)).await {
                tracing::debug!(channel, %error, "redis bus unsubscribe failed; the channel is ignored anyway");
            }
        }
        Ok(())
    }

    /// Run `handler` after every re-established subscription.
    pub fn on_reconnect(&self, handler: ReconnectHandler) {
        lock(&self.reconnect_handlers).push(handler);
    }

    /// Stop the supervisor and close the connection; idempotent.
    pub async fn disconnect(&self) {
        if self.disconnected.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.stop.send_replace(true);
        self.sink.lock().await.take();
        lock(&self.handlers).clear();
    }

    fn dispatch(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        let handler = lock(&self.handlers).get(channel).cloned();
        if let Some(handler) = handler {
            handler(channel, message.get_payload_bytes().to_vec());
        }
    }

    /// Open a new connection, subscribe every recorded channel, publish the
    /// sink. Holding the sink lock makes this atomic with `subscribe`.
    async fn reconnect(&self) -> DriverResult<PubSubStream> {
        let (mut sink, stream) = self.open().await?;
        let mut live = self.sink.lock().await;
        let channels: Vec<String> = lock(&self.handlers).keys().cloned().collect();
        if !channels.is_empty() {
            self.with_timeout("SUBSCRIBE after reconnection", sink.subscribe(&channels)).await?;
        }
        *live = Some(sink);
        Ok(stream)
    }

    fn run_reconnect_handlers(&self) {
        let handlers = lock(&self.reconnect_handlers).clone();
        for handler in handlers {
            handler();
        }
    }

    async fn health_check(&self) -> DriverResult<()> {
        let sink = self.sink.lock().await.clone();
        match sink {
            Some(mut sink) => self.with_timeout("PING", sink.ping::<redis::Value>()).await.map(drop),
            None => Err(DriverError::connection("redis bus subscriber connection is down")),
        }
    }
}

/// Resolves once a stop was requested (or the bus was dropped).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Why the read loop ended.
enum Ended {
    Stopped,
    ConnectionLost,
}

async fn read_until_broken(
    subscriber: &Subscriber,
    stream: &mut PubSubStream,
    stopped: &mut watch::Receiver<bool>,
) -> Ended {
    let health_check = subscriber.options.health_check_interval();
    let mut ticker = tokio::time::interval(health_check.unwrap_or(Duration::from_secs(3600)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = stop_requested(stopped) => return Ended::Stopped,
            message = stream.next() => match message {
                Some(message) => subscriber.dispatch(&message),
                None => return Ended::ConnectionLost,
            },
            _ = ticker.tick(), if health_check.is_some() => {
                if let Err(error) = subscriber.health_check().await {
                    tracing::warn!(%error, "redis bus health check failed");
                    return Ended::ConnectionLost;
                }
            }
        }
    }
}

/// The supervisor task. Holds only a weak reference so that dropping the
/// bus without `disconnect` still ends it.
async fn supervise(
    subscriber: std::sync::Weak<Subscriber>,
    mut stream: PubSubStream,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        {
            let Some(strong) = subscriber.upgrade() else { return };
            if let Ended::Stopped = read_until_broken(&strong, &mut stream, &mut stopped).await {
                return;
            }
            strong.sink.lock().await.take();
            tracing::warn!(url = %strong.options.url, "redis bus subscriber connection lost; reconnecting");
        }
        let mut delay = RECONNECT_MIN_DELAY;
        loop {
            let Some(strong) = subscriber.upgrade() else { return };
            if *stopped.borrow() {
                return;
            }
            match strong.reconnect().await {
                Ok(new_stream) => {
                    stream = new_stream;
                    tracing::info!(url = %strong.options.url, "redis bus subscriber reconnected");
                    strong.run_reconnect_handlers();
                    break;
                }
                Err(error) => {
                    tracing::debug!(%error, ?delay, "redis bus reconnection failed");
                    let max_delay = strong.options.reconnect_max_delay();
                    drop(strong);
                    tokio::select! {
                        _ = stop_requested(&mut stopped) => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(max_delay);
                }
            }
        }
    }
}
