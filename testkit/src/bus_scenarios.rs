//! Scenarios every bus plugin runs against its real server, so the Redis and
//! NATS bus tests only say which plugin, server and URL scheme to use.
//!
//! Each scenario loads the plugin like the host does (`bento::Plugin`), and
//! prints a SKIP line (see [`require`]) when the server is unreachable.

use crate::{plugin_path, require, Service, TcpProxy};
use bento::bus::{BusMessage, BusNode, BusNodeOptions, Published, RetryQueueOptions};
use bento::{Bus, ErrorKind, Plugin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long a message may take to arrive in the pub/sub scenarios.
const WAIT: Duration = Duration::from_secs(5);
/// How long the outage scenario waits for reconnects, flushes and messages.
const OUTAGE_WAIT: Duration = Duration::from_secs(15);

/// Which bus plugin the scenarios run against.
#[derive(Debug, Clone, Copy)]
pub struct BusTarget {
    /// Short name for SKIP lines, e.g. `"redis"` (as in "redis bus outage").
    pub name: &'static str,
    /// The plugin's name for [`crate::plugin_path`], e.g. `"bento-bus-redis"`.
    pub plugin: &'static str,
    /// The shared server the bus talks to.
    pub service: Service,
    /// URL scheme of the bus's `url` option, e.g. `"redis"` or `"nats"`.
    pub scheme: &'static str,
    /// Separator of the parts of a unique channel name (`':'` for Redis,
    /// `'.'` for NATS subjects).
    pub separator: char,
}

impl BusTarget {
    fn load(&self) -> Plugin {
        Plugin::load(plugin_path(self.plugin)).expect("plugin loads")
    }

    /// A bus of this plugin connected to `url` with default options.
    pub async fn connect(&self, url: &str) -> Bus {
        let options = serde_json::json!({ "url": url }).to_string();
        self.load().create_bus(&options).await.expect("bus connects")
    }

    fn unique(&self, name: &str) -> String {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
        let sep = self.separator;
        format!("bento-test{sep}{name}{sep}{}{sep}{nanos}", std::process::id())
    }
}

async fn collect(bus: &Bus, channel: &str) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let (sender, receiver) = mpsc::unbounded_channel();
    bus.subscribe(channel, move |channel: &str, payload: Vec<u8>| {
        let _ = sender.send((channel.to_string(), payload));
    })
    .await
    .expect("subscribe");
    receiver
}

/// Messages (binary payloads) reach every subscriber, the publisher
/// included; after `unsubscribe` nothing more arrives; `disconnect` is
/// idempotent and a publish after it fails with `DISCONNECTED`.
pub async fn messages_reach_every_subscriber_and_stop_after_unsubscribe(target: BusTarget) {
    let Some(url) = require(target.service, &format!("{} bus round trip", target.name)) else { return };
    let (a, b) = (target.connect(&url).await, target.connect(&url).await);
    let channel = target.unique("round-trip");
    let mut at_a = collect(&a, &channel).await;
    let mut at_b = collect(&b, &channel).await;

    a.publish(&channel, b"\x00binary\xffpayload".to_vec()).await.expect("publish");
    let expected = (channel.clone(), b"\x00binary\xffpayload".to_vec());
    assert_eq!(tokio::time::timeout(WAIT, at_b.recv()).await.expect("b receives"), Some(expected.clone()));
    // The server echoes to the publisher too; the host filters by sender id.
    assert_eq!(tokio::time::timeout(WAIT, at_a.recv()).await.expect("a receives"), Some(expected));

    b.unsubscribe(&channel).await.expect("unsubscribe");
    a.publish(&channel, b"after".to_vec()).await.expect("publish");
    assert_eq!(tokio::time::timeout(WAIT, at_a.recv()).await.expect("a still receives").unwrap().1, b"after");
    // Unsubscribing drops the handler, which closes the channel: nothing more arrives.
    let late = tokio::time::timeout(Duration::from_millis(300), at_b.recv()).await;
    assert!(!matches!(late, Ok(Some(_))), "b unsubscribed but received {late:?}");

    a.disconnect().await.expect("disconnect");
    a.disconnect().await.expect("disconnect again");
    let error = a.publish(&channel, vec![1]).await.expect_err("publish after disconnect");
    assert_eq!(error.kind, ErrorKind::DISCONNECTED);
    b.disconnect().await.expect("disconnect b");
}

/// A message on one channel never reaches a subscriber of another.
pub async fn channels_are_independent(target: BusTarget) {
    let Some(url) = require(target.service, &format!("{} bus channels", target.name)) else { return };
    let (a, b) = (target.connect(&url).await, target.connect(&url).await);
    let (first, second) = (target.unique("first"), target.unique("second"));
    let mut at_first = collect(&b, &first).await;
    let mut at_second = collect(&b, &second).await;
    a.publish(&second, b"2".to_vec()).await.expect("publish");
    assert_eq!(tokio::time::timeout(WAIT, at_second.recv()).await.expect("second").unwrap().0, second);
    assert!(tokio::time::timeout(Duration::from_millis(200), at_first.recv()).await.is_err());
    a.disconnect().await.unwrap();
    b.disconnect().await.unwrap();
}

