//! [`BusNode`]: one cache instance's presence on the bus. It turns
//! [`BusMessage`]s into payloads and back, drops its own echoes, and keeps
//! failed publishes in the retry queue until the transport takes them.

use super::message::{channel_name, decode, encode, BusMessage, DecodeError, MessageKind, SenderId, SENDER_ID_LEN};
use super::retry::{PendingPublish, Queued, RetryQueue, RetryQueueOptions};
use super::transport::{BusTransport, PayloadHandler};
use crate::error::Error;
use bento_plugin_api::DriverError;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

/// Something that happened on the bus, for the manager's events and metrics.
#[derive(Debug)]
pub enum BusEvent<'a> {
    /// A message left this node (at once, or later from the retry queue).
    Published {
        /// The store it is about.
        store: &'a str,
        /// The message.
        message: &'a BusMessage,
        /// True when it was sent by a retry.
        from_retry_queue: bool,
    },
    /// A message from another node arrived (before it is handed over).
    Received {
        /// The store it is about.
        store: &'a str,
        /// The message.
        message: &'a BusMessage,
    },
    /// A publish failed and the message waits in the retry queue.
    Queued {
        /// The store it is about.
        store: &'a str,
        /// The message.
        message: &'a BusMessage,
        /// Why the publish failed; `None` when it was queued behind earlier
        /// messages without trying (the bus is known to be down).
        error: Option<&'a DriverError>,
    },
    /// A message was given up: the publish failed with the queue disabled,
    /// or it was the oldest when the queue was full.
    Dropped {
        /// The store it is about.
        store: &'a str,
        /// The message.
        message: &'a BusMessage,
    },
    /// A payload on a subscribed channel was not a valid message.
    Malformed {
        /// The channel it came on.
        channel: &'a str,
        /// What was wrong.
        error: &'a DecodeError,
    },
}

/// Receives every [`BusEvent`]; runs on whatever thread the event happens
/// on (the caller's, the transport's or the retry thread): keep it short.
pub type BusEventHook = Arc<dyn Fn(&BusEvent<'_>) + Send + Sync>;

/// Options of a [`BusNode`].
#[derive(Clone)]
pub struct BusNodeOptions {
    /// Retry of failed publishes. Default: [`RetryQueueOptions::default`].
    pub retry_queue: RetryQueueOptions,
    /// This node's id on the wire. Default: `None`, a random id.
    pub sender_id: Option<SenderId>,
    /// Called for every [`BusEvent`]. Default: `None`.
    pub on_event: Option<BusEventHook>,
    /// Whether the cache's notifications leave through the node's outbox
    /// ([`BusNode::publish_in_background`]): a write returns once L1 and L2
    /// hold it, and its notification follows in order, a round trip later,
    /// instead of the write waiting for the bus (as FusionCache's
    /// background backplane operations). Default: `true`.
    pub background_publish: bool,
}

impl Default for BusNodeOptions {
    fn default() -> Self {
        BusNodeOptions {
            retry_queue: RetryQueueOptions::default(),
            sender_id: None,
            on_event: None,
            background_publish: true,
        }
    }
}

impl std::fmt::Debug for BusNodeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusNodeOptions")
            .field("retry_queue", &self.retry_queue)
            .field("sender_id", &self.sender_id)
            .field("on_event", &self.on_event.as_ref().map(|_| "Fn"))
            .field("background_publish", &self.background_publish)
            .finish()
    }
}

/// How a publish went, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The transport took it.
    Sent,
    /// The transport failed; the message waits in the retry queue (or an
    /// identical one already did).
    Queued,
}

/// Counters of one node, for tests and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Messages the transport took (direct and retried).
    pub published: u64,
    /// Of those, messages sent from the retry queue.
    pub retried: u64,
    /// Messages from other nodes handed to a subscriber.
    pub received: u64,
    /// This node's own messages that came back and were ignored.
    pub ignored_own: u64,
    /// Publishes that failed and were queued (duplicates included).
    pub queued: u64,
    /// Messages given up (queue disabled or full).
    pub dropped: u64,
    /// Payloads that were not valid messages.
    pub malformed: u64,
    /// Messages waiting in the retry queue now.
    pub queue_len: usize,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    retried: AtomicU64,
    received: AtomicU64,
    ignored_own: AtomicU64,
    queued: AtomicU64,
    dropped: AtomicU64,
    malformed: AtomicU64,
}

