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
                drop(handle.spawn(task_waker::HostTask::new(future)));
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

/// A plugin task on the host runtime, polled with a waker that crosses the
/// boundary as itself.
///
/// async-ffi polls an `FfiFuture` through a bridge built on the stack at
/// every poll: the plugin sees a new waker each time, so every waker it
/// stores (a channel's, a socket's) is cloned again on every poll, each
/// clone a boxed copy of the task's waker; a socket readiness registered
/// back with the host wraps that bridge once more, so the host's reactor
/// holds a host waker inside a plugin waker inside a host waker. A plugin
/// connection task polls and registers on every request.
///
/// Here the task's waker is lent to the plugin as a reference-counted FFI
/// waker ([`task_waker::TaskWaker`], async-ffi's waker ABI) that lives as
/// long as the task's waker stays the same: the plugin's `will_wake`
/// checks see the same waker poll after poll, a clone is a count
/// increment, and a socket registration that comes back with it
/// ([`unix::HostSocket`]) is made with the task's own waker, unwrapped.
mod task_waker {
    use bento_plugin_api::abi::{FfiContext, FfiFuture, FfiPoll};
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    // Mirrors of async-ffi's FFI types (ABI version 2): the layout both
    // sides of the boundary agree on, which `abi_stable` checks when a
    // plugin loads (the fields are private to async-ffi).

    /// `FfiWakerVTable`.
    #[repr(C)]
    #[allow(dead_code)] // Called by the plugin, through the ABI.
    struct WakerVTable {
        clone: unsafe extern "C" fn(*const WakerBase) -> *const WakerBase,
        wake: unsafe extern "C" fn(*const WakerBase),
        wake_by_ref: unsafe extern "C" fn(*const WakerBase),
        drop: unsafe extern "C" fn(*const WakerBase),
    }

    /// `FfiWakerBase`: what an FFI waker pointer points to.
    #[repr(C)]
    pub(super) struct WakerBase {
        vtable: *const WakerVTable,
    }

    /// `FfiContext`.
    #[repr(C)]
    pub(super) struct RawContext {
        pub(super) waker: *const WakerBase,
    }

    /// `LocalBorrowingFfiFuture`, the layout of every `FfiFuture`.
    #[repr(C)]
    struct RawFuture {
        fut_ptr: *mut (),
        poll_fn: unsafe extern "C" fn(*mut (), *mut RawContext) -> FfiPoll<()>,
        /// Called by `FfiFuture`'s own drop.
        _drop_fn: unsafe extern "C" fn(*mut ()),
    }

