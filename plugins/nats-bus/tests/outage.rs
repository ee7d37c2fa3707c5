//! The NATS connection of one node is cut (through a proxy this test
//! controls): its publishes queue in the host's `BusNode`, and after the
//! proxy is restored the bus resubscribes by itself, runs the reconnect
//! handlers and the queue flushes.

use bento::bus::{BusMessage, BusNode, BusNodeOptions, Published, RetryQueueOptions};
use bento::Plugin;
use bento_testkit::{plugin_path, require, Service, TcpProxy};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn cut_connection_queues_then_resubscribes_and_flushes() {
    let Some(url) = require(Service::Nats, "nats bus outage") else { return };
    // The proxy owns a runtime, so it starts outside the test's runtime.
    let proxy = TcpProxy::start(&Service::Nats.address());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(scenario(&url, &proxy));
}

async fn scenario(url: &str, proxy: &TcpProxy) {
    let plugin = Plugin::load(plugin_path("bento-bus-nats")).expect("plugin loads");
    let options = |url: &str| {
        serde_json::json!({ "url": url, "connection_timeout_ms": 1000, "response_timeout_ms": 1000,
                            "reconnect_max_delay_ms": 200, "health_check_interval_ms": 500 })
        .to_string()
    };
    let behind_proxy = plugin.create_bus(&options(&format!("nats://{}", proxy.address()))).await.expect("connect");
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
    assert_eq!(tokio::time::timeout(WAIT, at_direct.recv()).await.unwrap(), Some(before));

    proxy.cut();
    let during = BusMessage::delete("bentocache", vec!["during".into()]);
    // The first publish may still find the dying connection; either way it
    // must not be lost.
    let mut outcome = cut_node.publish(&store, &during).await.unwrap();
    let start = Instant::now();
    while outcome == Published::Sent && start.elapsed() < WAIT {
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
        let message = tokio::time::timeout(WAIT, at_cut.recv()).await.expect("resubscribed").expect("open");
        if message == after {
            break message;
        }
    };
    assert_eq!(received.keys, ["after"]);
    assert_eq!(direct_node.stats().published, 1, "received messages are never re-published");

    cut_node.disconnect().await.unwrap();
    direct_node.disconnect().await.unwrap();
}
