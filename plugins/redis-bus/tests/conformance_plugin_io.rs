//! The conformance bus suite with `"io": "plugin"`: publisher and
//! subscriber on the plugin's own runtime, as before the bus used the
//! host's. See tests/conformance.rs (the default, `"io": "auto"`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, "redis bus conformance (io plugin)") else {
        return ExitCode::SUCCESS;
    };
    let options = serde_json::json!({ "url": url, "io": "plugin" }).to_string();
    bento_conformance::libtest_main(
        bento_conformance::Target::new(bento_testkit::plugin_path("bento-bus-redis")).options(options),
    )
}
