//! Helpers shared by the cache-manager scenario tests: which L2 backends to
//! run against (memory plugin always, Redis plugin when built and its
//! server is reachable — SKIP otherwise), a counting/failing wrapper around
//! a real driver, and builders for a one-store `Bento`.
#![allow(dead_code)]

pub mod bus;

use async_trait::async_trait;
use bento::{Bento, CacheOptions, Driver, DriverError, DriverOptions, L1Options, L2Driver, Plugin, SetItem, Store};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An L2 backend a scenario runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The memory plugin (always available).
    Memory,
    /// The Redis plugin with this URL.
    Redis(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// A fresh driver on the whole keyspace.
    pub async fn driver(&self) -> Driver {
        match self {
            Backend::Memory => {
                let plugin = Plugin::load(bento_testkit::plugin_path("bento-driver-memory")).expect("memory plugin");
                plugin.create_driver("{}", DriverOptions::default()).await.expect("memory driver")
            }
            Backend::Redis(url) => redis_driver(url).await,
        }
    }
}

/// A temporary plugin folder holding a copy of the memory plugin.
pub fn memory_plugin_folder() -> tempfile::TempDir {
    let folder = tempfile::tempdir().expect("temp dir");
    let memory = bento_testkit::plugin_path("bento-driver-memory");
    std::fs::copy(&memory, folder.path().join(memory.file_name().expect("file name"))).expect("copy the plugin");
    folder
}

pub async fn redis_driver(url: &str) -> Driver {
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-driver-redis")).expect("redis plugin");
    let options = serde_json::json!({ "url": url, "connection_timeout_ms": 500, "response_timeout_ms": 500 });
    plugin.create_driver(&options.to_string(), DriverOptions::default()).await.expect("redis driver")
}

/// True when the redis plugin was built next to this test binary.
pub fn redis_plugin_built() -> bool {
    bento_testkit::find_plugin("bento-driver-redis").is_some()
}

/// Memory always; Redis when its plugin is built and its server reachable
/// (otherwise a SKIP line, or a panic under BENTO_REQUIRE_SERVICES=1).
pub fn backends(test: &str) -> Vec<Backend> {
    let mut backends = vec![Backend::Memory];
    if !redis_plugin_built() {
        assert!(!bento_testkit::services_required(), "redis plugin not built for {test}");
        eprintln!("SKIP {test} [redis]: bento-driver-redis-plugin is not built in this target dir");
        return backends;
    }
    if let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, &format!("{test} [redis]")) {
        backends.push(Backend::Redis(url));
    }
    backends
}

/// A prefix no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("bt_{test}_{}_{nanos}_{n}", std::process::id())
}

/// Calls counted per method, with switchable failure (every call errors
/// while `failing`), an optional delay on reads and a hanging disconnect.
#[derive(Default)]
pub struct Counters {
    pub gets: AtomicU64,
    pub get_manys: AtomicU64,
    pub sets: AtomicU64,
    pub set_manys: AtomicU64,
    pub deletes: AtomicU64,
    pub clears: AtomicU64,
    pub failing: AtomicBool,
    pub read_delay_ms: AtomicU64,
    /// `disconnect` never returns while set.
    pub hang_disconnect: AtomicBool,
}

impl Counters {
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }
    pub fn sets(&self) -> u64 {
        self.sets.load(Ordering::SeqCst)
    }
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

/// Wraps a real driver (and its namespaces) to count and break calls.
#[derive(Clone)]
pub struct CountingDriver {
    inner: Arc<dyn L2Driver>,
    pub counters: Arc<Counters>,
}

impl CountingDriver {
    pub fn new(driver: Driver) -> Self {
        CountingDriver { inner: Arc::new(driver), counters: Arc::default() }
    }

    fn check(&self) -> Result<(), DriverError> {
        if self.counters.failing.load(Ordering::SeqCst) {
            Err(DriverError::connection("injected failure"))
        } else {
            Ok(())
        }
    }

    async fn read_delay(&self) {
        let delay = self.counters.read_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
    }
}

