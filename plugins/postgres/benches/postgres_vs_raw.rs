//! PostgreSQL `get`/`set` through the plugin (`bento::Plugin::load` →
//! `Driver::get/set`: FFI boundary, the plugin's own tokio runtime, the
//! deadpool pool) versus a raw tokio-postgres client running the same SQL
//! with prepared statements, in the same process against the same server.
//!
//! Build the plugin in the same profile first:
//! `cargo build --release -p bento-driver-postgres-plugin && cargo bench -p bento-driver-postgres --bench postgres_vs_raw`
//! (or point `BENTO_PLUGIN_DIR` at the folder holding the .so). After the
//! criterion groups, an interleaved A/B run prints plugin/raw ratios, which
//! are steadier than separate criterion runs on a shared machine. `set` is
//! bound by the server's commit fsync (`synchronous_commit`), so its ratio
//! is near 1 whatever the client does.

use bento::{Driver, DriverOptions, Plugin};
use criterion::{criterion_group, criterion_main, Criterion};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls, Statement};

const PREFIX: &str = "bench";
const KEY: &str = "key";

/// The driver's statements for table `t` (kept identical to `src/lib.rs`).
const GET_SQL: &str = "SELECT value FROM \"{t}\" WHERE key = $1 AND (expires_at IS NULL OR expires_at > now())";
const SET_SQL: &str = "INSERT INTO \"{t}\" (key, value, expires_at) \
                       VALUES ($1, $2, now() + $3::bigint * interval '1 millisecond') \
                       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at";

struct Subjects {
    runtime: Runtime,
    raw: Client,
    raw_get: Statement,
    raw_set: Statement,
    plugin: Driver,
    stored_key: Vec<u8>,
    value: Vec<u8>,
    url: String,
    table: String,
}

fn subjects() -> Option<Subjects> {
    let url = bento_testkit::require(bento_testkit::Service::Postgres, "postgres_vs_raw bench")?;
    let table = format!("bento_bench_{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-driver-postgres")).expect("the postgres plugin loads");
    let options = serde_json::json!({ "url": url, "table": table }).to_string();
    let value = vec![b'x'; 100];
    let (raw, raw_get, raw_set, driver) = runtime.block_on(async {
        let driver = plugin.create_driver(&options, DriverOptions::with_prefix(PREFIX)).await.expect("plugin driver");
        driver.set(KEY, value.clone(), None).await.expect("seed the key");
        let (raw, connection) = tokio_postgres::connect(&url, NoTls).await.expect("raw connection");
        tokio::spawn(connection);
        let raw_get = raw.prepare(&GET_SQL.replace("{t}", &table)).await.expect("prepare get");
        let raw_set = raw.prepare(&SET_SQL.replace("{t}", &table)).await.expect("prepare set");
        (raw, raw_get, raw_set, driver)
    });
    let stored_key = format!("{PREFIX}:{KEY}").into_bytes();
    Some(Subjects { runtime, raw, raw_get, raw_set, plugin: driver, stored_key, value, url, table })
}

async fn raw_get(s: &Subjects) -> Option<Vec<u8>> {
    let row = s.raw.query_opt(&s.raw_get, &[&s.stored_key]).await.expect("raw get");
    row.map(|row| row.get(0))
}

async fn raw_set(s: &Subjects) {
    let ttl: Option<i64> = None;
    s.raw.execute(&s.raw_set, &[&s.stored_key, &s.value, &ttl]).await.expect("raw set");
}

fn benches(c: &mut Criterion) {
    let Some(s) = subjects() else { return };
    let mut get = c.benchmark_group("postgres_get");
    get.bench_function("raw", |b| b.to_async(&s.runtime).iter(|| raw_get(&s)));
    get.bench_function("plugin", |b| b.to_async(&s.runtime).iter(|| async { s.plugin.get(KEY).await.expect("get") }));
    get.finish();

    let mut set = c.benchmark_group("postgres_set");
    set.bench_function("raw", |b| b.to_async(&s.runtime).iter(|| raw_set(&s)));
    set.bench_function("plugin", |b| {
        b.to_async(&s.runtime).iter(|| async { s.plugin.set(KEY, s.value.clone(), None).await.expect("set") })
    });
    set.finish();

    interleaved_ratios(&s);

    s.runtime.block_on(async {
        s.plugin.disconnect().await.expect("disconnect");
        let (client, connection) = tokio_postgres::connect(&s.url, NoTls).await.expect("cleanup connection");
        tokio::spawn(connection);
        client.batch_execute(&format!("DROP TABLE IF EXISTS \"{}\"", s.table)).await.expect("drop the bench table");
    });
}

/// Mean time per operation over `ops` sequential calls.
fn per_op<F: Future<Output = ()>>(runtime: &Runtime, ops: u32, operation: impl Fn() -> F) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..ops {
            operation().await;
        }
        started.elapsed() / ops
    })
}

/// Alternate short raw and plugin runs so both see the same server and
/// machine load (this machine is shared); prints median per-op times and
/// their ratio.
fn compare<R: Future<Output = ()>, P: Future<Output = ()>>(
    runtime: &Runtime,
    name: &str,
    ops: u32,
    raw: impl Fn() -> R,
    plugin: impl Fn() -> P,
) {
    const ROUNDS: usize = 11;
    let (mut raw_samples, mut plugin_samples) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        raw_samples.push(per_op(runtime, ops, &raw));
        plugin_samples.push(per_op(runtime, ops, &plugin));
    }
    raw_samples.sort();
    plugin_samples.sort();
    let (raw, plugin) = (raw_samples[ROUNDS / 2], plugin_samples[ROUNDS / 2]);
    println!(
        "interleaved {name}: raw {:.1} µs/op, plugin {:.1} µs/op, plugin/raw = {:.3}",
        raw.as_secs_f64() * 1e6,
        plugin.as_secs_f64() * 1e6,
        plugin.as_secs_f64() / raw.as_secs_f64()
    );
}

fn interleaved_ratios(s: &Subjects) {
    compare(
        &s.runtime,
        "get",
        500,
        || async {
            raw_get(s).await.expect("seeded key");
        },
        || async {
            s.plugin.get(KEY).await.expect("get").expect("seeded key");
        },
    );
    compare(
        &s.runtime,
        "set",
        30,
        || raw_set(s),
        || async {
            s.plugin.set(KEY, s.value.clone(), None).await.expect("set");
        },
    );
}

criterion_group! {
    name = postgres_vs_raw;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(postgres_vs_raw);
