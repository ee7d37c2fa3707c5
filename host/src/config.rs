//! [`BentoConfig`]: the operator's view (SPEC §1) — a TOML file naming
//! stores over plugins loaded from a folder.
//!
//! ```toml
//! default = "main"            # optional; else the first store by name
//! plugin_threads = 2          # optional; worker threads of each plugin's runtime
//!
//! [options]                   # global options (durations like "10s", "2.5h", "1h 30m")
//! ttl = "10m"
//! grace = "6h"
//!
//! [stores.main]
//! l1 = { max_items = 10000, max_size = "64mb" }   # or `l1 = true`; absent = no L1;
//!                             # or a local plugin: `l1 = { plugin = "memory", options = {…} }`
//! l2 = { plugin = "redis", options = { url = "redis://127.0.0.1:6379" } }
//! bus = { plugin = "redis", options = { url = "redis://127.0.0.1:6379" } }
//! options = { prefix = "app", ttl = "5m" }
//! ```
//!
//! Plugin names resolve per kind ([`PluginSet`]): `l1`/`l2` name a plugin
//! that provides a driver, `bus` one that provides a bus, so the bundled
//! `redis` driver and `redis` bus are both just `"redis"`. A plugin's
//! `options` table goes to the plugin as JSON, unchanged.
//!
//! [`BentoConfig`] is `Deserialize`, so an application can embed it in its
//! own configuration (`cache: BentoConfig`) and call [`BentoConfig::build`].
//! [`BentoConfig::from_toml`] reports errors with the path of the field:
//! `stores.main.l1.max_items: expected an integer, got string "many" (line 4)`.

use crate::bento::{Bento, BentoBuilder};
use crate::driver::{Bus, Driver, DriverOptions};
use crate::error::Error;
use crate::human::{optional_count, optional_size};
use crate::l1::L1Options;
use crate::options::CacheOptions;
use crate::plugin::{Plugin, PluginSet};
use crate::store::{Store, StoreBuilder};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// A whole configuration: global options and named stores.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BentoConfig {
    /// The store `Bento` itself uses. Default: the first store by name.
    #[serde(default)]
    pub default: Option<String>,
    /// Worker threads of the tokio runtime each plugin runs its I/O on
    /// (plugins that need one build it lazily, on first use). Default: the
    /// `BENTO_PLUGIN_THREADS` environment variable, else 2 (at most the
    /// CPU count). Applies to plugins whose runtime has not started yet.
    #[serde(default, deserialize_with = "plugin_threads")]
    pub plugin_threads: Option<u32>,
    /// Options of every store (each store's `options` override them).
    #[serde(default)]
    pub options: CacheOptions,
    /// The stores, by name. At least one.
    #[serde(default)]
    pub stores: BTreeMap<String, StoreConfig>,
}

/// One store: its tiers, bus and options.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The L1. Absent = no L1.
    #[serde(default)]
    pub l1: Option<L1Config>,
    /// The L2: a plugin providing a driver.
    #[serde(default)]
    pub l2: Option<PluginRef>,
    /// The bus: a plugin providing a bus.
    #[serde(default)]
    pub bus: Option<PluginRef>,
    /// Store options (override the global ones).
    #[serde(default)]
    pub options: CacheOptions,
}

/// A store's L1: `true`/`false`, a table of limits for the built-in L1
/// (`{ max_items = 10000, max_size = "64mb", max_entry_size = "1mb" }`),
/// or a local plugin (`{ plugin = "memory", options = { … } }`).
#[derive(Debug, Clone, PartialEq)]
pub enum L1Config {
    /// `l1 = false`.
    Disabled,
    /// `l1 = true` or a table of limits.
    BuiltIn(L1Options),
    /// `l1 = { plugin = "…" }`.
    Plugin(PluginRef),
}

/// A plugin and its options: `{ plugin = "redis", options = { url = "…" } }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginRef {
    /// The plugin's name (as `bento plugins DIR` lists it).
    pub plugin: String,
    /// The plugin's own options, handed to it as JSON. Default: `{}`.
    #[serde(default)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

fn plugin_threads<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    match optional_count::deserialize(deserializer)? {
        Some(0) => Err(de::Error::invalid_value(de::Unexpected::Unsigned(0), &"at least 1 thread")),
        Some(threads) => u32::try_from(threads)
            .map(Some)
            .map_err(|_| de::Error::invalid_value(de::Unexpected::Unsigned(threads), &"a thread count")),
        None => Ok(None),
    }
}

