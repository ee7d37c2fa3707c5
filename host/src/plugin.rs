//! Loading plugin libraries: one file, or every plugin in a folder.
//!
//! Each file is first checked on disk (a complete ELF/Mach-O/PE shared
//! library, see [`crate::plugin_file`]) so a truncated copy is refused
//! instead of crashing the dynamic loader; then it is probed with `libloading` for Bento's API-version
//! marker, so "not a plugin" and "built against another API version" are
//! distinct, clear errors; then `abi_stable` checks the root module's layout
//! against the ABI revision the plugin was built against
//! (`bento_plugin_api::abi::init_root_module`).
//! Once loaded, a plugin built against plugin-api 0.1.2 or later is lent
//! the host's tokio runtime ([`crate::host_runtime`]).
//! We use `lib_header_from_path(..).init_root_module()` rather than
//! `RootModule::load_from_file`, which caches one module per type per process
//! and would hand back the first plugin for every later file.

use crate::bus::{BusNode, BusNodeOptions};
use crate::driver::{Bus, Driver, DriverOptions};
use crate::error::Error;
use crate::plugin_file::{check_library_file, FileProblem};
pub use crate::plugin_info::PluginInfo;
use abi_stable::library::{lib_header_from_path, LibraryError};
use abi_stable::std_types::{ROption, RString};
use bento_plugin_api::abi::{api_versions_compatible, FfiDriverConfig, PluginModRef, API_VERSION_SYMBOL};
use bento_plugin_api::API_VERSION;
use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::c_char;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

struct LoadedPlugin {
    path: PathBuf,
    module: PluginModRef,
    info: Arc<PluginInfo>,
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

/// The files of `folder` that [`Plugin::load_folder`] loads: those named
/// like a library of this platform (`lib*.so`, `lib*.dylib`, `*.dll`),
/// sorted.
pub fn plugin_files(folder: impl AsRef<Path>) -> Result<Vec<PathBuf>, Error> {
    let folder = folder.as_ref();
    let entries =
        std::fs::read_dir(folder).map_err(|source| Error::PluginFolder { path: folder.to_owned(), source })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_file() && is_plugin_file_name(path))
        .collect();
    paths.sort();
    Ok(paths)
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
        check_library_file(path).map_err(|problem| match problem {
            FileProblem::NotALibrary(reason) => Error::NotAPlugin { path: path.to_owned(), reason },
            FileProblem::Damaged(reason) => Error::DamagedPlugin { path: path.to_owned(), reason },
        })?;
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
        // Lend the host's runtime: a plugin that uses it runs its I/O on
        // the runtime polling its futures (see `host_runtime`). Plugins
        // built before this entry point lack it and keep their own.
        if let Some(attach) = module.attach_host_runtime() {
            attach(crate::host_runtime::host_runtime());
        }
        tracing::debug!(path = %path.display(), name = %info.name, version = %info.version, "loaded plugin");
        Ok(Plugin { loaded: Arc::new(LoadedPlugin { path: path.to_owned(), module, info: Arc::new(info) }) })
    }

    /// Load every plugin of a folder: every file named like a library of
    /// this platform (`lib*.so`, `lib*.dylib`, `*.dll`); other files are
    /// ignored.
    ///
    /// A plugin folder holds plugins only: a library file that is not a
    /// Bento plugin (or is truncated, or built against an incompatible
    /// API) fails the whole load with an error naming it, rather than being
    /// skipped: skipping would turn an operator's mistake (a stray library,
    /// a half-copied plugin) into a confusing "no plugin named …" later.
    /// Keep other libraries out of the plugin folder.
    ///
    /// Two plugins may share a name when they provide different things
    /// (e.g. the `redis` driver and the `redis` bus); two drivers or two
    /// buses of one name are refused. See [`PluginSet`].
    pub fn load_folder(folder: impl AsRef<Path>) -> Result<PluginSet, Error> {
        let folder = folder.as_ref();
        let mut set = PluginSet::default();
        for path in plugin_files(folder)? {
            let plugin = Plugin::load(&path)?;
            set.insert(plugin)?;
        }
        Ok(set)
    }

    /// The plugin's metadata.
    pub fn info(&self) -> &PluginInfo {
        &self.loaded.info
    }

    /// Ask the plugin to run its tokio runtime (the one it drives its I/O
    /// on) with `worker_threads` threads. Takes effect only before the
    /// runtime starts (it starts with the plugin's first driver or bus);
    /// returns false, with a warning, when it already runs with another
    /// count or the plugin predates this setting.
    pub fn configure_runtime(&self, worker_threads: u32) -> bool {
        let applied = match self.loaded.module.configure_runtime() {
            Some(configure) => configure(worker_threads),
            None => false,
        };
        if !applied {
            tracing::warn!(plugin = %self.name(), worker_threads, "plugin runtime thread count not applied (runtime already running, or plugin too old)");
        }
        applied
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
            return Err(Error::NotProvided { plugin: self.name().to_string(), what: "cache driver" });
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
        Ok(Driver::new(object, self.loaded.info.clone()))
    }

    /// Create a bus from `options_json`.
    pub async fn create_bus(&self, options_json: &str) -> Result<Bus, Error> {
        if !self.loaded.info.provides_bus {
            return Err(Error::NotProvided { plugin: self.name().to_string(), what: "bus" });
        }
        let future = (self.loaded.module.create_bus())(options_json.into());
        let object = future.await.into_result().map_err(bento_plugin_api::DriverError::from)?;
        Ok(Bus::new(object, self.loaded.info.clone()))
    }

    /// Create a bus from `options_json` and wrap it in a [`BusNode`] with
    /// default options (what [`crate::StoreBuilder::bus_plugin`] does).
    pub async fn create_bus_node(&self, options_json: &str) -> Result<BusNode, Error> {
        Ok(BusNode::new(self.create_bus(options_json).await?, BusNodeOptions::default()))
    }
}

