//! `clear()` matches its prefix literally: SQL `LIKE` wildcards (`_`, `%`)
//! and the escape character in a prefix never reach sibling prefixes, and
//! keys with NUL bytes are stored exactly.

use bento::{DriverOptions, Plugin};
use bento_testkit::{plugin_path, require, Service};

#[test]
fn clear_of_wildcard_prefixes_spares_siblings() {
    let Some(url) = require(Service::Postgres, "postgres clear escaping") else { return };
    let table = format!("bento_escape_{}", std::process::id());
    let plugin = Plugin::load(plugin_path("bento-driver-postgres")).expect("the postgres plugin loads");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("test runtime");
    runtime.block_on(async {
        let options = serde_json::json!({ "url": url, "table": table }).to_string();
        let root = plugin.create_driver(&options, DriverOptions::default()).await.expect("driver connects");
        for prefix in ["a_b", "a%b", "a\\b"] {
            for key in ["a_b:1", "a%b:1", "a\\b:1", "axb:1", "a_b", "a_bc:1"] {
                root.set(key, b"v".to_vec(), None).await.expect("set");
            }
            root.namespace(prefix).expect("namespace").clear().await.expect("clear");
            for key in ["a_b:1", "a%b:1", "a\\b:1", "axb:1", "a_b", "a_bc:1"] {
                let expected = key == format!("{prefix}:1");
                assert_eq!(
                    root.has(key).await.expect("has"),
                    !expected,
                    "after clearing {prefix:?}, key {key:?} should {}",
                    if expected { "be gone" } else { "remain" }
                );
            }
            root.clear().await.expect("clear all");
        }

        let nul_key = "nul\0key";
        root.set(nul_key, b"with nul".to_vec(), None).await.expect("a key with NUL is stored");
        assert_eq!(root.get(nul_key).await.expect("get").as_deref(), Some(&b"with nul"[..]));
        assert_eq!(root.get("nul").await.expect("get"), None, "the NUL is not a terminator");
        root.disconnect().await.expect("disconnect");
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("direct connection");
        tokio::spawn(connection);
        client.batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\"")).await.expect("drop the test table");
    });
}
