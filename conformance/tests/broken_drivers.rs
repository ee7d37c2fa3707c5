//! A suite is only as good as the broken drivers it catches: build every
//! variant of `bento-broken-driver` (one bug per Cargo feature), run the
//! `conformance` binary on each and check that it fails, naming the case
//! that should catch the bug. The bug-free build and the memory plugin must
//! pass. Also the loader errors the binary prints.
//!
//! Variants are built sequentially by a nested cargo into ONE target dir of
//! their own (`<target>/broken`, so there is no lock contention with the
//! outer build and the dependencies are compiled once), without incremental
//! state or debug info; each resulting library is copied under its own file
//! name so each is its own plugin.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// Each bug (Cargo feature) and the case expected to catch it.
const BUGS: &[(&str, &str)] = &[
    ("overwrite_keeps_earlier_expiry", "overwrite_short_ttl_with_long"),
    ("overwrite_keeps_no_expiry", "overwrite_forever_with_short_ttl"),
    ("overwrite_keeps_later_expiry", "overwrite_long_ttl_with_short"),
    ("long_ttl_panics", "ten_year_ttl_works"),
    ("ttl_wraps_at_u32_millis", "ttl_past_u32_milliseconds_does_not_wrap"),
    ("ignores_default_ttl", "default_ttl_applies_to_set_without_ttl"),
    ("namespace_ignored_by_delete", "namespace_handle_uses_its_prefix_in_every_method"),
    ("namespace_ignored_by_pull", "namespace_handle_uses_its_prefix_in_every_method"),
    ("namespace_ignored_by_get_many", "namespace_handle_uses_its_prefix_in_every_method"),
    ("empty_namespace_refused", "empty_namespace_is_the_parent_prefix"),
    ("empty_root_namespace_adds_separator", "namespace_under_empty_root_prefix"),
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

/// The bugs above this index were added with the case that catches them,
/// and that case must be the ONLY one to fail: it is what makes the case
/// necessary.
const ONLY_CAUGHT_BY_ITS_CASE: usize = 11;

/// The names of the failed cases in a pretty report (`---- name ----`),
/// leaving out the empty-prefix cases: they run only with
/// `--allow-empty-prefix`, so a new case that catches a bug on a shared
/// keyspace too is still needed.
fn failed_cases(report: &str) -> Vec<&str> {
    report
        .lines()
        .filter_map(|line| line.strip_prefix("---- ").and_then(|rest| rest.strip_suffix(" ----")))
        .filter(|case| !case.starts_with("empty_prefix_"))
        .collect()
}

/// The target dir this test was built into (`<target>/debug/deps/<exe>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary path is readable");
    exe.ancestors().nth(3).expect("test binaries live in <target>/<profile>/deps").to_path_buf()
}

/// Build the broken driver with `feature` (or none) and copy it to a file
/// named after the variant.
fn build_variant(feature: Option<&str>) -> PathBuf {
    build_package_variant("bento-broken-driver", feature)
}

