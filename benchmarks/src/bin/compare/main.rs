//! `compare`: the interleaved side-by-side harness of `scripts/bench.sh
//! compare` (issue 12). Every section runs its subjects in alternation (A,
//! B, C, A, B, C, …) for N rounds after a warm-up pass, and reports per
//! subject the median and min–max of wall and CPU time per operation, then
//! each target as the median (min–max) of the per-round ratio. criterion
//! cannot interleave, hence a plain release binary.
//!
//! Usage: `compare [--rounds N] [l1] [redis] [rss]` (default: all sections,
//! 7 rounds). Needs the redis and redis-bus plugins built in the same
//! profile (`target/release`), Redis at `BENTO_REDIS_URL`, and for the Node
//! peer `npm ci` in `benchmarks/node`.

mod l1;
mod node;
mod remote;
mod rss;
mod stats;

use std::future::{Future, IntoFuture};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// The small struct value shape: a clone allocates (the name).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct User {
    /// Identifier.
    pub id: u64,
    /// Display name.
    pub name: String,
}

/// Poll once (an L1 hit completes at once); block on the rest otherwise.
pub fn drive<F: IntoFuture>(future: F) -> F::Output {
    let mut future = pin!(future.into_future());
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => futures::executor::block_on(future),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("rss-child") {
        rss::child(args.get(1).map_or("", String::as_str));
        return;
    }
    let mut rounds = 7;
    let mut sections = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => rounds = args.next().and_then(|n| n.parse().ok()).expect("--rounds N"),
            "l1" | "redis" | "rss" => sections.push(arg),
            other => panic!("unknown argument {other:?}; usage: compare [--rounds N] [l1] [redis] [rss]"),
        }
    }
    assert!(rounds >= 1, "at least one round");
    if sections.is_empty() {
        sections = vec!["l1".into(), "redis".into(), "rss".into()];
    }
    println!("## compare: {rounds} interleaved rounds\n");
    println!("{}", machine());
    for section in &sections {
        let report = match section.as_str() {
            "l1" => l1::run(rounds),
            "redis" => remote::run(rounds).unwrap_or_else(|| "\n(redis sections skipped: Redis unreachable)\n".into()),
            _ => rss::run(rounds.min(3)),
        };
        println!("{report}");
    }
    println!("load after: {}", load());
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|_| "unknown".into(), |text| text.trim().to_string())
}

/// CPU model, core count, load average and time: the run's context.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map_or("unknown CPU", |rest| rest.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("machine: {model}, {cores} cores, Linux {}; load before: {}", kernel.trim(), load())
}
