//! Every Rust block of docs/writing-a-driver.md that is marked as coming from
//! this crate (`// from examples/my-driver/src/lib.rs`) must appear verbatim
//! in src/lib.rs, so the guide's code is the code that compiles and passes
//! conformance in CI.

const GUIDE: &str = include_str!("../../../docs/writing-a-driver.md");
const SOURCE: &str = include_str!("../src/lib.rs");
const MARKER: &str = "// from examples/my-driver/src/lib.rs\n";

fn rust_blocks(markdown: &str) -> Vec<&str> {
    markdown.split("```rust\n").skip(1).filter_map(|rest| rest.split_once("```").map(|(block, _)| block)).collect()
}

#[test]
fn guide_code_is_the_example_crate_code() {
    let quoted: Vec<&str> = rust_blocks(GUIDE).into_iter().filter_map(|block| block.strip_prefix(MARKER)).collect();
    assert!(quoted.len() >= 4, "the guide should quote the example crate in several blocks");
    for block in quoted {
        assert!(SOURCE.contains(block), "this guide block is not in examples/my-driver/src/lib.rs:\n{block}");
    }
}
