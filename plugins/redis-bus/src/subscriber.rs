//! The supervised pub/sub connection: one dedicated connection carrying
//! every subscription, and one task that reads it, hands each message to
//! its channel's handler, notices when the connection breaks (end of
//! stream, a protocol error, or a health-check PING left unanswered),
//! reconnects with backoff, resubscribes every channel and then runs the
//! reconnect handlers.
//!
//! Where it runs follows the `io` option, as the publisher's connection
//! does: with `io: "auto"` and a host that lends its runtime, the socket is
//! registered with the host's reactor ([`HostStream`]) and the task runs on
//! the host runtime that connected the bus ([`spawn_on_host`]), so a
//! message (this instance's own echo included) is read and handed to the
//! host on the host's threads and wakes no plugin thread. Otherwise (an
//! older host, a current-thread runtime, `io: "plugin"`, the bus linked
//! statically) socket and task live on the plugin runtime. Should the host
//! runtime shut down under the task, the task moves to the plugin runtime
//! and starts with a reconnection. Redials happen from the task, so they
//! stay where it runs.
//!
//! The task speaks RESP2 itself ([`crate::resp`]): one task reads the
//! socket and calls the handlers directly, where redis-rs's `PubSub`
//! spawns its reader on the runtime of the library's own tokio and hands
//! messages to a second task through a channel.
//!
//! Subscriptions are the source of truth in [`Subscriber`]'s channel map;
//! the connection only mirrors them. `subscribe` and the reconnection both
//! take the `link` lock, so a channel added during a reconnection is either
//! in the snapshot the new connection subscribes, or subscribed on the new
//! connection by `subscribe` itself.

use crate::options::{IoMode, RedisBusOptions};
use crate::resp::{self, Frame, Item};
use bento_plugin_api::{
    host_io_available, spawn_on_host, BusMessageHandler, DriverError, DriverResult, HostStream, PluginRuntime,
    ReconnectHandler,
};
use redis::{ConnectionAddr, ConnectionInfo};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// First wait before a reconnection attempt; doubles up to the maximum.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);

/// Free space kept in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

/// The subscriber side of the Redis bus.
pub struct Subscriber {
    info: ConnectionInfo,
    options: RedisBusOptions,
    /// Shared with the task, which holds no strong reference to `self`.
    handlers: Handlers,
    reconnect_handlers: Mutex<Vec<ReconnectHandler>>,
    /// Requests to the live connection's task; `None` while reconnecting.
    link: tokio::sync::Mutex<Option<mpsc::UnboundedSender<Request>>>,
    stop: watch::Sender<bool>,
    pub(crate) disconnected: AtomicBool,
}

/// The handler of each subscribed channel.
type Handlers = Arc<Mutex<HashMap<String, BusMessageHandler>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Handlers are never called under these locks.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A command for the connection task: its bytes, how many replies
/// complete it, and who waits for them.
struct Request {
    command: Vec<u8>,
    replies: usize,
    done: oneshot::Sender<Result<(), String>>,
}

/// Who waits for the replies of a command sent on the connection.
enum Waiter {
    Caller(oneshot::Sender<Result<(), String>>),
    HealthCheck,
}

struct Pending {
    replies: usize,
    waiter: Waiter,
}

/// The byte stream of one connection: a socket on the host's reactor or
/// a tokio socket of the plugin runtime.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One pub/sub connection, owned by the task that reads it.
struct PubSubConnection {
    stream: Box<dyn Io>,
    buffer: Vec<u8>,
    pending: VecDeque<Pending>,
    /// When the outstanding health-check PING must have been answered.
    pong_deadline: Option<Instant>,
}

/// Why a connection stopped being usable.
#[derive(Debug)]
enum Broken {
    Io(std::io::Error),
    Closed,
    Protocol(resp::ProtocolError),
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Io(error) => write!(f, "{error}"),
            Broken::Closed => f.write_str("the server closed the connection"),
            Broken::Protocol(error) => write!(f, "{error}"),
        }
    }
}

impl PubSubConnection {
    fn new(stream: Box<dyn Io>) -> Self {
        PubSubConnection { stream, buffer: Vec::new(), pending: VecDeque::new(), pong_deadline: None }
    }

