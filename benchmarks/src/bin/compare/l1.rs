//! L1 hits: `bento` `get` / `get_or_set` next to bare quick_cache (the
//! floor), moka (sync `get`, future `get_with`), amalgam-cache (`try_get`,
//! `get_or_set`) and BentoCache 1.6.1 under Node, for two value shapes
//! (`Arc<String>` and a small struct, cloned on every hit), on 1 and 2
//! threads. CPU time is the measuring threads' own
//! (`CLOCK_THREAD_CPUTIME_ID`); for Node, the process's `cpuUsage()`.

use crate::stats::{in_processes, interleaved, on_this_thread, on_threads, Metric, Results, Subject};
use crate::{drive, node, User};
use bento::{Bento, BoxError};
use std::future::IntoFuture;
use std::hint::black_box;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

const HOT_KEYS: usize = 1_000;
const OPS: u64 = 300_000;

fn key_of(i: u64) -> usize {
    i as usize % HOT_KEYS
}

fn text(i: usize) -> Arc<String> {
    Arc::new(format!("value of user:{i}"))
}

fn user(i: usize) -> User {
    User { id: i as u64, name: format!("user number {i}") }
}

const TITLE: &str = "L1 hit (1 000 hot keys)";

/// Run the section and return its report. Each round runs in a process of
/// its own (`compare l1-child`, all subjects interleaved in it after a
/// warm-up pass): how long a hit takes varies from one process to the next
/// (BENCHMARKS.md, session 21), and bento's hit more than quick_cache's,
/// so one process's rounds would all share its luck. `COMPARE_SEED=n`
/// gives round `k` the order seed `n + k`.
pub fn run(rounds: usize) -> String {
    let node = node::available();
    let exe = std::env::current_exe().expect("the compare binary's path");
    let base_seed = std::env::var("COMPARE_SEED").ok().and_then(|seed| seed.parse::<u64>().ok());
    let mut results = in_processes(TITLE, rounds, |round| {
        let mut child = Command::new(&exe);
        child.arg("l1-child").stderr(Stdio::inherit());
        if let Some(seed) = base_seed {
            child.env("COMPARE_SEED", seed.wrapping_add(round as u64).to_string());
        }
        let output = child.output().expect("compare l1-child runs");
        assert!(output.status.success(), "compare l1-child failed ({})", output.status);
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON sample line from l1-child")).collect()
    });
    checks(&mut results, node);
    results.report().to_string()
}

/// The child: one round (after a warm-up pass), every sample printed as a
/// JSON line.
pub fn child() {
    print!("{}", measure(1).lines());
}

