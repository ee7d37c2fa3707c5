//! The L2 layer: any driver behind the small [`L2Driver`] trait (a loaded
//! plugin [`Driver`] implements it; tests wrap one to count calls), wrapped
//! in [`L2`], the one way the cache manager reaches it. Every call passes
//! through the wrapper, which owns the per-call time limit (`l2_timeout`),
//! the circuit breaker (skip L2 for a while after it failed) and
//! auto-recovery (failed writes and invalidations are queued and replayed,
//! and reads of a key with a pending operation answer from the queue).

use crate::driver::{Driver, DriverBytes};
use crate::entry::{ms_after, now_ms, Entry};
use crate::recovery::{AutoRecovery, PendingOp, PendingRead, Target};
use crate::serializer::{self, Serializer};
use crate::telemetry::L2Metrics;
use async_trait::async_trait;
use bento_plugin_api::{Capabilities, DriverError, ErrorKind, Prefix, SetItem};
use futures::future::Either;
use futures::TryFutureExt;
use std::any::Any;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tracing::field::Empty;
use tracing::Instrument;

/// What the cache manager needs from a remote store. Keys are relative to
/// the handle's prefix; values are opaque bytes.
#[async_trait]
pub trait L2Driver: Send + Sync + 'static {
    /// A handle on `prefix:namespace` sharing the connection.
    fn namespace(&self, namespace: &str) -> Result<Arc<dyn L2Driver>, DriverError>;
    /// The value of `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError>;
    /// Values of `keys`, in order (one round trip where the backend can).
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, DriverError>;
    /// Store `value` for `ttl` (`None` = forever).
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<bool, DriverError>;
    /// Store many entries.
    async fn set_many(&self, items: Vec<SetItem>) -> Result<bool, DriverError>;
    /// True iff the key exists.
    async fn has(&self, key: &str) -> Result<bool, DriverError>;
    /// The value of `key`, deleted atomically: of concurrent pulls of one
    /// key exactly one gets it.
    async fn pull(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError>;
    /// True iff the key existed.
    async fn delete(&self, key: &str) -> Result<bool, DriverError>;
    /// How many of `keys` existed.
    async fn delete_many(&self, keys: &[String]) -> Result<u64, DriverError>;
    /// Remove everything under the prefix.
    async fn clear(&self) -> Result<(), DriverError>;
    /// Remove expired entries.
    async fn prune(&self) -> Result<(), DriverError>;
    /// Close the connection.
    async fn disconnect(&self) -> Result<(), DriverError>;
    /// What the driver declares beyond the base contract (e.g. a backend
    /// lock). Default: nothing.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }
    /// Take the backend lock `key` for `owner` for `ttl` (see
    /// `bento_plugin_api::CacheDriver::try_lock`). Default: unsupported.
    async fn try_lock(&self, _key: &str, _owner: &str, _ttl: Duration) -> Result<bool, DriverError> {
        Err(DriverError::unsupported("this driver declares no lock"))
    }
    /// Release the backend lock `key` if `owner` holds it. Default:
    /// unsupported.
    async fn unlock(&self, _key: &str, _owner: &str) -> Result<bool, DriverError> {
        Err(DriverError::unsupported("this driver declares no lock"))
    }
}

