//! The plugin ABI evolves without breaking old plugins, proven with real
//! builds (issue 14):
//!
//! * `testkit/abi-0.1`: a frozen copy of bento-plugin-api 0.1.0 (before the
//!   lock methods existed) and a driver built against it. Today's host
//!   loads it, sees "no distributed lock", and the whole conformance suite
//!   passes on it, the lock cases skipped with a note.
//! * `testkit/abi-0.1.1`: a frozen copy of bento-plugin-api 0.1.1 (the lock
//!   capability and `configure_runtime`, before `attach_host_runtime`
//!   existed) and a driver built against it that declares the lock. Today's
//!   host loads it, sees its lock, lends it no runtime, and the whole
//!   conformance suite passes on it.
//! * `testkit/abi-next`: today's plugin-api sources under a future version
//!   (0.1.3) and a driver built against them. Today's host refuses it,
//!   naming both versions.
//!
//! Each fixture is its own Cargo workspace (it holds a `bento-plugin-api`
//! of another version, which cannot sit next to the real one), built here
//! by a nested `cargo build --manifest-path` into ONE target dir of its own
//! (`<target>/abi-evolution`: no lock contention with the outer build, the
//! shared dependencies compiled once). The first run costs about two
//! minutes of compilation on a small machine; later runs only check
//! freshness.

use bento::{DriverOptions, ErrorKind, Plugin};
use bento_conformance::{all_cases, Outcome, Requirement, Runner, Target};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// The target dir this test was built into (`<target>/debug/deps/<exe>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary path is readable");
    exe.ancestors().nth(3).expect("test binaries live in <target>/<profile>/deps").to_path_buf()
}

/// Build the fixture workspace `testkit/<fixture>` and return the path of
/// its plugin library `crate_name`.
fn build_fixture(fixture: &str, crate_name: &str) -> PathBuf {
    // One nested cargo at a time: the fixtures share one target dir.
    static BUILD: Mutex<()> = Mutex::new(());
    let _build = BUILD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("conformance/ is inside the workspace");
    let target = target_dir().join("abi-evolution");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
        .arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(workspace.join("testkit").join(fixture).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "building the {fixture} fixture failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let library = target.join("debug").join(bento::plugin_file_name(crate_name));
    assert!(library.exists(), "the {fixture} build produced no {}", library.display());
    library
}

fn plugin_0_1_0() -> PathBuf {
    build_fixture("abi-0.1", "bento-abi-0-1-fixture")
}

#[test]
fn a_plugin_built_against_0_1_0_loads_and_reports_no_lock() {
    let plugin = Plugin::load(plugin_0_1_0()).expect("today's host loads a 0.1.0 plugin");
    assert_eq!(plugin.info().api_version, "0.1.0");
    assert_eq!(plugin.name(), "abi-0.1-fixture");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let driver = plugin.create_driver("{}", DriverOptions::with_prefix("abi")).await.expect("create_driver");
        assert!(!driver.supports_lock(), "a 0.1.0 plugin cannot declare the lock capability");
        assert_eq!(driver.capabilities(), bento::Capabilities::NONE);
        // The vtable entries a 0.1.0 plugin lacks fall back to the defaults.
        let error = driver.try_lock("k", "owner", Duration::from_secs(1)).await.expect_err("no lock in 0.1.0");
        assert_eq!(error.kind, ErrorKind::UNSUPPORTED, "{error}");
        let error = driver.unlock("k", "owner").await.expect_err("no lock in 0.1.0");
        assert_eq!(error.kind, ErrorKind::UNSUPPORTED, "{error}");
        // And the 0.1.0 methods work as before.
        driver.set("k", b"v".to_vec(), None).await.expect("set");
        assert_eq!(driver.get("k").await.expect("get"), Some(b"v".to_vec()));
        let namespace = driver.namespace("ns").expect("namespace");
        assert!(!namespace.supports_lock());
    });
}