impl<'de> Deserialize<'de> for L1Config {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The table form, before deciding built-in vs plugin.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(default)]
            plugin: Option<String>,
            #[serde(default)]
            options: Option<serde_json::Map<String, serde_json::Value>>,
            #[serde(default, deserialize_with = "optional_count::deserialize")]
            max_items: Option<u64>,
            #[serde(default, deserialize_with = "optional_size::deserialize")]
            max_size: Option<u64>,
            #[serde(default, deserialize_with = "optional_size::deserialize")]
            max_entry_size: Option<u64>,
        }

        struct L1Visitor;

        impl<'de> Visitor<'de> for L1Visitor {
            type Value = L1Config;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false, a table of limits like { max_items = 10000 }, or { plugin = \"memory\" }")
            }

            fn visit_bool<E: de::Error>(self, enabled: bool) -> Result<L1Config, E> {
                Ok(if enabled { L1Config::BuiltIn(L1Options::default()) } else { L1Config::Disabled })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<L1Config, A::Error> {
                let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let limits = L1Options {
                    max_items: table.max_items,
                    max_size: table.max_size,
                    max_entry_size: table.max_entry_size,
                };
                match table.plugin {
                    Some(plugin) if limits == L1Options::default() => {
                        Ok(L1Config::Plugin(PluginRef { plugin, options: table.options.unwrap_or_default() }))
                    }
                    Some(_) => Err(de::Error::custom(
                        "limits of a plugin L1 go in its `options` table, e.g. { plugin = \"memory\", options = { max_items = 10 } }",
                    )),
                    None if table.options.is_some() => {
                        Err(de::Error::custom("`options` is for a plugin L1; name it with `plugin = \"…\"`"))
                    }
                    None => Ok(L1Config::BuiltIn(limits)),
                }
            }
        }

        deserializer.deserialize_any(L1Visitor)
    }
}

impl std::str::FromStr for BentoConfig {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        BentoConfig::from_toml(text)
    }
}

impl BentoConfig {
    /// Parse a TOML configuration (see the module docs). Errors name the
    /// field and line: `stores.main.options.ttl: expected a duration like
    /// "10s" or "2.5h", or false, got integer `5` (line 3)`.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        let deserializer =
            toml::Deserializer::parse(text).map_err(|error| Error::Config(describe(None, &error, text)))?;
        let config: BentoConfig = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let path = error.path().to_string();
            Error::Config(describe(Some(path), error.inner(), text))
        })?;
        if config.stores.is_empty() {
            return Err(Error::Config("no store: add a [stores.<name>] table".into()));
        }
        Ok(config)
    }

    /// Read and parse a TOML configuration file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|error| Error::Config(format!("cannot read {}: {error}", path.display())))?;
        BentoConfig::from_toml(&text).map_err(|error| match error {
            Error::Config(message) => Error::Config(format!("{}: {message}", path.display())),
            other => other,
        })
    }

    /// Build every store over `plugins` (connecting drivers and buses).
    /// Errors name the store and part, e.g. `stores.main.l2: …`.
    pub async fn build(&self, plugins: &PluginSet) -> Result<Bento, Error> {
        if let Some(threads) = self.plugin_threads {
            for plugin in plugins.iter() {
                plugin.configure_runtime(threads);
            }
        }
        let mut builder: BentoBuilder = Bento::builder().options(self.options.clone());
        if let Some(default) = &self.default {
            if !self.stores.contains_key(default) {
                return Err(Error::Config(format!("default: no store named `{default}`")));
            }
            builder = builder.default_store(default.clone());
        }
        for (name, store) in &self.stores {
            builder = builder.store(name.clone(), store.builder(name, plugins).await?);
        }
        builder.build().await
    }
}

impl StoreConfig {
    /// A [`StoreBuilder`] for store `name`, its driver and bus created from
    /// `plugins`. Errors name the part: `stores.<name>.l2: …`.
    pub async fn builder(&self, name: &str, plugins: &PluginSet) -> Result<StoreBuilder, Error> {
        let mut store = Store::builder().options(self.options.clone());
        match &self.l1 {
            Some(L1Config::BuiltIn(limits)) => store = store.l1(limits.clone()),
            Some(L1Config::Plugin(l1)) => {
                store = store.l1_plugin(in_field(name, "l1", l1.create_driver(plugins)).await?);
            }
            Some(L1Config::Disabled) | None => {}
        }
        if let Some(l2) = &self.l2 {
            store = store.l2(in_field(name, "l2", l2.create_driver(plugins)).await?);
        }
        if let Some(bus) = &self.bus {
            let plugin = in_field(name, "bus", async { plugins.bus(&bus.plugin).cloned() }).await?;
            store = in_field(name, "bus", store.bus_plugin(&plugin, &bus.options_json())).await?;
        }
        Ok(store)
    }
}