#[async_trait]
impl L2Driver for Driver {
    fn namespace(&self, namespace: &str) -> Result<Arc<dyn L2Driver>, DriverError> {
        Ok(Arc::new(Driver::namespace(self, namespace)?))
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError> {
        Driver::get(self, key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, DriverError> {
        Driver::get_many(self, keys).await
    }
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Option<Duration>) -> Result<bool, DriverError> {
        Driver::set(self, key, value, ttl).await
    }
    async fn set_many(&self, items: Vec<SetItem>) -> Result<bool, DriverError> {
        Driver::set_many(self, items).await
    }
    async fn has(&self, key: &str) -> Result<bool, DriverError> {
        Driver::has(self, key).await
    }
    async fn pull(&self, key: &str) -> Result<Option<Vec<u8>>, DriverError> {
        Driver::pull(self, key).await
    }
    async fn delete(&self, key: &str) -> Result<bool, DriverError> {
        Driver::delete(self, key).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<u64, DriverError> {
        Driver::delete_many(self, keys).await
    }
    async fn clear(&self) -> Result<(), DriverError> {
        Driver::clear(self).await
    }
    async fn prune(&self) -> Result<(), DriverError> {
        Driver::prune(self).await
    }
    async fn disconnect(&self) -> Result<(), DriverError> {
        Driver::disconnect(self).await
    }
    fn capabilities(&self) -> Capabilities {
        Driver::capabilities(self)
    }
    async fn try_lock(&self, key: &str, owner: &str, ttl: Duration) -> Result<bool, DriverError> {
        Driver::try_lock(self, key, owner, ttl).await
    }
    async fn unlock(&self, key: &str, owner: &str) -> Result<bool, DriverError> {
        Driver::unlock(self, key, owner).await
    }
}

/// After an L2 error, L2 is skipped for `duration` (if set). Shared by every
/// namespace of a store.
#[derive(Debug, Default)]
pub(crate) struct CircuitBreaker {
    duration: Option<Duration>,
    open_until_ms: AtomicU64,
}

impl CircuitBreaker {
    pub fn new(duration: Option<Duration>) -> Self {
        CircuitBreaker { duration, open_until_ms: AtomicU64::new(0) }
    }

    pub fn is_open(&self, now: u64) -> bool {
        now < self.open_until_ms.load(Ordering::Relaxed)
    }

    /// [`CircuitBreaker::is_open`] at this moment; a breaker that never
    /// opened (the common case) needs no clock read.
    pub fn is_open_now(&self) -> bool {
        self.open_until_ms.load(Ordering::Relaxed) != 0 && self.is_open(now_ms())
    }

    pub fn record_failure(&self, now: u64) {
        if let Some(duration) = self.duration {
            self.open_until_ms.store(ms_after(now, duration), Ordering::Relaxed);
        }
    }
}

/// What every namespace of a store's L2 shares.
pub(crate) struct L2Shared {
    pub breaker: CircuitBreaker,
    pub metrics: L2Metrics,
    pub recovery: AutoRecovery,
    /// The store's `l2_timeout`, for replays.
    pub timeout: Option<Duration>,
    pub serializer: Arc<dyn Serializer>,
}

impl L2Shared {
    /// Run one driver call (`name` for spans and metrics) through the
    /// breaker and the time limit.
    pub async fn call<R>(
        &self,
        name: &'static str,
        timeout: Option<Duration>,
        operation: impl Future<Output = Result<R, DriverError>>,
    ) -> Result<R, DriverError> {
        if self.breaker.is_open_now() {
            return Err(DriverError::new(ErrorKind::CONNECTION, "L2 circuit breaker is open"));
        }
        let span = tracing::debug_span!("bento.l2", store = %self.metrics.store(), operation = name, outcome = Empty);
        let started = quanta::Instant::now();
        // Nobody listens (the common case): no span to enter on every poll.
        let result = match span.is_disabled() {
            true => bounded(operation, timeout).await,
            // Boxed: only traced calls pay for the span's room in the future.
            false => Box::pin(bounded(operation, timeout).instrument(span.clone())).await,
        };
        self.metrics.call(name, result.is_ok(), started.elapsed().as_secs_f64());
        match &result {
            Ok(_) => {
                span.record("outcome", "ok");
                self.metrics.breaker_open.set(0.0);
            }
            Err(error) => {
                span.record("outcome", tracing::field::display(error));
                self.breaker.record_failure(now_ms());
                if self.breaker.duration.is_some() {
                    self.metrics.breaker_open.set(1.0);
                }
            }
        }
        result
    }

    /// Replay one queued operation (through the breaker and time limit).
    pub async fn replay(&self, op: &PendingOp, driver: &dyn L2Driver, key: &str) -> Result<(), DriverError> {
        let timeout = self.timeout;
        match op {
            PendingOp::Set { bytes, physical_expiration, .. } => match ttl_until(*physical_expiration, now_ms()) {
                Some(ttl) => self.call("set", timeout, driver.set(key, bytes.clone(), ttl)).await.map(drop),
                // Physically gone meanwhile: what L2 holds is older still.
                None => self.call("delete", timeout, driver.delete(key)).await.map(drop),
            },
            PendingOp::Delete => self.call("delete", timeout, driver.delete(key)).await.map(drop),
            PendingOp::Expire { at, grace } => match self.expire(driver, key, *at, *grace, timeout).await {
                Ok(_) => Ok(()),
                Err(ExpireError::Driver(error)) => Err(error),
                // Replaying again would fail the same way: give up on it.
                Err(ExpireError::Serialization(error)) => {
                    tracing::warn!(store = %self.metrics.store(), key, %error, "dropping a queued expire: the entry does not re-encode");
                    Ok(())
                }
            },
            PendingOp::Clear => self.call("clear", timeout, driver.clear()).await,
        }
    }

    /// Logically expire the entry at `key` from `at`, keeping its physical
    /// TTL (dropping it when there is no grace to serve it in).
    async fn expire(
        &self,
        driver: &dyn L2Driver,
        key: &str,
        at: u64,
        grace: Option<Duration>,
        timeout: Option<Duration>,
    ) -> Result<bool, ExpireError> {
        let Some(bytes) = self.call("get", timeout, driver.get(key)).await? else { return Ok(false) };
        let serializer = &*self.serializer;
        let Ok(mut entry) = serializer::decode::<serde_json::Value>(serializer, &bytes) else { return Ok(false) };
        if entry.is_expired(at) {
            return Ok(true);
        }
        let Some(grace) = grace else {
            // Without grace an expired entry can never be served: drop it.
            self.call("delete", timeout, driver.delete(key)).await?;
            return Ok(true);
        };
        let physical_expiration = entry.logical_expiration.map(|old| ms_after(old, grace));
        entry.logical_expiration = Some(at);
        let Some(ttl) = ttl_until(physical_expiration, now_ms()) else {
            self.call("delete", timeout, driver.delete(key)).await?;
            return Ok(true);
        };
        let bytes = serializer::encode(serializer, &entry).map_err(ExpireError::Serialization)?;
        self.call("set", timeout, driver.set(key, bytes, ttl)).await?;
        Ok(true)
    }
}

/// `operation`, failing with a timeout error after `limit`. The timer is
/// armed only when the operation does not answer on its first poll (an
/// answer already there needs no timer-wheel entry), from that first poll;
/// without a tokio runtime there is no timer to bound it with.
async fn bounded<R>(
    operation: impl Future<Output = Result<R, DriverError>>,
    limit: Option<Duration>,
) -> Result<R, DriverError> {
    let Some(limit) = limit else { return operation.await };
    let mut operation = pin!(operation);
    let mut timer = None;
    let mut armed = false;
    poll_fn(|context| {
        if let Poll::Ready(result) = operation.as_mut().poll(context) {
            return Poll::Ready(result);
        }
        if !armed {
            armed = true;
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                timer = Some(spare_timers::Armed::new(runtime.id(), limit));
            }
        }
        match timer.as_mut().map(|timer| timer.poll(context)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(DriverError::timeout(format_args!(
                "L2 call did not answer within {limit:?} (l2_timeout)"
            )))),
            // Pending, or no timer (no runtime): wait for the operation.
            _ => Poll::Pending,
        }
    })
    .await
}

/// The timers of finished L2 calls, kept by each thread for its next
/// calls. A kept timer stays in tokio's timer wheel, and re-arming it for
/// a later deadline (the next call's, with the same limit) is one atomic
/// compare-and-swap, where a new timer costs its creation, a wheel
/// insertion, and a removal when dropped; every network call arms one.
/// A kept timer that expires unused wakes the task that last used it,
/// once, for nothing (tasks allow spurious wake-ups), and until then holds
/// that task's waker and its runtime's handle.
mod spare_timers {
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;
    use tokio::runtime::Id;
    use tokio::time::{Instant, Sleep};

