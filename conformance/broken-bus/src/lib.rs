//! # bento-broken-bus
//!
//! Deliberately broken buses that the conformance bus suite must catch. ONE
//! crate, one bug per Cargo feature (see Cargo.toml for the list and the
//! case expected to catch each); build with at most one feature:
//!
//! ```text
//! cargo build -p bento-broken-bus --features reorders
//! ```
//!
//! Without any feature the bus is correct: a small Redis pub/sub bus (one
//! option, `url`) whose subscriber connection reconnects and resubscribes
//! when it breaks. It is written out here rather than wrapping
//! `bento-bus-redis` because the bugs sit inside its delivery and
//! reconnect loop.
//!
//! Not for: anything but the conformance crate's own tests.

use bento_plugin_api::{BusMessageHandler, CacheBus, DriverError, DriverResult, ReconnectHandler};
use futures::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

/// How long the `reorders` bug holds a lone message before delivering it.
const HOLD: Duration = Duration::from_millis(50);
/// Wait between reconnection attempts.
const RETRY: Duration = Duration::from_millis(100);
/// Bound of every Redis call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Options: the Redis server.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrokenBusOptions {
    /// `redis://host:port`. Required.
    pub url: String,
}

/// What the bus and its supervisor task share.
struct State {
    client: redis::Client,
    handlers: Mutex<HashMap<String, BusMessageHandler>>,
    reconnect_handlers: Mutex<Vec<ReconnectHandler>>,
    sink: tokio::sync::Mutex<Option<PubSubSink>>,
    disconnected: AtomicBool,
}

/// A Redis pub/sub bus with one bug, chosen at build time.
pub struct BrokenBus {
    publisher: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    state: Arc<State>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn connection_error(action: &str, error: impl std::fmt::Display) -> DriverError {
    DriverError::connection(format!("broken bus {action}: {error}"))
}

async fn bounded<T, E: std::fmt::Display>(
    action: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> DriverResult<T> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(|error| connection_error(action, error)),
        Err(_) => Err(DriverError::timeout(format!("broken bus {action}: no answer within {CALL_TIMEOUT:?}"))),
    }
}

impl State {
    async fn open(&self) -> DriverResult<(PubSubSink, PubSubStream)> {
        Ok(bounded("connect", self.client.get_async_pubsub()).await?.split())
    }

    fn dispatch(&self, message: &redis::Msg) {
        let channel = message.get_channel_name();
        let handler = lock(&self.handlers).get(channel).cloned();
        if let Some(handler) = handler {
            handler(channel, message.get_payload_bytes().to_vec());
        }
    }

    /// A new subscriber connection, with every channel subscribed again
    /// (unless the `never_resubscribes` bug is on).
    async fn reconnect(&self) -> DriverResult<PubSubStream> {
        let (mut sink, stream) = self.open().await?;
        let mut live = self.sink.lock().await;
        let channels: Vec<String> = lock(&self.handlers).keys().cloned().collect();
        if !channels.is_empty() && !cfg!(feature = "never_resubscribes") {
            bounded("SUBSCRIBE after reconnection", sink.subscribe(&channels)).await?;
        }
        *live = Some(sink);
        Ok(stream)
    }
}

