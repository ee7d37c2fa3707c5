//! The one error type of the `bento` crate.

use bento_plugin_api::DriverError;
use std::path::PathBuf;

/// Everything that can go wrong in `bento`.
#[derive(Debug, thiserror::Error)]
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
    /// No plugin with that name was loaded.
    #[error("no plugin named `{name}` is loaded")]
    UnknownPlugin {
        /// The requested name.
        name: String,
    },
    /// Options were invalid (plugin options are reported by the plugin).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// A driver or bus call failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
}
