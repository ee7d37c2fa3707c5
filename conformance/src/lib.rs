//! # bento-conformance
//!
//! The Bento driver conformance suite (SPEC §4): every case of BentoCache's
//! `registerCacheDriverTestSuite` plus every edge case of the driver contract
//! (hostile prefixes and keys, empty and binary values, TTL precision,
//! atomic pull, concurrency, batch methods, prune, disconnect) and ABI-level
//! checks (metadata, option validation). It loads a plugin through the same
//! loader the host uses ([`bento::Plugin::load`]) and talks to it only
//! through the stable ABI, so it tests exactly what the host will run.
//!
//! Two ways to run it:
//!
//! * the `conformance` binary: `conformance ./target/release/libmy_driver.so
//!   --options '{"url":"redis://127.0.0.1:6379"}'` prints one line per case
//!   and `N passed, N failed`, exiting non-zero on any failure;
//! * from `cargo test` in a driver crate, as a `harness = false` test:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let plugin = bento_conformance::built_plugin("my-driver");
//!     bento_conformance::libtest_main(bento_conformance::Target::new(plugin).options(r#"{"path":"/tmp/x"}"#))
//! }
//! ```
//!
//! A statically linked driver ([`bento::Native`]) runs the same cases
//! through its library API, with no plugin file, via [`Target::native`].
//! The ABI cases (metadata, option validation), which need a plugin file,
//! are skipped with a note, and the bus suite runs against plugins only.
//! Any number of bundled driver crates may be linked into one test binary
//! (their plugin entry symbols live in the separate `-plugin` crates).
//!
//! ```ignore
//! // tests/native_conformance.rs of the memory driver (`harness = false`);
//! // this crate does not link a driver, so the example is not compiled here.
//! fn main() -> std::process::ExitCode {
//!     let options = bento_memory_store::MemoryStoreOptions::default();
//!     let target = bento_conformance::Target::native::<bento_driver_memory::MemoryDriver>(options);
//!     bento_conformance::libtest_main(target.allow_empty_prefix(true))
//! }
//! ```
//!
//! Before any case the options are checked and one driver is connected,
//! once: options the driver refuses, or a driver that cannot connect, stop
//! the run with one clear message instead of failing every case.
//!
//! Every case runs on its own driver instance under its own unique prefix
//! (`<base>:<case>-<random>`), on a thread of its own, clears that prefix
//! afterwards and has a timeout: a driver call that never completes, or
//! that blocks its thread, fails that case and the run goes on (the thread
//! is abandoned). After three cases in a row time out the remaining ones
//! are not run, so a run always ends with a verdict.
//!
//! A plugin that provides only a bus (or any plugin, with
//! [`Target::suite()`] / `--bus`) gets the bus suite instead
//! ([`all_bus_cases`]): round trip, binary payloads, ordering, fan-out,
//! unsubscribe, own messages, disconnect, and resubscription after the
//! connection was cut through a TCP proxy (when the options have a `url`).
//!
//! Cases that need a driver with the EMPTY prefix (which owns, and clears,
//! the driver's whole keyspace: a Redis database, a SQL table, a directory)
//! are skipped unless you opt in with [`Target::allow_empty_prefix`] /
//! `--allow-empty-prefix`. Opt in only when the options point at a private
//! keyspace (a temporary directory or file, a dedicated database or table).
//!
//! Not for: testing the cache manager (grace periods, tags, L1/L2 policy);
//! that lives in the `bento` crate's own tests.

pub mod bench;
mod bus;
mod cases;
mod runner;

pub use bus::{all_bus_cases, BusCase, BusContext, BusRequirement};
pub use cases::{all_cases, Case, CaseContext, Failure, Requirement};
pub use runner::{CaseReport, LoadError, Outcome, PreflightError, Runner, MAX_CONSECUTIVE_TIMEOUTS};

use bento::{Driver, DriverOptions, Native};
use futures::future::BoxFuture;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The per-case timeout used unless [`Target::case_timeout`] says otherwise.
pub const DEFAULT_CASE_TIMEOUT: Duration = Duration::from_secs(10);

