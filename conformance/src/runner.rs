//! Running one case: its own driver and prefix, its own thread, a timeout,
//! cleanup; and the checks made once before any case (the plugin provides
//! what is tested, the options are accepted, a driver connects).
//!
//! Every case runs on a thread of its own with a small runtime of its own,
//! and the runner waits for its answer with a deadline. A driver call that
//! merely never completes is cancelled by the case's timeout; one that
//! blocks its thread (a deadlock, a blocking socket read) cannot be
//! cancelled, so that thread is abandoned and the case fails by timeout.
//! After [`MAX_CONSECUTIVE_TIMEOUTS`] cases in a row time out the driver is
//! considered wedged and the remaining cases are not run, so a run always
//! ends within a bounded time with a verdict.

use crate::bus::{BusCase, BusContext, BusRequirement};
use crate::cases::lock::{self, LockSupport};
use crate::cases::{Case, CaseContext, Failure, Requirement};
use crate::{DriverFactory, Suite, Target};
use bento::{DriverOptions, ErrorKind, Plugin};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// How long cleanup after a case may take before it is abandoned (at most
/// the case timeout).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);

/// After this many cases in a row time out, the remaining ones are not run.
pub const MAX_CONSECUTIVE_TIMEOUTS: usize = 3;

/// How long past its own deadline a case's thread may take to report
/// before it is considered blocked and abandoned.
const REPORT_GRACE: Duration = Duration::from_secs(1);

/// The plugin could not be loaded or the suite's runtime not started.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The host's loader refused the plugin (missing file, not a plugin,
    /// incompatible API version, ...).
    #[error(transparent)]
    Plugin(#[from] bento::Error),
    /// The tokio runtime that drives the cases could not start.
    #[error("cannot start the conformance runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Why the suite cannot run at all; found once, before any case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    /// The plugin does not provide what the suite tests (a driver for the
    /// driver suite, a bus for the bus suite).
    #[error("plugin `{plugin}` provides no {what}")]
    NotProvided {
        /// The plugin's name.
        plugin: String,
        /// `"cache driver"` or `"bus"`.
        what: &'static str,
    },
    /// The plugin refused the options; the message is the plugin's.
    #[error("the plugin refused the options: {0}")]
    InvalidOptions(String),
    /// Creating a driver (or bus) with the options failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Creating a driver (or bus) did not finish in time.
    #[error("connect did not finish within {0:?}: the driver never answered")]
    ConnectTimedOut(Duration),
}

impl PreflightError {
    /// True when the problem is the options or the plugin given (a usage
    /// error), not the behaviour of the driver.
    pub fn is_usage_error(&self) -> bool {
        matches!(self, PreflightError::NotProvided { .. } | PreflightError::InvalidOptions(_))
    }
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every check held.
    Passed,
    /// A check failed, the driver returned an unexpected error, or the case
    /// timed out; the message says which.
    Failed(String),
    /// Not run, with the reason (e.g. the empty prefix was not allowed).
    Skipped(String),
}

/// One case's name, outcome and duration.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// The case name.
    pub name: &'static str,
    /// What happened.
    pub outcome: Outcome,
    /// Wall time, setup and cleanup included.
    pub duration: Duration,
}

/// How work run on a thread of its own ended.
pub(crate) enum Isolated<T> {
    /// It finished with this value.
    Done(T),
    /// It panicked with this message.
    Panicked(String),
    /// It did not finish in time: cancelled when it was only pending,
    /// abandoned with its thread when it blocked the thread.
    TimedOut,
}

