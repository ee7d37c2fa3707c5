//! [`Cache`]: the handle applications call — a store's root or one of its
//! namespaces — and what every verb needs from it: its tiers at this
//! namespace, its keys, its settings, and how outcomes are observed
//! (metrics, events, the L2 error policy). How tiers are read is in
//! `read.rs`, how they are written in `write.rs`; the verbs live in
//! `verbs.rs` and `get_or_set.rs`.

use crate::error::Error;
use crate::events::{CacheEvent, Layer};
use crate::l1::L1;
use crate::l2::L2;
use crate::options::{CacheOptions, Settings};
use crate::store_core::StoreCore;
use bento_plugin_api::{DriverError, Prefix};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;

/// How many keys' decode failures are remembered as already logged.
const DECODE_WARNINGS_KEPT: usize = 10_000;

/// What a cached value must be: serializable for L2, cloneable out of L1.
/// `Option<T>` is a value like any other, so `None` can be cached.
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> CacheValue for T {}

/// A handle on a store or one of its namespaces. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<CacheInner>,
}

pub(crate) struct CacheInner {
    pub core: Arc<StoreCore>,
    /// Full key prefix, e.g. `bentocache:posts` (locks and bus).
    pub prefix: Prefix,
    /// Namespace path relative to the store prefix (`""` at the root).
    pub namespace: String,
    pub l1: Option<L1>,
    pub l2: Option<L2>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("store", &self.inner.core.name).field("prefix", &self.inner.prefix).finish()
    }
}

impl Cache {
    pub(crate) fn root(core: Arc<StoreCore>, l1: Option<L1>, l2: Option<L2>) -> Cache {
        let prefix = Prefix::new(&core.settings.prefix);
        Cache { inner: Arc::new(CacheInner { core, prefix, namespace: String::new(), l1, l2 }) }
    }

    /// A handle on the nested namespace `name` (keys `prefix:name:key`),
    /// sharing tiers, locks and options.
    pub fn namespace(&self, name: &str) -> Result<Cache, Error> {
        let inner = &self.inner;
        let l2 = match &inner.l2 {
            Some(l2) => Some(l2.namespace(name).map_err(|source| Error::L2 { key: name.to_string(), source })?),
            None => None,
        };
        let l1 = match &inner.l1 {
            Some(l1) => Some(l1.namespace(name).map_err(Error::Driver)?),
            None => None,
        };
        let namespace =
            if inner.namespace.is_empty() { name.to_string() } else { format!("{}:{name}", inner.namespace) };
        Ok(Cache {
            inner: Arc::new(CacheInner {
                core: inner.core.clone(),
                prefix: inner.prefix.namespace(name),
                namespace,
                l1,
                l2,
            }),
        })
    }

    /// The store's name.
    pub fn store_name(&self) -> &str {
        &self.inner.core.name
    }

    /// The full key prefix of this handle, e.g. `bentocache:posts`.
    pub fn prefix(&self) -> &str {
        self.inner.prefix.as_str()
    }

    /// The resolved store options.
    pub fn settings(&self) -> &Settings {
        &self.inner.core.settings
    }

    pub(crate) fn settings_with(&self, op: &CacheOptions) -> Result<Settings, Error> {
        op.validate()?;
        Ok(self.inner.core.settings.with(op))
    }

    /// The key as events report it: relative to the store prefix.
    pub(crate) fn event_key(&self, key: &str) -> String {
        if self.inner.namespace.is_empty() {
            key.to_string()
        } else {
            format!("{}:{key}", self.inner.namespace)
        }
    }

    pub(crate) fn full_key(&self, key: &str) -> String {
        self.inner.prefix.key(key)
    }

    // ---- observations -------------------------------------------------

    /// The span of one operation: named after it for OpenTelemetry
    /// (`otel.name`), with the store, namespace, and the key — or, unless
    /// the store sets `record_keys`, a stable hash of the full key. The
    /// read pipeline records `layer` and `outcome` (hit, graced, miss);
    /// [`Cache::traced`] records `result`.
    pub(crate) fn op_span(&self, operation: &'static str, key: Option<&str>) -> tracing::Span {
        let core = &self.inner.core;
        let span = tracing::debug_span!(
            "bento",
            otel.name = operation,
            store = %core.name,
            namespace = %self.inner.namespace,
            key = tracing::field::Empty,
            key_hash = tracing::field::Empty,
            layer = tracing::field::Empty,
            outcome = tracing::field::Empty,
            result = tracing::field::Empty,
        );
        if let (Some(key), false) = (key, span.is_disabled()) {
            if core.settings.record_keys {
                span.record("key", key);
            } else {
                span.record("key_hash", format_args!("{:016x}", key_hash(&self.full_key(key))));
            }
        }
        span
    }

