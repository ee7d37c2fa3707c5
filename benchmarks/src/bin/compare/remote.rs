//! Redis paths: the redis plugin and `bento` stores over it next to raw
//! redis-rs (`ConnectionManager`), same server, same process, interleaved.
//!
//! The caller's runtime is a 2-worker multi-thread tokio runtime. Raw
//! redis-rs runs in two placements: its connection task on the caller's
//! runtime ("raw here") and on a runtime of its own ("raw elsewhere", as the
//! plugin's connection lives on the plugin's runtime). "64 callers" is
//! measured both as 64 spawned tasks and as 64 futures joined in one task;
//! every caller runs its operations one after the other. CPU time is the
//! whole process's (`CLOCK_PROCESS_CPUTIME_ID`: caller runtime, plugin
//! runtimes, bus threads; not the Redis server), and so are the context
//! switches per operation (summed over the process's threads): a round trip
//! costs about one, and a hand-over between threads shows up as more.

use crate::stats::{interleaved, process_context_switches, process_cpu, Metric, Results, Sample, Subject};
use crate::User;
use bento::bus::{BusNode, BusNodeOptions};
use bento::{Bento, BoxError, CacheOptions, Driver, DriverOptions, L1Options, Plugin, Store};
use redis::aio::ConnectionManager;
use std::future::{Future, IntoFuture};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Concurrent callers of the "64 callers" rows.
const CALLERS: u64 = 64;
/// Operations per caller and round at 64 callers.
const PER_CALLER: u64 = 200;
/// Sequential operations per round with one caller (short rounds, as on
/// the write paths: see [`WRITES`]).
const SEQUENTIAL: u64 = 300;
/// Sequential operations per round on the (slower) write paths: short
/// rounds, [`SHORT_ROUNDS_PER_ROUND`] times as many. A round trip on this
/// VM takes either ~25 µs or ~65 µs depending on whether the vCPU it wakes
/// was idle, and that state lasts for a while; in short rounds the subjects
/// compared share it far more often than in long ones.
const WRITES: u64 = 100;
/// How many rounds of the Redis sections with one caller (the plugin
/// `get` section and the write paths) run per requested round (`--rounds`).
const SHORT_ROUNDS_PER_ROUND: usize = 5;
const TTL: Duration = Duration::from_secs(600);

/// How the operations of one round are issued.
#[derive(Debug, Clone, Copy)]
enum Callers {
    /// One task, operations one after the other.
    One,
    /// 64 spawned tasks.
    Tasks,
    /// 64 futures joined in one spawned task.
    Joined,
}