/// `rounds` interleaved rounds of every subject in this process.
fn measure(rounds: usize) -> Results {
    let keys: Vec<String> = (0..HOT_KEYS).map(|i| format!("user:{i}")).collect();
    // amalgam-cache starts its services on the ambient tokio runtime.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let _context = runtime.enter();

    let quick_text: quick_cache::sync::Cache<String, Arc<String>> = quick_cache::sync::Cache::new(HOT_KEYS * 2);
    let quick_user: quick_cache::sync::Cache<String, User> = quick_cache::sync::Cache::new(HOT_KEYS * 2);
    let moka_text: moka::sync::Cache<String, Arc<String>> = moka::sync::Cache::new(HOT_KEYS as u64 * 2);
    let moka_user: moka::sync::Cache<String, User> = moka::sync::Cache::new(HOT_KEYS as u64 * 2);
    let moka_future_text: moka::future::Cache<String, Arc<String>> = moka::future::Cache::new(HOT_KEYS as u64 * 2);
    let moka_future_user: moka::future::Cache<String, User> = moka::future::Cache::new(HOT_KEYS as u64 * 2);
    let an_hour = amalgam::EntryOptions::new(Duration::from_secs(3600));
    let amalgam_text: amalgam::Cache<Arc<String>> =
        amalgam::Cache::builder().default_options(an_hour.clone()).try_build().expect("amalgam cache");
    let amalgam_user: amalgam::Cache<User> =
        amalgam::Cache::builder().default_options(an_hour).try_build().expect("amalgam cache");
    let bento = drive(Bento::builder().build()).expect("bento builds");
    for (i, key) in keys.iter().enumerate() {
        quick_text.insert(key.clone(), text(i));
        quick_user.insert(key.clone(), user(i));
        moka_text.insert(key.clone(), text(i));
        moka_user.insert(key.clone(), user(i));
        drive(moka_future_text.insert(key.clone(), text(i)));
        drive(moka_future_user.insert(key.clone(), user(i)));
        runtime.block_on(amalgam_text.set(key.as_str(), text(i)).into_future()).expect("amalgam set");
        runtime.block_on(amalgam_user.set(key.as_str(), user(i)).into_future()).expect("amalgam set");
        drive(bento.set(key, text(i)).ttl(Duration::from_secs(3600))).expect("bento set");
        drive(bento.namespace("users").expect("namespace").set(key, user(i)).ttl(Duration::from_secs(3600)))
            .expect("bento set");
    }
    let users = bento.namespace("users").expect("namespace");
    moka_text.run_pending_tasks();
    moka_user.run_pending_tasks();
    drive(moka_future_text.run_pending_tasks());
    drive(moka_future_user.run_pending_tasks());

    let bento_get_text = |i: u64| {
        let value: Option<Arc<String>> = drive(bento.get(&keys[key_of(i)])).expect("bento get");
        black_box(value.expect("an L1 hit"));
    };
    let bento_gos_text = |i: u64| {
        let future = bento.get_or_set(&keys[key_of(i)], |_ctx| async { Ok::<_, BoxError>(Arc::new(String::new())) });
        black_box(drive(future).expect("bento get_or_set"));
    };
    let bento_get_user = |i: u64| {
        let value: Option<User> = drive(users.get(&keys[key_of(i)])).expect("bento get");
        black_box(value.expect("an L1 hit"));
    };
    let bento_gos_user = |i: u64| {
        let future = users.get_or_set(&keys[key_of(i)], |_ctx| async { Ok::<_, BoxError>(user(0)) });
        black_box(drive(future).expect("bento get_or_set"));
    };
    let quick_get_text = |i: u64| drop(black_box(quick_text.get(keys[key_of(i)].as_str()).expect("hit")));
    let quick_get_user = |i: u64| drop(black_box(quick_user.get(keys[key_of(i)].as_str()).expect("hit")));

    let mut subjects = vec![
        Subject::new("quick_cache get Arc<String>", || on_this_thread(OPS, quick_get_text)),
        Subject::new("quick_cache get User", || on_this_thread(OPS, quick_get_user)),
        Subject::new("bento get Arc<String>", || on_this_thread(OPS, bento_get_text)),
        Subject::new("bento get_or_set Arc<String>", || on_this_thread(OPS, bento_gos_text)),
        Subject::new("bento get User", || on_this_thread(OPS, bento_get_user)),
        Subject::new("bento get_or_set User", || on_this_thread(OPS, bento_gos_user)),
        Subject::new("moka sync get Arc<String>", || {
            on_this_thread(OPS, |i| drop(black_box(moka_text.get(keys[key_of(i)].as_str()).expect("hit"))))
        }),
        Subject::new("moka sync get User", || {
            on_this_thread(OPS, |i| drop(black_box(moka_user.get(keys[key_of(i)].as_str()).expect("hit"))))
        }),
        Subject::new("moka future get_with Arc<String>", || {
            on_this_thread(OPS, |i| {
                let init = async { Arc::new(String::new()) };
                black_box(drive(moka_future_text.get_with_by_ref(keys[key_of(i)].as_str(), init)));
            })
        }),
        Subject::new("moka future get_with User", || {
            on_this_thread(OPS, |i| {
                black_box(drive(moka_future_user.get_with_by_ref(keys[key_of(i)].as_str(), async { user(0) })));
            })
        }),
        Subject::new("amalgam try_get Arc<String>", || {
            on_this_thread(OPS, |i| {
                let value = drive(amalgam_text.try_get(keys[key_of(i)].as_str()).into_future()).expect("amalgam");
                black_box(value.expect("an L1 hit"));
            })
        }),
        Subject::new("amalgam get_or_set Arc<String>", || {
            on_this_thread(OPS, |i| {
                let factory = |_ctx| async { Ok::<_, std::convert::Infallible>(Arc::new(String::new())) };
                let future = amalgam_text.get_or_set(keys[key_of(i)].as_str(), factory).into_future();
                black_box(drive(future).expect("amalgam"));
            })
        }),
        Subject::new("amalgam try_get User", || {
            on_this_thread(OPS, |i| {
                let value = drive(amalgam_user.try_get(keys[key_of(i)].as_str()).into_future()).expect("amalgam");
                black_box(value.expect("an L1 hit"));
            })
        }),
        Subject::new("amalgam get_or_set User", || {
            on_this_thread(OPS, |i| {
                let factory = |_ctx| async { Ok::<_, std::convert::Infallible>(user(0)) };
                let future = amalgam_user.get_or_set(keys[key_of(i)].as_str(), factory).into_future();
                black_box(drive(future).expect("amalgam"));
            })
        }),
        Subject::new("2 threads: quick_cache get Arc<String>", || on_threads(2, OPS, quick_get_text)),
        Subject::new("2 threads: bento get Arc<String>", || on_threads(2, OPS, bento_get_text)),
        Subject::new("2 threads: bento get_or_set Arc<String>", || on_threads(2, OPS, bento_gos_text)),
        Subject::new("2 threads: bento get User", || on_threads(2, OPS, bento_get_user)),
        Subject::new("2 threads: bento get_or_set User", || on_threads(2, OPS, bento_gos_user)),
    ];
    if node::available() {
        subjects.push(Subject::many(node::LABELS.iter().map(|l| l.to_string()).collect(), node::round));
    }
    interleaved(TITLE, rounds, subjects)
}

