//! Soft and hard timeouts (the factory finishes in the background and its
//! value is cached), lock timeouts, and force_fresh — with the graced value
//! in L1, or only in L2.

mod common;

use bento::{CacheOptions, Error, Layer};
use common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn slow<T: Send + Sync + 'static>(
    delay: Duration,
    value: T,
) -> impl FnOnce(bento::FactoryContext<T>) -> futures::future::BoxFuture<'static, Result<T, bento::BoxError>> + Send + 'static
{
    move |_ctx| {
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(value)
        })
    }
}

#[tokio::test]
async fn soft_timeout_serves_stale_and_the_factory_writes_later() {
    for backend in backends("timeouts_soft") {
        let s = setup(
            &backend,
            "soft",
            SetupOptions { options: CacheOptions::new().grace(ms(60_000)), ..Default::default() },
        )
        .await;
        s.bento.set("k", 1u32).ttl(ms(50)).await.unwrap();
        tokio::time::sleep(ms(100)).await;
        let started = Instant::now();
        let value = s.bento.get_or_set("k", slow(ms(400), 2u32)).timeout(ms(100)).await.unwrap();
        let took = started.elapsed();
        assert_eq!(value, 1, "{backend:?}");
        assert!(took >= ms(90) && took < ms(350), "{backend:?}: {took:?}");
        tokio::time::sleep(ms(500)).await;
        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(2), "{backend:?}: written in the background");
    }
}

#[tokio::test]
async fn soft_timeout_does_not_apply_without_a_graced_value() {
    let s = setup(&Backend::Memory, "soft_none", SetupOptions::default()).await;
    let value = s.bento.get_or_set("k", slow(ms(200), 5u32)).timeout(ms(20)).await.unwrap();
    assert_eq!(value, 5);
}

#[tokio::test]
async fn hard_timeout_fails_the_call_but_the_value_is_cached() {
    for backend in backends("timeouts_hard") {
        let s = setup(&backend, "hard", SetupOptions::default()).await;
        let started = Instant::now();
        let error = s.bento.get_or_set("k", slow(ms(400), 3u32)).hard_timeout(ms(100)).await.unwrap_err();
        assert!(matches!(error, Error::HardTimeout { .. }), "{error:?}");
        assert!(started.elapsed() < ms(350), "{backend:?}: {:?}", started.elapsed());
        tokio::time::sleep(ms(500)).await;
        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(3), "{backend:?}");
        assert_eq!(s.bento.store("main").unwrap().pending_locks(), 0);
    }
}

#[tokio::test]
async fn lock_timeout_fails_or_serves_stale() {
    let s = setup(&Backend::Memory, "lock", SetupOptions::default()).await;
    let holder = {
        let cache = s.bento.clone();
        tokio::spawn(async move { cache.get_or_set("k", slow(ms(500), 1u32)).await })
    };
    tokio::time::sleep(ms(50)).await;
    let error = s.bento.get_or_set("k", slow(ms(1), 2u32)).lock_timeout(ms(100)).await.unwrap_err();
    assert!(matches!(error, Error::LockTimeout { .. }), "{error:?}");
    assert_eq!(holder.await.unwrap().unwrap(), 1);

    // With a graced value the waiter gets it instead of an error.
    s.bento.set("g", 10u32).ttl(ms(30)).grace(ms(60_000)).await.unwrap();
    tokio::time::sleep(ms(60)).await;
    let holder = {
        let cache = s.bento.clone();
        tokio::spawn(async move { cache.get_or_set("g", slow(ms(400), 11u32)).grace(ms(60_000)).no_timeout().await })
    };
    tokio::time::sleep(ms(50)).await;
    let value =
        s.bento.get_or_set("g", slow(ms(1), 12u32)).grace(ms(60_000)).no_timeout().lock_timeout(ms(100)).await.unwrap();
    assert_eq!(value, 10);
    assert_eq!(holder.await.unwrap().unwrap(), 11);
}

