//! The public verbs of [`Cache`] (SPEC §5), each a composition of the read
//! pipeline (`read.rs`) and the write pipeline (`write.rs`).

use crate::cache::{Cache, CacheValue};
use crate::entry::{ms_after, now_ms, Entry};
use crate::error::Error;
use crate::events::{CacheEvent, Layer};
use crate::get_or_set::Factory;
use crate::l2::decode_entry;
use crate::ops::{CacheFuture, Get, GetOrSet, Set};
use crate::options::{CacheOptions, Settings};
use crate::read::{KnownL1, Lookup, Presence, Typed};
use crate::tags::{tag_key_lifetime, HARD_TAG_PREFIX, SOFT_TAG_PREFIX};
use crate::write::{Invalidation, Notify, Write, Writes};
use futures::future::{Either, FutureExt};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

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

    /// `get` past the L1 probe; `options`: `None` when the call set none.
    ///
    /// Combinators rather than `async fn`s: each async layer would hold the
    /// arguments (`known` is an L1 entry wide) once more, and this future
    /// is boxed per call. Never inlined: in the caller it would put the
    /// future (built on the stack, then boxed) into the L1 hit's stack
    /// frame too, and the hit measurably slowed with it inlined
    /// (BENCHMARKS.md, session 18).
    #[inline(never)]
    pub(crate) fn get_slow<'a, T: CacheValue>(
        &'a self,
        key: &'a str,
        options: Option<Box<CacheOptions>>,
        known: KnownL1,
    ) -> CacheFuture<'a, Option<T>> {
        let body = match options {
            None => Either::Left(self.get_read(key, known, &self.inner.core.settings)),
            // Boxed: options per call are the rare case, and their
            // settings must live in the future.
            Some(options) => Either::Right(
                async move {
                    let settings = self.settings_with(&options)?;
                    self.get_read(key, known, &settings).await
                }
                .boxed(),
            ),
        };
        CacheFuture::pending(self.traced("get", Some(key), body))
    }

    fn get_read<'a, T: CacheValue>(
        &'a self,
        key: &'a str,
        known: KnownL1,
        settings: &'a Settings,
    ) -> impl Future<Output = Result<Option<T>, Error>> + Send + 'a {
        self.read_one::<Typed<T>>(key, known, settings).map(move |found| Ok(self.serve(key, found?)))
    }

    /// Record what a read found for `key` (hit, graced hit or miss) and
    /// return its value.
    pub(crate) fn serve<V>(&self, key: &str, found: Lookup<V>) -> Option<V> {
        match found {
            Lookup::Fresh(value, layer) => {
                self.record_hit(key, layer, false);
                Some(value)
            }
            Lookup::Stale(entry, layer) => {
                self.record_hit(key, layer, true);
                Some(entry.value)
            }
            Lookup::Missing => {
                self.record_miss(key);
                None
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
        GetOrSet { cache: self, key, factory, options: None, tags: None, value: PhantomData }
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

    /// True when `get` would return a value (of any type): fresh, or stale
    /// within the store's grace.
    pub async fn has(&self, key: &str) -> Result<bool, Error> {
        self.traced("has", Some(key), async {
            let settings = &self.inner.core.settings;
            Ok(!matches!(self.read_one::<Presence>(key, None, settings).await?, Lookup::Missing))
        })
        .await
    }

    /// `!has(key)`.
    pub async fn missing(&self, key: &str) -> Result<bool, Error> {
        Ok(!self.has(key).await?)
    }

    /// The value of `key` (as `get` would return it), deleted. With an L2
    /// this is the driver's atomic pull: of concurrent pulls of one key, on
    /// this instance or others sharing the L2, exactly one gets the value
    /// (a copy only in this instance's L1 is dropped, not returned). When
    /// L2 fails (errors suppressed), the L1 copy is pulled and the L2
    /// delete is queued for auto-recovery.
    pub async fn pull<T: CacheValue>(&self, key: &str) -> Result<Option<T>, Error> {
        self.traced("pull", Some(key), self.pull_traced(key)).await
    }

    async fn pull_traced<T: CacheValue>(&self, key: &str) -> Result<Option<T>, Error> {
        let settings = &self.inner.core.settings;
        let core = &self.inner.core;
        let full_key = self.full_key(key);
        let guard =
            if self.inner.l2.is_none() || core.is_tiered() { Some(core.order.lock(&full_key).await) } else { None };
        let found = match &self.inner.l2 {
            None => self.read_one::<Typed<T>>(key, None, settings).await?,
            Some(l2) => match l2.pull(key, settings.l2_timeout).await {
                Ok(None) => Lookup::Missing,
                Ok(Some(found)) => match decode_entry::<T>(&*core.serializer, &found) {
                    Ok(entry) => self.judge(entry, Layer::L2, settings).await?,
                    Err(error) => {
                        self.decode_failed(key, Layer::L2, error, settings)?;
                        Lookup::Missing
                    }
                },
                Err(source) => {
                    self.l2_failed(key, source, settings)?;
                    self.read_l1::<Typed<T>>(key, None, settings).await?
                }
            },
        };
        if let Some(l1) = &self.inner.l1 {
            l1.delete(key).await;
        }
        core.order.changed(&full_key);
        drop(guard);
        let value = self.serve(key, found);
        core.publish(crate::bus::MessageKind::Delete, self.prefix(), vec![key.to_string()]).await;
        core.metrics.deletes.increment(1);
        self.emit(|store, key| CacheEvent::Deleted { store, key }, key);
        Ok(value)
    }

    /// Delete `key` from L1 and L2 and notify the bus; true if it existed.
    /// When L2 fails, L1 is still cleared, the bus still notified and the
    /// L2 delete queued for auto-recovery.
    pub async fn delete(&self, key: &str) -> Result<bool, Error> {
        let keys = [key];
        let deleted = self.invalidate(Invalidation::Delete(&keys), &self.inner.core.settings);
        Ok(self.traced("delete", Some(key), deleted).await? > 0)
    }

    /// Delete every key of `keys`; returns how many existed.
    pub async fn delete_many(&self, keys: &[&str]) -> Result<u64, Error> {
        if keys.is_empty() {
            return Ok(0);
        }
        let deleted = self.invalidate(Invalidation::Delete(keys), &self.inner.core.settings);
        self.traced("delete_many", None, deleted).await
    }

    /// Logically expire `key` in L1 and L2, keeping their physical TTL so
    /// the stale value can still be served within grace; notifies the bus.
    pub async fn expire(&self, key: &str) -> Result<bool, Error> {
        let expired = self.invalidate(Invalidation::Expire(key), &self.inner.core.settings);
        Ok(self.traced("expire", Some(key), expired).await? > 0)
    }

    /// Remove every key of this namespace (nested namespaces included) from
    /// L1 and L2, and notify the bus.
    pub async fn clear(&self) -> Result<(), Error> {
        let cleared = self.invalidate(Invalidation::Clear, &self.inner.core.settings);
        self.traced("clear", None, cleared).await.map(drop)
    }

    /// Remove expired entries from L1 and L2 storage.
    pub async fn prune(&self) -> Result<(), Error> {
        self.traced("prune", None, async {
            let settings = &self.inner.core.settings;
            if let Some(l1) = &self.inner.l1 {
                l1.prune().await;
            }
            if let Some(l2) = &self.inner.l2 {
                if let Err(source) = l2.prune(settings.l2_timeout).await {
                    self.l2_failed(self.prefix(), source, settings)?;
                }
            }
            Ok(())
        })
        .await
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
            Some(l2) => {
                bounded(l2.disconnect()).await.map_err(|source| Error::L2 { key: self.prefix().to_string(), source })
            }
            None => Ok(()),
        };
        l1.and(l2)
    }

    /// Values of `keys` in order, exactly as `get` would return each (the
    /// same read pipeline): L1 first, then ONE batched L2 read for the
    /// rest (hits are copied into L1), then grace.
    pub async fn get_many<T: CacheValue>(&self, keys: &[&str]) -> Result<Vec<Option<T>>, Error> {
        self.traced("get_many", None, async {
            let settings = &self.inner.core.settings;
            let found = self.read::<Typed<T>>(keys, None, settings).await?;
            Ok(keys.iter().zip(found).map(|(key, found)| self.serve(key, found)).collect())
        })
        .await
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
        if items.is_empty() {
            return Ok(true);
        }
        let now = now_ms();
        let keys: Vec<&str> = items.iter().map(|(key, _)| *key).collect();
        let writes: Writes<_> = items
            .into_iter()
            .map(|(key, value)| {
                let logical_expiration = crate::write::logical_expiration(now, &settings);
                let entry = Entry { value, logical_expiration, tags: Vec::new(), created_at: now };
                Write::new(key, entry, settings.grace)
            })
            .collect();
        let stored = self.traced("set_many", None, self.write_entries(writes, &settings, Notify::AfterL2)).await;
        self.written(&keys);
        stored
    }

    /// Write a new value computed now with `settings.ttl` and `tags`.
    pub(crate) async fn write_value<T: CacheValue>(
        &self,
        key: &str,
        value: T,
        tags: Vec<String>,
        settings: &crate::options::Settings,
    ) -> Result<bool, Error> {
        let now = now_ms();
        let entry =
            Entry { value, logical_expiration: crate::write::logical_expiration(now, settings), tags, created_at: now };
        let write =
            self.write_entries(smallvec::smallvec![Write::new(key, entry, settings.grace)], settings, Notify::AfterL2);
        let stored = self.traced("set", Some(key), write).await;
        self.written([key]);
        stored
    }

    async fn invalidate_tags(&self, tags: &[&str], prefix: &str) -> Result<bool, Error> {
        let core = &self.inner.core;
        let settings = self.settings_with(&CacheOptions::new().forever())?;
        let now = now_ms();
        let lifetime =
            tag_key_lifetime(core.settings.physical_ttl(), core.longest_tagged_lifetime.load(Ordering::Relaxed));
        let physical_expiration = lifetime.map(|lifetime| ms_after(now, lifetime));
        let keys: Vec<String> = tags.iter().map(|tag| format!("{prefix}{tag}")).collect();
        let writes: Writes<_> = keys
            .iter()
            .map(|key| Write {
                key,
                entry: Entry { value: now, logical_expiration: None, tags: Vec::new(), created_at: now },
                physical_expiration,
            })
            .collect();
        self.write_entries(writes, &settings, Notify::Now).await
    }

    /// Hard-invalidate every entry of this namespace tagged with one of
    /// `tags`: from now on they are never served, not even from grace.
    /// Like every invalidation, it reaches L1 and the bus even when L2
    /// fails (the tag key is then replayed to L2 by auto-recovery).
    pub async fn delete_by_tag(&self, tags: &[&str]) -> Result<bool, Error> {
        let stored = self.traced("delete_by_tag", None, self.invalidate_tags(tags, HARD_TAG_PREFIX)).await;
        for tag in tags {
            self.emit(|store, key| CacheEvent::Deleted { store, key }, &format!("{HARD_TAG_PREFIX}{tag}"));
        }
        stored
    }

    /// Soft-invalidate every entry of this namespace tagged with one of
    /// `tags`: they become stale (served within grace while a refresh runs).
    pub async fn expire_by_tag(&self, tags: &[&str]) -> Result<bool, Error> {
        let stored = self.traced("expire_by_tag", None, self.invalidate_tags(tags, SOFT_TAG_PREFIX)).await;
        for tag in tags {
            self.emit(|store, key| CacheEvent::Expired { store, key }, &format!("{SOFT_TAG_PREFIX}{tag}"));
        }
        stored
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
