//! The shared state of one store — its name, resolved options, serializer,
//! tiers, lock tables, events and metrics — and how a change received from
//! another instance over the bus is applied to its L1. Every [`crate::Cache`]
//! handle of the store (the root and each namespace) points here; this
//! module knows nothing of handles or verbs.

use crate::bus::{BusMessage, BusNode, MessageKind};
use crate::error::Error;
use crate::events::{CacheEvent, Events};
use crate::l1::{L1Entry, L1, NEVER};
use crate::l2::L2Shared;
use crate::locks::StampedeLocks;
use crate::options::Settings;
use crate::ordering::{Guards, KeyOrder};
use crate::serializer::Serializer;
use crate::tags::{HARD_TAG_PREFIX, SOFT_TAG_PREFIX};
use crate::telemetry::StoreMetrics;
use bento_plugin_api::Prefix;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Called with every factory error, foreground or background.
pub type FactoryErrorHook = Arc<dyn Fn(&Error) + Send + Sync>;

/// Shared state of one store.
pub(crate) struct StoreCore {
    pub name: Arc<str>,
    pub settings: Settings,
    pub serializer: Arc<dyn Serializer>,
    /// Stampede protection of `get_or_set` (one factory per full key).
    pub locks: Arc<StampedeLocks>,
    /// Write order of each full key between L1 and L2.
    pub order: KeyOrder,
    pub events: Arc<Events>,
    pub metrics: StoreMetrics,
    pub bus: Option<BusNode>,
    pub on_factory_error: Option<FactoryErrorHook>,
    /// L1 handle with the empty prefix (bus changes name full prefixes).
    pub l1_root: Option<L1>,
    /// What every namespace of the L2 shares (breaker, auto-recovery).
    pub l2_shared: Option<Arc<L2Shared>>,
    /// The longest physical lifetime (ms, `u64::MAX` = forever) of a tagged
    /// entry this store wrote: tag keys must outlive such entries.
    pub longest_tagged_lifetime: AtomicU64,
    /// Keys whose decode failure was already logged (bounded; cleared when
    /// full), so a bad key warns once, not on every read.
    pub decode_warned: std::sync::Mutex<std::collections::HashSet<String>>,
    /// This instance's owner name for fleet-wide locks (random).
    pub lock_owner: String,
    /// When (ms) the L1 gauges were last measured: counting the entries
    /// visits every shard of the L1, too slow for every write.
    pub l1_measured_at: AtomicU64,
}

impl StoreCore {
    /// Whether writes of one key must be ordered between two tiers.
    pub fn is_tiered(&self) -> bool {
        self.l1_root.is_some() && self.l2_shared.is_some()
    }

    /// Hold the write order of `full_keys` ([`KeyOrder::lock_all`]) when
    /// writes must be ordered between two tiers; nothing to hold otherwise.
    pub async fn write_order(&self, full_keys: &[String]) -> Guards {
        if self.is_tiered() {
            self.order.lock_all(full_keys).await
        } else {
            Guards::new()
        }
    }

    /// Remember that a tagged entry lives `lifetime_ms` (physically).
    pub fn tagged_entry_written(&self, lifetime_ms: u64) {
        self.longest_tagged_lifetime.fetch_max(lifetime_ms, Ordering::Relaxed);
    }

