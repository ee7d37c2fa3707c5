//! A plugin as L1 ("local" layer) instead of the built-in store: the memory
//! plugin behind `StoreBuilder::l1_plugin`, with the memory plugin or a real
//! Redis as L2. The same tier, grace, tag, namespace and bus semantics as
//! the built-in L1; entries live in the plugin (checked by reading it
//! directly); a plugin that cannot serve the local layer is refused.

mod common;

use bento::bus::{BusNode, MemoryBus};
use bento::{Bento, CacheEvent, CacheOptions, Driver, DriverOptions, Error, Layer, Plugin, Store};
use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

async fn memory_driver() -> Driver {
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-driver-memory")).expect("memory plugin");
    plugin.create_driver("{}", DriverOptions::default()).await.expect("memory driver")
}

/// One store "main" whose L1 is the memory plugin (`l1`, returned raw so
/// the test can look inside) and whose L2 is `backend`, counted.
async fn plugin_l1_setup(backend: &Backend, test: &str, options: CacheOptions) -> (Setup, Driver) {
    let raw = backend.driver().await;
    let l2 = CountingDriver::new(raw.clone());
    let l1 = memory_driver().await;
    let prefix = unique_prefix(test);
    let store = Store::builder()
        .l1_plugin(l1.clone())
        .l2(l2.clone())
        .options(options.over(&CacheOptions::new().prefix(&prefix)));
    let bento = Bento::builder().store("main", store).build().await.expect("bento builds");
    (Setup { bento, l2, raw, prefix }, l1)
}

#[tokio::test]
async fn entries_live_in_the_plugin_and_hits_are_served_from_it() {
    for backend in backends("local_hits") {
        let (s, l1) = plugin_l1_setup(&backend, "local_hits", CacheOptions::new()).await;
        let mut events = s.bento.subscribe();
        s.bento.set("user:1", "Ada".to_string()).tags(["users"]).await.unwrap();

        let stored = l1.get(&format!("{}:user:1", s.prefix)).await.unwrap().expect("entry in the L1 plugin");
        assert!(stored.ends_with(b"\"Ada\""), "{backend:?}: value serialized at the end of the record");

        // The first read also learns the tag's invalidation timestamps
        // (from L2, then kept in L1); the value itself comes from L1.
        assert_eq!(s.bento.get::<String>("user:1").await.unwrap().as_deref(), Some("Ada"));
        let hit = std::iter::from_fn(|| events.try_recv().ok()).find(|e| matches!(e, CacheEvent::Hit { .. }));
        assert!(matches!(hit, Some(CacheEvent::Hit { layer: Layer::L1, graced: false, .. })), "{hit:?}");
        let before = s.l2.counters.gets();
        assert_eq!(s.bento.get::<String>("user:1").await.unwrap().as_deref(), Some("Ada"));
        assert_eq!(s.l2.counters.gets(), before, "{backend:?}: served by the L1 plugin, not L2");

        // Another type reads the same bytes (decoded as that type).
        assert_eq!(s.bento.get::<serde_json::Value>("user:1").await.unwrap(), Some(serde_json::json!("Ada")));
        assert_eq!(s.l2.counters.gets(), before, "{backend:?}");
    }
}

#[tokio::test]
async fn l2_hits_are_copied_into_the_plugin_l1() {
    for backend in backends("local_copy") {
        let (s, l1) = plugin_l1_setup(&backend, "local_copy", CacheOptions::new()).await;
        let other = sibling(&s, CacheOptions::new()).await;
        other.set("k", 7u32).ttl(ms(60_000)).await.unwrap();

        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(7));
        assert_eq!(s.l2.counters.gets(), 1, "{backend:?}");
        assert!(l1.get(&format!("{}:k", s.prefix)).await.unwrap().is_some(), "{backend:?}: copied into L1");
        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(7));
        assert_eq!(s.l2.counters.gets(), 1, "{backend:?}: second read from L1");
        assert_eq!(s.bento.get_many::<u32>(&["k"]).await.unwrap(), vec![Some(7)]);
        assert_eq!(s.l2.counters.get_manys.load(Ordering::SeqCst), 0, "{backend:?}: get_many hit in L1");
    }
}

