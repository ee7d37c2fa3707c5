//! The driver conformance suite against the Redis driver linked statically
//! ([`bento::Native`], typed [`RedisOptions`], no plugin file) and the
//! Redis server of the test environment (`BENTO_REDIS_URL`). The
//! empty-prefix cases are skipped: the plugin run (tests/conformance.rs)
//! covers them in its own database.

use bento_driver_redis::{RedisDriver, RedisOptions};
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(url) = bento_testkit::require(bento_testkit::Service::Redis, "redis native conformance") else {
        return ExitCode::SUCCESS;
    };
    let options = RedisOptions { url: Some(url), ..RedisOptions::default() };
    bento_conformance::libtest_main(bento_conformance::Target::native::<RedisDriver>(options).prefix("conf-native"))
}
