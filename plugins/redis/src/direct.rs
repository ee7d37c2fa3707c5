//! A single server's multiplexed connection whose I/O runs on the
//! caller's runtime when the host lends it (the `io: "auto"` mode).
//!
//! redis-rs's `ConnectionManager` dials with the tokio of the library that
//! calls it, which in a plugin is the plugin's own runtime: the socket and
//! the connection task then live on plugin threads, and every request
//! crosses threads twice. Here the socket is dialled, then handed to the
//! host's reactor ([`HostStream`]) and the connection task spawned on the
//! host runtime polling the request ([`spawn_on_host`]), so requests and
//! replies stay on the caller's threads, as with a statically linked
//! driver. Where no host runtime is available (an older host, a
//! current-thread runtime, a request from a plain thread, a platform
//! without file descriptors), the connection is dialled on the plugin
//! runtime as `ConnectionManager` would (linked statically, that is the
//! caller's runtime).
//!
//! On the caller's runtime the connection task yields once per wake-up
//! while several requests are under way, so that concurrent requests share
//! a write (see `Batching`).
//!
//! Reconnection is ours: a connection whose task ended (the server closed
//! it, an I/O error, or the runtime it lived on shut down) or that failed
//! a request with a connection error is replaced by the next request, which
//! redials on the runtime current then. The connection is not moved while
//! it works, even when later requests come from another runtime.

use bento_plugin_api::{host_io_available, spawn_on_host, HostStream};
use futures::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, RedisError, RedisResult};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// One live connection: a handle to the connection task, whether that
/// task still runs, and which dial made it.
struct Live {
    connection: MultiplexedConnection,
    alive: Arc<AtomicBool>,
    generation: u64,
}

impl Live {
    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }
}

/// Clears the flag when the connection task ends or is dropped unfinished
/// (its runtime shut down).
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// How to dial, and the current connection.
pub struct DirectConnection {
    info: ConnectionInfo,
    connection_timeout: Duration,
    retries: usize,
    live: RwLock<Option<Live>>,
    /// Dials so far (each connection's `generation`).
    dials: AtomicU64,
    /// Requests under way (see `Batching`).
    in_flight: Arc<AtomicUsize>,
    /// Dials finished, successful or not, and the error of the last one
    /// when it failed: requests that waited for a dial share its outcome.
    finished_dials: AtomicU64,
    last_dial_error: Mutex<Option<RedisError>>,
    /// Serializes redials: concurrent requests on a dead connection wait
    /// for one dial instead of each opening a connection.
    dialing: tokio::sync::Mutex<()>,
}

/// True for the addresses this module can dial: plain TCP and Unix
/// sockets (TLS stays with `ConnectionManager`).
pub fn supports(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(..))
}

impl DirectConnection {
    /// A connection to `info`, not dialled yet. Each dial attempt may take
    /// `connection_timeout`; a failed dial is retried `retries` times with
    /// a backoff from 50 ms doubling up to 1 s.
    pub fn new(info: ConnectionInfo, connection_timeout: Duration, retries: usize) -> Self {
        DirectConnection {
            info,
            connection_timeout,
            retries,
            live: RwLock::new(None),
            dials: AtomicU64::new(0),
            in_flight: Arc::new(AtomicUsize::new(0)),
            finished_dials: AtomicU64::new(0),
            last_dial_error: Mutex::new(None),
            dialing: tokio::sync::Mutex::new(()),
        }
    }

    /// Dial now unless a working connection exists.
    pub async fn connect(&self) -> RedisResult<()> {
        self.connection().await.map(drop)
    }

