//! # bento-benchmarks
//!
//! Benchmarks that compare across crates (see `benches/`); results and the
//! commands that produced them are in BENCHMARKS.md. No library code.
