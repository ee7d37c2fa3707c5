//! The subscriber on the host's runtime (`io: "auto"`): received messages
//! (this bus's own echoes included) do not wake the plugin's threads, and
//! a host runtime shutting down under the subscriber does not end the
//! subscription.

use bento::{Bus, Plugin};
#[cfg(target_os = "linux")]
use bento_testkit::threads::plugin_thread_switches;
use bento_testkit::{plugin_path, require, Service};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("test runtime")
}

fn channel(test: &str) -> String {
    format!("bento-redis-bus-host-io-{test}-{}", std::process::id())
}

fn create(runtime: &Runtime, url: &str, io: &str) -> Bus {
    let plugin = Plugin::load(plugin_path("bento-bus-redis")).expect("the redis bus plugin loads");
    let options = serde_json::json!({
        "url": url,
        "connection_timeout_ms": 500,
        "response_timeout_ms": 500,
        "reconnect_max_delay_ms": 200,
        "io": io,
    })
    .to_string();
    runtime.block_on(plugin.create_bus(&options)).expect("bus connects")
}

/// Subscribe `bus` to `channel`, delivering payloads into the receiver.
async fn inbox(bus: &Bus, channel: &str) -> mpsc::UnboundedReceiver<Vec<u8>> {
    let (sender, receiver) = mpsc::unbounded_channel();
    bus.subscribe(channel, move |_channel: &str, payload: Vec<u8>| {
        let _ = sender.send(payload);
    })
    .await
    .expect("subscribe");
    receiver
}

/// Publish `index` on `channel` and wait for it to come back.
async fn round_trip(bus: &Bus, channel: &str, received: &mut mpsc::UnboundedReceiver<Vec<u8>>, index: usize) {
    bus.publish(channel, index.to_be_bytes().to_vec()).await.expect("publish");
    let echo = tokio::time::timeout(Duration::from_secs(3), received.recv()).await;
    assert_eq!(echo.expect("the echo arrives").expect("open"), index.to_be_bytes());
}

/// How often the plugin's threads woke up while a bus with `"io": io`
/// published `messages` messages one after the other and received each
/// back (its own echo, as every write of a host does).
#[cfg(target_os = "linux")]
fn plugin_wakeups(url: &str, io: &str, messages: usize) -> u64 {
    let runtime = multi_thread();
    let bus = create(&runtime, url, io);
    let channel = channel(&format!("wakeups-{io}"));
    runtime.block_on(async {
        let mut received = inbox(&bus, &channel).await;
        for index in 0..10 {
            round_trip(&bus, &channel, &mut received, index).await;
        }
        let before = plugin_thread_switches();
        for index in 0..messages {
            round_trip(&bus, &channel, &mut received, index).await;
        }
        let wakeups = plugin_thread_switches() - before;
        bus.disconnect().await.expect("disconnect");
        wakeups
    })
}

#[cfg(target_os = "linux")]
#[test]
fn publishing_and_receiving_on_the_host_runtime_do_not_wake_the_plugin_threads() {
    let Some(url) = require(Service::Redis, "redis bus host I/O test") else { return };
    const MESSAGES: usize = 300;
    let on_plugin = plugin_wakeups(&url, "plugin", MESSAGES);
    let on_host = plugin_wakeups(&url, "auto", MESSAGES);
    eprintln!("plugin-thread wake-ups for {MESSAGES} publishes and echoes: io=plugin {on_plugin}, io=auto {on_host}");
    // On the plugin runtime each PUBLISH and each message received wakes
    // a plugin thread; on the host's, only the plugin's timer wheel may.
    // Other tests of this binary may wake them meanwhile, hence the margin.
    assert!(on_plugin >= MESSAGES as u64 / 2, "io=plugin: only {on_plugin} plugin-thread wake-ups");
    assert!(on_host * 5 < on_plugin, "io=auto: {on_host} plugin-thread wake-ups vs {on_plugin} with io=plugin");
}

#[test]
fn the_subscription_survives_the_host_runtime_it_was_started_on() {
    let Some(url) = require(Service::Redis, "redis bus host I/O test") else { return };
    let channel = channel("shutdown");
    let first = multi_thread();
    let subscriber = create(&first, &url, "auto");
    let mut received = first.block_on(inbox(&subscriber, &channel));
    // The subscriber's task lives on `first`: shutting it down drops it,
    // and it carries on from the plugin's runtime.
    drop(first);
    let second = multi_thread();
    let publisher = create(&second, &url, "auto");
    let started = Instant::now();
    second.block_on(async {
        // Messages published before the subscriber reconnected are lost
        // (Redis pub/sub keeps nothing): publish until one arrives.
        loop {
            assert!(started.elapsed() < Duration::from_secs(10), "no message arrived after the shutdown");
            publisher.publish(&channel, b"after".to_vec()).await.expect("publish");
            if let Ok(message) = tokio::time::timeout(Duration::from_millis(100), received.recv()).await {
                assert_eq!(message.expect("open"), b"after");
                break;
            }
        }
        subscriber.disconnect().await.expect("disconnect");
        publisher.disconnect().await.expect("disconnect");
    });
}