/// Run `work` on a new thread with its own two-worker tokio runtime, for at
/// most `limit`. The thread is abandoned (never joined) when the work
/// blocks it past the limit.
pub(crate) fn run_isolated<T, F>(name: &str, limit: Duration, work: F) -> Isolated<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new().name(name.to_string()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("conformance-case")
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = sender.send(Isolated::Panicked(format!("cannot start the case's runtime: {error}")));
                return;
            }
        };
        let result =
            catch_unwind(AssertUnwindSafe(|| runtime.block_on(async move { tokio::time::timeout(limit, work).await })));
        let _ = sender.send(match result {
            Ok(Ok(value)) => Isolated::Done(value),
            Ok(Err(_elapsed)) => Isolated::TimedOut,
            Err(payload) => Isolated::Panicked(panic_text(payload.as_ref())),
        });
        // Do not wait for worker threads a driver may have blocked.
        runtime.shutdown_background();
    });
    if let Err(error) = thread {
        return Isolated::Panicked(format!("cannot start a thread for the case: {error}"));
    }
    match receiver.recv_timeout(limit + REPORT_GRACE) {
        Ok(isolated) => isolated,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Isolated::TimedOut,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Isolated::Panicked("the case's thread ended without an answer".to_string())
        }
    }
}

/// The message of a panic payload.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string())
}

/// Counts cases in a row that timed out, to stop a run against a driver
/// that no longer answers.
#[derive(Debug, Default)]
pub(crate) struct Wedge {
    consecutive_timeouts: AtomicUsize,
}

impl Wedge {
    pub(crate) fn record(&self, timed_out: bool) {
        if timed_out {
            self.consecutive_timeouts.fetch_add(1, Ordering::AcqRel);
        } else {
            self.consecutive_timeouts.store(0, Ordering::Release);
        }
    }

    pub(crate) fn is_wedged(&self) -> bool {
        self.consecutive_timeouts.load(Ordering::Acquire) >= MAX_CONSECUTIVE_TIMEOUTS
    }

    pub(crate) fn verdict() -> String {
        format!(
            "not run: {MAX_CONSECUTIVE_TIMEOUTS} cases in a row timed out, so the driver is considered to no longer \
             answer (a call that blocks its thread or never completes)"
        )
    }
}

/// The message of a case that timed out.
pub(crate) fn timeout_message(limit: Duration) -> String {
    format!(
        "timed out after {limit:?}: the driver did not answer (a pending call was cancelled, a call blocking its \
         thread was abandoned with the thread)"
    )
}

/// What creates the drivers under test.
#[derive(Clone)]
pub(crate) enum Source {
    /// A loaded plugin, with the target's options JSON.
    Plugin(Plugin, String),
    /// A statically linked driver ([`Target::native`]).
    Native(DriverFactory),
}

impl Source {
    /// A new driver with the target's options and `options`.
    pub(crate) async fn create_driver(&self, options: DriverOptions) -> Result<bento::Driver, bento::Error> {
        match self {
            Source::Plugin(plugin, options_json) => plugin.create_driver(options_json, options).await,
            Source::Native(factory) => factory.create(options).await,
        }
    }

    /// The loaded plugin; `None` for a native driver.
    pub(crate) fn plugin(&self) -> Option<&Plugin> {
        match self {
            Source::Plugin(plugin, _) => Some(plugin),
            Source::Native(_) => None,
        }
    }
}

/// Why a case that checks the plugin ABI is skipped for a native target.
const NO_PLUGIN_FILE: &str = "checks the plugin ABI (metadata, option validation) through a plugin file; a \
                              statically linked (native) driver has none";

/// The name used for a native target in messages.
const NATIVE_NAME: &str = "native (statically linked) driver";

/// A loaded plugin (or a native driver factory) plus the runtime that
/// drives the cases against it.
pub struct Runner {
    target: Target,
    source: Source,
    runtime: tokio::runtime::Runtime,
    /// Cases on the empty prefix own the whole keyspace: they take this
    /// lock exclusively, every other case shares it, so cases may run in
    /// parallel (libtest) without one clearing another's keys.
    keyspace: RwLock<()>,
    /// What the plugin's drivers say and do about locks, probed on first use.
    lock_support: OnceLock<Result<LockSupport, String>>,
    wedge: Wedge,
}

