//! The write pipeline (SPEC §5): the one place where a change reaches the
//! tiers — L1 effect, L2 effect, bus notification — used by `set`,
//! `set_many`, factory results, grace backoff, `delete*`, `expire`,
//! `clear` and tag invalidations; plus the copy of an L2 hit into L1 that
//! the read pipeline makes, and the auto-recovery replay.
//!
//! * Writes of one full key hold its write order (`ordering.rs`) across L1
//!   and L2, so both tiers end with the same last write.
//! * A `set` notifies the bus once L2 took it (or there is no L2); when L2
//!   failed, the write is queued for auto-recovery and notifies after its
//!   replay.
//! * Invalidations always apply to L1, notify the bus and emit their event,
//!   even when L2 fails (as BentoCache does); the L2 part is queued and
//!   replayed, so a deleted value never comes back.

use crate::bus::MessageKind;
use crate::cache::{Cache, CacheValue};
use crate::entry::{ms_after, now_ms, Entry};
use crate::error::Error;
use crate::events::CacheEvent;
use crate::l1::{physical_expiration, L1Entry, NEVER};
use crate::l2::{ExpireError, L2Shared, Reached};
use crate::options::Settings;
use crate::ordering::Snapshot;
use crate::recovery::{PendingOp, Target};
use crate::serializer;
use crate::store_core::StoreCore;
use bento_plugin_api::DriverError;
use smallvec::SmallVec;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often (ms) at most writes measure the L1 for its gauges.
const L1_GAUGE_PERIOD_MS: u64 = 100;

/// How often the auto-recovery queue is retried while it holds operations
/// (each retry goes through the circuit breaker and `l2_timeout`).
pub const AUTO_RECOVERY_INTERVAL: Duration = Duration::from_secs(1);

/// The logical expiration of a value written at `now` under `settings`:
/// its TTL plus a random extra in `[0, jitter_max]` (`None` = forever).
pub(crate) fn logical_expiration(now: u64, settings: &Settings) -> Option<u64> {
    let ttl = settings.ttl?;
    let jitter = match settings.jitter_max {
        Some(max) if !max.is_zero() => {
            Duration::from_millis(rand::random_range(0..=u64::try_from(max.as_millis()).unwrap_or(u64::MAX)))
        }
        _ => Duration::ZERO,
    };
    Some(ms_after(now, ttl.saturating_add(jitter)))
}

/// One entry to write, with its physical expiration (ms, `None` = forever).
pub(crate) struct Write<'a, T> {
    pub key: &'a str,
    pub entry: Entry<T>,
    pub physical_expiration: Option<u64>,
}

impl<'a, T> Write<'a, T> {
    /// `entry` at `key`, kept physically for its logical TTL + `grace`.
    pub fn new(key: &'a str, entry: Entry<T>, grace: Option<Duration>) -> Self {
        let physical_expiration = entry.logical_expiration.map(|at| ms_after(at, grace.unwrap_or_default()));
        Write { key, entry, physical_expiration }
    }
}

/// The entries of one write: most writes have one, kept inline.
pub(crate) type Writes<'a, T> = SmallVec<[Write<'a, T>; 1]>;

/// An invalidation of keys or of the whole namespace.
pub(crate) enum Invalidation<'a> {
    Delete(&'a [&'a str]),
    Expire(&'a str),
    Clear,
}

/// Whether a write's bus notification waits for L2.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notify {
    /// A value: notify once L2 has it (now, or after its replay).
    AfterL2,
    /// An invalidation (a tag timestamp): notify now, and again after a
    /// replay so instances that re-read L2 meanwhile see it.
    Now,
}

