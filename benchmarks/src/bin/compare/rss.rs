//! Resident memory of 1 000 000 entries of 100-byte `String` values (keys
//! `key:N`) in `bento`'s L1, moka, amalgam-cache and bare quick_cache, each
//! in a fresh process (`compare rss-child <cache>`), alternating.

use crate::drive;
use std::future::IntoFuture;
use std::process::Command;

const ENTRIES: usize = 1_000_000;
/// The caches measured, in run order.
pub const CACHES: [&str; 4] = ["bento", "moka", "amalgam", "quick_cache"];

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn value(i: usize) -> String {
    format!("{i:0>100}")
}

/// The child: fill `cache`, print the RSS growth in bytes.
pub fn child(cache: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let _context = runtime.enter();
    let last = format!("key:{}", ENTRIES - 1);
    let before = rss_bytes();
    let grown = match cache {
        "bento" => {
            let bento = drive(bento::Bento::builder().build()).expect("bento builds");
            for i in 0..ENTRIES {
                drive(bento.set(&format!("key:{i}"), value(i)).forever()).expect("set");
            }
            let after = rss_bytes();
            let found: Option<String> = drive(bento.get(&last)).expect("get");
            assert!(found.is_some(), "bento kept every entry");
            after
        }
        "moka" => {
            let cache: moka::sync::Cache<String, String> = moka::sync::Cache::new(ENTRIES as u64 * 2);
            for i in 0..ENTRIES {
                cache.insert(format!("key:{i}"), value(i));
            }
            cache.run_pending_tasks();
            let after = rss_bytes();
            assert!(cache.get(&last).is_some(), "moka kept every entry");
            after
        }
        "amalgam" => {
            let cache: amalgam::Cache<String> = amalgam::Cache::builder()
                .default_options(amalgam::EntryOptions::new(std::time::Duration::from_secs(3600)))
                .try_build()
                .expect("amalgam cache");
            for i in 0..ENTRIES {
                runtime.block_on(cache.set(format!("key:{i}"), value(i)).into_future()).expect("set");
            }
            let after = rss_bytes();
            let found = runtime.block_on(cache.try_get(last.as_str()).into_future()).expect("get");
            assert!(found.is_some(), "amalgam kept every entry");
            after
        }
        "quick_cache" => {
            let cache: quick_cache::sync::Cache<String, String> = quick_cache::sync::Cache::new(ENTRIES * 2);
            for i in 0..ENTRIES {
                cache.insert(format!("key:{i}"), value(i));
            }
            let after = rss_bytes();
            assert!(cache.get(last.as_str()).is_some(), "quick_cache kept every entry");
            after
        }
        other => panic!("unknown cache {other:?}; one of {CACHES:?}"),
    };
    println!("{}", grown.saturating_sub(before));
}

fn measure(cache: &str) -> u64 {
    let exe = std::env::current_exe().expect("own path");
    let output = Command::new(exe).args(["rss-child", cache]).output().expect("child runs");
    assert!(output.status.success(), "rss child {cache} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().parse().expect("a byte count")
}

/// `rounds` alternating passes over [`CACHES`]; the report.
pub fn run(rounds: usize) -> String {
    let mut bytes = vec![Vec::new(); CACHES.len()];
    for round in 0..rounds {
        for (index, cache) in CACHES.iter().enumerate() {
            bytes[index].push(measure(cache));
        }
        eprintln!("[rss] round {}/{rounds} done", round + 1);
    }
    let mut report = format!("\n### 1 M × 100-byte values: RSS growth ({rounds} alternating processes each)\n\n");
    report.push_str("| cache | RSS median (min–max) | bytes/entry |\n|---|---|---|\n");
    let mut medians = Vec::new();
    for (cache, mut samples) in CACHES.iter().zip(bytes) {
        samples.sort_unstable();
        let median = samples[samples.len() / 2];
        medians.push(median);
        report.push_str(&format!(
            "| {cache} | {:.1} MB ({:.1}–{:.1}) | {} |\n",
            median as f64 / 1e6,
            samples[0] as f64 / 1e6,
            samples[samples.len() - 1] as f64 / 1e6,
            median / ENTRIES as u64
        ));
    }
    let (bento, moka, amalgam) = (medians[0], medians[1], medians[2]);
    let verdict = |met: bool| if met { "MET" } else { "MISSED" };
    report.push_str(&format!(
        "\n- bento ≤ 250 MB: {:.1} MB — {}\n- bento ≤ moka ({:.1} MB) and ≤ amalgam ({:.1} MB): bento/moka {:.2}, bento/amalgam {:.2} — {}\n",
        bento as f64 / 1e6,
        verdict(bento <= 250_000_000),
        moka as f64 / 1e6,
        amalgam as f64 / 1e6,
        bento as f64 / moka as f64,
        bento as f64 / amalgam as f64,
        verdict(bento <= moka && bento <= amalgam)
    ));
    report
}
