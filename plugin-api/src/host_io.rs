//! I/O on the host's runtime: what a host lends its plugins through
//! [`crate::abi::FfiHostRuntime`].
//!
//! A plugin's own tokio runtime (see [`crate::PluginRuntime`]) drives its
//! sockets on the plugin's worker threads, so every request issued by the
//! host hands work to another thread and every reply wakes the caller from
//! one: two cross-thread wake-ups per round trip. With the host's runtime
//! lent, a driver can instead register its socket with the *caller's*
//! reactor ([`HostStream`]) and run its connection task on the caller's
//! runtime ([`spawn_on_host`]), which is what a statically linked driver
//! gets for free.
//!
//! Both report "not available" when the host lent no runtime (an older
//! host), when no host runtime is current on the calling thread (a request
//! from a plain thread), or on a platform without file descriptors; a
//! driver then keeps its I/O on the plugin runtime. Everything here is
//! optional for a driver: the plugin runtime path stays the default.

use crate::abi::{FfiHostRuntimeBox, FfiHostSocketBox, IO_OTHER_ERROR, IO_WOULD_BLOCK};
use crate::error::DriverError;
use crate::guard::Guarded;
use crate::runtime::PluginRuntime;
use abi_stable::std_types::RResult;
use async_ffi::{ContextExt as _, FfiContext, FfiPoll, FutureExt as _};
use futures::FutureExt as _;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, RawWakerVTable, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The runtime the host lent (the first one it attached).
static HOST_RUNTIME: OnceLock<FfiHostRuntimeBox> = OnceLock::new();

/// Keep the host's runtime object (the `attach_host_runtime` entry point).
/// Later calls are ignored.
pub(crate) fn attach(runtime: FfiHostRuntimeBox) {
    let _ = HOST_RUNTIME.set(runtime);
}

/// True when a host attached its runtime: this library was loaded as a
/// plugin by a host (with its own copy of tokio), not linked into one.
pub(crate) fn in_loaded_plugin() -> bool {
    HOST_RUNTIME.get().is_some()
}

/// The host runtime, when one was lent and one is current on this thread.
fn current() -> Option<&'static FfiHostRuntimeBox> {
    let runtime = HOST_RUNTIME.get()?;
    runtime.available().then_some(runtime)
}

/// True when the host lent its runtime and one of its runtimes is current
/// on the calling thread, so [`spawn_on_host`] and [`HostStream`] work
/// here. Always false on platforms without file descriptors and in a
/// driver linked statically (there the driver already runs on the
/// caller's runtime).
pub fn host_io_available() -> bool {
    cfg!(unix) && current().is_some()
}

/// Run `future` to completion on the host runtime current on the calling
/// thread, polled inside the plugin runtime's context (as driver calls
/// are), a panic in it ending it quietly. Gives `future` back when no host
/// runtime is available here ([`host_io_available`]). When that host
/// runtime shuts down, `future` is dropped unfinished (on the thread
/// shutting it down).
pub fn spawn_on_host<F>(future: F) -> Result<(), F>
where
    F: Future<Output = ()> + Send + 'static,
{
    let Some(runtime) = current() else { return Err(future) };
    let plugin_runtime = match PluginRuntime::handle() {
        Ok(handle) => handle,
        Err(_) => return Err(future),
    };
    // A panic has been reported by the panic hook already: the task just
    // ends. No async block: the task's box holds `future` once.
    let task = Guarded::new(Some(plugin_runtime), future.map(Ok::<(), DriverError>)).map(drop);
    // `available()` just said a runtime is current; should it vanish in
    // between, the task is dropped, which the caller observes as a
    // connection whose task ended.
    let _ = runtime.spawn(task.into_ffi());
    Ok(())
}

/// The largest read handed to the host at once: the host reads into an
/// initialized buffer, and zeroing a codec's whole spare capacity on every
/// read would cost more than it saves.
const MAX_READ: usize = 16 * 1024;

/// The first read's size. Reads start small, because every read zeroes
/// its target first and most replies (a cache entry, an `OK`) are small,
/// and double while they come back full, up to [`MAX_READ`].
const FIRST_READ: usize = 1024;

/// A connected stream socket driven by the host's reactor: tokio's
/// `AsyncRead + AsyncWrite` whose readiness (and the reads and writes
/// themselves) go through the host ([`crate::abi::FfiHostSocket`]). The
/// socket stays registered with the runtime that was current when it was
/// created; dropping it deregisters it there and closes it.
pub struct HostStream {
    socket: FfiHostSocketBox,
    /// The size of the next read (see [`FIRST_READ`]).
    read_size: usize,
}

// Never pinned structurally: every method of the socket object takes
// `&self`.
impl Unpin for HostStream {}

impl std::fmt::Debug for HostStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostStream")
    }
}

impl HostStream {
    /// Hand a connected TCP stream to the host runtime current on this
    /// thread. Errors with `io::ErrorKind::Unsupported` when none is
    /// available ([`host_io_available`]; the stream is dropped).
    pub fn from_tcp(stream: std::net::TcpStream) -> io::Result<HostStream> {
        #[cfg(unix)]
        {
            // The host registers the socket with an edge-triggered reactor
            // and expects it non-blocking.
            stream.set_nonblocking(true)?;
            Self::from_owned_fd(stream.into())
        }
        #[cfg(not(unix))]
        {
            drop(stream);
            Err(not_available())
        }
    }

    /// Hand a connected Unix stream socket to the host runtime current on
    /// this thread; see [`HostStream::from_tcp`].
    #[cfg(unix)]
    pub fn from_unix(stream: std::os::unix::net::UnixStream) -> io::Result<HostStream> {
        stream.set_nonblocking(true)?;
        Self::from_owned_fd(stream.into())
    }

