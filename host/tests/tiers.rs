//! L1 → L2 reads, L1 → L2 → bus writes, the BentoCache wire format, and
//! the basic verbs, against every backend.

mod common;

use bento::entry::Entry;
use bento::{CacheOptions, JsonSerializer, Serializer};
use common::*;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
}

const SAMPLE: &str =
    r#"{"value":{"name":"Ada"},"logicalExpiration":1795546853391,"tags":["users"],"createdAt":1795546253391}"#;

#[test]
fn entry_wire_format_matches_bentocache_byte_for_byte() {
    let entry = Entry {
        value: User { name: "Ada".into() },
        logical_expiration: Some(1795546853391),
        tags: vec!["users".to_string()],
        created_at: 1795546253391,
    };
    let bytes = JsonSerializer.serialize(&entry).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), SAMPLE);
    let back: Entry<User> = serde_json::from_str(SAMPLE).unwrap();
    assert_eq!(back, entry);
    let forever = Entry { logical_expiration: None, tags: vec![], ..entry };
    let bytes = JsonSerializer.serialize(&forever).unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), r#"{"value":{"name":"Ada"},"tags":[],"createdAt":1795546253391}"#);
}

#[tokio::test]
async fn entries_in_l2_use_the_bentocache_layout_and_node_entries_are_read() {
    for backend in backends("tiers_layout") {
        let s = setup(&backend, "layout", SetupOptions::default()).await;
        s.bento.set("user:1", User { name: "Ada".into() }).ttl(ms(600_000)).tags(["users"]).await.unwrap();
        let raw = s.raw.get(&format!("{}:user:1", s.prefix)).await.unwrap().expect("stored at prefix:key");
        let text = String::from_utf8(raw).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(text.starts_with(r#"{"value":{"name":"Ada"},"logicalExpiration":"#), "{backend:?}: {text}");
        assert_eq!(json["logicalExpiration"].as_u64().unwrap() - json["createdAt"].as_u64().unwrap(), 600_000);
        assert_eq!(json["tags"], serde_json::json!(["users"]));

        // An entry as BentoCache (Node) writes it, with a future expiry.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        let node = format!(
            r#"{{"value":{{"name":"Grace"}},"logicalExpiration":{},"tags":[],"createdAt":{now}}}"#,
            now + 60_000
        );
        s.raw.set(&format!("{}:user:2", s.prefix), node.into_bytes(), None).await.unwrap();
        let user: Option<User> = s.bento.get("user:2").await.unwrap();
        assert_eq!(user, Some(User { name: "Grace".into() }), "{backend:?}");
    }
}

#[tokio::test]
async fn l2_hits_are_copied_into_l1_keeping_the_logical_expiration() {
    for backend in backends("tiers_copy") {
        let s = setup(&backend, "copy", SetupOptions::default()).await;
        s.bento.set("k", "v".to_string()).ttl(ms(400)).await.unwrap();
        let other = sibling(&s, CacheOptions::new()).await;
        tokio::time::sleep(ms(150)).await;
        assert_eq!(other.get::<String>("k").await.unwrap().as_deref(), Some("v"), "{backend:?}");
        // The L1 copy of the sibling expires when the original does (not 400 ms after the copy).
        tokio::time::sleep(ms(350)).await;
        assert_eq!(other.get::<String>("k").await.unwrap(), None, "{backend:?}");
    }
}

#[tokio::test]
async fn a_second_read_is_served_by_l1() {
    for backend in backends("tiers_l1") {
        let s = setup(&backend, "l1", SetupOptions::default()).await;
        let other = sibling(&s, CacheOptions::new()).await;
        s.bento.set("k", 42u32).await.unwrap();
        let before = s.l2.counters.gets();
        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(42));
        assert_eq!(s.l2.counters.gets(), before, "set put the value into L1");
        assert_eq!(other.get::<u32>("k").await.unwrap(), Some(42));
        assert_eq!(other.get::<u32>("k").await.unwrap(), Some(42));
    }
}

