//! # bento-bus-redis-plugin
//!
//! The plugin file of the Redis pub/sub bus: `export_plugin!` over the types of the
//! `bento-bus-redis` library crate, built as `libbento_bus_redis.so`. Nothing else lives
//! here, so the library carries no plugin entry symbols and any number of
//! bundled drivers and buses can be linked into one executable.

bento_plugin_api::export_plugin! {
    name: "redis",
    bus: library::RedisBus,
}