    #[cfg(unix)]
    fn from_owned_fd(fd: std::os::fd::OwnedFd) -> io::Result<HostStream> {
        use std::os::fd::IntoRawFd as _;
        let Some(runtime) = current() else { return Err(not_available()) };
        match runtime.register_socket(i64::from(fd.into_raw_fd())) {
            RResult::ROk(socket) => Ok(HostStream { socket, read_size: FIRST_READ }),
            RResult::RErr(error) => Err(io::Error::other(DriverError::from(error).message)),
        }
    }
}

fn not_available() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "no host runtime is available on this thread")
}

/// async-ffi's `FfiContext` (ABI version 2): a pointer to an FFI waker.
#[repr(C)]
struct RawFfiContext {
    waker: *const (),
}

const _: () = assert!(size_of::<RawFfiContext>() == size_of::<FfiContext<'static>>());

/// The vtable of async-ffi's wakers in this library that stand for an FFI
/// waker (how a plugin future sees the waker of the host polling it): its
/// data pointer is that FFI waker.
fn bridge_vtable() -> &'static RawWakerVTable {
    static VTABLE: OnceLock<&'static RawWakerVTable> = OnceLock::new();
    VTABLE.get_or_init(|| {
        let mut cx = Context::from_waker(Waker::noop());
        cx.with_ffi_context(|ffi| ffi.with_context(|cx| cx.waker().vtable()))
    })
}

/// Call the host with the FFI form of `cx`'s waker. When that waker is the
/// host's own, seen through async-ffi's bridge (a driver call or a task the
/// host polls), the host gets its FFI waker back as it gave it, rather
/// than wrapped once more: a readiness registration then stores the
/// host's waker, not a plugin waker around it (and a host that lent the
/// waker of a task can use the task's waker itself).
fn with_host_context<R>(cx: &mut Context<'_>, call: impl FnOnce(&mut FfiContext<'_>) -> R) -> R {
    let waker = cx.waker();
    if std::ptr::eq(waker.vtable(), bridge_vtable()) {
        let mut raw = RawFfiContext { waker: waker.data() };
        // SAFETY: `RawFfiContext` is `FfiContext`'s layout (checked
        // above), and a waker with async-ffi's bridge vtable has an FFI
        // waker as its data pointer, valid while `waker` is borrowed,
        // which outlives this call.
        let ffi = unsafe { &mut *std::ptr::from_mut(&mut raw).cast::<FfiContext<'_>>() };
        call(ffi)
    } else {
        cx.with_ffi_context(call)
    }
}

fn io_result(poll: FfiPoll<RResult<usize, i32>>) -> Poll<io::Result<usize>> {
    match poll {
        FfiPoll::Ready(RResult::ROk(count)) => Poll::Ready(Ok(count)),
        FfiPoll::Ready(RResult::RErr(IO_WOULD_BLOCK)) => Poll::Ready(Err(io::ErrorKind::WouldBlock.into())),
        FfiPoll::Ready(RResult::RErr(IO_OTHER_ERROR)) => Poll::Ready(Err(io::Error::other("host socket error"))),
        FfiPoll::Ready(RResult::RErr(code)) => Poll::Ready(Err(io::Error::from_raw_os_error(code))),
        FfiPoll::Pending => Poll::Pending,
        FfiPoll::Panicked => Poll::Ready(Err(io::Error::other("the host panicked during socket I/O"))),
    }
}

impl AsyncRead for HostStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            // Readiness first: a codec polls its stream after every frame,
            // and most of those polls find nothing to read; the buffer is
            // prepared only when there is.
            match io_result(with_host_context(cx, |cx| self.socket.poll_read_ready(cx))) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
            let want = buf.remaining().min(self.read_size);
            let target = buf.initialize_unfilled_to(want);
            match io_result(FfiPoll::Ready(self.socket.try_read(target.into()))) {
                Poll::Ready(Ok(count)) => {
                    buf.advance(count);
                    let this = self.get_mut();
                    this.read_size = next_read_size(this.read_size, want, count);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale and is now cleared: poll it again,
                // which registers the waker.
                Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The size of the read after one of `read_size` that asked for `want`
/// bytes and got `count`: double after a full read (more is likely
/// waiting), halve after one that used less than an eighth of it.
fn next_read_size(read_size: usize, want: usize, count: usize) -> usize {
    if count == want {
        if want == read_size {
            (read_size * 2).min(MAX_READ)
        } else {
            read_size
        }
    } else if count < want / 8 {
        (read_size / 2).max(FIRST_READ)
    } else {
        read_size
    }
}

impl AsyncWrite for HostStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        io_result(with_host_context(cx, |cx| self.socket.poll_write(cx, buf.into())))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match io_result(FfiPoll::Ready(self.socket.shutdown_write())) {
            Poll::Ready(result) => Poll::Ready(result.map(drop)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grow_while_full_and_shrink_when_mostly_empty() {
        let mut size = FIRST_READ;
        // A large reply: every read comes back full.
        for _ in 0..10 {
            size = next_read_size(size, size, size);
        }
        assert_eq!(size, MAX_READ);
        // A buffer with less room than the read size: no growth signal.
        assert_eq!(next_read_size(4096, 100, 100), 4096);
        // Small replies bring it back down, never below the first size.
        for _ in 0..10 {
            size = next_read_size(size, size, 40);
        }
        assert_eq!(size, FIRST_READ);
        assert_eq!(next_read_size(8192, 8192, 5000), 8192);
    }
}
