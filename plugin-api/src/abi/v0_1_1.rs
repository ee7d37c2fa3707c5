//! The ABI of bento-plugin-api 0.1.1, frozen: the layout the host checks a
//! plugin built against 0.1.1 against (see [`super::init_root_module`]).
//!
//! Like [`super::v0_1_0`], and for the same reason (abi_stable accepts a
//! library with more trailing prefix fields than the loader expects, never
//! fewer). Only the root module changed since 0.1.1 (0.1.2 appended
//! `attach_host_runtime`), so only it is copied here; the driver and bus
//! vtables are unchanged since 0.1.1 and shared with the current ABI. Never
//! edit these definitions: they ARE the 0.1.1 ABI.

use super::{FfiBusBox, FfiDriverBox, FfiDriverConfig, FfiFut, PluginMetadata};
use abi_stable::{
    declare_root_module_statics, library::RootModule, package_version_strings, sabi_types::VersionStrings,
    std_types::RString, StableAbi,
};

/// The 0.1.1 root module: [`super::PluginMod`] without the fields added
/// since.
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
    /// Set the worker-thread count of the plugin's runtime before it
    /// starts; false when it already runs with another count. Plugins built
    /// against 0.1.0 lack it (the accessor returns `None`).
    #[sabi(missing_field(option))]
    pub configure_runtime: extern "C" fn(worker_threads: u32) -> bool,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "bento_plugin";
    const NAME: &'static str = "bento_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