    /// Timers kept per thread: about the calls it has in flight at once.
    const KEPT: usize = 256;

    /// What tokio's `sleep` bounds a delay to (about 30 years), so that a
    /// deadline never overflows.
    const LONGEST: Duration = Duration::from_secs(86_400 * 365 * 30);

    /// The kept timers of one thread, all of one runtime (a thread may
    /// enter several runtimes in turn; a timer belongs to one).
    struct Spare {
        runtime: Option<Id>,
        timers: Vec<Pin<Box<Sleep>>>,
    }

    thread_local! {
        static SPARE: RefCell<Spare> = const { RefCell::new(Spare { runtime: None, timers: Vec::new() }) };
    }

    /// A timer armed for one call, given back to its thread's spares when
    /// the call ends (answered, failed or dropped). Boxed: a timer is a
    /// tenth of a kilobyte, and the call's future is part of every read's,
    /// which is boxed per call.
    pub(super) struct Armed {
        runtime: Id,
        timer: Option<Pin<Box<Sleep>>>,
    }

    impl Armed {
        /// A timer of the current runtime (`runtime`) that fires `limit`
        /// from now.
        pub fn new(runtime: Id, limit: Duration) -> Armed {
            let deadline = Instant::now() + limit.min(LONGEST);
            let (kept, stale) = SPARE
                .try_with(|spare| {
                    let mut spare = spare.borrow_mut();
                    if spare.runtime == Some(runtime) {
                        (spare.timers.pop(), Vec::new())
                    } else {
                        spare.runtime = Some(runtime);
                        (None, std::mem::take(&mut spare.timers))
                    }
                })
                .unwrap_or_default();
            // Another runtime's timers, dropped out of the borrow.
            drop(stale);
            let timer = match kept {
                Some(mut timer) => {
                    timer.as_mut().reset(deadline);
                    timer
                }
                None => Box::pin(tokio::time::sleep_until(deadline)),
            };
            Armed { runtime, timer: Some(timer) }
        }

