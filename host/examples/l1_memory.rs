//! Resident memory of the built-in L1 holding 1 000 000 entries of 100-byte
//! values (target: < 300 MB). Run: `cargo run --release -p bento --example l1_memory`.

use bento::Bento;
use futures::executor::block_on;
use std::future::IntoFuture;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() -> Result<(), bento::Error> {
    const ENTRIES: usize = 1_000_000;
    let bento = block_on(Bento::builder().build())?;
    let before = rss_bytes();
    for i in 0..ENTRIES {
        let value = format!("{i:0>100}");
        block_on(bento.set(&format!("key:{i}"), value).forever().into_future())?;
    }
    let after = rss_bytes();
    let check: Option<String> = block_on(bento.get(&format!("key:{}", ENTRIES - 1)).into_future())?;
    assert_eq!(check.map(|v| v.len()), Some(100));
    let mb = (after - before) as f64 / 1_048_576.0;
    println!(
        "{ENTRIES} entries of 100-byte values in L1: {mb:.1} MiB RSS ({} bytes/entry)",
        (after - before) / ENTRIES as u64
    );
    Ok(())
}
