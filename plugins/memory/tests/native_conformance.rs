//! The driver conformance suite against the memory driver linked
//! statically ([`bento::Native`]): the same cases as the plugin run, through
//! the driver's library API, with no plugin file. Each case's driver is a
//! separate in-process store, so the empty-prefix cases are safe.

use bento_driver_memory::MemoryDriver;
use bento_memory_store::MemoryStoreOptions;
use std::process::ExitCode;

fn main() -> ExitCode {
    let target = bento_conformance::Target::native::<MemoryDriver>(MemoryStoreOptions::default());
    bento_conformance::libtest_main(target.allow_empty_prefix(true))
}
