//! Corrupt, empty and truncated entry files read as missing and are removed
//! by `prune()`; the background pruner removes expired files and stops on
//! `disconnect()`.

mod common;

use bento_driver_file::FileDriverOptions;
use bento_plugin_api::CacheDriver;
use std::time::Duration;

#[tokio::test]
async fn corrupt_files_read_as_missing_and_prune_removes_them() {
    let directory = tempfile::tempdir().unwrap();
    let driver = common::connect(directory.path(), "c").await;
    let cases: [(&str, &[u8]); 3] = [("empty", b""), ("garbage", b"definitely not an entry file"), ("truncated", b"")];
    for (key, bytes) in cases {
        driver.set(key, vec![1; 1000], None).await.unwrap();
        let path = common::entry_path(directory.path(), &format!("c:{key}"));
        if key == "truncated" {
            let full = std::fs::read(&path).unwrap();
            std::fs::write(&path, &full[..full.len() - 10]).unwrap();
        } else {
            std::fs::write(&path, bytes).unwrap();
        }
        assert!(!driver.has(key).await.unwrap(), "{key}");
    }
    driver.set("healthy", b"ok".to_vec(), None).await.unwrap();
    for (key, _) in cases {
        assert!(common::entry_path(directory.path(), &format!("c:{key}")).exists(), "{key} still on disk before prune");
    }

    driver.prune().await.unwrap();
    assert_eq!(common::files_under(directory.path()), vec![common::entry_path(directory.path(), "c:healthy")]);
    assert_eq!(driver.get("healthy").await.unwrap(), Some(b"ok".to_vec()));
}

#[tokio::test]
async fn get_of_a_corrupt_file_is_a_miss_and_removes_it() {
    let directory = tempfile::tempdir().unwrap();
    let driver = common::connect(directory.path(), "").await;
    driver.set("k", b"v".to_vec(), None).await.unwrap();
    let path = common::entry_path(directory.path(), "k");
    std::fs::write(&path, b"BNTO garbage").unwrap();
    assert_eq!(driver.get("k").await.unwrap(), None);
    assert!(!path.exists());
    assert!(!driver.delete("k").await.unwrap());
}

#[tokio::test]
async fn an_entry_copied_under_another_name_is_not_returned() {
    let directory = tempfile::tempdir().unwrap();
    let driver = common::connect(directory.path(), "").await;
    driver.set("a", b"value of a".to_vec(), None).await.unwrap();
    let target = common::entry_path(directory.path(), "b");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(common::entry_path(directory.path(), "a"), &target).unwrap();
    assert_eq!(driver.get("b").await.unwrap(), None, "the file's own key must match the requested key");
    driver.prune().await.unwrap();
    assert!(!target.exists());
    assert_eq!(driver.get("a").await.unwrap(), Some(b"value of a".to_vec()));
}

#[tokio::test]
async fn background_pruner_removes_expired_files_until_disconnect() {
    let directory = tempfile::tempdir().unwrap();
    let options =
        FileDriverOptions { directory: directory.path().to_path_buf(), prune_interval_ms: Some(50), sync_writes: true };
    let driver = common::connect_with(options, "p").await;
    driver.set("short", b"x".to_vec(), Some(Duration::from_millis(50))).await.unwrap();
    driver.set("forever", b"y".to_vec(), None).await.unwrap();
    let short = common::entry_path(directory.path(), "p:short");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while short.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!short.exists(), "the pruner removed the expired file without any read");
    assert!(common::entry_path(directory.path(), "p:forever").exists());

    driver.disconnect().await.unwrap();
    let other = common::connect(directory.path(), "p").await;
    other.set("after", b"z".to_vec(), Some(Duration::from_millis(20))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(common::entry_path(directory.path(), "p:after").exists(), "a disconnected driver's pruner is stopped");
}