    /// The single bus notification point: publish `kind` for `keys` of the
    /// namespace `namespace` (a full prefix), unless the store has no bus.
    /// A failed publish is queued for retry by the bus node; giving up is
    /// logged, never surfaced (the change itself happened). With the node's
    /// `background_publish` (the default) this only hands the message to
    /// the node's ordered outbox.
    pub async fn publish(&self, kind: MessageKind, namespace: &str, keys: impl IntoIterator<Item = String>) {
        let Some(bus) = &self.bus else { return };
        // Collected only here: a store without a bus copies no key.
        let message = BusMessage::new(kind, namespace, keys.into_iter().collect());
        self.metrics.bus_published.increment(1);
        self.events.emit(|| CacheEvent::BusPublished {
            store: self.name.clone(),
            kind,
            namespace: message.namespace.clone(),
            keys: message.keys.clone(),
        });
        let span = tracing::debug_span!("bento.bus.publish", store = %self.name, kind = ?kind, namespace);
        if bus.publishes_in_background() {
            tracing::Instrument::instrument(bus.publish_in_background(&self.name, message), span).await;
        } else if let Err(error) = tracing::Instrument::instrument(bus.publish(&self.name, &message), span).await {
            tracing::warn!(store = %self.name, %error, "bus notification dropped");
        }
        self.metrics.bus_retry_queue.set(bus.queue_len() as f64);
    }

    /// Another instance invalidated a tag: its new timestamp is in L2, which
    /// may be unreachable (the sender publishes even then). Until L2 is read
    /// again (after the store TTL, as any cached tag timestamp), this
    /// instance uses the receive time: at or after the sender's, so every
    /// entry the sender invalidated is invalid here too (an entry created
    /// in between is invalidated as well — one extra miss, never a wrong
    /// value).
    async fn tag_invalidated(&self, l1: &L1, key: &str, now: u64) {
        let earlier = l1.get(key).await.and_then(|entry| entry.value::<u64>(&*self.serializer)).unwrap_or(0);
        let logical_expiration = self.settings.ttl.map_or(NEVER, |ttl| crate::entry::ms_after(now, ttl));
        let entry = L1Entry::decoded(now.max(earlier), now, logical_expiration, &[]);
        l1.set(key, entry, logical_expiration, now, 0).await;
    }

    /// Apply a message received from another instance to this store's L1:
    /// Set/Expire make the entries logically expired (a stale copy stays
    /// for grace), Delete removes them, Clear clears the namespace. Never
    /// re-published.
    pub async fn apply_message(&self, change: &BusMessage) {
        let span = tracing::debug_span!(
            "bento.bus.receive",
            store = %self.name,
            kind = ?change.kind,
            namespace = %change.namespace,
            keys = change.keys.len()
        );
        tracing::Instrument::instrument(self.apply_message_traced(change), span).await
    }

    async fn apply_message_traced(&self, change: &BusMessage) {
        let prefix = Prefix::new(&change.namespace);
        match change.kind {
            MessageKind::Clear => self.order.changed_all(),
            _ => change.keys.iter().for_each(|key| self.order.changed(&prefix.key(key))),
        }
        match self.l1_root.as_ref().map(|root| root.namespace(&change.namespace)) {
            Some(Ok(l1)) => {
                let now = crate::entry::now_ms();
                match change.kind {
                    MessageKind::Set | MessageKind::Expire => {
                        for key in &change.keys {
                            if change.kind == MessageKind::Set && is_tag_key(key) {
                                self.tag_invalidated(&l1, key, now).await;
                            } else {
                                l1.expire(key, now, self.settings.grace).await;
                            }
                        }
                    }
                    MessageKind::Delete => {
                        for key in &change.keys {
                            l1.delete(key).await;
                        }
                    }
                    MessageKind::Clear => l1.clear().await,
                }
            }
            Some(Err(error)) => {
                tracing::warn!(store = %self.name, namespace = %change.namespace, %error, "bus message not applied to L1");
            }
            None => {}
        }
        self.metrics.bus_received.increment(1);
        self.events.emit(|| CacheEvent::BusReceived {
            store: self.name.clone(),
            kind: change.kind,
            namespace: change.namespace.clone(),
            keys: change.keys.clone(),
        });
    }
}

/// True for the keys tag invalidations write (`___bc:t:<tag>`, `___bc:te:<tag>`).
fn is_tag_key(key: &str) -> bool {
    key.starts_with(HARD_TAG_PREFIX) || key.starts_with(SOFT_TAG_PREFIX)
}
