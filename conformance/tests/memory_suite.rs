//! The conformance suite from `cargo test`, on the bundled memory plugin:
//! the same thing a driver author puts in their own crate. The memory
//! driver's keyspace is private to each driver instance, so the empty-prefix
//! cases are safe to allow here.
//!
//! Needs the plugin built next to this test binary: `cargo test -p
//! bento-conformance` builds it (a dev-dependency on
//! `bento-driver-memory-plugin`).

fn main() -> std::process::ExitCode {
    let plugin = bento_testkit::plugin_path("bento-driver-memory");
    bento_conformance::libtest_main(bento_conformance::Target::new(plugin).allow_empty_prefix(true))
}
