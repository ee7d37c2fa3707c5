//! The NATS bus plugin loaded like the host loads it: messages between two
//! bus instances, unsubscribe, disconnect. The scenarios are shared with the
//! other bus plugins: `bento_testkit::bus_scenarios`.

use bento_testkit::bus_scenarios::{self, BusTarget};
use bento_testkit::Service;

const TARGET: BusTarget =
    BusTarget { name: "nats", plugin: "bento-bus-nats", service: Service::Nats, scheme: "nats", separator: '.' };

#[tokio::test]
async fn messages_reach_every_subscriber_and_stop_after_unsubscribe() {
    bus_scenarios::messages_reach_every_subscriber_and_stop_after_unsubscribe(TARGET).await;
}

#[tokio::test]
async fn channels_are_independent() {
    bus_scenarios::channels_are_independent(TARGET).await;
}

#[tokio::test]
async fn unreachable_server_fails_to_connect() {
    bus_scenarios::unreachable_server_fails_to_connect(TARGET).await;
}

#[tokio::test]
async fn unknown_option_is_named() {
    bus_scenarios::unknown_option_is_named(TARGET).await;
}

#[tokio::test]
async fn channel_with_whitespace_is_refused() {
    let Some(url) = bento_testkit::require(Service::Nats, "nats bus subject check") else { return };
    let a = TARGET.connect(&url).await;
    let error = a.subscribe("bentocache.notifications:my store", |_: &str, _: Vec<u8>| {}).await.expect_err("space");
    assert_eq!(error.kind, bento::ErrorKind::INVALID_KEY);
    a.disconnect().await.unwrap();
}