fn checks(r: &mut Results, node: bool) {
    use Metric::Cpu;
    let floor = Some((2.5, true));
    r.check("get Arc<String> vs bare quick_cache", "bento get Arc<String>", "quick_cache get Arc<String>", Cpu, floor);
    r.check(
        "get_or_set Arc<String> vs bare quick_cache",
        "bento get_or_set Arc<String>",
        "quick_cache get Arc<String>",
        Cpu,
        floor,
    );
    r.check("get User vs bare quick_cache", "bento get User", "quick_cache get User", Cpu, floor);
    r.check("get_or_set User vs bare quick_cache", "bento get_or_set User", "quick_cache get User", Cpu, floor);
    let faster = Some((1.0, true));
    for shape in ["Arc<String>", "User"] {
        r.check(
            &format!("get {shape} vs amalgam try_get"),
            &format!("bento get {shape}"),
            &format!("amalgam try_get {shape}"),
            Cpu,
            faster,
        );
        r.check(
            &format!("get_or_set {shape} vs amalgam get_or_set"),
            &format!("bento get_or_set {shape}"),
            &format!("amalgam get_or_set {shape}"),
            Cpu,
            faster,
        );
        r.check(
            &format!("get_or_set {shape} vs moka future get_with"),
            &format!("bento get_or_set {shape}"),
            &format!("moka future get_with {shape}"),
            Cpu,
            faster,
        );
        r.check(
            &format!("get {shape} vs moka sync get"),
            &format!("bento get {shape}"),
            &format!("moka sync get {shape}"),
            Cpu,
            None,
        );
    }
    let no_worse = Some((1.0, true));
    for op in ["get Arc<String>", "get_or_set Arc<String>", "get User", "get_or_set User"] {
        r.check(
            &format!("{op}: 2 threads vs 1 thread, per op"),
            &format!("2 threads: bento {op}"),
            &format!("bento {op}"),
            Cpu,
            no_worse,
        );
    }
    r.check(
        "bare quick_cache: 2 threads vs 1 thread, per op",
        "2 threads: quick_cache get Arc<String>",
        "quick_cache get Arc<String>",
        Cpu,
        None,
    );
    if node {
        let eighty = Some((80.0, false));
        r.check("BentoCache get (string) vs bento get", node::LABELS[0], "bento get Arc<String>", Cpu, eighty);
        r.check(
            "BentoCache getOrSet (string) vs bento get_or_set",
            node::LABELS[1],
            "bento get_or_set Arc<String>",
            Cpu,
            eighty,
        );
        r.check("BentoCache get (object) vs bento get", node::LABELS[2], "bento get User", Cpu, eighty);
        r.check(
            "BentoCache getOrSet (object) vs bento get_or_set",
            node::LABELS[3],
            "bento get_or_set User",
            Cpu,
            eighty,
        );
    }
}
