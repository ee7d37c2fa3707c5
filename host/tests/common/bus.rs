//! Helpers for the multi-instance bus scenarios (`bus_sync.rs`,
//! `bus_multiprocess.rs`): an "instance" is one `Bento` with its own L1,
//! the Redis driver plugin as L2 and its own `BusNode` over a bus plugin
//! (Redis pub/sub or NATS), as a separate service process would have.
//! Reads report which layer served them; `settle` waits until every
//! instance has applied every message and checks that nothing echoed.

use super::redis_driver;
use bento::bus::{BusNode, BusNodeOptions, BusStats, RetryQueueOptions};
use bento::{Bento, Cache, CacheEvent, CacheOptions, CacheValue, L1Options, Layer, Plugin, Store};
use bento_testkit::Service;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a condition that should hold "soon" may take: generous, so a
/// loaded 2-core machine does not make the tests flaky.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Retry interval of every node's retry queue in these tests (default 2 s).
pub const RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// Which bus plugin carries the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusServer {
    /// `bento-bus-redis` (Redis pub/sub).
    Redis,
    /// `bento-bus-nats`.
    Nats,
}

impl BusServer {
    pub fn service(self) -> Service {
        match self {
            BusServer::Redis => Service::Redis,
            BusServer::Nats => Service::Nats,
        }
    }

    pub fn plugin(self) -> &'static str {
        match self {
            BusServer::Redis => "bento-bus-redis",
            BusServer::Nats => "bento-bus-nats",
        }
    }

    /// The bus URL for a server (or proxy) at `host:port`.
    pub fn url_at(self, address: &str) -> String {
        match self {
            BusServer::Redis => format!("redis://{address}"),
            BusServer::Nats => format!("nats://{address}"),
        }
    }

    /// Plugin options with short timeouts and reconnect delays.
    pub fn options(self, url: &str) -> String {
        serde_json::json!({ "url": url, "connection_timeout_ms": 1000, "response_timeout_ms": 1000,
                            "reconnect_max_delay_ms": 200, "health_check_interval_ms": 500 })
        .to_string()
    }
}

/// The servers a bus scenario needs: Redis for L2 and the bus server.
/// `None` (with a SKIP line, or a panic under BENTO_REQUIRE_SERVICES=1)
/// when one is unreachable.
pub fn servers(bus: BusServer, test: &str) -> Option<(String, String)> {
    let redis = bento_testkit::require(Service::Redis, test)?;
    let bus_url = match bus {
        BusServer::Redis => redis.clone(),
        BusServer::Nats => bento_testkit::require(Service::Nats, test)?,
    };
    Some((redis, bus_url))
}

/// A store name (hence a bus channel) and key prefix no other test or run
/// uses, so parallel tests never see each other's messages.
pub fn unique_store(test: &str) -> (String, String) {
    let prefix = super::unique_prefix(test);
    (format!("store_{prefix}"), prefix)
}

/// Where an instance connects and what it is called.
#[derive(Debug, Clone)]
pub struct InstanceConfig {
    pub redis_url: String,
    pub bus: BusServer,
    pub bus_url: String,
    pub store: String,
    pub prefix: String,
}

impl InstanceConfig {
    /// The config a parent test passed to a child process through the
    /// environment variables `<var_prefix>_REDIS_URL`, `_STORE`, `_PREFIX`
    /// (Redis for L2 and the bus).
    pub fn from_env(var_prefix: &str) -> InstanceConfig {
        let env = |name: &str| {
            let name = format!("{var_prefix}_{name}");
            std::env::var(&name).unwrap_or_else(|_| panic!("{name} is set for the child"))
        };
        let redis_url = env("REDIS_URL");
        InstanceConfig {
            bus_url: redis_url.clone(),
            redis_url,
            bus: BusServer::Redis,
            store: env("STORE"),
            prefix: env("PREFIX"),
        }
    }

    /// The environment [`InstanceConfig::from_env`] reads.
    pub fn to_env(&self, var_prefix: &str) -> Vec<(String, String)> {
        vec![
            (format!("{var_prefix}_REDIS_URL"), self.redis_url.clone()),
            (format!("{var_prefix}_STORE"), self.store.clone()),
            (format!("{var_prefix}_PREFIX"), self.prefix.clone()),
        ]
    }
}

