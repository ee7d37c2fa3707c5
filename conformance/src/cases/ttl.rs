//! TTL precision and how expired entries look through every method. Timing
//! margins are generous (a 100 ms entry must be gone by 300 ms); drivers
//! with second-granular backends may round a TTL up, never down.

use super::{case, ensure, ensure_eq, expect_get, sleep_ms, v, Case, CaseContext, CaseResult, Op};
use bento::DriverOptions;
use bento_plugin_api::SetItem;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(ttl_100ms_entry_gone_by_300ms, Prefixed, "a 100 ms entry is present at once and gone by 300 ms"),
        case!(ttl_2s_entry_present_at_1s, Prefixed, "a 2 s entry is still there at 1 s"),
        case!(ttl_1500ms_entry_present_at_1100ms, Prefixed, "a 1.5 s TTL is not rounded down to 1 s"),
        case!(set_overwrite_replaces_ttl, Prefixed, "overwriting an entry without TTL removes the old expiry"),
        case!(overwrite_short_ttl_with_long, Prefixed, "a 100 ms entry overwritten with 60 s is there at 300 ms"),
        case!(
            overwrite_forever_with_short_ttl,
            Prefixed,
            "an entry without TTL overwritten with 100 ms is gone by 300 ms"
        ),
        case!(overwrite_long_ttl_with_short, Prefixed, "a 60 s entry overwritten with 100 ms is gone by 300 ms"),
        case!(ten_year_ttl_works, Prefixed, "a 10-year TTL stores the entry (no overflow, no panic)"),
        case!(
            ttl_past_u32_milliseconds_does_not_wrap,
            Prefixed,
            "a TTL of 2^32 ms + 100 ms (49.7 days) is no 100 ms TTL"
        ),
        case!(
            default_ttl_applies_to_set_without_ttl,
            Prefixed,
            "with a default TTL of 100 ms, set(.., None) is gone by 300 ms"
        ),
        case!(has_agrees_with_get, Prefixed, "has is true iff get returns a value: present, missing, expired, deleted"),
        case!(delete_missing_returns_false, Prefixed, "delete of a key never set returns false"),
        case!(delete_expired_returns_false, Prefixed, "delete of an expired key returns false"),
        case!(pull_expired_returns_none, Prefixed, "pull of an expired key returns None"),
        case!(prune_removes_expired_keeps_live, Prefixed, "prune keeps live entries, expired ones stay gone"),
    ]
}

fn ms(ms: u64) -> Option<Duration> {
    Some(Duration::from_millis(ms))
}

async fn ttl_100ms_entry_gone_by_300ms(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("short", v("value"), ms(100)).await.op("set with ttl 100 ms")?;
    expect_get(driver, "short", Some(b"value"), "right after set with a 100 ms TTL").await?;
    sleep_ms(300).await;
    expect_get(driver, "short", None, "300 ms after set with a 100 ms TTL").await
}

async fn ttl_2s_entry_present_at_1s(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("two-seconds", v("value"), ms(2000)).await.op("set with ttl 2 s")?;
    sleep_ms(1000).await;
    expect_get(driver, "two-seconds", Some(b"value"), "1 s after set with a 2 s TTL").await
}

async fn ttl_1500ms_entry_present_at_1100ms(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("one-and-a-half", v("value"), ms(1500)).await.op("set with ttl 1500 ms")?;
    sleep_ms(1100).await;
    expect_get(driver, "one-and-a-half", Some(b"value"), "1.1 s after set with a 1.5 s TTL (rounded down?)").await
}

async fn set_overwrite_replaces_ttl(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("key", v("first"), ms(100)).await.op("set with ttl 100 ms")?;
    driver.set("key", v("second"), None).await.op("overwrite without ttl")?;
    sleep_ms(300).await;
    expect_get(driver, "key", Some(b"second"), "300 ms after overwriting a 100 ms entry without TTL").await
}

/// Set `key` with `first`, overwrite it with `second`, wait 300 ms and
/// expect it present or gone.
async fn overwrite_then_check(
    cx: &CaseContext,
    first: Option<Duration>,
    second: Option<Duration>,
    present: bool,
) -> CaseResult {
    let driver = cx.driver();
    driver.set("key", v("first"), first).await.op(format_args!("set with ttl {first:?}"))?;
    driver.set("key", v("second"), second).await.op(format_args!("overwrite with ttl {second:?}"))?;
    sleep_ms(300).await;
    let why = format!("300 ms after a set with ttl {first:?} was overwritten with ttl {second:?}");
    expect_get(driver, "key", present.then_some(b"second".as_slice()), &why).await
}

async fn overwrite_short_ttl_with_long(cx: Arc<CaseContext>) -> CaseResult {
    overwrite_then_check(&cx, ms(100), Some(Duration::from_secs(60)), true).await
}

async fn overwrite_forever_with_short_ttl(cx: Arc<CaseContext>) -> CaseResult {
    overwrite_then_check(&cx, None, ms(100), false).await
}

async fn overwrite_long_ttl_with_short(cx: Arc<CaseContext>) -> CaseResult {
    overwrite_then_check(&cx, Some(Duration::from_secs(60)), ms(100), false).await
}

