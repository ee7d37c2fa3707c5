//! The Bento conformance suite against the file plugin, in a fresh temp
//! directory the driver owns (so the empty-prefix cases run too).

fn main() -> std::process::ExitCode {
    let directory = tempfile::tempdir().expect("a temp directory for the cache");
    let options = serde_json::json!({ "directory": directory.path() }).to_string();
    bento_conformance::libtest_main(
        bento_conformance::Target::new(bento_testkit::plugin_path("bento-driver-file"))
            .options(options)
            .allow_empty_prefix(true),
    )
}