    /// Write `command`; `replies` replies complete it (for `waiter`).
    async fn send(&mut self, command: &[u8], replies: usize, waiter: Waiter) -> Result<(), Broken> {
        self.pending.push_back(Pending { replies, waiter });
        self.stream.write_all(command).await.map_err(Broken::Io)?;
        self.stream.flush().await.map_err(Broken::Io)
    }

    /// Read what the server sent (cancel-safe: nothing is lost when the
    /// future is dropped unfinished).
    async fn read_more(&mut self) -> Result<(), Broken> {
        if self.buffer.capacity() - self.buffer.len() < READ_CHUNK / 4 {
            self.buffer.reserve(READ_CHUNK);
        }
        match self.stream.read_buf(&mut self.buffer).await {
            Ok(0) => Err(Broken::Closed),
            Ok(_) => Ok(()),
            Err(error) => Err(Broken::Io(error)),
        }
    }

    /// Handle every complete frame in the buffer: messages go to their
    /// channel's handler, replies to the command waiting for them.
    fn process(&mut self, handlers: &Mutex<HashMap<String, BusMessageHandler>>) -> Result<(), Broken> {
        let mut consumed = 0;
        while let Some((frame, used)) = resp::parse(&self.buffer[consumed..]).map_err(Broken::Protocol)? {
            consumed += used;
            match frame {
                Frame::Array(items) => match items.as_slice() {
                    [Item::Bulk(Some(b"message")), Item::Bulk(Some(channel)), Item::Bulk(Some(payload))] => {
                        dispatch(handlers, channel, payload)
                    }
                    [Item::Bulk(Some(b"pmessage")), _, Item::Bulk(Some(channel)), Item::Bulk(Some(payload))] => {
                        dispatch(handlers, channel, payload)
                    }
                    // subscribe / unsubscribe confirmations, pong.
                    _ => self.reply(Ok(())),
                },
                Frame::Item(Item::Error(text)) => self.reply(Err(String::from_utf8_lossy(text).into_owned())),
                Frame::Item(_) => self.reply(Ok(())),
            }
        }
        // Usually everything: then this only resets the length.
        self.buffer.drain(..consumed);
        if self.buffer.is_empty() && self.buffer.capacity() > 16 * READ_CHUNK {
            // Give back what a large payload needed.
            self.buffer = Vec::new();
        }
        Ok(())
    }

    /// One reply to the oldest command; an error completes it at once.
    fn reply(&mut self, result: Result<(), String>) {
        let Some(head) = self.pending.front_mut() else {
            tracing::debug!(?result, "redis bus: a reply nobody waits for");
            return;
        };
        head.replies = head.replies.saturating_sub(1);
        if head.replies > 0 && result.is_ok() {
            return;
        }
        let Some(done) = self.pending.pop_front() else { return };
        match done.waiter {
            Waiter::Caller(sender) => {
                let _ = sender.send(result);
            }
            Waiter::HealthCheck => self.pong_deadline = None,
        }
    }

    /// Send `command` and read until its replies came (dispatching any
    /// message that arrives meanwhile), within `timeout`.
    async fn call(
        &mut self,
        command: &[u8],
        replies: usize,
        handlers: &Mutex<HashMap<String, BusMessageHandler>>,
        timeout: Duration,
    ) -> Result<Result<(), String>, Broken> {
        let (sender, mut receiver) = oneshot::channel();
        let exchange = async {
            self.send(command, replies, Waiter::Caller(sender)).await?;
            loop {
                if let Ok(result) = receiver.try_recv() {
                    return Ok(result);
                }
                self.read_more().await?;
                self.process(handlers)?;
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Broken::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} ms", timeout.as_millis()),
            ))),
        }
    }
}

fn dispatch(handlers: &Mutex<HashMap<String, BusMessageHandler>>, channel: &[u8], payload: &[u8]) {
    let Ok(channel) = std::str::from_utf8(channel) else { return };
    let handler = lock(handlers).get(channel).cloned();
    if let Some(handler) = handler {
        handler(channel, payload.to_vec());
    }
}

/// `SUBSCRIBE`/`UNSUBSCRIBE` (or any command) of `args`, packed.
fn command(name: &str, args: &[&str]) -> Vec<u8> {
    let mut command = redis::cmd(name);
    for arg in args {
        command.arg(*arg);
    }
    command.get_packed_command()
}

