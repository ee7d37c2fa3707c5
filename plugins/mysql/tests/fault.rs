//! MariaDB/MySQL goes away mid-run: the driver talks to the shared server
//! through a TCP proxy the test cuts. While cut, every operation fails with
//! a `Connection` or `Timeout` error within the configured timeout (no hang,
//! no panic); once restored, operations succeed again.
//!
//! The cut / fail-fast / restore / recover loop is shared with the other
//! drivers: `bento_testkit::fault::cut_and_recover`.

use bento::{DriverOptions, ErrorKind, Plugin};
use bento_testkit::fault::{self, FaultBounds};
use bento_testkit::{host_port, plugin_path, require, Service, TcpProxy};
use mysql_async::prelude::Queryable;
use std::time::Duration;

/// `timeout_ms` is 500; the bound leaves a wide margin for a loaded machine.
const FAILURE_BOUND: Duration = Duration::from_secs(5);
const RECOVERY_BOUND: Duration = Duration::from_secs(15);

#[test]
fn operations_fail_fast_while_the_server_is_gone_and_recover_after() {
    let Some(url) = require(Service::Mysql, "mysql fault test") else { return };
    let proxy = TcpProxy::start(&host_port(&url));
    // mysql_async moves loopback connections to the server's Unix socket
    // unless told not to, which would bypass the proxy.
    let proxied_url = url.replacen(&host_port(&url), &proxy.address().to_string(), 1);
    let proxied_url = format!("{proxied_url}{}prefer_socket=false", if url.contains('?') { '&' } else { '?' });
    let table = format!("bento_fault_{}", std::process::id());
    let plugin = Plugin::load(plugin_path("bento-driver-mysql")).expect("the mysql plugin loads");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("test runtime");
    runtime.block_on(async {
        let options = serde_json::json!({
            "url": proxied_url,
            "table": table,
            "pool_size": 4,
            "connect_timeout_ms": 500,
            "timeout_ms": 500,
        })
        .to_string();
        let driver = plugin
            .create_driver(&options, DriverOptions::with_prefix("fault"))
            .await
            .expect("driver connects through the proxy");
        fault::cut_and_recover(
            &driver,
            &proxy,
            FaultBounds { failure: FAILURE_BOUND, recovery: RECOVERY_BOUND, concurrent: 16, pull: true },
        )
        .await;
        driver.set("k", b"after".to_vec(), None).await.expect("set after the restore");
        assert_eq!(driver.get("k").await.expect("get after the restore").as_deref(), Some(&b"after"[..]));

        driver.disconnect().await.expect("disconnect");
        driver.disconnect().await.expect("disconnect is idempotent");
        let error = driver.get("k").await.expect_err("no operations after disconnect");
        assert_eq!(error.kind, ErrorKind::DISCONNECTED, "{error}");
    });
    drop_table(&url, &table);
}

fn drop_table(url: &str, table: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.expect("direct connection");
        conn.query_drop(format!("DROP TABLE IF EXISTS `{table}`")).await.expect("drop the test table");
        conn.disconnect().await.expect("close the direct connection");
    });
}
