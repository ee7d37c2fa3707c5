//! The bus: keeping the L1 caches of many instances coherent (SPEC §6).
//!
//! When one instance writes, it tells the others which keys changed so they
//! drop or expire their L1 copies; values never travel on the bus. Pieces:
//!
//! * [`message`]: [`BusMessage`] and its BentoCache-compatible binary form
//!   ([`encode`] / [`decode`]), channel names, [`SenderId`].
//! * [`BusTransport`]: what moves the bytes. Implemented by a bus plugin
//!   ([`crate::Bus`], e.g. Redis pub/sub or NATS) and by [`MemoryBus`], the
//!   in-process hub for tests and single-process setups.
//! * [`BusNode`]: one instance on the bus. Encodes on publish, decodes on
//!   receipt, ignores its own echoes, never re-publishes what it receives,
//!   and keeps failed publishes in a retry queue ([`RetryQueueOptions`]:
//!   dedup, optional `max_size` dropping the oldest, retried every
//!   `retry_interval` (2 s) and at once after the transport reconnects).
//!
//! # The seam with the cache manager
//!
//! `BusNode` knows nothing of stores, L1 or L2; the manager drives it:
//!
//! 1. Build one node per `Bento` instance:
//!    `BusNode::new(transport, BusNodeOptions { retry_queue, on_event, .. })`
//!    with `transport` a [`crate::Bus`] from `Plugin::create_bus` or
//!    `MemoryBus::connect()` on a shared hub. `on_event` receives
//!    [`BusEvent::Published`] / [`BusEvent::Received`] (and queue events)
//!    for the manager's "bus published/received" events and metrics.
//! 2. For each store with a bus: `node.subscribe(store_name, handler)`; the
//!    handler gets every decoded [`BusMessage`] from OTHER nodes and applies
//!    it to that store's L1 (it runs on the transport's threads, so it must
//!    not block): resolve `message.namespace` (the full prefix, e.g.
//!    `bentocache:posts`) to the L1 namespace, then
//!    [`MessageKind::Set`] / [`MessageKind::Expire`] → logically expire each
//!    key (the stale copy stays for grace), [`MessageKind::Delete`] → remove
//!    each key, [`MessageKind::Clear`] → clear that namespace. Tag
//!    invalidations travel as a Set of the tag key (`___bc:t:<tag>`).
//!    [`BusNode::subscribe_channel`] gives a tokio receiver instead.
//! 3. After a write succeeded (L1, then L2 when there is one — never after a
//!    failed L2 write) and unless `skip_bus_notify`:
//!    `node.publish(store_name, &BusMessage::set(namespace, keys))`, likewise
//!    `delete`, `expire`, `clear(namespace)`. A failed publish is queued and
//!    returns `Ok(Published::Queued)`; an `Err` means the message was given
//!    up, which the manager logs and does not surface to the caller.
//! 4. `node.disconnect()` from `Bento::disconnect_all`.
//!
//! ```
//! # futures::executor::block_on(async {
//! use bento::bus::{BusMessage, BusNode, MemoryBus};
//!
//! let hub = MemoryBus::new();
//! let first = BusNode::new(hub.connect(), Default::default());
//! let second = BusNode::new(hub.connect(), Default::default());
//! let (sender, received) = std::sync::mpsc::channel();
//! let sender = std::sync::Mutex::new(sender);
//! second.subscribe("default", move |message| { let _ = sender.lock().unwrap().send(message); }).await?;
//!
//! first.publish("default", &BusMessage::delete("bentocache", vec!["user:1".into()])).await?;
//! let message = received.recv_timeout(std::time::Duration::from_secs(2)).unwrap();
//! assert_eq!(message.keys, ["user:1"]);
//! # Ok::<(), bento::Error>(()) }).unwrap();
//! ```

mod memory;
pub mod message;
mod node;
mod retry;
mod transport;

pub use memory::MemoryBus;
pub use message::{channel_name, decode, encode, BusMessage, DecodeError, MessageKind, SenderId};
pub use node::{BusEvent, BusEventHook, BusNode, BusNodeOptions, BusStats, Published};
pub use retry::RetryQueueOptions;
pub use transport::{BusTransport, PayloadHandler, ReconnectHook};