impl Subscriber {
    /// Open the first pub/sub connection (failing if Redis is unreachable)
    /// and start the task that reads it: on the host runtime current here
    /// when `io` is `"auto"` and the host lends one, else on the plugin's
    /// runtime.
    pub async fn start(info: ConnectionInfo, options: RedisBusOptions) -> DriverResult<Arc<Subscriber>> {
        if !matches!(info.addr(), ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(..)) {
            return Err(DriverError::invalid_options(format!(
                "invalid option `url`: the redis bus connects over plain TCP or a Unix socket, not {:?}",
                info.addr()
            )));
        }
        let (stop, stopped) = watch::channel(false);
        let subscriber = Arc::new(Subscriber {
            info,
            options,
            handlers: Handlers::default(),
            reconnect_handlers: Mutex::default(),
            link: tokio::sync::Mutex::new(None),
            stop,
            disconnected: AtomicBool::new(false),
        });
        let on_host = subscriber.options.io == IoMode::Auto && host_io_available();
        let (connection, requests) = subscriber.connect(on_host).await?;
        let task = Supervisor::new(Arc::downgrade(&subscriber), stopped).run(Some((connection, requests)));
        if on_host {
            if let Err(task) = spawn_on_host(task) {
                drop(tokio::spawn(task));
            }
        } else {
            drop(tokio::spawn(task));
        }
        Ok(subscriber)
    }

