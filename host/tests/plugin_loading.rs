//! Loading plugins from files and folders, and every loader error a user can
//! meet, checked by the message they would read.

use bento::{DriverOptions, Error, Plugin};
use bento_testkit::{bundled_plugin_folder, plugin_path};
use std::path::Path;
use std::process::Command;

/// Run the test `name` of this binary in a child process with `env` set;
/// loading a broken library must never take the parent down with it.
fn run_in_child(name: &str, env: &[(&str, &Path)]) -> std::process::Output {
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    command.args([name, "--exact", "--nocapture", "--test-threads=1"]);
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("spawn the test binary")
}

fn memory_plugin() -> Plugin {
    Plugin::load(plugin_path("bento-driver-memory")).expect("memory plugin loads")
}

#[test]
fn metadata_is_read_from_the_plugin() {
    let plugin = memory_plugin();
    let info = plugin.info();
    assert_eq!(info.name, "memory");
    assert_eq!(info.api_version, bento_plugin_api::API_VERSION);
    assert!(info.local && info.remote && info.provides_driver && !info.provides_bus);
    assert!(info.driver_options_schema["properties"]["max_items"].is_object(), "{}", info.driver_options_schema);
}

#[test]
fn two_different_plugin_files_give_two_different_plugins() {
    // RootModule::load_from_file would return the first module again here.
    let memory = memory_plugin();
    let fixture = Plugin::load(plugin_path("bento-fixture-plugin")).unwrap();
    assert_eq!(memory.name(), "memory");
    assert_eq!(fixture.name(), "fixture");
}

#[test]
fn loading_the_same_file_twice_returns_the_same_plugin() {
    let a = memory_plugin();
    let b = memory_plugin();
    assert_eq!(a.path(), b.path());
}

#[test]
fn missing_file_is_reported() {
    let error = Plugin::load("/nonexistent/libnothing.so").unwrap_err();
    println!("{error}");
    assert!(matches!(error, Error::PluginNotFound { .. }));
    assert!(error.to_string().contains("/nonexistent/libnothing.so"));
}

#[test]
fn a_text_file_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(bento::plugin_file_name("bento-driver-fake"));
    std::fs::write(&path, "definitely not ELF").unwrap();
    let error = Plugin::load(&path).unwrap_err();
    println!("{error}");
    assert!(matches!(error, Error::NotAPlugin { .. }), "{error:?}");
    assert!(error.to_string().contains("not a Bento plugin"));
}

#[test]
fn a_shared_library_without_the_marker_is_not_a_plugin() {
    // Any real shared library that is not a Bento plugin: the test binary's
    // own libc is always there.
    let candidates =
        ["/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libm.so.6"];
    let Some(library) = candidates.iter().map(Path::new).find(|p| p.exists()) else {
        eprintln!("SKIP: no system shared library found to probe");
        return;
    };
    let error = Plugin::load(library).unwrap_err();
    println!("{error}");
    assert!(matches!(error, Error::NotAPlugin { .. }), "{error:?}");
    assert!(error.to_string().contains("bento_plugin_api_version"));
}

#[test]
fn a_folder_with_two_plugins_of_one_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = plugin_path("bento-driver-memory");
    std::fs::copy(&source, dir.path().join(bento::plugin_file_name("memory-a"))).unwrap();
    std::fs::copy(&source, dir.path().join(bento::plugin_file_name("memory-b"))).unwrap();
    let error = Plugin::load_folder(dir.path()).unwrap_err();
    println!("{error}");
    assert!(matches!(error, Error::DuplicatePlugin { ref name, .. } if name == "memory"), "{error:?}");
}

#[test]
fn a_folder_scan_finds_every_plugin_and_skips_other_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(plugin_path("bento-driver-memory"), dir.path().join(bento::plugin_file_name("bento-driver-memory")))
        .unwrap();
    std::fs::copy(
        plugin_path("bento-fixture-plugin"),
        dir.path().join(bento::plugin_file_name("bento-fixture-plugin")),
    )
    .unwrap();
    std::fs::write(dir.path().join("README.txt"), "not a library").unwrap();
    let set = Plugin::load_folder(dir.path()).unwrap();
    let names: Vec<&str> = set.iter().map(Plugin::name).collect();
    assert_eq!(names, ["fixture", "memory"]);
    let error = set.driver("redis").unwrap_err();
    assert!(matches!(error, Error::UnknownPlugin { .. }), "{error:?}");
    assert!(error.to_string().contains("fixture, memory"), "the error lists what is there: {error}");
}

#[test]
fn a_folder_of_every_bundled_plugin_loads_and_names_resolve_per_kind() {
    let folder = bundled_plugin_folder();
    let set = Plugin::load_folder(folder.path()).unwrap();
    assert_eq!(set.len(), bento_testkit::BUNDLED_PLUGINS.len());
    // The Redis driver and the Redis bus are both called `redis`.
    let redis_driver = set.driver("redis").unwrap();
    let redis_bus = set.bus("redis").unwrap();
    assert_ne!(redis_driver.path(), redis_bus.path());
    assert!(redis_driver.info().provides_driver && redis_bus.info().provides_bus);
    assert_eq!(set.named("redis").count(), 2);
    assert!(set.bus("nats").unwrap().info().provides_bus);
    for name in ["memory", "file", "sqlite", "postgres", "mysql"] {
        assert!(set.driver(name).is_ok(), "{name}");
    }
    let error = set.bus("memory").unwrap_err();
    assert!(error.to_string().contains("providing a bus"), "{error}");
}

