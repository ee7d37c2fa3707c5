//! The plugin's own tokio runtime.
//!
//! Every cdylib carries its own copy of tokio's thread-locals, so a tokio
//! future created in a plugin cannot rely on the host's runtime. Futures of a
//! driver that needs tokio are therefore polled inside the context of a small
//! runtime owned by the plugin (the async-compat approach): the host's
//! executor polls them through the `FfiFuture` waker, while the plugin's
//! worker threads drive I/O and timers. This works whatever runs the host:
//! a current-thread or multi-thread runtime, several runtimes, or a plain
//! blocking call.

use crate::error::DriverError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use tokio::runtime::{Handle, Runtime};

/// Access to the plugin's lazily built tokio runtime. There is one per
/// plugin library (statics are per cdylib); it is never shut down because
/// plugins are never unloaded.
pub struct PluginRuntime;

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
/// Worker threads asked for by the host (0 = not asked).
static CONFIGURED_THREADS: AtomicUsize = AtomicUsize::new(0);
/// Worker threads the runtime was built with (0 = not built yet).
static STARTED_THREADS: AtomicUsize = AtomicUsize::new(0);

impl PluginRuntime {
    /// The runtime's handle, building the runtime on first use. Worker
    /// threads: what the host set with [`PluginRuntime::configure`] (the
    /// config's `plugin_threads`), else `BENTO_PLUGIN_THREADS`, else 2 (at
    /// most the CPU count).
    pub fn handle() -> Result<&'static Handle, DriverError> {
        Self::handle_with_threads(None)
    }

    /// Like [`PluginRuntime::handle`], but when this call builds the
    /// runtime, `preferred` worker threads (if given) replace the default of
    /// 2; the host's `plugin_threads` ([`PluginRuntime::configure`]), then
    /// `BENTO_PLUGIN_THREADS`, still win. The adapter passes
    /// [`crate::CacheDriver::RUNTIME_THREADS`].
    pub fn handle_with_threads(preferred: Option<usize>) -> Result<&'static Handle, DriverError> {
        let runtime = RUNTIME.get_or_init(|| {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            let default_threads = preferred.filter(|n| *n > 0).unwrap_or(2).min(cpus);
            let configured = CONFIGURED_THREADS.load(Ordering::SeqCst);
            let threads = Some(configured)
                .filter(|n| *n > 0)
                .or_else(|| std::env::var("BENTO_PLUGIN_THREADS").ok().and_then(|v| v.parse::<usize>().ok()))
                .filter(|n| *n > 0)
                .unwrap_or(default_threads);
            STARTED_THREADS.store(threads, Ordering::SeqCst);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("bento-plugin-rt")
                .enable_all()
                .build()
                .map_err(|error| error.to_string())
        });
        match runtime {
            Ok(runtime) => Ok(runtime.handle()),
            Err(message) => Err(DriverError::backend(format!("cannot start the plugin runtime: {message}"))),
        }
    }

    /// Ask for `worker_threads` (≥ 1) worker threads. Takes effect when the
    /// runtime has not started yet; returns false when it already runs
    /// with another count (the runtime is never rebuilt).
    pub fn configure(worker_threads: usize) -> bool {
        let worker_threads = worker_threads.max(1);
        CONFIGURED_THREADS.store(worker_threads, Ordering::SeqCst);
        match STARTED_THREADS.load(Ordering::SeqCst) {
            0 => true,
            started => started == worker_threads,
        }
    }
}
