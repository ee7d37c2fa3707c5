//! The conformance bus suite (`bento_conformance`, bus cases) against the
//! Redis server of the test environment, loaded like the host loads it.
//! Its reconnect case routes a second bus through a TCP proxy and cuts it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, "redis bus conformance") else {
        return ExitCode::SUCCESS;
    };
    let options = serde_json::json!({ "url": url }).to_string();
    bento_conformance::libtest_main(
        bento_conformance::Target::new(bento_testkit::plugin_path("bento-bus-redis")).options(options),
    )
}
