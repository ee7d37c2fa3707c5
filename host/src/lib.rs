//! # bento
//!
//! What applications embed: loading storage-driver plugins (`.so` / `.dll` /
//! `.dylib` built with `bento-plugin-api`) from a file or a folder, and a safe
//! async [`Driver`] over each driver object.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bento::Error> {
//! use bento::{DriverOptions, Plugin};
//!
//! let plugin = Plugin::load("target/release/libbento_driver_memory.so")?;
//! let driver = plugin.create_driver("{}", DriverOptions::with_prefix("app")).await?;
//! driver.set("user:1", b"ada".to_vec(), None).await?;
//! assert_eq!(driver.get("user:1").await?, Some(b"ada".to_vec()));
//! # Ok(()) }
//! ```
//!
//! Plugins are never unloaded: a library that used thread-locals cannot be
//! unloaded safely, so once loaded it stays mapped for the life of the
//! process (loading the same file again returns the same [`Plugin`]).

pub mod bus;
mod driver;
mod error;
mod plugin;

pub use bento_plugin_api::{DriverError, ErrorKind};
pub use driver::{Bus, Driver, DriverOptions};
pub use error::Error;
pub use plugin::{plugin_file_name, Plugin, PluginInfo, PluginSet};
