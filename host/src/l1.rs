//! The L1 layer. Two kinds:
//!
//! * the built-in store ([`MemoryStore`] of decoded values), so a hit costs
//!   a hash lookup and an `Arc` clone, never a deserialization; synchronous,
//!   which lets `get`/`get_or_set` answer an L1 hit without awaiting;
//! * a "local" plugin driver (SPEC §2: a plugin whose metadata says it can
//!   serve the local layer), holding each entry as bytes: the entry
//!   metadata in a small record header, then the value as the store's
//!   serializer writes it. Every call awaits the driver; a hit decodes.
//!
//! Freshness (logical expiry) is checked by the caller; the store only
//! enforces the physical TTL (ttl + grace) and its size limits. An L1 is a
//! cache of the cache: a failing local plugin is logged and read as a miss,
//! never surfaced to the caller.

use crate::entry::ms_after;
use crate::erased::{Erasable, ErasedValue};
use crate::error::BoxError;
use crate::l2::L2Driver;
use crate::serializer::{self, Serializer};
use bento_memory_store::{MemoryStore, MemoryStoreOptions, Slot};
use bento_plugin_api::DriverError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Size limits of the built-in L1 (`max_items`, `max_size` in bytes,
/// `max_entry_size` in bytes); all unbounded by default. Sizes are measured
/// on the serialized entry when a size limit is set.
pub type L1Options = MemoryStoreOptions;

/// Sentinel for "never" in the compact millisecond fields below.
pub(crate) const NEVER: u64 = u64::MAX;

/// A decoded value (`repr(transparent)`: stored exactly as `T`).
#[derive(Clone)]
#[repr(transparent)]
struct Decoded<T>(T);

impl<T: Serialize + Clone + Send + Sync + 'static> Erasable for Decoded<T> {
    fn encode(&self, serializer: &dyn Serializer) -> Result<Vec<u8>, BoxError> {
        serializer::encode_value(serializer, &self.0)
    }
}

/// A value as bytes in the store serializer's format (read from a local
/// plugin): never a hit for a typed read, always decoded.
#[derive(Clone)]
struct Encoded(Vec<u8>);

impl Erasable for Encoded {
    fn encode(&self, _: &dyn Serializer) -> Result<Vec<u8>, BoxError> {
        Ok(self.0.clone())
    }
}

/// One L1 entry: the value plus the entry metadata. Cloning it clones the
/// value (inline, see [`ErasedValue`]) and one optional tag `Arc`.
#[derive(Clone)]
pub(crate) struct L1Entry {
    pub value: ErasedValue,
    pub created_at: u64,
    /// Logical expiration in ms, [`NEVER`] for forever.
    pub logical_expiration: u64,
    /// A thin pointer (8 bytes): most entries have no tags, and 1 M
    /// entries must fit in < 300 MB.
    pub tags: Option<Arc<Vec<String>>>,
}

impl L1Entry {
    /// An entry holding the decoded `value`.
    pub fn decoded<T: Serialize + Clone + Send + Sync + 'static>(
        value: T,
        created_at: u64,
        logical_expiration: u64,
        tags: &[String],
    ) -> L1Entry {
        let tags = (!tags.is_empty()).then(|| Arc::new(tags.to_vec()));
        L1Entry { value: ErasedValue::new(Decoded(value)), created_at, logical_expiration, tags }
    }

    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.logical_expiration
    }

    pub fn tags(&self) -> &[String] {
        self.tags.as_deref().map_or(&[], Vec::as_slice)
    }

    pub fn logical_expiration(&self) -> Option<u64> {
        (self.logical_expiration != NEVER).then_some(self.logical_expiration)
    }

    /// The value as `T`: a clone when it was stored as `T`, else decoded
    /// from its serialized form (`None` when it does not decode as `T`).
    #[inline]
    pub fn value<T: DeserializeOwned + Serialize + Clone + Send + Sync + 'static>(
        &self,
        serializer: &dyn Serializer,
    ) -> Option<T> {
        match self.value.downcast_ref::<Decoded<T>>() {
            Some(Decoded(value)) => Some(value.clone()),
            None => convert(&self.value, serializer),
        }
    }

    /// [`L1Entry::value`] taking the value out of the entry (the hit path,
    /// on the store's fresh clone): moved, not cloned again. The entry holds
    /// no value afterwards (reading it as any type is `None`).
    #[inline]
    pub fn take_value<T: DeserializeOwned + Serialize + Clone + Send + Sync + 'static>(
        &mut self,
        serializer: &dyn Serializer,
    ) -> Option<T> {
        match self.value.take::<Decoded<T>>() {
            Some(Decoded(value)) => Some(value),
            None => convert(&self.value, serializer),
        }
    }
}