    const _: () = {
        assert!(size_of::<RawFuture>() == size_of::<FfiFuture<()>>());
        assert!(align_of::<RawFuture>() == align_of::<FfiFuture<()>>());
        assert!(size_of::<RawContext>() == size_of::<FfiContext<'static>>());
    };

    /// A host waker as an FFI waker, shared by reference count (the
    /// pointer handed out is `Arc::into_raw`, whose first field is the
    /// `WakerBase`).
    #[repr(C)]
    pub(super) struct TaskWaker {
        /// The `WakerBase` part.
        vtable: &'static WakerVTable,
        waker: Waker,
    }

    static VTABLE: WakerVTable = WakerVTable { clone, wake, wake_by_ref, drop };

    // The four functions receive pointers this module made: `Arc::as_ptr`
    // of a live `Arc<TaskWaker>` (borrowed for a poll) or the result of
    // `clone` (one count owned by the caller). A waker's wake never
    // unwinds in tokio; an unwind would abort here (`extern "C"`), as in
    // async-ffi.
    unsafe extern "C" fn clone(base: *const WakerBase) -> *const WakerBase {
        // SAFETY: `base` points into a live `Arc<TaskWaker>` (see above).
        unsafe { Arc::increment_strong_count(base.cast::<TaskWaker>()) };
        base
    }

    unsafe extern "C" fn wake(base: *const WakerBase) {
        // SAFETY: the caller owns one count (a `clone` result), given up here.
        let owned = unsafe { Arc::from_raw(base.cast::<TaskWaker>()) };
        owned.waker.wake_by_ref();
    }

    unsafe extern "C" fn wake_by_ref(base: *const WakerBase) {
        // SAFETY: `base` points into a live `Arc<TaskWaker>`.
        unsafe { (*base.cast::<TaskWaker>()).waker.wake_by_ref() }
    }

    unsafe extern "C" fn drop(base: *const WakerBase) {
        // SAFETY: the caller owns one count (a `clone` result), given up here.
        unsafe { Arc::decrement_strong_count(base.cast::<TaskWaker>()) }
    }

    /// The host waker behind `context`, when it is one of ours (a plugin
    /// passing back the waker of a [`HostTask`] it is polled by).
    pub(super) fn host_waker<'a>(context: &'a mut FfiContext<'_>) -> Option<&'a Waker> {
        // SAFETY: `RawContext` is `FfiContext`'s layout (checked above);
        // its pointer is a live FFI waker for the borrow of `context`, and
        // every FFI waker starts with its vtable pointer. Only a waker
        // whose vtable is ours is read further, as the `TaskWaker` it is.
        unsafe {
            let base = (*std::ptr::from_mut(context).cast::<RawContext>()).waker;
            std::ptr::eq((*base).vtable, &VTABLE).then(|| &(*base.cast::<TaskWaker>()).waker)
        }
    }

    /// An `FfiFuture` spawned by a plugin, polled with a [`TaskWaker`].
    pub(super) struct HostTask {
        future: FfiFuture<()>,
        waker: Option<Arc<TaskWaker>>,
    }

    impl HostTask {
        pub(super) fn new(future: FfiFuture<()>) -> Self {
            HostTask { future, waker: None }
        }
    }

    impl Future for HostTask {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let this = &mut *self;
            let task_waker = match &this.waker {
                Some(current) if current.waker.will_wake(cx.waker()) => current,
                _ => this.waker.insert(Arc::new(TaskWaker { vtable: &VTABLE, waker: cx.waker().clone() })),
            };
            let mut context = RawContext { waker: Arc::as_ptr(task_waker).cast() };
            // SAFETY: `RawFuture` is the layout of every `FfiFuture`
            // (checked above), whose `poll_fn` takes its own `fut_ptr` and
            // an FFI context valid for the call; `context` points to the
            // `TaskWaker` kept alive by `this.waker` during the call, and
            // the plugin clones it (a count) to keep it longer.
            let polled = unsafe {
                let raw = &*std::ptr::from_ref(&this.future).cast::<RawFuture>();
                (raw.poll_fn)(raw.fut_ptr, &mut context)
            };
            match polled {
                FfiPoll::Pending => Poll::Pending,
                // A panic in the task ends it (its guard reported it); the
                // future is dropped with the task.
                FfiPoll::Ready(()) | FfiPoll::Panicked => Poll::Ready(()),
            }
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
    use std::task::{Context, Poll};
    use tokio::io::unix::AsyncFd;

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

    /// Run `poll` with the host waker behind `cx`: the task's own waker
    /// when the plugin passed back the one of a [`task_waker::HostTask`]
    /// (the reactor then stores the task's waker, and keeps it while it
    /// stays the same), async-ffi's bridge otherwise.
    fn with_host_context<R>(cx: &mut FfiContext<'_>, poll: impl FnOnce(&mut Context<'_>) -> R) -> R {
        match task_waker::host_waker(cx) {
            Some(waker) => poll(&mut Context::from_waker(waker)),
            None => cx.with_context(poll),
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
                with_host_context(cx, |cx| match self.fd.poll_read_ready(cx) {
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
            let asked = buf.len();
            // Reads only when the reactor saw readiness. The readiness is
            // cleared (with the tick it was seen at, so an event that came
            // since is kept) when the read would block, and also after a
            // read shorter than asked: the socket's buffer was drained, as
            // tokio's own `TcpStream` assumes, so the next read of a reply
            // waits for the reactor instead of costing a system call that
            // would block.
            let read = catch_unwind(AssertUnwindSafe(|| {
                // The caller saw the socket readable just before (the
                // contract of `try_read`): the guard is ready, and no waker
                // is registered. A caller that did not, and reads nothing,
                // polls readiness again with its own waker.
                let mut no_waker = Context::from_waker(std::task::Waker::noop());
                let mut ready = match self.fd.poll_read_ready(&mut no_waker) {
                    Poll::Ready(ready) => ready?,
                    Poll::Pending => return Err(std::io::ErrorKind::WouldBlock.into()),
                };
                match ready.try_io(|socket| {
                    let mut stream = socket.get_ref();
                    stream.read(buf)
                }) {
                    Ok(Ok(count)) => {
                        if 0 < count && count < asked {
                            ready.clear_ready();
                        }
                        Ok(count)
                    }
                    Ok(Err(error)) => Err(error),
                    Err(_would_block) => Err(std::io::ErrorKind::WouldBlock.into()),
                }
            }));
            match read {
                Ok(result) => io_result(result),
                Err(_) => RResult::RErr(IO_OTHER_ERROR),
            }
        }

        fn poll_write(&self, cx: &mut FfiContext<'_>, buf: RSlice<'_, u8>) -> FfiPoll<FfiIoResult> {
            let buf = buf.as_slice();
            ffi_poll(catch_unwind(AssertUnwindSafe(|| {
                with_host_context(cx, |cx| loop {
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

#[cfg(test)]
mod tests {
    use super::*;
    use bento_plugin_api::abi::{FfiIoResult, FfiPoll};
    use std::task::{Context, Poll};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_plugin_task_sees_one_waker_across_polls_and_is_woken_through_clones() {
        let (done, finished) = tokio::sync::oneshot::channel();
        let mut done = Some(done);
        let mut seen: Vec<usize> = Vec::new();
        let task = std::future::poll_fn(move |cx| {
            seen.push(cx.waker().data() as usize);
            match seen.len() {
                // Woken by a clone from another thread, then by value.
                1 | 2 => {
                    let waker = cx.waker().clone();
                    let by_value = seen.len() == 2;
                    std::thread::spawn(move || {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        if by_value {
                            waker.wake();
                        } else {
                            waker.wake_by_ref();
                        }
                    });
                    Poll::Pending
                }
                _ => {
                    if let Some(done) = done.take() {
                        let _ = done.send(seen.clone());
                    }
                    Poll::Ready(())
                }
            }
        });
        assert!(host_runtime().spawn(FfiFuture::new(task)));
        let seen = tokio::time::timeout(std::time::Duration::from_secs(5), finished)
            .await
            .expect("the task is woken and finishes")
            .expect("the task reports");
        assert_eq!(seen.len(), 3);
        // The FFI waker the task sees is the same object at every poll
        // (async-ffi's own bridge would be a fresh stack object each time).
        assert!(seen.windows(2).all(|pair| pair[0] == pair[1]), "{seen:?}");
    }

    /// Read readiness of a host socket, polled as a plugin does.
    #[cfg(unix)]
    fn read_ready(socket: &FfiHostSocketBox, cx: &mut Context<'_>) -> Poll<FfiIoResult> {
        use async_ffi::ContextExt as _;
        cx.with_ffi_context(|ffi| match socket.poll_read_ready(ffi) {
            FfiPoll::Ready(result) => Poll::Ready(result),
            FfiPoll::Pending => Poll::Pending,
            FfiPoll::Panicked => panic!("poll_read_ready panicked"),
        })
    }

    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_shorter_than_asked_clears_the_readiness_and_later_data_still_wakes() {
        use abi_stable::std_types::RResult::ROk;
        use std::io::Write as _;
        use std::os::fd::IntoRawFd as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let socket = match register(ours.into_raw_fd() as i64) {
            Ok(socket) => socket,
            Err(error) => panic!("{error}"),
        };
        let mut buf = [0u8; 64];
        for message in [&b"first"[..], b"second"] {
            peer.write_all(message).unwrap();
            let ready =
                tokio::time::timeout(Duration::from_secs(5), std::future::poll_fn(|cx| read_ready(&socket, cx)));
            assert!(matches!(ready.await, Ok(ROk(0))), "the data makes the socket readable");
            let read = socket.try_read((&mut buf[..]).into());
            assert!(matches!(read, ROk(count) if count == message.len()), "{read:?}");
            assert_eq!(&buf[..message.len()], message);
            // The short read drained the socket: no read that would block
            // is needed before readiness waits for the reactor again.
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(read_ready(&socket, &mut cx).is_pending(), "readiness was kept after a draining read");
        }
    }
}
