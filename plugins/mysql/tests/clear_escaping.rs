//! `clear()` matches its prefix literally: SQL `LIKE` wildcards (`_`, `%`)
//! and the escape character in a prefix never reach sibling prefixes; keys
//! longer than the index limit are stored whole, and over-long keys are
//! refused rather than truncated.

use bento::{DriverOptions, ErrorKind, Plugin};
use bento_testkit::{plugin_path, require, Service};
use mysql_async::prelude::Queryable;

#[test]
fn clear_of_wildcard_prefixes_spares_siblings() {
    let Some(url) = require(Service::Mysql, "mysql clear escaping") else { return };
    let table = format!("bento_escape_{}", std::process::id());
    let plugin = Plugin::load(plugin_path("bento-driver-mysql")).expect("the mysql plugin loads");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("test runtime");
    runtime.block_on(async {
        let options = serde_json::json!({ "url": url, "table": table }).to_string();
        let root = plugin.create_driver(&options, DriverOptions::default()).await.expect("driver connects");
        let keys = ["a_b:1", "a%b:1", "a!b:1", "a\\b:1", "axb:1", "a_b", "a_bc:1"];
        for prefix in ["a_b", "a%b", "a!b", "a\\b"] {
            for key in keys {
                root.set(key, b"v".to_vec(), None).await.expect("set");
            }
            root.namespace(prefix).expect("namespace").clear().await.expect("clear");
            for key in keys {
                let cleared = key == format!("{prefix}:1");
                assert_eq!(
                    root.has(key).await.expect("has"),
                    !cleared,
                    "after clearing {prefix:?}, key {key:?} should {}",
                    if cleared { "be gone" } else { "remain" }
                );
            }
            root.clear().await.expect("clear all");
        }

        // Two 3000-byte keys sharing their first 2999 bytes: both stored whole.
        let (long_a, long_b) = (format!("{}a", "k".repeat(2999)), format!("{}b", "k".repeat(2999)));
        root.set(&long_a, b"a".to_vec(), None).await.expect("set a long key");
        root.set(&long_b, b"b".to_vec(), None).await.expect("set a sibling long key");
        assert_eq!(root.get(&long_a).await.expect("get").as_deref(), Some(&b"a"[..]));
        assert_eq!(root.get(&long_b).await.expect("get").as_deref(), Some(&b"b"[..]));
        let error = root.set(&"k".repeat(5000), b"x".to_vec(), None).await.expect_err("a 5000-byte key is refused");
        assert_eq!(error.kind, ErrorKind::INVALID_KEY, "{error}");
        root.disconnect().await.expect("disconnect");
    });
    runtime.block_on(async {
        let mut conn = mysql_async::Conn::from_url(&url).await.expect("direct connection");
        conn.query_drop(format!("DROP TABLE IF EXISTS `{table}`")).await.expect("drop the test table");
        conn.disconnect().await.expect("close the direct connection");
    });
}
