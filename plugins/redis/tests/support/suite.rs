//! The conformance suite's `main`, shared by the runs with `io` forced each
//! way (tests/conformance.rs, tests/conformance_plugin_io.rs).
//!
//! The suite's empty-prefix cases flush the whole database, so each run
//! uses a database of its own that no other test uses, and enables those
//! cases there. When `BENTO_REDIS_URL` names a database itself, that
//! database is used and the empty-prefix cases are skipped (it may be
//! shared).

use std::process::ExitCode;

/// Run the suite on the plugin with `"io": io`, in `database` unless the
/// environment's URL names one.
pub fn run(io: &str, database: u32) -> ExitCode {
    let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, "redis conformance") else {
        return ExitCode::SUCCESS;
    };
    // Keep a database the environment's URL names explicitly.
    let has_database = url.split_once("://").is_some_and(|(_, rest)| rest.contains('/'));
    let url = if has_database { url } else { format!("{url}/{database}") };
    let options = serde_json::json!({ "url": url, "io": io }).to_string();
    bento_conformance::libtest_main(
        bento_conformance::Target::new(bento_testkit::plugin_path("bento-driver-redis"))
            .options(options)
            .prefix(format!("conf-io-{io}"))
            .allow_empty_prefix(!has_database),
    )
}
