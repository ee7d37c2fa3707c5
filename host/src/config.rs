//! Building a [`Bento`] from a TOML file naming stores over plugins loaded
//! from a folder (the operator's view, SPEC §1):
//!
//! ```toml
//! default = "main"            # optional; else the first store by name
//!
//! [options]                   # global options (durations like "10s", "2.5h")
//! ttl = "10m"
//! grace = "6h"
//!
//! [stores.main]
//! l1 = { max_items = 10000 }  # or `l1 = true`; absent = no L1; or a local
//!                             # plugin: `l1 = { plugin = "memory", options = {…} }`
//! l2 = { plugin = "redis", options = { url = "redis://127.0.0.1:6379" } }
//! bus = { plugin = "redis-bus", options = { url = "redis://127.0.0.1:6379" } }
//! options = { prefix = "app", ttl = "5m" }
//! ```

use crate::bento::Bento;
use crate::bus::BusNode;
use crate::driver::DriverOptions;
use crate::error::Error;
use crate::l1::L1Options;
use crate::options::CacheOptions;
use crate::plugin::{Plugin, PluginSet};
use crate::store::Store;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    default: Option<String>,
    #[serde(default)]
    options: CacheOptions,
    stores: BTreeMap<String, StoreConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreConfig {
    l1: Option<L1Config>,
    l2: Option<PluginRef>,
    bus: Option<PluginRef>,
    #[serde(default)]
    options: CacheOptions,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum L1Config {
    Enabled(bool),
    Plugin(PluginRef),
    Limits(L1Options),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginRef {
    plugin: String,
    #[serde(default)]
    options: Option<toml::Table>,
}

impl PluginRef {
    fn options_json(&self) -> Result<String, Error> {
        let table = self.options.clone().unwrap_or_default();
        serde_json::to_string(&table).map_err(|e| Error::Config(format!("options of plugin `{}`: {e}", self.plugin)))
    }
}

impl Bento {
    /// Load every plugin in `plugin_folder`, then build the stores that
    /// `config` (TOML, see the module docs) names.
    pub async fn from_config(config: &str, plugin_folder: impl AsRef<Path>) -> Result<Bento, Error> {
        let plugins = Plugin::load_folder(plugin_folder)?;
        Bento::from_config_with_plugins(config, &plugins).await
    }

    /// [`Bento::from_config`] with plugins already loaded.
    pub async fn from_config_with_plugins(config: &str, plugins: &PluginSet) -> Result<Bento, Error> {
        let config: Config = toml::from_str(config).map_err(|e| Error::Config(e.to_string()))?;
        if config.stores.is_empty() {
            return Err(Error::Config("no [stores.<name>] table".into()));
        }
        let mut builder = Bento::builder().options(config.options);
        if let Some(default) = config.default {
            builder = builder.default_store(default);
        }
        for (name, store_config) in config.stores {
            let mut store = Store::builder().options(store_config.options);
            match store_config.l1 {
                Some(L1Config::Enabled(true)) => store = store.l1(L1Options::default()),
                Some(L1Config::Limits(limits)) => store = store.l1(limits),
                Some(L1Config::Plugin(l1)) => {
                    let driver =
                        plugins.get(&l1.plugin)?.create_driver(&l1.options_json()?, DriverOptions::default()).await?;
                    store = store.l1_plugin(driver);
                }
                Some(L1Config::Enabled(false)) | None => {}
            }
            if let Some(l2) = &store_config.l2 {
                let driver =
                    plugins.get(&l2.plugin)?.create_driver(&l2.options_json()?, DriverOptions::default()).await?;
                store = store.l2(driver);
            }
            if let Some(bus) = &store_config.bus {
                let transport = plugins.get(&bus.plugin)?.create_bus(&bus.options_json()?).await?;
                store = store.bus(BusNode::new(transport, Default::default()));
            }
            builder = builder.store(name, store);
        }
        builder.build().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let config: Config = toml::from_str(
            r#"
            default = "main"
            [options]
            ttl = "10m"
            grace = "2.5h"
            [stores.main]
            l1 = { max_items = 100 }
            l2 = { plugin = "redis", options = { url = "redis://x" } }
            options = { prefix = "app", timeout = "50ms" }
            [stores.local]
            l1 = true
            [stores.plugged]
            l1 = { plugin = "memory", options = { max_items = 10 } }
            "#,
        )
        .unwrap();
        assert_eq!(config.stores.len(), 3);
        assert!(matches!(&config.stores["plugged"].l1, Some(L1Config::Plugin(l1)) if l1.plugin == "memory"));
        assert!(matches!(&config.stores["main"].l1, Some(L1Config::Limits(_))));
        assert_eq!(config.stores["main"].l2.as_ref().unwrap().options_json().unwrap(), r#"{"url":"redis://x"}"#);
        assert_eq!(config.stores["main"].options.prefix.as_deref(), Some("app"));
        assert!(toml::from_str::<Config>("[stores.x]\nl3 = true").is_err());
    }
}
