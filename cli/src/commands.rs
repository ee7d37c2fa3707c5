//! What each command does. Cache commands open a [`Session`]: the one store
//! they name, built from the config through the normal `bento` API.

use crate::{CacheCommand, Failure, Target};
use bento::bus::{channel_name, decode, MessageKind};
use bento::entry::Entry;
use bento::{Bento, BentoConfig, Cache, CacheEvent, Layer, Plugin, PluginRef, PluginSet};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `println!` that ends the command instead of panicking when stdout is
/// gone (`bento plugins DIR | head -1`, a closed `bus tail` pipe).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(error) = writeln!(std::io::stdout().lock(), $($arg)*) {
            return Err(Failure::from_stdout_error(error));
        }
    }};
}

/// `bento plugins DIR`: one line per plugin file. Every file is tried, so
/// one bad file does not hide the others; any failure exits 2.
pub fn plugins(dir: &Path) -> Result<(), Failure> {
    let files = bento::plugin_files(dir)?;
    if files.is_empty() {
        eprintln!("no plugin files (lib*.so, lib*.dylib, *.dll) in {}", dir.display());
    }
    let mut set = PluginSet::default();
    let mut failures = 0;
    for file in files {
        match Plugin::load(&file).and_then(|plugin| set.insert(plugin.clone()).map(|()| plugin)) {
            Ok(plugin) => {
                let info = plugin.info();
                out!(
                    "{:<10} {:<26} {:<8} plugin-api {:<8} {}",
                    info.name,
                    info.provides(),
                    info.version,
                    info.api_version,
                    file.display()
                );
            }
            Err(error) => {
                eprintln!("error: {error}");
                failures += 1;
            }
        }
    }
    match failures {
        0 => Ok(()),
        n => Err(Failure::Input(format!("{n} file(s) in {} cannot be used as plugins", dir.display()))),
    }
}

/// `bento describe PLUGIN_FILE_OR_NAME [--plugins DIR]`.
pub fn describe(plugin: &str, folder: Option<&Path>) -> Result<(), Failure> {
    let plugins = if Path::new(plugin).is_file() {
        vec![Plugin::load(plugin)?]
    } else {
        let folder = folder.ok_or_else(|| {
            Failure::Input(format!("`{plugin}` is not a file; give a plugin file, or --plugins DIR to find it by name"))
        })?;
        let set = Plugin::load_folder(folder)?;
        let found: Vec<Plugin> = set.named(plugin).cloned().collect();
        if found.is_empty() {
            let names: Vec<&str> = set.iter().map(Plugin::name).collect();
            return Err(Failure::Input(format!(
                "no plugin named `{plugin}` in {} (found: {})",
                folder.display(),
                names.join(", ")
            )));
        }
        found
    };
    for (index, plugin) in plugins.iter().enumerate() {
        if index > 0 {
            out!("");
        }
        let info = plugin.info();
        out!("name:        {}", info.name);
        out!("provides:    {}", info.provides());
        out!("version:     {}", info.version);
        out!("plugin-api:  {}", info.api_version);
        out!("file:        {}", plugin.path().display());
        for (what, schema) in [("driver", &info.driver_options_schema), ("bus", &info.bus_options_schema)] {
            if !schema.is_null() {
                out!("{what} options (JSON Schema):");
                out!("{}", serde_json::to_string_pretty(schema).unwrap_or_else(|_| schema.to_string()));
            }
        }
    }
    Ok(())
}

/// The config, reduced to the one store a command works on, and the
/// plugins it needs.
struct Setup {
    config: BentoConfig,
    store: String,
    plugins: PluginSet,
}

impl Setup {
    fn load(target: &Target) -> Result<Setup, Failure> {
        let config_path: &PathBuf =
            target.config.as_ref().ok_or_else(|| Failure::Input("this command needs --config FILE".into()))?;
        let folder: &PathBuf =
            target.plugins.as_ref().ok_or_else(|| Failure::Input("this command needs --plugins DIR".into()))?;
        let mut config = BentoConfig::from_file(config_path)?;
        let store = match (&target.store, &config.default) {
            (Some(store), _) | (None, Some(store)) => store.clone(),
            (None, None) => config.stores.keys().next().cloned().unwrap_or_default(),
        };
        if !config.stores.contains_key(&store) {
            let names: Vec<&str> = config.stores.keys().map(String::as_str).collect();
            return Err(Failure::Input(format!(
                "no store named `{store}` in {} (stores: {})",
                config_path.display(),
                names.join(", ")
            )));
        }
        // Only the store asked for is built (a backend of another store
        // being down must not matter), and an operator wants to see L2
        // errors rather than have them suppressed behind the L1.
        config.stores.retain(|name, _| *name == store);
        config.default = None;
        for store in config.stores.values_mut() {
            store.options = std::mem::take(&mut store.options).suppress_l2_errors(false);
        }
        let plugins = Plugin::load_folder(folder)?;
        Ok(Setup { config, store, plugins })
    }

    fn l2(&self) -> Option<&PluginRef> {
        self.config.stores.get(&self.store).and_then(|store| store.l2.as_ref())
    }
}

/// One store opened for a cache command.
pub struct Session {
    setup: Setup,
    bento: Bento,
    cache: Cache,
}

