//! Loading plugin libraries: one file, or every plugin in a folder.
//!
//! Each file is first probed with `libloading` for Bento's API-version
//! marker, so "not a plugin" and "built against another API version" are
//! distinct, clear errors; then `abi_stable` checks the root module's layout
//! against the ABI revision the plugin was built against
//! (`bento_plugin_api::abi::init_root_module`).
//! We use `lib_header_from_path(..).init_root_module()` rather than
//! `RootModule::load_from_file`, which caches one module per type per process
//! and would hand back the first plugin for every later file.

use crate::driver::{Bus, Driver, DriverOptions};
use crate::error::Error;
use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::{ROption, RString};
use bento_plugin_api::abi::{api_versions_compatible, FfiDriverConfig, PluginModRef, API_VERSION_SYMBOL};
use bento_plugin_api::API_VERSION;
use std::collections::{BTreeMap, HashMap};
use std::ffi::CStr;
use std::os::raw::c_char;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// Short name, e.g. `"redis"`.
    pub name: String,
    /// The plugin crate's version.
    pub version: String,
    /// The `bento-plugin-api` version it was built against.
    pub api_version: String,
    /// Usable as an in-process L1.
    pub local: bool,
    /// Usable as a shared L2.
    pub remote: bool,
    /// Provides a cache driver.
    pub provides_driver: bool,
    /// Provides a bus.
    pub provides_bus: bool,
    /// JSON Schema of the driver options (`null` without a driver).
    pub driver_options_schema: serde_json::Value,
    /// JSON Schema of the bus options (`null` without a bus).
    pub bus_options_schema: serde_json::Value,
}

struct LoadedPlugin {
    path: PathBuf,
    module: PluginModRef,
    info: PluginInfo,
}

/// A loaded plugin library. Cheap to clone; never unloaded.
#[derive(Clone)]
pub struct Plugin {
    loaded: Arc<LoadedPlugin>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("path", &self.loaded.path).field("info", &self.loaded.info).finish()
    }
}

/// Plugins already loaded, by canonical path: a library is loaded once per
/// process and handed out again.
fn loaded_plugins() -> &'static Mutex<HashMap<PathBuf, Plugin>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Plugin>>> = OnceLock::new();
    LOADED.get_or_init(Default::default)
}