impl Runner {
    /// Load the target's plugin with the host's loader (nothing to load
    /// for a [`Target::native`] target).
    pub fn new(target: Target) -> Result<Runner, LoadError> {
        let source = match &target.factory {
            Some(factory) => Source::Native(factory.clone()),
            None => Source::Plugin(Plugin::load(&target.plugin)?, target.options_json.clone()),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name("conformance")
            .enable_all()
            .build()?;
        Ok(Runner {
            target,
            source,
            runtime,
            keyspace: RwLock::new(()),
            lock_support: OnceLock::new(),
            wedge: Wedge::default(),
        })
    }

    /// The loaded plugin; `None` for a [`Target::native`] target.
    pub fn plugin(&self) -> Option<&Plugin> {
        self.source.plugin()
    }

    /// The target being tested.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Run `future` on the suite's runtime (used by the benchmark).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// A new driver with the target's options on `prefix`.
    pub async fn create_driver(&self, prefix: &str) -> Result<bento::Driver, bento::Error> {
        self.source.create_driver(DriverOptions::with_prefix(prefix)).await
    }

    /// Check, once and before any case, that the plugin provides a driver,
    /// that it accepts the options and that a driver connects within the
    /// case timeout. A driver that cannot connect would otherwise fail every
    /// case, each after its own timeout. (A native target provides a
    /// driver by construction; only the connect is checked.)
    pub fn preflight(&self) -> Result<(), PreflightError> {
        if let Some(plugin) = self.plugin() {
            if !plugin.info().provides_driver {
                return Err(PreflightError::NotProvided { plugin: plugin.name().to_string(), what: "cache driver" });
            }
        }
        let source = self.source.clone();
        let prefix = self.fresh_prefix("preflight");
        let limit = self.target.case_timeout;
        let connect = async move {
            let driver = source.create_driver(DriverOptions::with_prefix(prefix)).await?;
            let _ = tokio::time::timeout(CLEANUP_TIMEOUT, driver.disconnect()).await;
            Ok::<(), bento::Error>(())
        };
        check_connect(limit, connect)
    }

    /// A fresh prefix `<base>:<label>-<random>` for ad-hoc use (benchmarks).
    pub fn fresh_prefix(&self, label: &str) -> String {
        fresh_name(&self.target.base_prefix, ':', label)
    }

    /// Why `case` will not run with this target, if it will not.
    pub fn skip_reason(&self, case: &Case) -> Option<String> {
        if matches!(case.requirement, Requirement::Lock | Requirement::LockAcrossInstances) {
            let support = self.lock_support.get_or_init(|| {
                let prefix = self.fresh_prefix("lock-probe");
                let probe = lock::probe(&self.source, &prefix);
                self.runtime.block_on(async {
                    tokio::time::timeout(self.target.case_timeout, probe)
                        .await
                        .unwrap_or_else(|_| Err("the lock probe timed out".to_string()))
                })
            });
            return lock::skip_reason(case.requirement, support);
        }
        if case.requirement == Requirement::PluginAbi && self.plugin().is_none() {
            return Some(NO_PLUGIN_FILE.to_string());
        }
        (case.requirement == Requirement::EmptyPrefix && !self.target.allow_empty_prefix).then(|| {
            "needs a driver with the empty prefix, which owns and clears the whole keyspace; \
             pass --allow-empty-prefix (Target::allow_empty_prefix) for a private keyspace"
                .to_string()
        })
    }

    /// True once [`MAX_CONSECUTIVE_TIMEOUTS`] cases in a row timed out:
    /// the driver no longer answers and later cases are not run.
    pub fn is_wedged(&self) -> bool {
        self.wedge.is_wedged()
    }

    /// Run one case: set up its driver, run it on its own thread under the
    /// timeout, clean up.
    pub fn run_case(&self, case: &Case) -> CaseReport {
        let started = Instant::now();
        if let Some(reason) = self.skip_reason(case) {
            return CaseReport { name: case.name, outcome: Outcome::Skipped(reason), duration: started.elapsed() };
        }
        if self.is_wedged() {
            return CaseReport {
                name: case.name,
                outcome: Outcome::Failed(Wedge::verdict()),
                duration: Duration::ZERO,
            };
        }
        let _keyspace = match case.requirement {
            Requirement::EmptyPrefix => Lock::Exclusive(self.keyspace.write().unwrap_or_else(|p| p.into_inner())),
            _ => Lock::Shared(self.keyspace.read().unwrap_or_else(|p| p.into_inner())),
        };
        let prefix = match case.requirement {
            Requirement::EmptyPrefix => String::new(),
            _ => self.fresh_prefix(case.name),
        };
        let context = Arc::new(CaseContext::new(
            self.source.clone(),
            self.target.options_json.clone(),
            prefix,
            self.target.case_timeout,
        ));
        let run = case.run;
        let needs_driver = !matches!(case.requirement, Requirement::NoDriver | Requirement::PluginAbi);
        let task_context = context.clone();
        let limit = self.target.case_timeout;
        let isolated = run_isolated(case.name, limit, async move {
            if needs_driver {
                task_context.connect_root().await?;
            }
            run(task_context).await
        });
        let (result, timed_out) = match isolated {
            Isolated::Done(result) => (result, false),
            Isolated::Panicked(message) => (Err(Failure::new(format!("the case panicked: {message}"))), false),
            Isolated::TimedOut => (Err(Failure::new(timeout_message(limit))), true),
        };
        self.wedge.record(timed_out);
        if needs_driver {
            self.cleanup(&context);
        }
        let outcome = match result {
            Ok(()) => Outcome::Passed,
            Err(failure) => Outcome::Failed(failure.to_string()),
        };
        CaseReport { name: case.name, outcome, duration: started.elapsed() }
    }

    /// Which suite this target gets: the one asked for, else the driver
    /// suite when the plugin provides a driver (always for a native
    /// target), else the bus suite.
    pub fn suite(&self) -> Suite {
        match (self.target.suite, self.plugin()) {
            (Some(suite), _) => suite,
            (None, Some(plugin)) if !plugin.info().provides_driver && plugin.info().provides_bus => Suite::Bus,
            (None, _) => Suite::Driver,
        }
    }

    /// [`Runner::preflight`] for the bus suite: the plugin provides a bus,
    /// accepts the options, and a bus connects within the case timeout.
    /// The bus suite runs against plugins only: a native target has no bus.
    pub fn bus_preflight(&self) -> Result<(), PreflightError> {
        let Some(plugin) = self.plugin() else {
            return Err(PreflightError::NotProvided {
                plugin: NATIVE_NAME.to_string(),
                what: "bus (the bus suite runs against plugins only)",
            });
        };
        if !plugin.info().provides_bus {
            return Err(PreflightError::NotProvided { plugin: plugin.name().to_string(), what: "bus" });
        }
        let plugin = plugin.clone();
        let options = self.target.options_json.clone();
        let limit = self.target.case_timeout;
        let connect = async move {
            let bus = plugin.create_bus(&options).await?;
            let _ = tokio::time::timeout(CLEANUP_TIMEOUT, bus.disconnect()).await;
            Ok::<(), bento::Error>(())
        };
        check_connect(limit, connect)
    }

    /// Why bus `case` will not run with this target, if it will not.
    pub fn bus_skip_reason(&self, case: &BusCase) -> Option<String> {
        if case.requirement != BusRequirement::Url {
            return None;
        }
        let options: Option<serde_json::Value> = serde_json::from_str(&self.target.options_json).ok();
        let has_url = options.as_ref().and_then(|options| options.get("url")).is_some_and(|url| url.is_string());
        (!has_url).then(|| "needs a `url` option to route the bus through a TCP proxy".to_string())
    }

    /// Run one bus case on its own thread under the timeout (three
    /// timeouts for the reconnect case), then disconnect its buses.
    pub fn run_bus_case(&self, case: &BusCase) -> CaseReport {
        let started = Instant::now();
        if let Some(reason) = self.bus_skip_reason(case) {
            return CaseReport { name: case.name, outcome: Outcome::Skipped(reason), duration: started.elapsed() };
        }
        if self.is_wedged() {
            return CaseReport {
                name: case.name,
                outcome: Outcome::Failed(Wedge::verdict()),
                duration: Duration::ZERO,
            };
        }
        let Some(plugin) = self.plugin() else {
            return CaseReport {
                name: case.name,
                outcome: Outcome::Failed(format!(
                    "a {NATIVE_NAME} has no bus: the bus suite runs against plugins only"
                )),
                duration: started.elapsed(),
            };
        };
        let channel_base = fresh_name(&self.target.base_prefix, '.', case.name);
        let context = Arc::new(BusContext::new(plugin.clone(), self.target.options_json.clone(), channel_base));
        let limit = match case.requirement {
            BusRequirement::Any => self.target.case_timeout,
            BusRequirement::Url => self.target.case_timeout * 3,
        };
        let run = case.run;
        let isolated = run_isolated(case.name, limit, run(context.clone()));
        let (result, timed_out) = match isolated {
            Isolated::Done(result) => (result, false),
            Isolated::Panicked(message) => (Err(Failure::new(format!("the case panicked: {message}"))), false),
            Isolated::TimedOut => (Err(Failure::new(timeout_message(limit))), true),
        };
        self.wedge.record(timed_out);
        let buses = context.take_buses();
        let _ = run_isolated("conformance-cleanup", CLEANUP_TIMEOUT.min(self.target.case_timeout), async move {
            for bus in buses {
                let _ = bus.disconnect().await;
            }
        });
        let outcome = match result {
            Ok(()) => Outcome::Passed,
            Err(failure) => Outcome::Failed(failure.to_string()),
        };
        CaseReport { name: case.name, outcome, duration: started.elapsed() }
    }

    /// Clear the case's prefix, on a fresh driver when the case's own one
    /// was disconnected or never created. Best effort, bounded in time.
    fn cleanup(&self, context: &Arc<CaseContext>) {
        let context = context.clone();
        let limit = CLEANUP_TIMEOUT.min(self.target.case_timeout);
        let _ = run_isolated("conformance-cleanup", limit, async move {
            if let Some(driver) = context.root_if_connected() {
                match driver.clear().await {
                    Err(error) if error.kind == ErrorKind::DISCONNECTED => {}
                    _ => return,
                }
            }
            let options = DriverOptions::with_prefix(context.prefix());
            if let Ok(driver) = context.create_driver(options).await {
                let _ = driver.clear().await;
                let _ = driver.disconnect().await;
            }
        });
    }
}

/// `<base><separator><label>-<random>`, or `<label>-<random>` without a base.
pub(crate) fn fresh_name(base: &str, separator: char, label: &str) -> String {
    let base = base.trim_end_matches(separator);
    let random: String = std::iter::repeat_with(fastrand::alphanumeric).take(8).collect();
    if base.is_empty() {
        format!("{label}-{random}")
    } else {
        format!("{base}{separator}{label}-{random}")
    }
}

/// Run a preflight `connect` on its own thread within `limit`.
fn check_connect<F>(limit: Duration, connect: F) -> Result<(), PreflightError>
where
    F: Future<Output = Result<(), bento::Error>> + Send + 'static,
{
    match run_isolated("conformance-preflight", limit, connect) {
        Isolated::Done(Ok(())) => Ok(()),
        Isolated::Done(Err(error)) => Err(classify_connect_error(error)),
        Isolated::Panicked(message) => Err(PreflightError::Connect(format!("connect panicked: {message}"))),
        Isolated::TimedOut => Err(PreflightError::ConnectTimedOut(limit)),
    }
}

/// Sort a failed connect into "bad options" and "cannot connect".
fn classify_connect_error(error: bento::Error) -> PreflightError {
    match &error {
        bento::Error::Driver(driver) if driver.kind == ErrorKind::INVALID_OPTIONS => {
            PreflightError::InvalidOptions(driver.message.clone())
        }
        _ => PreflightError::Connect(error.to_string()),
    }
}

enum Lock<'a> {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'a, ()>),
    Exclusive(#[allow(dead_code)] std::sync::RwLockWriteGuard<'a, ()>),
}
