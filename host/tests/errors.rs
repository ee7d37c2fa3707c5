//! Failures: factory errors and panics, L2 errors (suppressed or not, with
//! no lock leak), the circuit breaker, background errors reaching only
//! `on_factory_error`, and an L2 outage under load (real Redis through a
//! cut proxy, and the memory plugin with injected failures), and a
//! serializer failure while expiring being reported as such.

mod common;

use bento::bus::{BusNode, MemoryBus};
use bento::{Bento, BoxError, CacheOptions, Error, JsonSerializer, L1Options, Serializer, Store};
use common::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test]
async fn l2_errors_surface_without_l1_and_never_leak_the_lock() {
    let s = setup(&Backend::Memory, "err_l2", SetupOptions { l1: false, ..Default::default() }).await;
    s.l2.counters.fail(true);
    let calls = Arc::new(AtomicU64::new(0));
    let error = s.bento.get_or_set("k", counted(&calls, 1u32)).await.unwrap_err();
    assert!(matches!(&error, Error::L2 { key, .. } if key == "k"), "{error:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no factory when L2 cannot be read");
    assert_eq!(s.bento.store("main").unwrap().pending_locks(), 0, "lock released after the L2 error");
    assert!(matches!(s.bento.set("k", 1u32).await, Err(Error::L2 { .. })));
    s.l2.counters.fail(false);
    assert_eq!(s.bento.get_or_set("k", counted(&calls, 2u32)).await.unwrap(), 2, "the key is not stuck");
}

#[tokio::test]
async fn with_l1_l2_errors_are_suppressed_by_default() {
    let s = setup(&Backend::Memory, "err_suppressed", SetupOptions::default()).await;
    s.l2.counters.fail(true);
    assert!(!s.bento.set("k", 1u32).await.unwrap(), "L2 did not take it");
    assert_eq!(s.bento.get::<u32>("k").await.unwrap(), Some(1), "served by L1");
    let value = s.bento.get_or_set("other", |_ctx| async { Ok::<_, bento::BoxError>(5u32) }).await.unwrap();
    assert_eq!(value, 5);
    let error = s.bento.set("k", 1u32).suppress_l2_errors(false).await.unwrap_err();
    assert!(matches!(error, Error::L2 { .. }), "{error:?}");
}

#[tokio::test]
async fn the_bus_is_not_notified_when_the_l2_write_failed() {
    let hub = MemoryBus::new();
    let node = BusNode::new(hub.connect(), Default::default());
    let driver = CountingDriver::new(Backend::Memory.driver().await);
    let store = Store::builder().l1(L1Options::default()).l2(driver.clone()).bus(node.clone());
    let bento = Bento::builder().store("main", store).build().await.unwrap();
    bento.set("a", 1u32).await.unwrap();
    node.flushed().await;
    assert_eq!(node.stats().published, 1);
    driver.counters.fail(true);
    bento.set("b", 1u32).await.unwrap();
    node.flushed().await;
    assert_eq!(node.stats().published, 1, "no notification for a write other nodes cannot read");
}

#[tokio::test]
async fn factory_panics_become_errors() {
    let s = setup(&Backend::Memory, "err_panic", SetupOptions::default()).await;
    let error = s
        .bento
        .get_or_set("k", |_ctx: bento::FactoryContext<u32>| async move {
            if true {
                panic!("kaboom");
            }
            Ok::<_, bento::BoxError>(1)
        })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("kaboom"), "{error}");
    assert_eq!(s.bento.store("main").unwrap().pending_locks(), 0);
    assert_eq!(s.bento.get_or_set("k", |_ctx| async { Ok::<_, bento::BoxError>(2u32) }).await.unwrap(), 2);
}

#[tokio::test]
async fn background_errors_reach_only_on_factory_error() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    let driver = Backend::Memory.driver().await;
    let bento = Bento::builder()
        .options(CacheOptions::new().grace(ms(60_000)))
        .store("main", Store::builder().l1(L1Options::default()).l2(driver))
        .on_factory_error(move |error| {
            sink.lock().unwrap().push(
                error.to_string()
                    + if matches!(error, Error::Factory { background: true, .. }) { " [background]" } else { "" },
            )
        })
        .build()
        .await
        .unwrap();
    bento.set("k", 1u32).ttl(ms(20)).await.unwrap();
    tokio::time::sleep(ms(50)).await;
    // Stale-while-revalidate: the caller gets the stale value, the error
    // happens later in the background.
    let value = bento
        .get_or_set("k", |_ctx: bento::FactoryContext<u32>| async move {
            tokio::time::sleep(ms(50)).await;
            Err::<u32, _>(bento::BoxError::from("late failure"))
        })
        .await
        .unwrap();
    assert_eq!(value, 1);
    tokio::time::sleep(ms(200)).await;
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("late failure") && errors[0].ends_with("[background]"), "{errors:?}");
}

