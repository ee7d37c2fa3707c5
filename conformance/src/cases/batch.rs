//! The batch methods: `get_many`, `set_many`, `delete_many`.

use super::{case, ensure_eq, expect_get, sleep_ms, v, Case, CaseContext, CaseResult, Op};
use bento_plugin_api::SetItem;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(get_many_returns_values_in_order, Prefixed, "get_many answers in the order asked, None for missing"),
        case!(get_many_of_empty_list, Prefixed, "get_many of [] returns []"),
        case!(get_many_skips_expired, Prefixed, "get_many returns None for an expired entry"),
        case!(set_many_stores_every_item, Prefixed, "set_many stores every item and returns true"),
        case!(set_many_applies_per_item_ttl, Prefixed, "set_many honours each item's own TTL"),
        case!(set_many_of_empty_list, Prefixed, "set_many of [] is fine"),
        case!(delete_many_counts_existing_keys, Prefixed, "delete_many counts only keys that existed and were live"),
        case!(batch_methods_respect_namespace, Prefixed, "batch methods on a namespace use its prefix"),
    ]
}

fn item(key: &str, value: &str, ttl: Option<Duration>) -> SetItem {
    SetItem { key: key.to_string(), value: v(value), ttl }
}

async fn get_many_returns_values_in_order(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    for key in ["a", "b", "c"] {
        driver.set(key, v(key), None).await.op(format_args!("set({key:?})"))?;
    }
    let values = driver.get_many(&["c", "missing", "a", "b", "a"]).await.op("get_many")?;
    let expected = vec![Some(v("c")), None, Some(v("a")), Some(v("b")), Some(v("a"))];
    ensure_eq!(values, expected, "get_many([c, missing, a, b, a])");
    Ok(())
}

async fn get_many_of_empty_list(cx: Arc<CaseContext>) -> CaseResult {
    let values = cx.driver().get_many(&[] as &[&str]).await.op("get_many([])")?;
    ensure_eq!(values, Vec::<Option<Vec<u8>>>::new(), "get_many([])");
    Ok(())
}

async fn get_many_skips_expired(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("expiring", v("value"), Some(Duration::from_millis(100))).await.op("set with ttl 100 ms")?;
    driver.set("live", v("live"), None).await.op("set")?;
    sleep_ms(300).await;
    let values = driver.get_many(&["expiring", "live"]).await.op("get_many")?;
    ensure_eq!(values, vec![None, Some(v("live"))], "get_many([expired, live])");
    Ok(())
}

async fn set_many_stores_every_item(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("b", v("old"), None).await.op("set")?;
    let items = vec![item("a", "1", None), item("b", "2", None), item("c", "", None)];
    ensure_eq!(driver.set_many(items).await.op("set_many")?, true, "set_many return value");
    let values = driver.get_many(&["a", "b", "c"]).await.op("get_many")?;
    ensure_eq!(values, vec![Some(v("1")), Some(v("2")), Some(Vec::new())], "get_many after set_many");
    Ok(())
}

async fn set_many_applies_per_item_ttl(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    let items = vec![
        item("short", "short", Some(Duration::from_millis(100))),
        item("forever", "forever", None),
        item("long", "long", Some(Duration::from_secs(60))),
    ];
    driver.set_many(items).await.op("set_many")?;
    expect_get(driver, "short", Some(b"short"), "right after set_many with a 100 ms TTL").await?;
    sleep_ms(300).await;
    let values = driver.get_many(&["short", "forever", "long"]).await.op("get_many")?;
    ensure_eq!(
        values,
        vec![None, Some(v("forever")), Some(v("long"))],
        "300 ms after set_many with TTLs 100 ms/none/60 s"
    );
    Ok(())
}

async fn set_many_of_empty_list(cx: Arc<CaseContext>) -> CaseResult {
    let stored = cx.driver().set_many(Vec::new()).await.op("set_many([])")?;
    ensure_eq!(stored, true, "set_many([]) return value (all of no items were stored)");
    Ok(())
}

async fn delete_many_counts_existing_keys(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("a", v("a"), None).await.op("set")?;
    driver.set("b", v("b"), None).await.op("set")?;
    driver.set("c", v("c"), None).await.op("set")?;
    driver.set("expiring", v("x"), Some(Duration::from_millis(100))).await.op("set with ttl 100 ms")?;
    sleep_ms(300).await;
    let removed = driver.delete_many(&["a", "missing", "b", "expiring"]).await.op("delete_many")?;
    ensure_eq!(removed, 2u64, "delete_many([a, missing, b, expired]) count");
    let removed = driver.delete_many(&["a", "b"]).await.op("second delete_many")?;
    ensure_eq!(removed, 0u64, "delete_many of already deleted keys");
    expect_get(driver, "c", Some(b"c"), "of a key not listed in delete_many").await
}

async fn batch_methods_respect_namespace(cx: Arc<CaseContext>) -> CaseResult {
    let root = cx.driver();
    let namespace = root.namespace("ns").op("namespace")?;
    root.set("a", v("root"), None).await.op("set on root")?;
    namespace.set_many(vec![item("a", "ns-a", None), item("b", "ns-b", None)]).await.op("set_many in namespace")?;
    let values = root.get_many(&["a", "ns:a", "ns:b", "b"]).await.op("get_many on root")?;
    ensure_eq!(
        values,
        vec![Some(v("root")), Some(v("ns-a")), Some(v("ns-b")), None],
        "root get_many after namespaced set_many"
    );
    ensure_eq!(
        namespace.delete_many(&["a", "b"]).await.op("delete_many in namespace")?,
        2u64,
        "namespaced delete_many count"
    );
    expect_get(root, "a", Some(b"root"), "on the root after a namespaced delete_many").await
}
