//! The ABI of bento-plugin-api 0.1.0, frozen: the layout the host checks a
//! plugin built against 0.1.0 against (see [`super::init_root_module`]).
//!
//! abi_stable's layout checker lets the loaded library have MORE trailing
//! prefix fields than the loader expects, never fewer: it is built for a
//! newer library under an older loader. A Bento host is the newer side, so
//! it checks each plugin against the layout of the revision the plugin was
//! built against. Only the types whose layout has changed since 0.1.0 are
//! copied here (the driver vtable and the root module that reaches it);
//! every other type is shared with the current ABI. Never edit these
//! definitions: they ARE the 0.1.0 ABI.

// The `#[sabi_trait]` expansion puts trait impls inside a const block.
#![allow(non_local_definitions)]

use super::{FfiBusBox, FfiDriverConfig, FfiFut, FfiResult, FfiSetItem, PluginMetadata};
use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RStr, RString, RVec},
    StableAbi,
};

/// The 0.1.0 driver object: [`super::FfiDriver`] without the methods added
/// since.
#[sabi_trait]
pub trait FfiDriver: Send + Sync {
    /// A new handle on `prefix:namespace` sharing the connection.
    fn namespace(&self, namespace: RStr<'_>) -> FfiResult<FfiDriverBox>;
    /// Value of `key`, or none.
    fn get(&self, key: RString) -> FfiFut<ROption<RVec<u8>>>;
    /// Values of many keys, in order.
    fn get_many(&self, keys: RVec<RString>) -> FfiFut<RVec<ROption<RVec<u8>>>>;
    /// Get and delete atomically.
    fn pull(&self, key: RString) -> FfiFut<ROption<RVec<u8>>>;
    /// Store a value; true when stored.
    fn set(&self, key: RString, value: RVec<u8>, ttl_ms: ROption<u64>) -> FfiFut<bool>;
    /// Store many values; true when all were stored.
    fn set_many(&self, items: RVec<FfiSetItem>) -> FfiFut<bool>;
    /// True iff `get` would return a value.
    fn has(&self, key: RString) -> FfiFut<bool>;
    /// True iff the key existed.
    fn delete(&self, key: RString) -> FfiFut<bool>;
    /// How many of the keys existed.
    fn delete_many(&self, keys: RVec<RString>) -> FfiFut<u64>;
    /// Remove everything under this handle's prefix.
    fn clear(&self) -> FfiFut<()>;
    /// Remove expired entries from storage.
    fn prune(&self) -> FfiFut<()>;
    /// Close connections; idempotent.
    #[sabi(last_prefix_field)]
    fn disconnect(&self) -> FfiFut<()>;
}

/// An owned 0.1.0 driver object.
pub type FfiDriverBox = FfiDriver_TO<'static, RBox<()>>;

/// The 0.1.0 root module.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// The plugin's metadata.
    pub metadata: extern "C" fn() -> PluginMetadata,
    /// Build a driver from options JSON and the common parameters.
    pub create_driver: extern "C" fn(options_json: RString, config: FfiDriverConfig) -> FfiFut<FfiDriverBox>,
    /// Build a bus from options JSON.
    #[sabi(last_prefix_field)]
    pub create_bus: extern "C" fn(options_json: RString) -> FfiFut<FfiBusBox>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "bento_plugin";
    const NAME: &'static str = "bento_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
