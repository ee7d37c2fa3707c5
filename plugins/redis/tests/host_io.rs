//! The connection on the host's runtime (`io: "auto"`), where that runtime
//! comes and goes: a runtime shutting down under the connection, requests
//! from plain threads, and the point of it all — requests that do not wake
//! the plugin's own threads.

use bento::{Driver, DriverOptions, Plugin};
#[cfg(target_os = "linux")]
use bento_testkit::threads::plugin_thread_switches;
use bento_testkit::{plugin_path, require, Service};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// A request after a redial must not wait much longer than one round trip
/// and one dial; generous for a loaded CI machine.
const BOUND: Duration = Duration::from_secs(3);

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("test runtime")
}

fn unique_prefix(test: &str) -> String {
    format!("bento-redis-host-io-{test}-{}", std::process::id())
}

fn create(runtime: &Runtime, url: &str, io: &str, test: &str) -> Driver {
    let plugin = Plugin::load(plugin_path("bento-driver-redis")).expect("the redis plugin loads");
    let options = serde_json::json!({
        "url": url,
        "connection_timeout_ms": 500,
        "response_timeout_ms": 500,
        "io": io,
    })
    .to_string();
    runtime.block_on(plugin.create_driver(&options, DriverOptions::with_prefix(unique_prefix(test)))).expect("driver")
}

fn get_within_bound(what: &str, get: impl FnOnce() -> Result<Option<Vec<u8>>, bento_plugin_api::DriverError>) {
    let started = Instant::now();
    let value = get().unwrap_or_else(|error| panic!("{what}: {error}"));
    assert_eq!(value.as_deref(), Some(&b"v"[..]), "{what}");
    assert!(started.elapsed() < BOUND, "{what} took {:?}", started.elapsed());
}

#[test]
fn the_next_request_redials_when_the_runtime_under_the_connection_shuts_down() {
    let Some(url) = require(Service::Redis, "redis host I/O test") else { return };
    let first = multi_thread();
    let driver = create(&first, &url, "auto", "shutdown");
    first.block_on(driver.set("k", b"v".to_vec(), None)).expect("set");
    // The connection task lives on `first`: shutting it down drops it.
    drop(first);
    let second = multi_thread();
    get_within_bound("get on a new runtime", || second.block_on(driver.get("k")));
    get_within_bound("get again", || second.block_on(driver.get("k")));
    second.block_on(driver.clear()).expect("clear");
}

#[test]
fn requests_from_plain_threads_work_with_or_without_a_live_host_runtime() {
    let Some(url) = require(Service::Redis, "redis host I/O test") else { return };
    let runtime = multi_thread();
    let driver = create(&runtime, &url, "auto", "plain");
    runtime.block_on(driver.set("k", b"v".to_vec(), None)).expect("set");
    // The connection lives on `runtime`, which keeps running: a plain
    // thread uses it.
    let plain = driver.clone();
    std::thread::spawn(move || get_within_bound("plain thread", || futures::executor::block_on(plain.get("k"))))
        .join()
        .expect("plain thread");
    // Without it, a plain thread redials on the plugin's runtime.
    drop(runtime);
    let plain = driver.clone();
    std::thread::spawn(move || {
        get_within_bound("plain thread after the shutdown", || futures::executor::block_on(plain.get("k")));
        futures::executor::block_on(plain.clear()).expect("clear");
    })
    .join()
    .expect("plain thread");
}

/// How often the plugin's threads woke up during `requests` sequential
/// `get`s of a driver with `"io": io`.
#[cfg(target_os = "linux")]
fn plugin_wakeups(url: &str, io: &str, requests: usize) -> u64 {
    let runtime = multi_thread();
    let driver = create(&runtime, url, io, &format!("wakeups-{io}"));
    runtime.block_on(async {
        driver.set("k", b"v".to_vec(), None).await.expect("set");
        for _ in 0..10 {
            driver.get("k").await.expect("warm-up get");
        }
        let before = plugin_thread_switches();
        for _ in 0..requests {
            driver.get("k").await.expect("get");
        }
        let wakeups = plugin_thread_switches() - before;
        driver.clear().await.expect("clear");
        wakeups
    })
}

#[cfg(target_os = "linux")]
#[test]
fn requests_on_the_host_runtime_do_not_wake_the_plugin_threads() {
    let Some(url) = require(Service::Redis, "redis host I/O test") else { return };
    const REQUESTS: usize = 500;
    let on_plugin = plugin_wakeups(&url, "plugin", REQUESTS);
    let on_host = plugin_wakeups(&url, "auto", REQUESTS);
    eprintln!("plugin-thread wake-ups for {REQUESTS} gets: io=plugin {on_plugin}, io=auto {on_host}");
    // Each request wakes a plugin thread on the plugin runtime; on the
    // host's, only the plugin's timer wheel may (a few times a second at
    // most). Other tests of this binary may wake them meanwhile, hence the
    // margin.
    assert!(on_plugin >= REQUESTS as u64 / 2, "io=plugin: only {on_plugin} plugin-thread wake-ups for {REQUESTS} gets");
    assert!(on_host * 5 < on_plugin, "io=auto: {on_host} plugin-thread wake-ups vs {on_plugin} with io=plugin");
}