#[tokio::test]
async fn physical_ttl_is_ttl_plus_grace() {
    for backend in backends("tiers_physical") {
        let s = setup(&backend, "physical", SetupOptions::default()).await;
        s.bento.set("k", 1u8).ttl(ms(200)).grace(ms(600)).await.unwrap();
        let key = format!("{}:k", s.prefix);
        tokio::time::sleep(ms(450)).await;
        assert!(s.raw.get(&key).await.unwrap().is_some(), "{backend:?}: still stored within ttl + grace");
        tokio::time::sleep(ms(650)).await;
        assert!(s.raw.get(&key).await.unwrap().is_none(), "{backend:?}: gone after ttl + grace");
    }
}

#[tokio::test]
async fn none_is_a_cacheable_value_and_defaults_are_lazy() {
    for backend in backends("tiers_none") {
        let s = setup(&backend, "none", SetupOptions::default()).await;
        let calls = Arc::new(AtomicU64::new(0));
        let first: Option<u32> = s.bento.get_or_set("nothing", counted(&calls, None)).await.unwrap();
        let second: Option<u32> = s.bento.get_or_set("nothing", counted(&calls, Some(1))).await.unwrap();
        assert_eq!((first, second), (None, None));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{backend:?}");

        s.bento.set("present", 5u32).await.unwrap();
        let value: u32 = s.bento.get_or("present", || panic!("default must not be computed on a hit")).await.unwrap();
        assert_eq!(value, 5);
        assert_eq!(s.bento.get_or("absent", || 9u32).await.unwrap(), 9);
        assert_eq!(s.bento.get::<u32>("absent").await.unwrap(), None, "defaults are not cached");
    }
}

#[tokio::test]
async fn basic_verbs() {
    for backend in backends("tiers_verbs") {
        let s = setup(&backend, "verbs", SetupOptions::default()).await;
        let cache = &s.bento;
        cache.set("a", "1".to_string()).await.unwrap();
        cache.set_forever("b", "2".to_string()).await.unwrap();
        assert!(cache.has("a").await.unwrap());
        assert!(cache.missing("zzz").await.unwrap());
        assert_eq!(cache.pull::<String>("a").await.unwrap().as_deref(), Some("1"));
        assert!(cache.missing("a").await.unwrap());
        assert!(cache.delete("b").await.unwrap(), "{backend:?}");
        assert!(!cache.delete("b").await.unwrap());

        cache.set_many(vec![("x", 1u32), ("y", 2u32), ("z", 3u32)]).await.unwrap();
        assert_eq!(s.l2.counters.set_manys.load(Ordering::SeqCst), 1, "one batched L2 write");
        let other = sibling(&s, CacheOptions::new()).await;
        let before = s.l2.counters.get_manys.load(Ordering::SeqCst);
        let values = other.get_many::<u32>(&["x", "nope", "z"]).await.unwrap();
        assert_eq!(values, vec![Some(1), None, Some(3)], "{backend:?}");
        assert_eq!(s.l2.counters.get_manys.load(Ordering::SeqCst), before, "sibling has its own driver wrapper");
        let values = cache.get_many::<u32>(&["x", "y"]).await.unwrap();
        assert_eq!(values, vec![Some(1), Some(2)]);

        assert_eq!(cache.delete_many(&["x", "y"]).await.unwrap(), 2, "{backend:?}");
        assert_eq!(cache.get::<u32>("x").await.unwrap(), None);
        cache.clear().await.unwrap();
        assert_eq!(cache.get::<u32>("z").await.unwrap(), None);
        cache.prune().await.unwrap();
    }
}

