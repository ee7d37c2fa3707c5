//! The backend goes away mid-run: with the driver connected through a TCP
//! proxy that the test cuts, operations fail with `Connection` or
//! `Timeout` errors within the configured timeouts (no hang, no panic),
//! and succeed again once the proxy is restored.
//!
//! The cut / fail-fast / restore / recover loop is shared with the other
//! drivers: `bento_testkit::fault::cut_and_recover`. It runs with the
//! connection on the host's runtime (`io: "auto"`), on the plugin's own
//! (`io: "auto"` on a current-thread runtime, and `io: "plugin"`).

use bento::{DriverOptions, ErrorKind, Plugin};
use bento_testkit::fault::{self, FaultBounds};
use bento_testkit::{plugin_path, require, Service, TcpProxy};
use std::time::{Duration, Instant};

/// connection_timeout_ms + response_timeout_ms is 600 ms; this leaves a
/// generous margin for a loaded CI machine.
const FAILURE_BOUND: Duration = Duration::from_secs(3);
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

fn unique_prefix(test: &str) -> String {
    format!("bento-redis-fault-{test}-{}", std::process::id())
}

/// Cut and restore the proxy under a driver created and used on a runtime
/// built by `runtime`, with `"io": io`.
fn cut_and_recover(test: &str, io: &str, runtime: &mut tokio::runtime::Builder) {
    let Some(_) = require(Service::Redis, "redis fault test") else { return };
    let proxy = TcpProxy::start(&Service::Redis.address());
    let plugin = Plugin::load(plugin_path("bento-driver-redis")).expect("the redis plugin loads");
    let runtime = runtime.enable_all().build().expect("test runtime");
    runtime.block_on(async {
        let options = serde_json::json!({
            "url": format!("redis://{}", proxy.address()),
            "connection_timeout_ms": 300,
            "response_timeout_ms": 300,
            "io": io,
        })
        .to_string();
        let driver = plugin
            .create_driver(&options, DriverOptions::with_prefix(unique_prefix(test)))
            .await
            .expect("driver connects through the proxy");
        fault::cut_and_recover(
            &driver,
            &proxy,
            FaultBounds { failure: FAILURE_BOUND, recovery: RECOVERY_BOUND, concurrent: 32, pull: false },
        )
        .await;
        assert!(driver.set("k", b"after".to_vec(), None).await.expect("set after the restore"));
        assert_eq!(driver.get("k").await.expect("get after the restore").as_deref(), Some(&b"after"[..]));
        driver.clear().await.expect("clear after the restore");
        driver.disconnect().await.expect("disconnect");
    });
}

/// `io: "auto"` on a multi-thread runtime: the connection runs on the
/// host's runtime and the driver redials by itself.
#[test]
fn operations_fail_fast_while_the_backend_is_gone_and_recover_after() {
    cut_and_recover("cut-host", "auto", &mut tokio::runtime::Builder::new_multi_thread());
}

/// `io: "auto"` on a current-thread runtime, which the host does not lend:
/// the driver's own connection on the plugin runtime.
#[test]
fn recovers_on_a_current_thread_runtime() {
    cut_and_recover("cut-current", "auto", &mut tokio::runtime::Builder::new_current_thread());
}

/// `io: "plugin"`: redis-rs's `ConnectionManager` on the plugin runtime.
#[test]
fn recovers_with_plugin_io() {
    cut_and_recover("cut-plugin", "plugin", &mut tokio::runtime::Builder::new_multi_thread());
}

#[test]
fn connecting_to_a_dead_address_fails_with_a_connection_error_in_time() {
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let plugin = Plugin::load(plugin_path("bento-driver-redis")).expect("the redis plugin loads");
    let options = serde_json::json!({
        "url": format!("redis://127.0.0.1:{port}"),
        "connection_timeout_ms": 300,
        "response_timeout_ms": 300,
    })
    .to_string();
    let started = Instant::now();
    let result = futures::executor::block_on(plugin.create_driver(&options, DriverOptions::default()));
    let elapsed = started.elapsed();
    let Err(bento::Error::Driver(error)) = result else {
        panic!("nothing listens there, yet: {result:?}");
    };
    assert!(error.kind == ErrorKind::CONNECTION || error.kind == ErrorKind::TIMEOUT, "{error}");
    assert!(elapsed < Duration::from_secs(5), "connect took {elapsed:?} to fail");
}
