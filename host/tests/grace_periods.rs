//! Grace periods: stale values served on factory failure, by `get`, and by
//! stale-while-revalidate; grace backoff counted from now.

mod common;

use bento::{CacheOptions, Error};
use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn graced() -> SetupOptions {
    SetupOptions { options: CacheOptions::new().grace(ms(60_000)).grace_backoff(ms(300)), ..Default::default() }
}

#[tokio::test]
async fn get_serves_stale_values_only_within_grace() {
    for backend in backends("grace_get") {
        let s = setup(&backend, "grace_get", graced()).await;
        s.bento.set("k", 1u32).ttl(ms(100)).await.unwrap();
        tokio::time::sleep(ms(200)).await;
        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(1), "{backend:?}: graced");
        assert_eq!(s.bento.get::<u32>("k").no_grace().await.unwrap(), None, "{backend:?}: no grace, no value");
        // A sibling without L1 copy reads the stale entry from L2.
        let other = sibling(&s, CacheOptions::new().grace(ms(60_000))).await;
        assert_eq!(other.get::<u32>("k").await.unwrap(), Some(1), "{backend:?}");
    }
}

#[tokio::test]
async fn failing_factory_serves_the_graced_value_then_backs_off_from_now() {
    for backend in backends("grace_backoff") {
        let s = setup(&backend, "grace_backoff", graced()).await;
        s.bento.set("k", "old".to_string()).ttl(ms(100)).await.unwrap();
        // Expired long ago (well past the 300 ms backoff): BentoCache would
        // add the backoff to the old expiry, leaving it expired.
        tokio::time::sleep(ms(500)).await;
        let value = s.bento.get_or_set("k", failing::<String>("down")).no_timeout().await.unwrap();
        assert_eq!(value, "old", "{backend:?}");
        // Within the backoff: fresh again, the factory is not called.
        let calls = Arc::new(AtomicU64::new(0));
        tokio::time::sleep(ms(100)).await;
        let value = s.bento.get_or_set("k", counted(&calls, "new".to_string())).await.unwrap();
        assert_eq!((value.as_str(), calls.load(Ordering::SeqCst)), ("old", 0), "{backend:?}");
        // After the backoff: refreshed.
        tokio::time::sleep(ms(300)).await;
        let value = s.bento.get_or_set("k", counted(&calls, "new".to_string())).no_timeout().await.unwrap();
        assert_eq!((value.as_str(), calls.load(Ordering::SeqCst)), ("new", 1), "{backend:?}");
    }
}

#[tokio::test]
async fn stale_while_revalidate_returns_at_once_and_refreshes_once() {
    for backend in backends("grace_swr") {
        let s = setup(&backend, "grace_swr", graced()).await;
        s.bento.set("k", 1u32).ttl(ms(100)).await.unwrap();
        tokio::time::sleep(ms(200)).await;
        let calls = Arc::new(AtomicU64::new(0));
        let seen_graced = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let mut callers = Vec::new();
        for _ in 0..20 {
            let cache = s.bento.clone();
            let (calls, seen) = (calls.clone(), seen_graced.clone());
            callers.push(tokio::spawn(async move {
                cache
                    .get_or_set("k", move |ctx: bento::FactoryContext<u32>| async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        seen.lock().unwrap().push(ctx.graced_entry().map(|entry| entry.value));
                        tokio::time::sleep(ms(300)).await;
                        Ok::<_, bento::BoxError>(2)
                    })
                    .await
                    .unwrap()
            }));
        }
        for caller in callers {
            assert_eq!(caller.await.unwrap(), 1, "{backend:?}: stale value at once");
        }
        assert!(started.elapsed() < ms(250), "{backend:?}: took {:?}", started.elapsed());
        tokio::time::sleep(ms(500)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{backend:?}: one background refresh");
        assert_eq!(*seen_graced.lock().unwrap(), vec![Some(1)], "{backend:?}: graced entry given in SWR mode");
        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(2), "{backend:?}");
    }
}

#[tokio::test]
async fn without_grace_a_failing_factory_is_an_error() {
    let s = setup(&Backend::Memory, "grace_none", SetupOptions::default()).await;
    s.bento.set("k", 1u32).ttl(ms(50)).await.unwrap();
    tokio::time::sleep(ms(120)).await;
    let error = s.bento.get_or_set("k", failing::<u32>("boom")).await.unwrap_err();
    assert!(matches!(&error, Error::Factory { key, background: false, .. } if key == "k"), "{error:?}");
    assert!(error.to_string().contains("boom"), "{error}");
}

#[tokio::test]
async fn expire_keeps_a_graced_copy_in_both_tiers() {
    for backend in backends("grace_expire") {
        let s = setup(&backend, "grace_expire", graced()).await;
        s.bento.set("k", 1u32).ttl(ms(60_000)).await.unwrap();
        assert!(s.bento.expire("k").await.unwrap(), "{backend:?}");
        assert_eq!(s.bento.get::<u32>("k").no_grace().await.unwrap(), None, "{backend:?}: no longer fresh");
        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(1), "{backend:?}: graced from L1");
        let other = sibling(&s, CacheOptions::new().grace(ms(60_000))).await;
        assert_eq!(other.get::<u32>("k").await.unwrap(), Some(1), "{backend:?}: graced from L2");
        assert!(other.has("k").await.unwrap());
        let calls = Arc::new(AtomicU64::new(0));
        let value = s.bento.get_or_set("k", counted(&calls, 2u32)).no_timeout().await.unwrap();
        assert_eq!((value, calls.load(Ordering::SeqCst)), (2, 1), "{backend:?}: refreshed");
    }
}