/// The base prefix of case prefixes unless [`Target::prefix`] says otherwise.
pub const DEFAULT_BASE_PREFIX: &str = "conf";

/// The built plugin library of crate `crate_name` (e.g. `my-driver` →
/// `libmy_driver.so`), found next to the running test binary: in
/// `<target>/<profile>/` or its `deps/`, wherever `CARGO_TARGET_DIR` or
/// the profile put it (`BENTO_PLUGIN_DIR` overrides the directory). Panics
/// with the command to run when it has not been built.
pub fn built_plugin(crate_name: &str) -> PathBuf {
    bento_testkit::plugin_path(crate_name)
}

/// Creates the drivers of a [`Target::native`] run: a driver on the given
/// prefix (and default TTL), each call a new connection.
#[derive(Clone)]
pub struct DriverFactory(Arc<dyn Fn(DriverOptions) -> BoxFuture<'static, Result<Driver, bento::Error>> + Send + Sync>);

impl std::fmt::Debug for DriverFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DriverFactory")
    }
}

impl DriverFactory {
    /// A factory calling `create` for every driver.
    pub fn new<F>(create: F) -> Self
    where
        F: Fn(DriverOptions) -> BoxFuture<'static, Result<Driver, bento::Error>> + Send + Sync + 'static,
    {
        DriverFactory(Arc::new(create))
    }

    /// A new driver with `options`.
    pub async fn create(&self, options: DriverOptions) -> Result<Driver, bento::Error> {
        (self.0)(options).await
    }
}

/// Which suite to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// The driver suite ([`all_cases`]).
    Driver,
    /// The bus suite ([`all_bus_cases`]).
    Bus,
}

/// What to test: a plugin file (or a statically linked driver), the options
/// to create its drivers with, and how to run the cases.
#[derive(Debug, Clone)]
pub struct Target {
    /// Path of the plugin library (empty for a [`Target::native`] target).
    pub plugin: PathBuf,
    /// Set for a [`Target::native`] target: creates its drivers in place
    /// of the plugin (`plugin` and `options_json` are then not used).
    pub factory: Option<DriverFactory>,
    /// Driver options JSON (the plugin's own options). Default: `{}`.
    pub options_json: String,
    /// Base of every case's prefix: case prefixes are
    /// `<base>:<case>-<random>`. Default: [`DEFAULT_BASE_PREFIX`].
    pub base_prefix: String,
    /// Run the cases that create a driver with the empty prefix (which owns
    /// and clears the driver's whole keyspace). Default: false.
    pub allow_empty_prefix: bool,
    /// Timeout of one case, setup and cleanup included. Default:
    /// [`DEFAULT_CASE_TIMEOUT`].
    pub case_timeout: Duration,
    /// The suite to run. Default: `None`, the driver suite when the plugin
    /// provides a driver, else the bus suite.
    pub suite: Option<Suite>,
}

impl Target {
    /// Test the plugin at `plugin` with default options.
    pub fn new(plugin: impl Into<PathBuf>) -> Self {
        Target {
            plugin: plugin.into(),
            factory: None,
            options_json: "{}".to_string(),
            base_prefix: DEFAULT_BASE_PREFIX.to_string(),
            allow_empty_prefix: false,
            case_timeout: DEFAULT_CASE_TIMEOUT,
            suite: None,
        }
    }

