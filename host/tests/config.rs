//! Building stores from a TOML config over plugins loaded from a folder.

mod common;

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
        l1 = { max_items = 1000 }
        l2 = { plugin = "memory", options = { max_items = 1000 } }
        options = { prefix = "app", ttl = "90s" }

        [stores.local]
        l1 = true
    "#;
    let bento = bento::Bento::from_config(config, folder.path()).await.unwrap();
    let main = bento.store("main").unwrap().settings();
    assert_eq!(main.prefix, "app");
    assert_eq!(main.ttl, Some(Duration::from_secs(90)));
    assert_eq!(main.grace, Some(Duration::from_secs(9000)));
    assert_eq!(bento.use_store("local").unwrap().settings().ttl, Some(Duration::from_secs(600)));
    bento.set("k", 1u32).await.unwrap();
    assert_eq!(bento.get::<u32>("k").await.unwrap(), Some(1));

    let error = bento::Bento::from_config("[stores.x]\nl2 = { plugin = \"nope\" }", folder.path()).await.unwrap_err();
    assert!(error.to_string().contains("nope"), "{error}");
    let error = bento::Bento::from_config("[stores.x]\nttl = \"1s\"", folder.path()).await.unwrap_err();
    assert!(error.to_string().contains("ttl"), "{error}");
}