#[tokio::test]
async fn get_or_set_grace_and_expire_work_on_a_plugin_l1() {
    // L1 only: no L2 to fall back to, so everything below is the plugin's doing.
    let prefix = unique_prefix("local_grace");
    let store = Store::builder()
        .l1_plugin(memory_driver().await)
        .options(CacheOptions::new().prefix(&prefix).grace(ms(60_000)).grace_backoff(ms(60_000)).timeout(ms(5_000)));
    let bento = Bento::builder().store("main", store).build().await.unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    for _ in 0..3 {
        let value: u32 = bento.get_or_set("k", counted(&calls, 1u32)).ttl(ms(300)).await.unwrap();
        assert_eq!(value, 1);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "computed once, then L1 hits");

    tokio::time::sleep(ms(500)).await;
    let served: u32 = bento.get_or_set("k", failing("backend down")).await.unwrap();
    assert_eq!(served, 1, "stale value served within grace when the factory fails");
    assert_eq!(bento.get::<u32>("k").no_grace().await.unwrap(), Some(1), "backoff made it fresh again");

    assert!(bento.expire("k").await.unwrap());
    assert_eq!(bento.get::<u32>("k").no_grace().await.unwrap(), None, "logically expired");
    assert_eq!(bento.get::<u32>("k").await.unwrap(), Some(1), "kept for grace");
    assert!(bento.delete("k").await.unwrap());
    assert_eq!(bento.get::<u32>("k").await.unwrap(), None);
}

#[tokio::test]
async fn tags_and_namespaces_work_on_a_plugin_l1() {
    let prefix = unique_prefix("local_tags");
    let store = Store::builder().l1_plugin(memory_driver().await).options(CacheOptions::new().prefix(&prefix));
    let bento = Bento::builder().store("main", store).build().await.unwrap();
    bento.set("a", 1u32).tags(["t"]).await.unwrap();
    bento.set("b", 2u32).await.unwrap();
    assert!(bento.delete_by_tag(&["t"]).await.unwrap());
    assert_eq!(bento.get::<u32>("a").await.unwrap(), None, "deleted by tag");
    assert_eq!(bento.get::<u32>("b").await.unwrap(), Some(2));

    let users = bento.namespace("users").unwrap();
    users.set("1", 10u32).await.unwrap();
    users.clear().await.unwrap();
    assert_eq!(users.get::<u32>("1").await.unwrap(), None, "namespace cleared");
    assert_eq!(bento.get::<u32>("b").await.unwrap(), Some(2), "the root is untouched");
    bento.clear().await.unwrap();
    assert_eq!(bento.get::<u32>("b").await.unwrap(), None);
    bento.disconnect_all().await.unwrap();
}

#[tokio::test]
async fn bus_messages_expire_a_plugin_l1() {
    let hub = MemoryBus::new();
    let instance = || async {
        let store = Store::builder()
            .l1_plugin(memory_driver().await)
            .bus(BusNode::new(hub.connect(), Default::default()))
            .options(CacheOptions::new().prefix("local_bus").grace(ms(60_000)));
        Bento::builder().store("main", store).build().await.unwrap()
    };
    let (a, b) = (instance().await, instance().await);
    b.set("k", 1u32).await.unwrap();
    a.set("k", 2u32).await.unwrap();
    let mut expired = false;
    for _ in 0..200 {
        if b.get::<u32>("k").no_grace().await.unwrap().is_none() {
            expired = true;
            break;
        }
        tokio::time::sleep(ms(10)).await;
    }
    assert!(expired, "a's Set made b's L1 copy stale");
    assert_eq!(b.get::<u32>("k").await.unwrap(), Some(1), "the stale copy stays for grace");
}

#[tokio::test]
async fn a_plugin_that_cannot_serve_l1_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let file = Plugin::load(bento_testkit::plugin_path("bento-driver-file")).expect("file plugin");
    let options = serde_json::json!({ "directory": directory.path() }).to_string();
    let driver = file.create_driver(&options, DriverOptions::default()).await.unwrap();
    let error = Bento::builder().store("main", Store::builder().l1_plugin(driver)).build().await.unwrap_err();
    assert!(matches!(&error, Error::InvalidOptions(message) if message.contains("local layer")), "{error}");
}

#[tokio::test]
async fn a_config_can_name_a_local_plugin() {
    let folder = memory_plugin_folder();
    let config = r#"
        [stores.main]
        l1 = { plugin = "memory", options = { max_items = 100 } }
    "#;
    let bento = Bento::from_config(config, folder.path()).await.unwrap();
    bento.set("k", "v".to_string()).await.unwrap();
    assert_eq!(bento.get::<String>("k").await.unwrap().as_deref(), Some("v"));
    let error =
        Bento::from_config("[stores.x]\nl1 = { plugin = \"memory\", options = { max_itemz = 1 } }", folder.path())
            .await
            .unwrap_err();
    assert!(error.to_string().contains("max_itemz"), "{error}");
}
