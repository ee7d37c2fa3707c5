//! The stable ABI: everything here crosses the shared-library boundary and is
//! layout-checked by `abi_stable` when a plugin loads.
//!
//! Compatibility rule (the whole policy is in the crate docs, "ABI
//! versioning"): fields are only ever appended after the last prefix field
//! of [`PluginMod`], and methods only appended after the
//! `#[sabi(last_prefix_field)]` method of [`FfiDriver`] / [`FfiBus`], each
//! with a default implementation, so plugins built against an older minor
//! version keep loading in newer hosts: a method missing from an old
//! plugin's vtable runs its default here, in the host.

// The `#[sabi_trait]` expansion puts trait impls inside a const block.
#![allow(non_local_definitions)]

pub mod v0_1_0;
pub mod v0_1_1;

use crate::capabilities::Capabilities;
use crate::error::{DriverError, ErrorKind};
use abi_stable::{
    declare_root_module_statics,
    library::{LibHeader, LibraryError, RootModule},
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RSliceMut, RStr, RString, RVec},
    StableAbi,
};
/// The async-ffi types of the ABI, re-exported so a host needs no direct
/// dependency on async-ffi.
pub use async_ffi::{FfiContext, FfiFuture, FfiPoll};

/// A [`DriverError`] in its stable form.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiError {
    /// See [`ErrorKind`].
    pub kind: ErrorKind,
    /// Human-readable message.
    pub message: RString,
}

// Plumbing of the boundary: hidden so that the user-facing `DriverError`
// page (also shown under `bento`) does not list FFI types.
#[doc(hidden)]
impl From<DriverError> for FfiError {
    fn from(error: DriverError) -> Self {
        FfiError { kind: error.kind, message: error.message.into() }
    }
}

#[doc(hidden)]
impl From<FfiError> for DriverError {
    fn from(error: FfiError) -> Self {
        DriverError { kind: error.kind, message: error.message.into() }
    }
}

/// Result of every ABI call.
pub type FfiResult<T> = RResult<T, FfiError>;

/// A future returned across the boundary.
pub type FfiFut<T> = FfiFuture<FfiResult<T>>;

/// Which cache layers a plugin's driver can serve.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layers {
    /// Usable as an in-process L1 ("local").
    pub local: bool,
    /// Usable as a shared L2 ("remote").
    pub remote: bool,
}

/// What a plugin says about itself.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginMetadata {
    /// Short name, e.g. `"redis"`; unique within one plugin folder.
    pub name: RString,
    /// The plugin crate's version.
    pub version: RString,
    /// The `bento-plugin-api` version the plugin was built against.
    pub api_version: RString,
    /// Layers the driver can serve; both false when the plugin only has a bus.
    pub layers: Layers,
    /// True when the plugin provides a cache driver.
    pub provides_driver: bool,
    /// True when the plugin provides a bus.
    pub provides_bus: bool,
    /// JSON Schema of the driver options (`"null"` when there is no driver).
    pub driver_options_schema: RString,
    /// JSON Schema of the bus options (`"null"` when there is no bus).
    pub bus_options_schema: RString,
}

/// The parameters every driver receives besides its own options.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiDriverConfig {
    /// The store's default TTL in milliseconds (informational, see
    /// [`crate::DriverConfig::default_ttl`]); `None` = forever.
    pub default_ttl_ms: ROption<u64>,
    /// The key prefix of the root handle (may be empty).
    pub prefix: RString,
}

/// One item of a batch `set_many`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct FfiSetItem {
    /// The key, relative to the handle's prefix.
    pub key: RString,
    /// The value bytes.
    pub value: RVec<u8>,
    /// Time to live in milliseconds; `None` = forever.
    pub ttl_ms: ROption<u64>,
}

/// The driver object a plugin hands to the host. Method semantics are the
/// driver contract (SPEC §3); see [`crate::CacheDriver`] for each.
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

    // ---- Added in 0.1.1. Plugins built against 0.1.0 lack these vtable
    // ---- entries: the defaults below run instead (in the host).

    /// What this driver supports beyond the base contract (since 0.1.1).
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }
    /// Take the lock `key` for `owner` for `ttl_ms` milliseconds when it is
    /// free, expired, or already `owner`'s (then its TTL restarts); true
    /// when `owner` holds it afterwards (since 0.1.1).
    fn try_lock(&self, _key: RString, _owner: RString, _ttl_ms: u64) -> FfiFut<bool> {
        unsupported_future(NO_LOCK)
    }
    /// Release the lock `key` if `owner` holds it; true when released
    /// (since 0.1.1).
    fn unlock(&self, _key: RString, _owner: RString) -> FfiFut<bool> {
        unsupported_future(NO_LOCK)
    }
}