    /// Dial, authenticate, subscribe every recorded channel and publish the
    /// request link. Holding the link lock makes this atomic with
    /// `subscribe`.
    async fn connect(&self, on_host: bool) -> DriverResult<(PubSubConnection, mpsc::UnboundedReceiver<Request>)> {
        let mut connection = self.dial(on_host).await?;
        let settings = self.info.redis_settings();
        if let Some(password) = settings.password() {
            let auth = match settings.username() {
                Some(user) => command("AUTH", &[user, password]),
                None => command("AUTH", &[password]),
            };
            self.call(&mut connection, &auth, 1, "AUTH").await?;
        }
        let mut link = self.link.lock().await;
        let channels: Vec<String> = lock(&self.handlers).keys().cloned().collect();
        if !channels.is_empty() {
            let names: Vec<&str> = channels.iter().map(String::as_str).collect();
            self.call(&mut connection, &command("SUBSCRIBE", &names), names.len(), "SUBSCRIBE").await?;
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        *link = Some(sender);
        Ok((connection, receiver))
    }

    async fn call(
        &self,
        connection: &mut PubSubConnection,
        bytes: &[u8],
        replies: usize,
        action: &str,
    ) -> DriverResult<()> {
        match connection.call(bytes, replies, &self.handlers, self.options.response_timeout()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reply)) => Err(DriverError::backend(format!("redis bus {action}: {reply}"))),
            Err(broken) => Err(self.broken_error(action, &broken)),
        }
    }

    fn broken_error(&self, action: &str, broken: &Broken) -> DriverError {
        let message = format!("redis bus {action} on {}: {broken}", self.options.url);
        match broken {
            Broken::Io(error) if error.kind() == std::io::ErrorKind::TimedOut => DriverError::timeout(message),
            _ => DriverError::connection(message),
        }
    }

    /// One dial, bounded by the connection timeout: the connect itself runs
    /// on the plugin's tokio (as the redis driver's direct connection
    /// does); the socket is then handed to the host when `on_host`.
    async fn dial(&self, on_host: bool) -> DriverResult<PubSubConnection> {
        let dial = async {
            let stream: Box<dyn Io> = match self.info.addr() {
                ConnectionAddr::Tcp(host, port) => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    if let Some(keepalive) = self.info.tcp_settings().keepalive() {
                        redis::io::tcp::socket2::SockRef::from(&stream).set_tcp_keepalive(keepalive)?;
                    }
                    if on_host {
                        Box::new(HostStream::from_tcp(stream.into_std()?)?)
                    } else {
                        Box::new(stream)
                    }
                }
                #[cfg(unix)]
                ConnectionAddr::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    if on_host {
                        Box::new(HostStream::from_unix(stream.into_std()?)?)
                    } else {
                        Box::new(stream)
                    }
                }
                other => {
                    return Err(std::io::Error::new(std::io::ErrorKind::Unsupported, format!("cannot dial {other:?}")))
                }
            };
            Ok::<_, std::io::Error>(PubSubConnection::new(stream))
        };
        match tokio::time::timeout(self.options.connection_timeout(), dial).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => {
                Err(DriverError::connection(format!("redis bus connect to {}: {error}", self.options.url)))
            }
            Err(_) => Err(DriverError::timeout(format!(
                "redis bus connect to {}: no connection within {} ms",
                self.options.url, self.options.connection_timeout_ms
            ))),
        }
    }

    /// Send a command to the live connection's task and wait for its
    /// replies. `Ok(false)`: the connection broke before answering; the
    /// reconnection makes it mirror the channel map, which the caller
    /// already updated.
    async fn request(
        &self,
        link: &mpsc::UnboundedSender<Request>,
        command: Vec<u8>,
        replies: usize,
        action: &str,
    ) -> DriverResult<bool> {
        let (done, answer) = oneshot::channel();
        if link.send(Request { command, replies, done }).is_err() {
            return Ok(false);
        }
        match tokio::time::timeout(self.options.response_timeout(), answer).await {
            Ok(Ok(Ok(()))) => Ok(true),
            Ok(Ok(Err(reply))) => Err(DriverError::backend(format!("redis bus {action}: {reply}"))),
            Ok(Err(_)) => Ok(false),
            Err(_) => Err(DriverError::timeout(format!(
                "redis bus {action}: no answer within {} ms",
                self.options.response_timeout_ms
            ))),
        }
    }

    /// Record `handler` for `channel` and subscribe it on the live
    /// connection. While the connection is down (or when it breaks before
    /// answering) the subscription is only recorded; the reconnection
    /// subscribes it. Subscribing a known channel again only replaces its
    /// handler.
    pub async fn subscribe(&self, channel: &str, handler: BusMessageHandler) -> DriverResult<()> {
        if self.disconnected.load(Ordering::Acquire) {
            return Err(DriverError::disconnected());
        }
        let link = self.link.lock().await;
        let known = lock(&self.handlers).insert(channel.to_string(), handler).is_some();
        if let (Some(live), false) = (link.as_ref(), known) {
            let action = format!("SUBSCRIBE {channel}");
            if let Err(error) = self.request(live, command("SUBSCRIBE", &[channel]), 1, &action).await {
                lock(&self.handlers).remove(channel);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Forget `channel`; messages already in flight for it are dropped.
    pub async fn unsubscribe(&self, channel: &str) -> DriverResult<()> {
        let link = self.link.lock().await;
        if lock(&self.handlers).remove(channel).is_none() {
            return Ok(());
        }
        if let Some(live) = link.as_ref() {
            let action = format!("UNSUBSCRIBE {channel}");
            if let Err(error) = self.request(live, command("UNSUBSCRIBE", &[channel]), 1, &action).await {
                tracing::debug!(channel, %error, "redis bus unsubscribe failed; the channel is ignored anyway");
            }
        }
        Ok(())
    }

    /// Run `handler` after every re-established subscription.
    pub fn on_reconnect(&self, handler: ReconnectHandler) {
        lock(&self.reconnect_handlers).push(handler);
    }

    /// Stop the task and close the connection; idempotent.
    pub async fn disconnect(&self) {
        if self.disconnected.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.stop.send_replace(true);
        self.link.lock().await.take();
        lock(&self.handlers).clear();
    }

    fn run_reconnect_handlers(&self) {
        let handlers = lock(&self.reconnect_handlers).clone();
        for handler in handlers {
            handler();
        }
    }
}

/// Resolves once a stop was requested (or the bus was dropped).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here.
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Resolves at `deadline`, never without one.
async fn expiry(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Why the read loop ended.
enum Ended {
    Stopped,
    ConnectionLost,
}

/// The task: reads the connection, serves requests, reconnects. Holds only
/// a weak reference so that dropping the bus without `disconnect` still
/// ends it.
struct Supervisor {
    subscriber: Weak<Subscriber>,
    stopped: watch::Receiver<bool>,
    /// Cleared when the task ends by itself; see `Drop`.
    running: bool,
}

impl Supervisor {
    fn new(subscriber: Weak<Subscriber>, stopped: watch::Receiver<bool>) -> Self {
        Supervisor { subscriber, stopped, running: true }
    }

    /// Serve `live` (or start by connecting) until stopped.
    async fn run(mut self, mut live: Option<(PubSubConnection, mpsc::UnboundedReceiver<Request>)>) {
        loop {
            if let Some((mut connection, mut requests)) = live.take() {
                // No strong reference while serving: dropping the bus
                // drops the link, which ends `serve`.
                let Some((handlers, options)) =
                    self.subscriber.upgrade().map(|strong| (strong.handlers.clone(), strong.options.clone()))
                else {
                    break;
                };
                let ended = serve(&handlers, &options, &mut connection, &mut requests).await;
                if let Ended::Stopped = ended {
                    break;
                }
                // Callers waiting for replies on it (holding the link
                // lock) learn it broke; later requests find it closed.
                drop((connection, requests));
                let Some(strong) = self.subscriber.upgrade() else { break };
                strong.link.lock().await.take();
                tracing::warn!(url = %strong.options.url, "redis bus subscriber connection lost; reconnecting");
            }
            match self.reconnect().await {
                Some(reconnected) => live = Some(reconnected),
                None => break,
            }
        }
        self.ended();
    }

    /// The task ends by itself: nothing to carry on when it is dropped.
    fn ended(&mut self) {
        self.running = false;
    }

    /// Connect again with backoff; `None` when stopped or the bus is gone.
    async fn reconnect(&mut self) -> Option<(PubSubConnection, mpsc::UnboundedReceiver<Request>)> {
        let mut delay = RECONNECT_MIN_DELAY;
        loop {
            let strong = self.subscriber.upgrade()?;
            if *self.stopped.borrow() {
                return None;
            }
            let on_host = strong.options.io == IoMode::Auto && host_io_available();
            match strong.connect(on_host).await {
                Ok(reconnected) => {
                    tracing::info!(url = %strong.options.url, "redis bus subscriber reconnected");
                    strong.run_reconnect_handlers();
                    return Some(reconnected);
                }
                Err(error) => {
                    tracing::debug!(%error, ?delay, "redis bus reconnection failed");
                    let max_delay = strong.options.reconnect_max_delay();
                    drop(strong);
                    tokio::select! {
                        _ = stop_requested(&mut self.stopped) => return None,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(max_delay);
                }
            }
        }
    }
}

impl Drop for Supervisor {
    /// The task was dropped unfinished: the runtime it ran on (a host
    /// runtime) shut down. Carry on from a reconnection on the plugin's
    /// runtime, unless the bus is stopped or gone.
    fn drop(&mut self) {
        if !self.running || *self.stopped.borrow() || self.subscriber.strong_count() == 0 {
            return;
        }
        let Ok(runtime) = PluginRuntime::handle() else { return };
        let successor = Supervisor::new(self.subscriber.clone(), self.stopped.clone());
        drop(runtime.spawn(successor.run(None)));
    }
}

/// What woke the read loop.
enum Event {
    Read(Result<(), Broken>),
    Request(Option<Request>),
    HealthCheck,
    PongOverdue,
}

/// Read `connection` and serve requests until it breaks or the link is
/// dropped.
async fn serve(
    handlers: &Handlers,
    options: &RedisBusOptions,
    connection: &mut PubSubConnection,
    requests: &mut mpsc::UnboundedReceiver<Request>,
) -> Ended {
    let health_check = options.health_check_interval();
    let mut ticker = tokio::time::interval(health_check.unwrap_or(Duration::from_secs(3600)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        let pong_deadline = connection.pong_deadline;
        // No stop branch: `disconnect`, like dropping the bus, drops the
        // link, which ends `requests`.
        let event = tokio::select! {
            biased;
            request = requests.recv() => Event::Request(request),
            read = connection.read_more() => Event::Read(read),
            _ = ticker.tick(), if health_check.is_some() => Event::HealthCheck,
            _ = expiry(pong_deadline), if pong_deadline.is_some() => Event::PongOverdue,
        };
        let outcome = match event {
            Event::Read(read) => read.and_then(|()| connection.process(handlers)),
            // The link is gone: `disconnect` took it, or the bus was dropped.
            Event::Request(None) => return Ended::Stopped,
            Event::Request(Some(request)) => {
                connection.send(&request.command, request.replies, Waiter::Caller(request.done)).await
            }
            Event::HealthCheck => {
                if connection.pong_deadline.is_none() {
                    connection.pong_deadline = Some(Instant::now() + options.response_timeout());
                    connection.send(&command("PING", &[]), 1, Waiter::HealthCheck).await
                } else {
                    Ok(())
                }
            }
            Event::PongOverdue => {
                tracing::warn!(url = %options.url, "redis bus health check: PING unanswered");
                return Ended::ConnectionLost;
            }
        };
        if let Err(broken) = outcome {
            tracing::debug!(url = %options.url, %broken, "redis bus subscriber connection broke");
            return Ended::ConnectionLost;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, DuplexStream};

    fn connection() -> (PubSubConnection, DuplexStream) {
        let (ours, server) = duplex(64 * 1024);
        (PubSubConnection::new(Box::new(ours)), server)
    }

    fn recording(handlers: &Handlers, channel: &str) -> Arc<Mutex<Vec<Vec<u8>>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let handler: BusMessageHandler = Arc::new(move |_channel: &str, payload: Vec<u8>| lock(&sink).push(payload));
        lock(handlers).insert(channel.to_string(), handler);
        seen
    }

    #[tokio::test]
    async fn a_command_waits_for_all_its_confirmations_and_messages_in_between_are_dispatched() {
        let (mut connection, mut server) = connection();
        let handlers = Handlers::default();
        let seen = recording(&handlers, "a");
        let replies = async {
            let mut request = vec![0; 64];
            let read = server.read(&mut request).await.unwrap();
            assert!(request[..read].starts_with(b"*3\r\n$9\r\nSUBSCRIBE\r\n"));
            server.write_all(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n").await.unwrap();
            server.write_all(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$3\r\none\r\n").await.unwrap();
            server.write_all(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n").await.unwrap();
            server.write_all(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$3\r\ntwo\r\n").await.unwrap();
        };
        let subscribe = command("SUBSCRIBE", &["a", "b"]);
        let (outcome, ()) = tokio::join!(connection.call(&subscribe, 2, &handlers, Duration::from_secs(2)), replies);
        assert_eq!(outcome.unwrap(), Ok(()));
        // The message after the last confirmation may not have been read yet.
        while lock(&seen).len() < 2 {
            tokio::time::timeout(Duration::from_secs(2), connection.read_more()).await.unwrap().unwrap();
            connection.process(&handlers).unwrap();
        }
        assert_eq!(*lock(&seen), [b"one".to_vec(), b"two".to_vec()]);
        assert!(connection.pending.is_empty());
    }

    #[tokio::test]
    async fn an_error_reply_fails_the_command_and_garbage_breaks_the_connection() {
        let (mut connection, mut server) = connection();
        let handlers = Handlers::default();
        server.write_all(b"-WRONGPASS invalid password\r\n").await.unwrap();
        let outcome = connection.call(&command("AUTH", &["x"]), 1, &handlers, Duration::from_secs(2)).await;
        assert_eq!(outcome.unwrap(), Err("WRONGPASS invalid password".to_string()));
        server.write_all(b"%2\r\n").await.unwrap();
        connection.read_more().await.unwrap();
        assert!(matches!(connection.process(&handlers), Err(Broken::Protocol(_))));
        drop(server);
        connection.buffer.clear();
        assert!(matches!(connection.read_more().await, Err(Broken::Closed)));
    }

    #[tokio::test]
    async fn a_pong_ends_the_health_check() {
        let (mut connection, mut server) = connection();
        let handlers = Handlers::default();
        connection.pong_deadline = Some(Instant::now() + Duration::from_secs(5));
        connection.send(&command("PING", &[]), 1, Waiter::HealthCheck).await.unwrap();
        server.write_all(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n").await.unwrap();
        connection.read_more().await.unwrap();
        connection.process(&handlers).unwrap();
        assert_eq!(connection.pong_deadline, None);
    }
}
