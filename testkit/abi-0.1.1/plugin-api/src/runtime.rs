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
use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::sync::OnceLock;
use std::task::{Context, Poll};
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

thread_local! {
    /// True while this thread runs driver or bus code for the host.
    static IN_PLUGIN_CALL: Cell<bool> = const { Cell::new(false) };
}

/// Run `call`, which must not unwind (it catches panics itself), marked as
/// plugin code working for the host. A panic inside it becomes a
/// `Panicked` error that carries the message to the host, so the panic
/// hook prints one line instead of std's report (and backtrace). Panics
/// elsewhere in the library keep the hook that was there before.
pub(crate) fn as_plugin_call<R>(call: impl FnOnce() -> R) -> R {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_PLUGIN_CALL.with(Cell::get) {
                let payload = info.payload();
                let text = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("non-string panic payload");
                let location = info.location().map_or_else(String::new, |at| format!(" at {at}"));
                eprintln!("bento plugin: a call panicked{location}: {text} (returned to the host as an error)");
            } else {
                previous(info);
            }
        }));
    });
    let outer = IN_PLUGIN_CALL.with(|flag| flag.replace(true));
    let result = call();
    IN_PLUGIN_CALL.with(|flag| flag.set(outer));
    result
}

pin_project_lite::pin_project! {
    /// Polls `inner` inside the plugin runtime's context and turns a panic
    /// during any poll into a `Panicked` error. The future is held inline
    /// (the `FfiFuture` around this is the only allocation of a call).
    pub(crate) struct Guarded<F> {
        runtime: &'static Handle,
        #[pin]
        inner: Option<F>,
    }

    impl<F> PinnedDrop for Guarded<F> {
        fn drop(this: Pin<&mut Self>) {
            // Tokio resources deregister from their reactor on drop; do it
            // in the plugin runtime's context, and never let a panic escape.
            let this = this.project();
            let _context = this.runtime.enter();
            let mut inner = this.inner;
            let _ = catch_unwind(AssertUnwindSafe(move || inner.set(None)));
        }
    }
}

impl<F> Guarded<F> {
    pub(crate) fn new(runtime: &'static Handle, inner: F) -> Self {
        Guarded { runtime, inner: Some(inner) }
    }
}

impl<T, F: Future<Output = Result<T, DriverError>>> Future for Guarded<F> {
    type Output = Result<T, DriverError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _context = this.runtime.enter();
        let mut inner = this.inner;
        let Some(future) = inner.as_mut().as_pin_mut() else {
            return Poll::Ready(Err(DriverError::new(crate::ErrorKind::PANICKED, "future polled after it panicked")));
        };
        match as_plugin_call(|| catch_unwind(AssertUnwindSafe(|| future.poll(cx)))) {
            Ok(poll) => poll,
            Err(payload) => {
                // The future's state is unknown after a panic: drop it here
                // (still inside the runtime context) and never poll it again.
                let _ = catch_unwind(AssertUnwindSafe(|| inner.set(None)));
                Poll::Ready(Err(DriverError::from_panic(payload)))
            }
        }
    }
}
