//! # bento-driver-file-plugin
//!
//! The plugin file of the file driver: `export_plugin!` over the types of the
//! `bento-driver-file` library crate, built as `libbento_driver_file.so`. Nothing else lives
//! here, so the library carries no plugin entry symbols and any number of
//! bundled drivers and buses can be linked into one executable.

bento_plugin_api::export_plugin! {
    name: "file",
    layers: [remote],
    driver: library::FileDriver,
}
