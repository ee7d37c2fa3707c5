//! The full driver conformance suite with `"io": "plugin"`: the connection
//! on the plugin's own runtime (redis-rs `ConnectionManager`), as before
//! the host lent its runtime. See tests/conformance.rs.

#[path = "support/suite.rs"]
mod suite;

fn main() -> std::process::ExitCode {
    suite::run("plugin", 12)
}
