//! The public verbs of [`Cache`] (SPEC §5), each a thin composition of the
//! tier plumbing in `cache.rs`.

use crate::bus::MessageKind;
use crate::cache::{within_grace, Cache, CacheValue, Lookup};
use crate::entry::{ms_after, now_ms, Entry};
use crate::error::Error;
use crate::events::{CacheEvent, Layer};
use crate::get_or_set::Factory;
use crate::ops::{Get, GetOrSet, Set};
use crate::options::{CacheOptions, Settings};
use crate::serializer;
use crate::tags::TagState;
use bento_plugin_api::SetItem;
use serde::de::IgnoredAny;
use std::marker::PhantomData;
use std::time::Duration;
use tracing::Instrument;

impl Cache {
    /// The value of `key`: fresh, or stale within grace when grace is
    /// enabled; `None` when missing. Chain options, then `.await`.
    ///
    /// ```
    /// # async fn demo(cache: bento::Cache) -> Result<(), bento::Error> {
    /// let name: Option<String> = cache.get("user:1").await?;
    /// # Ok(()) }
    /// ```
    pub fn get<'a, T: CacheValue>(&'a self, key: &'a str) -> Get<'a, T> {
        Get { cache: self, key, options: None, value: PhantomData }
    }

    pub(crate) async fn get_slow<T: CacheValue>(&self, key: &str, options: CacheOptions) -> Result<Option<T>, Error> {
        let settings = self.settings_with(&options)?;
        let span = tracing::debug_span!("bento.get", store = %self.inner.core.name, key);
        match self.lookup::<T>(key, &settings).instrument(span).await? {
            Lookup::Fresh(value, layer) => {
                self.record_hit(key, layer, false);
                Ok(Some(value))
            }
            Lookup::Stale(entry, layer) => {
                self.record_hit(key, layer, true);
                Ok(Some(entry.value))
            }
            Lookup::Missing => {
                self.record_miss(key);
                Ok(None)
            }
        }
    }

    /// The value of `key`, or `default()` (called only on a miss, and not
    /// cached).
    pub async fn get_or<T: CacheValue>(&self, key: &str, default: impl FnOnce() -> T) -> Result<T, Error> {
        Ok(self.get::<T>(key).await?.unwrap_or_else(default))
    }

    /// The value of `key`, computed by `factory` on a miss — once, however
    /// many callers miss at the same time. See `get_or_set.rs` for grace and
    /// timeouts.
    pub fn get_or_set<'a, T: CacheValue, F: Factory<T>>(&'a self, key: &'a str, factory: F) -> GetOrSet<'a, T, F> {
        GetOrSet { cache: self, key, factory, options: None, tags: Vec::new(), value: PhantomData }
    }