        pub fn poll(&mut self, context: &mut Context<'_>) -> Poll<()> {
            match &mut self.timer {
                Some(timer) => timer.as_mut().poll(context),
                None => Poll::Pending,
            }
        }
    }

    impl Drop for Armed {
        fn drop(&mut self) {
            let Some(timer) = self.timer.take() else { return };
            let runtime = self.runtime;
            // What is not kept (a full thread, another runtime's, a thread
            // being torn down) is dropped out of the borrow.
            let _dropped = SPARE.try_with(|spare| {
                let mut spare = spare.borrow_mut();
                if spare.runtime == Some(runtime) && spare.timers.len() < KEPT {
                    spare.timers.push(timer);
                    None
                } else {
                    Some(timer)
                }
            });
        }
    }
}

/// Why an L2 `expire` failed: the driver, or the serializer re-encoding the
/// expired entry (not an L2 error: neither retried nor suppressed).
#[derive(Debug)]
pub(crate) enum ExpireError {
    Driver(DriverError),
    Serialization(crate::error::BoxError),
}

impl From<DriverError> for ExpireError {
    fn from(error: DriverError) -> Self {
        ExpireError::Driver(error)
    }
}

/// The TTL to give a driver for an absolute `physical_expiration` (ms,
/// `None` = forever): `None` when already past.
pub(crate) fn ttl_until(physical_expiration: Option<u64>, now: u64) -> Option<Option<Duration>> {
    match physical_expiration {
        None => Some(None),
        Some(at) if at > now => Some(Some(Duration::from_millis(at - now))),
        Some(_) => None,
    }
}

/// How a write reached L2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reached {
    /// L2 answered (the driver's boolean answer).
    Now(bool),
    /// Queued behind an operation on the same key still waiting for L2;
    /// the replay applies it in order.
    Queued,
}

/// The driver a store was given as L2. A [`Driver`] (a plugin's, or a
/// native one) is kept as such, so that the read path can call it without
/// `dyn` dispatch: a call through `dyn L2Driver` boxes its future, once
/// per call.
pub(crate) enum L2Source {
    Driver(Driver),
    Other(Arc<dyn L2Driver>),
}

impl L2Source {
    pub fn new<D: L2Driver>(driver: D) -> L2Source {
        let mut driver = Some(driver);
        match (&mut driver as &mut dyn Any).downcast_mut::<Option<Driver>>() {
            Some(known) => L2Source::Driver(known.take().expect("the driver was just put in")),
            None => L2Source::Other(Arc::new(driver.expect("the driver was not taken"))),
        }
    }
}

/// One namespace's L2 handle: the only way to reach the driver.
#[derive(Clone)]
pub(crate) struct L2 {
    driver: Arc<dyn L2Driver>,
    /// `driver` itself when it is a [`Driver`] (see [`L2Source`]): `get`
    /// calls this one.
    direct: Option<Driver>,
    /// Full prefix of this handle (`bentocache:posts`).
    prefix: Prefix,
    pub shared: Arc<L2Shared>,
}

