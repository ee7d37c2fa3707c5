//! Option errors, through the plugin as the host loads it.

use bento::{DriverOptions, Error, Plugin};
use bento_plugin_api::ErrorKind;

async fn create(options: &str) -> Result<bento::Driver, Error> {
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-driver-file")).expect("the file plugin loads");
    plugin.create_driver(options, DriverOptions::with_prefix("opts")).await
}

fn driver_error(result: Result<bento::Driver, Error>) -> bento_plugin_api::DriverError {
    match result {
        Err(Error::Driver(error)) => error,
        Err(other) => panic!("expected a driver error, got {other}"),
        Ok(_) => panic!("expected an error"),
    }
}

#[tokio::test]
async fn directory_is_required() {
    let error = driver_error(create("{}").await);
    assert_eq!(error.kind, ErrorKind::INVALID_OPTIONS);
    assert!(error.message.contains("directory"), "{}", error.message);
}

#[tokio::test]
async fn unknown_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let options = serde_json::json!({ "directory": dir.path(), "prune_interval": 5 }).to_string();
    let error = driver_error(create(&options).await);
    assert_eq!(error.kind, ErrorKind::INVALID_OPTIONS);
    assert!(error.message.contains("prune_interval"), "{}", error.message);
}

#[tokio::test]
async fn a_file_is_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let error = driver_error(create(&serde_json::json!({ "directory": file }).to_string()).await);
    assert_eq!(error.kind, ErrorKind::INVALID_OPTIONS);
    assert!(error.message.contains("plain-file"), "{}", error.message);
}

#[tokio::test]
async fn missing_directory_is_created_and_zero_interval_refused() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/c");
    let driver = create(&serde_json::json!({ "directory": nested }).to_string()).await.unwrap();
    driver.set("k", b"v".to_vec(), None).await.unwrap();
    assert!(nested.is_dir());
    let error =
        driver_error(create(&serde_json::json!({ "directory": nested, "prune_interval_ms": 0 }).to_string()).await);
    assert_eq!(error.kind, ErrorKind::INVALID_OPTIONS);
}
