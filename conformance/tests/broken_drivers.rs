//! A suite is only as good as the broken drivers it catches: build every
//! variant of `bento-broken-driver` (one bug per Cargo feature), run the
//! `conformance` binary on each and check that it fails, naming the case
//! that should catch the bug. The bug-free build and the memory plugin must
//! pass. Also the loader errors the binary prints.
//!
//! Variants are built sequentially by a nested cargo into ONE target dir of
//! their own (`<target>/broken`, so there is no lock contention with the
//! outer build and the dependencies are compiled once); each resulting
//! library is copied under its own file name so each is its own plugin.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Each bug (Cargo feature) and the case expected to catch it.
const BUGS: &[(&str, &str)] = &[
    ("ignores_ttl", "ttl_100ms_entry_gone_by_300ms"),
    ("ttl_in_seconds_rounded_down", "ttl_1500ms_entry_present_at_1100ms"),
    ("clear_ignores_prefix", "clear_respects_prefix"),
    ("namespace_clear_not_exact", "namespace_clear_only_exact_prefix"),
    ("glob_or_like_unescaped", "clear_prefix_with_underscore_spares_siblings"),
    ("delete_returns_true_for_missing", "delete_return_values"),
    ("delete_many_wrong_count", "delete_many_counts_existing_keys"),
    ("pull_not_atomic", "pull_is_atomic"),
    ("empty_value_is_missing", "empty_value_is_a_value"),
    ("has_disagrees_with_get", "has_agrees_with_get"),
    ("truncates_long_keys", "long_keys_do_not_collide"),
    ("sanitizes_keys", "hostile_keys_do_not_collide"),
    ("get_many_wrong_order", "get_many_returns_values_in_order"),
    ("set_many_ignores_item_ttl", "set_many_applies_per_item_ttl"),
    ("prune_removes_live_entries", "prune_removes_expired_keeps_live"),
    ("namespace_shares_root", "namespace_isolated_from_root"),
    ("disconnect_hangs_or_panics", "disconnect_is_idempotent"),
    ("hanging_get", "get_returns_set_value"),
    ("lock_not_exclusive", "lock_excludes_other_owners"),
];

/// The target dir this test was built into (`<target>/debug/deps/<exe>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary path is readable");
    exe.ancestors().nth(3).expect("test binaries live in <target>/<profile>/deps").to_path_buf()
}

/// Build the broken driver with `feature` (or none) and copy it to a file
/// named after the variant.
fn build_variant(feature: Option<&str>) -> PathBuf {
    // Tests run in parallel; every variant is built to the same file, so
    // build and copy one at a time.
    static BUILD: Mutex<()> = Mutex::new(());
    let _build = BUILD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("conformance/ is inside the workspace");
    let broken_target = target_dir().join("broken");
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    command
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args(["-p", "bento-broken-driver", "--no-default-features", "--target-dir"])
        .arg(&broken_target)
        .env_remove("CARGO_TARGET_DIR");
    if let Some(feature) = feature {
        command.args(["--features", feature]);
    }
    let output = command.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "building the broken driver with feature {feature:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = broken_target.join("debug").join(bento::plugin_file_name("bento-broken-driver"));
    let plugins = broken_target.join("plugins");
    std::fs::create_dir_all(&plugins).expect("create the plugin copy folder");
    let copy = plugins.join(bento::plugin_file_name(&format!("broken-{}", feature.unwrap_or("none"))));
    std::fs::copy(&built, &copy)
        .unwrap_or_else(|error| panic!("copy {} to {}: {error}", built.display(), copy.display()));
    copy
}

fn conformance(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conformance")).args(args).output().expect("the conformance binary runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Run `jobs` in parallel on a few threads (the runs mostly sleep on TTLs).
fn run_parallel<T: Send>(jobs: Vec<Box<dyn FnOnce() -> T + Send + '_>>) -> Vec<T> {
    let jobs = Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let Some((index, job)) = jobs.lock().expect("job queue").pop() else { break };
                let result = job();
                results.lock().expect("results").push((index, result));
            });
        }
    });
    let mut results = results.into_inner().expect("results");
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

#[test]
fn every_broken_driver_is_caught_and_correct_drivers_pass() {
    let healthy = build_variant(None);
    let variants: Vec<(&str, &str, PathBuf)> =
        BUGS.iter().map(|(bug, case)| (*bug, *case, build_variant(Some(bug)))).collect();

    let mut jobs: Vec<Box<dyn FnOnce() -> Option<String> + Send>> = Vec::new();
    for plugin in [healthy, bento_testkit::plugin_path("bento-driver-memory")] {
        jobs.push(Box::new(move || {
            let path = plugin.to_str().expect("UTF-8 path");
            let output = conformance(&[path, "--allow-empty-prefix"]);
            let report = text(&output);
            (!output.status.success() || !report.contains(" passed, 0 failed"))
                .then(|| format!("the correct driver {path} did not pass:\n{report}"))
        }));
    }
    for (bug, case, plugin) in &variants {
        jobs.push(Box::new(move || {
            let path = plugin.to_str().expect("UTF-8 path");
            // A hanging driver times out in every case that calls get: run
            // only the one expected to catch it, with a short timeout.
            let output = if *bug == "hanging_get" {
                conformance(&[path, "--filter", case, "--timeout", "2"])
            } else {
                conformance(&[path, "--allow-empty-prefix"])
            };
            let report = text(&output);
            if output.status.code() != Some(1) {
                Some(format!("bug {bug}: expected exit code 1, got {:?}:\n{report}", output.status.code()))
            } else if !report.contains(&format!("---- {case} ----")) {
                Some(format!("bug {bug}: the report does not name the failing case {case}:\n{report}"))
            } else if *bug == "hanging_get" && !report.contains("timed out") {
                Some(format!("bug {bug}: the report does not say the case timed out:\n{report}"))
            } else {
                None
            }
        }));
    }
    let problems: Vec<String> = run_parallel(jobs).into_iter().flatten().collect();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn loader_errors_are_clear() {
    let wrong_api = build_variant(Some("wrong_api_version"));
    let output = conformance(&[wrong_api.to_str().expect("UTF-8 path")]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(2), "{report}");
    assert!(report.contains("0.0.1") && report.contains(bento_plugin_api::API_VERSION), "{report}");
    assert!(report.contains("bento-plugin-api"), "{report}");

    let not_a_plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = conformance(&[not_a_plugin.to_str().expect("UTF-8 path")]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(2), "{report}");
    assert!(report.contains("not a Bento plugin"), "{report}");

    let output = conformance(&["/definitely/missing/libnothing.so"]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(2), "{report}");
    assert!(report.contains("not found"), "{report}");
}
