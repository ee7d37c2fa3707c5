//! [`Bento`]: the application's entry point — named stores, a default one
//! whose [`Cache`] API `Bento` exposes directly (via `Deref`), and the
//! event hub shared by all stores.

use crate::cache::Cache;
use crate::error::Error;
use crate::events::{CacheEvent, Events};
use crate::l1::L1Options;
use crate::options::CacheOptions;
use crate::store::{Store, StoreBuilder};
use crate::store_core::FactoryErrorHook;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Name of the store built when none is configured.
pub const DEFAULT_STORE: &str = "default";

/// Builds a [`Bento`].
///
/// ```
/// use bento::{Bento, CacheOptions, L1Options, Store};
/// use std::time::Duration;
///
/// let bento = Bento::builder()
///     .options(CacheOptions::new().ttl(Duration::from_secs(60)))
///     .store("memory", Store::builder().l1(L1Options::default()))
///     .build();
/// let bento = futures::executor::block_on(bento).unwrap();
/// assert_eq!(bento.store_name(), "memory");
/// ```
#[derive(Default)]
pub struct BentoBuilder {
    options: CacheOptions,
    stores: Vec<(String, StoreBuilder)>,
    default_store: Option<String>,
    on_factory_error: Option<FactoryErrorHook>,
}

impl BentoBuilder {
    /// Global options (stores and operations override them).
    pub fn options(mut self, options: CacheOptions) -> Self {
        self.options = options;
        self
    }

    /// Add a named store. The first one is the default unless
    /// [`BentoBuilder::default_store`] says otherwise.
    pub fn store(mut self, name: impl Into<String>, store: StoreBuilder) -> Self {
        self.stores.push((name.into(), store));
        self
    }

    /// Which store `Bento` itself uses.
    pub fn default_store(mut self, name: impl Into<String>) -> Self {
        self.default_store = Some(name.into());
        self
    }

    /// Called with every factory error (`background: true` for errors
    /// nobody waited for: stale-while-revalidate, timeouts).
    pub fn on_factory_error(mut self, hook: impl Fn(&Error) + Send + Sync + 'static) -> Self {
        self.on_factory_error = Some(Arc::new(hook));
        self
    }

    /// Build every store (and subscribe those with a bus). Without any
    /// store, builds one named [`DEFAULT_STORE`] with the built-in L1.
    pub async fn build(mut self) -> Result<Bento, Error> {
        if self.stores.is_empty() {
            self.stores.push((DEFAULT_STORE.to_string(), Store::builder().l1(L1Options::default())));
        }
        let events = Arc::new(Events::default());
        let default_name = self.default_store.clone().unwrap_or_else(|| self.stores[0].0.clone());
        let mut stores = BTreeMap::new();
        for (name, builder) in self.stores {
            if stores.contains_key(&name) {
                return Err(Error::InvalidOptions(format!("two stores named `{name}`")));
            }
            let store = builder.build(&name, &self.options, events.clone(), self.on_factory_error.clone())?;
            store.connect_bus().await?;
            store.start_auto_recovery();
            stores.insert(name, store);
        }
        let default = stores.get(&default_name).cloned().ok_or(Error::UnknownStore { name: default_name })?;
        Ok(Bento { stores, default, events })
    }
}

/// The cache manager: named stores and a default one. Every [`Cache`] verb
/// can be called on `Bento` directly (it dereferences to the default
/// store's root cache).
#[derive(Clone)]
pub struct Bento {
    stores: BTreeMap<String, Store>,
    default: Store,
    events: Arc<Events>,
}

impl std::fmt::Debug for Bento {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bento").field("stores", &self.stores.keys()).field("default", &self.default.name()).finish()
    }
}

impl std::ops::Deref for Bento {
    type Target = Cache;

    fn deref(&self) -> &Cache {
        self.default.cache()
    }
}

impl Bento {
    /// Start configuring.
    pub fn builder() -> BentoBuilder {
        BentoBuilder::default()
    }

    /// The root cache of store `name`.
    pub fn use_store(&self, name: &str) -> Result<&Cache, Error> {
        Ok(self.store(name)?.cache())
    }

    /// Store `name` itself (for its settings or its bus seam).
    pub fn store(&self, name: &str) -> Result<&Store, Error> {
        self.stores.get(name).ok_or_else(|| Error::UnknownStore { name: name.to_string() })
    }

    /// Every store, by name.
    pub fn stores(&self) -> impl Iterator<Item = &Store> {
        self.stores.values()
    }

    /// Clear every store.
    pub async fn clear_all(&self) -> Result<(), Error> {
        for store in self.stores.values() {
            store.cache().clear().await?;
        }
        Ok(())
    }

    /// Disconnect every store's L2; the first error is returned after all
    /// were tried.
    pub async fn disconnect_all(&self) -> Result<(), Error> {
        let mut first = Ok(());
        for store in self.stores.values() {
            for result in [store.cache().disconnect().await, store.disconnect_bus().await] {
                if let Err(error) = result {
                    if first.is_ok() {
                        first = Err(error);
                    }
                }
            }
        }
        first
    }

    /// A channel of every event of every store from now on (lagging
    /// receivers lose the oldest events).
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        self.events.subscribe()
    }

    /// Call `callback` for every event, on the thread that caused it.
    pub fn on_event(&self, callback: impl Fn(&CacheEvent) + Send + Sync + 'static) {
        self.events.on_event(Arc::new(callback));
    }
}
