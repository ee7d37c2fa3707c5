//! The in-process bus: several nodes of one process sharing a hub, for tests
//! and single-process setups with several `Bento` instances. No plugin, no
//! server.

use super::transport::{BusTransport, PayloadHandler, ReconnectHook};
use bento_plugin_api::DriverError;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};

/// One node on an in-process hub. [`MemoryBus::new`] starts a hub;
/// [`MemoryBus::connect`] adds another node to the same hub. Cloning gives
/// another handle on the same node.
///
/// Like Redis pub/sub, a message reaches every subscriber of its channel,
/// the publishing node included, asynchronously (on the hub's delivery
/// thread, in publish order). [`MemoryBus::set_offline`] simulates an outage
/// of one node for tests.
#[derive(Clone)]
pub struct MemoryBus {
    node: Arc<Node>,
}

struct Node {
    id: u64,
    hub: Arc<Hub>,
    offline: Arc<AtomicBool>,
    disconnected: AtomicBool,
    reconnect_hooks: Mutex<Vec<ReconnectHook>>,
}

struct Subscriber {
    node: u64,
    handler: PayloadHandler,
    offline: Arc<AtomicBool>,
}

struct Delivery {
    channel: String,
    payload: Vec<u8>,
    recipients: Vec<(PayloadHandler, Arc<AtomicBool>)>,
}

struct Hub {
    next_node: AtomicU64,
    subscribers: Mutex<HashMap<String, Vec<Subscriber>>>,
    deliveries: mpsc::Sender<Delivery>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Handlers never run under these locks, so a poisoned lock only means
    // a panic elsewhere; the data is still consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    fn start() -> Arc<Hub> {
        let (deliveries, queue) = mpsc::channel::<Delivery>();
        // The thread ends when the hub (the only sender) is dropped.
        std::thread::Builder::new()
            .name("bento-memory-bus".into())
            .spawn(move || {
                for delivery in queue {
                    for (handler, offline) in &delivery.recipients {
                        if !offline.load(Ordering::Acquire) {
                            let call = || handler(&delivery.channel, delivery.payload.clone());
                            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).is_err() {
                                tracing::error!(channel = %delivery.channel, "memory bus handler panicked");
                            }
                        }
                    }
                }
            })
            .expect("the OS can start the memory bus delivery thread");
        Arc::new(Hub { next_node: AtomicU64::new(0), subscribers: Mutex::default(), deliveries })
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus").field("node", &self.node.id).finish()
    }
}

impl MemoryBus {
    /// A node on a new hub.
    pub fn new() -> Self {
        Self::on_hub(Hub::start())
    }

    fn on_hub(hub: Arc<Hub>) -> Self {
        let id = hub.next_node.fetch_add(1, Ordering::Relaxed);
        MemoryBus {
            node: Arc::new(Node {
                id,
                hub,
                offline: Arc::new(AtomicBool::new(false)),
                disconnected: AtomicBool::new(false),
                reconnect_hooks: Mutex::default(),
            }),
        }
    }

    /// A new node on the same hub (another "instance").
    pub fn connect(&self) -> Self {
        Self::on_hub(self.node.hub.clone())
    }

    /// Simulate an outage of this node (for tests): while offline, its
    /// publishes fail with a connection error and it receives nothing.
    /// Coming back online keeps its subscriptions and runs its reconnect
    /// hooks.
    pub fn set_offline(&self, offline: bool) {
        let was_offline = self.node.offline.swap(offline, Ordering::AcqRel);
        if was_offline && !offline {
            let hooks = lock(&self.node.reconnect_hooks).clone();
            for hook in hooks {
                hook();
            }
        }
    }

    /// Come back online without running the reconnect hooks (a transport
    /// that recovers silently).
    #[cfg(test)]
    pub(crate) fn set_online_silently(&self) {
        self.node.offline.store(false, Ordering::Release);
    }

    fn check_usable(&self) -> Result<(), DriverError> {
        if self.node.disconnected.load(Ordering::Acquire) {
            return Err(DriverError::disconnected());
        }
        if self.node.offline.load(Ordering::Acquire) {
            return Err(DriverError::connection("memory bus node is offline"));
        }
        Ok(())
    }

    fn publish_now(&self, channel: &str, payload: Vec<u8>) -> Result<(), DriverError> {
        self.check_usable()?;
        let recipients = lock(&self.node.hub.subscribers)
            .get(channel)
            .map(|subscribers| {
                subscribers.iter().map(|subscriber| (subscriber.handler.clone(), subscriber.offline.clone())).collect()
            })
            .unwrap_or_default();
        self.node
            .hub
            .deliveries
            .send(Delivery { channel: channel.to_string(), payload, recipients })
            .map_err(|_| DriverError::connection("memory bus delivery thread stopped"))
    }

    fn subscribe_now(&self, channel: &str, handler: PayloadHandler) -> Result<(), DriverError> {
        if self.node.disconnected.load(Ordering::Acquire) {
            return Err(DriverError::disconnected());
        }
        let mut subscribers = lock(&self.node.hub.subscribers);
        let list = subscribers.entry(channel.to_string()).or_default();
        list.retain(|subscriber| subscriber.node != self.node.id);
        list.push(Subscriber { node: self.node.id, handler, offline: self.node.offline.clone() });
        Ok(())
    }

