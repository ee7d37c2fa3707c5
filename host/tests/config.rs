//! Building stores from a TOML config over plugins loaded from a folder,
//! and the messages an operator reads when the config is wrong.

mod common;

use bento::{Bento, BentoConfig, CacheEvent, Error, L1Options, Plugin, Store};
use bento_testkit::{bundled_plugin_folder, require, Service};
use common::memory_plugin_folder;
use std::time::Duration;

#[tokio::test]
async fn stores_are_built_from_a_toml_config() {
    let folder = memory_plugin_folder();
    let config = r#"
        default = "main"
        [options]
        ttl = "10m"
        grace = "2.5h"

        [stores.main]
        l1 = { max_items = 1000, max_size = "64mb" }
        l2 = { plugin = "memory", options = { max_items = 1000, max_size = "8mb" } }
        options = { prefix = "app", ttl = "90s" }

        [stores.local]
        l1 = true
    "#;
    let bento = Bento::from_config(config, folder.path()).await.unwrap();
    let main = bento.store("main").unwrap().settings();
    assert_eq!(main.prefix, "app");
    assert_eq!(main.ttl, Some(Duration::from_secs(90)));
    assert_eq!(main.grace, Some(Duration::from_secs(9000)));
    assert_eq!(bento.use_store("local").unwrap().settings().ttl, Some(Duration::from_secs(600)));
    bento.set("k", 1u32).await.unwrap();
    assert_eq!(bento.get::<u32>("k").await.unwrap(), Some(1));

    let error = Bento::from_config("[stores.x]\nl2 = { plugin = \"nope\" }", folder.path()).await.unwrap_err();
    assert!(error.to_string().contains("stores.x.l2") && error.to_string().contains("nope"), "{error}");
    let error = Bento::from_config("[stores.x]\nttl = \"1s\"", folder.path()).await.unwrap_err();
    assert!(error.to_string().contains("ttl"), "{error}");
}

#[test]
fn bento_config_embeds_in_an_application_config() {
    #[derive(serde::Deserialize)]
    struct AppConfig {
        listen: String,
        cache: BentoConfig,
    }
    let app: AppConfig = toml::from_str(
        "listen = \"0.0.0.0:80\"\n[cache.stores.main]\nl1 = { max_size = \"1mb\" }\noptions = { ttl = \"10m\" }",
    )
    .unwrap();
    assert_eq!(app.listen, "0.0.0.0:80");
    assert_eq!(app.cache.stores["main"].options.get_ttl(), Some(Some(Duration::from_secs(600))));
    assert_eq!(bento::parse_duration("10m").unwrap(), Duration::from_secs(600));
}

#[tokio::test]
async fn config_errors_name_the_store_and_the_field() {
    let folder = memory_plugin_folder();
    let cases = [
        ("[stores.main]\nl1 = { max_items = \"many\" }", "stores.main.l1.max_items", "expected an integer, "),
        ("[stores.main]\nl1 = { max_itemz = 10 }", "stores.main.l1", "unknown field `max_itemz`"),
        ("[stores.main]\nl1 = \"yes\"", "stores.main.l1", "expected true, false, a table"),
        ("[stores.main]\nl1 = true\nttl = 5", "stores.main", "unknown field `ttl`"),
        ("[stores.main]\nl1 = true\noptions = { ttl = 5 }", "stores.main.options.ttl", "expected a duration"),
        ("[stores.main]\nl1 = { max_size = \"lots\" }", "stores.main.l1.max_size", "invalid size `lots`"),
        ("[options]\ngrace = \"soon\"\n[stores.main]\nl1 = true", "options.grace", "invalid duration `soon`"),
        // Driver option errors come from the plugin; the host names the store.
        ("[stores.main]\nl2 = { plugin = \"memory\", options = { max_itemz = 1 } }", "stores.main.l2", "max_itemz"),
    ];
    for (config, path, expected) in cases {
        let error = Bento::from_config(config, folder.path()).await.unwrap_err();
        let message = error.to_string();
        println!("{message}");
        assert!(
            message.starts_with(path) || message.contains(&format!("configuration: {path}")),
            "{config:?}: {message}"
        );
        assert!(message.contains(expected), "{config:?}: {message}");
        assert!(!message.contains("untagged enum"), "{config:?}: {message}");
    }
}

