//! What the plugin boundary costs: the memory driver called through the
//! loaded plugin (`bento::Driver`, FFI + boxed futures) vs the same driver
//! type linked natively, vs the bare store. SPEC §9 target: plugin ≤ native
//! + 150 ns/op.
//!
//! Run: `cargo build --release -p bento-driver-memory-plugin && cargo bench -p bento-benchmarks --bench ffi_overhead`

use bento::{DriverOptions, Plugin};
use bento_driver_memory::MemoryDriver;
use bento_memory_store::{MemoryStore, MemoryStoreOptions};
use bento_plugin_api::{CacheDriver, DriverConfig};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use futures::executor::block_on;
use std::hint::black_box;
use std::time::Duration;

const KEYS: usize = 1000;
const VALUE: &[u8] = &[7u8; 100];

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("user:{i}")).collect()
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    let ttl = Some(Duration::from_secs(3600));

    let store: MemoryStore<Vec<u8>> = MemoryStore::new(&MemoryStoreOptions::default(), "bench");
    let native = block_on(MemoryDriver::connect(
        MemoryStoreOptions::default(),
        DriverConfig { default_ttl: None, prefix: "bench".into() },
    ))
    .expect("native driver");
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-driver-memory")).expect("memory plugin loads");
    let driver = block_on(plugin.create_driver("{}", DriverOptions::with_prefix("bench"))).expect("plugin driver");
    for key in &keys {
        store.insert(key, VALUE.to_vec(), ttl, VALUE.len() as u64);
        block_on(native.set(key, VALUE.to_vec(), ttl)).expect("set");
        block_on(driver.set(key, VALUE.to_vec(), ttl)).expect("set");
    }

    let mut group = c.benchmark_group("memory_get_hit");
    let mut i = 0usize;
    group.bench_function(BenchmarkId::from_parameter("store_native_sync"), |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(store.get(&keys[i]))
        })
    });
    group.bench_function(BenchmarkId::from_parameter("driver_native_async"), |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(block_on(native.get(&keys[i])).expect("get"))
        })
    });
    group.bench_function(BenchmarkId::from_parameter("driver_via_plugin"), |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(block_on(driver.get(&keys[i])).expect("get"))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("memory_set");
    group.bench_function(BenchmarkId::from_parameter("store_native_sync"), |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(store.insert(&keys[i], VALUE.to_vec(), ttl, VALUE.len() as u64))
        })
    });
    group.bench_function(BenchmarkId::from_parameter("driver_native_async"), |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(block_on(native.set(&keys[i], VALUE.to_vec(), ttl)).expect("set"))
        })
    });
    group.bench_function(BenchmarkId::from_parameter("driver_via_plugin"), |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(block_on(driver.set(&keys[i], VALUE.to_vec(), ttl)).expect("set"))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
