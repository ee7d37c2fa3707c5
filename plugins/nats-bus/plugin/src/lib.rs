//! # bento-bus-nats-plugin
//!
//! The plugin file of the NATS bus: `export_plugin!` over the types of the
//! `bento-bus-nats` library crate, built as `libbento_bus_nats.so`. Nothing else lives
//! here, so the library carries no plugin entry symbols and any number of
//! bundled drivers and buses can be linked into one executable.

bento_plugin_api::export_plugin! {
    name: "nats",
    bus: library::NatsBus,
}
