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
//! Without any feature the bus is correct: it is the Redis bus
//! (`bento-bus-redis`, same options), with the bug added where its messages
//! are handed to the host.
//!
//! Not for: anything but the conformance crate's own tests.

use bento_bus_redis::{RedisBus, RedisBusOptions};
use bento_plugin_api::{BusMessageHandler, CacheBus, DriverResult, ReconnectHandler};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the `reorders` bug holds a lone message before delivering it.
const HOLD: Duration = Duration::from_millis(50);

/// The Redis bus with one bug, chosen at build time.
pub struct BrokenBus {
    inner: RedisBus,
    /// Set by the first reconnection (for `never_resubscribes`).
    reconnected: Arc<AtomicBool>,
}

/// A message held back by the `reorders` bug, with its sequence number.
type Held = Arc<Mutex<Option<(u64, String, Vec<u8>)>>>;

impl BrokenBus {
    /// `handler` with the bug in front of it.
    fn broken_handler(&self, handler: BusMessageHandler) -> BusMessageHandler {
        let received = Arc::new(AtomicU64::new(0));
        let held: Held = Arc::default();
        let reconnected = self.reconnected.clone();
        Arc::new(move |channel: &str, payload: Vec<u8>| {
            let sequence = received.fetch_add(1, Ordering::AcqRel);
            if cfg!(feature = "never_resubscribes") && reconnected.load(Ordering::Acquire) {
                return;
            }
            if cfg!(feature = "drops_every_other") && sequence % 2 == 1 {
                return;
            }
            if cfg!(feature = "reorders") {
                let earlier = held.lock().unwrap_or_else(|p| p.into_inner()).take();
                match earlier {
                    Some((_, earlier_channel, earlier_payload)) => {
                        handler(channel, payload);
                        handler(&earlier_channel, earlier_payload);
                    }
                    None => {
                        *held.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some((sequence, channel.to_string(), payload));
                        // Deliver a lone message after a while, so only the
                        // order is wrong, not the count.
                        let (held, handler) = (held.clone(), handler.clone());
                        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                            runtime.spawn(async move {
                                tokio::time::sleep(HOLD).await;
                                let mut slot = held.lock().unwrap_or_else(|p| p.into_inner());
                                if slot.as_ref().is_some_and(|(held_sequence, _, _)| *held_sequence == sequence) {
                                    if let Some((_, channel, payload)) = slot.take() {
                                        drop(slot);
                                        handler(&channel, payload);
                                    }
                                }
                            });
                        }
                    }
                }
                return;
            }
            handler(channel, payload);
        })
    }
}

impl CacheBus for BrokenBus {
    type Options = RedisBusOptions;

    async fn connect(options: RedisBusOptions) -> DriverResult<Self> {
        let inner = RedisBus::connect(options).await?;
        let reconnected = Arc::new(AtomicBool::new(false));
        let flag = reconnected.clone();
        inner.on_reconnect(Arc::new(move || flag.store(true, Ordering::Release)));
        Ok(BrokenBus { inner, reconnected })
    }

    async fn publish(&self, channel: &str, payload: Vec<u8>) -> DriverResult<()> {
        self.inner.publish(channel, payload).await
    }

    async fn subscribe(&self, channel: &str, handler: BusMessageHandler) -> DriverResult<()> {
        self.inner.subscribe(channel, self.broken_handler(handler)).await
    }

    async fn unsubscribe(&self, channel: &str) -> DriverResult<()> {
        self.inner.unsubscribe(channel).await
    }

    fn on_reconnect(&self, handler: ReconnectHandler) {
        self.inner.on_reconnect(handler)
    }

    async fn disconnect(&self) -> DriverResult<()> {
        self.inner.disconnect().await
    }
}

bento_plugin_api::export_plugin! { name: "broken-bus", bus: BrokenBus }
