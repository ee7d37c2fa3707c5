//! [`Cache`]: the handle applications call — a store's root or one of its
//! namespaces. This file holds the tier plumbing every verb shares: reading
//! L1 → L2 (with L2 hits copied into L1), writing L1 → L2 → bus, and the
//! L2 error policy. The verbs live in `verbs.rs`, `get_or_set` in
//! `get_or_set.rs`, tags in `tags.rs`.

use crate::bus::{BusMessage, MessageKind};
use crate::entry::{ms_after, now_ms, Entry};
use crate::error::Error;
use crate::events::{CacheEvent, Layer};
use crate::l1::{physical_expiration, L1Entry, L1, NEVER};
use crate::l2::L2;
use crate::options::{CacheOptions, Settings};
use crate::serializer;
use crate::store::StoreCore;
use crate::tags::TagState;
use bento_plugin_api::{DriverError, Prefix};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// What a cached value must be: serializable for L2, cloneable out of L1.
/// `Option<T>` is a value like any other, so `None` can be cached.
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> CacheValue for T {}

/// A handle on a store or one of its namespaces. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<CacheInner>,
}

pub(crate) struct CacheInner {
    pub core: Arc<StoreCore>,
    /// Full key prefix, e.g. `bentocache:posts` (locks and bus).
    pub prefix: Prefix,
    /// Namespace path relative to the store prefix (`""` at the root).
    pub namespace: String,
    pub l1: Option<L1>,
    pub l2: Option<L2>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("store", &self.inner.core.name).field("prefix", &self.inner.prefix).finish()
    }
}

/// A value found in the tiers.
pub(crate) enum Lookup<T> {
    /// Fresh, from this layer.
    Fresh(T, Layer),
    /// Logically expired but within grace, from this layer.
    Stale(Entry<T>, Layer),
    /// Nothing usable.
    Missing,
}

impl Cache {
    pub(crate) fn root(core: Arc<StoreCore>, l1: Option<L1>, l2: Option<L2>) -> Cache {
        let prefix = Prefix::new(&core.settings.prefix);
        Cache { inner: Arc::new(CacheInner { core, prefix, namespace: String::new(), l1, l2 }) }
    }

    /// A handle on the nested namespace `name` (keys `prefix:name:key`),
    /// sharing tiers, locks and options.
    pub fn namespace(&self, name: &str) -> Result<Cache, Error> {
        let inner = &self.inner;
        let l2 = match &inner.l2 {
            Some(l2) => Some(l2.namespace(name).map_err(|source| Error::L2 { key: name.to_string(), source })?),
            None => None,
        };
        let l1 = match &inner.l1 {
            Some(l1) => Some(l1.namespace(name).map_err(Error::Driver)?),
            None => None,
        };
        let namespace =
            if inner.namespace.is_empty() { name.to_string() } else { format!("{}:{name}", inner.namespace) };
        Ok(Cache {
            inner: Arc::new(CacheInner {
                core: inner.core.clone(),
                prefix: inner.prefix.namespace(name),
                namespace,
                l1,
                l2,
            }),
        })
    }

    /// The store's name.
    pub fn store_name(&self) -> &str {
        &self.inner.core.name
    }

    /// The full key prefix of this handle, e.g. `bentocache:posts`.
    pub fn prefix(&self) -> &str {
        self.inner.prefix.as_str()
    }

    /// The resolved store options.
    pub fn settings(&self) -> &Settings {
        &self.inner.core.settings
    }

    pub(crate) fn settings_with(&self, op: &CacheOptions) -> Result<Settings, Error> {
        op.validate()?;
        Ok(self.inner.core.settings.with(op))
    }

    /// The key as events report it: relative to the store prefix.
    pub(crate) fn event_key(&self, key: &str) -> String {
        if self.inner.namespace.is_empty() {
            key.to_string()
        } else {
            format!("{}:{key}", self.inner.namespace)
        }
    }

    pub(crate) fn full_key(&self, key: &str) -> String {
        self.inner.prefix.key(key)
    }

    // ---- observations -------------------------------------------------

    pub(crate) fn record_hit(&self, key: &str, layer: Layer, graced: bool) {
        let core = &self.inner.core;
        match (graced, layer) {
            (true, _) => core.metrics.graced_hits.increment(1),
            (false, Layer::L1) => core.metrics.l1_hits.increment(1),
            (false, Layer::L2) => core.metrics.l2_hits.increment(1),
        }
        core.events.emit(|| CacheEvent::Hit { store: core.name.clone(), key: self.event_key(key), layer, graced });
    }