#[cold]
fn convert<T: DeserializeOwned>(value: &ErasedValue, serializer: &dyn Serializer) -> Option<T> {
    let bytes = value.encode(serializer).ok()?;
    serializer::decode_value(serializer, &bytes).ok()
}

/// The physical expiration (ms, [`NEVER`] for forever) of an entry with
/// `logical_expiration` under `grace`: ttl + grace.
pub(crate) fn physical_expiration(logical_expiration: u64, grace: Option<Duration>) -> u64 {
    match logical_expiration {
        NEVER => NEVER,
        at => ms_after(at, grace.unwrap_or_default()),
    }
}

/// A handle on the L1 at one prefix (namespaces share the store).
#[derive(Clone)]
pub(crate) enum L1 {
    /// The built-in store.
    Memory(MemoryL1),
    /// A local plugin driver.
    Plugin(PluginL1),
}

/// The built-in store and whether writers must measure entry sizes.
#[derive(Clone)]
pub(crate) struct MemoryL1 {
    store: MemoryStore<L1Entry>,
    measures_size: bool,
}

/// A local plugin driver, the serializer of its values and the store name
/// (for logs).
#[derive(Clone)]
pub(crate) struct PluginL1 {
    driver: Arc<dyn L2Driver>,
    serializer: Arc<dyn Serializer>,
    store: Arc<str>,
}

impl L1 {
    /// The built-in store's handle with the empty prefix.
    pub fn memory(options: &L1Options) -> L1 {
        let measures_size = options.max_size.is_some() || options.max_entry_size.is_some();
        L1::Memory(MemoryL1 { store: MemoryStore::new(options, ""), measures_size })
    }

    /// A local plugin driver (on the whole keyspace) as L1.
    pub fn plugin(driver: Arc<dyn L2Driver>, serializer: Arc<dyn Serializer>, store: Arc<str>) -> L1 {
        L1::Plugin(PluginL1 { driver, serializer, store })
    }

    pub fn namespace(&self, namespace: &str) -> Result<L1, DriverError> {
        if namespace.is_empty() {
            return Ok(self.clone());
        }
        Ok(match self {
            L1::Memory(l1) => {
                L1::Memory(MemoryL1 { store: l1.store.namespace(namespace), measures_size: l1.measures_size })
            }
            L1::Plugin(l1) => L1::Plugin(PluginL1 { driver: l1.driver.namespace(namespace)?, ..l1.clone() }),
        })
    }

    /// True when every call completes without awaiting (the built-in store).
    pub fn is_in_process(&self) -> bool {
        matches!(self, L1::Memory(_))
    }

    /// Entries and total weight of the built-in store (for gauges); `None`
    /// for a plugin.
    pub fn usage(&self) -> Option<(usize, u64)> {
        match self {
            L1::Memory(l1) => Some((l1.store.len(), l1.store.weight())),
            L1::Plugin(_) => None,
        }
    }

    /// Whether writers should pass the serialized size as the weight.
    pub fn measures_size(&self) -> bool {
        matches!(self, L1::Memory(l1) if l1.measures_size)
    }

    /// The built-in store's live entry of `key`, without awaiting; `None`
    /// for a plugin L1 (the caller then takes its async path).
    #[inline]
    pub fn get_now(&self, key: &str) -> Option<L1Entry> {
        match self {
            L1::Memory(l1) => l1.store.get(key),
            L1::Plugin(_) => None,
        }
    }

    /// Like [`L1::get_now`], but even if physically expired: only for
    /// callers that then require the entry to be logically fresh (logical
    /// expiration ≤ physical expiration), which makes the physical check
    /// redundant and saves a clock read on the hit path. The entry is the
    /// store's clone, in its [`Slot`], to read in place.
    #[inline]
    pub fn get_for_freshness_check(&self, key: &str) -> Option<Slot<L1Entry>> {
        match self {
            L1::Memory(l1) => l1.store.get_slot_ignoring_expiry(key),
            L1::Plugin(_) => None,
        }
    }

    pub async fn get(&self, key: &str) -> Option<L1Entry> {
        match self {
            L1::Memory(l1) => l1.store.get(key),
            L1::Plugin(l1) => l1.get(key).await,
        }
    }

    /// The entries of `keys`, in order (one batched call for a plugin).
    pub async fn get_many(&self, keys: &[&str]) -> Vec<Option<L1Entry>> {
        match self {
            L1::Memory(l1) => keys.iter().map(|key| l1.store.get(key)).collect(),
            L1::Plugin(l1) => l1.get_many(keys).await,
        }
    }

