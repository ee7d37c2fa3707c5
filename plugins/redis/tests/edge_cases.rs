//! Driver-contract edge cases (SPEC §3) pinned for the Redis driver, while
//! also covered by the conformance suite: hostile keys, 16 MiB values, glob
//! characters in prefixes, BentoCache's key layout, batches, disconnect.

use bento::{Driver, DriverOptions, ErrorKind, Plugin};
use bento_plugin_api::SetItem;
use bento_testkit::{plugin_path, require, Service};
use std::time::Duration;

fn prefix(test: &str) -> String {
    format!("bento-redis-edge-{test}-{}", std::process::id())
}

/// A driver on the shared Redis, or None (SKIP) when it is unreachable.
fn driver(runtime: &tokio::runtime::Runtime, prefix: &str) -> Option<Driver> {
    let url = require(Service::Redis, "redis edge cases")?;
    let plugin = Plugin::load(plugin_path("bento-driver-redis")).expect("the redis plugin loads");
    let options = serde_json::json!({ "url": url }).to_string();
    Some(runtime.block_on(plugin.create_driver(&options, DriverOptions::with_prefix(prefix))).expect("driver connects"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("test runtime")
}

#[test]
fn hostile_keys_round_trip_without_colliding() {
    let runtime = runtime();
    let Some(driver) = driver(&runtime, &prefix("keys")) else { return };
    runtime.block_on(async {
        let long = "k".repeat(1024);
        let keys = [
            "a/b",
            "a\\b",
            "../../etc/passwd",
            "nul\0byte",
            "new\nline",
            "quo\"te's",
            "sp ace",
            "emoji 🦀",
            "*",
            "?",
            "[x]",
            "",
            &long,
        ];
        for (i, key) in keys.iter().enumerate() {
            assert!(driver.set(key, format!("v{i}").into_bytes(), None).await.unwrap(), "set {key:?}");
        }
        for (i, key) in keys.iter().enumerate() {
            let value = driver.get(key).await.unwrap();
            assert_eq!(value, Some(format!("v{i}").into_bytes()), "get {key:?}");
        }
        driver.clear().await.unwrap();
        assert_eq!(driver.get_many(&keys).await.unwrap(), vec![None; keys.len()]);
    });
}

#[test]
fn sixteen_mib_values_and_non_utf8_values_round_trip() {
    let runtime = runtime();
    let Some(driver) = driver(&runtime, &prefix("big")) else { return };
    runtime.block_on(async {
        let big: Vec<u8> = (0..16 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
        assert!(driver.set("big", big.clone(), Some(Duration::from_secs(60))).await.unwrap());
        assert_eq!(driver.get("big").await.unwrap().as_deref(), Some(big.as_slice()));
        assert!(driver.set("empty", Vec::new(), None).await.unwrap());
        assert_eq!(driver.get("empty").await.unwrap(), Some(Vec::new()), "an empty value is a value");
        assert!(driver.has("empty").await.unwrap());
        assert!(driver.set("binary", vec![0xff, 0x00, 0xfe], None).await.unwrap());
        assert_eq!(driver.pull("binary").await.unwrap(), Some(vec![0xff, 0x00, 0xfe]));
        assert_eq!(driver.pull("binary").await.unwrap(), None);
        driver.clear().await.unwrap();
    });
}

#[test]
fn clear_escapes_glob_characters_and_respects_sibling_prefixes() {
    let runtime = runtime();
    let base = prefix("glob");
    let Some(root) = driver(&runtime, &base) else { return };
    runtime.block_on(async {
        for sibling in ["a*b", "a?b", "a[b]", "a\\b", "axb", "a[x]", "users", "usersAbc"] {
            root.namespace(sibling).unwrap().set("k", b"v".to_vec(), None).await.unwrap();
        }
        for cleared in ["a*b", "a?b", "a[b]", "a\\b", "users"] {
            root.namespace(cleared).unwrap().clear().await.unwrap();
            assert_eq!(root.namespace(cleared).unwrap().get("k").await.unwrap(), None, "{cleared} cleared");
        }
        for survivor in ["axb", "a[x]", "usersAbc"] {
            let value = root.namespace(survivor).unwrap().get("k").await.unwrap();
            assert_eq!(value.as_deref(), Some(&b"v"[..]), "{survivor} must survive its siblings' clear");
        }
        root.clear().await.unwrap();
        assert_eq!(root.namespace("axb").unwrap().get("k").await.unwrap(), None, "root clear reaches namespaces");
    });
}

#[test]
fn keys_use_bentocache_layout() {
    let runtime = runtime();
    let base = prefix("layout");
    let Some(root) = driver(&runtime, &format!("{base}:")) else { return };
    let Some(whole) = driver(&runtime, "") else { return };
    runtime.block_on(async {
        root.namespace("posts").unwrap().set("7", b"p".to_vec(), None).await.unwrap();
        // The stored key is `prefix:posts:7`, visible from a prefix-less handle.
        assert_eq!(whole.get(&format!("{base}:posts:7")).await.unwrap().as_deref(), Some(&b"p"[..]));
        assert_eq!(root.get("posts:7").await.unwrap().as_deref(), Some(&b"p"[..]));
        root.clear().await.unwrap();
        whole.disconnect().await.unwrap();
    });
}

#[test]
fn batches_ttl_and_disconnect() {
    let runtime = runtime();
    let Some(driver) = driver(&runtime, &prefix("batch")) else { return };
    runtime.block_on(async {
        let items: Vec<SetItem> = (0..50)
            .map(|i| SetItem {
                key: format!("k{i}"),
                value: vec![i as u8],
                ttl: (i % 2 == 0).then_some(Duration::from_secs(60)),
            })
            .collect();
        assert!(driver.set_many(items).await.unwrap());
        let keys: Vec<String> = (0..52).map(|i| format!("k{i}")).collect();
        let values = driver.get_many(&keys).await.unwrap();
        assert_eq!(values[49], Some(vec![49]));
        assert_eq!(values[50], None);
        assert_eq!(driver.delete_many(&keys).await.unwrap(), 50);
        assert_eq!(driver.delete_many(&[] as &[String]).await.unwrap(), 0);
        assert!(driver.set_many(Vec::new()).await.unwrap());

        driver.set("short", b"v".to_vec(), Some(Duration::from_millis(100))).await.unwrap();
        driver.set("long", b"v".to_vec(), Some(Duration::from_secs(2))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(driver.get("short").await.unwrap(), None, "a 100 ms entry is gone by 300 ms");
        assert!(driver.has("long").await.unwrap(), "a 2 s entry is there at 300 ms");
        driver.clear().await.unwrap();

        let namespace = driver.namespace("ns").unwrap();
        driver.disconnect().await.unwrap();
        driver.disconnect().await.unwrap();
        assert_eq!(driver.get("long").await.unwrap_err().kind, ErrorKind::DISCONNECTED);
        assert_eq!(namespace.get("x").await.unwrap_err().kind, ErrorKind::DISCONNECTED, "shared by namespaces");
        assert_eq!(driver.delete_many(&["a"]).await.unwrap_err().kind, ErrorKind::DISCONNECTED);
        assert_eq!(driver.get_many(&[] as &[String]).await.unwrap_err().kind, ErrorKind::DISCONNECTED);
    });
}

#[test]
fn invalid_url_is_an_invalid_options_error_naming_url() {
    let plugin = Plugin::load(plugin_path("bento-driver-redis")).expect("the redis plugin loads");
    let result =
        futures::executor::block_on(plugin.create_driver(r#"{"url":"http://not-redis"}"#, DriverOptions::default()));
    let Err(bento::Error::Driver(error)) = result else { panic!("an http URL must be refused: {result:?}") };
    assert_eq!(error.kind, ErrorKind::INVALID_OPTIONS);
    assert!(error.message.contains("`url`"), "{error}");
}