/// What a configuration asks a plugin for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// A cache driver (L1 or L2).
    Driver,
    /// A bus.
    Bus,
}

impl PluginKind {
    fn provided_by(self, info: &PluginInfo) -> bool {
        match self {
            PluginKind::Driver => info.provides_driver,
            PluginKind::Bus => info.provides_bus,
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Driver => "a cache driver",
            PluginKind::Bus => "a bus",
        })
    }
}

/// Plugins loaded from a folder, looked up by name **and kind**.
///
/// A name is unique per kind, not per folder: the bundled Redis driver
/// (`libbento_driver_redis.so`) and Redis bus (`libbento_bus_redis.so`) are
/// both called `redis`, so `l2 = { plugin = "redis" }` finds the driver and
/// `bus = { plugin = "redis" }` the bus. A single plugin may provide both.
/// Two plugins that would answer the same lookup are refused.
#[derive(Debug, Clone, Default)]
pub struct PluginSet {
    /// Sorted by name, then path.
    plugins: Vec<Plugin>,
}

impl PluginSet {
    /// Add a plugin; refuses a second plugin of the same name providing the
    /// same kind (two drivers, or two buses). Adding the same file twice is
    /// a no-op.
    pub fn insert(&mut self, plugin: Plugin) -> Result<(), Error> {
        for existing in self.plugins.iter().filter(|existing| existing.name() == plugin.name()) {
            if existing.path() == plugin.path() {
                return Ok(());
            }
            let clash = [PluginKind::Driver, PluginKind::Bus]
                .into_iter()
                .any(|kind| kind.provided_by(existing.info()) && kind.provided_by(plugin.info()));
            if clash {
                return Err(Error::DuplicatePlugin {
                    name: plugin.name().to_string(),
                    first: existing.path().to_owned(),
                    second: plugin.path().to_owned(),
                });
            }
        }
        self.plugins.push(plugin);
        self.plugins.sort_by(|a, b| (a.name(), a.path()).cmp(&(b.name(), b.path())));
        Ok(())
    }

    /// The plugin named `name` that provides a cache driver.
    pub fn driver(&self, name: &str) -> Result<&Plugin, Error> {
        self.find(name, PluginKind::Driver)
    }

    /// The plugin named `name` that provides a bus.
    pub fn bus(&self, name: &str) -> Result<&Plugin, Error> {
        self.find(name, PluginKind::Bus)
    }

    /// The plugin named `name` that provides `kind`.
    pub fn find(&self, name: &str, kind: PluginKind) -> Result<&Plugin, Error> {
        self.plugins.iter().find(|plugin| plugin.name() == name && kind.provided_by(plugin.info())).ok_or_else(|| {
            let available: Vec<&str> =
                self.plugins.iter().filter(|plugin| kind.provided_by(plugin.info())).map(Plugin::name).collect();
            Error::UnknownPlugin {
                name: name.to_string(),
                kind: kind.to_string(),
                available: if available.is_empty() { "none".to_string() } else { available.join(", ") },
            }
        })
    }

    /// Every plugin named `name` (a driver and a bus may share a name).
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Plugin> + 'a {
        self.plugins.iter().filter(move |plugin| plugin.name() == name)
    }

    /// All plugins, sorted by name (then file).
    pub fn iter(&self) -> impl Iterator<Item = &Plugin> {
        self.plugins.iter()
    }

    /// Number of plugins.
    pub fn len(&self) -> usize {
        self.plugins.len()
    }

    /// True when no plugin was found.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }
}
