//! Loading plugins from files and folders, and every loader error a user can
//! meet, checked by the message they would read.

use bento::{DriverOptions, Error, Plugin};
use bento_testkit::plugin_path;
use std::path::Path;

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
    assert!(set.get("redis").is_err());
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
