//! Calls across the shared-library boundary: every plugin future is polled
//! inside the plugin runtime's context ([`crate::PluginRuntime`]), and a
//! panic in plugin code becomes a `Panicked` error instead of unwinding
//! into the host.

use crate::error::DriverError;
use std::cell::Cell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};
use tokio::runtime::{EnterGuard, Handle};

thread_local! {
    /// True while this thread runs driver or bus code for the host.
    static IN_PLUGIN_CALL: Cell<bool> = const { Cell::new(false) };
    /// How this thread holds the plugin runtime's context while it polls.
    static CONTEXT_MODE: Cell<ContextMode> = const { Cell::new(ContextMode::Unknown) };
}

/// How a thread polling plugin futures gets the plugin runtime's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContextMode {
    /// Not decided yet (this thread has not polled a plugin future).
    Unknown,
    /// Entered once and kept: a host thread, which has no context of this
    /// library's tokio otherwise.
    Kept,
    /// Entered and left around every poll: a thread with a context of its
    /// own (the plugin runtime's threads), whose enter guards must nest.
    PerPoll,
}

/// Give this thread `runtime`'s context for the duration of the returned
/// guard (or for good; see below).
///
/// Entering costs a handle clone and two thread-local swaps, on every poll
/// of every plugin future. A host thread has no context of this library's
/// own tokio at all (the host's tokio is another copy, with its own
/// thread-locals), so there the context is entered once and kept: nothing
/// else on that thread ever enters this tokio's context in an order the
/// kept guard could break. That holds only inside a loaded plugin
/// library, which the host's lent runtime proves ([`crate::host_io`]); a
/// thread that already has a context (the plugin runtime's own workers and
/// blocking threads), or an adapter linked into the host itself, enters
/// around each poll instead.
pub(crate) fn enter_runtime(runtime: &'static Handle) -> Option<EnterGuard<'static>> {
    match CONTEXT_MODE.with(Cell::get) {
        ContextMode::Kept => None,
        ContextMode::PerPoll => Some(runtime.enter()),
        ContextMode::Unknown => {
            let alone = crate::host_io::in_loaded_plugin() && Handle::try_current().is_err();
            if alone {
                // Never dropped: the context stays for the thread's life.
                std::mem::forget(runtime.enter());
                CONTEXT_MODE.with(|mode| mode.set(ContextMode::Kept));
                None
            } else {
                CONTEXT_MODE.with(|mode| mode.set(ContextMode::PerPoll));
                Some(runtime.enter())
            }
        }
    }
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
    /// Polls `inner` inside the plugin runtime's context (when given one)
    /// and turns a panic during any poll into a `Panicked` error. The
    /// future is held inline: boxed into an `FfiFuture`, this is the only
    /// allocation of a call, and it is as large as the driver's future
    /// plus two words (no async block around it, which would hold the
    /// future twice and move it on the first poll).
    pub(crate) struct Guarded<F> {
        runtime: Option<&'static Handle>,
        #[pin]
        inner: Option<F>,
    }

    impl<F> PinnedDrop for Guarded<F> {
        fn drop(this: Pin<&mut Self>) {
            // Tokio resources deregister from their reactor on drop; do it
            // in the plugin runtime's context, and never let a panic escape.
            let this = this.project();
            if this.inner.is_none() {
                return;
            }
            let _context = this.runtime.and_then(enter_runtime);
            let mut inner = this.inner;
            let _ = catch_unwind(AssertUnwindSafe(move || inner.set(None)));
        }
    }
}

impl<F> Guarded<F> {
    /// `inner`, polled in `runtime`'s context when given (drivers that
    /// never touch tokio pass `None` and skip entering a context).
    pub(crate) fn new(runtime: Option<&'static Handle>, inner: F) -> Self {
        Guarded { runtime, inner: Some(inner) }
    }
}

impl<T, F: Future<Output = Result<T, DriverError>>> Future for Guarded<F> {
    type Output = Result<T, DriverError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut inner = this.inner;
        let _context = this.runtime.and_then(enter_runtime);
        as_plugin_call(|| {
            let polled = match inner.as_mut().as_pin_mut() {
                Some(future) => catch_unwind(AssertUnwindSafe(|| future.poll(cx))),
                None => {
                    let message = "future polled after it finished or panicked";
                    return Poll::Ready(Err(DriverError::new(crate::ErrorKind::PANICKED, message)));
                }
            };
            match polled {
                Ok(Poll::Pending) => Poll::Pending,
                Ok(Poll::Ready(output)) => {
                    // Drop the finished future now, inside the runtime
                    // context already entered, so that dropping `Guarded`
                    // later need not enter it again.
                    let _ = catch_unwind(AssertUnwindSafe(|| inner.set(None)));
                    Poll::Ready(output)
                }
                Err(payload) => {
                    // The future's state is unknown after a panic: drop it
                    // here (still inside the runtime context) and never
                    // poll it again.
                    let _ = catch_unwind(AssertUnwindSafe(|| inner.set(None)));
                    Poll::Ready(Err(DriverError::from_panic(payload)))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Sets its flag when dropped.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[test]
    fn a_finished_future_is_dropped_when_it_finishes_and_not_polled_again() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let mut guarded = std::pin::pin!(Guarded::new(None, async move {
            let _flag = flag;
            Ok::<u8, DriverError>(7)
        }));
        assert!(matches!(poll_once(guarded.as_mut()), Poll::Ready(Ok(7))));
        assert!(dropped.load(Ordering::SeqCst), "the finished future still holds its state");
        match poll_once(guarded.as_mut()) {
            Poll::Ready(Err(error)) => assert_eq!(error.kind, ErrorKind::PANICKED),
            other => panic!("expected an error for a poll after the end, got {:?}", other.map(|r| r.is_ok())),
        }
    }

    #[test]
    fn a_panic_becomes_an_error_and_drops_the_future() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let mut guarded = std::pin::pin!(Guarded::new(None, async move {
            let _flag = flag;
            if never() {
                return Ok::<(), DriverError>(());
            }
            panic!("driver bug");
        }));
        match poll_once(guarded.as_mut()) {
            Poll::Ready(Err(error)) => {
                assert_eq!(error.kind, ErrorKind::PANICKED);
                assert!(error.message.contains("driver bug"), "{error}");
            }
            other => panic!("expected a Panicked error, got {:?}", other.map(|r| r.is_ok())),
        }
        assert!(dropped.load(Ordering::SeqCst));
    }

    fn never() -> bool {
        std::hint::black_box(false)
    }

    #[test]
    fn outside_a_loaded_plugin_the_context_is_entered_per_poll() {
        // Unit tests link plugin-api into the test binary: no host lent a
        // runtime, so no thread keeps the context after a poll.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let handle: &'static Handle = Box::leak(Box::new(runtime.handle().clone()));
        std::thread::spawn(move || {
            let mut guarded = std::pin::pin!(Guarded::new(Some(handle), async {
                // A timer needs the runtime's context at creation.
                drop(tokio::time::sleep(std::time::Duration::from_secs(1)));
                Ok::<bool, DriverError>(Handle::try_current().is_ok())
            }));
            assert!(matches!(poll_once(guarded.as_mut()), Poll::Ready(Ok(true))));
            assert!(Handle::try_current().is_err(), "the context outlived the poll");
        })
        .join()
        .expect("the polling thread");
    }
}
