//! The NATS connection of one node is cut (through a proxy this test
//! controls): its publishes queue in the host's `BusNode`, and after the
//! proxy is restored the bus resubscribes by itself, runs the reconnect
//! handlers and the queue flushes. The scenario is shared with the other bus
//! plugins: `bento_testkit::bus_scenarios`.

use bento_testkit::bus_scenarios::{self, BusTarget};
use bento_testkit::Service;

const TARGET: BusTarget =
    BusTarget { name: "nats", plugin: "bento-bus-nats", service: Service::Nats, scheme: "nats", separator: '.' };

#[test]
fn cut_connection_queues_then_resubscribes_and_flushes() {
    bus_scenarios::cut_connection_queues_then_resubscribes_and_flushes(TARGET);
}