#[test]
fn a_library_that_is_not_a_plugin_fails_the_folder_load() {
    // Decision (see `Plugin::load_folder`): a plugin folder holds plugins
    // only; a stray library is an error naming it, not silently skipped.
    let candidates = ["/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1"];
    let Some(library) = candidates.iter().map(Path::new).find(|p| p.exists()) else {
        eprintln!("SKIP: no system shared library found to copy");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(plugin_path("bento-driver-memory"), dir.path().join(bento::plugin_file_name("bento-driver-memory")))
        .unwrap();
    std::fs::copy(library, dir.path().join("libz.so")).unwrap();
    let error = Plugin::load_folder(dir.path()).unwrap_err();
    println!("{error}");
    assert!(matches!(error, Error::NotAPlugin { ref path, .. } if path.ends_with("libz.so")), "{error:?}");
}

/// Child half of the truncation test: loads `BENTO_TEST_TRUNCATED_PLUGIN`
/// (when set) and prints the error. Passes trivially in a normal run.
#[test]
fn child_loads_the_truncated_plugin() {
    let Some(path) = std::env::var_os("BENTO_TEST_TRUNCATED_PLUGIN") else { return };
    match Plugin::load(&path) {
        Ok(plugin) => panic!("a truncated copy loaded as {}", plugin.name()),
        Err(error) => println!("REFUSED: {error}"),
    }
}

#[test]
fn truncated_plugin_files_are_refused_without_crashing() {
    // `head -c 4096 libbento_driver_memory.so > libt.so` used to kill the
    // host with SIGBUS inside dlopen. Each copy is loaded in a child
    // process, so a crash shows as a signal instead of killing this run.
    let bytes = std::fs::read(plugin_path("bento-driver-memory")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for size in [100, 4096, 64 * 1024, bytes.len() / 2, bytes.len() - 1] {
        let path = dir.path().join(format!("libtruncated_{size}.so"));
        std::fs::write(&path, &bytes[..size]).unwrap();
        let output = run_in_child("child_loads_the_truncated_plugin", &[("BENTO_TEST_TRUNCATED_PLUGIN", &path)]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{size} bytes: {:?}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("REFUSED:") && stdout.contains("damaged plugin file"), "{size} bytes: {stdout}");
        assert!(stdout.contains(&format!("only {size} bytes")), "the error says why: {stdout}");
    }
}

/// Child half of the runtime test: with `BENTO_TEST_PLUGIN_THREADS` set,
/// builds a store over the fixture plugin with `plugin_threads` set to it
/// and counts the plugin runtime's threads (the fixture driver awaits a
/// tokio timer on every call and never blocks, so every such thread is a
/// worker).
#[tokio::test]
async fn child_counts_plugin_runtime_threads() {
    let Ok(threads) = std::env::var("BENTO_TEST_PLUGIN_THREADS") else { return };
    let folder = tempfile::tempdir().unwrap();
    let fixture = plugin_path("bento-fixture-plugin");
    std::fs::copy(&fixture, folder.path().join(fixture.file_name().unwrap())).unwrap();
    let config = format!("plugin_threads = {threads}\n[stores.main]\nl2 = {{ plugin = \"fixture\" }}");
    let bento = bento::Bento::from_config(&config, folder.path()).await.unwrap();
    bento.set("k", 1).await.unwrap();
    let count = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim() == "bento-plugin-rt")
            .count()
    };
    // A new thread names itself once it runs: on a busy machine a worker
    // may not have yet, so look again for a while before reporting.
    let expected: usize = threads.parse().unwrap();
    let mut running = count();
    for _ in 0..60 {
        if running == expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        running = count();
    }
    println!("PLUGIN THREADS: {running}");
}

#[cfg(target_os = "linux")]
#[test]
fn plugin_threads_sets_the_plugin_runtime_size() {
    for threads in ["1", "3"] {
        let output =
            run_in_child("child_counts_plugin_runtime_threads", &[("BENTO_TEST_PLUGIN_THREADS", Path::new(threads))]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.contains(&format!("PLUGIN THREADS: {threads}\n")), "{threads}: {stdout}");
    }
}

#[tokio::test]
async fn bad_options_are_rejected_with_the_field_name() {
    let plugin = memory_plugin();
    let error = plugin.create_driver(r#"{"max_itemz": 3}"#, DriverOptions::default()).await.unwrap_err();
    println!("{error}");
    assert!(error.to_string().contains("max_itemz"), "{error}");
    let error = plugin.create_driver(r#"{"max_items": "many"}"#, DriverOptions::default()).await.unwrap_err();
    println!("{error}");
    assert!(error.to_string().contains("max_items"), "{error}");
    let error = plugin.create_driver("{not json", DriverOptions::default()).await.unwrap_err();
    assert!(matches!(error, Error::Driver(ref e) if e.kind == bento::ErrorKind::INVALID_OPTIONS), "{error:?}");
}

#[tokio::test]
async fn a_driver_only_plugin_has_no_bus() {
    let error = memory_plugin().create_bus("{}").await.unwrap_err();
    assert!(error.to_string().contains("provides no bus"), "{error}");
}
