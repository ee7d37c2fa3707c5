//! get/set throughput of the SQLite plugin, loaded through the host's loader
//! like an application would (release build of the plugin required:
//! `cargo build --release -p bento-driver-sqlite-plugin`, or set BENTO_PLUGIN_DIR).
//!
//! `cargo bench -p bento-driver-sqlite --bench sqlite_ops`

use bento::{DriverOptions, Plugin};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn sqlite_ops(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let directory = tempfile::tempdir().expect("a temp directory");
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-driver-sqlite")).expect("the release SQLite plugin");
    let options = serde_json::json!({ "path": directory.path().join("bench.db") }).to_string();
    let driver = runtime
        .block_on(plugin.create_driver(&options, DriverOptions::with_prefix("bench")))
        .expect("the SQLite driver connects");
    let value = vec![7u8; 1024];
    runtime.block_on(driver.set("hit", value.clone(), None)).expect("seed entry");

    let mut group = c.benchmark_group("sqlite");
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_hit_1KiB", |b| b.to_async(&runtime).iter(|| driver.get("hit")));
    group.bench_function("get_miss", |b| b.to_async(&runtime).iter(|| driver.get("missing")));
    group.bench_function("set_1KiB", |b| b.to_async(&runtime).iter(|| driver.set("written", value.clone(), None)));
    group.finish();
}

criterion_group!(benches, sqlite_ops);
criterion_main!(benches);
