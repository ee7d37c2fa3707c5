//! Two processes churning one cache (SPEC §5): each re-executes this test
//! binary as a child instance (L1 + Redis L2 + Redis bus) that runs
//! concurrent `set` / `get_or_set` / `delete` / `get` on 50 keys until a
//! shared deadline, waits for the other's last notifications, then checks
//! that what it serves for every key is what L2 holds.

mod common;

use bento::CacheOptions;
use common::bus::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CHILD: &str = "BENTO_CHURN_CHILD";
const CONFIG: &str = "BENTO_CHURN";
const DEADLINE_MS: &str = "BENTO_CHURN_DEADLINE_MS";

const KEYS: u64 = 50;
const CHURN: Duration = Duration::from_secs(15);
const WORKERS: u64 = 8;

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

/// The child role: does nothing unless started by the parent test.
#[test]
fn churn_child() {
    let Some(id) = std::env::var_os(CHILD) else { return };
    let id: u64 = id.to_string_lossy().parse().expect("child id");
    let config = InstanceConfig::from_env(CONFIG);
    let deadline: u64 = std::env::var(DEADLINE_MS).ok().and_then(|ms| ms.parse().ok()).expect("deadline is set");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mismatches = runtime.block_on(churn(id, config, deadline));
    println!("RESULT {mismatches}");
}

async fn churn(id: u64, config: InstanceConfig, deadline: u64) -> String {
    let instance = Instance::start(&config, CacheOptions::new()).await;
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let bento = instance.bento.clone();
        workers.push(tokio::spawn(async move {
            let mut seed = id * 7919 + worker * 104_729 + 1;
            let mut counter = 0u64;
            while epoch_ms() < deadline {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let key = format!("k{}", (seed >> 33) % KEYS);
                counter += 1;
                let value = id * 1_000_000_000 + worker * 10_000_000 + counter;
                match (seed >> 20) % 10 {
                    0..=3 => drop(bento.set(&key, value).await.expect("set")),
                    4..=6 => drop(
                        bento
                            .get_or_set(&key, move |_ctx| async move { Ok::<_, bento::BoxError>(value) })
                            .await
                            .expect("get_or_set"),
                    ),
                    7..=8 => drop(bento.delete(&key).await.expect("delete")),
                    _ => drop(bento.get::<u64>(&key).await.expect("get")),
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    // Quiesce: the other process's last writes and notifications land.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let raw = common::redis_driver(&config.redis_url).await;
    let mut mismatches = Vec::new();
    for key in 0..KEYS {
        let key = format!("k{key}");
        let served = instance.bento.get::<u64>(&key).await.expect("get");
        let stored = match raw.get(&format!("{}:{key}", config.prefix)).await.expect("raw get") {
            Some(bytes) => {
                let entry: serde_json::Value = serde_json::from_slice(&bytes).expect("entry");
                entry["value"].as_u64()
            }
            None => None,
        };
        if served != stored {
            mismatches.push(format!("{key}:{served:?}!={stored:?}"));
        }
    }
    instance.bento.disconnect_all().await.expect("disconnect");
    if mismatches.is_empty() {
        "0".to_string()
    } else {
        format!("{} {}", mismatches.len(), mismatches.join(","))
    }
}

#[test]
fn two_processes_churning_one_cache_end_with_l1_equal_to_l2() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let Some((redis_url, _)) = servers(BusServer::Redis, "two_processes_churning_one_cache") else { return };
    let (store, prefix) = unique_store("churn");
    let config = InstanceConfig { bus_url: redis_url.clone(), redis_url, bus: BusServer::Redis, store, prefix };
    let deadline = epoch_ms() + 5_000 + CHURN.as_millis() as u64;
    let children: Vec<_> = (1..=2)
        .map(|id| {
            Command::new(std::env::current_exe().expect("test binary path"))
                .args(["churn_child", "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD, id.to_string())
                .envs(config.to_env(CONFIG))
                .env(DEADLINE_MS, deadline.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("child starts")
        })
        .collect();
    for (index, mut child) in children.into_iter().enumerate() {
        let stdout = child.stdout.take().expect("piped stdout");
        // Read to the end: the child's harness still prints after RESULT.
        let lines: Vec<String> = BufReader::new(stdout).lines().map_while(Result::ok).collect();
        let result = lines.iter().find_map(|line| line.split_once("RESULT ").map(|(_, result)| result.to_string()));
        let status = child.wait().expect("child ends");
        assert!(status.success(), "child {index} failed: {status}");
        assert_eq!(result.as_deref(), Some("0"), "child {index}: keys whose served value differs from L2");
    }
}
