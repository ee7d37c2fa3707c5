//! The example driver passes the full conformance suite, from `cargo test`.
//! Each driver instance is a private in-process map, so the cases where the
//! driver owns its whole keyspace (empty prefix) run too.

fn main() -> std::process::ExitCode {
    let plugin = bento_conformance::built_plugin("my-driver");
    bento_conformance::libtest_main(bento_conformance::Target::new(plugin).allow_empty_prefix(true))
}