impl Cache {
    /// Write `writes` to L1, then L2 (unless `skip_l2_write`; one batched
    /// call for several), then notify the bus (unless `skip_bus_notify`).
    /// Returns whether L2 (or L1 alone) accepted them; with L2 errors
    /// suppressed, a failed L2 write returns `Ok(false)` and is queued for
    /// auto-recovery. A failure that reaches the caller is not replayed
    /// (unless it is a tag invalidation, `Notify::Now`).
    pub(crate) async fn write_entries<T: CacheValue>(
        &self,
        writes: Writes<'_, T>,
        settings: &Settings,
        notify: Notify,
    ) -> Result<bool, Error> {
        let core = &self.inner.core;
        let now = now_ms();
        let write_l2 = self.inner.l2.as_ref().filter(|_| !settings.skip_l2_write);
        let measure = self.inner.l1.as_ref().is_some_and(|l1| l1.measures_size());
        let mut encoded: SmallVec<[Option<Vec<u8>>; 1]> = SmallVec::with_capacity(writes.len());
        for write in &writes {
            let bytes = if write_l2.is_some() || measure {
                Some(
                    serializer::encode(&*core.serializer, &write.entry)
                        .map_err(|source| Error::Serialization { key: write.key.to_string(), source })?,
                )
            } else {
                None
            };
            if !write.entry.tags.is_empty() {
                let lifetime = write.physical_expiration.map_or(u64::MAX, |at| at.saturating_sub(now));
                core.tagged_entry_written(lifetime);
            }
            encoded.push(bytes);
        }
        let full_keys: SmallVec<[String; 1]> = writes.iter().map(|write| self.full_key(write.key)).collect();
        let guards = core.write_order(&full_keys).await;

        if let Some(l1) = &self.inner.l1 {
            for (write, bytes) in writes.iter().zip(&encoded) {
                let entry = &write.entry;
                let copy = L1Entry::decoded(
                    entry.value.clone(),
                    entry.created_at,
                    entry.logical_expiration.unwrap_or(NEVER),
                    &entry.tags,
                );
                let weight = bytes.as_ref().map_or(0, |bytes| bytes.len() as u64);
                l1.set(write.key, copy, write.physical_expiration.unwrap_or(NEVER), now, weight).await;
            }
        }
        let tell_bus = !settings.skip_bus_notify;
        let owes_notify = tell_bus && notify == Notify::AfterL2;
        let mut reached = Reached::Now(true);
        let mut failure = None;
        if let Some(l2) = write_l2 {
            // Replayed later only when the caller is not told it failed,
            // or when it is an invalidation (which must never be lost).
            let queue = settings.suppress_l2_errors || notify == Notify::Now;
            let timeout = settings.l2_timeout;
            let result = match (writes.as_slice(), encoded.as_mut_slice()) {
                ([write], [bytes]) => {
                    let bytes = bytes.take().unwrap_or_default();
                    l2.set(write.key, bytes, write.physical_expiration, tell_bus, timeout, queue).await
                }
                _ => {
                    let items: Vec<(String, Vec<u8>, Option<u64>)> = writes
                        .iter()
                        .zip(encoded)
                        .map(|(write, bytes)| {
                            (write.key.to_string(), bytes.unwrap_or_default(), write.physical_expiration)
                        })
                        .collect();
                    l2.set_many(items, tell_bus, timeout, queue).await
                }
            };
            match result {
                Ok(answer) => reached = answer,
                Err(source) => failure = Some(source),
            }
        }
        full_keys.iter().for_each(|key| core.order.changed(key));
        drop(guards);
        self.measure_l1();

        let l2_has_it = failure.is_none() && reached != Reached::Queued;
        if tell_bus && (l2_has_it || !owes_notify) {
            core.publish(MessageKind::Set, self.prefix(), writes.iter().map(|write| write.key.to_string())).await;
        }
        if let Some(source) = failure {
            self.l2_failed(writes.first().map_or("", |write| write.key), source, settings)?;
            return Ok(false);
        }
        Ok(match reached {
            Reached::Now(stored) => stored,
            // L2 has not taken it yet: the replay will.
            Reached::Queued => false,
        })
    }