#[tokio::test]
async fn force_fresh_runs_the_factory_and_keeps_the_old_value_on_error() {
    for backend in backends("timeouts_force") {
        let s = setup(
            &backend,
            "force",
            SetupOptions { options: CacheOptions::new().grace(ms(60_000)), ..Default::default() },
        )
        .await;
        s.bento.set("k", 1u32).await.unwrap();
        let calls = Arc::new(AtomicU64::new(0));
        let value = s.bento.get_or_set("k", counted(&calls, 2u32)).force_fresh().await.unwrap();
        assert_eq!((value, calls.load(Ordering::SeqCst)), (2, 1), "{backend:?}");
        let error = s.bento.get_or_set("k", failing::<u32>("no")).force_fresh().await.unwrap_err();
        assert!(matches!(error, Error::Factory { .. }), "{error:?}");
        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(2), "{backend:?}: old value kept");
    }
}

/// A stale value only L2 holds (no L1 at all, or an L1 without a copy) is
/// found by the refresh task under the lock; the soft timeout applies to it
/// as to an L1 value: stale after ~timeout, the factory finishes later.
#[tokio::test]
async fn soft_timeout_serves_a_stale_value_found_only_in_l2() {
    for backend in backends("timeouts_soft_l2") {
        for l1 in [false, true] {
            let s = stale_only_in_l2(&backend, "soft_l2", l1, "k", 1).await;
            let mut events = s.bento.subscribe();
            let (calls, graced_seen) = (Arc::new(AtomicU64::new(0)), Arc::new(Mutex::new(Vec::new())));
            let started = Instant::now();
            let factory = counted_slow(&calls, &graced_seen, ms(1_500), 2u32);
            let value = s.bento.get_or_set("k", factory).timeout(ms(200)).await.unwrap();
            let took = started.elapsed();
            assert_eq!(value, 1, "{backend:?} l1={l1}: stale");
            assert!(took >= ms(190) && took < ms(1_000), "{backend:?} l1={l1}: {took:?}");
            assert_eq!(hits(&mut events), vec![graced_hit("k", Layer::L2)], "{backend:?} l1={l1}");
            assert_eq!(s.l2.counters.gets(), 1, "{backend:?} l1={l1}: one L2 read");
            tokio::time::sleep(ms(1_800)).await;
            assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(2), "{backend:?} l1={l1}: written later");
            assert_eq!(calls.load(Ordering::SeqCst), 1, "{backend:?} l1={l1}");
            assert_eq!(*graced_seen.lock().unwrap(), vec![Some(1)], "{backend:?} l1={l1}");
            assert_eq!(s.bento.store("main").unwrap().pending_locks(), 0);
        }
    }
}

#[tokio::test]
async fn hard_timeout_applies_to_a_stale_value_found_only_in_l2() {
    for backend in backends("timeouts_hard_l2") {
        let s = stale_only_in_l2(&backend, "hard_l2", false, "k", 1).await;
        // The soft timeout would come after the hard one: the call fails.
        let started = Instant::now();
        let error =
            s.bento.get_or_set("k", slow(ms(1_000), 2u32)).timeout(ms(600)).hard_timeout(ms(200)).await.unwrap_err();
        assert!(matches!(error, Error::HardTimeout { .. }), "{backend:?}: {error:?}");
        assert!(started.elapsed() < ms(550), "{backend:?}: {:?}", started.elapsed());
        tokio::time::sleep(ms(1_200)).await;
        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(2), "{backend:?}: cached in the background");
    }
}

#[tokio::test]
async fn lock_timeout_serves_a_stale_value_found_only_in_l2() {
    for backend in backends("timeouts_lock_l2") {
        let s = stale_only_in_l2(&backend, "lock_l2", false, "k", 1).await;
        let holder = {
            let cache = s.bento.clone();
            tokio::spawn(async move { cache.get_or_set("k", slow(ms(800), 2u32)).no_timeout().await })
        };
        tokio::time::sleep(ms(100)).await;
        let value = s.bento.get_or_set("k", slow(ms(1), 3u32)).no_timeout().lock_timeout(ms(200)).await.unwrap();
        assert_eq!(value, 1, "{backend:?}: stale instead of a lock timeout");
        assert_eq!(holder.await.unwrap().unwrap(), 2, "{backend:?}");
    }
}

