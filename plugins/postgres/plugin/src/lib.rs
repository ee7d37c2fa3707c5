//! # bento-driver-postgres-plugin
//!
//! The plugin file of the PostgreSQL driver: `export_plugin!` over the types of the
//! `bento-driver-postgres` library crate, built as `libbento_driver_postgres.so`. Nothing else lives
//! here, so the library carries no plugin entry symbols and any number of
//! bundled drivers and buses can be linked into one executable.

bento_plugin_api::export_plugin! {
    name: "postgres",
    layers: [remote],
    driver: library::PostgresDriver,
}
