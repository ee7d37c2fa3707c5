//! Expired rows leave the table: through `prune()`, and by themselves with
//! `prune_interval_ms`. Live rows stay.

use bento::{DriverOptions, Plugin};
use bento_testkit::{plugin_path, require, Service};
use std::time::{Duration, Instant};

async fn row_count(client: &tokio_postgres::Client, table: &str) -> i64 {
    client.query_one(&format!("SELECT count(*) FROM \"{table}\""), &[]).await.expect("count rows").get(0)
}

#[test]
fn expired_rows_are_pruned_and_live_rows_stay() {
    let Some(url) = require(Service::Postgres, "postgres prune") else { return };
    let table = format!("bento_prune_{}", std::process::id());
    let plugin = Plugin::load(plugin_path("bento-driver-postgres")).expect("the postgres plugin loads");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("test runtime");
    runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("direct connection");
        tokio::spawn(connection);

        let options = serde_json::json!({ "url": url, "table": table }).to_string();
        let driver = plugin.create_driver(&options, DriverOptions::with_prefix("prune")).await.expect("driver");
        driver.set("short", b"v".to_vec(), Some(Duration::from_millis(50))).await.expect("set short");
        driver.set("forever", b"v".to_vec(), None).await.expect("set forever");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(row_count(&client, &table).await, 2, "expired rows stay until pruned");
        driver.prune().await.expect("prune");
        assert_eq!(row_count(&client, &table).await, 1, "prune removed the expired row only");
        driver.disconnect().await.expect("disconnect");

        let options = serde_json::json!({ "url": url, "table": table, "prune_interval_ms": 100 }).to_string();
        let driver = plugin.create_driver(&options, DriverOptions::with_prefix("prune")).await.expect("driver");
        driver.set("short", b"v".to_vec(), Some(Duration::from_millis(50))).await.expect("set short");
        let started = Instant::now();
        while row_count(&client, &table).await > 1 {
            assert!(started.elapsed() < Duration::from_secs(5), "the prune task did not remove the expired row");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(driver.get("forever").await.expect("get").as_deref(), Some(&b"v"[..]));
        driver.disconnect().await.expect("disconnect");
        client.batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\"")).await.expect("drop the test table");
    });
}
