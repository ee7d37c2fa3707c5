//! Cache events (SPEC §5): subscribe with a tokio broadcast channel
//! ([`crate::Bento::subscribe`]) or a callback ([`crate::Bento::on_event`]).
//! Nothing is built or sent while nobody listens, so events cost one atomic
//! load on the hot path.

use crate::bus::MessageKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

/// Which tier served a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The in-process cache.
    L1,
    /// The remote (driver) cache.
    L2,
}

/// Something that happened in a store. `key` is relative to the store's
/// prefix (a namespaced key reads `namespace:key`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// A value was served.
    Hit {
        /// Store name.
        store: Arc<str>,
        /// The key.
        key: String,
        /// The tier that had it.
        layer: Layer,
        /// True when the value was logically expired and served from grace.
        graced: bool,
    },
    /// No usable value was found.
    Miss {
        /// Store name.
        store: Arc<str>,
        /// The key.
        key: String,
    },
    /// A value was written.
    Written {
        /// Store name.
        store: Arc<str>,
        /// The key.
        key: String,
    },
    /// A key was deleted.
    Deleted {
        /// Store name.
        store: Arc<str>,
        /// The key.
        key: String,
    },
    /// A namespace (or the whole store, `namespace` empty) was cleared.
    Cleared {
        /// Store name.
        store: Arc<str>,
        /// The namespace relative to the store prefix.
        namespace: String,
    },
    /// A key was logically expired.
    Expired {
        /// Store name.
        store: Arc<str>,
        /// The key.
        key: String,
    },
    /// A change was handed to the bus.
    BusPublished {
        /// Store name.
        store: Arc<str>,
        /// What changed.
        kind: MessageKind,
        /// Full prefix of the namespace.
        namespace: String,
        /// Keys of the change.
        keys: Vec<String>,
    },
    /// A stored value could not be read as the requested type (another
    /// type, corrupt or foreign data): read as a miss, unless the store
    /// uses `strict_decoding` (then the read fails).
    DecodeFailed {
        /// Store name.
        store: Arc<str>,
        /// The key.
        key: String,
        /// The tier holding the value.
        layer: Layer,
        /// What the serializer said.
        error: String,
    },
    /// A change from another instance was applied to L1.
    BusReceived {
        /// Store name.
        store: Arc<str>,
        /// What changed.
        kind: MessageKind,
        /// Full prefix of the namespace.
        namespace: String,
        /// Keys of the change.
        keys: Vec<String>,
    },
}

type Callback = Arc<dyn Fn(&CacheEvent) + Send + Sync>;

/// The event hub of one `Bento` (shared by its stores).
pub(crate) struct Events {
    sender: broadcast::Sender<CacheEvent>,
    callbacks: RwLock<Vec<Callback>>,
    listening: AtomicBool,
}

impl Default for Events {
    fn default() -> Self {
        Events { sender: broadcast::channel(4096).0, callbacks: RwLock::default(), listening: AtomicBool::new(false) }
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.listening.store(true, Ordering::Release);
        self.sender.subscribe()
    }

    pub fn on_event(&self, callback: Callback) {
        self.callbacks.write().unwrap_or_else(|poisoned| poisoned.into_inner()).push(callback);
        self.listening.store(true, Ordering::Release);
    }

    #[inline]
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// Emit the event built by `make`, only if someone listens.
    #[inline]
    pub fn emit(&self, make: impl FnOnce() -> CacheEvent) {
        if self.is_listening() {
            self.send(make());
        }
    }

    fn send(&self, event: CacheEvent) {
        for callback in self.callbacks.read().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
            callback(&event);
        }
        // No receiver left is fine: events are best effort.
        let _ = self.sender.send(event);
    }
}
