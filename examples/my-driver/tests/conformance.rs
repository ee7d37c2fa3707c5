//! The example driver passes the full conformance suite, from `cargo test`.

fn main() -> std::process::ExitCode {
    let plugin = bento_testkit::plugin_path("my-driver");
    bento_conformance::libtest_main(bento_conformance::Target::new(plugin))
}