    pub(crate) fn record_miss(&self, key: &str) {
        let core = &self.inner.core;
        core.metrics.misses.increment(1);
        core.events.emit(|| CacheEvent::Miss { store: core.name.clone(), key: self.event_key(key) });
    }

    pub(crate) fn emit(&self, make: impl FnOnce(Arc<str>, String) -> CacheEvent, key: &str) {
        let core = &self.inner.core;
        core.events.emit(|| make(core.name.clone(), self.event_key(key)));
    }

    /// The single bus notification point: publish `kind` for `keys` of
    /// this namespace, unless the store has no bus. A failed publish is
    /// queued for retry by the bus node; giving up is logged, never
    /// surfaced (the write itself succeeded).
    pub(crate) async fn notify(&self, kind: MessageKind, keys: Vec<String>) {
        let core = &self.inner.core;
        let Some(bus) = &core.bus else { return };
        let message = BusMessage::new(kind, self.inner.prefix.as_str(), keys);
        core.metrics.bus_published.increment(1);
        core.events.emit(|| CacheEvent::BusPublished {
            store: core.name.clone(),
            kind,
            namespace: message.namespace.clone(),
            keys: message.keys.clone(),
        });
        if let Err(error) = bus.publish(&core.name, &message).await {
            tracing::warn!(store = %core.name, %error, "bus notification dropped");
        }
    }

    /// The L2 error policy: log it; return it unless suppressed.
    pub(crate) fn l2_failed(&self, key: &str, source: DriverError, settings: &Settings) -> Result<(), Error> {
        if settings.suppress_l2_errors {
            tracing::warn!(store = %self.inner.core.name, key, error = %source, "L2 error suppressed");
            Ok(())
        } else {
            Err(Error::L2 { key: key.to_string(), source })
        }
    }

    // ---- reads ---------------------------------------------------------

    /// The fresh L1 value of `key` as `T`, with no await and no clock read
    /// for entries that never expire: the hit path of `get`/`get_or_set`.
    #[inline]
    pub(crate) fn l1_fresh<T: CacheValue>(&self, key: &str) -> Option<T> {
        let entry = self.inner.l1.as_ref()?.get_for_freshness_check(key)?;
        if entry.logical_expiration != NEVER && now_ms() >= entry.logical_expiration {
            return None;
        }
        if entry.tags.is_some() && self.tag_state_l1(entry.tags(), entry.created_at) != Some(TagState::Valid) {
            return None;
        }
        let value = entry.into_value::<T>(&*self.inner.core.serializer)?;
        self.record_hit(key, Layer::L1, false);
        Some(value)
    }

    /// The L1 entry of `key` (live, possibly logically expired).
    pub(crate) async fn l1_get(&self, key: &str) -> Option<L1Entry> {
        self.inner.l1.as_ref()?.get(key).await
    }

    /// Look `key` up in L1 then L2. An L2 hit is copied into L1 keeping
    /// its created_at and logical expiration. A stale entry is returned
    /// only when `settings` allow grace for it.
    pub(crate) async fn lookup<T: CacheValue>(&self, key: &str, settings: &Settings) -> Result<Lookup<T>, Error> {
        let now = now_ms();
        let mut stale: Option<(Entry<T>, Layer)> = None;
        if let Some(l1) = &self.inner.l1 {
            if let Some(entry) = l1.get(key).await {
                if let Some(value) = entry.value::<T>(&*self.inner.core.serializer) {
                    match self.tag_state(entry.tags(), entry.created_at, settings).await? {
                        TagState::Deleted => {
                            l1.delete(key).await;
                        }
                        state => {
                            let mut found = Entry {
                                value,
                                logical_expiration: entry.logical_expiration(),
                                tags: entry.tags().to_vec(),
                                created_at: entry.created_at,
                            };
                            if state == TagState::Valid && entry.is_fresh(now) {
                                return Ok(Lookup::Fresh(found.value, Layer::L1));
                            }
                            state.apply_to(&mut found);
                            stale = Some((found, Layer::L1));
                        }
                    }
                }
            }
        }
        if let Some(l2) = &self.inner.l2 {
            match l2.call(l2.driver.get(key)).await {
                Ok(Some(bytes)) => match serializer::decode::<T>(&*self.inner.core.serializer, &bytes) {
                    Ok(mut entry) => match self.tag_state(&entry.tags, entry.created_at, settings).await? {
                        TagState::Deleted => {}
                        state => {
                            let fresh = state == TagState::Valid && !entry.is_expired(now);
                            state.apply_to(&mut entry);
                            let newer = stale.as_ref().is_none_or(|(old, _)| entry.created_at > old.created_at);
                            if fresh || newer {
                                self.store_l1(key, &entry, settings.grace, now, bytes.len() as u64).await;
                            }
                            if fresh {
                                return Ok(Lookup::Fresh(entry.value, Layer::L2));
                            }
                            if newer {
                                stale = Some((entry, Layer::L2));
                            }
                        }
                    },
                    Err(error) => {
                        tracing::warn!(store = %self.inner.core.name, key, %error, "undecodable L2 entry ignored");
                    }
                },
                Ok(None) => {}
                Err(source) => self.l2_failed(key, source, settings)?,
            }
        }
        Ok(match stale {
            Some((entry, layer)) if within_grace(&entry, settings, now) => Lookup::Stale(entry, layer),
            _ => Lookup::Missing,
        })
    }