/// Run one round of `op` on `runtime` as `callers` say; process CPU time.
fn round<F, Fut>(runtime: &Runtime, callers: Callers, op: F) -> Sample
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    measured(|| match callers {
        Callers::One => {
            let task = runtime.spawn(async move {
                for i in 0..SEQUENTIAL {
                    op(i).await;
                }
            });
            runtime.block_on(task).expect("bench task");
            SEQUENTIAL
        }
        Callers::Tasks => {
            runtime.block_on(async {
                let tasks: Vec<_> = (0..CALLERS)
                    .map(|caller| {
                        let op = op.clone();
                        tokio::spawn(async move {
                            for i in 0..PER_CALLER {
                                op(caller * PER_CALLER + i).await;
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("bench task");
                }
            });
            CALLERS * PER_CALLER
        }
        Callers::Joined => {
            let task = runtime.spawn(async move {
                let callers = (0..CALLERS).map(|caller| {
                    let op = &op;
                    async move {
                        for i in 0..PER_CALLER {
                            op(caller * PER_CALLER + i).await;
                        }
                    }
                });
                futures::future::join_all(callers).await;
            });
            runtime.block_on(task).expect("bench task");
            CALLERS * PER_CALLER
        }
    })
}

/// Like [`round`] with `ops` sequential operations instead of [`SEQUENTIAL`].
fn sequential<F, Fut>(runtime: &Runtime, ops: u64, op: F) -> Sample
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    measured(|| {
        let task = runtime.spawn(async move {
            for i in 0..ops {
                op(i).await;
            }
        });
        runtime.block_on(task).expect("bench task");
        ops
    })
}

/// Wall time, process CPU time and context switches of `run`, which
/// returns how many operations it completed.
fn measured(run: impl FnOnce() -> u64) -> Sample {
    let switches = process_context_switches();
    let (started, cpu) = (Instant::now(), process_cpu());
    let ops = run();
    let (wall, cpu) = (started.elapsed(), process_cpu() - cpu);
    let switches = switches.zip(process_context_switches()).map(|(before, after)| after.saturating_sub(before));
    Sample { wall, cpu, ops, switches }
}

/// Everything the Redis sections share.
struct Setup {
    runtime: Runtime,
    _other_runtime: Runtime,
    url: String,
    /// Driver, bento and raw keys all live under this prefix.
    prefix: String,
    raw_here: ConnectionManager,
    raw_elsewhere: ConnectionManager,
    driver: Driver,
}

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

impl Setup {
    fn new(url: String) -> Setup {
        let runtime = multi_thread();
        let other_runtime = multi_thread();
        let prefix = format!("bento_compare_{}", std::process::id());
        let plugin = Plugin::load(bento_testkit::plugin_path("bento-driver-redis")).expect("the redis plugin loads");
        let options = serde_json::json!({ "url": url }).to_string();
        let (raw_here, driver) = runtime.block_on(async {
            let raw = ConnectionManager::new(redis::Client::open(url.as_str()).expect("URL")).await.expect("raw");
            let driver =
                plugin.create_driver(&options, DriverOptions::with_prefix(&prefix)).await.expect("plugin driver");
            (raw, driver)
        });
        let raw_elsewhere = other_runtime.block_on(async {
            ConnectionManager::new(redis::Client::open(url.as_str()).expect("URL")).await.expect("raw")
        });
        Setup { runtime, _other_runtime: other_runtime, url, prefix, raw_here, raw_elsewhere, driver }
    }

    fn bus(&self) -> BusNode {
        self.bus_from(&bento_testkit::plugin_path("bento-bus-redis"), None)
    }

    /// A bus node over the redis bus plugin file at `path`, `extra` options
    /// (a JSON object) added to its URL.
    fn bus_from(&self, path: &std::path::Path, extra: Option<&str>) -> BusNode {
        let plugin = Plugin::load(path).expect("the redis bus plugin loads");
        let mut options = serde_json::json!({ "url": self.url });
        if let Some(extra) = extra {
            let extra: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(extra).expect("bus B options are a JSON object");
            options.as_object_mut().expect("options object").extend(extra);
        }
        let bus = self.runtime.block_on(plugin.create_bus(&options.to_string())).expect("bus connects");
        BusNode::new(bus, BusNodeOptions::default())
    }

    /// A `bento` with one store over the plugin driver: L1 when `l1`, the
    /// bus when given, under `self.prefix:<name>`.
    fn bento(&self, name: &str, l1: bool, bus: Option<BusNode>) -> Arc<Bento> {
        let mut store = Store::builder().l2(self.driver.clone()).options(CacheOptions::new().prefix(name).ttl(TTL));
        if l1 {
            store = store.l1(L1Options::default());
        }
        if let Some(bus) = bus {
            store = store.bus(bus);
        }
        Arc::new(self.runtime.block_on(Bento::builder().store(name, store).build()).expect("bento builds"))
    }
}

/// Run the Redis sections; `None` when Redis is unreachable.
pub fn run(rounds: usize) -> Option<String> {
    let url = bento_testkit::require(bento_testkit::Service::Redis, "compare: redis sections")?;
    let s = Setup::new(url);
    let mut report = String::new();
    report.push_str(&plugin_get(&s, rounds));
    report.push_str(&l2_only_get(&s, rounds));
    report.push_str(&writes(&s, rounds));
    s.runtime.block_on(s.driver.clear()).expect("clean up the bench keys");
    Some(report)
}

/// The redis plugin's `get` vs raw redis-rs, 1 and 64 callers.
fn plugin_get(s: &Setup, rounds: usize) -> String {
    const KEY: &str = "plugin_get";
    let stored: Arc<str> = format!("{}:{KEY}", s.prefix).into();
    s.runtime.block_on(s.driver.set(KEY, vec![b'x'; 100], None)).expect("seed");
    let plugin = {
        let driver = s.driver.clone();
        move |_: u64| {
            let driver = driver.clone();
            async move {
                black_box(driver.get(KEY).await.expect("plugin get").expect("the key exists"));
            }
        }
    };
    let raw_get = |connection: &ConnectionManager| {
        let (connection, stored) = (connection.clone(), stored.clone());
        move |_: u64| {
            let (mut connection, key) = (connection.clone(), stored.clone());
            async move {
                let value: Option<Vec<u8>> =
                    redis::cmd("GET").arg(&*key).query_async(&mut connection).await.expect("GET");
                black_box(value.expect("the key exists"));
            }
        }
    };
    let (here, elsewhere) = (raw_get(&s.raw_here), raw_get(&s.raw_elsewhere));
    // A second build of the plugin (another file, so its own runtime) to
    // A/B a plugin change in one run: COMPARE_REDIS_PLUGIN_B=path/to/.so;
    // COMPARE_REDIS_PLUGIN_B_OPTIONS='{"io":"plugin"}' adds options to its
    // driver's (to A/B an option with a copy of the same build).
    let plugin_b = std::env::var("COMPARE_REDIS_PLUGIN_B").ok().map(|path| {
        let mut options = serde_json::json!({ "url": s.url });
        if let Ok(extra) = std::env::var("COMPARE_REDIS_PLUGIN_B_OPTIONS") {
            let extra: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&extra).expect("COMPARE_REDIS_PLUGIN_B_OPTIONS is a JSON object");
            options.as_object_mut().expect("options object").extend(extra);
        }
        let options = options.to_string();
        let plugin = Plugin::load(&path).expect("plugin B loads");
        let driver = s
            .runtime
            .block_on(plugin.create_driver(&options, DriverOptions::with_prefix(&s.prefix)))
            .expect("plugin B driver");
        move |_: u64| {
            let driver = driver.clone();
            async move {
                black_box(driver.get(KEY).await.expect("plugin B get").expect("the key exists"));
            }
        }
    });
    let rt = &s.runtime;
    let mut subjects = Vec::new();
    for (mode, callers) in [("1 caller", Callers::One), ("64 tasks", Callers::Tasks), ("64 joined", Callers::Joined)] {
        let (here, elsewhere, plugin) = (here.clone(), elsewhere.clone(), plugin.clone());
        subjects.push(Subject::new(format!("{mode}: raw here"), move || round(rt, callers, here.clone())));
        subjects.push(Subject::new(format!("{mode}: raw elsewhere"), move || round(rt, callers, elsewhere.clone())));
        subjects.push(Subject::new(format!("{mode}: plugin"), move || round(rt, callers, plugin.clone())));
        if let Some(plugin_b) = plugin_b.clone() {
            subjects.push(Subject::new(format!("{mode}: plugin B"), move || round(rt, callers, plugin_b.clone())));
        }
    }
    let mut r =
        interleaved("redis plugin get vs raw redis-rs (100-byte value)", rounds * SHORT_ROUNDS_PER_ROUND, subjects);
    if plugin_b.is_some() {
        for mode in ["1 caller", "64 tasks", "64 joined"] {
            let (subject, baseline) = (format!("{mode}: plugin"), format!("{mode}: plugin B"));
            r.check(&format!("{mode}: plugin vs plugin B"), &subject, &baseline, Metric::Throughput, None);
            r.check(&format!("{mode}: plugin vs plugin B, CPU"), &subject, &baseline, Metric::Cpu, None);
        }
    }
    let at_most = Some((1.05, true));
    r.check("1 caller vs raw here", "1 caller: plugin", "1 caller: raw here", Metric::Wall, at_most);
    r.check("1 caller vs raw elsewhere", "1 caller: plugin", "1 caller: raw elsewhere", Metric::Wall, at_most);
    let at_least = Some((0.91, false));
    for mode in ["64 tasks", "64 joined"] {
        for raw in ["raw here", "raw elsewhere"] {
            let (subject, baseline) = (format!("{mode}: plugin"), format!("{mode}: {raw}"));
            r.check(&format!("{mode} vs {raw}"), &subject, &baseline, Metric::Throughput, at_least);
        }
        let (subject, baseline) = (format!("{mode}: plugin"), format!("{mode}: raw here"));
        r.check(&format!("{mode} vs raw here, CPU"), &subject, &baseline, Metric::Cpu, None);
    }
    r.report().to_string()
}

/// `bento` L2-only `get` vs the plugin driver called directly, 64 callers.
fn l2_only_get(s: &Setup, rounds: usize) -> String {
    const KEY: &str = "user:1";
    let bento = s.bento("l2only", false, None);
    s.runtime.block_on(bento.set(KEY, User { id: 1, name: "user number 1".into() }).into_future()).expect("seed");
    let direct_driver = s.driver.namespace("l2only").expect("namespace");
    let seeded = s.runtime.block_on(direct_driver.get(KEY)).expect("driver get");
    assert!(seeded.is_some(), "the plugin driver sees the entry bento wrote");
    let via_bento = move |_: u64| {
        let bento = bento.clone();
        async move {
            let value: Option<User> = bento.get(KEY).await.expect("bento get");
            black_box(value.expect("the key exists"));
        }
    };
    let direct = move |_: u64| {
        let driver = direct_driver.clone();
        async move {
            black_box(driver.get(KEY).await.expect("plugin get").expect("the key exists"));
        }
    };
    let rt = &s.runtime;
    let mut subjects = Vec::new();
    for (mode, callers) in [("64 tasks", Callers::Tasks), ("64 joined", Callers::Joined)] {
        let (via_bento, direct) = (via_bento.clone(), direct.clone());
        subjects.push(Subject::new(format!("{mode}: plugin driver"), move || round(rt, callers, direct.clone())));
        subjects
            .push(Subject::new(format!("{mode}: bento L2-only get"), move || round(rt, callers, via_bento.clone())));
    }
    let mut r = interleaved("bento L2-only get (User) vs the plugin driver directly, 64 callers", rounds, subjects);
    for mode in ["64 tasks", "64 joined"] {
        let (subject, baseline) = (format!("{mode}: bento L2-only get"), format!("{mode}: plugin driver"));
        r.check(mode, &subject, &baseline, Metric::Throughput, Some((0.85, false)));
        r.check(&format!("{mode}, CPU"), &subject, &baseline, Metric::Cpu, None);
    }
    r.report().to_string()
}

/// Fresh keys for write paths: unique across rounds and subjects.
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

fn fresh() -> u64 {
    NEXT_KEY.fetch_add(1, Ordering::Relaxed)
}

/// `get_or_set` misses and `set` with the bus vs the raw commands they
/// need, one caller.
fn writes(s: &Setup, rounds: usize) -> String {
    let tiered = s.bento("tiered", true, None);
    let with_bus = s.bento("bus", true, Some(s.bus()));
    let raw_prefix: Arc<str> = format!("{}:raw:", s.prefix).into();
    // About the size of the entry bento writes for a `User` (JSON with
    // its timestamps) and of a bus message naming one key.
    let entry = Arc::new(vec![b'e'; 110]);
    let message = Arc::new(vec![b'm'; 60]);
    let channel = format!("{}:raw-channel", s.prefix);

    let raw = s.raw_here.clone();
    let raw_get_set = {
        let (raw, raw_prefix, entry) = (raw.clone(), raw_prefix.clone(), entry.clone());
        move |publish: Option<(Arc<Vec<u8>>, String)>| {
            let (raw, raw_prefix, entry) = (raw.clone(), raw_prefix.clone(), entry.clone());
            move |_: u64| {
                let (mut raw, entry, publish) = (raw.clone(), entry.clone(), publish.clone());
                let key = format!("{raw_prefix}{}", fresh());
                async move {
                    let found: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut raw).await.expect("GET");
                    assert!(found.is_none());
                    let mut set = redis::cmd("SET");
                    set.arg(&key).arg(&**entry).arg("PX").arg(TTL.as_millis() as u64);
                    set.query_async::<()>(&mut raw).await.expect("SET");
                    if let Some((message, channel)) = publish {
                        let mut publish = redis::cmd("PUBLISH");
                        publish.arg(&channel).arg(&**message);
                        publish.query_async::<()>(&mut raw).await.expect("PUBLISH");
                    }
                }
            }
        }
    };
    let raw_set = |publish: bool| {
        let (raw, raw_prefix, entry, message, channel) =
            (raw.clone(), raw_prefix.clone(), entry.clone(), message.clone(), channel.clone());
        move |i: u64| {
            let (mut raw, entry, message, channel) = (raw.clone(), entry.clone(), message.clone(), channel.clone());
            let key = format!("{raw_prefix}set:{}", i % 1000);
            async move {
                let mut set = redis::cmd("SET");
                set.arg(&key).arg(&**entry).arg("PX").arg(TTL.as_millis() as u64);
                set.query_async::<()>(&mut raw).await.expect("SET");
                if publish {
                    let mut publish = redis::cmd("PUBLISH");
                    publish.arg(&channel).arg(&**message);
                    publish.query_async::<()>(&mut raw).await.expect("PUBLISH");
                }
            }
        }
    };
    let miss = |bento: Arc<Bento>| {
        move |_: u64| {
            let bento = bento.clone();
            let key = format!("miss:{}", fresh());
            async move {
                let future =
                    bento.get_or_set(&key, |_ctx| async { Ok::<_, BoxError>(User { id: 7, name: "n".into() }) });
                black_box(future.await.expect("get_or_set"));
            }
        }
    };
    let set = |bento: Arc<Bento>| {
        move |i: u64| {
            let bento = bento.clone();
            let key = format!("set:{}", i % 1000);
            async move {
                black_box(bento.set(&key, User { id: i, name: "n".into() }).await.expect("set"));
            }
        }
    };
    // A second bus plugin build (another file, so its own runtime) to A/B
    // a bus change in one run: COMPARE_REDIS_BUS_B=path/to/.so;
    // COMPARE_REDIS_BUS_B_OPTIONS='{"io":"plugin"}' adds options to it.
    let bus_b = std::env::var("COMPARE_REDIS_BUS_B").ok().map(|path| {
        let extra = std::env::var("COMPARE_REDIS_BUS_B_OPTIONS").ok();
        s.bento("bus-b", true, Some(s.bus_from(std::path::Path::new(&path), extra.as_deref())))
    });
    let rt = &s.runtime;
    let publish = Some((message.clone(), channel.clone()));
    let (raw_miss, raw_miss_bus) = (raw_get_set(None), raw_get_set(publish));
    let (raw_set_only, raw_set_bus) = (raw_set(false), raw_set(true));
    let (miss_tiered, miss_bus) = (miss(tiered.clone()), miss(with_bus.clone()));
    let (set_tiered, set_bus) = (set(tiered), set(with_bus));
    let mut subjects = vec![
        Subject::new("raw GET + SET", || sequential(rt, WRITES, raw_miss.clone())),
        Subject::new("get_or_set miss, L1 + L2", || sequential(rt, WRITES, miss_tiered.clone())),
        Subject::new("raw GET + SET + PUBLISH", || sequential(rt, WRITES, raw_miss_bus.clone())),
        Subject::new("get_or_set miss, L1 + L2 + bus", || sequential(rt, WRITES, miss_bus.clone())),
        Subject::new("raw SET", || sequential(rt, WRITES, raw_set_only.clone())),
        Subject::new("set, L1 + L2", || sequential(rt, WRITES, set_tiered.clone())),
        Subject::new("raw SET + PUBLISH", || sequential(rt, WRITES, raw_set_bus.clone())),
        Subject::new("set, L1 + L2 + bus", || sequential(rt, WRITES, set_bus.clone())),
    ];
    if let Some(bento_b) = &bus_b {
        let (miss_b, set_b) = (miss(bento_b.clone()), set(bento_b.clone()));
        subjects.push(Subject::new("get_or_set miss, L1 + L2 + bus B", move || sequential(rt, WRITES, miss_b.clone())));
        subjects.push(Subject::new("set, L1 + L2 + bus B", move || sequential(rt, WRITES, set_b.clone())));
    }
    let mut r: Results =
        interleaved("write paths over Redis (User values, 1 caller)", rounds * SHORT_ROUNDS_PER_ROUND, subjects);
    if bus_b.is_some() {
        for (subject, baseline) in [
            ("get_or_set miss, L1 + L2 + bus", "get_or_set miss, L1 + L2 + bus B"),
            ("set, L1 + L2 + bus", "set, L1 + L2 + bus B"),
        ] {
            r.check(&format!("{subject} vs bus B"), subject, baseline, Metric::Wall, None);
            r.check(&format!("{subject} vs bus B, CPU"), subject, baseline, Metric::Cpu, None);
        }
    }
    let wall = Metric::Wall;
    r.check("get_or_set miss vs raw GET + SET", "get_or_set miss, L1 + L2", "raw GET + SET", wall, Some((1.5, true)));
    r.check(
        "get_or_set miss with bus vs raw GET + SET + PUBLISH",
        "get_or_set miss, L1 + L2 + bus",
        "raw GET + SET + PUBLISH",
        wall,
        Some((1.5, true)),
    );
    r.check("set vs raw SET", "set, L1 + L2", "raw SET", wall, None);
    r.check("set with bus vs raw SET + PUBLISH", "set, L1 + L2 + bus", "raw SET + PUBLISH", wall, Some((1.3, true)));
    r.report().to_string()
}
