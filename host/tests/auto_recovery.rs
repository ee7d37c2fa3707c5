//! Auto-recovery (SPEC §5): L2 writes and invalidations that fail while
//! Redis is unreachable (a TCP proxy this test cuts) are queued — last
//! operation per key wins — and replayed once it answers again, so after
//! the outage L2 holds what callers last did and a deleted value never
//! comes back, on this instance and on a second one sharing the L2.

mod common;

use bento::bus::{BusNode, MemoryBus};
use bento::{Bento, CacheOptions, L1Options, Store};
use bento_testkit::{host_port, TcpProxy};
use common::*;
use std::time::{Duration, Instant};

async fn instance(url: &str, prefix: &str, bus: BusNode) -> Bento {
    let store = Store::builder()
        .l1(L1Options::default())
        .l2(redis_driver(url).await)
        .bus(bus)
        .options(CacheOptions::new().prefix(prefix));
    Bento::builder().store("main", store).build().await.expect("instance builds")
}

async fn raw_value(raw: &bento::Driver, key: String) -> Option<String> {
    let bytes = raw.get(&key).await.expect("raw L2 read")?;
    let entry: serde_json::Value = serde_json::from_slice(&bytes).expect("a BentoCache entry");
    Some(entry["value"].as_str().expect("a string value").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_during_an_outage_reach_l2_after_it_and_deleted_values_never_return() {
    if !redis_plugin_built() {
        assert!(!bento_testkit::services_required(), "redis plugin not built");
        eprintln!("SKIP auto_recovery: bento-driver-redis-plugin is not built in this target dir");
        return;
    }
    let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, "auto_recovery") else { return };
    let target = host_port(&url);
    let proxy = tokio::task::spawn_blocking(move || TcpProxy::start(&target)).await.unwrap();
    let proxy: &'static TcpProxy = Box::leak(Box::new(proxy));
    let via_proxy = format!("redis://{}", proxy.address());
    let prefix = unique_prefix("recovery");
    let hub = MemoryBus::new();
    let a = instance(&via_proxy, &prefix, BusNode::new(hub.connect(), Default::default())).await;
    let b = instance(&via_proxy, &prefix, BusNode::new(hub.connect(), Default::default())).await;
    let raw = redis_driver(&url).await;
    let key = |k: &str| format!("{prefix}:{k}");

    let ns = a.namespace("ns").unwrap();
    for k in ["deleted", "set", "set_then_deleted", "deleted_then_set"] {
        a.set(k, "old".to_string()).await.unwrap();
        assert_eq!(b.get::<String>(k).await.unwrap().as_deref(), Some("old"), "B caches {k}");
    }
    ns.set("x", "old".to_string()).await.unwrap();

    proxy.cut();
    tokio::time::sleep(ms(100)).await; // the proxy drops open connections within 20 ms
    a.delete("deleted").await.expect("errors are suppressed with an L1");
    ns.clear().await.expect("suppressed");
    assert!(!a.set("set", "new".to_string()).await.unwrap(), "L2 did not take it yet");
    a.set("set_then_deleted", "new".to_string()).await.unwrap();
    a.delete("set_then_deleted").await.unwrap();
    a.delete("deleted_then_set").await.unwrap();
    a.set("deleted_then_set", "newest".to_string()).await.unwrap();
    let store = a.store("main").unwrap();
    assert_eq!(store.pending_l2_operations(), 5, "one pending operation per key, and the clear");
    assert_eq!(a.get::<String>("deleted").await.unwrap(), None);
    assert_eq!(a.get::<String>("set").await.unwrap().as_deref(), Some("new"), "L1 has the new value");

    proxy.restore();
    let started = Instant::now();
    while store.pending_l2_operations() > 0 {
        assert!(started.elapsed() < Duration::from_secs(15), "replayed within 15 s");
        tokio::time::sleep(ms(100)).await;
    }
    assert_eq!(raw_value(&raw, key("deleted")).await, None, "the delete reached L2");
    assert_eq!(raw_value(&raw, format!("{prefix}:ns:x")).await, None, "the clear reached L2");
    assert_eq!(raw_value(&raw, key("set")).await.as_deref(), Some("new"), "the set reached L2");
    assert_eq!(raw_value(&raw, key("set_then_deleted")).await, None, "the last operation won");
    assert_eq!(raw_value(&raw, key("deleted_then_set")).await.as_deref(), Some("newest"), "the last operation won");

    // The replayed set was published: B drops its old copy and reads L2.
    let started = Instant::now();
    while b.get::<String>("set").await.unwrap().as_deref() != Some("new") {
        assert!(started.elapsed() < Duration::from_secs(5), "B sees the replayed set");
        tokio::time::sleep(ms(50)).await;
    }
    for instance in [&a, &b] {
        assert_eq!(instance.get::<String>("deleted").await.unwrap(), None, "a deleted value never comes back");
        assert_eq!(instance.namespace("ns").unwrap().get::<String>("x").await.unwrap(), None);
        assert_eq!(instance.get::<String>("set_then_deleted").await.unwrap(), None);
        assert_eq!(instance.get::<String>("deleted_then_set").await.unwrap().as_deref(), Some("newest"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_the_replay_window_answer_from_the_queue() {
    let s = setup(&Backend::Memory, "recovery_reads", SetupOptions::default()).await;
    let other = sibling(&s, CacheOptions::new()).await;
    s.bento.set("k", 1u32).await.unwrap();
    s.l2.counters.fail(true);
    s.bento.delete("k").await.unwrap();
    s.l2.counters.fail(false);
    // L2 answers again but still holds the old value until the replay:
    // this instance must not read it back (nor copy it into L1).
    assert_eq!(s.bento.get::<u32>("k").await.unwrap(), None, "the pending delete hides L2's copy");
    assert!(!s.bento.has("k").await.unwrap());
    let started = Instant::now();
    while s.bento.store("main").unwrap().pending_l2_operations() > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "replayed");
        tokio::time::sleep(ms(50)).await;
    }
    assert_eq!(other.get::<u32>("k").await.unwrap(), None, "gone from L2 for everyone");
}
