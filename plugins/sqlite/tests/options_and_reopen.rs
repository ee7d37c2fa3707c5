//! Table-name validation, `auto_create_table`, `:memory:`, option errors
//! through the loaded plugin, and data surviving a reopen of the same file.

mod common;

use bento::{DriverOptions, Error, Plugin};
use bento_plugin_api::{CacheDriver, ErrorKind};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn invalid_table_names_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("t.db");
    for table in ["", "1abc", "a-b", "x; DROP TABLE y", "a\"b", "main.t", "sqlite_master"] {
        let Err(error) = common::try_connect(json!({ "path": path, "table": table }), "").await else {
            panic!("table {table:?} was accepted");
        };
        assert_eq!(error.kind, ErrorKind::INVALID_OPTIONS, "{table:?}");
        assert!(error.message.contains("table"), "{}", error.message);
    }
}

#[tokio::test]
async fn custom_tables_are_independent() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("t.db");
    let first = common::connect(json!({ "path": path, "table": "first_cache" }), "").await;
    let second = common::connect(json!({ "path": path, "table": "Order" }), "").await;
    first.set("k", b"1".to_vec(), None).await.unwrap();
    second.set("k", b"2".to_vec(), None).await.unwrap();
    second.clear().await.unwrap();
    assert_eq!(first.get("k").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(second.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn missing_table_without_auto_create_is_an_error() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("t.db");
    let Err(error) = common::try_connect(json!({ "path": path, "auto_create_table": false }), "").await else {
        panic!("connected without a table");
    };
    assert_eq!(error.kind, ErrorKind::INVALID_OPTIONS);
    assert!(error.message.contains("bentocache") && error.message.contains("auto_create_table"), "{}", error.message);
    // Once created, the same options work.
    drop(common::connect(json!({ "path": path }), "").await);
    common::connect(json!({ "path": path, "auto_create_table": false }), "").await;
}

#[tokio::test]
async fn reopening_the_file_keeps_data() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("persist.db");
    let driver = common::connect(json!({ "path": path }), "p").await;
    driver.set("forever", b"kept".to_vec(), None).await.unwrap();
    driver.set("later", b"still".to_vec(), Some(Duration::from_secs(60))).await.unwrap();
    driver.set_many(vec![]).await.unwrap();
    driver.disconnect().await.unwrap();
    drop(driver);

    let reopened = common::connect(json!({ "path": path }), "p").await;
    assert_eq!(reopened.get("forever").await.unwrap(), Some(b"kept".to_vec()));
    assert_eq!(reopened.get("later").await.unwrap(), Some(b"still".to_vec()));
}

#[tokio::test]
async fn memory_databases_are_private_per_driver() {
    let first = common::connect(json!({ "path": ":memory:", "pool_size": 8 }), "").await;
    let second = common::connect(json!({ "path": ":memory:" }), "").await;
    first.set("k", b"v".to_vec(), None).await.unwrap();
    assert_eq!(first.get("k").await.unwrap(), Some(b"v".to_vec()), "one connection, so one database");
    assert_eq!(second.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn background_pruner_deletes_expired_rows() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("prune.db");
    let driver = common::connect(json!({ "path": path, "prune_interval_ms": 50 }), "").await;
    driver.set("short", b"x".to_vec(), Some(Duration::from_millis(30))).await.unwrap();
    driver.set("forever", b"y".to_vec(), None).await.unwrap();
    let count_rows = || {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.query_row("SELECT COUNT(*) FROM bentocache", [], |row| row.get::<_, i64>(0)).unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while count_rows() > 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(count_rows(), 1, "the expired row was deleted without any read");
    driver.disconnect().await.unwrap();
}

async fn create_through_plugin(options: &str) -> Result<bento::Driver, Error> {
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-driver-sqlite")).expect("the sqlite plugin loads");
    plugin.create_driver(options, DriverOptions::with_prefix("opts")).await
}

#[tokio::test]
async fn option_errors_name_the_field() {
    for (options, field) in [
        ("{}".to_string(), "path"),
        (json!({ "path": ":memory:", "tabel": "x" }).to_string(), "tabel"),
        (json!({ "path": ":memory:", "busy_timeout_ms": "soon" }).to_string(), "busy_timeout_ms"),
        (json!({ "path": ":memory:", "prune_interval_ms": 0 }).to_string(), "prune_interval_ms"),
        (json!({ "path": ":memory:", "table": "no-dash" }).to_string(), "table"),
    ] {
        match create_through_plugin(&options).await {
            Err(Error::Driver(error)) => {
                assert_eq!(error.kind, ErrorKind::INVALID_OPTIONS, "{options}");
                assert!(error.message.contains(field), "{options}: {}", error.message);
            }
            Err(other) => panic!("{options}: unexpected error {other}"),
            Ok(_) => panic!("{options}: accepted"),
        }
    }
    let unopenable = json!({ "path": "/nonexistent-dir/for/sure/x.db" }).to_string();
    match create_through_plugin(&unopenable).await {
        Err(Error::Driver(error)) => {
            assert_eq!(error.kind, ErrorKind::CONNECTION);
            assert!(error.message.contains("/nonexistent-dir/for/sure/x.db"), "{}", error.message);
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("opened a database in a missing folder"),
    }
}
