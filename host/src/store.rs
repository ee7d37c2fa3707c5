//! Building a store: one named stack of optional L1 + optional L2 (+
//! optional bus) with its options and serializer ([`StoreBuilder`]), and
//! the built [`Store`]. The shared state lives in `store_core.rs`; the handle
//! applications call is [`Cache`].

use crate::bus::{BusMessage, BusNode};
use crate::cache::Cache;
use crate::driver::Driver;
use crate::error::Error;
use crate::events::Events;
use crate::l1::{L1Options, L1};
use crate::l2::{CircuitBreaker, L2Driver, L2Shared, L2Source, L2};
use crate::options::{CacheOptions, Settings};
use crate::recovery::AutoRecovery;
use crate::serializer::{JsonSerializer, Serializer};
use crate::store_core::FactoryErrorHook;
use crate::store_core::StoreCore;
use crate::telemetry::{L2Metrics, StoreMetrics};
use futures::FutureExt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// How to build a store; pass it to [`crate::BentoBuilder::store`].
///
/// ```
/// use bento::{CacheOptions, L1Options, Store};
/// let store = Store::builder().l1(L1Options { max_items: Some(10_000), ..Default::default() })
///     .options(CacheOptions::new().prefix("app"));
/// # let _ = store;
/// ```
#[derive(Default)]
pub struct StoreBuilder {
    l1: Option<L1Source>,
    l2: Option<L2Source>,
    bus: Option<BusNode>,
    options: CacheOptions,
    serializer: Option<Arc<dyn Serializer>>,
}

/// Where a store's L1 comes from.
enum L1Source {
    BuiltIn(L1Options),
    Plugin(Driver),
}

impl StoreBuilder {
    /// Use the built-in in-process L1 with these limits.
    pub fn l1(mut self, options: L1Options) -> Self {
        self.l1 = Some(L1Source::BuiltIn(options));
        self
    }

    /// Use a plugin driver as L1 instead of the built-in store: a plugin
    /// whose metadata declares the local layer (`layers.local`), e.g. the
    /// `memory` plugin or your own in-process store. Give a driver on the
    /// whole keyspace (empty prefix); the store applies its `prefix`.
    ///
    /// Each L1 call then crosses the plugin boundary and (de)serializes the
    /// value, so a hit costs a decode, unlike the built-in L1. Errors of a
    /// local plugin are logged and read as misses. Building the store fails
    /// with [`Error::InvalidOptions`] when the plugin cannot serve the local
    /// layer.
    pub fn l1_plugin(mut self, driver: Driver) -> Self {
        self.l1 = Some(L1Source::Plugin(driver));
        self
    }

    /// Use `driver` as L2. Give a driver on the whole keyspace (empty
    /// prefix, e.g. `DriverOptions::default()`): the store applies its own
    /// `prefix`, so keys land at `prefix:key` as BentoCache lays them out.
    pub fn l2(mut self, driver: impl L2Driver) -> Self {
        self.l2 = Some(L2Source::new(driver));
        self
    }

    /// Use an already shared driver as L2 (see [`StoreBuilder::l2`]).
    pub fn l2_shared(mut self, driver: Arc<dyn L2Driver>) -> Self {
        self.l2 = Some(L2Source::Other(driver));
        self
    }

    /// Keep this store's L1 coherent with other instances through `bus`
    /// (one [`BusNode`] per process, shared by its stores; the channel is
    /// `bentocache.notifications:<store name>`).
    pub fn bus(mut self, bus: BusNode) -> Self {
        self.bus = Some(bus);
        self
    }