/// The platform's file name for a plugin crate named `crate_name`, e.g.
/// `libbento_driver_redis.so` on Linux for `bento-driver-redis`.
pub fn plugin_file_name(crate_name: &str) -> String {
    let stem = crate_name.replace('-', "_");
    format!("{}{stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

fn is_plugin_file_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    name.starts_with(std::env::consts::DLL_PREFIX) && name.ends_with(std::env::consts::DLL_SUFFIX)
}

/// Probe `path` for Bento's API-version marker. Returns the plugin's API
/// version.
fn probe_api_version(path: &Path) -> Result<String, Error> {
    // SAFETY: loading a library runs its initializers; loading arbitrary
    // code is the purpose of a plugin host. The library is never unloaded
    // (see below), so no symbol outlives its code.
    let library = unsafe { libloading::Library::new(path) }.map_err(|error| Error::NotAPlugin {
        path: path.to_owned(),
        reason: format!("not a loadable library ({error})"),
    })?;
    // SAFETY: the marker is declared by `export_plugin!` as
    // `extern "C" fn() -> *const c_char` returning a 'static NUL-terminated
    // string.
    let version = unsafe {
        match library.get::<extern "C" fn() -> *const c_char>(API_VERSION_SYMBOL) {
            Ok(marker) => {
                let pointer = marker();
                if pointer.is_null() {
                    None
                } else {
                    Some(CStr::from_ptr(pointer).to_string_lossy().into_owned())
                }
            }
            Err(_) => None,
        }
    };
    // Never unload: code that registered thread-locals or atexit hooks would
    // crash the process when unmapped.
    std::mem::forget(library);
    version.ok_or_else(|| Error::NotAPlugin {
        path: path.to_owned(),
        reason:
            "it exports no `bento_plugin_api_version` symbol (was it built with `bento_plugin_api::export_plugin!`?)"
                .to_string(),
    })
}

fn schema(json: &RString) -> serde_json::Value {
    serde_json::from_str(json.as_str()).unwrap_or(serde_json::Value::Null)
}

impl Plugin {
    /// Load the plugin library at `path` (or return it if already loaded).
    pub fn load(path: impl AsRef<Path>) -> Result<Plugin, Error> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(Error::PluginNotFound { path: path.to_owned() });
        }
        let canonical = path.canonicalize().map_err(|_| Error::PluginNotFound { path: path.to_owned() })?;
        let mut loaded = loaded_plugins().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(plugin) = loaded.get(&canonical) {
            return Ok(plugin.clone());
        }
        let plugin = Self::load_uncached(&canonical)?;
        loaded.insert(canonical, plugin.clone());
        Ok(plugin)
    }

    fn load_uncached(path: &Path) -> Result<Plugin, Error> {
        let plugin_api = probe_api_version(path)?;
        if !api_versions_compatible(API_VERSION, &plugin_api) {
            return Err(Error::IncompatiblePlugin {
                path: path.to_owned(),
                plugin_api,
                host_api: API_VERSION.to_string(),
            });
        }
        let module = lib_header_from_path(path)
            .and_then(|header| bento_plugin_api::abi::init_root_module(header, &plugin_api))
            .map_err(|error| match error {
                LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => {
                    Error::IncompatiblePlugin {
                        path: path.to_owned(),
                        plugin_api: actual_version.to_string(),
                        host_api: expected_version.to_string(),
                    }
                }
                other => Error::PluginLoad { path: path.to_owned(), message: other.to_string() },
            })?;
        let metadata = (module.metadata())();
        let info = PluginInfo {
            name: metadata.name.into(),
            version: metadata.version.into(),
            api_version: metadata.api_version.into(),
            local: metadata.layers.local,
            remote: metadata.layers.remote,
            provides_driver: metadata.provides_driver,
            provides_bus: metadata.provides_bus,
            driver_options_schema: schema(&metadata.driver_options_schema),
            bus_options_schema: schema(&metadata.bus_options_schema),
        };
        tracing::debug!(path = %path.display(), name = %info.name, version = %info.version, "loaded plugin");
        Ok(Plugin { loaded: Arc::new(LoadedPlugin { path: path.to_owned(), module, info }) })
    }

    /// Load every plugin of a folder (files named like `lib*.so`, `*.dll`,
    /// `lib*.dylib`). Fails on the first file that does not load and when
    /// two plugins share a name.
    pub fn load_folder(folder: impl AsRef<Path>) -> Result<PluginSet, Error> {
        let folder = folder.as_ref();
        let entries =
            std::fs::read_dir(folder).map_err(|source| Error::PluginFolder { path: folder.to_owned(), source })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.is_file() && is_plugin_file_name(path))
            .collect();
        paths.sort();
        let mut set = PluginSet::default();
        for path in paths {
            let plugin = Plugin::load(&path)?;
            set.insert(plugin)?;
        }
        Ok(set)
    }

    /// The plugin's metadata.
    pub fn info(&self) -> &PluginInfo {
        &self.loaded.info
    }

    /// The plugin's name (shortcut for `info().name`).
    pub fn name(&self) -> &str {
        &self.loaded.info.name
    }

    /// The file it was loaded from (canonical).
    pub fn path(&self) -> &Path {
        &self.loaded.path
    }

    /// Create a driver from `options_json` (the plugin's own options; `""`
    /// or `"{}"` for defaults) and the common parameters.
    pub async fn create_driver(&self, options_json: &str, options: DriverOptions) -> Result<Driver, Error> {
        if !self.loaded.info.provides_driver {
            return Err(Error::InvalidOptions(format!("plugin `{}` provides no cache driver", self.name())));
        }
        let config = FfiDriverConfig {
            default_ttl_ms: match options.default_ttl {
                Some(ttl) => ROption::RSome(crate::driver::ttl_to_ms(ttl)),
                None => ROption::RNone,
            },
            prefix: options.prefix.into(),
        };
        let future = (self.loaded.module.create_driver())(options_json.into(), config);
        let object = future.await.into_result().map_err(bento_plugin_api::DriverError::from)?;
        Ok(Driver::new(object, self.clone()))
    }

    /// Create a bus from `options_json`.
    pub async fn create_bus(&self, options_json: &str) -> Result<Bus, Error> {
        if !self.loaded.info.provides_bus {
            return Err(Error::InvalidOptions(format!("plugin `{}` provides no bus", self.name())));
        }
        let future = (self.loaded.module.create_bus())(options_json.into());
        let object = future.await.into_result().map_err(bento_plugin_api::DriverError::from)?;
        Ok(Bus::new(object, self.clone()))
    }
}

/// Plugins loaded from a folder, by name.
#[derive(Debug, Clone, Default)]
pub struct PluginSet {
    by_name: BTreeMap<String, Plugin>,
}

impl PluginSet {
    /// Add a plugin; refuses a second plugin with the same name.
    pub fn insert(&mut self, plugin: Plugin) -> Result<(), Error> {
        if let Some(existing) = self.by_name.get(plugin.name()) {
            if existing.path() != plugin.path() {
                return Err(Error::DuplicatePlugin {
                    name: plugin.name().to_string(),
                    first: existing.path().to_owned(),
                    second: plugin.path().to_owned(),
                });
            }
        }
        self.by_name.insert(plugin.name().to_string(), plugin);
        Ok(())
    }

    /// The plugin named `name`.
    pub fn get(&self, name: &str) -> Result<&Plugin, Error> {
        self.by_name.get(name).ok_or_else(|| Error::UnknownPlugin { name: name.to_string() })
    }

    /// All plugins, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Plugin> {
        self.by_name.values()
    }

    /// Number of plugins.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when no plugin was found.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
