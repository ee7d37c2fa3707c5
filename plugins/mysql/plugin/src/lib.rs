//! # bento-driver-mysql-plugin
//!
//! The plugin file of the MySQL / MariaDB driver: `export_plugin!` over the types of the
//! `bento-driver-mysql` library crate, built as `libbento_driver_mysql.so`. Nothing else lives
//! here, so the library carries no plugin entry symbols and any number of
//! bundled drivers and buses can be linked into one executable.

bento_plugin_api::export_plugin! {
    name: "mysql",
    layers: [remote],
    driver: library::MysqlDriver,
}
