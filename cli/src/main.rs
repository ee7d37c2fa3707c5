//! `bento`: the operator's command line over a folder of plugins and a
//! `bento.toml`.
//!
//! It goes through the full `bento` stack (the stores the config names,
//! their L1, L2 and bus), so it reads and writes BentoCache-format entries
//! and a `set` or `delete` is announced on the bus like any other write:
//! it works on a cache shared with Node services.
//!
//! Exit status: 0 success; 1 a backend failed (L2 or bus unreachable, an
//! entry that does not decode); 2 bad arguments, config or plugin; 3 `get`
//! found no value. Errors go to stderr, never as a panic.

mod commands;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Inspect plugins, read and write cache entries, and tail the bus.
#[derive(Debug, Parser)]
#[command(name = "bento", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Command,
}

/// Which config, plugins, store and namespace the cache commands use.
#[derive(Debug, Args)]
pub struct Target {
    /// The TOML config naming the stores (see `bento::BentoConfig`).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The folder of plugin libraries.
    #[arg(long, global = true, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// The store (default: the config's default store).
    #[arg(long, global = true, value_name = "NAME")]
    pub store: Option<String>,
    /// A namespace of the store (keys then live under `prefix:NS:`).
    #[arg(long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the plugins of a folder: name, what it provides, version,
    /// plugin-api version, file.
    Plugins {
        /// The plugin folder.
        dir: PathBuf,
    },
    /// Print a plugin's metadata and the JSON Schema of its options.
    Describe {
        /// A plugin file, or a plugin name found in `--plugins DIR`.
        plugin: String,
    },
    /// The store's bus.
    Bus {
        #[command(subcommand)]
        command: BusCommand,
    },
    #[command(flatten)]
    Cache(CacheCommand),
}

#[derive(Debug, Subcommand)]
enum BusCommand {
    /// Print every bus message of the store as it arrives, one JSON object
    /// per line (sender, kind, namespace, keys), until Ctrl-C.
    Tail,
}

/// Commands on the entries of one store (they need `--config` and
/// `--plugins`).
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Print the value of KEY as JSON (exit 3 when there is none).
    Get {
        /// The key.
        key: String,
        /// Print the whole entry as JSON: value, createdAt,
        /// logicalExpiration, tags, and the layer that answered.
        #[arg(long)]
        entry: bool,
    },
    /// Store JSON under KEY.
    Set {
        /// The key.
        key: String,
        /// The value as JSON: '"text"', 42, '{"name":"Ada"}'.
        json: String,
        /// Time to live, e.g. `10m` or `2.5h` (default: the store's ttl).
        #[arg(long, value_parser = bento::parse_duration, conflicts_with = "forever")]
        ttl: Option<Duration>,
        /// Never expire logically.
        #[arg(long)]
        forever: bool,
        /// A tag of the entry (repeatable).
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
    },
    /// Delete KEY; prints `true` when it existed, else `false`.
    Delete {
        /// The key.
        key: String,
    },
    /// Print `true` when KEY has a value, else `false`.
    Has {
        /// The key.
        key: String,
    },
    /// Remove every entry of the store (or of `--namespace`).
    Clear,
    /// Invalidate every entry tagged TAG: never served again.
    DeleteTag {
        /// The tag.
        tag: String,
    },
    /// Expire every entry tagged TAG: served as stale within grace.
    ExpireTag {
        /// The tag.
        tag: String,
    },
    /// Remove expired entries from the store's L2.
    Prune,
}

/// What went wrong, and which exit status it deserves.
#[derive(Debug)]
pub enum Failure {
    /// A backend failed: exit 1.
    Backend(String),
    /// Bad arguments, config or plugin: exit 2.
    Input(String),
    /// `get` found nothing: exit 3, no message.
    NotFound,
    /// Whoever read stdout went away: exit 0, no message (like ripgrep).
    StdoutClosed,
}

impl Failure {
    /// Writing to stdout failed: quietly done when the reader closed the
    /// pipe, otherwise an error.
    pub fn from_stdout_error(error: std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::BrokenPipe => Failure::StdoutClosed,
            _ => Failure::Backend(format!("cannot write to stdout: {error}")),
        }
    }
}

impl From<bento::Error> for Failure {
    fn from(error: bento::Error) -> Self {
        if is_input_error(&error) {
            Failure::Input(error.to_string())
        } else {
            Failure::Backend(error.to_string())
        }
    }
}

/// True for errors the user fixes by changing arguments, config or
/// plugins, as opposed to a backend being down.
fn is_input_error(error: &bento::Error) -> bool {
    use bento::Error::*;
    match error {
        PluginNotFound { .. }
        | NotAPlugin { .. }
        | DamagedPlugin { .. }
        | IncompatiblePlugin { .. }
        | PluginLoad { .. }
        | DuplicatePlugin { .. }
        | PluginFolder { .. }
        | UnknownPlugin { .. }
        | NotProvided { .. }
        | UnknownStore { .. }
        | Config(_)
        | InvalidOptions(_) => true,
        ConfigField { source, .. } => is_input_error(source),
        Driver(driver) => matches!(driver.kind, bento::ErrorKind::INVALID_OPTIONS | bento::ErrorKind::INVALID_KEY),
        L2 { source, .. } => source.kind == bento::ErrorKind::INVALID_KEY,
        _ => false,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) | Err(Failure::StdoutClosed) => ExitCode::SUCCESS,
        Err(Failure::NotFound) => ExitCode::from(3),
        Err(Failure::Backend(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Input(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let target = cli.target;
    match cli.command {
        Command::Plugins { dir } => commands::plugins(&dir),
        Command::Describe { plugin } => commands::describe(&plugin, target.plugins.as_deref()),
        Command::Bus { command: BusCommand::Tail } => commands::bus_tail(&target).await,
        Command::Cache(command) => {
            let session = commands::Session::open(&target).await?;
            let result = session.run(command).await;
            session.close().await;
            result
        }
    }
}
