//! Statically linked drivers and buses (issue 13): the bundled plugin
//! crates used as ordinary dependencies through [`bento::Native`] and
//! [`bento::NativeBus`], with typed options, on the test's own tokio
//! runtime.
//!
//! Several bundled crates link into one binary too: see `native_many.rs`.
//!
//! Against the real Redis of the environment (`BENTO_REDIS_URL`).

use bento::bus::BusNode;
use bento::{Bento, CacheOptions, L1Options, NativeBus, Store};
use bento_bus_redis::{RedisBus, RedisBusOptions};
use std::time::{Duration, Instant};

/// A prefix no other run uses.
fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("native-test:{label}:{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn the_native_redis_bus_keeps_two_instances_coherent() {
    let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, "native redis bus") else { return };
    let prefix = unique("bus");
    // L1-only instances: what one holds can only be dropped by the other's
    // message on the bus.
    let build = || async {
        let bus = NativeBus::<RedisBus>::connect(RedisBusOptions { url: url.clone(), ..RedisBusOptions::default() })
            .await
            .expect("bus connects");
        let store = Store::builder()
            .l1(L1Options::default())
            .bus(BusNode::new(bus, Default::default()))
            .options(CacheOptions::new().prefix(&prefix));
        Bento::builder().store("main", store).build().await.expect("builds")
    };
    let (a, b) = (build().await, build().await);
    b.set("greeting", "hello".to_string()).await.expect("b sets");
    a.delete("greeting").await.expect("a deletes");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = b.get::<String>("greeting").await.expect("b reads");
        if seen.is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "b still serves {seen:?} 5 s after a's delete");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And the other way round, for a write.
    a.set("greeting", "bonjour".to_string()).await.expect("a sets");
    b.set("greeting", "hallo".to_string()).await.expect("b overwrites");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = a.get::<String>("greeting").await.expect("a reads");
        if seen.as_deref() != Some("bonjour") {
            break;
        }
        assert!(Instant::now() < deadline, "a still serves its old value 5 s after b's write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.disconnect_all().await.expect("disconnect a");
    b.disconnect_all().await.expect("disconnect b");
}