/// What a read found in L2 (or in the auto-recovery queue for its key).
pub(crate) struct L2Value {
    pub bytes: DriverBytes,
    /// A pending expire: the entry is logically expired from then.
    pub expired_at: Option<u64>,
}

impl L2 {
    pub fn new(source: L2Source, prefix: &str, shared: Arc<L2Shared>) -> L2 {
        L2::with_prefix(source, Prefix::new(prefix), shared)
    }

    fn with_prefix(source: L2Source, prefix: Prefix, shared: Arc<L2Shared>) -> L2 {
        let (driver, direct) = match source {
            L2Source::Driver(driver) => (Arc::new(driver.clone()) as Arc<dyn L2Driver>, Some(driver)),
            L2Source::Other(driver) => (driver, None),
        };
        L2 { driver, direct, prefix, shared }
    }

    pub fn namespace(&self, namespace: &str) -> Result<L2, DriverError> {
        let source = match &self.direct {
            Some(driver) => L2Source::Driver(driver.namespace(namespace)?),
            None => L2Source::Other(self.driver.namespace(namespace)?),
        };
        Ok(L2::with_prefix(source, self.prefix.namespace(namespace), self.shared.clone()))
    }

    fn full_key(&self, key: &str) -> String {
        self.prefix.key(key)
    }

    /// Whether an operation queued for auto-recovery on `key` (or a clear
    /// above it) must go first. With nothing queued (the common case) no
    /// full key is built.
    fn blocked(&self, key: &str) -> bool {
        self.shared.recovery.len() > 0 && self.shared.recovery.blocks(&self.full_key(key))
    }

    /// What a read of `key` must believe instead of L2, if anything is
    /// queued for it; with nothing queued no full key is built.
    fn pending_read(&self, key: &str) -> Option<PendingRead> {
        if self.shared.recovery.len() == 0 {
            return None;
        }
        self.shared.recovery.read(&self.full_key(key))
    }

    fn queue(&self, target: Target, key: &str, op: PendingOp) {
        self.shared.recovery.push(target, self.driver.clone(), key.to_string(), self.prefix.as_str().to_string(), op);
    }

    /// Run `call` for `key`, keeping the order with operations pending in
    /// the auto-recovery queue. With `queue`, an operation that fails, or
    /// must wait behind a pending one, is queued for replay (`Ok(None)`
    /// when it waits). Without, it fails instead of waiting, and is not
    /// replayed (its error reaches the caller, who then knows).
    async fn write<R>(
        &self,
        name: &'static str,
        key: &str,
        op: impl FnOnce() -> PendingOp,
        call: impl Future<Output = Result<R, DriverError>>,
        timeout: Option<Duration>,
        queue: bool,
    ) -> Result<Option<R>, DriverError> {
        if self.blocked(key) {
            if !queue {
                return Err(behind_pending());
            }
            self.queue(Target::Key(self.full_key(key)), key, op());
            return Ok(None);
        }
        match self.shared.call(name, timeout, call).await {
            Ok(answer) => Ok(Some(answer)),
            Err(error) => {
                if queue {
                    self.queue(Target::Key(self.full_key(key)), key, op());
                }
                Err(error)
            }
        }
    }

    fn adjust(&self, key: &str, found: Option<DriverBytes>) -> Option<L2Value> {
        match self.pending_read(key) {
            None => found.map(|bytes| L2Value { bytes, expired_at: None }),
            Some(PendingRead::Gone) => None,
            Some(PendingRead::Value(bytes, physical_expiration)) => ttl_until(physical_expiration, now_ms())
                .map(|_| L2Value { bytes: DriverBytes::Owned(bytes), expired_at: None }),
            Some(PendingRead::ExpiredAt(at)) => found.map(|bytes| L2Value { bytes, expired_at: Some(at) }),
        }
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str, timeout: Option<Duration>) -> Result<Option<L2Value>, DriverError> {
        let operation = match &self.direct {
            Some(driver) => Either::Left(driver.get_bytes(key)),
            None => Either::Right(self.driver.get(key).map_ok(|found| found.map(DriverBytes::Owned))),
        };
        let found = self.shared.call("get", timeout, operation).await?;
        Ok(self.adjust(key, found))
    }

