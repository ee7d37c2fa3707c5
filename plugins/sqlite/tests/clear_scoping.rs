//! `clear()` removes exactly the keys of its prefix: SQL wildcards in the
//! prefix match literally, case matters, siblings survive.

mod common;

use bento_plugin_api::CacheDriver;
use serde_json::json;

#[tokio::test]
async fn wildcard_prefixes_do_not_clear_siblings() {
    let directory = tempfile::tempdir().unwrap();
    let root = common::connect(json!({ "path": directory.path().join("c.db") }), "").await;
    for key in ["a_b:1", "a%b:1", "a\\b:1", "axb:1", "a_bc:1", "A_B:1", "a_b", "a_b:deep:2"] {
        root.set(key, key.as_bytes().to_vec(), None).await.unwrap();
    }
    root.namespace("a_b").unwrap().clear().await.unwrap();
    root.namespace("a%b").unwrap().clear().await.unwrap();
    root.namespace("a\\b").unwrap().clear().await.unwrap();
    for gone in ["a_b:1", "a%b:1", "a\\b:1", "a_b:deep:2"] {
        assert_eq!(root.get(gone).await.unwrap(), None, "{gone}");
    }
    for kept in ["axb:1", "a_bc:1", "A_B:1", "a_b"] {
        assert_eq!(root.get(kept).await.unwrap(), Some(kept.as_bytes().to_vec()), "{kept}");
    }
}

#[tokio::test]
async fn clear_is_case_sensitive_and_exact() {
    let directory = tempfile::tempdir().unwrap();
    let root = common::connect(json!({ "path": directory.path().join("c.db") }), "app").await;
    let users = root.namespace("users").unwrap();
    users.set("1", b"1".to_vec(), None).await.unwrap();
    root.set("USERS:1", b"upper".to_vec(), None).await.unwrap();
    root.set("usersAbc", b"sibling".to_vec(), None).await.unwrap();
    root.set("users;x", b"next byte".to_vec(), None).await.unwrap();
    users.clear().await.unwrap();
    assert_eq!(users.get("1").await.unwrap(), None);
    assert_eq!(root.get("USERS:1").await.unwrap(), Some(b"upper".to_vec()));
    assert_eq!(root.get("usersAbc").await.unwrap(), Some(b"sibling".to_vec()));
    assert_eq!(root.get("users;x").await.unwrap(), Some(b"next byte".to_vec()));
}