    /// Test the statically linked driver `D` through its library API,
    /// connected with `options` for every driver (no plugin file: the ABI
    /// cases are skipped, and only the driver suite runs).
    pub fn native<D>(options: D::Options) -> Self
    where
        D: bento::CacheDriver,
        D::Options: Clone + Sync,
    {
        let factory = move |config: DriverOptions| -> BoxFuture<'static, Result<Driver, bento::Error>> {
            let options = options.clone();
            Box::pin(async move { Ok(Driver::native(Native::<D>::connect(options, config).await?)) })
        };
        Target::factory(DriverFactory::new(factory))
    }

    /// Test the drivers `factory` creates (a native driver set up in a way
    /// [`Target::native`] does not cover); the same rules as there apply.
    pub fn factory(factory: DriverFactory) -> Self {
        Target { factory: Some(factory), ..Target::new(PathBuf::new()) }
    }

    /// True for a [`Target::native`] (or [`Target::factory`]) target.
    pub fn is_native(&self) -> bool {
        self.factory.is_some()
    }

    /// Use these driver options (JSON; not used by a native target).
    pub fn options(mut self, options_json: impl Into<String>) -> Self {
        self.options_json = options_json.into();
        self
    }

    /// Use `prefix` as the base of every case's prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.base_prefix = prefix.into();
        self
    }

    /// Also run the empty-prefix cases (see the crate docs: only for a
    /// private keyspace).
    pub fn allow_empty_prefix(mut self, allow: bool) -> Self {
        self.allow_empty_prefix = allow;
        self
    }

    /// Fail a case that takes longer than `timeout`.
    pub fn case_timeout(mut self, timeout: Duration) -> Self {
        self.case_timeout = timeout;
        self
    }

    /// Run `suite` whatever the plugin provides.
    pub fn suite(mut self, suite: Suite) -> Self {
        self.suite = Some(suite);
        self
    }
}

/// Run the suite as a libtest-style test binary (`harness = false`): the
/// usual `cargo test` arguments work (`-- --list`, a name filter,
/// `--exact`, `--test-threads`, `--ignored`). Cases that do not apply
/// (empty-prefix cases that were not allowed, lock cases for a driver
/// without the lock, the ABI cases for a native target) are reported as
/// ignored, each with a `note:` line on stderr saying why. When the plugin does not load, or
/// the options are refused or no driver (or bus) connects, every case fails
/// at once with that one message.
pub fn libtest_main(target: Target) -> ExitCode {
    use libtest_mimic::{Arguments, Failed, Trial};
    use std::sync::Arc;

    let arguments = Arguments::from_args();
    let runner = Runner::new(target.clone()).map(Arc::new).map_err(|error| error.to_string());
    let suite = runner.as_ref().map_or(target.suite.unwrap_or(Suite::Driver), |runner| runner.suite());
    let runner = runner.and_then(|runner| {
        let checked = match suite {
            Suite::Driver => runner.preflight(),
            Suite::Bus => runner.bus_preflight(),
        };
        checked.map(|()| runner).map_err(|error| error.to_string())
    });
    if let Err(error) = &runner {
        eprintln!("conformance: {error}");
    }
    // libtest shows an ignored case without its reason: say it once here.
    let note = |name: &str, skip: &Option<String>| {
        let selected = match &arguments.filter {
            Some(filter) if arguments.exact => name == filter,
            Some(filter) => name.contains(filter.as_str()),
            None => true,
        };
        if let (Some(reason), false, true) = (skip, arguments.list, selected) {
            eprintln!("note: {name} is ignored: {reason}");
        }
    };
    let verdict = |outcome: Outcome| match outcome {
        Outcome::Passed | Outcome::Skipped(_) => Ok(()),
        Outcome::Failed(message) => Err(Failed::from(message)),
    };
    let trials = match suite {
        Suite::Driver => all_cases()
            .iter()
            .map(|case| {
                let runner = runner.clone();
                let skip = runner.as_ref().ok().and_then(|runner| runner.skip_reason(case));
                note(case.name, &skip);
                Trial::test(case.name, move || verdict(runner.map_err(Failed::from)?.run_case(case).outcome))
                    .with_ignored_flag(skip.is_some())
            })
            .collect(),
        Suite::Bus => all_bus_cases()
            .iter()
            .map(|case| {
                let runner = runner.clone();
                let skip = runner.as_ref().ok().and_then(|runner| runner.bus_skip_reason(case));
                note(case.name, &skip);
                Trial::test(case.name, move || verdict(runner.map_err(Failed::from)?.run_bus_case(case).outcome))
                    .with_ignored_flag(skip.is_some())
            })
            .collect(),
    };
    libtest_mimic::run(&arguments, trials).exit_code()
}