    // ---- writes --------------------------------------------------------

    /// Put `entry` into L1 only (no bus), e.g. an L2 hit.
    pub(crate) async fn store_l1<T: CacheValue>(
        &self,
        key: &str,
        entry: &Entry<T>,
        grace: Option<Duration>,
        now: u64,
        weight: u64,
    ) {
        let Some(l1) = &self.inner.l1 else { return };
        let logical_expiration = entry.logical_expiration.unwrap_or(NEVER);
        let physical_expiration = physical_expiration(logical_expiration, grace);
        let l1_entry = L1Entry::decoded(entry.value.clone(), entry.created_at, logical_expiration, &entry.tags);
        l1.set(key, l1_entry, physical_expiration, now, weight).await;
    }

    /// Write `entry` to L1, then L2 (unless skipped), then the bus (unless
    /// skipped, and only if there is no L2 or its write succeeded).
    /// Returns whether L2 (or L1 alone) accepted it.
    pub(crate) async fn store_entry<T: CacheValue>(
        &self,
        key: &str,
        entry: &Entry<T>,
        settings: &Settings,
    ) -> Result<bool, Error> {
        let now = now_ms();
        let write_l2 = self.inner.l2.as_ref().filter(|_| !settings.skip_l2_write);
        let measure = self.inner.l1.as_ref().is_some_and(L1::measures_size);
        let bytes = if write_l2.is_some() || measure {
            Some(
                serializer::encode(&*self.inner.core.serializer, entry)
                    .map_err(|source| Error::Serialization { key: key.to_string(), source })?,
            )
        } else {
            None
        };
        self.store_l1(key, entry, settings.grace, now, bytes.as_ref().map_or(0, |b| b.len() as u64)).await;
        let mut stored = true;
        if let (Some(l2), Some(bytes)) = (write_l2, bytes) {
            let physical_ttl = match entry.logical_expiration {
                None => None,
                Some(at) => {
                    let end = ms_after(at, settings.grace.unwrap_or_default());
                    Some(Duration::from_millis(end.saturating_sub(now).max(1)))
                }
            };
            match l2.call(l2.driver.set(key, bytes, physical_ttl)).await {
                Ok(ok) => stored = ok,
                Err(source) => {
                    self.l2_failed(key, source, settings)?;
                    return Ok(false);
                }
            }
        }
        if !settings.skip_bus_notify {
            self.notify(MessageKind::Set, vec![key.to_string()]).await;
        }
        Ok(stored)
    }

    /// Write a new value computed now with `settings.ttl` and `tags`.
    pub(crate) async fn write<T: CacheValue>(
        &self,
        key: &str,
        value: T,
        tags: Vec<String>,
        settings: &Settings,
    ) -> Result<bool, Error> {
        let now = now_ms();
        let entry = Entry {
            value,
            logical_expiration: crate::entry::logical_expiration(now, settings.ttl),
            tags,
            created_at: now,
        };
        let stored = self.store_entry(key, &entry, settings).await?;
        self.inner.core.metrics.writes.increment(1);
        self.emit(|store, key| CacheEvent::Written { store, key }, key);
        Ok(stored)
    }
}

/// True when a logically expired `entry` may still be served.
pub(crate) fn within_grace<T>(entry: &Entry<T>, settings: &Settings, now: u64) -> bool {
    match (settings.grace, entry.logical_expiration) {
        (Some(grace), Some(at)) => now < ms_after(at, grace),
        (Some(_), None) => true,
        (None, _) => false,
    }
}
