//! `conformance --bench`: per-operation latency percentiles and throughput
//! through the plugin boundary, at 1 and 64 concurrent callers.
//!
//! A fixed number of operations per (operation, concurrency) pair, on the
//! suite's multi-thread runtime; numbers are for comparing drivers and
//! builds on one machine, not absolute truths.

use crate::cases::Failure;
use crate::runner::Runner;
use bento::Driver;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Operations per (operation, concurrency) pair unless `--bench-ops` says otherwise.
pub const DEFAULT_OPS: usize = 20_000;

/// The concurrency levels measured.
pub const CONCURRENCY: [usize; 2] = [1, 64];

/// How many distinct keys the read benchmarks cycle through.
const KEYS: usize = 1_000;

/// The value size used throughout.
const VALUE_SIZE: usize = 100;

/// One measured operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `get` of a present key.
    GetHit,
    /// `get` of a missing key.
    GetMiss,
    /// `set` overwriting existing keys.
    Set,
    /// `delete` of present keys.
    Delete,
    /// `has` of a present key.
    Has,
}

impl Operation {
    /// Every measured operation.
    pub const ALL: [Operation; 5] =
        [Operation::GetHit, Operation::GetMiss, Operation::Set, Operation::Delete, Operation::Has];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Operation::GetHit => "get (hit)",
            Operation::GetMiss => "get (miss)",
            Operation::Set => "set",
            Operation::Delete => "delete",
            Operation::Has => "has",
        }
    }
}

/// The result for one (operation, concurrency) pair.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// What was measured.
    pub operation: Operation,
    /// Concurrent callers.
    pub concurrency: usize,
    /// Operations performed.
    pub ops: usize,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Operations per second over the wall time of the run.
    pub ops_per_sec: f64,
}

async fn one(driver: &Driver, operation: Operation, index: usize, value: &[u8]) -> Result<(), Failure> {
    let result = match operation {
        Operation::GetHit => driver.get(&format!("hit{}", index % KEYS)).await.map(drop),
        Operation::GetMiss => driver.get(&format!("miss{index}")).await.map(drop),
        Operation::Set => driver.set(&format!("set{}", index % KEYS), value.to_vec(), None).await.map(drop),
        Operation::Delete => driver.delete(&format!("del{index}")).await.map(drop),
        Operation::Has => driver.has(&format!("hit{}", index % KEYS)).await.map(drop),
    };
    result.map_err(|error| Failure::new(format!("{} failed: {error}", operation.name())))
}

async fn measure(driver: &Driver, operation: Operation, concurrency: usize, ops: usize) -> Result<BenchRow, Failure> {
    let value = Arc::new(vec![b'v'; VALUE_SIZE]);
    if operation == Operation::Delete {
        for index in 0..ops {
            driver
                .set(&format!("del{index}"), value.to_vec(), None)
                .await
                .map_err(|error| Failure::new(format!("preparing delete keys failed: {error}")))?;
        }
    }
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let driver = driver.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(ops / concurrency + 1);
            let mut index = worker;
            while index < ops {
                let call = Instant::now();
                one(&driver, operation, index, &value).await?;
                latencies.push(call.elapsed());
                index += concurrency;
            }
            Ok::<_, Failure>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(ops);
    for task in tasks {
        let worker = task.await.map_err(|error| Failure::new(format!("benchmark task failed: {error}")))??;
        latencies.extend(worker);
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    let percentile = |p: f64| -> Duration {
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1]
    };
    Ok(BenchRow {
        operation,
        concurrency,
        ops: latencies.len(),
        p50: percentile(0.50),
        p99: percentile(0.99),
        ops_per_sec: latencies.len() as f64 / wall.as_secs_f64().max(f64::EPSILON),
    })
}

/// Measure every [`Operation`] at every level of [`CONCURRENCY`], `ops`
/// operations each, on a fresh prefix that is cleared afterwards.
pub fn run(runner: &Runner, ops: usize) -> Result<Vec<BenchRow>, Failure> {
    let prefix = runner.fresh_prefix("bench");
    runner.block_on(async {
        let driver = runner.create_driver(&prefix).await.map_err(|error| Failure::new(error.to_string()))?;
        let result = async {
            for index in 0..KEYS {
                driver
                    .set(&format!("hit{index}"), vec![b'v'; VALUE_SIZE], None)
                    .await
                    .map_err(|error| Failure::new(format!("preparing keys failed: {error}")))?;
            }
            let mut rows = Vec::new();
            for concurrency in CONCURRENCY {
                for operation in Operation::ALL {
                    rows.push(measure(&driver, operation, concurrency, ops).await?);
                }
            }
            Ok(rows)
        }
        .await;
        let _ = driver.clear().await;
        let _ = driver.disconnect().await;
        result
    })
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}

/// The rows as a text table.
pub fn table(rows: &[BenchRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>11} {:>8} {:>12} {:>12} {:>14}",
        "operation", "concurrency", "ops", "p50", "p99", "ops/s"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<12} {:>11} {:>8} {:>12} {:>12} {:>14.0}",
            row.operation.name(),
            row.concurrency,
            row.ops,
            micros(row.p50),
            micros(row.p99),
            row.ops_per_sec
        );
    }
    out
}
