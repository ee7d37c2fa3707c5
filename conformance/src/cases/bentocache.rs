//! The cases of BentoCache's `registerCacheDriverTestSuite`, in Rust.

use super::{case, ensure, ensure_eq, expect_get, sleep_ms, v, Case, CaseContext, CaseResult, Op};
use bento::DriverOptions;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(get_returns_set_value, Prefixed, "get returns what set stored"),
        case!(get_missing_returns_none, Prefixed, "get of a key never set is None"),
        case!(set_overwrites_value, Prefixed, "a second set replaces the value"),
        case!(set_returns_true, Prefixed, "set returns true when it stored the value"),
        case!(set_with_ttl_expires, Prefixed, "an entry set with a TTL is gone after it"),
        case!(set_without_ttl_does_not_expire_early, Prefixed, "an entry without TTL outlives a short TTL"),
        case!(clear_removes_all_keys, Prefixed, "clear removes every key of the handle"),
        case!(clear_respects_prefix, Prefixed, "clear on one prefix keeps a sibling prefix's keys"),
        case!(clear_respects_prefix_across_drivers, Prefixed, "clear on one driver keeps another prefix's keys"),
        case!(delete_removes_key, Prefixed, "delete removes the key"),
        case!(delete_return_values, Prefixed, "delete returns true for an existing key, false for a missing one"),
        case!(delete_many_removes_keys, Prefixed, "delete_many removes every listed key and only those"),
        case!(delete_many_of_empty_list, Prefixed, "delete_many of [] is fine and returns 0"),
        case!(pull_returns_and_removes, Prefixed, "pull returns the value and removes the key"),
        case!(pull_missing_returns_none, Prefixed, "pull of a missing key is None"),
        case!(namespace_returns_new_handle, Prefixed, "namespace returns a working handle"),
        case!(namespace_isolated_from_root, Prefixed, "a key set on the root is not visible in a namespace"),
        case!(
            root_isolated_from_namespace,
            Prefixed,
            "a key set in a namespace is not visible under the same key on the root"
        ),
        case!(namespace_clear_clears_namespace, Prefixed, "namespace clear removes its keys, not the root's"),
        case!(root_clear_clears_namespaces, Prefixed, "root clear removes namespaced keys too"),
        case!(
            namespaced_keys_reachable_from_root,
            Prefixed,
            "root.get(\"users:1\") == root.namespace(\"users\").get(\"1\")"
        ),
        case!(nested_namespaces_join_with_colon, Prefixed, "root.namespace(\"a\").namespace(\"b\") stores under a:b:"),
        case!(namespace_clear_only_exact_prefix, Prefixed, "users.clear() keeps usersAbc's keys"),
    ]
}

async fn get_returns_set_value(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("key1", v("value1"), None).await.op("set(\"key1\")")?;
    expect_get(driver, "key1", Some(b"value1"), "after set").await
}

async fn get_missing_returns_none(cx: Arc<CaseContext>) -> CaseResult {
    expect_get(cx.driver(), "never-set", None, "of a key never set").await
}

async fn set_overwrites_value(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("key1", v("first"), None).await.op("set")?;
    driver.set("key1", v("second"), None).await.op("second set")?;
    expect_get(driver, "key1", Some(b"second"), "after overwriting").await
}

async fn set_returns_true(cx: Arc<CaseContext>) -> CaseResult {
    let stored = cx.driver().set("key1", v("value1"), None).await.op("set")?;
    ensure_eq!(stored, true, "set return value");
    let stored = cx.driver().set("key2", v("value2"), Some(Duration::from_secs(60))).await.op("set with ttl")?;
    ensure_eq!(stored, true, "set with a TTL return value");
    Ok(())
}

async fn set_with_ttl_expires(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("key1", v("value1"), Some(Duration::from_millis(200))).await.op("set with ttl 200 ms")?;
    expect_get(driver, "key1", Some(b"value1"), "right after set with a 200 ms TTL").await?;
    sleep_ms(500).await;
    expect_get(driver, "key1", None, "500 ms after set with a 200 ms TTL").await
}