    /// Values of `keys`, in order, in one driver call.
    pub async fn get_many(
        &self,
        keys: &[String],
        timeout: Option<Duration>,
    ) -> Result<Vec<Option<L2Value>>, DriverError> {
        let found = self.shared.call("get_many", timeout, self.driver.get_many(keys)).await?;
        if found.len() != keys.len() {
            return Err(DriverError::backend(format!(
                "get_many answered {} values for {} keys",
                found.len(),
                keys.len()
            )));
        }
        Ok(keys.iter().zip(found).map(|(key, found)| self.adjust(key, found.map(DriverBytes::Owned))).collect())
    }

    /// Get and delete `key` atomically (the driver's pull). A key with a
    /// pending operation answers from the queue and queues a delete.
    pub async fn pull(&self, key: &str, timeout: Option<Duration>) -> Result<Option<L2Value>, DriverError> {
        if let Some(pending) = self.pending_read(key) {
            self.queue(Target::Key(self.full_key(key)), key, PendingOp::Delete);
            return Ok(match pending {
                PendingRead::Value(bytes, _) => Some(L2Value { bytes: DriverBytes::Owned(bytes), expired_at: None }),
                _ => None,
            });
        }
        match self.shared.call("pull", timeout, self.driver.pull(key)).await {
            Ok(found) => Ok(found.map(|bytes| L2Value { bytes: DriverBytes::Owned(bytes), expired_at: None })),
            Err(error) => {
                self.queue(Target::Key(self.full_key(key)), key, PendingOp::Delete);
                Err(error)
            }
        }
    }

    /// Store `bytes` until `physical_expiration` (ms, `None` = forever).
    /// `notify`: the bus Set the write owes, published after a replay;
    /// `queue`: whether a failure is queued for replay (see `write`).
    pub async fn set(
        &self,
        key: &str,
        bytes: Vec<u8>,
        physical_expiration: Option<u64>,
        notify: bool,
        timeout: Option<Duration>,
        queue: bool,
    ) -> Result<Reached, DriverError> {
        let Some(ttl) = ttl_until(physical_expiration, now_ms()) else {
            return self.delete(key, timeout).await.map(|_| Reached::Now(false));
        };
        let op = || PendingOp::Set { bytes: bytes.clone(), physical_expiration, notify };
        let answer = self.write("set", key, op, self.driver.set(key, bytes.clone(), ttl), timeout, queue).await?;
        Ok(answer.map_or(Reached::Queued, Reached::Now))
    }

    /// Store many entries in one driver call (queued per key on failure).
    pub async fn set_many(
        &self,
        items: Vec<(String, Vec<u8>, Option<u64>)>,
        notify: bool,
        timeout: Option<Duration>,
        queue: bool,
    ) -> Result<Reached, DriverError> {
        let now = now_ms();
        let blocked = items.iter().any(|(key, ..)| self.blocked(key));
        if blocked && !queue {
            return Err(behind_pending());
        }
        let batch: Vec<SetItem> = items
            .iter()
            .filter_map(|(key, value, at)| {
                ttl_until(*at, now).map(|ttl| SetItem { key: key.clone(), value: value.clone(), ttl })
            })
            .collect();
        let result =
            if blocked { None } else { Some(self.shared.call("set_many", timeout, self.driver.set_many(batch)).await) };
        match result {
            Some(Ok(stored)) => Ok(Reached::Now(stored)),
            failed => {
                for (key, bytes, physical_expiration) in items.into_iter().filter(|_| queue) {
                    let op = PendingOp::Set { bytes, physical_expiration, notify };
                    self.queue(Target::Key(self.full_key(&key)), &key, op);
                }
                match failed {
                    Some(Err(error)) => Err(error),
                    _ => Ok(Reached::Queued),
                }
            }
        }
    }

    /// Delete `key`; `Some(existed)` when L2 answered, `None` when queued.
    pub async fn delete(&self, key: &str, timeout: Option<Duration>) -> Result<Option<bool>, DriverError> {
        self.write("delete", key, || PendingOp::Delete, self.driver.delete(key), timeout, true).await
    }

