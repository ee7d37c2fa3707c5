//! # bento-driver-sqlite-plugin
//!
//! The plugin file of the SQLite driver: `export_plugin!` over the types of the
//! `bento-driver-sqlite` library crate, built as `libbento_driver_sqlite.so`. Nothing else lives
//! here, so the library carries no plugin entry symbols and any number of
//! bundled drivers and buses can be linked into one executable.

bento_plugin_api::export_plugin! {
    name: "sqlite",
    layers: [remote],
    driver: library::SqliteDriver,
}