#[tokio::test]
async fn circuit_breaker_skips_l2_after_an_error() {
    let s = setup(
        &Backend::Memory,
        "err_breaker",
        SetupOptions { options: CacheOptions::new().l2_circuit_breaker_duration(ms(300)), ..Default::default() },
    )
    .await;
    s.l2.counters.fail(true);
    s.bento.get::<u32>("a").await.unwrap();
    let after_first = s.l2.counters.gets();
    s.l2.counters.fail(false);
    s.bento.get::<u32>("b").await.unwrap();
    assert_eq!(s.l2.counters.gets(), after_first, "L2 skipped while the breaker is open");
    tokio::time::sleep(ms(350)).await;
    s.bento.get::<u32>("c").await.unwrap();
    assert_eq!(s.l2.counters.gets(), after_first + 1, "L2 used again after the breaker duration");
}

#[tokio::test]
async fn invalid_options_are_rejected() {
    let bento = Bento::builder().build().await.unwrap();
    let error = bento.set("k", 1u32).ttl(Duration::ZERO).await.unwrap_err();
    assert!(matches!(error, Error::InvalidOptions(_)), "{error:?}");
    let error = Bento::builder().store("x", Store::builder()).build().await.unwrap_err();
    assert!(error.to_string().contains("neither an L1 nor an L2"), "{error}");
}

