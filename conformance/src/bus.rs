//! The bus suite (SPEC §6): what every bus plugin must do for the host's
//! multi-instance L1 sync. Payloads are opaque bytes; the host owns the
//! message format and filters its own messages by sender id, so the bus
//! must deliver a publisher's messages to its own subscriptions too.
//!
//! Each case works on channels no other case (or run) uses and
//! disconnects the buses it created. The reconnect case needs the plugin
//! to take its server address as a `url` option: it puts a TCP proxy in
//! front of that server and cuts it.

use crate::cases::{ensure, ensure_eq, CaseResult, Failure, Op};
use bento::{Bus, ErrorKind, Plugin};
use bento_testkit::TcpProxy;
use futures::future::BoxFuture;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long one message may take to arrive.
const WAIT: Duration = Duration::from_secs(3);
/// How long a message that must NOT arrive is waited for.
const SILENCE: Duration = Duration::from_millis(300);
/// How long the bus may take to be back after the proxy is restored.
const RECOVERY: Duration = Duration::from_secs(20);
/// Messages of the ordering case.
const ORDERED_MESSAGES: usize = 200;

/// What a bus case needs from the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusRequirement {
    /// Any bus plugin.
    Any,
    /// Options with a `url` the suite can route through a TCP proxy; the
    /// case gets three case timeouts.
    Url,
}

/// The signature of a bus case body.
pub type BusCaseFn = fn(Arc<BusContext>) -> BoxFuture<'static, CaseResult>;

/// One named case of the bus suite.
#[derive(Clone, Copy)]
pub struct BusCase {
    /// Unique snake_case name, e.g. `bus_publish_reaches_subscriber`.
    pub name: &'static str,
    /// One sentence saying what it checks.
    pub description: &'static str,
    /// What it needs.
    pub requirement: BusRequirement,
    /// The body.
    pub run: BusCaseFn,
}

impl fmt::Debug for BusCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BusCase").field("name", &self.name).finish()
    }
}

macro_rules! bus_case {
    ($function:ident, $requirement:ident, $description:literal) => {
        BusCase {
            name: stringify!($function),
            description: $description,
            requirement: BusRequirement::$requirement,
            run: |context| Box::pin($function(context)),
        }
    };
}

/// Every bus case, in run order.
pub fn all_bus_cases() -> &'static [BusCase] {
    static CASES: OnceLock<Vec<BusCase>> = OnceLock::new();
    CASES.get_or_init(|| {
        vec![
            bus_case!(
                bus_publish_reaches_subscriber,
                Any,
                "a message published on one bus reaches another's subscriber"
            ),
            bus_case!(bus_binary_payloads_arrive_intact, Any, "empty, non-UTF-8 and 1 MiB payloads arrive unchanged"),
            bus_case!(bus_order_is_preserved, Any, "200 messages from one publisher arrive complete and in order"),
            bus_case!(bus_every_subscriber_receives, Any, "two subscribers on two buses both receive a message"),
            bus_case!(bus_channels_are_independent, Any, "a message on one channel never reaches another channel"),
            bus_case!(bus_unsubscribe_stops_delivery, Any, "after unsubscribe nothing more arrives"),
            bus_case!(bus_own_messages_are_delivered, Any, "a bus receives its own messages (the host filters them)"),
            bus_case!(
                bus_disconnect_is_idempotent,
                Any,
                "a second disconnect succeeds, later calls return Disconnected"
            ),
            bus_case!(
                bus_resubscribes_after_connection_cut,
                Url,
                "after the connection is cut and restored, subscriptions deliver again"
            ),
        ]
    })
}

/// What a bus case works with: the plugin, the options, its own channel
/// names, and the buses it opened (disconnected after the case).
pub struct BusContext {
    plugin: Plugin,
    options_json: String,
    channel_base: String,
    buses: Mutex<Vec<Bus>>,
}

impl BusContext {
    pub(crate) fn new(plugin: Plugin, options_json: String, channel_base: String) -> Self {
        BusContext { plugin, options_json, channel_base, buses: Mutex::default() }
    }

    /// A channel name of this case: `<base>.<label>`.
    pub fn channel(&self, label: &str) -> String {
        format!("{}.{label}", self.channel_base)
    }

