//! `metrics` facade counters of one store, registered once at build time
//! (install your recorder, e.g. the Prometheus exporter, before building
//! `Bento`). Names: `bento_hits_total{store,layer}`,
//! `bento_graced_hits_total{store}`, `bento_misses_total{store}`,
//! `bento_writes_total{store}`, `bento_deletes_total{store}`,
//! `bento_bus_messages_total{store,direction}`,
//! `bento_factory_seconds{store}` (histogram).

use metrics::{counter, histogram, Counter, Histogram};

pub(crate) struct StoreMetrics {
    pub l1_hits: Counter,
    pub l2_hits: Counter,
    pub graced_hits: Counter,
    pub misses: Counter,
    pub writes: Counter,
    pub deletes: Counter,
    pub bus_published: Counter,
    pub bus_received: Counter,
    pub factory_seconds: Histogram,
}

impl StoreMetrics {
    pub fn new(store: &str) -> Self {
        let store = store.to_string();
        StoreMetrics {
            l1_hits: counter!("bento_hits_total", "store" => store.clone(), "layer" => "l1"),
            l2_hits: counter!("bento_hits_total", "store" => store.clone(), "layer" => "l2"),
            graced_hits: counter!("bento_graced_hits_total", "store" => store.clone()),
            misses: counter!("bento_misses_total", "store" => store.clone()),
            writes: counter!("bento_writes_total", "store" => store.clone()),
            deletes: counter!("bento_deletes_total", "store" => store.clone()),
            bus_published: counter!("bento_bus_messages_total", "store" => store.clone(), "direction" => "published"),
            bus_received: counter!("bento_bus_messages_total", "store" => store.clone(), "direction" => "received"),
            factory_seconds: histogram!("bento_factory_seconds", "store" => store),
        }
    }
}