/// One cache instance: its `Bento`, its bus node and how many bus
/// messages its store has applied to L1.
pub struct Instance {
    pub bento: Bento,
    pub node: BusNode,
    applied: Arc<AtomicU64>,
}

impl Instance {
    /// A `Bento` with its own L1, the Redis driver as L2 and its own bus
    /// node (random sender id), all stores options `options` over the
    /// config's prefix.
    pub async fn start(config: &InstanceConfig, options: CacheOptions) -> Instance {
        let plugin = Plugin::load(bento_testkit::plugin_path(config.bus.plugin())).expect("bus plugin loads");
        let transport = plugin.create_bus(&config.bus.options(&config.bus_url)).await.expect("bus connects");
        let node = BusNode::new(
            transport,
            BusNodeOptions {
                retry_queue: RetryQueueOptions { retry_interval: RETRY_INTERVAL, ..Default::default() },
                ..Default::default()
            },
        );
        let store = Store::builder()
            .l1(L1Options::default())
            .l2(redis_driver(&config.redis_url).await)
            .bus(node.clone())
            .options(options.over(&CacheOptions::new().prefix(&config.prefix)));
        let bento = Bento::builder().store(config.store.clone(), store).build().await.expect("bento builds");
        let applied = Arc::new(AtomicU64::new(0));
        let counter = applied.clone();
        // Emitted after the message was applied to L1: a safe sync point.
        bento.on_event(move |event| {
            if matches!(event, CacheEvent::BusReceived { .. }) {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        Instance { bento, node, applied }
    }

    /// Bus messages from other instances applied to this instance's L1.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::SeqCst)
    }

    /// Read `key` through `cache` (a handle of this instance) and report
    /// the layer that served it (`None` on a miss).
    pub async fn read<T: CacheValue>(&self, cache: &Cache, key: &str) -> (Option<T>, Option<Layer>) {
        read(&self.bento, cache, key).await
    }

    /// Like [`Instance::read`] on the root cache.
    pub async fn get<T: CacheValue>(&self, key: &str) -> (Option<T>, Option<Layer>) {
        read(&self.bento, &self.bento, key).await
    }
}

/// Read `key` through `cache` (a handle of `bento`) and report the layer
/// that served the value (`None` on a miss). Events are emitted on the
/// reading task, so they are all there when `get` returns.
pub async fn read<T: CacheValue>(bento: &Bento, cache: &Cache, key: &str) -> (Option<T>, Option<Layer>) {
    let mut events = bento.subscribe();
    let value = cache.get::<T>(key).await.expect("get succeeds");
    let mut layer = None;
    while let Ok(event) = events.try_recv() {
        if let CacheEvent::Hit { layer: hit, .. } = event {
            layer = Some(hit);
        }
    }
    (value, layer)
}

/// Poll `condition` every 20 ms until it holds; panic with `what` and the
/// output of `describe` after [`DEADLINE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool, describe: impl Fn() -> String) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out after {DEADLINE:?} waiting for {what}: {}", describe());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn describe(instances: &[&Instance]) -> String {
    let stats: Vec<(u64, BusStats)> = instances.iter().map(|i| (i.applied(), i.node.stats())).collect();
    format!("(applied, stats) per instance: {stats:#?}")
}

/// Wait until every instance applied every message the others published
/// (`published` in total so far), then check nothing echoed: the total
/// published is exactly `published` (receivers never re-publish), each
/// node received exactly the others' messages, and — when `echoes_seen` —
/// each node got its own messages back from the server and ignored them.
pub async fn settle(instances: &[&Instance], published: u64, echoes_seen: bool) {
    let total = || instances.iter().map(|i| i.node.stats().published).sum::<u64>();
    let consistent = || {
        instances.iter().all(|i| {
            let own = i.node.stats();
            i.applied() == published - own.published && (!echoes_seen || own.ignored_own == own.published)
        })
    };
    eventually(
        "every instance to apply the others' messages",
        || total() == published && consistent(),
        || describe(instances),
    )
    .await;
    // Nothing more arrives later (no re-publishing, no echo applied).
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(total(), published, "received messages are never re-published: {}", describe(instances));
    for instance in instances {
        let stats = instance.node.stats();
        assert_eq!(stats.received, published - stats.published, "{}", describe(instances));
        assert_eq!(instance.applied(), stats.received, "{}", describe(instances));
        assert!(stats.ignored_own <= stats.published, "{}", describe(instances));
    }
}