#[test]
fn the_conformance_suite_passes_on_a_0_1_0_plugin_with_lock_cases_skipped() {
    // The BTreeMap store is private to each driver instance: the
    // empty-prefix cases are safe.
    let runner = Runner::new(Target::new(plugin_0_1_0()).allow_empty_prefix(true)).expect("the suite loads it");
    let mut failures = Vec::new();
    for case in all_cases() {
        let report = runner.run_case(case);
        let is_lock_case = matches!(case.requirement, Requirement::Lock | Requirement::LockAcrossInstances);
        match report.outcome {
            Outcome::Passed if !is_lock_case => {}
            Outcome::Skipped(note) if is_lock_case => {
                assert!(note.contains("Capabilities::LOCK"), "{}: the skip note does not say why: {note}", case.name);
            }
            outcome => failures.push(format!("{}: {outcome:?}", case.name)),
        }
    }
    assert!(failures.is_empty(), "on the 0.1.0 plugin:\n{}", failures.join("\n"));
}

fn plugin_0_1_1() -> PathBuf {
    build_fixture("abi-0.1.1", "bento-abi-0-1-1-fixture")
}

#[test]
fn a_plugin_built_against_0_1_1_loads_with_its_lock_and_no_host_runtime() {
    // Loading runs `attach_host_runtime` when the plugin has it; a 0.1.1
    // plugin lacks the field, so the host must skip it (not crash).
    let plugin = Plugin::load(plugin_0_1_1()).expect("today's host loads a 0.1.1 plugin");
    assert_eq!(plugin.info().api_version, "0.1.1");
    assert_eq!(plugin.name(), "abi-0.1.1-fixture");
    // The field 0.1.1 did have is read through today's types.
    assert!(plugin.configure_runtime(1), "a 0.1.1 plugin has configure_runtime and has not started its runtime");
    // A multi-thread runtime: the kind the host would lend, were the field there.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    runtime.block_on(async {
        let driver = plugin.create_driver("{}", DriverOptions::with_prefix("abi")).await.expect("create_driver");
        assert!(driver.supports_lock(), "the 0.1.1 fixture declares Capabilities::LOCK");
        assert_eq!(driver.capabilities(), bento::Capabilities::LOCK);
        assert!(driver.try_lock("k", "owner-a", Duration::from_secs(5)).await.expect("try_lock"));
        assert!(!driver.try_lock("k", "owner-b", Duration::from_secs(5)).await.expect("try_lock"), "held by owner-a");
        assert!(driver.unlock("k", "owner-a").await.expect("unlock"));
        driver.set("k", b"v".to_vec(), None).await.expect("set");
        assert_eq!(driver.get("k").await.expect("get"), Some(b"v".to_vec()));
        let namespace = driver.namespace("ns").expect("namespace");
        assert!(namespace.supports_lock());
        driver.disconnect().await.expect("disconnect");
    });
}

#[test]
fn the_conformance_suite_passes_on_a_0_1_1_plugin() {
    let runner = Runner::new(Target::new(plugin_0_1_1()).allow_empty_prefix(true)).expect("the suite loads it");
    let mut failures = Vec::new();
    for case in all_cases() {
        let report = runner.run_case(case);
        match report.outcome {
            Outcome::Passed => {}
            // Each instance of the BTreeMap driver has its own store: there
            // is no other connection for the lock to exclude.
            Outcome::Skipped(note) if case.requirement == Requirement::LockAcrossInstances => {
                assert!(note.contains("do not share storage"), "{}: unexpected skip note: {note}", case.name);
            }
            outcome => failures.push(format!("{}: {outcome:?}", case.name)),
        }
    }
    assert!(failures.is_empty(), "on the 0.1.1 plugin:\n{}", failures.join("\n"));
}

#[test]
fn a_plugin_built_against_a_newer_api_is_refused_naming_both_versions() {
    let path = build_fixture("abi-next", "bento-abi-next-fixture");
    let error = Plugin::load(&path).expect_err("a plugin newer than the host must be refused");
    match &error {
        bento::Error::IncompatiblePlugin { plugin_api, host_api, .. } => {
            assert_eq!(plugin_api, "0.1.3");
            assert_eq!(host_api, bento_plugin_api::API_VERSION);
        }
        other => panic!("expected IncompatiblePlugin, got: {other}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("bento-plugin-api 0.1.3")
            && message.contains(&format!("bento-plugin-api {}", bento_plugin_api::API_VERSION)),
        "{message}"
    );
}
