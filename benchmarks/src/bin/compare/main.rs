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

/// Interleaved side-by-side benchmarks: bento next to quick_cache, moka,
/// amalgam-cache, BentoCache under Node and raw redis-rs (issue 12).
#[derive(clap::Parser)]
#[command(name = "compare")]
struct Args {
    /// Interleaved rounds per section (the RSS section runs at most 3).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Sections to run; all of them when none is given.
    #[arg(value_enum)]
    sections: Vec<Section>,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// L1 hits (1 and 2 threads) vs quick_cache, moka, amalgam-cache, BentoCache.
    L1,
    /// The redis plugin, L2-only reads and writes vs raw redis-rs.
    Redis,
    /// Resident memory of 1 M entries.
    Rss,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // The RSS section measures each store in a child process of its own.
    if args.get(1).map(String::as_str) == Some("rss-child") {
        rss::child(args.get(2).map_or("", String::as_str));
        return;
    }
    // Each round of the L1 section runs in a child process of its own.
    if args.get(1).map(String::as_str) == Some("l1-child") {
        l1::child();
        return;
    }
    let Args { rounds, mut sections } = clap::Parser::parse_from(args);
    let rounds = rounds as usize;
    if sections.is_empty() {
        sections = vec![Section::L1, Section::Redis, Section::Rss];
    }
    println!("## compare: {rounds} interleaved rounds\n");
    println!("{}", machine());
    for section in sections {
        let report = match section {
            Section::L1 => l1::run(rounds),
            Section::Redis => {
                remote::run(rounds).unwrap_or_else(|| "\n(redis sections skipped: Redis unreachable)\n".into())
            }
            Section::Rss => rss::run(rounds.min(3)),
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
