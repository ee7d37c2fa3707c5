//! # bento-driver-memory-plugin
//!
//! The plugin file of the in-process reference driver: `export_plugin!` over the types of the
//! `bento-driver-memory` library crate, built as `libbento_driver_memory.so`. Nothing else lives
//! here, so the library carries no plugin entry symbols and any number of
//! bundled drivers and buses can be linked into one executable.

bento_plugin_api::export_plugin! {
    name: "memory",
    layers: [local, remote],
    driver: library::MemoryDriver,
}