    /// Store `entry` until `physical_expiration` (ms, [`NEVER`] = forever).
    pub async fn set(&self, key: &str, entry: L1Entry, physical_expiration: u64, now: u64, weight: u64) -> bool {
        let ttl = match physical_expiration {
            NEVER => None,
            at if at <= now => {
                self.delete(key).await;
                return false;
            }
            at => Some(Duration::from_millis(at - now)),
        };
        match self {
            L1::Memory(l1) => l1.store.insert(key, entry, ttl, weight),
            L1::Plugin(l1) => l1.set(key, &entry, ttl).await,
        }
    }

    /// Make `key` logically expired, keeping the stale copy until its
    /// original physical expiration (logical + `grace`), so an operation
    /// with grace can still serve it.
    pub async fn expire(&self, key: &str, now: u64, grace: Option<Duration>) -> bool {
        let Some(mut entry) = self.get(key).await else { return false };
        let physical_expiration = physical_expiration(entry.logical_expiration, grace);
        entry.logical_expiration = entry.logical_expiration.min(now);
        self.set(key, entry, physical_expiration, now, 0).await;
        true
    }

    pub async fn delete(&self, key: &str) -> bool {
        match self {
            L1::Memory(l1) => l1.store.remove(key),
            L1::Plugin(l1) => l1.logged("delete", key, l1.driver.delete(key).await).unwrap_or(false),
        }
    }

    pub async fn clear(&self) {
        match self {
            L1::Memory(l1) => l1.store.clear(),
            L1::Plugin(l1) => {
                l1.logged("clear", "", l1.driver.clear().await);
            }
        }
    }

    pub async fn prune(&self) {
        match self {
            L1::Memory(l1) => l1.store.prune(),
            L1::Plugin(l1) => {
                l1.logged("prune", "", l1.driver.prune().await);
            }
        }
    }

    /// Close a plugin L1's driver (the built-in store has nothing to close).
    pub async fn disconnect(&self) -> Result<(), DriverError> {
        match self {
            L1::Memory(_) => Ok(()),
            L1::Plugin(l1) => l1.driver.disconnect().await,
        }
    }
}

impl PluginL1 {
    fn logged<R>(&self, operation: &str, key: &str, result: Result<R, DriverError>) -> Option<R> {
        result
            .map_err(
                |error| tracing::warn!(store = %self.store, key, operation, %error, "local plugin (L1) error ignored"),
            )
            .ok()
    }

    async fn get(&self, key: &str) -> Option<L1Entry> {
        let bytes = self.logged("get", key, self.driver.get(key).await)??;
        let entry = record::decode(&bytes);
        if entry.is_none() {
            tracing::warn!(store = %self.store, key, "unreadable local plugin (L1) entry ignored");
        }
        entry
    }

    async fn get_many(&self, keys: &[&str]) -> Vec<Option<L1Entry>> {
        let owned: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
        match self.logged("get_many", keys.first().copied().unwrap_or(""), self.driver.get_many(&owned).await) {
            Some(found) if found.len() == keys.len() => {
                found.into_iter().map(|bytes| bytes.and_then(|bytes| record::decode(&bytes))).collect()
            }
            _ => keys.iter().map(|_| None).collect(),
        }
    }

    async fn set(&self, key: &str, entry: &L1Entry, ttl: Option<Duration>) -> bool {
        let value = match entry.value.encode(&*self.serializer) {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!(store = %self.store, key, %error, "value not stored in the local plugin (L1)");
                return false;
            }
        };
        let bytes = record::encode(entry, &value);
        self.logged("set", key, self.driver.set(key, bytes, ttl).await).unwrap_or(false)
    }
}

/// The bytes a local plugin holds per entry: a header with the metadata
/// (so expiring or checking tags never decodes the value), then the value
/// in the store serializer's format. Private to this process's L1; L2
/// entries use the BentoCache format instead.
///
/// ```text
/// 0xB1 | created_at u64 BE | logical_expiration u64 BE (MAX = never)
///      | tag count u32 BE | per tag: u32 BE length + UTF-8 | value bytes
/// ```
mod record {
    use super::{Encoded, ErasedValue, L1Entry};
    use std::sync::Arc;

    const MAGIC: u8 = 0xB1;