/// Build `package` (a broken plugin crate) with `feature` (or none) and
/// copy it to a file named after the variant.
fn build_package_variant(package: &str, feature: Option<&str>) -> PathBuf {
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
        .args(["-p", package, "--no-default-features", "--target-dir"])
        .arg(&broken_target)
        .env_remove("CARGO_TARGET_DIR")
        // Dozens of variants of one small crate: incremental state would
        // only pile up (gigabytes) without speeding anything up.
        .env("CARGO_INCREMENTAL", "0")
        // Each variant is a separate artifact; without debug info they link
        // faster and take a tenth of the disk.
        .env("CARGO_PROFILE_DEV_DEBUG", "0");
    if let Some(feature) = feature {
        command.args(["--features", feature]);
    }
    let output = command.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "building {package} with feature {feature:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let built = broken_target.join("debug").join(bento::plugin_file_name(package));
    let plugins = broken_target.join("plugins");
    std::fs::create_dir_all(&plugins).expect("create the plugin copy folder");
    let copy = plugins.join(bento::plugin_file_name(&format!("{package}-{}", feature.unwrap_or("none"))));
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
    for (index, (bug, case, plugin)) in variants.iter().enumerate() {
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
            } else if index < ONLY_CAUGHT_BY_ITS_CASE && failed_cases(&report) != [*case] {
                Some(format!("bug {bug}: expected only {case} to fail, got {:?}:\n{report}", failed_cases(&report)))
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

/// A driver call that blocks its thread (not merely pending) fails its
/// case by timeout; after three such cases in a row the run stops with a
/// verdict instead of hanging.
#[test]
fn a_driver_blocking_its_thread_ends_the_run_with_a_verdict() {
    let plugin = build_variant(Some("blocking_get"));
    let started = std::time::Instant::now();
    let output = conformance(&[plugin.to_str().expect("UTF-8 path"), "--timeout", "1"]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("---- get_returns_set_value ----") && report.contains("timed out"), "{report}");
    assert!(report.contains("stopped: 3 cases in a row timed out"), "{report}");
    // 3 cases of 1 s (+1 s grace each) plus cleanups, with a generous margin.
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
}

/// A connect that never completes fails the run once, before any case.
#[test]
fn a_connect_that_never_completes_fails_once() {
    let plugin = build_variant(Some("hanging_connect"));
    let output = conformance(&[plugin.to_str().expect("UTF-8 path"), "--timeout", "1"]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("connect did not finish within 1s") && report.contains("no case was run"), "{report}");
    assert!(!report.contains("test "), "no case should have run:\n{report}");
}

/// A driver panic shows up as its message, in one line, even with
/// RUST_BACKTRACE set: no backtrace.
#[test]
fn a_driver_panic_prints_its_message_not_a_backtrace() {
    let plugin = build_variant(Some("panicking_get"));
    let output = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args([plugin.to_str().expect("UTF-8 path"), "--filter", "get_returns_set_value"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("the conformance binary runs");
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("the get path is broken"), "{report}");
    assert!(!report.contains("stack backtrace"), "{report}");
}

/// Options are checked once, before any case: refused options exit 2 with
/// the driver's message; `''` and `null` are refused by the tool itself.
#[test]
fn bad_options_and_arguments_exit_2_before_any_case() {
    let memory = bento_testkit::plugin_path("bento-driver-memory");
    let memory = memory.to_str().expect("UTF-8 path");
    for (options, expected) in [
        ("{not json", "the plugin refused the options"),
        (r#"{"max_items":"many"}"#, "max_items"),
        (r#"{"definitely_not_an_option":1}"#, "definitely_not_an_option"),
        ("", "--options is empty"),
        ("null", "--options is null"),
    ] {
        let output = conformance(&[memory, "--options", options]);
        let report = text(&output);
        assert_eq!(output.status.code(), Some(2), "options {options:?}: {report}");
        assert!(report.contains(expected), "options {options:?}: {report}");
        assert!(!report.contains("test "), "options {options:?}: a case ran:\n{report}");
    }

    let output = conformance(&[memory, "--filter", "no-case-has-this-name"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("matches no case"), "{}", text(&output));

    let output = conformance(&["--list"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).lines().any(|line| line == "get_returns_set_value"), "{}", text(&output));
    let output = conformance(&["--list", "--bus"]);
    assert!(text(&output).lines().any(|line| line == "bus_order_is_preserved"), "{}", text(&output));

    // A bus-only plugin given with --filter of a driver case: it gets the bus suite.
    let bus_only = bento_testkit::plugin_path("bento-bus-nats");
    let output = conformance(&[bus_only.to_str().expect("UTF-8 path"), "--list"]);
    assert!(text(&output).lines().any(|line| line == "bus_order_is_preserved"), "{}", text(&output));
    // A driver-only plugin asked for the bus suite says what is missing.
    let output = conformance(&[memory, "--bus"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("provides no bus"), "{}", text(&output));
}

/// The bus suite passes the correct broken-bus build (the Redis bus) and
/// fails each broken one, naming the case that catches it. Needs Redis.
#[test]
fn every_broken_bus_is_caught_and_the_correct_one_passes() {
    let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, "broken buses") else { return };
    let options = serde_json::json!({ "url": url }).to_string();
    let healthy = build_package_variant("bento-broken-bus", None);
    let bugs = [
        ("drops_every_other", "bus_order_is_preserved"),
        ("reorders", "bus_order_is_preserved"),
        ("never_resubscribes", "bus_resubscribes_after_connection_cut"),
    ];
    let variants: Vec<(&str, &str, PathBuf)> =
        bugs.iter().map(|(bug, case)| (*bug, *case, build_package_variant("bento-broken-bus", Some(bug)))).collect();
    let options = options.as_str();
    let mut jobs: Vec<Box<dyn FnOnce() -> Option<String> + Send + '_>> = Vec::new();
    jobs.push(Box::new(move || {
        let output = conformance(&[healthy.to_str().expect("UTF-8 path"), "--options", options]);
        let report = text(&output);
        (!output.status.success() || !report.contains(" passed, 0 failed"))
            .then(|| format!("the correct bus did not pass:\n{report}"))
    }));
    for (bug, case, plugin) in &variants {
        jobs.push(Box::new(move || {
            let output = conformance(&[plugin.to_str().expect("UTF-8 path"), "--options", options, "--filter", case]);
            let report = text(&output);
            if output.status.code() != Some(1) {
                Some(format!("bus bug {bug}: expected exit code 1, got {:?}:\n{report}", output.status.code()))
            } else if !report.contains(&format!("---- {case} ----")) {
                Some(format!("bus bug {bug}: the report does not name the failing case {case}:\n{report}"))
            } else {
                None
            }
        }));
    }
    let problems: Vec<String> = run_parallel(jobs).into_iter().flatten().collect();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
