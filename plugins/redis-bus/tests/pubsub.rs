//! The Redis bus plugin loaded like the host loads it: messages between two
//! bus instances, unsubscribe, disconnect. The scenarios are shared with the
//! other bus plugins: `bento_testkit::bus_scenarios`.

use bento_testkit::bus_scenarios::{self, BusTarget};
use bento_testkit::Service;

const TARGET: BusTarget =
    BusTarget { name: "redis", plugin: "bento-bus-redis", service: Service::Redis, scheme: "redis", separator: ':' };

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
