//! BentoCache 1.6.1 under Node: one `node benchmarks/node/round.mjs`
//! process per round, interleaved with the Rust subjects.

use crate::stats::{Sample, SampleLine};
use std::path::PathBuf;
use std::process::Command;

/// The labels one round yields, in order.
pub const LABELS: [&str; 4] = [
    "BentoCache get (string)",
    "BentoCache getOrSet (string)",
    "BentoCache get (object)",
    "BentoCache getOrSet (object)",
];

/// Measured operations per label and round (after as many warm-up calls).
const OPS: u64 = 50_000;

fn script_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node")
}

/// True when Node and the installed `bentocache` package are there
/// (`scripts/bench.sh compare` runs `npm ci` first); prints a SKIP line
/// otherwise.
pub fn available() -> bool {
    let installed = script_dir().join("node_modules/bentocache/package.json").exists();
    let node = Command::new("node").arg("--version").output().is_ok_and(|out| out.status.success());
    if !(installed && node) {
        eprintln!("SKIP BentoCache (Node): node or benchmarks/node/node_modules missing (run `npm ci` there)");
    }
    installed && node
}

/// One Node process: a sample per label of [`LABELS`].
pub fn round() -> Vec<Sample> {
    let output = Command::new("node")
        .arg("round.mjs")
        .arg(OPS.to_string())
        .current_dir(script_dir())
        .output()
        .expect("node runs");
    assert!(output.status.success(), "node round.mjs failed: {}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<SampleLine> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line from round.mjs"))
        .collect();
    LABELS
        .iter()
        .map(|label| lines.iter().find(|line| line.label == *label).expect("every label measured").sample())
        .collect()
}