/// What the receive path needs; holds no transport, so handlers registered
/// with the transport do not keep it alive through a cycle.
struct Shared {
    sender_id: SenderId,
    counters: Counters,
    on_event: Option<BusEventHook>,
}

impl Shared {
    fn emit(&self, event: BusEvent<'_>) {
        if let Some(hook) = &self.on_event {
            hook(&event);
        }
    }

    fn receive(&self, store: &str, channel: &str, payload: &[u8], handler: &(dyn Fn(BusMessage) + Send + Sync)) {
        // Every write of this node comes back as its own echo: recognise
        // it by the sender id the payload starts with, before decoding
        // (and allocating) the namespace and keys.
        if is_from(&self.sender_id, payload) {
            self.counters.ignored_own.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match decode(payload) {
            Ok((_, message)) => {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                self.emit(BusEvent::Received { store, message: &message });
                handler(message);
            }
            Err(error) => {
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(channel, %error, "ignoring a malformed bus message");
                self.emit(BusEvent::Malformed { channel, error: &error });
            }
        }
    }
}

/// True when `payload` is a message of `sender`: it starts with the
/// sender id and has at least the type byte after it. The rest is not
/// looked at; a node ignores its own messages whatever they say.
fn is_from(sender: &SenderId, payload: &[u8]) -> bool {
    payload.len() > SENDER_ID_LEN && payload[..SENDER_ID_LEN] == sender.as_bytes()[..]
}

/// Wakes the retry thread: on a reconnection, or to stop it.
#[derive(Default)]
struct RetrySignal {
    state: Mutex<SignalState>,
    condvar: Condvar,
}

#[derive(Default)]
struct SignalState {
    wake: bool,
    stop: bool,
}

impl RetrySignal {
    fn wake(&self) {
        lock(&self.state).wake = true;
        self.condvar.notify_all();
    }

    fn stop(&self) {
        lock(&self.state).stop = true;
        self.condvar.notify_all();
    }

    /// Wait up to `interval` or until woken; false once stopped.
    fn wait(&self, interval: Duration) -> bool {
        let state = lock(&self.state);
        let (mut state, _) = self
            .condvar
            .wait_timeout_while(state, interval, |state| !state.wake && !state.stop)
            .unwrap_or_else(PoisonError::into_inner);
        state.wake = false;
        !state.stop
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No user code runs under these locks; a poisoned lock still holds
    // consistent data.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Notifications handed over by [`BusNode::publish_in_background`], sent
/// in order by one drain task at a time.
#[derive(Default)]
struct Outbox {
    state: Mutex<OutboxState>,
    /// Signalled whenever the outbox becomes empty with no drain running.
    idle: tokio::sync::Notify,
}

#[derive(Default)]
struct OutboxState {
    pending: VecDeque<(Arc<str>, BusMessage)>,
    /// A drain task runs (it takes every message pushed meanwhile).
    draining: bool,
}

/// Marks the end of a drain, also when its task is dropped unfinished (its
/// runtime shut down): the next background publish starts a new one.
struct Draining<'a>(&'a Outbox);

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        let idle = {
            let mut state = lock(&self.0.state);
            state.draining = false;
            state.pending.is_empty()
        };
        if idle {
            self.0.idle.notify_waiters();
        }
    }
}

/// The most keys one merged outbox message carries.
const MAX_MERGED_KEYS: usize = 512;

/// Consecutive messages of one store, kind and namespace become one message
/// with all their keys (one round trip instead of several, at most
/// [`MAX_MERGED_KEYS`] keys); order is kept.
fn coalesce(batch: impl IntoIterator<Item = (Arc<str>, BusMessage)>) -> Vec<(Arc<str>, BusMessage)> {
    let mut merged: Vec<(Arc<str>, BusMessage)> = Vec::new();
    for (store, message) in batch {
        if let Some((last_store, last)) = merged.last_mut() {
            let room = last.keys.len() + message.keys.len() <= MAX_MERGED_KEYS;
            if *last_store == store && last.kind == message.kind && last.namespace == message.namespace && room {
                if message.kind != MessageKind::Clear {
                    last.keys.extend(message.keys);
                }
                continue;
            }
        }
        merged.push((store, message));
    }
    merged
}

