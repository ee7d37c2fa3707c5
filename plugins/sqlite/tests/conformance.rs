//! The Bento conformance suite against the SQLite plugin, on a fresh
//! database file the driver owns (so the empty-prefix cases run too).

fn main() -> std::process::ExitCode {
    let directory = tempfile::tempdir().expect("a temp directory for the database");
    let options = serde_json::json!({ "path": directory.path().join("cache.db") }).to_string();
    bento_conformance::libtest_main(
        bento_conformance::Target::new(bento_testkit::plugin_path("bento-driver-sqlite"))
            .options(options)
            .allow_empty_prefix(true),
    )
}
