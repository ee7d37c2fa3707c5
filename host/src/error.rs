//! The one error type of the `bento` crate.

use bento_plugin_api::DriverError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A type-erased error, as returned by factories and serializers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `bento`.
///
/// Non-exhaustive: new kinds of failure may be added in minor releases, so
/// a `match` needs a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The plugin file does not exist.
    #[error("plugin file not found: {path}")]
    PluginNotFound {
        /// The path that was given.
        path: PathBuf,
    },
    /// The file exists but is not a Bento plugin.
    #[error("{path} is not a Bento plugin: {reason}")]
    NotAPlugin {
        /// The offending file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The file is a shared library whose headers point past its end or
    /// are corrupt (e.g. a truncated copy); refused before the dynamic
    /// loader maps it.
    #[error("{path} is a damaged plugin file: {reason}; copy the plugin again")]
    DamagedPlugin {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The plugin was built against an incompatible `bento-plugin-api`.
    #[error(
        "{path} was built against bento-plugin-api {plugin_api}, but this host uses bento-plugin-api {host_api}; \
         rebuild the plugin against a compatible version"
    )]
    IncompatiblePlugin {
        /// The offending file.
        path: PathBuf,
        /// API version the plugin was built against.
        plugin_api: String,
        /// API version of this host.
        host_api: String,
    },
    /// The library failed abi_stable's checks or could not be initialized.
    #[error("cannot load plugin {path}: {message}")]
    PluginLoad {
        /// The offending file.
        path: PathBuf,
        /// What the loader reported.
        message: String,
    },
    /// Two plugins in one folder share a name.
    #[error("two plugins named `{name}` in one folder: {first} and {second}")]
    DuplicatePlugin {
        /// The shared name.
        name: String,
        /// The first file.
        first: PathBuf,
        /// The second file.
        second: PathBuf,
    },
    /// A folder scan could not read the folder.
    #[error("cannot read plugin folder {path}: {source}")]
    PluginFolder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// No loaded plugin of that name provides what was asked for.
    #[error("no plugin named `{name}` providing {kind} is loaded (loaded plugins providing {kind}: {available})")]
    UnknownPlugin {
        /// The requested name.
        name: String,
        /// What it should provide, e.g. "a bus".
        kind: String,
        /// Names of the loaded plugins that provide it.
        available: String,
    },
    /// The factory of `get_or_set` failed (or panicked). `background` is
    /// true when nobody was waiting for it any more (stale-while-revalidate,
    /// soft or hard timeout); such errors reach only `on_factory_error`.
    #[error("factory for key `{key}` failed{}: {source}", if *.background { " in the background" } else { "" })]
    Factory {
        /// The key being computed.
        key: String,
        /// What the factory returned.
        source: Arc<dyn std::error::Error + Send + Sync + 'static>,
        /// True when the caller had already been answered.
        background: bool,
    },
    /// The factory did not finish within `hard_timeout`; it keeps running
    /// and its value is cached when it finishes.
    #[error("factory for key `{key}` did not finish within the hard timeout of {timeout:?}")]
    HardTimeout {
        /// The key being computed.
        key: String,
        /// The configured hard timeout.
        timeout: Duration,
    },
    /// Waiting for another caller computing the same key took longer than
    /// `lock_timeout`, and no graced value could be served.
    #[error("waited longer than {timeout:?} for the lock on key `{key}`")]
    LockTimeout {
        /// The full key.
        key: String,
        /// The configured lock timeout.
        timeout: Duration,
    },
    /// The L2 driver failed (and `suppress_l2_errors` is off).
    #[error("L2 error on `{key}`: {source}")]
    L2 {
        /// The key (or namespace for clear/prune) involved.
        key: String,
        /// The driver's error.
        source: DriverError,
    },
    /// A loaded plugin was asked for something it does not provide (a
    /// driver from a bus-only plugin, a bus from a driver-only one).
    #[error("plugin `{plugin}` provides no {what}")]
    NotProvided {
        /// The plugin's name.
        plugin: String,
        /// What was asked for: `"cache driver"` or `"bus"`.
        what: &'static str,
    },
    /// A value could not be serialized or deserialized.
    #[error("cannot (de)serialize the entry of `{key}`: {source}")]
    Serialization {
        /// The key involved.
        key: String,
        /// The serializer's error.
        source: BoxError,
    },
    /// `use_store` named a store that was not configured.
    #[error("no store named `{name}`")]
    UnknownStore {
        /// The requested name.
        name: String,
    },
    /// A configuration file could not be parsed.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Setting up part of a configured store failed; `field` is the
    /// config path, e.g. `stores.main.l2`.
    #[error("{field}: {source}")]
    ConfigField {
        /// Where in the configuration, e.g. `stores.main.bus`.
        field: String,
        /// What went wrong there (bad plugin options, connection refused…).
        source: Box<Error>,
    },
    /// Options were invalid (plugin options are reported by the plugin).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A driver or bus call failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
}