struct Inner {
    transport: Arc<dyn BusTransport>,
    outbox: Outbox,
    background: bool,
    shared: Arc<Shared>,
    options: RetryQueueOptions,
    queue: Mutex<RetryQueue>,
    signal: Arc<RetrySignal>,
    subscriptions: Mutex<HashSet<String>>,
    disconnected: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.signal.stop();
    }
}

/// One cache instance's presence on a bus; see the [module docs](super)
/// for how the manager uses it. Cheap to clone (clones share the node).
///
/// A node never publishes on its own: received messages are only handed to
/// the subscriber, so nothing is echoed.
#[derive(Clone)]
pub struct BusNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BusNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusNode")
            .field("sender_id", &self.inner.shared.sender_id)
            .field("stats", &self.stats())
            .finish()
    }
}

impl BusNode {
    /// A node publishing and receiving through `transport`. Starts the
    /// retry thread when the retry queue is enabled (a plain thread, so no
    /// particular async runtime is needed); it stops when the last clone of
    /// the node is dropped or on [`BusNode::disconnect`].
    pub fn new(transport: impl BusTransport, options: BusNodeOptions) -> BusNode {
        let shared = Arc::new(Shared {
            sender_id: options.sender_id.unwrap_or_else(SenderId::random),
            counters: Counters::default(),
            on_event: options.on_event,
        });
        let signal = Arc::new(RetrySignal::default());
        let wake = signal.clone();
        transport.on_reconnect(Arc::new(move || wake.wake()));
        let inner = Arc::new(Inner {
            transport: Arc::new(transport),
            outbox: Outbox::default(),
            background: options.background_publish,
            shared,
            queue: Mutex::new(RetryQueue::new(options.retry_queue.max_size)),
            options: options.retry_queue,
            signal,
            subscriptions: Mutex::default(),
            disconnected: AtomicBool::new(false),
        });
        if inner.options.enabled {
            spawn_retry_thread(Arc::downgrade(&inner), inner.signal.clone(), inner.options.retry_interval);
        }
        BusNode { inner }
    }

    /// This node's sender id.
    pub fn sender_id(&self) -> SenderId {
        self.inner.shared.sender_id
    }