    /// [`Cache::get_or_set`] whose value never expires logically.
    pub fn get_or_set_forever<'a, T: CacheValue, F: Factory<T>>(
        &'a self,
        key: &'a str,
        factory: F,
    ) -> GetOrSet<'a, T, F> {
        self.get_or_set(key, factory).forever()
    }

    /// Store `value` at `key` (L1, then L2, then the bus).
    pub fn set<'a, T: CacheValue>(&'a self, key: &'a str, value: T) -> Set<'a, T> {
        Set { cache: self, key, value, options: None, tags: Vec::new() }
    }

    /// [`Cache::set`] with no logical expiry.
    pub fn set_forever<'a, T: CacheValue>(&'a self, key: &'a str, value: T) -> Set<'a, T> {
        self.set(key, value).forever()
    }

    /// True when `get` would return a value (of any type).
    pub async fn has(&self, key: &str) -> Result<bool, Error> {
        let settings = &self.inner.core.settings;
        let now = now_ms();
        if let Some(entry) = self.l1_get(key).await {
            let state = self.tag_state(entry.tags(), entry.created_at, settings).await?;
            let mut meta = Entry {
                value: (),
                logical_expiration: entry.logical_expiration(),
                tags: Vec::new(),
                created_at: entry.created_at,
            };
            state.apply_to(&mut meta);
            if state != TagState::Deleted && (!meta.is_expired(now) || within_grace(&meta, settings, now)) {
                return Ok(true);
            }
        }
        if let Some(l2) = &self.inner.l2 {
            match l2.call(l2.driver.get(key)).await {
                Ok(Some(bytes)) => {
                    if let Ok(mut entry) = serializer::decode::<IgnoredAny>(&*self.inner.core.serializer, &bytes) {
                        let state = self.tag_state(&entry.tags, entry.created_at, settings).await?;
                        state.apply_to(&mut entry);
                        return Ok(state != TagState::Deleted
                            && (!entry.is_expired(now) || within_grace(&entry, settings, now)));
                    }
                }
                Ok(None) => {}
                Err(source) => self.l2_failed(key, source, settings)?,
            }
        }
        Ok(false)
    }

    /// `!has(key)`.
    pub async fn missing(&self, key: &str) -> Result<bool, Error> {
        Ok(!self.has(key).await?)
    }

    /// The value of `key`, then delete it.
    pub async fn pull<T: CacheValue>(&self, key: &str) -> Result<Option<T>, Error> {
        let value = self.get::<T>(key).await?;
        self.delete(key).await?;
        Ok(value)
    }

    /// Delete `key` from L1 and L2 and notify the bus; true if it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        let settings = &self.inner.core.settings;
        let mut existed = match &self.inner.l1 {
            Some(l1) => l1.delete(key).await,
            None => false,
        };
        if let Some(l2) = &self.inner.l2 {
            match l2.call(l2.driver.delete(key)).await {
                Ok(found) => existed |= found,
                Err(source) => {
                    self.l2_failed(key, source, settings)?;
                    return Ok(existed);
                }
            }
        }
        self.notify(MessageKind::Delete, vec![key.to_string()]).await;
        self.inner.core.metrics.deletes.increment(1);
        self.emit(|store, key| CacheEvent::Deleted { store, key }, key);
        Ok(existed)
    }

    /// Delete every key of `keys`; returns how many existed.
    pub async fn delete_many(&self, keys: &[&str]) -> Result<u64, Error> {
        if keys.is_empty() {
            return Ok(0);
        }
        let settings = &self.inner.core.settings;
        let mut existed = 0;
        if let Some(l1) = &self.inner.l1 {
            for key in keys {
                existed += u64::from(l1.delete(key).await);
            }
        }
        if let Some(l2) = &self.inner.l2 {
            let owned: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
            match l2.call(l2.driver.delete_many(&owned)).await {
                Ok(count) => existed = existed.max(count),
                Err(source) => {
                    self.l2_failed(keys[0], source, settings)?;
                    return Ok(existed);
                }
            }
        }
        self.notify(MessageKind::Delete, keys.iter().map(|key| key.to_string()).collect()).await;
        for key in keys {
            self.inner.core.metrics.deletes.increment(1);
            self.emit(|store, key| CacheEvent::Deleted { store, key }, key);
        }
        Ok(existed)
    }

    /// Logically expire `key` in L1 and L2, keeping their physical TTL so
    /// the stale value can still be served within grace; notifies the bus.
    pub async fn expire(&self, key: &str) -> Result<bool, Error> {
        let settings = &self.inner.core.settings;
        let now = now_ms();
        let mut found = match &self.inner.l1 {
            Some(l1) => l1.expire(key, now, settings.grace).await,
            None => false,
        };
        if self.inner.l2.is_some() {
            if let Err(source) = self.expire_l2(key, now, settings).await.map(|hit| found |= hit) {
                self.l2_failed(key, source, settings)?;
                return Ok(found);
            }
        }
        self.notify(MessageKind::Expire, vec![key.to_string()]).await;
        self.emit(|store, key| CacheEvent::Expired { store, key }, key);
        Ok(found)
    }

    async fn expire_l2(&self, key: &str, now: u64, settings: &Settings) -> Result<bool, bento_plugin_api::DriverError> {
        let Some(l2) = &self.inner.l2 else { return Ok(false) };
        let Some(bytes) = l2.call(l2.driver.get(key)).await? else { return Ok(false) };
        let serializer = &*self.inner.core.serializer;
        let Ok(mut entry) = serializer::decode::<serde_json::Value>(serializer, &bytes) else { return Ok(false) };
        if entry.is_expired(now) {
            return Ok(true);
        }
        let old_logical = entry.logical_expiration;
        entry.logical_expiration = Some(now);
        let Some(grace) = settings.grace else {
            // Without grace an expired entry can never be served: drop it.
            l2.call(l2.driver.delete(key)).await?;
            return Ok(true);
        };
        let physical_ttl = old_logical.map(|at| Duration::from_millis(ms_after(at, grace).saturating_sub(now).max(1)));
        let bytes = serializer::encode(serializer, &entry)
            .map_err(|error| bento_plugin_api::DriverError::backend(format!("re-encoding {key}: {error}")))?;
        l2.call(l2.driver.set(key, bytes, physical_ttl)).await?;
        Ok(true)
    }

    /// Remove every key of this namespace (nested namespaces included) from
    /// L1 and L2, and notify the bus.
    pub async fn clear(&self) -> Result<(), Error> {
        let settings = &self.inner.core.settings;
        if let Some(l1) = &self.inner.l1 {
            l1.clear().await;
        }
        if let Some(l2) = &self.inner.l2 {
            if let Err(source) = l2.call(l2.driver.clear()).await {
                self.l2_failed(self.prefix(), source, settings)?;
                return Ok(());
            }
        }
        self.notify(MessageKind::Clear, Vec::new()).await;
        let core = &self.inner.core;
        core.events.emit(|| CacheEvent::Cleared { store: core.name.clone(), namespace: self.inner.namespace.clone() });
        Ok(())
    }

    /// Remove expired entries from L1 and L2 storage.
    pub async fn prune(&self) -> Result<(), Error> {
        if let Some(l1) = &self.inner.l1 {
            l1.prune().await;
        }
        if let Some(l2) = &self.inner.l2 {
            if let Err(source) = l2.call(l2.driver.prune()).await {
                self.l2_failed(self.prefix(), source, &self.inner.core.settings)?;
            }
        }
        Ok(())
    }

    /// Close the store's drivers (shared by every handle of the store): a
    /// local plugin L1, then L2. Each is given [`DISCONNECT_TIMEOUT`]: a
    /// backend that does not answer fails with a `TIMEOUT` driver error
    /// rather than hanging the shutdown. Both are tried; the first error is
    /// returned (`Error::Driver` for the L1 plugin, `Error::L2` for L2).
    pub async fn disconnect(&self) -> Result<(), Error> {
        let l1 = match &self.inner.l1 {
            Some(l1) => bounded(l1.disconnect()).await.map_err(Error::Driver),
            None => Ok(()),
        };
        let l2 = match &self.inner.l2 {
            Some(l2) => bounded(l2.driver.disconnect())
                .await
                .map_err(|source| Error::L2 { key: self.prefix().to_string(), source }),
            None => Ok(()),
        };
        l1.and(l2)
    }

    /// Values of `keys` in order: L1 first, then ONE batched L2 read for
    /// the rest (hits are copied into L1).
    pub async fn get_many<T: CacheValue>(&self, keys: &[&str]) -> Result<Vec<Option<T>>, Error> {
        let settings = &self.inner.core.settings;
        let mut values: Vec<Option<T>> = keys.iter().map(|key| self.l1_fresh::<T>(key)).collect();
        // What a local plugin L1 held for each key (one batched read), kept
        // for the graced fallback below instead of reading it again.
        let mut from_l1: Vec<Option<Lookup<T>>> = keys.iter().map(|_| None).collect();
        if let Some(l1) = self.inner.l1.as_ref().filter(|l1| !l1.is_in_process()) {
            for (index, entry) in l1.get_many(keys).await.into_iter().enumerate() {
                match self.classify_l1::<T>(entry, settings).await? {
                    Lookup::Fresh(value, layer) => {
                        self.record_hit(keys[index], layer, false);
                        values[index] = Some(value);
                    }
                    other => from_l1[index] = Some(other),
                }
            }
        }
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| values[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(values);
        }
        let mut from_l2: Vec<Option<Vec<u8>>> = vec![None; missing.len()];
        if let Some(l2) = &self.inner.l2 {
            let wanted: Vec<String> = missing.iter().map(|&i| keys[i].to_string()).collect();
            match l2.call(l2.driver.get_many(&wanted)).await {
                Ok(found) => from_l2 = found,
                Err(source) => self.l2_failed(keys[missing[0]], source, settings)?,
            }
        }
        let now = now_ms();
        for (&index, bytes) in missing.iter().zip(from_l2) {
            let key = keys[index];
            let decoded = bytes.and_then(|bytes| {
                serializer::decode::<T>(&*self.inner.core.serializer, &bytes).ok().map(|entry| (entry, bytes.len()))
            });
            if let Some((mut entry, size)) = decoded {
                let state = self.tag_state(&entry.tags, entry.created_at, settings).await?;
                state.apply_to(&mut entry);
                if state != TagState::Deleted && !entry.is_expired(now) {
                    self.store_l1(key, &entry, settings.grace, now, size as u64).await;
                    self.record_hit(key, Layer::L2, false);
                    values[index] = Some(entry.value);
                    continue;
                }
            }
            // Nothing fresh anywhere: a graced L1 copy, else a miss.
            let found = match from_l1[index].take() {
                Some(found) => found,
                None => self.lookup_l1::<T>(key, settings).await?,
            };
            match found {
                Lookup::Fresh(value, layer) => {
                    self.record_hit(key, layer, false);
                    values[index] = Some(value);
                }
                Lookup::Stale(entry, layer) => {
                    self.record_hit(key, layer, true);
                    values[index] = Some(entry.value);
                }
                Lookup::Missing => self.record_miss(key),
            }
        }
        Ok(values)
    }

    /// Store every `(key, value)` with the store's options: L1, then ONE
    /// batched L2 write, then one bus notification for all keys.
    pub async fn set_many<T: CacheValue>(&self, items: Vec<(&str, T)>) -> Result<bool, Error> {
        self.set_many_with(items, CacheOptions::new()).await
    }

    /// [`Cache::set_many`] with per-operation options (ttl, grace, …).
    pub async fn set_many_with<T: CacheValue>(
        &self,
        items: Vec<(&str, T)>,
        options: CacheOptions,
    ) -> Result<bool, Error> {
        let settings = self.settings_with(&options)?;
        let now = now_ms();
        let serializer = &*self.inner.core.serializer;
        let mut batch = Vec::with_capacity(items.len());
        for (key, value) in &items {
            let entry = Entry {
                value: value.clone(),
                logical_expiration: crate::entry::logical_expiration(now, settings.ttl),
                tags: Vec::new(),
                created_at: now,
            };
            let bytes = serializer::encode(serializer, &entry)
                .map_err(|source| Error::Serialization { key: key.to_string(), source })?;
            self.store_l1(key, &entry, settings.grace, now, bytes.len() as u64).await;
            let ttl = settings.physical_ttl();
            batch.push(SetItem { key: key.to_string(), value: bytes, ttl });
        }
        let mut stored = true;
        if let (Some(l2), false) = (&self.inner.l2, settings.skip_l2_write) {
            match l2.call(l2.driver.set_many(batch)).await {
                Ok(ok) => stored = ok,
                Err(source) => {
                    self.l2_failed(items.first().map_or("", |(key, _)| key), source, &settings)?;
                    return Ok(false);
                }
            }
        }
        if !settings.skip_bus_notify {
            self.notify(MessageKind::Set, items.iter().map(|(key, _)| key.to_string()).collect()).await;
        }
        for (key, _) in &items {
            self.inner.core.metrics.writes.increment(1);
            self.emit(|store, key| CacheEvent::Written { store, key }, key);
        }
        Ok(stored)
    }
}

/// How long [`Cache::disconnect`] waits for each driver.
pub const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(10);

async fn bounded(
    disconnect: impl std::future::Future<Output = Result<(), bento_plugin_api::DriverError>>,
) -> Result<(), bento_plugin_api::DriverError> {
    // Without a tokio runtime (e.g. `futures::executor::block_on`) there is
    // no timer to bound it with.
    if tokio::runtime::Handle::try_current().is_err() {
        return disconnect.await;
    }
    tokio::time::timeout(DISCONNECT_TIMEOUT, disconnect).await.unwrap_or_else(|_| {
        Err(bento_plugin_api::DriverError::timeout(format_args!(
            "disconnect did not finish within {DISCONNECT_TIMEOUT:?}"
        )))
    })
}