#[tokio::test]
async fn get_many_reads_l2_in_one_batch() {
    for backend in backends("tiers_get_many") {
        let s = setup(&backend, "get_many", SetupOptions::default()).await;
        let other = sibling(&s, CacheOptions::new()).await;
        other.set_many(vec![("a", 1u32), ("b", 2u32), ("c", 3u32)]).await.unwrap();
        let values = s.bento.get_many::<u32>(&["a", "b", "c", "d"]).await.unwrap();
        assert_eq!(values, vec![Some(1), Some(2), Some(3), None]);
        assert_eq!(s.l2.counters.get_manys.load(Ordering::SeqCst), 1, "{backend:?}");
        assert_eq!(s.l2.counters.gets(), 0, "{backend:?}");
        // Now in L1: no L2 round trip at all.
        let values = s.bento.get_many::<u32>(&["a", "b", "c"]).await.unwrap();
        assert_eq!(values, vec![Some(1), Some(2), Some(3)]);
        assert_eq!(s.l2.counters.get_manys.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
async fn l1_only_and_l2_only_stores_work() {
    let bento = bento::Bento::builder().build().await.unwrap();
    bento.set("k", vec![1u8, 2, 3]).await.unwrap();
    assert_eq!(bento.get::<Vec<u8>>("k").await.unwrap(), Some(vec![1, 2, 3]));

    for backend in backends("tiers_l2_only") {
        let s = setup(&backend, "l2only", SetupOptions { l1: false, ..Default::default() }).await;
        s.bento.set("k", "v".to_string()).await.unwrap();
        assert_eq!(s.bento.get::<String>("k").await.unwrap().as_deref(), Some("v"));
        assert_eq!(s.l2.counters.gets(), 1, "{backend:?}: no L1, every read goes to L2");
    }
}

#[tokio::test]
async fn values_read_as_another_type_are_converted_in_l1() {
    let s = setup(&Backend::Memory, "types", SetupOptions::default()).await;
    s.bento.set("n", 7u64).await.unwrap();
    // L1 holds a u64; a u32 reader gets it re-decoded through the
    // serializer, as it would from L2, without an L2 read.
    assert_eq!(s.bento.get::<u32>("n").await.unwrap(), Some(7));
    assert_eq!(s.bento.get_or_set("n", failing::<f64>("not called")).await.unwrap(), 7.0);
    assert_eq!(s.l2.counters.gets(), 0);
    // A type it does not decode as is a miss in L1; L2 holds the same value.
    assert_eq!(s.bento.get::<String>("n").await.unwrap(), None);
    assert_eq!(s.l2.counters.gets(), 1);
}

#[tokio::test]
async fn the_factory_context_controls_how_the_value_is_cached() {
    for backend in backends("tiers_factory_ctx") {
        let s = setup(&backend, "ctx", SetupOptions::default()).await;
        // skip(): returned to this caller, cached nowhere.
        let value: Option<u32> = s
            .bento
            .get_or_set("skipped", |ctx: bento::FactoryContext<Option<u32>>| async move {
                ctx.skip();
                Ok::<_, bento::BoxError>(None)
            })
            .await
            .unwrap();
        assert_eq!(value, None);
        assert!(s.bento.missing("skipped").await.unwrap(), "{backend:?}");

        // skip_l2_write: L1 only.
        s.bento
            .get_or_set("local", |ctx: bento::FactoryContext<u32>| async move {
                ctx.set_options(bento::FactoryWriteOptions { skip_l2_write: true, ..Default::default() });
                Ok::<_, bento::BoxError>(1)
            })
            .await
            .unwrap();
        assert_eq!(s.bento.get::<u32>("local").await.unwrap(), Some(1));
        assert!(s.raw.get(&format!("{}:local", s.prefix)).await.unwrap().is_none(), "{backend:?}: not in L2");

        // set_ttl overrides the operation's TTL.
        s.bento
            .get_or_set("short", |ctx: bento::FactoryContext<u32>| async move {
                ctx.set_ttl(ms(100));
                Ok::<_, bento::BoxError>(1)
            })
            .ttl(ms(60_000))
            .await
            .unwrap();
        tokio::time::sleep(ms(200)).await;
        assert_eq!(s.bento.get::<u32>("short").await.unwrap(), None, "{backend:?}");
    }
}
