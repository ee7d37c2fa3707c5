//! The full driver conformance suite against the Redis server of the test
//! environment (`BENTO_REDIS_URL`, default `redis://127.0.0.1:6379`), with
//! the default `"io": "auto"`: the suite runs every case on a multi-thread
//! runtime of its own, so the connection runs on the host's runtime (and
//! redials when a case's runtime shuts down). tests/conformance_plugin_io.rs
//! runs it with `"io": "plugin"`.

#[path = "support/suite.rs"]
mod suite;

fn main() -> std::process::ExitCode {
    suite::run("auto", 11)
}
