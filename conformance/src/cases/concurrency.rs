//! Concurrent use of one handle: atomic pull, mixed operations.

use super::{case, ensure, ensure_eq, v, Case, CaseContext, CaseResult, Failure, Op};
use bento::Driver;
use std::sync::Arc;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(pull_is_atomic, Prefixed, "of 32 concurrent pulls of one key exactly one gets the value"),
        case!(concurrent_mixed_operations_are_consistent, Prefixed, "1000 concurrent mixed operations on one handle"),
        case!(
            concurrent_sets_leave_one_written_value,
            Prefixed,
            "racing sets of one key leave one of the written values"
        ),
    ]
}

/// Concurrent pullers per key, and keys raced.
const PULLERS: usize = 32;
const PULL_ROUNDS: usize = 8;

async fn join_all<T: Send + 'static>(
    tasks: Vec<tokio::task::JoinHandle<Result<T, Failure>>>,
) -> Result<Vec<T>, Failure> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.map_err(|error| Failure::new(format!("a concurrent task failed: {error}")))??);
    }
    Ok(results)
}

async fn pull_is_atomic(cx: Arc<CaseContext>) -> CaseResult {
    let driver = cx.driver();
    for round in 0..PULL_ROUNDS {
        let key = format!("contended-{round}");
        driver.set(&key, v("prize"), None).await.op("set")?;
        let tasks = (0..PULLERS)
            .map(|_| {
                let driver = driver.clone();
                let key = key.clone();
                tokio::spawn(async move { driver.pull(&key).await.op("concurrent pull") })
            })
            .collect();
        let winners = join_all(tasks).await?.into_iter().filter(Option::is_some).count();
        ensure_eq!(winners, 1usize, "number of {PULLERS} concurrent pulls of {key:?} that got the value");
    }
    Ok(())
}

/// What task `index` does, on its own key `k<index>`, plus reads of a
/// key nobody writes.
async fn mixed_task(driver: Driver, index: usize) -> Result<(), Failure> {
    let key = format!("k{index}");
    let value = format!("value-{index}").into_bytes();
    match index % 5 {
        0 => {
            ensure!(driver.set(&key, value.clone(), None).await.op("set")?, "set({key:?}) returned false");
            ensure_eq!(driver.get(&key).await.op("get")?, Some(value), "get({key:?}) right after its set");
        }
        1 => {
            driver.set(&key, value.clone(), None).await.op("set")?;
            ensure_eq!(driver.has(&key).await.op("has")?, true, "has({key:?}) right after its set");
            ensure_eq!(driver.delete(&key).await.op("delete")?, true, "delete({key:?}) right after its set");
        }
        2 => {
            driver.set(&key, value.clone(), None).await.op("set")?;
            ensure_eq!(driver.pull(&key).await.op("pull")?, Some(value), "pull({key:?}) right after its set");
        }
        3 => {
            let shared = driver.get("stable").await.op("get(\"stable\")")?;
            ensure_eq!(shared, Some(v("stable")), "get(\"stable\") while others write");
        }
        _ => {
            let items = vec![bento_plugin_api::SetItem { key: key.clone(), value: value.clone(), ttl: None }];
            driver.set_many(items).await.op("set_many")?;
            let values = driver.get_many(&[key.as_str(), "stable"]).await.op("get_many")?;
            ensure_eq!(values, vec![Some(value), Some(v("stable"))], "get_many([{key:?}, \"stable\"]) after set_many");
        }
    }
    Ok(())
}

async fn concurrent_mixed_operations_are_consistent(cx: Arc<CaseContext>) -> CaseResult {
    const TASKS: usize = 1000;
    let driver = cx.driver();
    driver.set("stable", v("stable"), None).await.op("set(\"stable\")")?;
    let tasks = (0..TASKS).map(|index| tokio::spawn(mixed_task(driver.clone(), index))).collect();
    join_all(tasks).await?;
    let keys: Vec<String> = (0..TASKS).map(|index| format!("k{index}")).collect();
    let values = driver.get_many(&keys).await.op("get_many of every task's key")?;
    for (index, value) in values.into_iter().enumerate() {
        let expected = matches!(index % 5, 0 | 4).then(|| format!("value-{index}").into_bytes());
        ensure_eq!(value, expected, "final value of k{index} after the concurrent run");
    }
    Ok(())
}

async fn concurrent_sets_leave_one_written_value(cx: Arc<CaseContext>) -> CaseResult {
    const WRITERS: usize = 64;
    let driver = cx.driver();
    let tasks = (0..WRITERS)
        .map(|index| {
            let driver = driver.clone();
            tokio::spawn(
                async move { driver.set("shared", format!("writer-{index}").into_bytes(), None).await.op("set") },
            )
        })
        .collect();
    for stored in join_all(tasks).await? {
        ensure!(stored, "a concurrent set returned false");
    }
    let value = driver.get("shared").await.op("get")?;
    let written: Vec<Vec<u8>> = (0..WRITERS).map(|index| format!("writer-{index}").into_bytes()).collect();
    ensure!(
        value.as_ref().is_some_and(|value| written.contains(value)),
        "after {WRITERS} racing sets, get returned {} which no writer wrote",
        super::Show::show(&value)
    );
    Ok(())
}