    /// Current counters.
    pub fn stats(&self) -> BusStats {
        let counters = &self.inner.shared.counters;
        BusStats {
            published: counters.published.load(Ordering::Relaxed),
            retried: counters.retried.load(Ordering::Relaxed),
            received: counters.received.load(Ordering::Relaxed),
            ignored_own: counters.ignored_own.load(Ordering::Relaxed),
            queued: counters.queued.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed),
            malformed: counters.malformed.load(Ordering::Relaxed),
            queue_len: lock(&self.inner.queue).len(),
        }
    }

    /// Messages waiting in the retry queue.
    pub fn queue_len(&self) -> usize {
        lock(&self.inner.queue).len()
    }

    /// Tell the other nodes about `message` on `store`'s channel. A failed
    /// publish is queued for retry ([`Published::Queued`]), and while
    /// messages wait in the queue new ones join them without being tried.
    /// The error is returned only when the message is given up (queue
    /// disabled or `max_size` 0) or the node was disconnected.
    pub async fn publish(&self, store: &str, message: &BusMessage) -> Result<Published, Error> {
        publish_now(&self.inner, store, message).await
    }

    /// True when the cache hands its notifications to
    /// [`BusNode::publish_in_background`] (see
    /// [`BusNodeOptions::background_publish`]).
    pub fn publishes_in_background(&self) -> bool {
        self.inner.background
    }

    /// Queue `message` in the node's outbox and return at once: a task on
    /// the current tokio runtime publishes the outbox in order, as
    /// [`BusNode::publish`] would (retry queue included), merging
    /// consecutive messages of one store, kind and namespace into one.
    /// Outside a tokio runtime, with nothing waiting before it, the
    /// message is published before this returns. [`BusNode::flushed`]
    /// waits for the outbox; [`BusNode::disconnect`] sends it first.
    pub async fn publish_in_background(&self, store: &Arc<str>, message: BusMessage) {
        if self.inner.disconnected.load(Ordering::Acquire) {
            tracing::debug!(store = %store, "bus disconnected; notification not sent");
            return;
        }
        let runtime = tokio::runtime::Handle::try_current().ok();
        let start_drain = {
            let mut state = lock(&self.inner.outbox.state);
            state.pending.push_back((store.clone(), message));
            let start = !state.draining;
            state.draining = true;
            start
        };
        // Otherwise a drain already runs and takes it.
        match (start_drain, runtime) {
            (true, Some(runtime)) => drop(runtime.spawn(drain(self.inner.clone()))),
            // Without a runtime, it (and what waited before it) is sent here.
            (true, None) => drain(self.inner.clone()).await,
            (false, _) => {}
        }
    }

    /// Wait until every message handed to [`BusNode::publish_in_background`]
    /// so far was published (or queued for retry, or dropped).
    pub async fn flushed(&self) {
        let outbox = &self.inner.outbox;
        loop {
            let idle = outbox.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let drain_here = {
                let mut state = lock(&outbox.state);
                if state.pending.is_empty() && !state.draining {
                    return;
                }
                // No drain runs (its runtime is gone): send the rest here.
                let drain_here = !state.draining;
                state.draining = true;
                drain_here
            };
            if drain_here {
                drain(self.inner.clone()).await;
            } else {
                idle.await;
            }
        }
    }

    /// Hand every message other nodes publish for `store` to `handler`
    /// (own messages and malformed payloads are filtered out). The handler
    /// runs on the transport's threads: apply it to L1 and return.
    /// Subscribing a store again replaces its handler.
    pub async fn subscribe(
        &self,
        store: &str,
        handler: impl Fn(BusMessage) + Send + Sync + 'static,
    ) -> Result<(), Error> {
        if self.inner.disconnected.load(Ordering::Acquire) {
            return Err(DriverError::disconnected().into());
        }
        let channel = channel_name(store);
        let shared = self.inner.shared.clone();
        let store_name = store.to_string();
        let on_payload: PayloadHandler =
            Arc::new(move |channel: &str, payload: Vec<u8>| shared.receive(&store_name, channel, &payload, &handler));
        self.inner.transport.subscribe(&channel, on_payload).await?;
        lock(&self.inner.subscriptions).insert(store.to_string());
        Ok(())
    }

    /// Like [`BusNode::subscribe`], delivering into a channel the caller
    /// drains (e.g. a task applying messages to L1).
    pub async fn subscribe_channel(
        &self,
        store: &str,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<BusMessage>, Error> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        self.subscribe(store, move |message| {
            let _ = sender.send(message);
        })
        .await?;
        Ok(receiver)
    }

    /// Stop receiving `store`'s messages.
    pub async fn unsubscribe(&self, store: &str) -> Result<(), Error> {
        lock(&self.inner.subscriptions).remove(store);
        Ok(self.inner.transport.unsubscribe(&channel_name(store)).await?)
    }

    /// Retry the queued publishes now, in order, until one fails; returns
    /// how many are still waiting. The retry thread does this every
    /// `retry_interval` and after each reconnection.
    pub async fn flush_retry_queue(&self) -> usize {
        flush(&self.inner).await
    }

    /// Send the outbox ([`BusNode::publish_in_background`]), then stop the
    /// retry thread, unsubscribe every store and close the transport.
    /// Idempotent. Messages still in the retry queue are dropped.
    pub async fn disconnect(&self) -> Result<(), Error> {
        if self.inner.disconnected.load(Ordering::Acquire) {
            return Ok(());
        }
        // Notifications of writes already done leave first.
        self.flushed().await;
        if self.inner.disconnected.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.signal.stop();
        let stores: Vec<String> = lock(&self.inner.subscriptions).drain().collect();
        for store in stores {
            if let Err(error) = self.inner.transport.unsubscribe(&channel_name(&store)).await {
                tracing::debug!(store, %error, "unsubscribe during disconnect failed");
            }
        }
        Ok(self.inner.transport.disconnect().await?)
    }
}