    /// Delete `keys` in one driver call; how many existed.
    pub async fn delete_many(&self, keys: &[String], timeout: Option<Duration>) -> Result<u64, DriverError> {
        let blocked = keys.iter().any(|key| self.blocked(key));
        let result = if blocked {
            None
        } else {
            Some(self.shared.call("delete_many", timeout, self.driver.delete_many(keys)).await)
        };
        match result {
            Some(Ok(count)) => Ok(count),
            failed => {
                for key in keys {
                    self.queue(Target::Key(self.full_key(key)), key, PendingOp::Delete);
                }
                failed.map_or(Ok(0), |failed| failed)
            }
        }
    }

    /// Logically expire `key` from `at` keeping its physical TTL.
    pub async fn expire(
        &self,
        key: &str,
        at: u64,
        grace: Option<Duration>,
        timeout: Option<Duration>,
    ) -> Result<Option<bool>, ExpireError> {
        let op = || PendingOp::Expire { at, grace };
        if self.blocked(key) {
            self.queue(Target::Key(self.full_key(key)), key, op());
            return Ok(None);
        }
        match self.shared.expire(&*self.driver, key, at, grace, timeout).await {
            Ok(found) => Ok(Some(found)),
            Err(ExpireError::Driver(error)) => {
                self.queue(Target::Key(self.full_key(key)), key, op());
                Err(ExpireError::Driver(error))
            }
            Err(error) => Err(error),
        }
    }

    /// Remove every key under this handle's prefix.
    pub async fn clear(&self, timeout: Option<Duration>) -> Result<(), DriverError> {
        let target = Target::Prefix(self.prefix.as_str().to_string());
        if self.shared.recovery.blocks(self.prefix.as_str()) {
            self.queue(target, "", PendingOp::Clear);
            return Ok(());
        }
        let result = self.shared.call("clear", timeout, self.driver.clear()).await;
        if result.is_err() {
            self.queue(target, "", PendingOp::Clear);
        }
        result
    }

    /// True when the driver declares a backend lock.
    pub fn supports_lock(&self) -> bool {
        self.driver.capabilities().contains(Capabilities::LOCK)
    }

    /// Take the fleet-wide lock of `key` for `owner` for `ttl`.
    pub async fn try_lock(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        timeout: Option<Duration>,
    ) -> Result<bool, DriverError> {
        self.shared.call("try_lock", timeout, self.driver.try_lock(key, owner, ttl)).await
    }

    /// Release the fleet-wide lock of `key` if `owner` holds it.
    pub async fn unlock(&self, key: &str, owner: &str, timeout: Option<Duration>) -> Result<bool, DriverError> {
        self.shared.call("unlock", timeout, self.driver.unlock(key, owner)).await
    }

    /// Remove expired entries.
    pub async fn prune(&self, timeout: Option<Duration>) -> Result<(), DriverError> {
        self.shared.call("prune", timeout, self.driver.prune()).await
    }

    /// Close the driver (bounded by the caller; the breaker does not apply).
    pub async fn disconnect(&self) -> Result<(), DriverError> {
        self.driver.disconnect().await
    }
}

/// The error of a write that cannot wait behind a pending operation.
fn behind_pending() -> DriverError {
    DriverError::new(
        ErrorKind::CONNECTION,
        "L2 has not yet taken an earlier operation on this key (queued for auto-recovery)",
    )
}