#[tokio::test]
async fn a_caller_that_gives_up_does_not_lose_the_factorys_value() {
    for backend in backends("timeouts_gives_up") {
        let s = setup(&backend, "gives_up", SetupOptions::default()).await;
        // The caller stops waiting (its future is dropped) while the
        // factory runs: the refresh finishes on its own and caches it.
        let call = s.bento.get_or_set("k", slow(ms(300), 7u32));
        assert!(tokio::time::timeout(ms(100), call).await.is_err(), "{backend:?}");
        tokio::time::sleep(ms(500)).await;
        assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(7), "{backend:?}");
        // The lock was released: the next caller neither waits nor computes.
        let started = Instant::now();
        let value = s.bento.get_or_set("k", slow(ms(2_000), 8u32)).await.unwrap();
        assert_eq!(value, 7, "{backend:?}");
        assert!(started.elapsed() < ms(1_000), "{backend:?}");

        // The same when the caller's whole task is aborted.
        let bento = s.bento.clone();
        let task = tokio::spawn(async move { bento.get_or_set("k2", slow(ms(300), 9u32)).await });
        tokio::time::sleep(ms(100)).await;
        task.abort();
        tokio::time::sleep(ms(500)).await;
        assert_eq!(s.bento.get::<u32>("k2").await.unwrap(), Some(9), "{backend:?}");
    }
}

#[test]
fn a_refresh_dropped_outside_its_runtime_still_finishes_on_it() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let bento = runtime.block_on(bento::Bento::builder().build()).unwrap();
    let mut call = Box::pin(std::future::IntoFuture::into_future(bento.get_or_set("k", slow(ms(200), 5u32))));
    // Started inside the runtime, then given up on a thread outside it.
    runtime.block_on(async { assert!(futures::poll!(call.as_mut()).is_pending()) });
    drop(call);
    std::thread::sleep(ms(600));
    let found: Option<u32> = runtime.block_on(async { bento.get("k").await }).unwrap();
    assert_eq!(found, Some(5));
}

/// A miss whose factory answers at once completes in the caller's first
/// poll, and the refresh (run by the caller's own task) hands its value,
/// and its stale candidate, over without waking that task: tokio re-queues
/// a task woken while it is polled as a yield and wakes another worker to
/// take it, two context switches per miss for nothing.
#[tokio::test]
async fn a_miss_computed_at_once_does_not_wake_its_own_task() {
    struct Counting(AtomicU64);
    impl std::task::Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let bento = bento::Bento::builder().build().await.unwrap();
    // Without grace, and with grace and a soft timeout (the refresh then
    // also has a channel for a stale value it might find).
    let options = [CacheOptions::new(), CacheOptions::new().grace(Duration::from_secs(60)).timeout(ms(500))];
    for (i, options) in options.into_iter().enumerate() {
        let wakes = Arc::new(Counting(AtomicU64::new(0)));
        let waker = std::task::Waker::from(wakes.clone());
        let key = format!("at_once_{i}");
        let call = bento.get_or_set(&key, |_ctx| async { Ok::<_, bento::BoxError>(3u32) }).options(options);
        let mut call = std::pin::pin!(std::future::IntoFuture::into_future(call));
        let polled = std::future::Future::poll(call.as_mut(), &mut std::task::Context::from_waker(&waker));
        assert!(matches!(polled, std::task::Poll::Ready(Ok(3))), "case {i}: {polled:?}");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "case {i}: the task was woken by its own refresh");
        assert_eq!(bento.get::<u32>(&key).await.unwrap(), Some(3), "case {i}");
    }
}
