//! What a `get_or_set` factory receives: the key, the graced (stale) entry
//! when there is one — in every mode, stale-while-revalidate included — and
//! knobs to change how its result is cached.

use crate::entry::Entry;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A factory failure built with [`FactoryContext::fail`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct FactoryFailed {
    /// Why the factory failed.
    pub message: String,
}

/// How the factory's result is written; both default to false.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactoryWriteOptions {
    /// Write L1 only.
    pub skip_l2_write: bool,
    /// Do not notify the bus.
    pub skip_bus_notify: bool,
}

/// What the factory asked for, read back by the cache after it returns.
#[derive(Debug, Default, Clone)]
pub(crate) struct FactoryRequests {
    pub ttl: Option<Option<Duration>>,
    pub tags: Option<Vec<String>>,
    pub skip: bool,
    pub skip_l2_write: bool,
    pub skip_bus_notify: bool,
}

/// Handed to a `get_or_set` factory. Cheap to clone; all clones share the
/// requests made through them.
#[derive(Debug, Clone)]
pub struct FactoryContext<T> {
    key: Arc<str>,
    graced: Option<Arc<Entry<T>>>,
    requests: Arc<Mutex<FactoryRequests>>,
}

impl<T> FactoryContext<T> {
    pub(crate) fn new(key: Arc<str>, graced: Option<Entry<T>>) -> Self {
        FactoryContext { key, graced: graced.map(Arc::new), requests: Default::default() }
    }

    fn update(&self, change: impl FnOnce(&mut FactoryRequests)) {
        change(&mut self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
    }

    pub(crate) fn requests(&self) -> FactoryRequests {
        self.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The key being computed (relative to the cache handle).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The logically expired entry still within its grace period, if any.
    pub fn graced_entry(&self) -> Option<&Entry<T>> {
        self.graced.as_deref()
    }

    /// Cache the result for `ttl` instead of the configured TTL.
    pub fn set_ttl(&self, ttl: Duration) {
        self.update(|r| r.ttl = Some(Some(ttl)));
    }

    /// Cache the result forever.
    pub fn set_ttl_forever(&self) {
        self.update(|r| r.ttl = Some(None));
    }

    /// Tag the result (replaces tags given to the operation).
    pub fn set_tags<I: IntoIterator<Item = S>, S: Into<String>>(&self, tags: I) {
        let tags = tags.into_iter().map(Into::into).collect();
        self.update(|r| r.tags = Some(tags));
    }

    /// Do not cache what the factory returns; it is handed to this caller
    /// only (return e.g. `None` for an `Option` value).
    pub fn skip(&self) {
        self.update(|r| r.skip = true);
    }

    /// An error to return from the factory: `return Err(ctx.fail("down").into())`.
    pub fn fail(&self, message: impl Into<String>) -> FactoryFailed {
        FactoryFailed { message: message.into() }
    }

    /// Change how the result is written, e.g.
    /// `ctx.set_options(FactoryWriteOptions { skip_l2_write: true, ..Default::default() })`.
    pub fn set_options(&self, options: FactoryWriteOptions) {
        self.update(|r| {
            r.skip_l2_write = options.skip_l2_write;
            r.skip_bus_notify = options.skip_bus_notify;
        });
    }
}