/// Keys served from L1 (fresh) and from grace (stale) while L2 is down.
async fn outage_under_load(bento: &Bento, break_l2: impl Fn(), restore_l2: impl Fn(), label: &str) {
    for i in 0..20u64 {
        bento.set(&format!("fresh{i}"), i).ttl(ms(60_000)).await.unwrap();
        bento.set(&format!("stale{i}"), i).ttl(ms(10)).grace(ms(60_000)).await.unwrap();
    }
    tokio::time::sleep(ms(50)).await;
    break_l2();
    // The outage is real: an unsuppressed L2 write fails.
    let deadline = Instant::now() + ms(2_000);
    while bento.set("probe", 1u64).suppress_l2_errors(false).await.is_ok() {
        assert!(Instant::now() < deadline, "{label}: L2 still accepts writes after the cut");
        tokio::time::sleep(ms(20)).await;
    }
    let started = Instant::now();
    let mut callers = Vec::new();
    for round in 0..12u64 {
        for i in 0..20u64 {
            let cache = bento.clone();
            callers.push(tokio::spawn(async move {
                let call_started = Instant::now();
                // fresh: L1 hit. stale: lock, L2 read (fails), failing
                // factory, graced value. missing: L2 read fails, the factory
                // runs and its value is served (the L2 write fails).
                let (key, value) = match round % 3 {
                    0 => {
                        let key = format!("fresh{i}");
                        let value =
                            cache.get_or_set(&key, |_ctx| async { Err::<u64, _>(bento::BoxError::from("down")) }).await;
                        (key, value)
                    }
                    1 => {
                        let key = format!("stale{i}");
                        let value = cache
                            .get_or_set(&key, |_ctx| async { Err::<u64, _>(bento::BoxError::from("down")) })
                            .grace(ms(60_000))
                            .no_timeout()
                            .hard_timeout(ms(1_000))
                            .await;
                        (key, value)
                    }
                    _ => {
                        let key = format!("missing{round}_{i}");
                        let value = cache
                            .get_or_set(&key, move |_ctx| async move { Ok::<_, bento::BoxError>(i) })
                            .hard_timeout(ms(1_000))
                            .await;
                        (key, value)
                    }
                };
                (key, value, call_started.elapsed())
            }));
        }
    }
    for caller in callers {
        let (key, value, took) = caller.await.expect("no panic");
        let expected: u64 = key.rsplit(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();
        assert_eq!(value.unwrap_or_else(|e| panic!("{label}: {key}: {e}")), expected, "{label}: {key}");
        assert!(took < ms(1_500), "{label}: {key} took {took:?}");
    }
    assert!(started.elapsed() < ms(5_000), "{label}: {:?}", started.elapsed());
    restore_l2();
    // Writes resume once the backend is back (the driver reconnects).
    let deadline = Instant::now() + ms(5_000);
    loop {
        if bento.set("after", 1u64).suppress_l2_errors(false).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "{label}: L2 writes did not resume");
        tokio::time::sleep(ms(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_l2_failing_under_load() {
    let s = setup(&Backend::Memory, "err_outage", SetupOptions::default()).await;
    let counters = s.l2.counters.clone();
    let restore = counters.clone();
    outage_under_load(&s.bento, move || counters.fail(true), move || restore.fail(false), "memory").await;
    assert!(s.raw.get(&format!("{}:after", s.prefix)).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cut_by_a_proxy_under_load() {
    if !redis_plugin_built() {
        eprintln!("SKIP redis_cut_by_a_proxy_under_load: bento-driver-redis-plugin is not built");
        return;
    }
    let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, "redis_cut_by_a_proxy_under_load") else {
        return;
    };
    // The proxy owns a runtime: start (and later drop) it off the async threads.
    let target = bento_testkit::host_port(&url);
    let proxy = Arc::new(tokio::task::spawn_blocking(move || bento_testkit::TcpProxy::start(&target)).await.unwrap());
    let driver = redis_driver(&format!("redis://{}", proxy.address())).await;
    let prefix = unique_prefix("err_redis_outage");
    let store = Store::builder().l1(L1Options::default()).l2(driver).options(CacheOptions::new().prefix(&prefix));
    let bento = Bento::builder().store("main", store).build().await.unwrap();
    let (cut, restore) = (proxy.clone(), proxy.clone());
    outage_under_load(&bento, move || cut.cut(), move || restore.restore(), "redis").await;
    let direct = redis_driver(&url).await;
    assert!(direct.get(&format!("{prefix}:after")).await.unwrap().is_some(), "written to the real Redis");
    direct.namespace(&prefix).unwrap().clear().await.unwrap();
    drop(bento);
    tokio::task::spawn_blocking(move || drop(proxy)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_hanging_disconnect_times_out() {
    let driver = CountingDriver::new(Backend::Memory.driver().await);
    driver.counters.hang_disconnect.store(true, Ordering::SeqCst);
    let store = Store::builder().l1(L1Options::default()).l2(driver);
    let bento = Bento::builder().store("main", store).build().await.unwrap();
    bento.set("k", 1u32).await.unwrap();
    // Paused clock: the timeout elapses as soon as nothing else can run.
    let error = bento.disconnect_all().await.unwrap_err();
    match error {
        Error::L2 { source, .. } => assert_eq!(source.kind, bento::ErrorKind::TIMEOUT, "{source}"),
        other => panic!("{other:?}"),
    }
}

/// JSON, except that encoding fails while `failing` is set.
#[derive(Default)]
struct FailingEncoder {
    failing: AtomicBool,
}

impl Serializer for FailingEncoder {
    fn serialize(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, BoxError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err("the encoder is broken".into());
        }
        JsonSerializer.serialize(value)
    }

    fn deserialize(
        &self,
        bytes: &[u8],
        visit: &mut dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error>,
    ) -> Result<(), BoxError> {
        JsonSerializer.deserialize(bytes, visit)
    }
}

#[tokio::test]
async fn a_serializer_failure_while_expiring_is_a_serialization_error_not_an_l2_one() {
    let encoder = Arc::new(FailingEncoder::default());
    let driver = CountingDriver::new(Backend::Memory.driver().await);
    let store = Store::builder()
        .l1(L1Options::default())
        .l2(driver.clone())
        .serializer(encoder.clone())
        .options(CacheOptions::new().grace(ms(60_000)).l2_circuit_breaker_duration(ms(60_000)));
    let bento = Bento::builder().store("main", store).build().await.unwrap();
    bento.set("k", 1u32).await.unwrap();
    encoder.failing.store(true, Ordering::SeqCst);
    // L2 errors are suppressed (the store has an L1); this one is not one.
    let error = bento.expire("k").await.unwrap_err();
    assert!(matches!(&error, Error::Serialization { key, .. } if key == "k"), "{error:?}");
    encoder.failing.store(false, Ordering::SeqCst);
    // The breaker stayed closed: L2 answers the next call.
    let gets = driver.counters.gets();
    bento.expire("k").await.unwrap();
    assert_eq!(driver.counters.gets(), gets + 1, "L2 was not skipped after a serializer failure");
}

/// Armed, a [`Grenade`] panics when dropped.
static ARMED: AtomicBool = AtomicBool::new(false);

/// A cached value whose `Drop` panics once armed.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Grenade(u32);

impl Drop for Grenade {
    fn drop(&mut self) {
        if ARMED.load(Ordering::SeqCst) && !std::thread::panicking() {
            panic!("a value panicking in Drop");
        }
    }
}

#[tokio::test]
async fn a_value_that_panics_when_dropped_does_not_break_the_l1() {
    let bento = Bento::builder().build().await.unwrap();
    bento.set("grenade", Grenade(1)).await.unwrap();
    bento.set("other", 1u32).await.unwrap();
    // Clearing drops every value while holding the L1's write locks: a
    // panic escaping there would poison them for every later read.
    ARMED.store(true, Ordering::SeqCst);
    bento.clear().await.unwrap();
    ARMED.store(false, Ordering::SeqCst);
    for key in ["grenade", "other", "k"] {
        assert!(bento.set(key, 2u32).await.unwrap());
        assert_eq!(bento.get::<u32>(key).await.unwrap(), Some(2), "{key}");
    }
}