/// Connecting to a port nobody listens on fails, naming the address.
pub async fn unreachable_server_fails_to_connect(target: BusTarget) {
    let plugin = target.load();
    // Port 1 on loopback: nothing listens there.
    let options = format!(r#"{{"url":"{}://127.0.0.1:1","connection_timeout_ms":500}}"#, target.scheme);
    let error = plugin.create_bus(&options).await.expect_err("no server");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
}

/// A misspelt option is refused and named in the error.
pub async fn unknown_option_is_named(target: BusTarget) {
    let plugin = target.load();
    let error = plugin.create_bus(&format!(r#"{{"urll":"{}://x"}}"#, target.scheme)).await.expect_err("unknown option");
    assert!(error.to_string().contains("urll"), "{error}");
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < OUTAGE_WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The connection of one node is cut (through a proxy this scenario
/// controls): its publishes queue in the host's `BusNode`, and after the
/// proxy is restored the bus resubscribes by itself, runs the reconnect
/// handlers and the queue flushes. Call it from a plain `#[test]`: it builds
/// its own runtime, because the proxy owns one and must start outside it.
pub fn cut_connection_queues_then_resubscribes_and_flushes(target: BusTarget) {
    let Some(url) = require(target.service, &format!("{} bus outage", target.name)) else { return };
    // The proxy owns a runtime, so it starts outside the test's runtime.
    let proxy = TcpProxy::start(&target.service.address());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(outage(target, &url, &proxy));
}

async fn outage(target: BusTarget, url: &str, proxy: &TcpProxy) {
    let plugin = target.load();
    let options = |url: &str| {
        serde_json::json!({ "url": url, "connection_timeout_ms": 1000, "response_timeout_ms": 1000,
                            "reconnect_max_delay_ms": 200, "health_check_interval_ms": 500 })
        .to_string()
    };
    let proxied = format!("{}://{}", target.scheme, proxy.address());
    let behind_proxy = plugin.create_bus(&options(&proxied)).await.expect("connect");
    let direct = plugin.create_bus(&options(url)).await.expect("connect");

    let reconnects = Arc::new(AtomicUsize::new(0));
    let counter = reconnects.clone();
    behind_proxy.on_reconnect(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let node_options = || BusNodeOptions {
        retry_queue: RetryQueueOptions { retry_interval: Duration::from_millis(200), ..Default::default() },
        ..Default::default()
    };
    let cut_node = BusNode::new(behind_proxy, node_options());
    let direct_node = BusNode::new(direct, node_options());

    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let store = format!("outage-{}-{nanos}", std::process::id());
    let (to_cut, mut at_cut) = mpsc::unbounded_channel();
    cut_node.subscribe(&store, move |message| drop(to_cut.send(message))).await.expect("subscribe");
    let (to_direct, mut at_direct) = mpsc::unbounded_channel();
    direct_node.subscribe(&store, move |message| drop(to_direct.send(message))).await.expect("subscribe");

    let before = BusMessage::set("bentocache", vec!["before".into()]);
    assert_eq!(cut_node.publish(&store, &before).await.unwrap(), Published::Sent);
    assert_eq!(tokio::time::timeout(OUTAGE_WAIT, at_direct.recv()).await.unwrap(), Some(before));

    proxy.cut();
    let during = BusMessage::delete("bentocache", vec!["during".into()]);
    // The first publish may still find the dying connection; either way it
    // must not be lost.
    let mut outcome = cut_node.publish(&store, &during).await.unwrap();
    let start = Instant::now();
    while outcome == Published::Sent && start.elapsed() < OUTAGE_WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
        outcome = cut_node.publish(&store, &during).await.unwrap();
    }
    assert_eq!(outcome, Published::Queued);
    assert!(cut_node.queue_len() >= 1);

    proxy.restore();
    eventually("the reconnect handler", || reconnects.load(Ordering::SeqCst) >= 1).await;
    eventually("the queue to flush", || cut_node.queue_len() == 0).await;
    let mut seen_during = false;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(2), at_direct.recv()).await {
        seen_during |= message == during;
        if seen_during {
            break;
        }
    }
    assert!(seen_during, "the queued message reached the other node");

    // Resubscribed automatically: a message published after the restore arrives.
    let after = BusMessage::expire("bentocache", vec!["after".into()]);
    direct_node.publish(&store, &after).await.unwrap();
    let received = loop {
        let message = tokio::time::timeout(OUTAGE_WAIT, at_cut.recv()).await.expect("resubscribed").expect("open");
        if message == after {
            break message;
        }
    };
    assert_eq!(received.keys, ["after"]);
    assert_eq!(direct_node.stats().published, 1, "received messages are never re-published");

    cut_node.disconnect().await.unwrap();
    direct_node.disconnect().await.unwrap();
}