#[tokio::test]
async fn a_connect_error_names_the_store() {
    let folder = bundled_plugin_folder();
    // Nothing listens on port 1.
    let config = r#"
        [stores.sessions]
        l2 = { plugin = "redis", options = { url = "redis://127.0.0.1:1", connection_timeout_ms = 500 } }
    "#;
    let error = Bento::from_config(config, folder.path()).await.unwrap_err();
    println!("{error}");
    assert!(matches!(error, Error::ConfigField { ref field, .. } if field == "stores.sessions.l2"), "{error:?}");
}

/// Waits until `events` delivers a bus message naming `key`.
async fn bus_message_for(events: &mut tokio::sync::broadcast::Receiver<CacheEvent>, key: &str) {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(CacheEvent::BusReceived { keys, .. }) if keys.iter().any(|k| k == key) => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(error) => panic!("event channel closed: {error}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait).await.expect("the bus message arrives within 10 s");
}

/// Repeats `publish` until `events` reports a bus message for `key`: a
/// fresh subscription is live only once the server has it.
async fn publish_until_received<F: std::future::Future<Output = ()>>(
    mut publish: impl FnMut() -> F,
    events: &mut tokio::sync::broadcast::Receiver<CacheEvent>,
    key: &str,
) {
    let seen = async {
        loop {
            publish().await;
            if tokio::time::timeout(Duration::from_secs(1), bus_message_for(events, key)).await.is_ok() {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), seen).await.expect("a bus message within 15 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_l2_and_redis_bus_from_one_folder_of_every_plugin() {
    let Some(url) = require(Service::Redis, "redis_l2_and_redis_bus_from_one_folder_of_every_plugin") else { return };
    let folder = bundled_plugin_folder();
    // Both `redis`: the driver for l2, the bus for bus.
    let config = format!(
        r#"
        [stores.issue10cfg]
        l1 = {{ max_items = 100 }}
        l2 = {{ plugin = "redis", options = {{ url = "{url}" }} }}
        bus = {{ plugin = "redis", options = {{ url = "{url}" }} }}
        options = {{ prefix = "issue10-config-redis", ttl = "1m" }}
        "#
    );
    let first = Bento::from_config(&config, folder.path()).await.unwrap();
    let second = Bento::from_config(&config, folder.path()).await.unwrap();
    first.clear().await.unwrap();
    first.set("user:1", "Ada".to_string()).await.unwrap();
    assert_eq!(second.get::<String>("user:1").await.unwrap().as_deref(), Some("Ada"), "read through the redis L2");
    let mut events = second.subscribe();
    first.set("user:1", "Grace".to_string()).await.unwrap();
    bus_message_for(&mut events, "user:1").await;
    assert_eq!(second.get::<String>("user:1").await.unwrap().as_deref(), Some("Grace"), "L1 invalidated by the bus");
    first.clear().await.unwrap();
    first.disconnect_all().await.unwrap();
    second.disconnect_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_bus_from_one_folder_of_every_plugin() {
    let Some(url) = require(Service::Nats, "nats_bus_from_one_folder_of_every_plugin") else { return };
    let folder = bundled_plugin_folder();
    let config = format!(
        r#"
        [stores.issue10nats]
        l1 = true
        bus = {{ plugin = "nats", options = {{ url = "{url}" }} }}
        "#
    );
    let first = Bento::from_config(&config, folder.path()).await.unwrap();
    let second = Bento::from_config(&config, folder.path()).await.unwrap();
    let mut events = second.subscribe();
    publish_until_received(|| async { assert!(first.set("k", 1u32).await.unwrap()) }, &mut events, "k").await;
    first.disconnect_all().await.unwrap();
    second.disconnect_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_plugin_in_one_step_from_rust() {
    let Some(url) = require(Service::Redis, "a_bus_plugin_in_one_step_from_rust") else { return };
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-bus-redis")).unwrap();
    let options = serde_json::json!({ "url": url }).to_string();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = Store::builder().l1(L1Options::default()).bus_plugin(&plugin, &options).await.unwrap();
        instances.push(Bento::builder().store("issue10-one-step", store).build().await.unwrap());
    }
    let mut events = instances[1].subscribe();
    publish_until_received(|| async { instances[0].delete("gone").await.map(drop).unwrap() }, &mut events, "gone")
        .await;
    for instance in instances {
        instance.disconnect_all().await.unwrap();
    }
}