impl Session {
    /// Build the store named by `--store` (or the config's default) and
    /// move to `--namespace`.
    pub async fn open(target: &Target) -> Result<Session, Failure> {
        let setup = Setup::load(target)?;
        let bento = setup.config.build(&setup.plugins).await?;
        let mut cache = bento.use_store(&setup.store)?.clone();
        if let Some(namespace) = &target.namespace {
            cache = cache.namespace(namespace)?;
        }
        Ok(Session { setup, bento, cache })
    }

    /// Run one cache command.
    pub async fn run(&self, command: CacheCommand) -> Result<(), Failure> {
        let cache = &self.cache;
        match command {
            CacheCommand::Get { key, entry: false } => {
                let value: Value = cache.get(&key).await?.ok_or(Failure::NotFound)?;
                out!("{value}");
            }
            CacheCommand::Get { key, entry: true } => self.get_entry(&key).await?,
            CacheCommand::Set { key, json, ttl, forever, tags } => {
                let value: Value = serde_json::from_str(&json)
                    .map_err(|error| Failure::Input(format!("the value is not valid JSON ({error}): {json}")))?;
                let mut set = cache.set(&key, value).tags(tags);
                if let Some(ttl) = ttl {
                    set = set.ttl(ttl);
                }
                if forever {
                    set = set.forever();
                }
                set.await?;
            }
            CacheCommand::Delete { key } => out!("{}", cache.delete(&key).await?),
            CacheCommand::Has { key } => out!("{}", cache.has(&key).await?),
            CacheCommand::Clear => cache.clear().await?,
            CacheCommand::DeleteTag { tag } => {
                cache.delete_by_tag(&[tag.as_str()]).await?;
            }
            CacheCommand::ExpireTag { tag } => {
                cache.expire_by_tag(&[tag.as_str()]).await?;
            }
            CacheCommand::Prune => cache.prune().await?,
        }
        Ok(())
    }

    /// `get --entry`: the value through the normal read path (which also
    /// says, by its hit event, which layer answered), and the entry's
    /// metadata as stored in L2.
    async fn get_entry(&self, key: &str) -> Result<(), Failure> {
        let mut events = self.bento.subscribe();
        let value: Value = self.cache.get(key).await?.ok_or(Failure::NotFound)?;
        let mut layer = None;
        while let Ok(event) = events.try_recv() {
            if let CacheEvent::Hit { layer: hit, .. } = event {
                layer = Some(match hit {
                    Layer::L1 => "l1",
                    Layer::L2 => "l2",
                });
                break;
            }
        }
        let mut output = json!({ "value": value, "layer": layer });
        if let Some(stored) = self.stored_entry(key).await? {
            output["createdAt"] = json!(stored.created_at);
            output["logicalExpiration"] = json!(stored.logical_expiration);
            output["tags"] = json!(stored.tags);
        }
        out!("{output}");
        Ok(())
    }

    /// The entry of `key` as the L2 holds it (BentoCache's JSON layout),
    /// read with a driver of its own; `None` without an L2.
    async fn stored_entry(&self, key: &str) -> Result<Option<Entry<Value>>, Failure> {
        let Some(l2) = self.setup.l2() else { return Ok(None) };
        let driver = l2.create_driver(&self.setup.plugins).await?;
        let handle = match self.cache.prefix() {
            "" => driver.clone(),
            prefix => driver.namespace(prefix).map_err(bento::Error::Driver)?,
        };
        let stored = handle.get(key).await.map_err(bento::Error::Driver)?;
        let _ = driver.disconnect().await;
        Ok(stored.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Disconnect, reporting (not failing on) errors.
    pub async fn close(self) {
        if let Err(error) = self.bento.disconnect_all().await {
            eprintln!("warning: disconnect: {error}");
        }
    }
}

/// `bento bus tail`: print every message on the store's bus channel as a
/// JSON line until Ctrl-C. It only listens (never publishes), so it sees
/// the messages of every instance, Node's BentoCache included.
pub async fn bus_tail(target: &Target) -> Result<(), Failure> {
    let setup = Setup::load(target)?;
    let bus = setup.config.stores.get(&setup.store).and_then(|store| store.bus.as_ref()).ok_or_else(|| {
        Failure::Input(format!("store `{}` has no bus in its config (add `bus = {{ plugin = … }}`)", setup.store))
    })?;
    let bus = bus.create_bus(&setup.plugins).await.map_err(|source| bento::Error::ConfigField {
        field: format!("stores.{}.bus", setup.store),
        source: Box::new(source),
    })?;
    let channel = channel_name(&setup.store);
    let (sender, mut payloads) = tokio::sync::mpsc::unbounded_channel();
    bus.subscribe(&channel, move |_, payload| {
        let _ = sender.send(payload);
    })
    .await
    .map_err(bento::Error::Driver)?;
    eprintln!("listening on {channel} (Ctrl-C to stop)");
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            payload = payloads.recv() => match payload {
                Some(payload) => out!("{}", describe_message(&payload)),
                None => break,
            },
            _ = &mut interrupted => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), bus.disconnect()).await;
    Ok(())
}

/// One bus payload as a JSON line.
fn describe_message(payload: &[u8]) -> Value {
    match decode(payload) {
        Ok((sender, message)) => json!({
            "sender": String::from_utf8_lossy(sender.as_bytes()),
            "kind": match message.kind {
                MessageKind::Set => "set",
                MessageKind::Clear => "clear",
                MessageKind::Delete => "delete",
                MessageKind::Expire => "expire",
            },
            "namespace": message.namespace,
            "keys": message.keys,
        }),
        Err(error) => json!({ "undecodable": error.to_string(), "bytes": payload.len() }),
    }
}