    /// Update the L1 gauges (entries, weight) after a change, at most every
    /// [`L1_GAUGE_PERIOD_MS`] (a change within the period is counted by the
    /// next measure).
    fn measure_l1(&self) {
        let measured_at = &self.inner.core.l1_measured_at;
        let (now, last) = (now_ms(), measured_at.load(Ordering::Relaxed));
        if now.saturating_sub(last) < L1_GAUGE_PERIOD_MS
            || measured_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        if let Some((entries, weight)) = self.inner.l1.as_ref().and_then(|l1| l1.usage()) {
            let metrics = &self.inner.core.metrics;
            metrics.l1_entries.set(entries as f64);
            metrics.l1_weight.set(weight as f64);
        }
    }

    /// Record `keys` as written (metric and event).
    pub(crate) fn written(&self, keys: impl IntoIterator<Item = impl AsRef<str>>) {
        for key in keys {
            self.inner.core.metrics.writes.increment(1);
            self.emit(|store, key| CacheEvent::Written { store, key }, key.as_ref());
        }
    }

    /// Apply an invalidation: L1, then L2, then the bus and the event —
    /// the last two even when L2 failed (its part is then queued for
    /// auto-recovery). Returns how many keys existed (0 for a clear).
    pub(crate) async fn invalidate(&self, change: Invalidation<'_>, settings: &Settings) -> Result<u64, Error> {
        let core = &self.inner.core;
        let timeout = settings.l2_timeout;
        let mut failure: Option<(String, DriverError)> = None;
        // The serializer could not re-encode an expired L2 entry: reported
        // as such, after the bus and events (L1 is expired already).
        let mut unencodable: Option<Error> = None;
        let (kind, keys, existed) = match change {
            Invalidation::Delete(keys) => {
                let full_keys: Vec<String> = keys.iter().map(|key| self.full_key(key)).collect();
                let guards = core.write_order(&full_keys).await;
                let mut existed = 0;
                if let Some(l1) = &self.inner.l1 {
                    for key in keys {
                        existed += u64::from(l1.delete(key).await);
                    }
                }
                if let Some(l2) = &self.inner.l2 {
                    let result = match keys {
                        [only] => l2.delete(only, timeout).await.map(|found| u64::from(found.unwrap_or(false))),
                        _ => {
                            let owned: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
                            l2.delete_many(&owned, timeout).await
                        }
                    };
                    match result {
                        Ok(count) => existed = existed.max(count),
                        Err(source) => failure = Some((keys[0].to_string(), source)),
                    }
                }
                full_keys.iter().for_each(|key| core.order.changed(key));
                drop(guards);
                let keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
                (MessageKind::Delete, keys, existed)
            }
            Invalidation::Expire(key) => {
                let full_key = self.full_key(key);
                let guard = if core.is_tiered() { Some(core.order.lock(&full_key).await) } else { None };
                let now = now_ms();
                let mut found = match &self.inner.l1 {
                    Some(l1) => l1.expire(key, now, settings.grace).await,
                    None => false,
                };
                if let Some(l2) = &self.inner.l2 {
                    match l2.expire(key, now, settings.grace, timeout).await {
                        Ok(hit) => found |= hit.unwrap_or(false),
                        Err(ExpireError::Driver(source)) => failure = Some((key.to_string(), source)),
                        Err(ExpireError::Serialization(source)) => {
                            unencodable = Some(Error::Serialization { key: key.to_string(), source })
                        }
                    }
                }
                core.order.changed(&full_key);
                drop(guard);
                (MessageKind::Expire, vec![key.to_string()], u64::from(found))
            }
            Invalidation::Clear => {
                core.order.changed_all();
                if let Some(l1) = &self.inner.l1 {
                    l1.clear().await;
                }
                if let Some(l2) = &self.inner.l2 {
                    if let Err(source) = l2.clear(timeout).await {
                        failure = Some((self.prefix().to_string(), source));
                    }
                    // A read that copied an older L2 value into L1 while L2
                    // was being cleared is cleared with it.
                    core.order.changed_all();
                    if let Some(l1) = &self.inner.l1 {
                        l1.clear().await;
                    }
                }
                (MessageKind::Clear, Vec::new(), 0)
            }
        };
        self.measure_l1();
        match kind {
            MessageKind::Clear => {
                core.publish(kind, self.prefix(), keys).await;
                core.events
                    .emit(|| CacheEvent::Cleared { store: core.name.clone(), namespace: self.inner.namespace.clone() });
            }
            _ => {
                core.publish(kind, self.prefix(), keys.clone()).await;
                for key in &keys {
                    if kind == MessageKind::Delete {
                        core.metrics.deletes.increment(1);
                        self.emit(|store, key| CacheEvent::Deleted { store, key }, key);
                    } else {
                        self.emit(|store, key| CacheEvent::Expired { store, key }, key);
                    }
                }
            }
        }
        if let Some((key, source)) = failure {
            self.l2_failed(&key, source, settings)?;
        }
        if let Some(error) = unencodable {
            return Err(error);
        }
        Ok(existed)
    }