/// [`BusNode::publish`].
async fn publish_now(inner: &Inner, store: &str, message: &BusMessage) -> Result<Published, Error> {
    if inner.disconnected.load(Ordering::Acquire) {
        return Err(DriverError::disconnected().into());
    }
    let shared = &inner.shared;
    let channel = channel_name(store);
    let payload = encode(&shared.sender_id, message);
    // While earlier messages wait, the bus is known to be down: queue
    // behind them without trying, so an outage costs each write no
    // timeout and notifications keep their order. The retry thread
    // flushes them after the reconnection (or within `retry_interval`).
    let known_down = inner.options.enabled && lock(&inner.queue).len() > 0;
    let error = if known_down {
        None
    } else {
        match inner.transport.publish(&channel, payload.clone()).await {
            Ok(()) => {
                shared.counters.published.fetch_add(1, Ordering::Relaxed);
                shared.emit(BusEvent::Published { store, message, from_retry_queue: false });
                return Ok(Published::Sent);
            }
            Err(error) => Some(error),
        }
    };
    let failure = |error: Option<DriverError>| {
        error.unwrap_or_else(|| DriverError::connection("the bus is down and the retry queue refused the message"))
    };
    if !inner.options.enabled {
        return Err(give_up(inner, store, message, failure(error)));
    }
    let pending = PendingPublish { store: store.to_string(), channel, message: message.clone(), payload };
    let (outcome, dropped) = {
        let mut queue = lock(&inner.queue);
        let oldest = queue.front().cloned();
        let outcome = queue.push(pending);
        (outcome, oldest.filter(|_| outcome == Queued::DroppedOldest))
    };
    if outcome == Queued::Refused {
        return Err(give_up(inner, store, message, failure(error)));
    }
    match &error {
        Some(error) => tracing::warn!(store, %error, "bus publish failed; queued for retry"),
        None => tracing::debug!(store, "bus is down; queued behind earlier messages"),
    }
    shared.counters.queued.fetch_add(1, Ordering::Relaxed);
    shared.emit(BusEvent::Queued { store, message, error: error.as_ref() });
    if let Some(dropped) = dropped {
        shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
        shared.emit(BusEvent::Dropped { store: &dropped.store, message: &dropped.message });
    }
    Ok(Published::Queued)
}

fn give_up(inner: &Inner, store: &str, message: &BusMessage, error: DriverError) -> Error {
    let shared = &inner.shared;
    tracing::warn!(store, %error, "bus publish failed; message dropped");
    shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
    shared.emit(BusEvent::Dropped { store, message });
    error.into()
}

/// Publish the outbox in order until it is empty (one drain at a time; the
/// caller set `draining`).
async fn drain(inner: Arc<Inner>) {
    let _draining = Draining(&inner.outbox);
    loop {
        let batch: Vec<_> = {
            let mut state = lock(&inner.outbox.state);
            if state.pending.is_empty() {
                return;
            }
            state.pending.drain(..).collect()
        };
        for (store, message) in coalesce(batch) {
            if let Err(error) = publish_now(&inner, &store, &message).await {
                tracing::warn!(store = %store, %error, "bus notification dropped");
            }
        }
    }
}

async fn flush(inner: &Inner) -> usize {
    loop {
        let Some(pending) = lock(&inner.queue).front().cloned() else { return 0 };
        if inner.disconnected.load(Ordering::Acquire) {
            return lock(&inner.queue).len();
        }
        match inner.transport.publish(&pending.channel, pending.payload.clone()).await {
            Ok(()) => {
                lock(&inner.queue).remove_front_if(&pending);
                let counters = &inner.shared.counters;
                counters.published.fetch_add(1, Ordering::Relaxed);
                counters.retried.fetch_add(1, Ordering::Relaxed);
                inner.shared.emit(BusEvent::Published {
                    store: &pending.store,
                    message: &pending.message,
                    from_retry_queue: true,
                });
            }
            Err(error) => {
                let waiting = lock(&inner.queue).len();
                tracing::debug!(%error, waiting, "bus retry failed; will try again");
                return waiting;
            }
        }
    }
}

