//! Small pieces that most drivers need and that are the same everywhere:
//! a wall clock in milliseconds, the "disconnected" guard shared by a root
//! handle and its namespaces, and a periodic background task (e.g. pruning
//! expired entries) that runs on the plugin runtime and stops on
//! disconnect or when the driver is dropped.
//!
//! It also checks numeric options that must be positive, with the same
//! message everywhere.
//!
//! Not for anything backend-specific: connection pools, timeouts of a
//! particular client and SQL stay in the drivers.

use crate::{DriverError, DriverResult, PluginRuntime};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};
use tokio::task::AbortHandle;

/// Refuse any of `options` (name, value) that is zero, with an
/// `InvalidOptions` error naming the first offending option:
/// ``invalid option `pool_size`: must be at least 1``.
///
/// ```
/// use bento_plugin_api::toolkit::require_at_least_one;
/// assert!(require_at_least_one(&[("pool_size", 4), ("timeout_ms", 500)]).is_ok());
/// let error = require_at_least_one(&[("pool_size", 4), ("timeout_ms", 0)]).unwrap_err();
/// assert!(error.message.contains("`timeout_ms`"));
/// ```
pub fn require_at_least_one(options: &[(&str, u64)]) -> DriverResult<()> {
    match options.iter().find(|(_, value)| *value == 0) {
        Some((name, _)) => Err(DriverError::invalid_options(format!("invalid option `{name}`: must be at least 1"))),
        None => Ok(()),
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is set before it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Whether a driver's shared state (one per root handle, shared by its
/// namespaces) has been disconnected, and the background task to stop when
/// it is. Dropping it stops the task too.
#[derive(Debug, Default)]
pub struct Lifecycle {
    disconnected: AtomicBool,
    task: Mutex<Option<AbortHandle>>,
}

impl Lifecycle {
    /// A connected lifecycle without a background task.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether [`Lifecycle::disconnect`] has been called.
    pub fn is_disconnected(&self) -> bool {
        self.disconnected.load(Ordering::Acquire)
    }

    /// `Err(DriverError::disconnected())` once disconnected, for operations
    /// to fail fast with.
    pub fn ensure_connected(&self) -> DriverResult<()> {
        if self.is_disconnected() {
            return Err(DriverError::disconnected());
        }
        Ok(())
    }

    /// Marks the state disconnected and stops the background task. Returns
    /// `true` the first time only, so the caller closes its backend once.
    pub fn disconnect(&self) -> bool {
        let first = !self.disconnected.swap(true, Ordering::AcqRel);
        self.stop_task();
        first
    }

    fn stop_task(&self) {
        let task = self.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        self.stop_task();
    }
}

/// Runs `work(shared)` every `interval` (first after one interval) on the
/// plugin runtime, as the background task of `shared`'s [`Lifecycle`]. The
/// task holds `shared` only weakly while it waits, so it ends when the
/// driver is dropped, and it ends on disconnect. A tick that comes while
/// `work` is still running is delayed, not bunched up; `work` reports its
/// own errors (a failed prune is simply retried at the next tick).
pub fn spawn_periodic<S, F, Fut>(shared: &Arc<S>, interval: Duration, work: F) -> DriverResult<()>
where
    S: AsRef<Lifecycle> + Send + Sync + 'static,
    F: Fn(Arc<S>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let weak: Weak<S> = Arc::downgrade(shared);
    let task = PluginRuntime::handle()?.spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(shared) = weak.upgrade() else { return };
            if (*shared).as_ref().is_disconnected() {
                return;
            }
            work(shared).await;
        }
    });
    let lifecycle = (**shared).as_ref();
    *lifecycle.task.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(task.abort_handle());
    Ok(())
}