async fn ten_year_ttl_works(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    let ten_years = Some(Duration::from_secs(10 * 365 * 24 * 3600));
    ensure!(driver.set("decade", v("value"), ten_years).await.op("set with a 10-year ttl")?, "set returned false");
    let item = SetItem { key: "decade-batch".to_string(), value: v("batch"), ttl: ten_years };
    driver.set_many(vec![item]).await.op("set_many with a 10-year ttl")?;
    expect_get(driver, "decade", Some(b"value"), "after set with a 10-year TTL").await?;
    expect_get(driver, "decade-batch", Some(b"batch"), "after set_many with a 10-year TTL").await?;
    ensure!(driver.has("decade").await.op("has")?, "has of an entry with a 10-year TTL is false");
    Ok(())
}

async fn ttl_past_u32_milliseconds_does_not_wrap(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    // A TTL held in a u32 of milliseconds wraps to 100 ms.
    let ttl = Duration::from_millis(u64::from(u32::MAX) + 1 + 100);
    driver.set("long", v("value"), Some(ttl)).await.op("set with a 49.7-day ttl")?;
    sleep_ms(300).await;
    expect_get(driver, "long", Some(b"value"), "300 ms after set with a TTL of 2^32 ms + 100 ms (wrapped?)").await
}

async fn default_ttl_applies_to_set_without_ttl(cx: Arc<CaseContext>) -> CaseResult {
    let options = DriverOptions { default_ttl: ms(100), prefix: format!("{}:default-ttl", cx.prefix()) };
    let driver = cx.create_driver(options).await?;
    let result = async {
        let namespace = driver.namespace("ns").op("namespace")?;
        driver.set("none", v("value"), None).await.op("set without ttl")?;
        driver.set("explicit", v("value"), Some(Duration::from_secs(60))).await.op("set with ttl 60 s")?;
        let item = SetItem { key: "batch".to_string(), value: v("value"), ttl: None };
        driver.set_many(vec![item]).await.op("set_many without ttl")?;
        namespace.set("none", v("value"), None).await.op("set without ttl in a namespace")?;
        expect_get(&driver, "none", Some(b"value"), "right after set(.., None) with a 100 ms default TTL").await?;
        sleep_ms(300).await;
        let why = "300 ms after set(.., None) on a driver created with a 100 ms default TTL";
        expect_get(&driver, "none", None, why).await?;
        expect_get(&driver, "batch", None, "300 ms after set_many without ttl, with a 100 ms default TTL").await?;
        expect_get(&namespace, "none", None, "in a namespace, 300 ms after set(.., None), 100 ms default TTL").await?;
        expect_get(&driver, "explicit", Some(b"value"), "300 ms after set with an explicit 60 s TTL").await
    }
    .await;
    let _ = driver.disconnect().await;
    result
}

async fn has_agrees_with_get(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("present", v("value"), None).await.op("set")?;
    driver.set("expiring", v("value"), ms(100)).await.op("set with ttl 100 ms")?;
    driver.set("deleted", v("value"), None).await.op("set")?;
    driver.delete("deleted").await.op("delete")?;
    driver.set("empty", Vec::new(), None).await.op("set of an empty value")?;
    sleep_ms(300).await;
    for (key, expected) in
        [("present", true), ("missing", false), ("expiring", false), ("deleted", false), ("empty", true)]
    {
        let has = driver.has(key).await.op(format_args!("has({key:?})"))?;
        let get = driver.get(key).await.op(format_args!("get({key:?})"))?;
        ensure!(has == get.is_some(), "has({key:?}) is {has} but get returned {}", super::Show::show(&get));
        ensure_eq!(has, expected, "has({key:?})");
    }
    Ok(())
}

async fn delete_missing_returns_false(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    ensure_eq!(driver.delete("never-set").await.op("delete")?, false, "delete of a key never set");
    let namespace = driver.namespace("ns").op("namespace")?;
    ensure_eq!(namespace.delete("never-set").await.op("delete")?, false, "delete in a namespace of a key never set");
    Ok(())
}

async fn delete_expired_returns_false(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("expiring", v("value"), ms(100)).await.op("set with ttl 100 ms")?;
    sleep_ms(300).await;
    ensure_eq!(driver.delete("expiring").await.op("delete")?, false, "delete of a key expired 200 ms ago");
    Ok(())
}

async fn pull_expired_returns_none(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("expiring", v("value"), ms(100)).await.op("set with ttl 100 ms")?;
    sleep_ms(300).await;
    ensure_eq!(driver.pull("expiring").await.op("pull")?, None, "pull of a key expired 200 ms ago");
    Ok(())
}

async fn prune_removes_expired_keeps_live(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    let namespace = driver.namespace("ns").op("namespace")?;
    driver.set("expiring", v("value"), ms(100)).await.op("set with ttl 100 ms")?;
    driver.set("forever", v("forever"), None).await.op("set without ttl")?;
    driver.set("long", v("long"), Some(Duration::from_secs(60))).await.op("set with ttl 60 s")?;
    namespace.set("forever", v("namespaced"), None).await.op("set in namespace")?;
    sleep_ms(300).await;
    driver.prune().await.op("prune")?;
    expect_get(driver, "expiring", None, "after prune, of an expired entry").await?;
    ensure!(!driver.has("expiring").await.op("has")?, "has of an expired entry is true after prune");
    expect_get(driver, "forever", Some(b"forever"), "after prune, of an entry without TTL").await?;
    expect_get(driver, "long", Some(b"long"), "after prune, of an entry with a 60 s TTL").await?;
    expect_get(&namespace, "forever", Some(b"namespaced"), "after prune, of a namespaced entry").await?;
    namespace.prune().await.op("prune on a namespace")?;
    expect_get(driver, "forever", Some(b"forever"), "after a namespace prune, of a root entry").await
}
