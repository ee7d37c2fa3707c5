//! Concurrent writers of one key never leave a torn file: readers, during
//! and after the race, see exactly one of the written values.

mod common;

use bento_plugin_api::CacheDriver;
use std::sync::Arc;

/// A 256 KiB value filled with `writer`'s byte and tagged with its index,
/// so a mix of two values is detectable anywhere in the file.
fn value_of(writer: u8) -> Vec<u8> {
    let mut value = vec![writer; 256 * 1024];
    value[0] = writer;
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_tear_a_value() {
    let directory = tempfile::tempdir().unwrap();
    let driver = Arc::new(common::connect(directory.path(), "torn").await);
    let writers: Vec<_> = (0..16u8)
        .map(|writer| {
            let driver = driver.clone();
            tokio::spawn(async move {
                for _ in 0..4 {
                    assert!(driver.set("contended", value_of(writer), None).await.unwrap());
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let driver = driver.clone();
            tokio::spawn(async move {
                for _ in 0..32 {
                    if let Some(value) = driver.get("contended").await.unwrap() {
                        assert_eq!(value, value_of(value[0]), "a reader saw a torn value");
                    }
                }
            })
        })
        .collect();
    for task in writers.into_iter().chain(readers) {
        task.await.unwrap();
    }

    let value = driver.get("contended").await.unwrap().expect("some writer's value is stored");
    assert!(value[0] < 16);
    assert_eq!(value, value_of(value[0]));
    // No temp file is left behind: one entry file only.
    assert_eq!(common::files_under(directory.path()), vec![common::entry_path(directory.path(), "torn:contended")]);
}
