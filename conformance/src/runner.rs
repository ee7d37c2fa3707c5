//! Running one case: its own driver and prefix, a timeout, cleanup.

use crate::cases::{Case, CaseContext, Failure, Requirement};
use crate::{DriverFactory, Target};
use bento::{DriverOptions, ErrorKind, Plugin};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long cleanup after a case may take before it is abandoned.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);

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

/// What creates the drivers under test.
#[derive(Clone)]
pub(crate) enum Source {
    /// A loaded plugin, with the target's options JSON.
    Plugin(Plugin, String),
    /// A statically linked driver ([`Target::native`]).
    Native(DriverFactory),
}

impl Source {
    /// A new driver with `options`.
    pub(crate) async fn create_driver(&self, options: DriverOptions) -> Result<bento::Driver, bento::Error> {
        match self {
            Source::Plugin(plugin, options_json) => plugin.create_driver(options_json, options).await,
            Source::Native(factory) => factory.create(options).await,
        }
    }
}

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
        Ok(Runner { target, source, runtime, keyspace: RwLock::new(()) })
    }

    /// The loaded plugin; `None` for a [`Target::native`] target.
    pub fn plugin(&self) -> Option<&Plugin> {
        match &self.source {
            Source::Plugin(plugin, _) => Some(plugin),
            Source::Native(_) => None,
        }
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

    /// A fresh prefix `<base>:<label>-<random>` for ad-hoc use (benchmarks).
    pub fn fresh_prefix(&self, label: &str) -> String {
        let base = self.target.base_prefix.trim_end_matches(':');
        let random: String = std::iter::repeat_with(fastrand::alphanumeric).take(8).collect();
        if base.is_empty() {
            format!("{label}-{random}")
        } else {
            format!("{base}:{label}-{random}")
        }
    }

    /// Why `case` will not run with this target, if it will not.
    pub fn skip_reason(&self, case: &Case) -> Option<String> {
        if case.requirement == Requirement::NoDriver && self.plugin().is_none() {
            return Some("checks the plugin ABI; a native driver has no plugin file".to_string());
        }
        (case.requirement == Requirement::EmptyPrefix && !self.target.allow_empty_prefix).then(|| {
            "needs a driver with the empty prefix, which owns and clears the whole keyspace; \
             pass --allow-empty-prefix (Target::allow_empty_prefix) for a private keyspace"
                .to_string()
        })
    }

    /// A prefix no other case (or run) uses.
    fn unique_prefix(&self, case: &Case) -> String {
        self.fresh_prefix(case.name)
    }

    /// Run one case: set up its driver, run it under the timeout, clean up.
    pub fn run_case(&self, case: &Case) -> CaseReport {
        let started = Instant::now();
        if let Some(reason) = self.skip_reason(case) {
            return CaseReport { name: case.name, outcome: Outcome::Skipped(reason), duration: started.elapsed() };
        }
        let _keyspace = match case.requirement {
            Requirement::EmptyPrefix => Lock::Exclusive(self.keyspace.write().unwrap_or_else(|p| p.into_inner())),
            _ => Lock::Shared(self.keyspace.read().unwrap_or_else(|p| p.into_inner())),
        };
        let prefix = match case.requirement {
            Requirement::EmptyPrefix => String::new(),
            _ => self.unique_prefix(case),
        };
        let context = Arc::new(CaseContext::new(
            self.source.clone(),
            self.target.options_json.clone(),
            prefix.clone(),
            self.target.case_timeout,
        ));
        let run = case.run;
        let needs_driver = case.requirement != Requirement::NoDriver;
        let task_context = context.clone();
        let handle = self.runtime.spawn(async move {
            if needs_driver {
                task_context.connect_root().await?;
            }
            run(task_context).await
        });
        let result = self.runtime.block_on(async {
            match tokio::time::timeout(self.target.case_timeout, handle).await {
                Ok(Ok(result)) => result,
                Ok(Err(join_error)) => Err(Failure::new(panic_message(join_error))),
                Err(_) => Err(Failure::new(format!(
                    "timed out after {:?}: the driver did not answer (the pending call was abandoned)",
                    self.target.case_timeout
                ))),
            }
        });
        if needs_driver {
            self.cleanup(&context);
        }
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
        let cleanup = self.runtime.spawn(async move {
            if let Some(driver) = context.root_if_connected() {
                match driver.clear().await {
                    Err(error) if error.kind == ErrorKind::DISCONNECTED => {}
                    _ => return,
                }
            }
            let options = DriverOptions::with_prefix(context.prefix());
            if let Ok(driver) = context.source().create_driver(options).await {
                let _ = driver.clear().await;
                let _ = driver.disconnect().await;
            }
        });
        let _ = self.runtime.block_on(async { tokio::time::timeout(CLEANUP_TIMEOUT, cleanup).await });
    }
}

enum Lock<'a> {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'a, ()>),
    Exclusive(#[allow(dead_code)] std::sync::RwLockWriteGuard<'a, ()>),
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            format!("the case panicked: {text}")
        }
        Err(error) => format!("the case was cancelled: {error}"),
    }
}