async fn set_without_ttl_does_not_expire_early(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("forever", v("value"), None).await.op("set without ttl")?;
    driver.set("short", v("value"), Some(Duration::from_millis(100))).await.op("set with ttl")?;
    sleep_ms(300).await;
    expect_get(driver, "forever", Some(b"value"), "300 ms after set without TTL").await
}

async fn clear_removes_all_keys(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("key1", v("value1"), None).await.op("set")?;
    driver.set("key2", v("value2"), None).await.op("set")?;
    driver.clear().await.op("clear")?;
    expect_get(driver, "key1", None, "after clear").await?;
    expect_get(driver, "key2", None, "after clear").await
}

async fn clear_respects_prefix(cx: Arc<CaseContext>) -> CaseResult {
    let first = cx.driver().namespace("first").op("namespace(\"first\")")?;
    let second = cx.driver().namespace("second").op("namespace(\"second\")")?;
    first.set("key", v("first"), None).await.op("set on first")?;
    second.set("key", v("second"), None).await.op("set on second")?;
    first.clear().await.op("clear of first")?;
    expect_get(&first, "key", None, "on the cleared prefix").await?;
    expect_get(&second, "key", Some(b"second"), "on a sibling prefix after clear of another").await
}

async fn clear_respects_prefix_across_drivers(cx: Arc<CaseContext>) -> CaseResult {
    let first = cx.create_driver(DriverOptions::with_prefix(format!("{}:first", cx.prefix()))).await?;
    let second = cx.create_driver(DriverOptions::with_prefix(format!("{}:second", cx.prefix()))).await?;
    let result = async {
        first.set("key", v("first"), None).await.op("set on first driver")?;
        second.set("key", v("second"), None).await.op("set on second driver")?;
        first.clear().await.op("clear of first driver")?;
        expect_get(&first, "key", None, "on the cleared driver").await?;
        expect_get(&second, "key", Some(b"second"), "on another driver with a sibling prefix").await
    }
    .await;
    for driver in [&first, &second] {
        let _ = driver.clear().await;
        let _ = driver.disconnect().await;
    }
    result
}

async fn delete_removes_key(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("key1", v("value1"), None).await.op("set")?;
    driver.set("key2", v("value2"), None).await.op("set")?;
    driver.delete("key1").await.op("delete")?;
    expect_get(driver, "key1", None, "after delete").await?;
    expect_get(driver, "key2", Some(b"value2"), "of another key after delete").await
}

async fn delete_return_values(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("key1", v("value1"), None).await.op("set")?;
    ensure_eq!(driver.delete("key1").await.op("delete")?, true, "delete of an existing key");
    ensure_eq!(driver.delete("key1").await.op("second delete")?, false, "delete of a just-deleted key");
    ensure_eq!(driver.delete("never-set").await.op("delete")?, false, "delete of a key never set");
    Ok(())
}

async fn delete_many_removes_keys(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    for key in ["key1", "key2", "key3"] {
        driver.set(key, v(key), None).await.op(format_args!("set({key:?})"))?;
    }
    driver.delete_many(&["key1", "key2"]).await.op("delete_many")?;
    expect_get(driver, "key1", None, "after delete_many").await?;
    expect_get(driver, "key2", None, "after delete_many").await?;
    expect_get(driver, "key3", Some(b"key3"), "of a key not listed in delete_many").await
}

async fn delete_many_of_empty_list(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("key1", v("value1"), None).await.op("set")?;
    let removed = driver.delete_many(&[] as &[&str]).await.op("delete_many([])")?;
    ensure_eq!(removed, 0u64, "delete_many([]) count");
    expect_get(driver, "key1", Some(b"value1"), "after delete_many([])").await
}

async fn pull_returns_and_removes(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("key1", v("value1"), None).await.op("set")?;
    ensure_eq!(driver.pull("key1").await.op("pull")?, Some(v("value1")), "pull of an existing key");
    expect_get(driver, "key1", None, "after pull").await?;
    ensure_eq!(driver.pull("key1").await.op("second pull")?, None, "second pull of the same key");
    Ok(())
}

async fn pull_missing_returns_none(cx: Arc<CaseContext>) -> CaseResult {
    ensure_eq!(cx.driver().pull("never-set").await.op("pull")?, None, "pull of a key never set");
    Ok(())
}

