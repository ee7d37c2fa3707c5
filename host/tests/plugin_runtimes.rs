//! A plugin that uses tokio internally (timers, spawned tasks) works whatever
//! the host runs: a current-thread runtime, a multi-thread runtime, two
//! runtimes at once, or no runtime at all (a blocking call). Panics inside
//! the plugin come back as `Panicked` errors and the host keeps running.

use bento::{Driver, DriverOptions, ErrorKind, Plugin};
use bento_testkit::plugin_path;
use std::time::Duration;

async fn fixture(options: &str) -> Driver {
    let plugin = Plugin::load(plugin_path("bento-fixture-plugin")).unwrap();
    plugin.create_driver(options, DriverOptions::with_prefix("rt")).await.unwrap()
}

async fn round_trip(driver: &Driver, key: &str) {
    assert!(driver.set(key, b"value".to_vec(), Some(Duration::from_secs(60))).await.unwrap());
    assert_eq!(driver.get(key).await.unwrap(), Some(b"value".to_vec()));
    assert!(driver.delete(key).await.unwrap());
}

#[test]
fn current_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let driver = fixture("{}").await;
        round_trip(&driver, "current").await;
    });
}

#[test]
fn multi_thread_runtime_with_concurrent_callers() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let driver = fixture("{}").await;
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let driver = driver.clone();
                tokio::spawn(async move { round_trip(&driver, &format!("k{i}")).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn two_runtimes_share_one_driver() {
    let first = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let second = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let driver = first.block_on(fixture("{}"));
    let other = driver.clone();
    let handle = std::thread::spawn(move || second.block_on(round_trip(&other, "second")));
    first.block_on(round_trip(&driver, "first"));
    handle.join().unwrap();
}

#[test]
fn plain_thread_with_a_blocking_call() {
    let driver = futures::executor::block_on(fixture("{}"));
    futures::executor::block_on(round_trip(&driver, "blocking"));
}

#[tokio::test]
async fn a_panic_in_an_operation_becomes_an_error() {
    let driver = fixture(r#"{"panic_in":"get"}"#).await;
    let error = driver.get("k").await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::PANICKED);
    assert!(error.message.contains("fixture panics in get"), "{error}");
    // The driver and the host keep working.
    assert!(driver.set("k", vec![1], None).await.unwrap());
}

#[tokio::test]
async fn a_panic_while_connecting_becomes_an_error() {
    let plugin = Plugin::load(plugin_path("bento-fixture-plugin")).unwrap();
    let error = plugin.create_driver(r#"{"panic_in":"connect"}"#, DriverOptions::default()).await.unwrap_err();
    assert!(error.to_string().contains("panicked"), "{error}");
}

#[tokio::test]
async fn a_panic_in_namespace_becomes_an_error() {
    let driver = fixture(r#"{"panic_in":"namespace"}"#).await;
    let error = driver.namespace("users").unwrap_err();
    assert_eq!(error.kind, ErrorKind::PANICKED);
}

#[tokio::test]
async fn a_hanging_operation_can_be_abandoned() {
    let driver = fixture(r#"{"hang_in":"get"}"#).await;
    let outcome = tokio::time::timeout(Duration::from_millis(200), driver.get("k")).await;
    assert!(outcome.is_err(), "the hanging get must not complete");
    // Dropping the abandoned future left the driver usable.
    assert!(driver.set("k", vec![1], None).await.unwrap());
}