    /// Copy an L2 hit (or a tag timestamp read from L2) into L1, unless a
    /// write, bus message or clear changed the key since `snapshot` — then
    /// what was read may be outdated, and L1 is left to the writer.
    pub(crate) async fn write_back(
        &self,
        key: &str,
        copy: L1Entry,
        snapshot: Snapshot,
        grace: Option<Duration>,
        weight: usize,
    ) {
        let Some(l1) = &self.inner.l1 else { return };
        let order = &self.inner.core.order;
        let _guard = order.lock(&self.full_key(key)).await;
        if !order.unchanged(&snapshot) {
            return;
        }
        let expires = physical_expiration(copy.logical_expiration, grace);
        l1.set(key, copy, expires, now_ms(), weight as u64).await;
        // A bus message (which does not take the write order) may have
        // arrived between the check and the copy.
        if !order.unchanged(&snapshot) {
            l1.delete(key).await;
        }
    }
}

/// Start the store's auto-recovery task (no-op without an L2, with
/// auto-recovery disabled, or outside a tokio runtime). It ends when the
/// store is dropped.
pub(crate) fn start_auto_recovery(core: &Arc<StoreCore>) {
    let Some(shared) = core.l2_shared.clone() else { return };
    if !shared.recovery.enabled() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let store = Arc::downgrade(core);
    tokio::spawn(async move {
        loop {
            if shared.recovery.len() == 0 {
                // Woken by a queued operation; look now and then whether
                // the store is gone.
                let _ = tokio::time::timeout(Duration::from_secs(5), shared.recovery.queued.notified()).await;
                if store.strong_count() == 0 {
                    break;
                }
                continue;
            }
            tokio::time::sleep(AUTO_RECOVERY_INTERVAL).await;
            let Some(core) = store.upgrade() else { break };
            replay_pending(&core, &shared).await;
        }
    });
}

/// Replay queued operations oldest first, each under its key's write
/// order, until the queue is empty or L2 fails again.
async fn replay_pending(core: &StoreCore, shared: &L2Shared) {
    while let Some(item) = shared.recovery.front() {
        let guard = match &item.target {
            Target::Key(full_key) if core.is_tiered() => Some(core.order.lock(full_key).await),
            _ => None,
        };
        if let Err(error) = shared.replay(&item.op, &*item.driver, &item.key).await {
            tracing::debug!(store = %core.name, %error, pending = shared.recovery.len(), "L2 still failing; replay later");
            return;
        }
        shared.recovery.complete(&item);
        match &item.target {
            Target::Key(full_key) => core.order.changed(full_key),
            Target::Prefix(_) => core.order.changed_all(),
        }
        drop(guard);
        tracing::debug!(store = %core.name, target = ?item.target, "auto-recovery replayed an L2 operation");
        if let PendingOp::Set { notify: true, .. } = item.op {
            core.publish(MessageKind::Set, &item.namespace, vec![item.key.clone()]).await;
        }
    }
}