    #[cfg(feature = "plugins")]
    /// [`StoreBuilder::bus`] in one step: create a bus from `plugin` with
    /// its `options_json` and a [`BusNode`] with default options over it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), bento::Error> {
    /// use bento::{L1Options, Plugin, Store};
    /// let redis_bus = Plugin::load("target/release/libbento_bus_redis.so")?;
    /// let store = Store::builder()
    ///     .l1(L1Options::default())
    ///     .bus_plugin(&redis_bus, r#"{"url":"redis://127.0.0.1:6379"}"#)
    ///     .await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub async fn bus_plugin(self, plugin: &crate::Plugin, options_json: &str) -> Result<Self, Error> {
        Ok(self.bus(plugin.create_bus_node(options_json).await?))
    }

    /// Store-level options (they override the global ones).
    pub fn options(mut self, options: CacheOptions) -> Self {
        self.options = options;
        self
    }

    /// Serialize L2 entries with `serializer` (default: JSON).
    pub fn serializer(mut self, serializer: Arc<dyn Serializer>) -> Self {
        self.serializer = Some(serializer);
        self
    }

    pub(crate) fn build(
        self,
        name: &str,
        global: &CacheOptions,
        events: Arc<Events>,
        on_factory_error: Option<FactoryErrorHook>,
    ) -> Result<Store, Error> {
        let options = self.options.over(global);
        options.validate()?;
        if self.l1.is_none() && self.l2.is_none() {
            return Err(Error::InvalidOptions(format!("store `{name}` has neither an L1 nor an L2")));
        }
        let settings = Settings::resolve(&options, self.l1.is_some());
        let serializer = self.serializer.unwrap_or_else(|| Arc::new(JsonSerializer));
        let l1_root = match self.l1 {
            Some(L1Source::BuiltIn(options)) => Some(L1::memory(&options)),
            Some(L1Source::Plugin(driver)) => {
                let plugin = driver.plugin_info();
                if !plugin.local {
                    return Err(Error::InvalidOptions(format!(
                        "store `{name}`: plugin `{}` cannot serve the local layer (L1); it declares only {}",
                        plugin.name,
                        if plugin.remote { "the remote layer (L2)" } else { "no cache layer" }
                    )));
                }
                Some(L1::plugin(Arc::new(driver), serializer.clone(), Arc::from(name)))
            }
            None => None,
        };
        let l1 = match &l1_root {
            Some(root) => Some(root.namespace(&settings.prefix).map_err(Error::Driver)?),
            None => None,
        };
        let l2_shared = self.l2.as_ref().map(|_| {
            Arc::new(L2Shared {
                breaker: CircuitBreaker::new(settings.l2_circuit_breaker_duration),
                metrics: L2Metrics::new(name),
                recovery: AutoRecovery::new(name, settings.auto_recovery_max_items),
                timeout: settings.l2_timeout,
                serializer: serializer.clone(),
            })
        });
        let l2 = match (self.l2, &l2_shared) {
            (Some(driver), Some(shared)) => {
                let root = L2::new(driver, "", shared.clone());
                let prefixed = if settings.prefix.is_empty() {
                    root
                } else {
                    root.namespace(&settings.prefix)
                        .map_err(|source| Error::L2 { key: settings.prefix.clone(), source })?
                };
                Some(prefixed)
            }
            _ => None,
        };
        if settings.distributed_lock && !l2.as_ref().is_some_and(L2::supports_lock) {
            return Err(Error::InvalidOptions(format!(
                "store `{name}`: distributed_lock needs an L2 whose driver declares the lock capability \
                 (Capabilities::LOCK); {}",
                if l2.is_some() { "this L2 driver does not" } else { "the store has no L2" }
            )));
        }
        let core = Arc::new(StoreCore {
            name: Arc::from(name),
            metrics: StoreMetrics::new(name),
            serializer,
            locks: Arc::default(),
            order: Default::default(),
            events,
            bus: self.bus,
            on_factory_error,
            l1_root,
            l2_shared,
            longest_tagged_lifetime: Default::default(),
            decode_warned: Default::default(),
            lock_owner: format!("bento-{name}-{:016x}", rand::random::<u64>()),
            l1_measured_at: AtomicU64::new(0),
            settings,
        });
        let root = Cache::root(core.clone(), l1, l2);
        Ok(Store { core, root })
    }
}

/// A built store. Use it through [`Store::cache`] (or `Bento::use_store`).
#[derive(Clone)]
pub struct Store {
    core: Arc<StoreCore>,
    root: Cache,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("name", &self.core.name).field("settings", &self.core.settings).finish()
    }
}

impl Store {
    /// Start describing a store.
    pub fn builder() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// The store's name (also its bus channel suffix).
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The root cache handle of the store.
    pub fn cache(&self) -> &Cache {
        &self.root
    }

    /// The store's resolved options.
    pub fn settings(&self) -> &Settings {
        &self.core.settings
    }

    /// Keys currently locked or awaited by `get_or_set` (0 when idle); for
    /// tests that check no lock leaks.
    #[doc(hidden)]
    pub fn pending_locks(&self) -> usize {
        self.core.locks.len() + self.core.order.pending()
    }

    /// L2 writes and invalidations waiting in the auto-recovery queue for
    /// L2 to answer again (0 without an L2).
    pub fn pending_l2_operations(&self) -> usize {
        self.core.l2_shared.as_ref().map_or(0, |shared| shared.recovery.len())
    }

    /// Subscribe to the store's bus channel (if it has a bus) so that
    /// changes from other instances reach [`Store::apply_message`].
    pub(crate) async fn connect_bus(&self) -> Result<(), Error> {
        let Some(bus) = &self.core.bus else { return Ok(()) };
        // A weak reference: the bus node (owned by the store) holds this
        // handler, so a strong one would keep the store alive forever.
        let core = Arc::downgrade(&self.core);
        if self.core.l1_root.as_ref().is_none_or(L1::is_in_process) {
            // Applied on the bus's delivery thread: no await needed.
            return bus
                .subscribe(&self.core.name, move |message| {
                    if let Some(core) = core.upgrade() {
                        let applied = core.apply_message(&message).now_or_never();
                        debug_assert!(applied.is_some(), "the built-in L1 never awaits");
                    }
                })
                .await;
        }
        // A plugin L1 is awaited: apply messages in order on a task.
        let mut messages = bus.subscribe_channel(&self.core.name).await?;
        tokio::spawn(async move {
            while let Some(message) = messages.recv().await {
                let Some(core) = core.upgrade() else { break };
                core.apply_message(&message).await;
            }
        });
        Ok(())
    }

    /// Start replaying failed L2 operations once L2 answers again.
    pub(crate) fn start_auto_recovery(&self) {
        crate::write::start_auto_recovery(&self.core);
    }

    /// Close the store's bus node, if any.
    pub(crate) async fn disconnect_bus(&self) -> Result<(), Error> {
        match &self.core.bus {
            Some(bus) => bus.disconnect().await,
            None => Ok(()),
        }
    }

    /// Apply a message received from another instance to this store's L1:
    /// Set/Expire make the entries logically expired (a stale copy stays
    /// for grace), Delete removes them, Clear clears the namespace. Never
    /// re-published.
    pub async fn apply_message(&self, change: &BusMessage) {
        self.core.apply_message(change).await;
    }
}
