//! The NATS bus plugin loaded like the host loads it: messages between two
//! bus instances, unsubscribe, disconnect.

use bento::{Bus, ErrorKind, Plugin};
use bento_testkit::{plugin_path, require, Service};
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

async fn bus(url: &str) -> Bus {
    let plugin = Plugin::load(plugin_path("bento-bus-nats")).expect("plugin loads");
    let options = serde_json::json!({ "url": url }).to_string();
    plugin.create_bus(&options).await.expect("bus connects")
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    format!("bento-test.{name}.{}.{nanos}", std::process::id())
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

#[tokio::test]
async fn messages_reach_every_subscriber_and_stop_after_unsubscribe() {
    let Some(url) = require(Service::Nats, "nats bus round trip") else { return };
    let (a, b) = (bus(&url).await, bus(&url).await);
    let channel = unique("round-trip");
    let mut at_a = collect(&a, &channel).await;
    let mut at_b = collect(&b, &channel).await;

    a.publish(&channel, b"\x00binary\xffpayload".to_vec()).await.expect("publish");
    let expected = (channel.clone(), b"\x00binary\xffpayload".to_vec());
    assert_eq!(tokio::time::timeout(WAIT, at_b.recv()).await.expect("b receives"), Some(expected.clone()));
    // NATS echoes to the publisher too; the host filters by sender id.
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

#[tokio::test]
async fn channels_are_independent() {
    let Some(url) = require(Service::Nats, "nats bus channels") else { return };
    let (a, b) = (bus(&url).await, bus(&url).await);
    let (first, second) = (unique("first"), unique("second"));
    let mut at_first = collect(&b, &first).await;
    let mut at_second = collect(&b, &second).await;
    a.publish(&second, b"2".to_vec()).await.expect("publish");
    assert_eq!(tokio::time::timeout(WAIT, at_second.recv()).await.expect("second").unwrap().0, second);
    assert!(tokio::time::timeout(Duration::from_millis(200), at_first.recv()).await.is_err());
    a.disconnect().await.unwrap();
    b.disconnect().await.unwrap();
}

#[tokio::test]
async fn unreachable_server_fails_to_connect() {
    let plugin = Plugin::load(plugin_path("bento-bus-nats")).expect("plugin loads");
    // Port 1 on loopback: nothing listens there.
    let options = r#"{"url":"nats://127.0.0.1:1","connection_timeout_ms":500}"#;
    let error = plugin.create_bus(options).await.expect_err("no server");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
}

#[tokio::test]
async fn unknown_option_is_named() {
    let plugin = Plugin::load(plugin_path("bento-bus-nats")).expect("plugin loads");
    let error = plugin.create_bus(r#"{"urll":"nats://x"}"#).await.expect_err("unknown option");
    assert!(error.to_string().contains("urll"), "{error}");
}

#[tokio::test]
async fn channel_with_whitespace_is_refused() {
    let Some(url) = require(Service::Nats, "nats bus subject check") else { return };
    let a = bus(&url).await;
    let error = a.subscribe("bentocache.notifications:my store", |_: &str, _: Vec<u8>| {}).await.expect_err("space");
    assert_eq!(error.kind, ErrorKind::INVALID_KEY);
    a.disconnect().await.unwrap();
}
