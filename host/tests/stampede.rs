//! Stampede protection: many concurrent misses of one key run one L2 read
//! and one factory, across handles and namespaces of a store.

mod common;

use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_misses_run_one_factory_and_one_l2_read() {
    let s = setup(&Backend::Memory, "stampede", SetupOptions::default()).await;
    let calls = Arc::new(AtomicU64::new(0));
    let mut callers = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let cache = s.bento.clone();
        let calls = calls.clone();
        callers.push(tokio::spawn(async move {
            cache
                .get_or_set("hot", move |_ctx| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(ms(50)).await;
                    Ok::<_, bento::BoxError>("value".to_string())
                })
                .await
        }));
    }
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), "value");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "factory calls");
    assert_eq!(s.l2.counters.gets(), 1, "L2 reads");
    assert_eq!(s.l2.counters.sets(), 1, "L2 writes");
    assert_eq!(s.bento.store("main").unwrap().pending_locks(), 0, "every lock released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_are_shared_by_namespaces_of_the_same_full_key() {
    for backend in backends("stampede_ns") {
        let s = setup(&backend, "stampede_ns", SetupOptions::default()).await;
        let users = s.bento.namespace("users").unwrap();
        let calls = Arc::new(AtomicU64::new(0));
        let mut callers = Vec::new();
        for i in 0..200 {
            let (root, users, calls) = (s.bento.clone(), users.clone(), calls.clone());
            callers.push(tokio::spawn(async move {
                let factory = move |_ctx| async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(ms(50)).await;
                    Ok::<_, bento::BoxError>(7u32)
                };
                if i % 2 == 0 {
                    root.get_or_set("users:1", factory).await
                } else {
                    users.get_or_set("1", factory).await
                }
            }));
        }
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{backend:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_keys_do_not_wait_for_each_other() {
    let s = setup(&Backend::Memory, "stampede_keys", SetupOptions::default()).await;
    let started = std::time::Instant::now();
    let mut callers = Vec::new();
    for i in 0..50 {
        let cache = s.bento.clone();
        callers.push(tokio::spawn(async move {
            let key = format!("k{i}");
            cache
                .get_or_set(&key, move |_ctx| async move {
                    tokio::time::sleep(ms(100)).await;
                    Ok::<_, bento::BoxError>(i)
                })
                .await
        }));
    }
    for (i, caller) in callers.into_iter().enumerate() {
        assert_eq!(caller.await.unwrap().unwrap(), i);
    }
    assert!(started.elapsed() < ms(2_000), "{:?}", started.elapsed());
}
