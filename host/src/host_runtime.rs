//! The host's tokio runtime, lent to every loaded plugin
//! ([`FfiHostRuntime`], attached by [`crate::Plugin::load`]).
//!
//! A plugin library has its own copy of tokio and therefore its own
//! runtime; without help, a plugin's socket lives on that runtime's
//! threads and every request crosses threads twice. Through this object a
//! plugin's driver can register its socket with the reactor of the
//! runtime polling it (the caller's) and spawn its connection task there.
//! Everything acts on the runtime current on the calling thread: a plugin
//! calls in while the host polls one of its futures.
//!
//! Only multi-thread runtimes are lent. A task spawned on a current-thread
//! runtime runs only while someone blocks on that runtime; a connection
//! task parked there would stall every request made from elsewhere
//! (another runtime, a plain thread) until then. On a current-thread
//! runtime a plugin sees "not available" and keeps its own runtime.

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RResult;
use bento_plugin_api::abi::{
    FfiFuture, FfiHostRuntime, FfiHostRuntimeBox, FfiHostRuntime_TO, FfiHostSocketBox, FfiResult,
};
use bento_plugin_api::DriverError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tokio::runtime::{Handle, RuntimeFlavor};

/// The object handed to plugins.
pub(crate) fn host_runtime() -> FfiHostRuntimeBox {
    FfiHostRuntime_TO::from_value(HostRuntime, TD_Opaque)
}

/// Lends whichever host runtime is current on the calling thread.
struct HostRuntime;

/// The runtime current on this thread, if it is one we lend.
fn lendable() -> Option<Handle> {
    let handle = Handle::try_current().ok()?;
    (cfg!(unix) && handle.runtime_flavor() == RuntimeFlavor::MultiThread).then_some(handle)
}

impl FfiHostRuntime for HostRuntime {
    fn available(&self) -> bool {
        lendable().is_some()
    }

    fn spawn(&self, future: FfiFuture<()>) -> bool {
        match lendable() {
            Some(handle) => {
                drop(handle.spawn(future));
                true
            }
            None => false,
        }
    }

    fn register_socket(&self, fd: i64) -> FfiResult<FfiHostSocketBox> {
        let registered = catch_unwind(AssertUnwindSafe(|| register(fd)))
            .unwrap_or_else(|_| Err(DriverError::backend("registering the socket with the host reactor panicked")));
        match registered {
            Ok(socket) => RResult::ROk(socket),
            Err(error) => RResult::RErr(error.into()),
        }
    }
}

#[cfg(unix)]
fn register(fd: i64) -> Result<FfiHostSocketBox, DriverError> {
    use bento_plugin_api::abi::FfiHostSocket_TO;
    use std::os::fd::{FromRawFd as _, RawFd};
    let fd = RawFd::try_from(fd).map_err(|_| DriverError::backend(format!("{fd} is not a file descriptor")))?;
    // SAFETY: the plugin passes the ownership of `fd`, a connected stream
    // socket, to the host (the contract of `register_socket`); nothing else
    // closes it. `std::net::TcpStream`'s `recv`/`send` (with
    // MSG_NOSIGNAL) and `shutdown` are valid on any stream socket, Unix
    // ones included.
    let socket = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    // Without a runtime `AsyncFd::register` would panic; check first (the
    // socket is closed on every error path by its drop). A runtime without
    // I/O panics there too, caught by the caller.
    if lendable().is_none() {
        return Err(DriverError::backend("no host runtime is lent on this thread"));
    }
    // SAFETY: `socket` owns its fd and is moved into the `AsyncFd`, which
    // owns it until dropped; a `TcpStream` always reports the same fd.
    let registered = unsafe { tokio::io::unix::AsyncFd::register(socket) }.map_err(|error| {
        DriverError::backend(format!("cannot register the socket with the host reactor: {}", error.into_parts().1))
    })?;
    Ok(FfiHostSocket_TO::from_value(unix::HostSocket { fd: registered }, TD_Opaque))
}

#[cfg(not(unix))]
fn register(_fd: i64) -> Result<FfiHostSocketBox, DriverError> {
    Err(DriverError::unsupported("host socket I/O needs file descriptors (unix)"))
}

#[cfg(unix)]
mod unix {
    use super::*;
    use abi_stable::std_types::{RSlice, RSliceMut};
    use bento_plugin_api::abi::{FfiContext, FfiHostSocket, FfiIoResult, FfiPoll, IO_OTHER_ERROR, IO_WOULD_BLOCK};
    use std::io::{Read as _, Write as _};
    use std::net::{Shutdown, TcpStream};
    use std::task::Poll;
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    /// A plugin's socket on the reactor of the runtime that registered it
    /// (its drop deregisters it there, whichever thread drops it).
    pub(super) struct HostSocket {
        pub(super) fd: AsyncFd<TcpStream>,
    }

    fn io_result(result: std::io::Result<usize>) -> FfiIoResult {
        match result {
            Ok(count) => RResult::ROk(count),
            // tokio's own "not ready" carries no OS error number.
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => RResult::RErr(IO_WOULD_BLOCK),
            Err(error) => RResult::RErr(error.raw_os_error().unwrap_or(IO_OTHER_ERROR)),
        }
    }

    fn ffi_poll(poll: std::thread::Result<Poll<std::io::Result<usize>>>) -> FfiPoll<FfiIoResult> {
        match poll {
            Ok(Poll::Ready(result)) => FfiPoll::Ready(io_result(result)),
            Ok(Poll::Pending) => FfiPoll::Pending,
            Err(_) => FfiPoll::Panicked,
        }
    }

    impl FfiHostSocket for HostSocket {
        fn poll_read_ready(&self, cx: &mut FfiContext<'_>) -> FfiPoll<FfiIoResult> {
            ffi_poll(catch_unwind(AssertUnwindSafe(|| {
                cx.with_context(|cx| match self.fd.poll_read_ready(cx) {
                    // Keep the readiness: `try_read` clears it when the
                    // read would block.
                    Poll::Ready(Ok(mut ready)) => {
                        ready.retain_ready();
                        Poll::Ready(Ok(0))
                    }
                    Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                    Poll::Pending => Poll::Pending,
                })
            })))
        }

        fn try_read(&self, mut buf: RSliceMut<'_, u8>) -> FfiIoResult {
            let buf = buf.as_mut_slice();
            // `try_io` reads only when the reactor saw readiness, and clears
            // it (with the tick it observed) when the read would block.
            let read = catch_unwind(AssertUnwindSafe(|| {
                self.fd.try_io(Interest::READABLE, |socket| {
                    let mut stream = socket;
                    stream.read(buf)
                })
            }));
            match read {
                Ok(result) => io_result(result),
                Err(_) => RResult::RErr(IO_OTHER_ERROR),
            }
        }

        fn poll_write(&self, cx: &mut FfiContext<'_>, buf: RSlice<'_, u8>) -> FfiPoll<FfiIoResult> {
            let buf = buf.as_slice();
            ffi_poll(catch_unwind(AssertUnwindSafe(|| {
                cx.with_context(|cx| loop {
                    let mut ready = match self.fd.poll_write_ready(cx) {
                        Poll::Ready(Ok(ready)) => ready,
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                        Poll::Pending => return Poll::Pending,
                    };
                    if let Ok(result) = ready.try_io(|socket| {
                        let mut stream = socket.get_ref();
                        stream.write(buf)
                    }) {
                        return Poll::Ready(result);
                    }
                })
            })))
        }

        fn shutdown_write(&self) -> FfiIoResult {
            io_result(self.fd.get_ref().shutdown(Shutdown::Write).map(|()| 0))
        }
    }
}