    pub fn encode(entry: &L1Entry, value: &[u8]) -> Vec<u8> {
        let tags = entry.tags();
        let tag_bytes: usize = tags.iter().map(|tag| 4 + tag.len()).sum();
        let mut bytes = Vec::with_capacity(21 + tag_bytes + value.len());
        bytes.push(MAGIC);
        bytes.extend_from_slice(&entry.created_at.to_be_bytes());
        bytes.extend_from_slice(&entry.logical_expiration.to_be_bytes());
        bytes.extend_from_slice(&(tags.len() as u32).to_be_bytes());
        for tag in tags {
            bytes.extend_from_slice(&(tag.len() as u32).to_be_bytes());
            bytes.extend_from_slice(tag.as_bytes());
        }
        bytes.extend_from_slice(value);
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Option<L1Entry> {
        let (&magic, rest) = bytes.split_first()?;
        if magic != MAGIC {
            return None;
        }
        let (created_at, rest) = take_u64(rest)?;
        let (logical_expiration, rest) = take_u64(rest)?;
        let (count, mut rest) = take_u32(rest)?;
        let mut tags = Vec::new();
        for _ in 0..count {
            let (len, after) = take_u32(rest)?;
            let (tag, after) = after.split_at_checked(len as usize)?;
            tags.push(std::str::from_utf8(tag).ok()?.to_string());
            rest = after;
        }
        Some(L1Entry {
            value: ErasedValue::new(Encoded(rest.to_vec())),
            created_at,
            logical_expiration,
            tags: (!tags.is_empty()).then(|| Arc::new(tags)),
        })
    }

    fn take_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
        let (head, rest) = bytes.split_first_chunk::<8>()?;
        Some((u64::from_be_bytes(*head), rest))
    }

    fn take_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
        let (head, rest) = bytes.split_first_chunk::<4>()?;
        Some((u32::from_be_bytes(*head), rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::now_ms;
    use crate::serializer::JsonSerializer;
    use futures::executor::block_on;

    fn entry(value: u32, logical: u64) -> L1Entry {
        L1Entry::decoded(value, 1, logical, &[])
    }

    #[test]
    fn expire_keeps_a_stale_copy() {
        let l1 = L1::memory(&L1Options::default()).namespace("p").unwrap();
        let now = now_ms();
        block_on(l1.set("k", entry(7, NEVER), NEVER, now, 0));
        assert!(block_on(l1.expire("k", now, Some(Duration::from_secs(60)))));
        let stale = block_on(l1.get("k")).unwrap();
        assert!(!stale.is_fresh(now));
        assert_eq!(stale.value::<u32>(&JsonSerializer), Some(7));
    }

    #[test]
    fn a_value_reads_as_another_compatible_type() {
        let stored = entry(7, NEVER);
        assert_eq!(stored.value::<u64>(&JsonSerializer), Some(7));
        assert_eq!(stored.value::<f64>(&JsonSerializer), Some(7.0));
        assert_eq!(stored.value::<String>(&JsonSerializer), None);
    }

    #[test]
    fn physically_expired_entries_are_not_stored() {
        let l1 = L1::memory(&L1Options::default());
        let now = now_ms();
        assert!(!block_on(l1.set("k", entry(1, now - 10), now - 5, now, 0)));
        assert!(block_on(l1.get("k")).is_none());
    }

    #[test]
    fn an_entry_holds_a_small_struct_inline_in_eight_words() {
        // 1 M entries must stay under the RSS target: every word counts.
        assert_eq!(size_of::<L1Entry>(), 64);
        #[derive(Clone, Serialize, serde::Deserialize, PartialEq, Debug)]
        struct User {
            id: u64,
            name: String,
        }
        let user = User { id: 1, name: "Ada".into() };
        let stored = L1Entry::decoded(user.clone(), 1, NEVER, &[]);
        assert_eq!(stored.value.downcast_ref::<Decoded<User>>().map(|d| &d.0), Some(&user));
        assert_eq!(stored.clone().take_value::<User>(&JsonSerializer), Some(user));
    }

    #[test]
    fn records_round_trip() {
        let tags = vec!["users".to_string(), "é:✓".to_string()];
        let original = L1Entry::decoded("Ada".to_string(), 42, NEVER, &tags);
        let value = original.value.encode(&JsonSerializer).unwrap();
        let bytes = record::encode(&original, &value);
        let decoded = record::decode(&bytes).unwrap();
        assert_eq!((decoded.created_at, decoded.logical_expiration), (42, NEVER));
        assert_eq!(decoded.tags(), tags.as_slice());
        assert_eq!(decoded.value::<String>(&JsonSerializer).as_deref(), Some("Ada"));
        for cut in 0..21 {
            assert!(record::decode(&bytes[..cut]).is_none(), "truncated at {cut}");
        }
        assert!(record::decode(b"{\"value\":1}").is_none());
    }
}
