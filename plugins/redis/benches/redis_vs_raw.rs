//! Redis `GET`/`SET` through the plugin (`bento::Plugin::load` →
//! `Driver::get/set`, crossing the FFI boundary and the plugin's own tokio
//! runtime) versus raw redis-rs (`ConnectionManager`) in the same process,
//! against the same server. SPEC target: plugin `get` ≤ 1.10× raw.
//!
//! Build the plugin in the same profile first:
//! `cargo build --release -p bento-driver-redis-plugin && cargo bench -p bento-driver-redis --bench redis_vs_raw`
//! (or point `BENTO_PLUGIN_DIR` at the folder holding the .so). After the
//! criterion groups, an interleaved A/B run prints the plugin/raw ratios.

use bento::{Driver, DriverOptions, Plugin};
use criterion::{criterion_group, criterion_main, Criterion};
use redis::aio::ConnectionManager;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const PREFIX: &str = "bento-bench-redis";
const KEY: &str = "key";
const CONCURRENCY: usize = 64;

struct Subjects {
    runtime: Runtime,
    /// Raw redis-rs whose connection task runs on the bench runtime.
    raw: ConnectionManager,
    /// Raw redis-rs whose connection task runs on another runtime, as the
    /// plugin's does: isolates the cost of the runtime hop.
    raw_elsewhere: ConnectionManager,
    _other_runtime: Runtime,
    plugin: Driver,
    stored_key: String,
    value: Vec<u8>,
}

fn subjects() -> Option<Subjects> {
    let url = bento_testkit::require(bento_testkit::Service::Redis, "redis_vs_raw bench")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-driver-redis")).expect("the redis plugin loads");
    let options = serde_json::json!({ "url": url }).to_string();
    let (raw, driver) = runtime.block_on(async {
        let client = redis::Client::open(url.as_str()).expect("valid URL");
        let raw = ConnectionManager::new(client).await.expect("raw connection");
        let driver = plugin.create_driver(&options, DriverOptions::with_prefix(PREFIX)).await.expect("plugin driver");
        (raw, driver)
    });
    let other_runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let raw_elsewhere = other_runtime.block_on(async {
        ConnectionManager::new(redis::Client::open(url.as_str()).expect("valid URL")).await.expect("raw connection")
    });
    let value = vec![b'x'; 100];
    runtime.block_on(driver.set(KEY, value.clone(), None)).expect("seed the key");
    Some(Subjects {
        runtime,
        raw,
        raw_elsewhere,
        _other_runtime: other_runtime,
        plugin: driver,
        stored_key: format!("{PREFIX}:{KEY}"),
        value,
    })
}

async fn raw_get(connection: &ConnectionManager, key: &str) -> Option<Vec<u8>> {
    let mut connection = connection.clone();
    redis::cmd("GET").arg(key).query_async(&mut connection).await.expect("raw GET")
}

async fn raw_set(connection: &ConnectionManager, key: &str, value: &[u8]) {
    let mut connection = connection.clone();
    redis::cmd("SET").arg(key).arg(value).query_async::<()>(&mut connection).await.expect("raw SET")
}

fn benches(c: &mut Criterion) {
    let Some(s) = subjects() else { return };
    let mut get = c.benchmark_group("redis_get");
    get.bench_function("raw", |b| b.to_async(&s.runtime).iter(|| raw_get(&s.raw, &s.stored_key)));
    get.bench_function("raw_other_runtime", |b| {
        b.to_async(&s.runtime).iter(|| raw_get(&s.raw_elsewhere, &s.stored_key))
    });
    get.bench_function("plugin", |b| b.to_async(&s.runtime).iter(|| async { s.plugin.get(KEY).await.expect("get") }));
    get.finish();

    let mut set = c.benchmark_group("redis_set");
    set.bench_function("raw", |b| b.to_async(&s.runtime).iter(|| raw_set(&s.raw, &s.stored_key, &s.value)));
    set.bench_function("plugin", |b| {
        b.to_async(&s.runtime).iter(|| async { s.plugin.set(KEY, s.value.clone(), None).await.expect("set") })
    });
    set.finish();

    let mut concurrent = c.benchmark_group("redis_get_64_concurrent");
    concurrent.bench_function("raw", |b| {
        b.to_async(&s.runtime)
            .iter(|| futures::future::join_all((0..CONCURRENCY).map(|_| raw_get(&s.raw, &s.stored_key))))
    });
    concurrent.bench_function("plugin", |b| {
        b.to_async(&s.runtime).iter(|| futures::future::join_all((0..CONCURRENCY).map(|_| s.plugin.get(KEY))))
    });
    concurrent.finish();

    interleaved_ratios(&s);
}

const ROUNDS: usize = 15;
const OPS: u32 = 2000;

type Operation<'a> = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + 'a>> + 'a>;

/// Mean time per operation over `OPS` sequential calls.
fn per_op(runtime: &Runtime, operation: &Operation<'_>) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..OPS {
            operation().await;
        }
        started.elapsed() / OPS
    })
}

/// Run the variants in alternation so all see the same server and machine
/// load; one line per variant: median µs/op and the ratio to the first.
fn compare(runtime: &Runtime, name: &str, variants: Vec<(&str, Operation<'_>)>) -> String {
    let mut samples = vec![Vec::new(); variants.len()];
    for _ in 0..ROUNDS {
        for (index, (_, operation)) in variants.iter().enumerate() {
            samples[index].push(per_op(runtime, operation));
        }
    }
    let medians: Vec<Duration> = samples
        .into_iter()
        .map(|mut samples| {
            samples.sort();
            samples[ROUNDS / 2]
        })
        .collect();
    let mut lines = format!("{name}:");
    for ((label, _), median) in variants.iter().zip(&medians) {
        lines.push_str(&format!(
            "\n    {label:<18} {:>7.1} µs/op  ({:.3}x raw)",
            median.as_secs_f64() * 1e6,
            median.as_secs_f64() / medians[0].as_secs_f64()
        ));
    }
    lines
}

fn interleaved_ratios(s: &Subjects) {
    let get = compare(
        &s.runtime,
        "get",
        vec![
            ("raw", Box::new(|| Box::pin(async { drop(raw_get(&s.raw, &s.stored_key).await) }))),
            (
                "raw_other_runtime",
                Box::new(|| Box::pin(async { drop(raw_get(&s.raw_elsewhere, &s.stored_key).await) })),
            ),
            ("plugin", Box::new(|| Box::pin(async { drop(s.plugin.get(KEY).await.expect("get")) }))),
        ],
    );
    let set = compare(
        &s.runtime,
        "set",
        vec![
            ("raw", Box::new(|| Box::pin(raw_set(&s.raw, &s.stored_key, &s.value)))),
            ("raw_other_runtime", Box::new(|| Box::pin(raw_set(&s.raw_elsewhere, &s.stored_key, &s.value)))),
            (
                "plugin",
                Box::new(|| {
                    Box::pin(async {
                        assert!(s.plugin.set(KEY, s.value.clone(), None).await.expect("set"));
                    })
                }),
            ),
        ],
    );
    println!("\ninterleaved A/B ({ROUNDS} rounds x {OPS} sequential ops, medians):\n  {get}\n  {set}");
}

criterion_group! {
    name = redis_vs_raw;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = benches
}
criterion_main!(redis_vs_raw);
