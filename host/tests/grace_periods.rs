//! Grace periods: stale values served on factory failure, by `get`, and by
//! stale-while-revalidate, whether L1 or only L2 holds them; grace backoff
//! counted from now.

mod common;

use bento::{CacheOptions, Error, Layer};
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

/// Stale-while-revalidate when only L2 holds the stale value (no L1 at
/// all, or an L1 without a copy): the refresh task hands it over before
/// running the factory, so the caller still returns at once.
#[tokio::test]
async fn stale_while_revalidate_serves_a_stale_value_found_only_in_l2() {
    for backend in backends("grace_swr_l2") {
        for l1 in [false, true] {
            let s = stale_only_in_l2(&backend, "grace_swr_l2", l1, "k", 1).await;
            let mut events = s.bento.subscribe();
            let (calls, graced_seen) = (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::new())));
            let started = Instant::now();
            let value = s.bento.get_or_set("k", counted_slow(&calls, &graced_seen, ms(1_000), 2u32)).await.unwrap();
            assert_eq!(value, 1, "{backend:?} l1={l1}: stale value at once");
            assert!(started.elapsed() < ms(500), "{backend:?} l1={l1}: took {:?}", started.elapsed());
            assert_eq!(hits(&mut events), vec![graced_hit("k", Layer::L2)], "{backend:?} l1={l1}");
            assert_eq!(s.l2.counters.gets(), 1, "{backend:?} l1={l1}: one L2 read");
            tokio::time::sleep(ms(1_300)).await;
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{backend:?} l1={l1}: one background refresh");
            assert_eq!(*graced_seen.lock().unwrap(), vec![Some(1)], "{backend:?} l1={l1}: graced entry given");
            assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(2), "{backend:?} l1={l1}: refreshed");
            assert_eq!(s.bento.store("main").unwrap().pending_locks(), 0);
        }
    }
}

/// Concurrent callers of a key stale only in L2 run one factory, and none
/// waits for it: the first finds the stale entry (in L2) and serves it at
/// once; the others, queued behind its lock, are handed the same entry.
#[tokio::test]
async fn callers_queued_behind_a_refresh_serve_the_stale_value_it_found_in_l2() {
    for backend in backends("grace_swr_l2_queued") {
        // No L1: only the refresh holding the lock reads the stale entry
        // (from L2); it shares it with the callers waiting for the lock.
        let s = stale_only_in_l2(&backend, "grace_swr_l2_queued", false, "k", 1).await;
        let (calls, graced_seen) = (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::new())));
        let mut callers = Vec::new();
        for _ in 0..20 {
            let cache = s.bento.clone();
            let factory = counted_slow(&calls, &graced_seen, ms(1_500), 2u32);
            callers.push(tokio::spawn(async move {
                let started = Instant::now();
                let value = cache.get_or_set("k", factory).await.unwrap();
                (value, started.elapsed())
            }));
        }
        for caller in callers {
            let (value, elapsed) = caller.await.unwrap();
            assert_eq!(value, 1, "{backend:?}: every caller serves the stale value");
            assert!(elapsed < ms(1_000), "{backend:?}: nobody waits for the 1.5 s refresh ({elapsed:?})");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{backend:?}: one refresh");
        assert_eq!(s.l2.counters.gets(), 1, "{backend:?}: one L2 read");
        tokio::time::sleep(ms(2_000)).await;
        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(2), "{backend:?}: the refresh landed");
        assert_eq!(s.bento.store("main").unwrap().pending_locks(), 0, "{backend:?}");
    }
}

#[tokio::test]
async fn failing_factory_serves_a_stale_value_found_only_in_l2() {
    for backend in backends("grace_fail_l2") {
        let s = stale_only_in_l2(&backend, "grace_fail_l2", false, "k", 1).await;
        let value = s.bento.get_or_set("k", failing::<u32>("down")).no_timeout().await.unwrap();
        assert_eq!(value, 1, "{backend:?}");
        // Backed off: fresh again for the default 10 s backoff.
        let calls = Arc::new(AtomicU64::new(0));
        let value = s.bento.get_or_set("k", counted(&calls, 2u32)).await.unwrap();
        assert_eq!((value, calls.load(Ordering::SeqCst)), (1, 0), "{backend:?}");
    }
}
