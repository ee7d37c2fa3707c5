//! Beyond one process (SPEC §10): fleet-wide stampede protection through
//! the L2 driver's lock (`distributed_lock`), eager refresh and TTL jitter.
//! The fleet tests re-execute this test binary as child instances
//! (selected by `BENTO_FLEET_CHILD`) against real Redis.

mod common;

use bento::{Bento, CacheOptions, DriverOptions, Error, L1Options, Plugin, Store};
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHILD: &str = "BENTO_FLEET_CHILD";
const REDIS_URL: &str = "BENTO_FLEET_REDIS_URL";
const PREFIX: &str = "BENTO_FLEET_PREFIX";
const START_MS: &str = "BENTO_FLEET_START_MS";

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

fn redis(test: &str) -> Option<String> {
    if !redis_plugin_built() {
        assert!(!bento_testkit::services_required(), "redis plugin not built for {test}");
        eprintln!("SKIP {test}: bento-driver-redis-plugin is not built in this target dir");
        return None;
    }
    bento_testkit::require(bento_testkit::Service::Redis, test)
}

/// An instance with an L1, Redis as L2 and the fleet-wide lock.
async fn fleet_instance(url: &str, prefix: &str, lock_ttl: Duration) -> Bento {
    let store = Store::builder()
        .l1(L1Options::default())
        .l2(redis_driver(url).await)
        .options(CacheOptions::new().prefix(prefix).distributed_lock(true).distributed_lock_ttl(lock_ttl));
    Bento::builder().store("main", store).build().await.expect("instance builds")
}

/// The child role: does nothing unless started by a fleet test.
#[test]
fn fleet_child() {
    let Some(role) = std::env::var_os(CHILD) else { return };
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set for the child"));
    let (url, prefix) = (env(REDIS_URL), env(PREFIX));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async move {
        match role.to_str() {
            Some("stampede") => {
                let bento = fleet_instance(&url, &prefix, Duration::from_secs(10)).await;
                let start: u64 = env(START_MS).parse().expect("start time");
                tokio::time::sleep(Duration::from_millis(start.saturating_sub(epoch_ms()))).await;
                let calls = Arc::new(AtomicU64::new(0));
                let callers: Vec<_> = (0..200)
                    .map(|_| {
                        let (bento, calls) = (bento.clone(), calls.clone());
                        tokio::spawn(async move {
                            bento
                                .get_or_set("hot", move |_ctx| async move {
                                    calls.fetch_add(1, Ordering::SeqCst);
                                    tokio::time::sleep(Duration::from_millis(500)).await;
                                    Ok::<_, bento::BoxError>(std::process::id())
                                })
                                .await
                                .expect("get_or_set")
                        })
                    })
                    .collect();
                let mut values = Vec::new();
                for caller in callers {
                    values.push(caller.await.expect("caller"));
                }
                values.dedup();
                println!("RESULT {} {}", calls.load(Ordering::SeqCst), values.len());
            }
            Some("crashing_holder") => {
                let bento = fleet_instance(&url, &prefix, Duration::from_secs(2)).await;
                let _ = bento
                    .get_or_set("key", |_ctx| async {
                        println!("FACTORY STARTED");
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        Ok::<_, bento::BoxError>(0u32)
                    })
                    .await;
            }
            other => panic!("unknown child role {other:?}"),
        }
    });
}

fn spawn_child(role: &str, url: &str, prefix: &str, start_ms: u64) -> std::process::Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args(["fleet_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, role)
        .env(REDIS_URL, url)
        .env(PREFIX, prefix)
        .env(START_MS, start_ms.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child starts")
}

#[test]
fn three_processes_missing_one_key_run_one_factory() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let Some(url) = redis("three_processes_missing_one_key_run_one_factory") else { return };
    let prefix = unique_prefix("fleet_stampede");
    let start = epoch_ms() + 4_000;
    let children: Vec<_> = (0..3).map(|_| spawn_child("stampede", &url, &prefix, start)).collect();
    let mut factory_calls = 0;
    for (index, mut child) in children.into_iter().enumerate() {
        let lines: Vec<String> =
            BufReader::new(child.stdout.take().expect("stdout")).lines().map_while(Result::ok).collect();
        assert!(child.wait().expect("child ends").success(), "child {index} failed");
        let result = lines.iter().find_map(|line| line.split_once("RESULT ").map(|(_, r)| r.to_string()));
        let result = result.unwrap_or_else(|| panic!("child {index} printed no result: {lines:?}"));
        let (calls, distinct) = result.split_once(' ').expect("two numbers");
        assert_eq!(distinct, "1", "child {index}: its 200 callers got one value");
        factory_calls += calls.parse::<u64>().expect("a count");
    }
    assert_eq!(factory_calls, 1, "factory calls across 3 processes x 200 callers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_lock_holder_is_taken_over_after_the_lock_ttl() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let Some(url) = redis("a_crashed_lock_holder_is_taken_over_after_the_lock_ttl") else { return };
    let prefix = unique_prefix("fleet_crash");
    let mut holder = spawn_child("crashing_holder", &url, &prefix, 0);
    let stdout = holder.stdout.take().expect("stdout");
    let started = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).any(|line| line.contains("FACTORY STARTED"))
    });
    assert!(started.await.unwrap(), "the holder started its factory");
    let bento = fleet_instance(&url, &prefix, Duration::from_secs(2)).await;
    let waiting = {
        let bento = bento.clone();
        tokio::spawn(async move {
            let began = Instant::now();
            let value =
                bento.get_or_set("key", |_ctx| async { Ok::<_, bento::BoxError>(7u32) }).await.expect("a value");
            (value, began.elapsed())
        })
    };
    tokio::time::sleep(ms(300)).await;
    holder.kill().expect("kill the holder");
    let _ = holder.wait();
    let (value, waited) = waiting.await.unwrap();
    assert_eq!(value, 7, "this process took over and ran its factory");
    assert!(waited < Duration::from_secs(8), "within the lock TTL + margin: {waited:?}");
    assert_eq!(bento.store("main").unwrap().pending_locks(), 0);
}