fn spawn_retry_thread(inner: Weak<Inner>, signal: Arc<RetrySignal>, interval: Duration) {
    let spawned = std::thread::Builder::new().name("bento-bus-retry".into()).spawn(move || {
        while signal.wait(interval) {
            let Some(inner) = inner.upgrade() else { return };
            // Transports' futures need no particular runtime: plugin buses
            // run on the plugin's own runtime, the memory bus is synchronous.
            futures::executor::block_on(flush(&inner));
        }
    });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the bus retry thread; failed publishes are retried only on demand");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::{MemoryBus, MessageKind};
    use std::sync::mpsc;

    const WAIT: Duration = Duration::from_secs(3);

    fn no_retry_thread() -> BusNodeOptions {
        BusNodeOptions {
            retry_queue: RetryQueueOptions { retry_interval: Duration::from_secs(3600), ..Default::default() },
            ..Default::default()
        }
    }

    async fn subscribed(node: &BusNode, store: &str) -> mpsc::Receiver<BusMessage> {
        let (sender, receiver) = mpsc::channel();
        let sender = Mutex::new(sender);
        node.subscribe(store, move |message| {
            let _ = lock(&sender).send(message);
        })
        .await
        .expect("subscribe");
        receiver
    }

    #[test]
    fn other_nodes_receive_and_the_publisher_ignores_its_echo() {
        futures::executor::block_on(async {
            let hub = MemoryBus::new();
            let (a, b) =
                (BusNode::new(hub.clone(), Default::default()), BusNode::new(hub.connect(), Default::default()));
            let from_a = subscribed(&a, "users").await;
            let from_b = subscribed(&b, "users").await;
            let message = BusMessage::set("bentocache", vec!["user:1".into()]);
            assert_eq!(a.publish("users", &message).await.unwrap(), Published::Sent);
            assert_eq!(from_b.recv_timeout(WAIT).unwrap(), message);
            assert!(from_a.recv_timeout(Duration::from_millis(200)).is_err());
            assert_eq!(a.stats().ignored_own, 1);
            assert_eq!(a.stats().published, 1);
            assert_eq!(b.stats().received, 1);
            // b never re-publishes what it received.
            assert_eq!(b.stats().published, 0);
        });
    }

    #[test]
    fn stores_use_separate_channels() {
        futures::executor::block_on(async {
            let hub = MemoryBus::new();
            let (a, b) =
                (BusNode::new(hub.clone(), Default::default()), BusNode::new(hub.connect(), Default::default()));
            let posts = subscribed(&b, "posts").await;
            a.publish("users", &BusMessage::clear("bentocache")).await.unwrap();
            a.publish("posts", &BusMessage::clear("bentocache:posts")).await.unwrap();
            assert_eq!(posts.recv_timeout(WAIT).unwrap().namespace, "bentocache:posts");
            assert!(posts.recv_timeout(Duration::from_millis(100)).is_err());
        });
    }

    #[test]
    fn malformed_payloads_are_counted_and_skipped() {
        futures::executor::block_on(async {
            let hub = MemoryBus::new();
            let b = BusNode::new(hub.connect(), Default::default());
            let received = subscribed(&b, "s").await;
            hub.publish(&channel_name("s"), b"garbage".to_vec()).await.unwrap();
            let good = encode(&SenderId::random(), &BusMessage::delete("bentocache", vec!["k".into()]));
            hub.publish(&channel_name("s"), good).await.unwrap();
            assert_eq!(received.recv_timeout(WAIT).unwrap().kind, MessageKind::Delete);
            assert_eq!(b.stats().malformed, 1);
        });
    }

    #[test]
    fn own_messages_are_recognised_by_the_sender_id_alone() {
        futures::executor::block_on(async {
            let hub = MemoryBus::new();
            let b = BusNode::new(hub.connect(), Default::default());
            let received = subscribed(&b, "s").await;
            let own = b.sender_id();
            let mut truncated = own.as_bytes().to_vec();
            truncated.extend_from_slice(b"\x01\x00\x00");
            hub.publish(&channel_name("s"), truncated).await.unwrap();
            hub.publish(&channel_name("s"), own.as_bytes().to_vec()).await.unwrap();
            let echo = encode(&own, &BusMessage::set("bentocache", vec!["k".into()]));
            hub.publish(&channel_name("s"), echo).await.unwrap();
            assert!(received.recv_timeout(Duration::from_millis(200)).is_err());
            assert_eq!(b.stats().ignored_own, 2);
            // Only an id: not even a type byte.
            assert_eq!(b.stats().malformed, 1);
        });
    }

    #[test]
    fn failed_publishes_queue_dedup_and_flush_on_reconnect() {
        let hub = MemoryBus::new();
        let a_transport = hub.connect();
        let a = BusNode::new(a_transport.clone(), no_retry_thread());
        let b = BusNode::new(hub.connect(), Default::default());
        let received = futures::executor::block_on(subscribed(&b, "s"));

        a_transport.set_offline(true);
        let set = BusMessage::set("bentocache", vec!["k".into()]);
        let clear = BusMessage::clear("bentocache");
        for message in [&set, &set, &clear] {
            assert_eq!(futures::executor::block_on(a.publish("s", message)).unwrap(), Published::Queued);
        }
        assert_eq!(a.queue_len(), 2);
        assert_eq!(a.stats().queued, 3);

        // The reconnect hook wakes the retry thread at once (the interval is an hour).
        a_transport.set_offline(false);
        assert_eq!(received.recv_timeout(WAIT).unwrap(), set);
        assert_eq!(received.recv_timeout(WAIT).unwrap(), clear);
        assert_eq!(a.queue_len(), 0);
        assert_eq!(a.stats().retried, 2);
    }

    #[test]
    fn while_messages_wait_new_ones_queue_behind_them_in_order() {
        let hub = MemoryBus::new();
        let a_transport = hub.connect();
        let a = BusNode::new(a_transport.clone(), no_retry_thread());
        let b = BusNode::new(hub.connect(), Default::default());
        let received = futures::executor::block_on(subscribed(&b, "s"));
        let first = BusMessage::delete("bentocache", vec!["1".into()]);
        let second = BusMessage::delete("bentocache", vec!["2".into()]);

        a_transport.set_offline(true);
        assert_eq!(futures::executor::block_on(a.publish("s", &first)).unwrap(), Published::Queued);
        // The transport works again but nobody said so: the next message is
        // not tried ahead of the first one.
        a_transport.set_online_silently();
        assert_eq!(futures::executor::block_on(a.publish("s", &second)).unwrap(), Published::Queued);
        assert!(received.recv_timeout(Duration::from_millis(100)).is_err());

        assert_eq!(futures::executor::block_on(a.flush_retry_queue()), 0);
        assert_eq!(received.recv_timeout(WAIT).unwrap(), first);
        assert_eq!(received.recv_timeout(WAIT).unwrap(), second);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_publishes_arrive_in_order_merged_per_run_of_one_kind() {
        let hub = MemoryBus::new();
        let a = BusNode::new(hub.connect(), Default::default());
        let b = BusNode::new(hub.connect(), Default::default());
        let received = subscribed(&b, "s").await;
        let store: Arc<str> = Arc::from("s");
        let sent: Vec<(MessageKind, String)> = (0..200)
            .map(|i| (if i % 7 == 3 { MessageKind::Delete } else { MessageKind::Set }, format!("k{i}")))
            .collect();
        for (kind, key) in &sent {
            a.publish_in_background(&store, BusMessage::new(*kind, "bentocache", vec![key.clone()])).await;
        }
        a.flushed().await;
        let mut arrived = Vec::new();
        let mut messages = 0;
        while arrived.len() < sent.len() {
            let message = received.recv_timeout(WAIT).expect("every key arrives");
            messages += 1;
            arrived.extend(message.keys.iter().map(|key| (message.kind, key.clone())));
        }
        assert_eq!(arrived, sent, "same order, nothing lost or repeated");
        assert!(messages <= sent.len());
        assert_eq!(a.stats().published, messages as u64);
    }

    #[tokio::test]
    async fn disconnect_sends_the_outbox_first_and_later_notifications_are_dropped() {
        let hub = MemoryBus::new();
        let a = BusNode::new(hub.connect(), Default::default());
        let b = BusNode::new(hub.connect(), Default::default());
        let received = subscribed(&b, "s").await;
        let store: Arc<str> = Arc::from("s");
        a.publish_in_background(&store, BusMessage::delete("bentocache", vec!["1".into()])).await;
        a.publish_in_background(&store, BusMessage::clear("bentocache")).await;
        a.disconnect().await.unwrap();
        assert_eq!(received.recv_timeout(WAIT).unwrap().keys, ["1"]);
        assert_eq!(received.recv_timeout(WAIT).unwrap().kind, MessageKind::Clear);
        a.publish_in_background(&store, BusMessage::delete("bentocache", vec!["2".into()])).await;
        assert!(received.recv_timeout(Duration::from_millis(100)).is_err());
    }

    #[test]
    fn background_publish_without_a_runtime_publishes_before_returning() {
        let hub = MemoryBus::new();
        let a = BusNode::new(hub.connect(), Default::default());
        let b = BusNode::new(hub.connect(), Default::default());
        let received = futures::executor::block_on(subscribed(&b, "s"));
        let store: Arc<str> = Arc::from("s");
        futures::executor::block_on(
            a.publish_in_background(&store, BusMessage::delete("bentocache", vec!["1".into()])),
        );
        assert_eq!(a.stats().published, 1);
        assert_eq!(received.recv_timeout(WAIT).unwrap().keys, ["1"]);
    }

    #[test]
    fn the_queue_is_retried_every_interval() {
        let hub = MemoryBus::new();
        let a_transport = hub.connect();
        let options = BusNodeOptions {
            retry_queue: RetryQueueOptions { retry_interval: Duration::from_millis(50), ..Default::default() },
            ..Default::default()
        };
        let a = BusNode::new(a_transport.clone(), options);
        let b = BusNode::new(hub.connect(), Default::default());
        let received = futures::executor::block_on(subscribed(&b, "s"));
        a_transport.set_offline(true);
        futures::executor::block_on(a.publish("s", &BusMessage::delete("bentocache", vec!["k".into()]))).unwrap();
        // Back online without a reconnect notification: only the timer can flush.
        a_transport.set_online_silently();
        assert_eq!(received.recv_timeout(WAIT).unwrap().keys, ["k"]);
    }

    #[test]
    fn max_size_drops_the_oldest() {
        futures::executor::block_on(async {
            let hub = MemoryBus::new();
            let dropped = Arc::new(AtomicU64::new(0));
            let counter = dropped.clone();
            let options = BusNodeOptions {
                retry_queue: RetryQueueOptions { max_size: Some(2), ..no_retry_thread().retry_queue },
                on_event: Some(Arc::new(move |event: &BusEvent<'_>| {
                    if matches!(event, BusEvent::Dropped { .. }) {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                })),
                ..Default::default()
            };
            let a = BusNode::new(hub.clone(), options);
            hub.set_offline(true);
            for key in ["1", "2", "3"] {
                a.publish("s", &BusMessage::delete("bentocache", vec![key.into()])).await.unwrap();
            }
            assert_eq!(a.queue_len(), 2);
            assert_eq!(dropped.load(Ordering::SeqCst), 1);
            assert_eq!(a.stats().dropped, 1);
        });
    }

    #[test]
    fn disabled_queue_reports_the_failure() {
        futures::executor::block_on(async {
            let hub = MemoryBus::new();
            let options = BusNodeOptions {
                retry_queue: RetryQueueOptions { enabled: false, ..Default::default() },
                ..Default::default()
            };
            let a = BusNode::new(hub.clone(), options);
            hub.set_offline(true);
            let error = a.publish("s", &BusMessage::clear("bentocache")).await.unwrap_err();
            assert!(matches!(error, Error::Driver(ref e) if e.kind == crate::ErrorKind::CONNECTION), "{error}");
            assert_eq!(a.queue_len(), 0);
            assert_eq!(a.stats().dropped, 1);
        });
    }

    #[test]
    fn disconnect_is_idempotent_and_stops_everything() {
        futures::executor::block_on(async {
            let hub = MemoryBus::new();
            let a = BusNode::new(hub.clone(), Default::default());
            let b = BusNode::new(hub.connect(), Default::default());
            let received = subscribed(&b, "s").await;
            b.disconnect().await.unwrap();
            b.disconnect().await.unwrap();
            a.publish("s", &BusMessage::clear("bentocache")).await.unwrap();
            assert!(received.recv_timeout(Duration::from_millis(200)).is_err());
            assert!(b.publish("s", &BusMessage::clear("bentocache")).await.is_err());
        });
    }

    #[tokio::test]
    async fn subscribe_channel_feeds_a_tokio_receiver() {
        let hub = MemoryBus::new();
        let (a, b) = (BusNode::new(hub.clone(), Default::default()), BusNode::new(hub.connect(), Default::default()));
        let mut received = b.subscribe_channel("s").await.unwrap();
        a.publish("s", &BusMessage::expire("bentocache", vec!["k".into()])).await.unwrap();
        let message = tokio::time::timeout(WAIT, received.recv()).await.unwrap().unwrap();
        assert_eq!(message.kind, MessageKind::Expire);
    }
}
