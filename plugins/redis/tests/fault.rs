//! The backend goes away mid-run: with the driver connected through a TCP
//! proxy that the test cuts, operations fail with `Connection` or
//! `Timeout` errors within the configured timeouts (no hang, no panic),
//! and succeed again once the proxy is restored.

use bento::{DriverError, DriverOptions, ErrorKind, Plugin};
use bento_testkit::{plugin_path, require, Service, TcpProxy};
use std::time::{Duration, Instant};

/// connection_timeout_ms + response_timeout_ms is 600 ms; this leaves a
/// generous margin for a loaded CI machine.
const FAILURE_BOUND: Duration = Duration::from_secs(3);
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

fn unique_prefix(test: &str) -> String {
    format!("bento-redis-fault-{test}-{}", std::process::id())
}

fn assert_fails_fast<T: std::fmt::Debug>(operation: &str, started: Instant, result: Result<T, DriverError>) {
    let elapsed = started.elapsed();
    let error = result.expect_err(&format!("{operation} must fail while the proxy is cut"));
    assert!(
        error.kind == ErrorKind::CONNECTION || error.kind == ErrorKind::TIMEOUT,
        "{operation}: expected a connection or timeout error, got {error}"
    );
    assert!(elapsed < FAILURE_BOUND, "{operation} took {elapsed:?} to fail ({error})");
}

#[test]
fn operations_fail_fast_while_the_backend_is_gone_and_recover_after() {
    let Some(_) = require(Service::Redis, "redis fault test") else { return };
    let proxy = TcpProxy::start(&Service::Redis.address());
    let plugin = Plugin::load(plugin_path("bento-driver-redis")).expect("the redis plugin loads");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("test runtime");
    runtime.block_on(async {
        let options = serde_json::json!({
            "url": format!("redis://{}", proxy.address()),
            "connection_timeout_ms": 300,
            "response_timeout_ms": 300,
        })
        .to_string();
        let driver = plugin
            .create_driver(&options, DriverOptions::with_prefix(unique_prefix("cut")))
            .await
            .expect("driver connects through the proxy");
        driver.set("k", b"before".to_vec(), None).await.expect("set before the cut");

        proxy.cut();
        // The proxy drops its connections within ~20 ms.
        tokio::time::sleep(Duration::from_millis(100)).await;

        for round in 0..3 {
            let started = Instant::now();
            assert_fails_fast(&format!("get #{round}"), started, driver.get("k").await);
            let started = Instant::now();
            assert_fails_fast(&format!("set #{round}"), started, driver.set("k", b"during".to_vec(), None).await);
        }
        let started = Instant::now();
        assert_fails_fast("clear", started, driver.clear().await);
        let started = Instant::now();
        assert_fails_fast("get_many", started, driver.get_many(&["a", "b"]).await);

        // Many callers at once: every one of them gets its error in time.
        let started = Instant::now();
        let results = futures::future::join_all((0..32).map(|i| {
            let driver = driver.clone();
            async move { driver.get(&format!("k{i}")).await }
        }))
        .await;
        for (i, result) in results.into_iter().enumerate() {
            assert_fails_fast(&format!("concurrent get #{i}"), started, result);
        }

        proxy.restore();
        let restored = Instant::now();
        let value = loop {
            match driver.get("k").await {
                Ok(value) => break value,
                Err(error) => {
                    assert!(restored.elapsed() < RECOVERY_BOUND, "still failing after the restore: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert_eq!(value.as_deref(), Some(&b"before"[..]), "the value written before the cut is still there");
        assert!(driver.set("k", b"after".to_vec(), None).await.expect("set after the restore"));
        assert_eq!(driver.get("k").await.expect("get after the restore").as_deref(), Some(&b"after"[..]));
        driver.clear().await.expect("clear after the restore");
        driver.disconnect().await.expect("disconnect");
    });
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
