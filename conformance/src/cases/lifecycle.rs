//! Disconnect: idempotent, and every later call answers `Disconnected`
//! promptly (no hang, no panic). Each case runs on its own driver instance.

use super::{case, ensure, v, Case, CaseContext, CaseResult, Failure, Op};
use bento::{Driver, DriverError, ErrorKind};
use bento_plugin_api::SetItem;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(disconnect_is_idempotent, Prefixed, "a second disconnect succeeds"),
        case!(calls_after_disconnect_return_disconnected, Prefixed, "every call after disconnect returns Disconnected"),
        case!(namespace_calls_after_disconnect_return_disconnected, Prefixed, "a namespace handle is disconnected too"),
    ]
}

/// How long one call after disconnect may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

async fn disconnect_is_idempotent(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("key", v("value"), None).await.op("set")?;
    driver.disconnect().await.op("first disconnect")?;
    tokio::time::timeout(CALL_TIMEOUT, driver.disconnect())
        .await
        .map_err(|_| Failure::new(format!("a second disconnect did not return within {CALL_TIMEOUT:?}")))?
        .op("second disconnect")?;
    Ok(())
}

type Call = (&'static str, BoxFuture<'static, Result<(), DriverError>>);

/// One call of every method on `driver`.
fn every_call(driver: &Driver) -> Vec<Call> {
    let d = driver.clone();
    let mut calls: Vec<Call> = Vec::new();
    calls.push(("get", Box::pin(async move { d.get("key").await.map(drop) })));
    let d = driver.clone();
    calls.push(("set", Box::pin(async move { d.set("key", v("value"), None).await.map(drop) })));
    let d = driver.clone();
    calls.push(("has", Box::pin(async move { d.has("key").await.map(drop) })));
    let d = driver.clone();
    calls.push(("delete", Box::pin(async move { d.delete("key").await.map(drop) })));
    let d = driver.clone();
    calls.push(("pull", Box::pin(async move { d.pull("key").await.map(drop) })));
    let d = driver.clone();
    calls.push(("clear", Box::pin(async move { d.clear().await })));
    let d = driver.clone();
    calls.push(("prune", Box::pin(async move { d.prune().await })));
    let d = driver.clone();
    calls.push(("get_many", Box::pin(async move { d.get_many(&["key"]).await.map(drop) })));
    let d = driver.clone();
    let item = SetItem { key: "key".to_string(), value: v("value"), ttl: None };
    calls.push(("set_many", Box::pin(async move { d.set_many(vec![item]).await.map(drop) })));
    let d = driver.clone();
    calls.push(("delete_many", Box::pin(async move { d.delete_many(&["key"]).await.map(drop) })));
    calls
}

async fn expect_disconnected(driver: &Driver, handle: &str) -> CaseResult {
    for (method, call) in every_call(driver) {
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Err(_) => {
                return Err(Failure::new(format!(
                    "{handle}.{method}() after disconnect did not return within {CALL_TIMEOUT:?}"
                )))
            }
            Ok(Ok(())) => {
                return Err(Failure::new(format!(
                    "{handle}.{method}() after disconnect succeeded; expected a Disconnected error"
                )))
            }
            Ok(Err(error)) => ensure!(
                error.kind == ErrorKind::DISCONNECTED,
                "{handle}.{method}() after disconnect returned {error}; expected a Disconnected error"
            ),
        }
    }
    Ok(())
}

async fn calls_after_disconnect_return_disconnected(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    driver.set("key", v("value"), None).await.op("set")?;
    driver.disconnect().await.op("disconnect")?;
    expect_disconnected(driver, "root").await
}

async fn namespace_calls_after_disconnect_return_disconnected(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    let namespace = driver.namespace("ns").op("namespace")?;
    namespace.set("key", v("value"), None).await.op("set in namespace")?;
    driver.disconnect().await.op("disconnect of the root")?;
    expect_disconnected(&namespace, "namespace").await?;
    // A namespace asked for after disconnect may be refused; if granted, it
    // must be disconnected too.
    match driver.namespace("later") {
        Err(error) => {
            ensure!(
                error.kind == ErrorKind::DISCONNECTED,
                "namespace() after disconnect returned {error}; expected Disconnected or a disconnected handle"
            );
            Ok(())
        }
        Ok(later) => expect_disconnected(&later, "namespace created after disconnect").await,
    }
}