impl PluginRef {
    /// The plugin options as the JSON the plugin receives.
    pub fn options_json(&self) -> String {
        serde_json::Value::Object(self.options.clone()).to_string()
    }

    /// Create the driver of this plugin, on the whole keyspace (the store
    /// applies its prefix).
    pub async fn create_driver(&self, plugins: &PluginSet) -> Result<Driver, Error> {
        plugins.driver(&self.plugin)?.create_driver(&self.options_json(), DriverOptions::default()).await
    }

    /// Create the bus of this plugin.
    pub async fn create_bus(&self, plugins: &PluginSet) -> Result<Bus, Error> {
        plugins.bus(&self.plugin)?.create_bus(&self.options_json()).await
    }
}

/// Run `step` and say which part of which store failed.
async fn in_field<T>(
    store: &str,
    part: &str,
    step: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    step.await
        .map_err(|source| Error::ConfigField { field: format!("stores.{store}.{part}"), source: Box::new(source) })
}

/// `path: message (line N)`, with serde's "invalid type: string "many",
/// expected an integer" turned around to read "expected an integer, got
/// string "many"".
fn describe(path: Option<String>, error: &toml::de::Error, text: &str) -> String {
    let line = error.span().map(|span| text[..span.start.min(text.len())].lines().count().max(1));
    let raw = error.message().trim_end();
    let reworded = ["invalid type: ", "invalid value: "].iter().find_map(|head| {
        let (got, expected) = raw.strip_prefix(head)?.split_once(", expected ")?;
        Some(format!("expected {expected}, got {got}"))
    });
    let detail = reworded.as_deref().unwrap_or(raw);
    let mut message = match path.as_deref() {
        Some(path) if path != "." => format!("{path}: {detail}"),
        _ => detail.to_string(),
    };
    if let Some(line) = line {
        message.push_str(&format!(" (line {line})"));
    }
    message
}

impl Bento {
    /// Load every plugin in `plugin_folder`, then build the stores that
    /// `config` (TOML, see [`BentoConfig`]) names.
    pub async fn from_config(config: &str, plugin_folder: impl AsRef<Path>) -> Result<Bento, Error> {
        let config = BentoConfig::from_toml(config)?;
        let plugins = Plugin::load_folder(plugin_folder)?;
        config.build(&plugins).await
    }

    /// [`Bento::from_config`] with plugins already loaded.
    pub async fn from_config_with_plugins(config: &str, plugins: &PluginSet) -> Result<Bento, Error> {
        BentoConfig::from_toml(config)?.build(plugins).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let config = BentoConfig::from_toml(
            r#"
            default = "main"
            plugin_threads = 3
            [options]
            ttl = "10m"
            grace = "2.5h"
            [stores.main]
            l1 = { max_items = 100, max_size = "64mb", max_entry_size = 4096 }
            l2 = { plugin = "redis", options = { url = "redis://x" } }
            bus = { plugin = "redis" }
            options = { prefix = "app", timeout = "50ms" }
            [stores.local]
            l1 = true
            [stores.plugged]
            l1 = { plugin = "memory", options = { max_items = 10 } }
            "#,
        )
        .unwrap();
        assert_eq!(config.stores.len(), 3);
        assert_eq!(config.plugin_threads, Some(3));
        let main = &config.stores["main"];
        assert_eq!(
            main.l1,
            Some(L1Config::BuiltIn(L1Options {
                max_items: Some(100),
                max_size: Some(64 << 20),
                max_entry_size: Some(4096)
            }))
        );
        assert!(matches!(&config.stores["plugged"].l1, Some(L1Config::Plugin(l1)) if l1.plugin == "memory"));
        assert_eq!(main.l2.as_ref().unwrap().options_json(), r#"{"url":"redis://x"}"#);
        assert_eq!(main.bus.as_ref().unwrap().options_json(), "{}");
        assert_eq!(main.options.get_prefix(), Some("app"));
    }
}