    /// Send a request on the current connection (dialling one if needed);
    /// a connection error marks the connection for replacement.
    pub async fn request<T, F, Fut>(&self, send: F) -> RedisResult<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let (connection, generation) = self.connection().await?;
        let _in_flight = InFlight::enter(&self.in_flight);
        let result = send(connection).await;
        if let Err(error) = &result {
            if error.is_connection_dropped() || error.is_io_error() || error.is_unrecoverable_error() {
                self.mark_broken(generation);
            }
        }
        result
    }

    /// A handle on the working connection and its generation. The fast
    /// path of every request: one read lock and one handle clone.
    fn current(&self) -> Option<(MultiplexedConnection, u64)> {
        // A poisoned lock only means a panic while swapping an Option.
        let guard = self.live.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.as_ref().filter(|live| live.is_alive()).map(|live| (live.connection.clone(), live.generation))
    }

    fn mark_broken(&self, generation: u64) {
        let guard = self.live.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(live) = guard.as_ref().filter(|live| live.generation == generation) {
            live.alive.store(false, Ordering::Release);
        }
    }

    async fn connection(&self) -> RedisResult<(MultiplexedConnection, u64)> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        // Boxed: the dial's state (connect, handshake, backoff) would
        // otherwise be part of every request's future, which the plugin
        // boundary allocates and moves on every call.
        Box::pin(self.redial()).await
    }

    /// No working connection: dial one, or share the outcome of the dial
    /// another request is making.
    async fn redial(&self) -> RedisResult<(MultiplexedConnection, u64)> {
        let seen = self.finished_dials.load(Ordering::Acquire);
        let _dialing = self.dialing.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        // A dial finished (and failed) while this request waited for it:
        // share its error rather than dial again, so that concurrent
        // requests during an outage fail together, as with redis-rs's
        // connection manager, instead of queueing for one dial each.
        if self.finished_dials.load(Ordering::Acquire) != seen {
            let last = self.last_dial_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(error) = last.clone() {
                return Err(error);
            }
        }
        let dialled = self.dial_with_retries().await;
        *self.last_dial_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = dialled.as_ref().err().cloned();
        self.finished_dials.fetch_add(1, Ordering::Release);
        let live = dialled?;
        let current = (live.connection.clone(), live.generation);
        let mut guard = self.live.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = Some(live);
        Ok(current)
    }

    async fn dial_with_retries(&self) -> RedisResult<Live> {
        let mut delay = Duration::from_millis(50);
        let mut attempt = 0;
        loop {
            let result = match tokio::time::timeout(self.connection_timeout, self.dial()).await {
                Ok(result) => result,
                Err(_) => Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connection attempt timed out after {} ms", self.connection_timeout.as_millis()),
                ))),
            };
            match result {
                Ok(live) => return Ok(live),
                Err(error) if attempt >= self.retries => return Err(error),
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// One dial: on the host runtime when one is available here, else on
    /// the plugin's.
    async fn dial(&self) -> RedisResult<Live> {
        let on_host = host_io_available();
        match self.info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                // Dialled with the plugin's tokio (the connect and any DNS
                // lookup run on the plugin runtime), then handed over.
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                // The socket options redis-rs would set (its default keeps
                // Nagle's algorithm on, which lets many concurrent requests
                // share packets).
                let settings = self.info.tcp_settings();
                stream.set_nodelay(settings.nodelay())?;
                if let Some(keepalive) = settings.keepalive() {
                    redis::io::tcp::socket2::SockRef::from(&stream).set_tcp_keepalive(keepalive)?;
                }
                if on_host {
                    self.start_on_host(HostStream::from_tcp(stream.into_std()?)?).await
                } else {
                    self.start_on_plugin(stream).await
                }
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await?;
                if on_host {
                    self.start_on_host(HostStream::from_unix(stream.into_std()?)?).await
                } else {
                    self.start_on_plugin(stream).await
                }
            }
            other => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!("cannot dial {other:?} directly"),
            ))),
        }
    }

    async fn handshake<C>(&self, stream: C) -> RedisResult<(Live, BoxFuture<'static, ()>)>
    where
        C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        // No response timer of redis-rs's own: the driver's deadline
        // bounds every request (see `connection::bounded`).
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let (connection, task) =
            MultiplexedConnection::new_with_config(self.info.redis_settings(), stream, config).await?;
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(alive.clone());
        let task = async move {
            let _guard = guard;
            task.await;
        };
        let generation = self.dials.fetch_add(1, Ordering::Relaxed);
        Ok((Live { connection, alive, generation }, Box::pin(task)))
    }

    async fn start_on_host(&self, stream: HostStream) -> RedisResult<Live> {
        let (live, task) = self.handshake(stream).await?;
        let task = Batching { inner: task, in_flight: self.in_flight.clone(), yielded: false };
        match spawn_on_host(task) {
            Ok(()) => Ok(live),
            // The host runtime went away between the dial and now.
            Err(_dropped) => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the host runtime is no longer available",
            ))),
        }
    }

    async fn start_on_plugin<C>(&self, stream: C) -> RedisResult<Live>
    where
        C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (live, task) = self.handshake(stream).await?;
        // Polled in the plugin runtime's context (as every driver call
        // is), so this is the plugin runtime.
        drop(tokio::spawn(task));
        Ok(live)
    }
}

/// Counts a request under way while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection task on the host runtime, which lets the other runnable
/// tasks go first when several requests are under way.
///
/// On the caller's runtime, a request wakes the connection task from the
/// caller's own worker, and tokio runs a task woken that way right after
/// the waker (its "LIFO slot"): with many concurrent callers, the task
/// then writes each request on its own, one syscall (and one packet for
/// the server) per request. Yielding once per wake-up while more than one
/// request is under way lets the other ready callers queue theirs first,
/// so one write carries many, as on a connection task of its own thread.
/// With one request under way it never yields: a yield would wake the
/// other worker for nothing.
struct Batching {
    inner: BoxFuture<'static, ()>,
    in_flight: Arc<AtomicUsize>,
    yielded: bool,
}

impl Future for Batching {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.yielded && self.in_flight.load(Ordering::Relaxed) > 1 {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.yielded = false;
        self.inner.as_mut().poll(cx)
    }
}