/// Decode an L2 value as an entry of `V`, applying a pending expire.
pub(crate) fn decode_entry<V: serde::de::DeserializeOwned>(
    serializer: &dyn Serializer,
    found: &L2Value,
) -> Result<Entry<V>, crate::error::BoxError> {
    let mut entry: Entry<V> = serializer::decode(serializer, &found.bytes)?;
    if let Some(at) = found.expired_at {
        entry.logical_expiration = Some(entry.logical_expiration.map_or(at, |old| old.min(at)));
    }
    Ok(entry)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A driver that stores nothing (for unit tests of the queue).
    pub struct NullDriver;

    #[async_trait]
    impl L2Driver for NullDriver {
        fn namespace(&self, _: &str) -> Result<Arc<dyn L2Driver>, DriverError> {
            Ok(Arc::new(NullDriver))
        }
        async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, DriverError> {
            Ok(None)
        }
        async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, DriverError> {
            Ok(vec![None; keys.len()])
        }
        async fn set(&self, _: &str, _: Vec<u8>, _: Option<Duration>) -> Result<bool, DriverError> {
            Ok(true)
        }
        async fn set_many(&self, _: Vec<SetItem>) -> Result<bool, DriverError> {
            Ok(true)
        }
        async fn has(&self, _: &str) -> Result<bool, DriverError> {
            Ok(false)
        }
        async fn pull(&self, _: &str) -> Result<Option<Vec<u8>>, DriverError> {
            Ok(None)
        }
        async fn delete(&self, _: &str) -> Result<bool, DriverError> {
            Ok(false)
        }
        async fn delete_many(&self, _: &[String]) -> Result<u64, DriverError> {
            Ok(0)
        }
        async fn clear(&self) -> Result<(), DriverError> {
            Ok(())
        }
        async fn prune(&self) -> Result<(), DriverError> {
            Ok(())
        }
        async fn disconnect(&self) -> Result<(), DriverError> {
            Ok(())
        }
    }

    #[test]
    fn breaker_opens_for_its_duration_only() {
        let breaker = CircuitBreaker::new(Some(Duration::from_millis(100)));
        assert!(!breaker.is_open(1000));
        breaker.record_failure(1000);
        assert!(breaker.is_open(1050));
        assert!(!breaker.is_open(1100));
        let never = CircuitBreaker::new(None);
        never.record_failure(1000);
        assert!(!never.is_open(1001));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_answers_fails_at_the_limit() {
        let started = tokio::time::Instant::now();
        let limit = Duration::from_millis(300);
        let error = bounded(std::future::pending::<Result<(), DriverError>>(), Some(limit)).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::TIMEOUT, "{error}");
        let waited = started.elapsed();
        assert!(limit <= waited && waited < limit + Duration::from_millis(5), "{waited:?}");
    }

    /// An operation answering `answer` on its second poll (the first arms
    /// the timer, kept when the call ends).
    fn second_poll<R>(answer: R) -> impl Future<Output = Result<R, DriverError>> {
        let mut answer = Some(answer);
        let mut polled = false;
        poll_fn(move |context| {
            if std::mem::replace(&mut polled, true) {
                return Poll::Ready(Ok(answer.take().expect("polled after completion")));
            }
            context.waker().wake_by_ref();
            Poll::Pending
        })
    }

    async fn fails_at(limit: Duration) {
        let started = tokio::time::Instant::now();
        let error = bounded(std::future::pending::<Result<(), DriverError>>(), Some(limit)).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::TIMEOUT, "{error}");
        let waited = started.elapsed();
        assert!(limit <= waited && waited < limit + Duration::from_millis(5), "{waited:?} for {limit:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_bounds_later_calls_at_their_own_limit() {
        let (short, long) = (Duration::from_millis(300), Duration::from_secs(10));
        assert_eq!(bounded(second_poll(1), Some(short)).await.unwrap(), 1);
        tokio::time::advance(Duration::from_millis(100)).await;
        fails_at(short).await;
        // Kept with a later deadline than the next call's: re-armed earlier.
        assert_eq!(bounded(second_poll(2), Some(long)).await.unwrap(), 2);
        fails_at(short).await;
        fails_at(long).await;
    }

    #[test]
    fn a_timer_kept_under_one_runtime_is_not_used_by_the_next() {
        for _ in 0..2 {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            runtime.block_on(async {
                assert_eq!(bounded(second_poll(1), Some(Duration::from_secs(1))).await.unwrap(), 1);
                fails_at(Duration::from_millis(300)).await;
            });
        }
    }

    #[test]
    fn an_answer_on_the_first_poll_arms_no_timer() {
        // No runtime, hence no timer: the limit is not even looked at.
        let answer = futures::executor::block_on(bounded(async { Ok::<_, DriverError>(7) }, Some(Duration::ZERO)));
        assert_eq!(answer.unwrap(), 7);
    }

    #[test]
    fn ttl_until_is_none_once_past() {
        assert_eq!(ttl_until(None, 5), Some(None));
        assert_eq!(ttl_until(Some(10), 5), Some(Some(Duration::from_millis(5))));
        assert_eq!(ttl_until(Some(5), 5), None);
    }
}
