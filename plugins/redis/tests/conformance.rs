//! The full driver conformance suite against the Redis server of the test
//! environment (`BENTO_REDIS_URL`, default `redis://127.0.0.1:6379`).
//!
//! The suite's empty-prefix cases flush the whole database, so the suite
//! runs in database 11, which no other test uses, and enables those cases
//! there. When `BENTO_REDIS_URL` names a database itself, that database is
//! used and the empty-prefix cases are skipped (it may be shared).

use std::process::ExitCode;

/// The database the suite may empty.
const SUITE_DATABASE: u32 = 11;

fn main() -> ExitCode {
    let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, "redis conformance") else {
        return ExitCode::SUCCESS;
    };
    // Keep a database the environment's URL names explicitly.
    let has_database = url.split_once("://").is_some_and(|(_, rest)| rest.contains('/'));
    let url = if has_database { url } else { format!("{url}/{SUITE_DATABASE}") };
    let options = serde_json::json!({ "url": url }).to_string();
    bento_conformance::libtest_main(
        bento_conformance::Target::new(bento_testkit::plugin_path("bento-driver-redis"))
            .options(options)
            .allow_empty_prefix(!has_database),
    )
}
