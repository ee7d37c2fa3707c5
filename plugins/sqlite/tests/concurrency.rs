//! Two drivers (two pools) on one file, many tasks: pulls have one winner,
//! batches are all-or-nothing visible, no "database is locked" errors
//! under the busy timeout.

mod common;

use bento_plugin_api::{CacheDriver, SetItem};
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pulls_across_two_pools_have_one_winner() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("c.db");
    let first = Arc::new(common::connect(json!({ "path": path }), "c").await);
    let second = Arc::new(common::connect(json!({ "path": path }), "c").await);
    for round in 0..20 {
        let key = format!("k{round}");
        first.set(&key, b"prize".to_vec(), None).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let driver = if i % 2 == 0 { first.clone() } else { second.clone() };
                let key = key.clone();
                tokio::spawn(async move { driver.pull(&key).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            winners += usize::from(task.await.unwrap().is_some());
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_and_writes_succeed() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("w.db");
    let driver = Arc::new(common::connect(json!({ "path": path, "pool_size": 4 }), "w").await);
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let driver = driver.clone();
            tokio::spawn(async move {
                let items: Vec<SetItem> = (0..50)
                    .map(|i| SetItem { key: format!("{task}:{i}"), value: vec![task as u8; 100], ttl: None })
                    .collect();
                assert!(driver.set_many(items).await.unwrap());
                let keys: Vec<String> = (0..50).map(|i| format!("{task}:{i}")).collect();
                let values = driver.get_many(&keys).await.unwrap();
                assert!(values.iter().all(|v| v.as_deref() == Some(&[task as u8; 100][..])));
                assert_eq!(driver.delete_many(&keys[..25]).await.unwrap(), 25);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let remaining: Vec<String> = (0..16).flat_map(|t| (25..50).map(move |i| format!("{t}:{i}"))).collect();
    assert!(driver.get_many(&remaining).await.unwrap().iter().all(Option::is_some));
}
