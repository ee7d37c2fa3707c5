//! `metrics` facade counters of one store, registered once at build time
//! (install your recorder, e.g. the Prometheus exporter, before building
//! `Bento`). Names: `bento_hits_total{store,layer}`,
//! `bento_graced_hits_total{store}`, `bento_misses_total{store}`,
//! `bento_writes_total{store}`, `bento_deletes_total{store}`,
//! `bento_bus_messages_total{store,direction}`,
//! `bento_factory_seconds{store}` (histogram),
//! `bento_decode_failures_total{store,layer}`,
//! `bento_l2_call_seconds{store,operation,outcome}` (histogram),
//! `bento_l2_breaker_open{store}` (gauge, 0/1),
//! `bento_l1_entries{store}` and `bento_l1_weight{store}` (gauges, updated
//! by writes, at most every 100 ms), `bento_auto_recovery_queue_length{store}` (gauge) and
//! `bento_auto_recovery_dropped_total{store}`,
//! `bento_bus_retry_queue_length{store}` (gauge, after each publish).
//!
//! Without the `metrics` feature the same calls go to [`noop`]: types and
//! macros of the same shape whose methods are empty and inline, so every
//! metric call compiles to nothing.

#[cfg(feature = "metrics")]
pub(crate) use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
#[cfg(not(feature = "metrics"))]
pub(crate) use noop::{counter, gauge, histogram, Counter, Gauge, Histogram};

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
    pub decode_failures_l1: Counter,
    pub decode_failures_l2: Counter,
    pub l1_entries: Gauge,
    pub l1_weight: Gauge,
    pub bus_retry_queue: Gauge,
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
            factory_seconds: histogram!("bento_factory_seconds", "store" => store.clone()),
            decode_failures_l1: counter!("bento_decode_failures_total", "store" => store.clone(), "layer" => "l1"),
            decode_failures_l2: counter!("bento_decode_failures_total", "store" => store.clone(), "layer" => "l2"),
            l1_entries: gauge!("bento_l1_entries", "store" => store.clone()),
            l1_weight: gauge!("bento_l1_weight", "store" => store.clone()),
            bus_retry_queue: gauge!("bento_bus_retry_queue_length", "store" => store),
        }
    }
}

/// The L2 operations whose latency histograms are registered up front.
const L2_OPERATIONS: [&str; 12] = [
    "get",
    "get_many",
    "pull",
    "set",
    "set_many",
    "has",
    "delete",
    "delete_many",
    "clear",
    "prune",
    "try_lock",
    "unlock",
];

/// Per-operation L2 instruments of one store (latency by outcome, breaker).
pub(crate) struct L2Metrics {
    store: String,
    /// `bento_l2_call_seconds` of each of [`L2_OPERATIONS`], ok then error:
    /// registered once, so a call records without building a key.
    calls: Vec<[Histogram; 2]>,
    pub breaker_open: Gauge,
}

impl L2Metrics {
    pub fn store(&self) -> &str {
        &self.store
    }

    pub fn new(store: &str) -> Self {
        let calls = L2_OPERATIONS.iter().map(|&operation| [true, false].map(|ok| call_histogram(store, operation, ok)));
        L2Metrics {
            store: store.to_string(),
            calls: calls.collect(),
            breaker_open: gauge!("bento_l2_breaker_open", "store" => store.to_string()),
        }
    }

    /// Record one L2 call of `operation` that took `seconds`.
    pub fn call(&self, operation: &'static str, ok: bool, seconds: f64) {
        match L2_OPERATIONS.iter().position(|known| *known == operation) {
            Some(index) => self.calls[index][usize::from(!ok)].record(seconds),
            None => call_histogram(&self.store, operation, ok).record(seconds),
        }
    }
}

fn call_histogram(store: &str, operation: &'static str, ok: bool) -> Histogram {
    let outcome = if ok { "ok" } else { "error" };
    histogram!("bento_l2_call_seconds", "store" => store.to_string(), "operation" => operation, "outcome" => outcome)
}

/// Stand-ins for the `metrics` facade when the `metrics` feature is off.
#[cfg(not(feature = "metrics"))]
mod noop {
    /// A counter that counts nothing.
    #[derive(Clone, Copy)]
    pub(crate) struct Counter;

    impl Counter {
        #[inline(always)]
        pub fn increment(&self, _value: u64) {}
    }

    /// A gauge that records nothing.
    #[derive(Clone, Copy)]
    pub(crate) struct Gauge;

    impl Gauge {
        #[inline(always)]
        pub fn set(&self, _value: f64) {}
    }

    /// A histogram that records nothing.
    #[derive(Clone, Copy)]
    pub(crate) struct Histogram;

    impl Histogram {
        #[inline(always)]
        pub fn record(&self, _value: f64) {}
    }

    // The label values are captured by a closure that is never called: the
    // variables they name count as used, and nothing is evaluated.
    macro_rules! counter {
        ($name:expr $(, $key:expr => $value:expr)* $(,)?) => {{
            let _ = || ($name, $(($key, $value)),*);
            $crate::telemetry::Counter
        }};
    }

    macro_rules! gauge {
        ($name:expr $(, $key:expr => $value:expr)* $(,)?) => {{
            let _ = || ($name, $(($key, $value)),*);
            $crate::telemetry::Gauge
        }};
    }

    macro_rules! histogram {
        ($name:expr $(, $key:expr => $value:expr)* $(,)?) => {{
            let _ = || ($name, $(($key, $value)),*);
            $crate::telemetry::Histogram
        }};
    }

    pub(crate) use {counter, gauge, histogram};
}