/// The message of the `Unsupported` error a driver without
/// [`Capabilities::LOCK`] returns from the lock methods.
pub const NO_LOCK: &str = crate::driver::NO_LOCK;

/// An owned driver object.
pub type FfiDriverBox = FfiDriver_TO<'static, RBox<()>>;

/// The callback the host passes to [`FfiBus::subscribe`]; called from plugin
/// threads with each message payload received on the channel.
#[sabi_trait]
pub trait FfiBusHandler: Send + Sync {
    /// One message arrived on `channel`.
    #[sabi(last_prefix_field)]
    fn on_message(&self, channel: RStr<'_>, payload: RVec<u8>);
}

/// An owned bus message handler.
pub type FfiBusHandlerBox = FfiBusHandler_TO<'static, RBox<()>>;

/// The callback the host passes to [`FfiBus::on_reconnect`].
#[sabi_trait]
pub trait FfiReconnectHandler: Send + Sync {
    /// The bus connection was re-established.
    #[sabi(last_prefix_field)]
    fn on_reconnect(&self);
}

/// An owned reconnect handler.
pub type FfiReconnectHandlerBox = FfiReconnectHandler_TO<'static, RBox<()>>;

/// The bus object a plugin hands to the host (SPEC §6).
#[sabi_trait]
pub trait FfiBus: Send + Sync {
    /// Publish `payload` on `channel`.
    fn publish(&self, channel: RString, payload: RVec<u8>) -> FfiFut<()>;
    /// Deliver every message of `channel` to `handler` until unsubscribed.
    fn subscribe(&self, channel: RString, handler: FfiBusHandlerBox) -> FfiFut<()>;
    /// Stop delivering `channel`.
    fn unsubscribe(&self, channel: RString) -> FfiFut<()>;
    /// Register a callback run after each reconnection.
    fn on_reconnect(&self, handler: FfiReconnectHandlerBox);
    /// Close the bus; idempotent.
    #[sabi(last_prefix_field)]
    fn disconnect(&self) -> FfiFut<()>;
}

/// An owned bus object.
pub type FfiBusBox = FfiBus_TO<'static, RBox<()>>;

/// The result of one host socket call: the byte count, or the OS error
/// number (`errno`), or [`IO_WOULD_BLOCK`] / [`IO_OTHER_ERROR`].
pub type FfiIoResult = RResult<usize, i32>;

/// [`FfiIoResult`] error: the operation would block (whatever the
/// platform's `EAGAIN`).
pub const IO_WOULD_BLOCK: i32 = -2;

/// [`FfiIoResult`] error: an error without an OS error number.
pub const IO_OTHER_ERROR: i32 = -1;

/// The tokio runtime a host lends its plugins (appended to [`PluginMod`]
/// in 0.1.2, see `attach_host_runtime`), so a driver can run its I/O on
/// the caller's runtime instead of handing every request to the plugin's
/// own threads. Every method acts on the host runtime *current on the
/// calling thread*, the one polling the plugin's future; the plugin must
/// treat "none current" as "not available" and use its own runtime.
#[sabi_trait]
pub trait FfiHostRuntime: Send + Sync {
    /// True when a host tokio runtime that the host lends (with I/O
    /// enabled; the bundled host lends multi-thread runtimes only) is
    /// current on the calling thread.
    fn available(&self) -> bool;
    /// Run `future` to completion on the host runtime current on the
    /// calling thread. False, with `future` dropped, when none is. When
    /// that runtime shuts down the future is dropped unfinished.
    fn spawn(&self, future: FfiFuture<()>) -> bool;
    /// Take ownership of `fd`, a connected stream socket in non-blocking
    /// mode, and register it with the reactor of the host runtime current
    /// on the calling thread. Dropping the returned object deregisters it
    /// from that reactor and closes the socket. On error the socket is
    /// closed too.
    #[sabi(last_prefix_field)]
    fn register_socket(&self, fd: i64) -> FfiResult<FfiHostSocketBox>;
}

/// An owned host runtime object.
pub type FfiHostRuntimeBox = FfiHostRuntime_TO<'static, RBox<()>>;

/// A socket registered with a host reactor
/// ([`FfiHostRuntime::register_socket`]). The host performs the reads and
/// writes itself, so readiness is cleared only when the OS says "would
/// block" (tokio's `AsyncFd::try_io`) or a read drained the socket.
#[sabi_trait]
pub trait FfiHostSocket: Send + Sync {
    /// Ready (`ROk(0)`) when the reactor saw the socket readable since the
    /// last read that would have blocked or that drained it (a host may
    /// take a read shorter than asked as draining, as tokio's `TcpStream`
    /// does), else pending with `cx`'s waker registered for read
    /// readiness. Reading is a separate call
    /// ([`FfiHostSocket::try_read`]) so that the caller prepares a buffer
    /// only when there is something to read.
    fn poll_read_ready(&self, cx: &mut FfiContext<'_>) -> FfiPoll<FfiIoResult>;
    /// Read into `buf` if the socket is known readable: the byte count
    /// (0 = end of stream), or an error; [`IO_WOULD_BLOCK`] when it is
    /// not, which clears the readiness (poll again).
    fn try_read(&self, buf: RSliceMut<'_, u8>) -> FfiIoResult;
    /// Write from `buf`: the byte count, an error, or pending with `cx`'s
    /// waker registered for write readiness.
    fn poll_write(&self, cx: &mut FfiContext<'_>, buf: RSlice<'_, u8>) -> FfiPoll<FfiIoResult>;
    /// Shut down the writing half (0 on success, else the OS error number).
    #[sabi(last_prefix_field)]
    fn shutdown_write(&self) -> FfiIoResult;
}

/// An owned host socket object.
pub type FfiHostSocketBox = FfiHostSocket_TO<'static, RBox<()>>;

/// The root module every plugin exports (via [`crate::export_plugin!`]).
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
    /// starts; false when it already runs with another count (since
    /// 0.1.1). Plugins built before this field existed lack it (the
    /// accessor returns `None`).
    #[sabi(missing_field(option))]
    pub configure_runtime: extern "C" fn(worker_threads: u32) -> bool,
    /// Lend the host's tokio runtime to the plugin ([`FfiHostRuntime`]);
    /// the host calls it once, right after loading (since 0.1.2). A plugin
    /// keeps the first one it is given and may ignore it. Plugins built
    /// before this field existed lack it (the accessor returns `None`) and
    /// keep all their I/O on their own runtime.
    #[sabi(missing_field(option))]
    pub attach_host_runtime: extern "C" fn(runtime: FfiHostRuntimeBox),
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "bento_plugin";
    const NAME: &'static str = "bento_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// Name of the marker symbol every plugin exports next to its root module:
/// a function returning the NUL-terminated `bento-plugin-api` version the
/// plugin was built against. The host probes it before the layout check so
/// "not a Bento plugin" and "built against another API version" are told
/// apart with both versions named.
pub const API_VERSION_SYMBOL: &[u8] = b"bento_plugin_api_version\0";

/// The value of the marker symbol: this crate's version, NUL-terminated.
pub const API_VERSION_CSTR: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// True when a plugin built against `plugin_api` can be loaded by a host
/// built against `host_api`: same ABI generation and the plugin not newer
/// than the host. As in Cargo and abi_stable, `0.y.z` reads as
/// generation `0.y`, revision `z`; `x.y.z` (x ≥ 1) as generation `x`,
/// revision `y`. A revision only appends to the ABI (see the crate docs,
/// "ABI versioning"), so an older plugin works in a newer host; a newer
/// plugin is refused by an older host, with both versions named.
pub fn api_versions_compatible(host_api: &str, plugin_api: &str) -> bool {
    match (AbiVersion::parse(host_api), AbiVersion::parse(plugin_api)) {
        (Some(host), Some(plugin)) => host.generation == plugin.generation && plugin.revision <= host.revision,
        _ => false,
    }
}

/// A `bento-plugin-api` version read as ABI generation + revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AbiVersion {
    /// `(0, y)` for `0.y.z`, `(x, 0)` for `x.y.z` with x ≥ 1.
    generation: (u64, u64),
    /// `z` for `0.y.z`, `y` for `x.y.z` with x ≥ 1.
    revision: u64,
}

impl AbiVersion {
    fn parse(version: &str) -> Option<AbiVersion> {
        let mut parts = version.split(['.', '-', '+']);
        let (major, minor, patch): (u64, u64, u64) =
            (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
        Some(if major == 0 {
            AbiVersion { generation: (0, minor), revision: patch }
        } else {
            AbiVersion { generation: (major, 0), revision: minor }
        })
    }
}

/// Check the root module of a plugin built against `plugin_api` (the
/// version its marker symbol reports, already accepted by
/// [`api_versions_compatible`]) and initialize it.
///
/// abi_stable's layout check accepts a library with more trailing prefix
/// fields than the loader expects, never fewer, so a plugin from an older
/// revision would fail a check against today's layout. It is checked
/// instead against the frozen layout of its own revision ([`v0_1_0`],
/// [`v0_1_1`]), which must match exactly; today's host then reads it
/// through today's types, and every field or method appended since reads
/// as absent (the `Option` accessor returns `None`, the vtable records
/// which methods it has and the missing ones run their defaults). A plugin
/// of the current revision gets abi_stable's full check against today's
/// layout.
pub fn init_root_module(header: &LibHeader, plugin_api: &str) -> Result<PluginModRef, LibraryError> {
    const REVISION_0_1_0: AbiVersion = AbiVersion { generation: (0, 1), revision: 0 };
    const REVISION_0_1_1: AbiVersion = AbiVersion { generation: (0, 1), revision: 1 };
    match AbiVersion::parse(plugin_api) {
        Some(REVISION_0_1_0) => header.ensure_layout::<v0_1_0::PluginModRef>()?,
        Some(REVISION_0_1_1) => header.ensure_layout::<v0_1_1::PluginModRef>()?,
        _ => return header.init_root_module::<PluginModRef>(),
    }
    // SAFETY: the library's root module was just checked against the
    // frozen layout of its revision (0.1.0 or 0.1.1). Today's `PluginMod`
    // differs from each only by fields after its last prefix field
    // (`configure_runtime` since 0.1.1, `attach_host_runtime` since 0.1.2,
    // each read as an `Option`), and the other types reachable from it
    // that differ are prefix types too (the driver vtable, grown after its
    // last prefix field in 0.1.1; unchanged since). Accessors of such
    // fields consult the library's own field-accessibility record and
    // return `None` or fall back to the trait's default method when it
    // lacks them, so no absent field is ever read.
    unsafe { header.init_root_module_with_unchecked_layout::<PluginModRef>() }
}

/// Error returned by a plugin that provides no driver or no bus.
pub fn unsupported_future<T: 'static>(what: &str) -> FfiFut<T> {
    let error: FfiError = DriverError::unsupported(what).into();
    async_ffi::FutureExt::into_ffi(async move { RResult::RErr(error) })
}

#[cfg(test)]
mod tests {
    use super::api_versions_compatible;

    #[test]
    fn version_rules() {
        // 0.y.z: y is the generation, z the revision.
        assert!(api_versions_compatible("0.1.2", "0.1.0"), "an older plugin loads in a newer host");
        assert!(api_versions_compatible("0.1.2", "0.1.1"));
        assert!(api_versions_compatible("0.1.2", "0.1.2"));
        assert!(!api_versions_compatible("0.1.1", "0.1.2"), "a newer plugin is refused by an older host");
        assert!(!api_versions_compatible("0.2.0", "0.1.0"), "another generation is refused");
        assert!(!api_versions_compatible("0.1.5", "0.2.0"));
        // x.y.z: x is the generation, y the revision, z never matters.
        assert!(api_versions_compatible("1.2.0", "1.1.9"));
        assert!(api_versions_compatible("1.2.0", "1.2.7"));
        assert!(!api_versions_compatible("1.2.0", "1.3.0"));
        assert!(!api_versions_compatible("1.2.0", "2.0.0"));
        assert!(!api_versions_compatible("1.0.0", "0.9.0"));
        assert!(!api_versions_compatible("1.2.0", "garbage"));
    }
}
