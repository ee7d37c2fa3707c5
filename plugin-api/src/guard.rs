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
use tokio::runtime::Handle;

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
            let _context = this.runtime.map(Handle::enter);
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
        let _context = this.runtime.map(Handle::enter);
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
