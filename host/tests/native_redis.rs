//! Statically linked drivers and buses (issue 13): the bundled plugin
//! crates used as ordinary dependencies through [`bento::Native`] and
//! [`bento::NativeBus`], with typed options, on the test's own tokio
//! runtime.
//!
//! Several bundled crates link into one binary too: see `native_many.rs`.
//!
//! Against the real Redis of the environment (`BENTO_REDIS_URL`).

use bento::{Bento, BoxError, CacheOptions, DriverOptions, L1Options, Native, Store};
use bento_driver_redis::{RedisDriver, RedisOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A prefix no other run uses.
fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("native-test:{label}:{}-{nanos}", std::process::id())
}

async fn redis_l2(url: &str) -> Native<RedisDriver> {
    let options = RedisOptions { url: Some(url.to_string()), ..RedisOptions::default() };
    Native::connect(options, DriverOptions::default()).await.expect("redis driver connects")
}

#[tokio::test]
async fn a_tiered_store_over_the_native_redis_driver() {
    let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, "native redis store") else { return };
    let prefix = unique("store");
    let build = || async {
        let store = Store::builder()
            .l1(L1Options::default())
            .l2(redis_l2(&url).await)
            .options(CacheOptions::new().prefix(&prefix));
        Bento::builder().store("main", store).build().await.expect("builds")
    };
    let (a, b) = (build().await, build().await);
    let calls = Arc::new(AtomicUsize::new(0));
    let factory = |calls: Arc<AtomicUsize>| {
        move |_ctx| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, BoxError>(42u32)
        }
    };
    assert_eq!(a.get_or_set("answer", factory(calls.clone())).ttl(Duration::from_secs(30)).await.expect("a"), 42);
    // The second instance finds it in Redis: the factory ran once.
    assert_eq!(b.get_or_set("answer", factory(calls.clone())).ttl(Duration::from_secs(30)).await.expect("b"), 42);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    a.clear().await.expect("clear");
    a.disconnect_all().await.expect("disconnect a");
    b.disconnect_all().await.expect("disconnect b");
}
