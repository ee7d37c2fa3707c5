//! The tiered miss path (`get_or_set` of a new key: L1 miss, lock, L2
//! read, factory, L1 + L2 write) next to the raw L2 round trips it is made
//! of (`get` + `set` through the plugin), with the memory plugin and — when
//! built and reachable — the Redis plugin. Run (plugins built in release
//! first): `cargo build --release -p bento-driver-memory-plugin -p bento-driver-redis-plugin
//! && cargo bench -p bento --bench tiered`.

use bento::{Bento, BoxError, CacheOptions, Driver, DriverOptions, L1Options, Plugin, Store};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

async fn driver(name: &str, options: &str) -> Option<Driver> {
    let Some(path) = bento_testkit::find_plugin(name) else {
        eprintln!("SKIP {name}: not built in {}", bento_testkit::plugin_dir().display());
        return None;
    };
    let plugin = Plugin::load(path).ok()?;
    plugin.create_driver(options, DriverOptions::default()).await.ok()
}

fn tiered(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut backends = vec![("memory", runtime.block_on(driver("bento-driver-memory", "{}")))];
    let redis_url = bento_testkit::Service::Redis.url();
    if bento_testkit::require(bento_testkit::Service::Redis, "tiered bench [redis]").is_some() {
        let options = serde_json::json!({ "url": redis_url }).to_string();
        backends.push(("redis", runtime.block_on(driver("bento-driver-redis", &options))));
    }
    let counter = AtomicU64::new(0);
    for (name, driver) in backends {
        let Some(driver) = driver else { continue };
        let prefix = format!("bench_tiered_{}", std::process::id());
        let raw = driver.namespace(&prefix).unwrap();
        let store = Store::builder()
            .l1(L1Options { max_items: Some(100_000), ..Default::default() })
            .l2(driver.clone())
            .options(CacheOptions::new().prefix(&prefix).ttl(Duration::from_secs(60)));
        let bento: Bento = runtime.block_on(Bento::builder().store("bench", store).build()).unwrap();
        let mut group = c.benchmark_group(format!("tiered_{name}"));
        runtime.block_on(raw.set("existing", b"{\"value\":1,\"tags\":[],\"createdAt\":1}".to_vec(), None)).unwrap();
        group.bench_function("raw_l2_get", |b| b.iter(|| black_box(runtime.block_on(raw.get("existing")).unwrap())));
        group.bench_function("raw_l2_get_plus_set", |b| {
            b.iter(|| {
                let key = format!("raw{}", counter.fetch_add(1, Ordering::Relaxed));
                black_box(runtime.block_on(raw.get(&key)).unwrap());
                black_box(
                    runtime.block_on(raw.set(&key, b"{\"value\":1}".to_vec(), Some(Duration::from_secs(60)))).unwrap(),
                );
            })
        });
        group.bench_function("get_or_set_miss", |b| {
            b.iter(|| {
                let key = format!("miss{}", counter.fetch_add(1, Ordering::Relaxed));
                let value: u64 = runtime
                    .block_on(bento.get_or_set(&key, |_ctx| async { Ok::<_, BoxError>(1u64) }).into_future())
                    .unwrap();
                black_box(value)
            })
        });
        group.finish();
        runtime.block_on(raw.clear()).unwrap();
    }
}

use std::future::IntoFuture;

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = tiered
}
criterion_main!(benches);