/// Reads the subscriber connection; reconnects when it ends.
async fn supervise(state: Weak<State>, mut stream: PubSubStream) {
    loop {
        while let Some(message) = stream.next().await {
            let Some(state) = state.upgrade() else { return };
            state.dispatch(&message);
        }
        loop {
            let Some(strong) = state.upgrade() else { return };
            if strong.disconnected.load(Ordering::Acquire) {
                return;
            }
            strong.sink.lock().await.take();
            if let Ok(new_stream) = strong.reconnect().await {
                stream = new_stream;
                let handlers = lock(&strong.reconnect_handlers).clone();
                for handler in handlers {
                    handler();
                }
                break;
            }
            drop(strong);
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// A message held back by the `reorders` bug: sequence number, channel,
/// payload.
type Held = Arc<Mutex<Option<(u64, String, Vec<u8>)>>>;

/// `handler` with the message bugs in front of it.
fn broken_handler(handler: BusMessageHandler) -> BusMessageHandler {
    let received = Arc::new(AtomicU64::new(0));
    let held: Held = Arc::default();
    Arc::new(move |channel: &str, payload: Vec<u8>| {
        let sequence = received.fetch_add(1, Ordering::AcqRel);
        if cfg!(feature = "drops_every_other") && sequence % 2 == 1 {
            return;
        }
        if !cfg!(feature = "reorders") {
            return handler(channel, payload);
        }
        let earlier = lock(&held).take();
        if let Some((_, earlier_channel, earlier_payload)) = earlier {
            handler(channel, payload);
            handler(&earlier_channel, earlier_payload);
            return;
        }
        *lock(&held) = Some((sequence, channel.to_string(), payload));
        // A lone message is delivered after a while: only the order is wrong.
        let (held, handler) = (held.clone(), handler.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                tokio::time::sleep(HOLD).await;
                let mut slot = lock(&held);
                if slot.as_ref().is_some_and(|(held_sequence, _, _)| *held_sequence == sequence) {
                    if let Some((_, channel, payload)) = slot.take() {
                        drop(slot);
                        handler(&channel, payload);
                    }
                }
            });
        }
    })
}

impl BrokenBus {
    fn check_open(&self) -> DriverResult<()> {
        if self.state.disconnected.load(Ordering::Acquire) {
            return Err(DriverError::disconnected());
        }
        Ok(())
    }
}

impl CacheBus for BrokenBus {
    type Options = BrokenBusOptions;

    async fn connect(options: BrokenBusOptions) -> DriverResult<Self> {
        let client = redis::Client::open(options.url.as_str())
            .map_err(|error| DriverError::invalid_options(format!("invalid option `url`: {error}")))?;
        let publisher = bounded("connect", client.get_multiplexed_async_connection()).await?;
        let state = Arc::new(State {
            client,
            handlers: Mutex::default(),
            reconnect_handlers: Mutex::default(),
            sink: tokio::sync::Mutex::new(None),
            disconnected: AtomicBool::new(false),
        });
        let (sink, stream) = state.open().await?;
        *state.sink.lock().await = Some(sink);
        tokio::spawn(supervise(Arc::downgrade(&state), stream));
        Ok(BrokenBus { publisher: tokio::sync::Mutex::new(Some(publisher)), state })
    }

    async fn publish(&self, channel: &str, payload: Vec<u8>) -> DriverResult<()> {
        self.check_open()?;
        let mut publisher = self.publisher.lock().await;
        if publisher.is_none() {
            *publisher = Some(bounded("connect", self.state.client.get_multiplexed_async_connection()).await?);
        }
        let Some(connection) = publisher.as_mut() else { return Err(connection_error("publish", "no connection")) };
        let mut command = redis::cmd("PUBLISH");
        command.arg(channel).arg(payload);
        let result = bounded("PUBLISH", command.query_async::<i64>(connection)).await;
        if result.is_err() {
            // Reconnect at the next publish.
            publisher.take();
        }
        result.map(drop)
    }

    async fn subscribe(&self, channel: &str, handler: BusMessageHandler) -> DriverResult<()> {
        self.check_open()?;
        let mut sink = self.state.sink.lock().await;
        let known = lock(&self.state.handlers).insert(channel.to_string(), broken_handler(handler)).is_some();
        if let (Some(live), false) = (sink.as_mut(), known) {
            bounded("SUBSCRIBE", live.subscribe(channel)).await?;
        }
        Ok(())
    }

    async fn unsubscribe(&self, channel: &str) -> DriverResult<()> {
        let mut sink = self.state.sink.lock().await;
        if lock(&self.state.handlers).remove(channel).is_some() {
            if let Some(live) = sink.as_mut() {
                let _ = bounded("UNSUBSCRIBE", live.unsubscribe(channel)).await;
            }
        }
        Ok(())
    }

    fn on_reconnect(&self, handler: ReconnectHandler) {
        lock(&self.state.reconnect_handlers).push(handler);
    }

    async fn disconnect(&self) -> DriverResult<()> {
        if self.state.disconnected.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.state.sink.lock().await.take();
        self.publisher.lock().await.take();
        lock(&self.state.handlers).clear();
        Ok(())
    }
}

bento_plugin_api::export_plugin! { name: "broken-bus", bus: BrokenBus }