#[async_trait]
impl L2Driver for CountingDriver {
    fn namespace(&self, namespace: &str) -> Result<Arc<dyn L2Driver>, DriverError> {
        Ok(Arc::new(CountingDriver { inner: self.inner.namespace(namespace)?, counters: self.counters.clone() }))
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError> {
        self.counters.gets.fetch_add(1, Ordering::SeqCst);
        self.read_delay().await;
        self.check()?;
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, DriverError> {
        self.counters.get_manys.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.get_many(keys).await
    }
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<bool, DriverError> {
        self.counters.sets.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.set(key, value, ttl).await
    }
    async fn set_many(&self, items: Vec<SetItem>) -> Result<bool, DriverError> {
        self.counters.set_manys.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.set_many(items).await
    }
    async fn has(&self, key: &str) -> Result<bool, DriverError> {
        self.check()?;
        self.inner.has(key).await
    }
    async fn pull(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError> {
        self.counters.deletes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.pull(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool, DriverError> {
        self.counters.deletes.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.delete(key).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<u64, DriverError> {
        self.check()?;
        self.inner.delete_many(keys).await
    }
    async fn clear(&self) -> Result<(), DriverError> {
        self.counters.clears.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.clear().await
    }
    async fn prune(&self) -> Result<(), DriverError> {
        self.check()?;
        self.inner.prune().await
    }
    async fn disconnect(&self) -> Result<(), DriverError> {
        if self.counters.hang_disconnect.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.disconnect().await
    }
}

/// What a scenario works with.
pub struct Setup {
    pub bento: Bento,
    pub l2: CountingDriver,
    /// The raw driver under the counting wrapper (whole keyspace).
    pub raw: Driver,
    pub prefix: String,
}

/// Options for [`setup`].
pub struct SetupOptions {
    pub l1: bool,
    pub options: CacheOptions,
}

impl Default for SetupOptions {
    fn default() -> Self {
        SetupOptions { l1: true, options: CacheOptions::new() }
    }
}

/// One store "main" with an optional L1 and `backend` as a counted L2,
/// under a unique prefix.
pub async fn setup(backend: &Backend, test: &str, options: SetupOptions) -> Setup {
    let raw = backend.driver().await;
    let l2 = CountingDriver::new(raw.clone());
    let prefix = unique_prefix(test);
    let mut store = Store::builder().l2(l2.clone()).options(options.options.over(&CacheOptions::new().prefix(&prefix)));
    if options.l1 {
        store = store.l1(L1Options::default());
    }
    let bento = Bento::builder().store("main", store).build().await.expect("bento builds");
    Setup { bento, l2, raw, prefix }
}

/// A second instance on the same L2 backend and prefix (another "process").
pub async fn sibling(setup: &Setup, options: CacheOptions) -> Bento {
    let store = Store::builder()
        .l1(L1Options::default())
        .l2(setup.raw.clone())
        .options(options.over(&CacheOptions::new().prefix(&setup.prefix)));
    Bento::builder().store("main", store).build().await.expect("sibling builds")
}

/// A factory returning `value` and counting its calls.
pub fn counted<T: Clone + Send + Sync + 'static>(
    calls: &Arc<AtomicU64>,
    value: T,
) -> impl FnOnce(bento::FactoryContext<T>) -> futures::future::Ready<Result<T, bento::BoxError>> + Send + 'static {
    let calls = calls.clone();
    move |_ctx| {
        calls.fetch_add(1, Ordering::SeqCst);
        futures::future::ready(Ok(value))
    }
}

/// A factory that counts its calls, records the graced entry it was given,
/// then returns `value` after `delay`.
pub fn counted_slow<T: Clone + Send + Sync + 'static>(
    calls: &Arc<AtomicU64>,
    graced_seen: &Arc<Mutex<Vec<Option<T>>>>,
    delay: Duration,
    value: T,
) -> impl FnOnce(bento::FactoryContext<T>) -> futures::future::BoxFuture<'static, Result<T, bento::BoxError>> + Send + 'static
{
    let (calls, graced_seen) = (calls.clone(), graced_seen.clone());
    move |ctx| {
        calls.fetch_add(1, Ordering::SeqCst);
        graced_seen.lock().unwrap().push(ctx.graced_entry().map(|entry| entry.value.clone()));
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(value)
        })
    }
}

/// A store (with or without L1, grace 60 s) where `key` = `value` is stale
/// within grace in L2 and absent from the store's L1: written by a sibling
/// instance with a 50 ms ttl, then left to expire.
pub async fn stale_only_in_l2(backend: &Backend, test: &str, l1: bool, key: &str, value: u32) -> Setup {
    let s = setup(backend, test, SetupOptions { l1, options: CacheOptions::new().grace(ms(60_000)) }).await;
    let writer = sibling(&s, CacheOptions::new().grace(ms(60_000))).await;
    writer.set(key, value).ttl(ms(50)).await.expect("sibling writes");
    tokio::time::sleep(ms(150)).await;
    s
}

/// The hit events among `events`.
pub fn hits(events: &mut tokio::sync::broadcast::Receiver<bento::CacheEvent>) -> Vec<bento::CacheEvent> {
    let mut hits = Vec::new();
    while let Ok(event) = events.try_recv() {
        if matches!(event, bento::CacheEvent::Hit { .. }) {
            hits.push(event);
        }
    }
    hits
}

/// A graced hit of `key` in store "main", served from `layer`.
pub fn graced_hit(key: &str, layer: bento::Layer) -> bento::CacheEvent {
    bento::CacheEvent::Hit { store: "main".into(), key: key.into(), layer, graced: true }
}

/// A factory that fails.
pub fn failing<T: Send + Sync + 'static>(
    message: &'static str,
) -> impl FnOnce(bento::FactoryContext<T>) -> futures::future::Ready<Result<T, bento::BoxError>> + Send + 'static {
    move |ctx| futures::future::ready(Err(ctx.fail(message).into()))
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