    fn unsubscribe_now(&self, channel: &str) {
        let mut subscribers = lock(&self.node.hub.subscribers);
        if let Some(list) = subscribers.get_mut(channel) {
            list.retain(|subscriber| subscriber.node != self.node.id);
            if list.is_empty() {
                subscribers.remove(channel);
            }
        }
    }

    fn disconnect_now(&self) {
        if self.node.disconnected.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut subscribers = lock(&self.node.hub.subscribers);
        for list in subscribers.values_mut() {
            list.retain(|subscriber| subscriber.node != self.node.id);
        }
        subscribers.retain(|_, list| !list.is_empty());
    }
}

impl BusTransport for MemoryBus {
    fn publish<'a>(&'a self, channel: &'a str, payload: Vec<u8>) -> BoxFuture<'a, Result<(), DriverError>> {
        let result = self.publish_now(channel, payload);
        Box::pin(async move { result })
    }

    fn subscribe<'a>(&'a self, channel: &'a str, handler: PayloadHandler) -> BoxFuture<'a, Result<(), DriverError>> {
        let result = self.subscribe_now(channel, handler);
        Box::pin(async move { result })
    }

    fn unsubscribe<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<(), DriverError>> {
        self.unsubscribe_now(channel);
        Box::pin(async { Ok(()) })
    }

    fn on_reconnect(&self, hook: ReconnectHook) {
        lock(&self.node.reconnect_hooks).push(hook);
    }

    fn disconnect(&self) -> BoxFuture<'_, Result<(), DriverError>> {
        self.disconnect_now();
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bento_plugin_api::ErrorKind;
    use std::time::Duration;

    fn collector() -> (PayloadHandler, mpsc::Receiver<(String, Vec<u8>)>) {
        let (sender, receiver) = mpsc::channel();
        let sender = Mutex::new(sender);
        let handler: PayloadHandler = Arc::new(move |channel: &str, payload: Vec<u8>| {
            let _ = lock(&sender).send((channel.to_string(), payload));
        });
        (handler, receiver)
    }

    const WAIT: Duration = Duration::from_secs(2);

    #[test]
    fn every_subscriber_of_the_channel_receives_including_the_publisher() {
        futures::executor::block_on(async {
            let a = MemoryBus::new();
            let b = a.connect();
            let (handler_a, received_a) = collector();
            let (handler_b, received_b) = collector();
            a.subscribe("c", handler_a).await.unwrap();
            b.subscribe("c", handler_b).await.unwrap();
            a.publish("c", b"hi".to_vec()).await.unwrap();
            a.publish("other", b"nobody".to_vec()).await.unwrap();
            assert_eq!(received_a.recv_timeout(WAIT).unwrap(), ("c".to_string(), b"hi".to_vec()));
            assert_eq!(received_b.recv_timeout(WAIT).unwrap(), ("c".to_string(), b"hi".to_vec()));
            assert!(received_b.recv_timeout(Duration::from_millis(100)).is_err());
        });
    }

    #[test]
    fn separate_hubs_do_not_talk() {
        futures::executor::block_on(async {
            let a = MemoryBus::new();
            let b = MemoryBus::new();
            let (handler, received) = collector();
            b.subscribe("c", handler).await.unwrap();
            a.publish("c", b"x".to_vec()).await.unwrap();
            assert!(received.recv_timeout(Duration::from_millis(100)).is_err());
        });
    }

    #[test]
    fn unsubscribe_and_disconnect_stop_delivery() {
        futures::executor::block_on(async {
            let a = MemoryBus::new();
            let b = a.connect();
            let (handler, received) = collector();
            b.subscribe("c", handler.clone()).await.unwrap();
            b.unsubscribe("c").await.unwrap();
            a.publish("c", b"1".to_vec()).await.unwrap();
            assert!(received.recv_timeout(Duration::from_millis(100)).is_err());

            b.subscribe("c", handler).await.unwrap();
            b.disconnect().await.unwrap();
            b.disconnect().await.unwrap();
            a.publish("c", b"2".to_vec()).await.unwrap();
            assert!(received.recv_timeout(Duration::from_millis(100)).is_err());
            assert_eq!(b.publish("c", vec![]).await.unwrap_err().kind, ErrorKind::DISCONNECTED);
        });
    }

    #[test]
    fn offline_node_fails_publishes_misses_messages_and_reconnects() {
        futures::executor::block_on(async {
            let a = MemoryBus::new();
            let b = a.connect();
            let (handler, received) = collector();
            b.subscribe("c", handler).await.unwrap();
            let reconnects = Arc::new(AtomicU64::new(0));
            let counter = reconnects.clone();
            b.on_reconnect(Arc::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
            }));

            b.set_offline(true);
            assert_eq!(b.publish("c", vec![]).await.unwrap_err().kind, ErrorKind::CONNECTION);
            a.publish("c", b"missed".to_vec()).await.unwrap();
            assert!(received.recv_timeout(Duration::from_millis(100)).is_err());

            b.set_offline(false);
            assert_eq!(reconnects.load(Ordering::SeqCst), 1);
            a.publish("c", b"seen".to_vec()).await.unwrap();
            assert_eq!(received.recv_timeout(WAIT).unwrap().1, b"seen");
        });
    }
}