    /// A new bus with the target's options.
    pub async fn connect(&self) -> Result<Bus, Failure> {
        let options = self.options_json.clone();
        self.connect_with(&options).await
    }

    /// A new bus with `options_json`; disconnected after the case.
    pub async fn connect_with(&self, options_json: &str) -> Result<Bus, Failure> {
        let bus = self.plugin.create_bus(options_json).await.op("creating a bus")?;
        self.buses.lock().unwrap_or_else(|p| p.into_inner()).push(bus.clone());
        Ok(bus)
    }

    pub(crate) fn take_buses(&self) -> Vec<Bus> {
        std::mem::take(&mut *self.buses.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Messages received on one subscription.
struct Inbox {
    channel: String,
    receiver: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
}

impl Inbox {
    /// The next message, failing after [`WAIT`].
    async fn next(&mut self, what: &str) -> Result<Vec<u8>, Failure> {
        match tokio::time::timeout(WAIT, self.receiver.recv()).await {
            Ok(Some((channel, payload))) => {
                ensure_eq!(channel, self.channel.clone(), "the channel a message of {what} was delivered for");
                Ok(payload)
            }
            Ok(None) | Err(_) => Err(Failure::new(format!("{what} did not arrive within {WAIT:?}"))),
        }
    }

    /// Fails if anything arrives within [`SILENCE`].
    async fn expect_nothing(&mut self, why: &str) -> CaseResult {
        match tokio::time::timeout(SILENCE, self.receiver.recv()).await {
            Ok(Some((_, payload))) => {
                Err(Failure::new(format!("{why}, but a message arrived: {}", crate::cases::show_bytes(&payload))))
            }
            Ok(None) | Err(_) => Ok(()),
        }
    }
}

async fn subscribe(bus: &Bus, channel: &str) -> Result<Inbox, Failure> {
    let (sender, receiver) = mpsc::unbounded_channel();
    bus.subscribe(channel, move |channel: &str, payload: Vec<u8>| {
        let _ = sender.send((channel.to_string(), payload));
    })
    .await
    .op(format_args!("subscribe({channel:?})"))?;
    Ok(Inbox { channel: channel.to_string(), receiver })
}

async fn publish(bus: &Bus, channel: &str, payload: &[u8]) -> CaseResult {
    bus.publish(channel, payload.to_vec()).await.op(format_args!("publish on {channel:?}"))
}

async fn bus_publish_reaches_subscriber(cx: Arc<BusContext>) -> CaseResult {
    let (publisher, subscriber) = (cx.connect().await?, cx.connect().await?);
    let channel = cx.channel("round-trip");
    let mut inbox = subscribe(&subscriber, &channel).await?;
    publish(&publisher, &channel, b"hello").await?;
    ensure_eq!(inbox.next("the published message").await?, b"hello".to_vec(), "the payload received");
    inbox.expect_nothing("one message was published").await
}

async fn bus_binary_payloads_arrive_intact(cx: Arc<BusContext>) -> CaseResult {
    let (publisher, subscriber) = (cx.connect().await?, cx.connect().await?);
    let channel = cx.channel("binary");
    let mut inbox = subscribe(&subscriber, &channel).await?;
    let large: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let payloads: [(&str, Vec<u8>); 3] = [
        ("an empty payload", Vec::new()),
        ("a non-UTF-8 payload", vec![0, 0xff, 0xfe, b'\n', 0, 0xc3]),
        ("a 1 MiB payload", large),
    ];
    for (what, payload) in &payloads {
        publish(&publisher, &channel, payload).await?;
        let received = inbox.next(what).await?;
        ensure!(received == *payload, "{what} arrived changed: {}", crate::cases::show_bytes(&received));
    }
    Ok(())
}

async fn bus_order_is_preserved(cx: Arc<BusContext>) -> CaseResult {
    let (publisher, subscriber) = (cx.connect().await?, cx.connect().await?);
    let channel = cx.channel("order");
    let mut inbox = subscribe(&subscriber, &channel).await?;
    for index in 0..ORDERED_MESSAGES {
        publish(&publisher, &channel, index.to_string().as_bytes()).await?;
    }
    let mut received = Vec::with_capacity(ORDERED_MESSAGES);
    while received.len() < ORDERED_MESSAGES {
        match tokio::time::timeout(WAIT, inbox.receiver.recv()).await {
            Ok(Some((_, payload))) => received.push(String::from_utf8_lossy(&payload).into_owned()),
            _ => break,
        }
    }
    let expected: Vec<String> = (0..ORDERED_MESSAGES).map(|index| index.to_string()).collect();
    ensure!(
        received.len() == ORDERED_MESSAGES,
        "{} of {ORDERED_MESSAGES} messages arrived (first ones: {:?})",
        received.len(),
        &received[..received.len().min(10)]
    );
    if let Some(position) = received.iter().zip(&expected).position(|(got, want)| got != want) {
        return Err(Failure::new(format!(
            "messages arrived out of order: message #{position} was {:?}, expected {:?}",
            received[position], expected[position]
        )));
    }
    Ok(())
}

async fn bus_every_subscriber_receives(cx: Arc<BusContext>) -> CaseResult {
    let (publisher, first, second) = (cx.connect().await?, cx.connect().await?, cx.connect().await?);
    let channel = cx.channel("fan-out");
    let mut at_first = subscribe(&first, &channel).await?;
    let mut at_second = subscribe(&second, &channel).await?;
    publish(&publisher, &channel, b"to everyone").await?;
    ensure_eq!(at_first.next("the message at the first subscriber").await?, b"to everyone".to_vec(), "payload");
    ensure_eq!(at_second.next("the message at the second subscriber").await?, b"to everyone".to_vec(), "payload");
    Ok(())
}

async fn bus_channels_are_independent(cx: Arc<BusContext>) -> CaseResult {
    let (publisher, subscriber) = (cx.connect().await?, cx.connect().await?);
    let (first, second) = (cx.channel("first"), cx.channel("second"));
    let mut at_first = subscribe(&subscriber, &first).await?;
    let mut at_second = subscribe(&subscriber, &second).await?;
    publish(&publisher, &second, b"second").await?;
    ensure_eq!(at_second.next("the message on the second channel").await?, b"second".to_vec(), "payload");
    at_first.expect_nothing("nothing was published on the first channel").await
}

async fn bus_unsubscribe_stops_delivery(cx: Arc<BusContext>) -> CaseResult {
    let (publisher, leaving, staying) = (cx.connect().await?, cx.connect().await?, cx.connect().await?);
    let channel = cx.channel("unsubscribe");
    let mut at_leaving = subscribe(&leaving, &channel).await?;
    let mut at_staying = subscribe(&staying, &channel).await?;
    publish(&publisher, &channel, b"before").await?;
    ensure_eq!(at_leaving.next("the message before unsubscribe").await?, b"before".to_vec(), "payload");
    ensure_eq!(at_staying.next("the message before unsubscribe").await?, b"before".to_vec(), "payload");
    leaving.unsubscribe(&channel).await.op("unsubscribe")?;
    publish(&publisher, &channel, b"after").await?;
    // The subscriber that stayed proves the message went out.
    ensure_eq!(at_staying.next("the message after unsubscribe").await?, b"after".to_vec(), "payload");
    at_leaving.expect_nothing("the subscriber had unsubscribed").await
}

async fn bus_own_messages_are_delivered(cx: Arc<BusContext>) -> CaseResult {
    let bus = cx.connect().await?;
    let channel = cx.channel("own");
    let mut inbox = subscribe(&bus, &channel).await?;
    publish(&bus, &channel, b"mine").await?;
    ensure_eq!(inbox.next("the bus's own message").await?, b"mine".to_vec(), "payload");
    Ok(())
}

async fn bus_disconnect_is_idempotent(cx: Arc<BusContext>) -> CaseResult {
    let bus = cx.connect().await?;
    let channel = cx.channel("disconnect");
    bus.disconnect().await.op("first disconnect")?;
    tokio::time::timeout(WAIT, bus.disconnect())
        .await
        .map_err(|_| Failure::new(format!("a second disconnect did not return within {WAIT:?}")))?
        .op("second disconnect")?;
    match tokio::time::timeout(WAIT, bus.publish(&channel, b"late".to_vec())).await {
        Err(_) => return Err(Failure::new(format!("publish after disconnect did not return within {WAIT:?}"))),
        Ok(Ok(())) => return Err(Failure::new("publish after disconnect succeeded; expected a Disconnected error")),
        Ok(Err(error)) => {
            ensure_eq!(error.kind, ErrorKind::DISCONNECTED, "error kind of publish after disconnect ({error})")
        }
    }
    match tokio::time::timeout(WAIT, bus.subscribe(&channel, |_: &str, _: Vec<u8>| {})).await {
        Err(_) => Err(Failure::new(format!("subscribe after disconnect did not return within {WAIT:?}"))),
        Ok(Ok(())) => Err(Failure::new("subscribe after disconnect succeeded; expected a Disconnected error")),
        Ok(Err(error)) => {
            ensure_eq!(error.kind, ErrorKind::DISCONNECTED, "error kind of subscribe after disconnect ({error})");
            Ok(())
        }
    }
}

/// The target's options with `url` pointing at a new proxy in front of the
/// server it named, and the proxy.
pub(crate) fn proxied_options(options_json: &str) -> Result<(String, TcpProxy), Failure> {
    let mut options: serde_json::Value = serde_json::from_str(options_json)
        .map_err(|error| Failure::new(format!("the options are not JSON: {error}")))?;
    let url = options
        .get("url")
        .and_then(|url| url.as_str())
        .ok_or_else(|| Failure::new("the options have no `url` to route through a proxy"))?
        .to_string();
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url.as_str()));
    let (credentials, rest) = rest.rsplit_once('@').map_or(("", rest), |(credentials, rest)| (credentials, rest));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (address, path) = rest.split_at(end);
    let target = address.to_string();
    // The proxy owns a runtime, which cannot start inside this case's.
    let proxy = std::thread::spawn(move || TcpProxy::start(&target)).join().map_err(|payload| {
        Failure::new(format!("the proxy did not start: {}", crate::runner::panic_text(payload.as_ref())))
    })?;
    let credentials = if credentials.is_empty() { String::new() } else { format!("{credentials}@") };
    let scheme = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
    options["url"] = serde_json::Value::String(format!("{scheme}{credentials}{}{path}", proxy.address()));
    Ok((options.to_string(), proxy))
}

/// Drops the proxy (and its runtime) off the async context.
struct ProxyGuard(Option<TcpProxy>);

impl Drop for ProxyGuard {
    fn drop(&mut self) {
        if let Some(proxy) = self.0.take() {
            let _ = std::thread::spawn(move || drop(proxy)).join();
        }
    }
}

async fn bus_resubscribes_after_connection_cut(cx: Arc<BusContext>) -> CaseResult {
    let (options, proxy) = proxied_options(&cx.options_json)?;
    let proxy = ProxyGuard(Some(proxy));
    let cut = cx.connect_with(&options).await?;
    let direct = cx.connect().await?;
    let channel = cx.channel("reconnect");
    let mut inbox = subscribe(&cut, &channel).await?;
    publish(&direct, &channel, b"before").await?;
    ensure_eq!(inbox.next("the message before the cut").await?, b"before".to_vec(), "payload");

    let Some(handle) = proxy.0.as_ref() else { return Err(Failure::new("the proxy is gone")) };
    handle.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    handle.restore();

    // Messages published before the bus is back are lost (pub/sub keeps
    // nothing): publish until one arrives.
    let restored = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let payload = format!("after-{attempt}");
        publish(&direct, &channel, payload.as_bytes()).await?;
        if let Ok(Some((_, received))) = tokio::time::timeout(Duration::from_millis(500), inbox.receiver.recv()).await {
            ensure!(
                received.starts_with(b"after-"),
                "after the reconnection an unexpected message arrived: {}",
                crate::cases::show_bytes(&received)
            );
            return Ok(());
        }
        ensure!(
            restored.elapsed() < RECOVERY,
            "no message reached the subscription within {RECOVERY:?} after the connection was restored \
             ({attempt} published): the bus did not reconnect and resubscribe"
        );
    }
}