#[tokio::test]
async fn a_store_without_a_lock_capable_l2_refuses_distributed_lock() {
    let plugin = Plugin::load(bento_testkit::plugin_path("bento-fixture-plugin")).expect("fixture plugin");
    let driver = plugin.create_driver("{}", DriverOptions::default()).await.unwrap();
    let store =
        Store::builder().l1(L1Options::default()).l2(driver).options(CacheOptions::new().distributed_lock(true));
    let error = Bento::builder().store("main", store).build().await.unwrap_err();
    assert!(matches!(&error, Error::InvalidOptions(message) if message.contains("distributed_lock")), "{error}");
    let l1_only = Store::builder().l1(L1Options::default()).options(CacheOptions::new().distributed_lock(true));
    assert!(Bento::builder().store("main", l1_only).build().await.is_err(), "no L2, no fleet-wide lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_refresh_keeps_a_hot_key_fresh_across_its_expiry() {
    let s = setup(&Backend::Memory, "eager", SetupOptions::default()).await;
    let calls = Arc::new(AtomicU64::new(0));
    let factory = |calls: Arc<AtomicU64>| {
        move |_ctx| async move {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(ms(100)).await;
            Ok::<_, bento::BoxError>(n)
        }
    };
    let ttl = ms(1000);
    let first = s.bento.get_or_set("hot", factory(calls.clone())).ttl(ttl).eager_refresh(0.5).await.unwrap();
    assert_eq!(first, 0);
    let began = Instant::now();
    let mut values = vec![first];
    while began.elapsed() < Duration::from_secs(3) {
        let call = Instant::now();
        let value = s.bento.get_or_set("hot", factory(calls.clone())).ttl(ttl).eager_refresh(0.5).await.unwrap();
        assert!(call.elapsed() < ms(60), "served at once, never a miss waiting for the factory ({:?})", call.elapsed());
        values.push(value);
        tokio::time::sleep(ms(20)).await;
    }
    values.dedup();
    assert!(values.len() >= 3, "refreshed in the background across expiries: {values:?}");
    let refreshes = calls.load(Ordering::SeqCst);
    assert!(refreshes <= 8, "about one refresh per half TTL, not one per hit: {refreshes}");
}

#[tokio::test]
async fn jitter_spreads_expirations_within_its_bound() {
    let s = setup(&Backend::Memory, "jitter", SetupOptions::default()).await;
    let (ttl, jitter) = (Duration::from_secs(10), Duration::from_secs(5));
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    for key in &keys {
        s.bento.set(key, 1u32).ttl(ttl).options(CacheOptions::new().jitter_max(jitter)).await.unwrap();
    }
    let mut lifetimes = Vec::new();
    for key in &keys {
        let bytes = s.raw.get(&format!("{}:{key}", s.prefix)).await.unwrap().expect("stored");
        let entry: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let lifetime = entry["logicalExpiration"].as_u64().unwrap() - entry["createdAt"].as_u64().unwrap();
        assert!((10_000..=15_000).contains(&lifetime), "ttl + jitter within [ttl, ttl + jitter_max]: {lifetime}");
        lifetimes.push(lifetime);
    }
    let spread = lifetimes.iter().max().unwrap() - lifetimes.iter().min().unwrap();
    assert!(spread > 2_500, "200 writes spread over the jitter range (spread {spread} ms)");
}
