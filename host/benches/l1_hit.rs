//! L1 hit path through the full API (`get`, `get_or_set`) next to a bare
//! quick_cache `get` and the underlying `MemoryStore::get`, measured in the
//! same run (1 000 hot keys, `Arc` values, and a small struct cloned on
//! every hit), single-threaded and on 2 threads; plus `get` with the memory plugin as L1 (a "local" plugin: FFI
//! and a decode per hit) when it is built in release. Run:
//! `cargo build --release -p bento-driver-memory-plugin && cargo bench -p bento --bench l1_hit`.

use bento::{Bento, BoxError, DriverOptions, Plugin, Store};
use bento_memory_store::{MemoryStore, MemoryStoreOptions};
use criterion::{criterion_group, criterion_main, Criterion};
use futures::FutureExt;
use std::future::IntoFuture;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOT_KEYS: usize = 1_000;

type Value = Arc<String>;

/// The small struct shape: stored inline in the L1, a hit clones it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct User {
    id: u64,
    name: String,
}

fn keys() -> Vec<String> {
    (0..HOT_KEYS).map(|i| format!("user:{i}")).collect()
}

/// The value of an operation that must complete at once (an L1 hit), as
/// the caller's `op.await?` yields it.
#[inline(always)]
fn hit<T>(op: impl IntoFuture<Output = Result<T, bento::Error>>) -> T {
    match op.into_future().now_or_never() {
        Some(Ok(value)) => value,
        _ => panic!("not an L1 hit"),
    }
}

fn bento() -> Bento {
    let bento = Bento::builder().build().now_or_never().expect("no await without a bus").expect("builds");
    let users = bento.namespace("users").expect("namespace");
    for (id, key) in keys().into_iter().enumerate() {
        bento.set(&key, Arc::new(format!("value of {key}"))).into_future().now_or_never().unwrap().unwrap();
        let user = User { id: id as u64, name: format!("user number {id}") };
        users.set(&key, user).into_future().now_or_never().unwrap().unwrap();
    }
    bento
}

fn single_threaded(c: &mut Criterion) {
    let keys = keys();
    let bento = bento();
    let mut group = c.benchmark_group("l1_hit");

    let quick: quick_cache::sync::Cache<String, Value> = quick_cache::sync::Cache::new(HOT_KEYS * 2);
    let store: MemoryStore<Value> = MemoryStore::new(&MemoryStoreOptions::default(), "bentocache");
    for key in &keys {
        quick.insert(key.clone(), Arc::new(key.clone()));
        store.insert(key, Arc::new(key.clone()), None, 0);
    }
    let mut i = 0;
    group.bench_function("quick_cache_get", |b| {
        b.iter(|| {
            i = (i + 1) % HOT_KEYS;
            black_box(quick.get(keys[i].as_str()))
        })
    });
    group.bench_function("memory_store_get", |b| {
        b.iter(|| {
            i = (i + 1) % HOT_KEYS;
            black_box(store.get(&keys[i]))
        })
    });
    group.bench_function("bento_get", |b| {
        b.iter(|| {
            i = (i + 1) % HOT_KEYS;
            black_box(hit(bento.get::<Value>(&keys[i])))
        })
    });
    group.bench_function("bento_get_or_set", |b| {
        b.iter(|| {
            i = (i + 1) % HOT_KEYS;
            let future = bento.get_or_set(&keys[i], |_ctx| async { Ok::<_, BoxError>(Arc::new(String::new())) });
            black_box(hit(future))
        })
    });
    let quick_users: quick_cache::sync::Cache<String, User> = quick_cache::sync::Cache::new(HOT_KEYS * 2);
    for (id, key) in keys.iter().enumerate() {
        quick_users.insert(key.clone(), User { id: id as u64, name: format!("user number {id}") });
    }
    group.bench_function("quick_cache_get_user", |b| {
        b.iter(|| {
            i = (i + 1) % HOT_KEYS;
            black_box(quick_users.get(keys[i].as_str()))
        })
    });
    let users = bento.namespace("users").expect("namespace");
    group.bench_function("bento_get_user", |b| {
        b.iter(|| {
            i = (i + 1) % HOT_KEYS;
            black_box(hit(users.get::<User>(&keys[i])))
        })
    });
    if let Some(bento) = bento_with_plugin_l1() {
        group.bench_function("bento_get_plugin_l1", |b| {
            b.iter(|| {
                i = (i + 1) % HOT_KEYS;
                black_box(futures::executor::block_on(bento.get::<String>(&keys[i]).into_future()))
            })
        });
    }
    group.finish();
}

/// The same keys in a store whose L1 is the memory plugin.
fn bento_with_plugin_l1() -> Option<Bento> {
    let Some(path) = bento_testkit::find_plugin("bento-driver-memory") else {
        eprintln!(
            "SKIP bento_get_plugin_l1: the memory plugin is not built in {}",
            bento_testkit::plugin_dir().display()
        );
        return None;
    };
    futures::executor::block_on(async {
        let driver = Plugin::load(path).ok()?.create_driver("{}", DriverOptions::default()).await.ok()?;
        let bento = Bento::builder().store("main", Store::builder().l1_plugin(driver)).build().await.ok()?;
        for key in keys() {
            bento.set(&key, format!("value of {key}")).await.ok()?;
        }
        Some(bento)
    })
}

/// Wall time of `iters` operations split over two threads.
fn two_threads(iters: u64, op: impl Fn(usize) + Sync) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..2 {
            let op = &op;
            scope.spawn(move || {
                for n in 0..iters / 2 {
                    op((n as usize * 7 + thread * 500) % HOT_KEYS);
                }
            });
        }
    });
    started.elapsed()
}

fn multi_threaded(c: &mut Criterion) {
    let keys = keys();
    let bento = bento();
    let quick: quick_cache::sync::Cache<String, Value> = quick_cache::sync::Cache::new(HOT_KEYS * 2);
    for key in &keys {
        quick.insert(key.clone(), Arc::new(key.clone()));
    }
    let mut group = c.benchmark_group("l1_hit_2_threads");
    group.bench_function("quick_cache_get", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |i| {
                black_box(quick.get(keys[i].as_str()));
            })
        })
    });
    group.bench_function("bento_get", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |i| {
                black_box(hit(bento.get::<Value>(&keys[i])));
            })
        })
    });
    group.bench_function("bento_get_or_set", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |i| {
                let future = bento.get_or_set(&keys[i], |_ctx| async { Ok::<_, BoxError>(Arc::new(String::new())) });
                black_box(hit(future));
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = single_threaded, multi_threaded
}
criterion_main!(benches);
