//! What a plugin says about itself. Plain data, read once when the plugin
//! loads; the [`crate::Driver`] and [`crate::Bus`] wrappers carry it so a
//! store can check which layers a driver may serve without knowing how
//! plugins are loaded.

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

impl PluginInfo {
    /// What the plugin provides, e.g. `"driver (local, remote)"`,
    /// `"bus"` or `"driver (remote) + bus"`.
    pub fn provides(&self) -> String {
        let mut parts = Vec::new();
        if self.provides_driver {
            let layers: Vec<&str> = [(self.local, "local"), (self.remote, "remote")]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, l)| *l)
                .collect();
            parts.push(format!("driver ({})", layers.join(", ")));
        }
        if self.provides_bus {
            parts.push("bus".to_string());
        }
        if parts.is_empty() {
            "nothing".to_string()
        } else {
            parts.join(" + ")
        }
    }
}