async fn namespace_returns_new_handle(cx: Arc<CaseContext>) -> CaseResult {
    let namespace = cx.driver().namespace("users").op("namespace(\"users\")")?;
    namespace.set("1", v("ada"), None).await.op("set in namespace")?;
    expect_get(&namespace, "1", Some(b"ada"), "in the namespace after set").await?;
    ensure!(namespace.has("1").await.op("has in namespace")?, "has(\"1\") in the namespace is false after set");
    Ok(())
}

async fn namespace_isolated_from_root(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let namespace = root.namespace("users").op("namespace")?;
    root.set("key1", v("root"), None).await.op("set on root")?;
    expect_get(&namespace, "key1", None, "in a namespace, of a key set only on the root").await?;
    expect_get(root, "key1", Some(b"root"), "on the root").await
}

async fn root_isolated_from_namespace(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let namespace = root.namespace("users").op("namespace")?;
    namespace.set("key1", v("namespaced"), None).await.op("set in namespace")?;
    expect_get(root, "key1", None, "on the root, of a key set only in a namespace").await?;
    expect_get(&namespace, "key1", Some(b"namespaced"), "in the namespace").await
}

async fn namespace_clear_clears_namespace(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let namespace = root.namespace("users").op("namespace")?;
    root.set("key1", v("root"), None).await.op("set on root")?;
    namespace.set("key1", v("namespaced"), None).await.op("set in namespace")?;
    namespace.clear().await.op("namespace clear")?;
    expect_get(&namespace, "key1", None, "in the namespace after its clear").await?;
    expect_get(root, "key1", Some(b"root"), "on the root after a namespace clear").await
}

async fn root_clear_clears_namespaces(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let namespace = root.namespace("users").op("namespace")?;
    let nested = namespace.namespace("admins").op("nested namespace")?;
    root.set("key1", v("root"), None).await.op("set on root")?;
    namespace.set("key1", v("namespaced"), None).await.op("set in namespace")?;
    nested.set("key1", v("nested"), None).await.op("set in nested namespace")?;
    root.clear().await.op("root clear")?;
    expect_get(root, "key1", None, "on the root after root clear").await?;
    expect_get(&namespace, "key1", None, "in a namespace after root clear").await?;
    expect_get(&nested, "key1", None, "in a nested namespace after root clear").await
}

async fn namespaced_keys_reachable_from_root(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let users = root.namespace("users").op("namespace")?;
    users.set("1", v("ada"), None).await.op("set in namespace")?;
    expect_get(root, "users:1", Some(b"ada"), "on the root of a key set as namespace(\"users\").set(\"1\")").await?;
    root.set("users:2", v("grace"), None).await.op("set on root")?;
    expect_get(&users, "2", Some(b"grace"), "in namespace(\"users\") of a key set as root.set(\"users:2\")").await
}

async fn nested_namespaces_join_with_colon(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let nested = root.namespace("a").op("namespace")?.namespace("b").op("nested namespace")?;
    nested.set("k", v("nested"), None).await.op("set in nested namespace")?;
    expect_get(root, "a:b:k", Some(b"nested"), "on the root of a key set in namespace a, then b").await?;
    let direct = root.namespace("a:b").op("namespace(\"a:b\")")?;
    expect_get(&direct, "k", Some(b"nested"), "in namespace(\"a:b\")").await
}

async fn namespace_clear_only_exact_prefix(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let users = root.namespace("users").op("namespace(\"users\")")?;
    let users_abc = root.namespace("usersAbc").op("namespace(\"usersAbc\")")?;
    users.set("1", v("user"), None).await.op("set in users")?;
    users_abc.set("1", v("usersAbc"), None).await.op("set in usersAbc")?;
    root.set("usersX", v("root"), None).await.op("set usersX on root")?;
    users.clear().await.op("users clear")?;
    expect_get(&users, "1", None, "in users after its clear").await?;
    expect_get(&users_abc, "1", Some(b"usersAbc"), "in usersAbc after users.clear()").await?;
    expect_get(root, "usersX", Some(b"root"), "root key usersX after users.clear()").await
}