    /// Run `body` in the span of `operation` on `key`, recording whether
    /// it succeeded. A plain function returning a combinator, not an
    /// `async fn`: an async fn would hold `body` twice in its state (the
    /// argument, then the awaited value), and verbs' futures are boxed per
    /// call. The traced variant is boxed too, so that its two spans do not
    /// widen the untraced one.
    pub(crate) fn traced<'a, R: 'a, F: std::future::Future<Output = Result<R, Error>> + Send + 'a>(
        &self,
        operation: &'static str,
        key: Option<&str>,
        body: F,
    ) -> impl std::future::Future<Output = Result<R, Error>> + Send + 'a {
        use futures::future::{Either, FutureExt};
        let span = self.op_span(operation, key);
        // Nobody listens (the common case): no span to enter on every poll.
        if span.is_disabled() {
            return Either::Left(body);
        }
        let recorder = span.clone();
        Either::Right(
            tracing::Instrument::instrument(body, span)
                .map(move |result| {
                    recorder.record("result", if result.is_ok() { "ok" } else { "error" });
                    result
                })
                .boxed(),
        )
    }

    /// Count a hit (metrics), and report it to tracing and to event
    /// listeners when there are any. Inlined: on the L1 hit path, with
    /// nobody tracing or listening, it is two loads and the counter's
    /// increment; the span and the event are built out of line.
    #[inline]
    pub(crate) fn record_hit(&self, key: &str, layer: Layer, graced: bool) {
        let core = &self.inner.core;
        match (graced, layer) {
            (true, _) => core.metrics.graced_hits.increment(1),
            (false, Layer::L1) => core.metrics.l1_hits.increment(1),
            (false, Layer::L2) => core.metrics.l2_hits.increment(1),
        }
        if tracing::level_enabled!(tracing::Level::DEBUG) || core.events.is_listening() {
            self.report_hit(key, layer, graced);
        }
    }

    #[cold]
    #[inline(never)]
    fn report_hit(&self, key: &str, layer: Layer, graced: bool) {
        let core = &self.inner.core;
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            let span = tracing::Span::current();
            span.record("layer", if layer == Layer::L1 { "l1" } else { "l2" });
            span.record("outcome", if graced { "graced" } else { "hit" });
        }
        core.events.emit(|| CacheEvent::Hit { store: core.name.clone(), key: self.event_key(key), layer, graced });
    }

    pub(crate) fn record_miss(&self, key: &str) {
        let core = &self.inner.core;
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            tracing::Span::current().record("outcome", "miss");
        }
        core.metrics.misses.increment(1);
        core.events.emit(|| CacheEvent::Miss { store: core.name.clone(), key: self.event_key(key) });
    }

    pub(crate) fn emit(&self, make: impl FnOnce(Arc<str>, String) -> CacheEvent, key: &str) {
        let core = &self.inner.core;
        core.events.emit(|| make(core.name.clone(), self.event_key(key)));
    }

    /// The decode policy: a value that does not read as the requested type
    /// fails the read under `strict_decoding`; otherwise it is a miss,
    /// logged once per key, counted and reported as an event.
    pub(crate) fn decode_failed(
        &self,
        key: &str,
        layer: Layer,
        error: crate::error::BoxError,
        settings: &Settings,
    ) -> Result<(), Error> {
        if settings.strict_decoding {
            return Err(Error::Serialization { key: key.to_string(), source: error });
        }
        let core = &self.inner.core;
        match layer {
            Layer::L1 => core.metrics.decode_failures_l1.increment(1),
            Layer::L2 => core.metrics.decode_failures_l2.increment(1),
        }
        let full_key = self.full_key(key);
        let first = {
            let mut warned = core.decode_warned.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if warned.len() >= DECODE_WARNINGS_KEPT {
                warned.clear();
            }
            warned.insert(full_key)
        };
        if first {
            tracing::warn!(store = %core.name, key, ?layer, %error, "value does not decode as the requested type: read as a miss");
        }
        core.events.emit(|| CacheEvent::DecodeFailed {
            store: core.name.clone(),
            key: self.event_key(key),
            layer,
            error: error.to_string(),
        });
        Ok(())
    }

    /// The L2 error policy: log it; return it unless suppressed.
    pub(crate) fn l2_failed(&self, key: &str, source: DriverError, settings: &Settings) -> Result<(), Error> {
        if settings.suppress_l2_errors {
            tracing::warn!(store = %self.inner.core.name, key, error = %source, "L2 error suppressed");
            Ok(())
        } else {
            Err(Error::L2 { key: key.to_string(), source })
        }
    }
}

/// A stable 64-bit hash of a full key (FNV-1a), so spans of different
/// instances can be correlated without carrying the key itself.
fn key_hash(full_key: &str) -> u64 {
    full_key.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
