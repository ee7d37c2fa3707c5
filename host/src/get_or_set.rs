//! `get_or_set`: the stampede-protected read-through path (SPEC §5).
//!
//! 1. L1 fresh → return, no lock (done synchronously in `ops.rs`).
//! 2. Take the per-key lock (full key, shared by every handle of the
//!    store). With a graced value and a soft timeout the wait is bounded by
//!    it (zero = stale-while-revalidate: a busy lock means a refresh is
//!    already running, so serve stale at once). A lock timeout without a
//!    graced value looks the key up (L1, L2) for one before failing.
//! 3. A refresh that owns the lock: re-check L1, read L2, else run the
//!    factory once and write L1 → L2 → bus. A stale L2 entry found there
//!    is handed to a caller that had no graced value before the factory
//!    runs, so grace works the same for L2-only stores. The caller's task
//!    runs it while waiting; when the caller stops waiting (a soft or
//!    hard timeout, or a caller that gives up) it is spawned to finish,
//!    so the factory's value is never lost, and the lock is released on
//!    every path (drop).
//! 4. The caller waits for the task within the soft timeout (counted from
//!    the start of the call), and falls back to the graced value on soft
//!    timeout or factory error. The hard timeout bounds the whole call,
//!    lock waits included.
//!
//! Reads go through the read pipeline (`read.rs`), the factory's value
//! through the write pipeline (`write.rs`). On a miss the built-in L1 is
//! read once: the hit path's probe hands over what it saw, and the refresh
//! task reads L1 again only when a write changed the key meanwhile.

use crate::cache::{Cache, CacheValue};
use crate::entry::{ms_after, now_ms, Entry};
use crate::error::{BoxError, Error};
use crate::events::Layer;
use crate::factory::FactoryContext;
use crate::locks::{Acquired, LockGuard};
use crate::options::{CacheOptions, Settings};
use crate::read::{within_grace, KnownL1, Lookup, SeenInL1, Typed};
use crate::write::{Notify, Write};
use futures::future::{BoxFuture, Either};
use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::sync::oneshot::error::TryRecvError;
use tracing::Instrument;

/// A value factory: any `FnOnce(FactoryContext<T>) -> impl Future<Output =
/// Result<T, E>>` that is `Send + 'static` (it may finish in the
/// background), where `E` converts into a boxed error.
///
/// ```
/// # async fn demo(cache: bento::Cache) -> Result<(), bento::Error> {
/// let name: String = cache
///     .get_or_set("user:1", |_ctx| async { Ok::<_, bento::BoxError>("Ada".to_string()) })
///     .await?;
/// # Ok(()) }
/// ```
pub trait Factory<T>: Send + 'static {
    /// Run the factory.
    fn call(self, context: FactoryContext<T>) -> BoxFuture<'static, Result<T, BoxError>>;
}

impl<T, F, Fut, E> Factory<T> for F
where
    T: Send + Sync + 'static,
    F: FnOnce(FactoryContext<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn call(self, context: FactoryContext<T>) -> BoxFuture<'static, Result<T, BoxError>> {
        Box::pin(async move { self(context).await.map_err(Into::into) })
    }
}

/// The caller's side of a refresh task: where the outcome goes, and where
/// a stale entry found under the lock goes when the caller had no graced
/// value yet (its soft timeout then applies to that entry).
struct Waiter<T> {
    outcome: oneshot::Sender<Outcome<T>>,
    stale: Option<oneshot::Sender<(Entry<T>, Layer)>>,
    /// The key's lock, held for the whole refresh.
    lock: LockGuard,
}

/// What the caller saw before the refresh: its graced value, and the L1
/// entry when no write changed the key since (L1 is then not read again).
struct Seen<T> {
    graced: Option<(Entry<T>, Layer)>,
    l1: KnownL1,
}

/// How long an instance waiting for another's fleet-wide lock waits
/// between two looks at L2.
pub const FLEET_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How taking the fleet-wide lock ended.
enum FleetLock<T> {
    /// This instance holds it: run the factory, then release it.
    Held,
    /// No fleet-wide lock (not asked for, or L2 cannot take it).
    Local,
    /// Another instance computed the value meanwhile.
    Served(T, Layer),
    Failed(Error),
}

/// How [`Cache::wait_for_lock_or_stale`] ended: the lock (or `None` on a
/// lock timeout) with the stale entry shared meanwhile, or a stale entry to
/// serve now.
enum WaitOutcome<T> {
    Locked(Option<LockGuard>, Option<(Entry<T>, Layer)>),
    Serve(Entry<T>, Layer),
}

/// What the refresh task found or made.
enum Outcome<T> {
    Hit(T, Layer),
    Computed(T),
    /// The factory failed; this graced value is served instead.
    Graced(T, Layer),
    Failed(Error),
}

impl Cache {
    pub(crate) async fn get_or_set_slow<T: CacheValue, F: Factory<T>>(
        &self,
        key: &str,
        factory: F,
        options: CacheOptions,
        tags: Vec<String>,
        seen: Option<SeenInL1>,
    ) -> Result<T, Error> {
        let settings = self.settings_with(&options)?;
        let span = self.op_span("get_or_set", Some(key));
        let call = self.get_or_set_locked(key, factory, settings.clone(), tags, seen).instrument(span);
        // The hard timeout bounds the whole call, lock waits included; the
        // refresh task (if started) still finishes and caches its value.
        // One future either way: awaiting `call` in one branch and its
        // timeout in the other would hold both in this future.
        let hard_timeout = settings.hard_timeout.filter(|_| tokio::runtime::Handle::try_current().is_ok());
        let bounded = match hard_timeout {
            Some(timeout) => Either::Left(tokio::time::timeout(timeout, call)),
            None => Either::Right(call.map(Ok)),
        };
        bounded.await.unwrap_or_else(|_| {
            Err(Error::HardTimeout { key: key.to_string(), timeout: hard_timeout.unwrap_or_default() })
        })
    }

    async fn get_or_set_locked<T: CacheValue, F: Factory<T>>(
        &self,
        key: &str,
        factory: F,
        settings: Settings,
        tags: Vec<String>,
        seen: Option<SeenInL1>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let force_fresh = settings.force_fresh;
        let full_key = self.full_key(key);
        let order = &self.inner.core.order;
        // A change of the store after this makes the refresh read L1 again.
        let (known, writes) = match seen {
            Some(SeenInL1 { entry, writes }) => (entry, writes),
            None => (None, order.writes()),
        };
        let l1_entry = match (&self.inner.l1, known) {
            (Some(_), Some(entry)) => entry,
            (Some(l1), None) => l1.get(key).await,
            (None, _) => None,
        };
        // A stale L1 copy within grace, known before waiting for anyone. (A
        // fresh one is a hit the synchronous path could not see: a local
        // plugin L1, or a value stored as another type.)
        let mut graced: Option<(Entry<T>, Layer)> = None;
        if self.inner.l1.is_some() {
            match self.read_l1::<Typed<T>>(key, Some(l1_entry.clone()), &settings).await? {
                Lookup::Fresh(value, layer) if !force_fresh => {
                    self.record_hit(key, layer, false);
                    return Ok(value);
                }
                Lookup::Stale(entry, layer) => graced = Some((entry, layer)),
                _ => {}
            }
        }
        let mut soft_timeout = settings.timeout.filter(|_| graced.is_some() && !force_fresh);

        let lock_wait = match (soft_timeout, settings.lock_timeout) {
            (Some(soft), Some(lock)) => Some(soft.min(lock)),
            (soft, lock) => soft.or(lock),
        };
        let locks = &self.inner.core.locks;
        let watch_shared = graced.is_none() && !force_fresh && settings.grace.is_some() && settings.timeout.is_some();
        let guard = match lock_wait {
            _ if watch_shared => match self.wait_for_lock_or_stale::<T>(&full_key, &settings, started).await {
                WaitOutcome::Locked(guard, stale) => {
                    if stale.is_some() {
                        graced = stale;
                        soft_timeout = settings.timeout;
                    }
                    guard
                }
                WaitOutcome::Serve(entry, layer) => return Ok(self.serve_graced(key, entry, layer)),
            },
            Some(Duration::ZERO) => locks.try_acquire(&full_key),
            wait => locks.acquire(&full_key, wait).instrument(lock_wait_span()).await,
        };
        let Some(guard) = guard else {
            return match graced {
                Some((entry, layer)) => Ok(self.serve_graced(key, entry, layer)),
                None => self.after_lock_timeout(key, &settings, full_key, lock_wait.unwrap_or_default()).await,
            };
        };

        let (sender, mut receiver) = oneshot::channel();
        // Without a graced value yet, the refresh task may find one in L2
        // (or in L1, put there meanwhile): it hands it over before running
        // the factory, so the soft timeout applies to it as to an L1 value.
        let awaits_stale = graced.is_none() && !force_fresh && settings.timeout.is_some();
        let (stale_sender, mut stale_receiver) = oneshot::channel();
        let mut waiter = Waiter { outcome: sender, stale: awaits_stale.then_some(stale_sender), lock: guard };
        let task = self.clone();
        let task_key: Arc<str> = Arc::from(key);
        let task_settings = settings.clone();
        let task_graced = graced.clone();
        // What L1 held is still what it holds, unless a write intervened.
        let task_known = (self.inner.core.order.writes() == writes).then_some(l1_entry);
        let span = tracing::Span::current();
        let mut refresh = DetachOnExit::new(
            async move {
                let seen = Seen { graced: task_graced, l1: task_known };
                let outcome = task.refresh(task_key, factory, task_settings, tags, seen, &mut waiter).await;
                let Waiter { outcome: sender, lock, .. } = waiter;
                drop(lock);
                let _ = sender.send(outcome);
            }
            .instrument(span),
        );

        if soft_timeout == Some(Duration::ZERO) {
            let (entry, layer) = graced.expect("soft timeout is only set with a graced value");
            return Ok(self.serve_graced(key, entry, layer));
        }
        // Both timeouts count from the start of the call; a soft deadline
        // at or after the hard one never applies.
        let started = tokio::time::Instant::from_std(started);
        let hard_deadline = settings.hard_timeout.map(|hard| started + hard);
        let soft_deadline_after =
            |soft: Duration| Some(started + soft).filter(|soft| hard_deadline.is_none_or(|hard| *soft < hard));
        let mut soft_deadline = soft_timeout.and_then(soft_deadline_after);
        let hard_sleep = sleep_until_or_never(hard_deadline);
        tokio::pin!(hard_sleep);
        let mut stale_pending = awaits_stale;
        let outcome = loop {
            tokio::select! {
                // A value the task already has beats a stale one; the soft
                // deadline is always before the hard one.
                biased;
                outcome = fed_inline(&mut receiver) => break outcome,
                () = &mut refresh, if refresh.is_running() => {}
                stale = fed_inline(&mut stale_receiver), if stale_pending => {
                    stale_pending = false;
                    let deadline = settings.timeout.and_then(soft_deadline_after);
                    if let (Ok((entry, layer)), Some(deadline)) = (stale, deadline) {
                        if deadline <= tokio::time::Instant::now() {
                            // Stale-while-revalidate, or the soft timeout already spent.
                            return Ok(self.serve_graced(key, entry, layer));
                        }
                        graced = Some((entry, layer));
                        soft_deadline = Some(deadline);
                    }
                }
                _ = sleep_until_or_never(soft_deadline) => {
                    let (entry, layer) = graced.expect("a soft deadline is only set with a graced value");
                    return Ok(self.serve_graced(key, entry, layer));
                }
                _ = &mut hard_sleep => {
                    let timeout = settings.hard_timeout.unwrap_or_default();
                    return Err(Error::HardTimeout { key: key.to_string(), timeout });
                }
            }
        };
        match outcome {
            Ok(Outcome::Hit(value, layer)) => {
                self.record_hit(key, layer, false);
                Ok(value)
            }
            Ok(Outcome::Computed(value)) => Ok(value),
            Ok(Outcome::Graced(value, layer)) => {
                self.record_hit(key, layer, true);
                Ok(value)
            }
            Ok(Outcome::Failed(error)) => Err(error),
            Err(_) => Err(Error::Factory {
                key: key.to_string(),
                source: Arc::from(BoxError::from("the refresh task was cancelled")),
                background: false,
            }),
        }
    }

    /// An eager refresh (`eager_refresh`): the caller was served a fresh
    /// value; recompute it in the background, unless a refresh of the key
    /// already runs (its lock is taken). Errors only reach the log and
    /// `on_factory_error`.
    pub(crate) fn refresh_in_background<T: CacheValue, F: Factory<T>>(
        &self,
        key: &str,
        factory: F,
        options: CacheOptions,
        tags: Vec<String>,
    ) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let Ok(mut settings) = self.settings_with(&options) else { return };
        let Some(lock) = self.inner.core.locks.try_acquire(&self.full_key(key)) else { return };
        settings.force_fresh = true;
        let (outcome, _nobody_waits) = oneshot::channel();
        let mut waiter = Waiter { outcome, stale: None, lock };
        let task = self.clone();
        let key: Arc<str> = Arc::from(key);
        let span = self.op_span("eager_refresh", Some(&key));
        tokio::spawn(
            async move {
                let seen = Seen { graced: None, l1: None };
                if let Outcome::Failed(error) = task.refresh(key, factory, settings, tags, seen, &mut waiter).await {
                    tracing::debug!(%error, "eager refresh failed; the current value stays until it expires");
                }
            }
            .instrument(span),
        );
    }

    /// Wait for the key's lock without a graced value of our own, watching
    /// for the stale entry the current holder may share (it found one in
    /// L2, or L1 of another handle): then our soft timeout applies to it, as
    /// if we had found it ourselves — serve it at once (timeout 0 or already
    /// spent), or wait for the lock at most until the soft deadline.
    async fn wait_for_lock_or_stale<T: CacheValue>(
        &self,
        full_key: &str,
        settings: &Settings,
        started: Instant,
    ) -> WaitOutcome<T> {
        let locks = &self.inner.core.locks;
        let lock_left = || settings.lock_timeout.map(|lock| lock.saturating_sub(started.elapsed()));
        let shared = match locks.acquire_or_stale(full_key, lock_left()).instrument(lock_wait_span()).await {
            Acquired::Locked(guard) => return WaitOutcome::Locked(Some(guard), None),
            Acquired::TimedOut => return WaitOutcome::Locked(None, None),
            Acquired::Stale(shared) => shared,
        };
        let usable = shared
            .downcast_ref::<(Entry<T>, Layer)>()
            .filter(|(entry, _)| within_grace(entry, settings, now_ms()))
            .cloned();
        let Some((entry, layer)) = usable else {
            // Another type, or outside our grace: wait for the lock itself.
            return WaitOutcome::Locked(locks.acquire(full_key, lock_left()).instrument(lock_wait_span()).await, None);
        };
        let soft_left = settings.timeout.unwrap_or_default().saturating_sub(started.elapsed());
        if soft_left.is_zero() {
            return WaitOutcome::Serve(entry, layer);
        }
        let wait = lock_left().map_or(soft_left, |lock| lock.min(soft_left));
        match locks.acquire(full_key, Some(wait)).instrument(lock_wait_span()).await {
            Some(guard) => WaitOutcome::Locked(Some(guard), Some((entry, layer))),
            None => WaitOutcome::Serve(entry, layer),
        }
    }

    /// The lock wait timed out and no graced value was known beforehand.
    /// With grace, the holder may have left a stale copy in L1, or L2 may
    /// hold one (an L2-only store): serve it rather than fail. This read
    /// happens only on this failure path, never on the common one; if it
    /// fails too, the lock timeout is the error reported.
    async fn after_lock_timeout<T: CacheValue>(
        &self,
        key: &str,
        settings: &Settings,
        full_key: String,
        timeout: Duration,
    ) -> Result<T, Error> {
        if settings.grace.is_some() && !settings.force_fresh {
            match self.read_one::<Typed<T>>(key, None, settings).await {
                Ok(Lookup::Fresh(value, layer)) => {
                    self.record_hit(key, layer, false);
                    return Ok(value);
                }
                Ok(Lookup::Stale(entry, layer)) => return Ok(self.serve_graced(key, entry, layer)),
                Ok(Lookup::Missing) => {}
                Err(error) => tracing::debug!(key, %error, "no graced value after the lock timeout"),
            }
        }
        Err(Error::LockTimeout { key: full_key, timeout })
    }

    fn serve_graced<T>(&self, key: &str, entry: Entry<T>, layer: Layer) -> T {
        self.record_hit(key, layer, true);
        entry.value
    }

    /// The body of the refresh task (runs with the lock held).
    async fn refresh<T: CacheValue, F: Factory<T>>(
        &self,
        key: Arc<str>,
        factory: F,
        settings: Settings,
        tags: Vec<String>,
        seen: Seen<T>,
        waiter: &mut Waiter<T>,
    ) -> Outcome<T> {
        let Seen { mut graced, l1: known } = seen;
        match self.read_one::<Typed<T>>(&key, known, &settings).await {
            Ok(Lookup::Fresh(value, layer)) if !settings.force_fresh => return Outcome::Hit(value, layer),
            Ok(Lookup::Stale(entry, layer)) => {
                if let Some(stale) = waiter.stale.take() {
                    let _ = stale.send((entry.clone(), layer));
                }
                if graced.as_ref().is_none_or(|(old, _)| entry.created_at >= old.created_at) {
                    graced = Some((entry, layer));
                }
            }
            Ok(_) => {}
            Err(error) => return Outcome::Failed(error),
        }
        if let Some(stale) = &graced {
            // Callers queued behind this lock may serve it meanwhile.
            waiter.lock.share_stale(Arc::new(stale.clone()));
        }
        let fleet_lock = match self.fleet_lock::<T>(&key, &settings).await {
            FleetLock::Held => true,
            FleetLock::Local => false,
            FleetLock::Served(value, layer) => return Outcome::Hit(value, layer),
            FleetLock::Failed(error) => return Outcome::Failed(error),
        };
        let outcome = self.compute(key.clone(), factory, &settings, tags, graced, waiter).await;
        if fleet_lock {
            self.fleet_unlock(&key, &settings).await;
        }
        outcome
    }

    /// Run the factory (the lock held) and write its value.
    async fn compute<T: CacheValue, F: Factory<T>>(
        &self,
        key: Arc<str>,
        factory: F,
        settings: &Settings,
        tags: Vec<String>,
        graced: Option<(Entry<T>, Layer)>,
        waiter: &mut Waiter<T>,
    ) -> Outcome<T> {
        self.record_miss(&key);
        let context = FactoryContext::new(key.clone(), graced.as_ref().map(|(entry, _)| entry.clone()));
        let started = Instant::now();
        let factory_span = tracing::debug_span!("bento.factory", store = %self.inner.core.name);
        let result = AssertUnwindSafe(factory.call(context.clone())).catch_unwind().instrument(factory_span).await;
        self.inner.core.metrics.factory_seconds.record(started.elapsed().as_secs_f64());
        let result = result.unwrap_or_else(|panic| Err(panic_message(panic).into()));
        match result {
            Ok(value) => {
                let requests = context.requests();
                if requests.skip {
                    return Outcome::Computed(value);
                }
                let mut write = settings.clone();
                write.ttl = requests.ttl.unwrap_or(settings.ttl);
                write.skip_l2_write |= requests.skip_l2_write;
                write.skip_bus_notify |= requests.skip_bus_notify;
                let tags = requests.tags.unwrap_or(tags);
                match self.write_value(&key, value.clone(), tags, &write).await {
                    Ok(_) => Outcome::Computed(value),
                    Err(error) => {
                        tracing::warn!(key = %key, %error, "factory value could not be written");
                        Outcome::Failed(error)
                    }
                }
            }
            Err(source) => {
                let background = waiter.outcome.is_closed();
                let error = Error::Factory { key: key.to_string(), source: Arc::from(source), background };
                tracing::debug!(key = %key, %error, "factory failed");
                if let Some(hook) = &self.inner.core.on_factory_error {
                    hook(&error);
                }
                match graced.filter(|_| !settings.force_fresh) {
                    Some((entry, layer)) => {
                        let value = entry.value.clone();
                        self.apply_backoff(&key, entry, settings).await;
                        Outcome::Graced(value, layer)
                    }
                    None => Outcome::Failed(error),
                }
            }
        }
    }

    /// With `distributed_lock`, take the key's fleet-wide lock in L2 before
    /// running the factory. While another instance holds it, poll L2 for
    /// the value it writes (every [`FLEET_POLL_INTERVAL`]) and serve that;
    /// a holder that crashed releases the key when its lock's TTL ends.
    /// Bounded by `lock_timeout` when set. When L2 cannot answer the lock
    /// call, the local lock alone protects the key (logged).
    async fn fleet_lock<T: CacheValue>(&self, key: &str, settings: &Settings) -> FleetLock<T> {
        let core = &self.inner.core;
        let Some(l2) = self.inner.l2.as_ref().filter(|_| settings.distributed_lock) else { return FleetLock::Local };
        let started = Instant::now();
        let span = tracing::debug_span!("bento.fleet_lock", store = %core.name);
        async {
            loop {
                match l2.try_lock(key, &core.lock_owner, settings.distributed_lock_ttl, settings.l2_timeout).await {
                    Ok(true) => return FleetLock::Held,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(store = %core.name, key, %error, "fleet-wide lock unavailable; the local lock alone protects the key");
                        return FleetLock::Local;
                    }
                }
                if let Some(limit) = settings.lock_timeout.filter(|limit| started.elapsed() >= *limit) {
                    return FleetLock::Failed(Error::LockTimeout { key: self.full_key(key), timeout: limit });
                }
                tokio::time::sleep(FLEET_POLL_INTERVAL).await;
                match self.read_one::<Typed<T>>(key, Some(None), settings).await {
                    Ok(Lookup::Fresh(value, layer)) if !settings.force_fresh => return FleetLock::Served(value, layer),
                    Ok(_) => {}
                    Err(error) => return FleetLock::Failed(error),
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn fleet_unlock(&self, key: &str, settings: &Settings) {
        let Some(l2) = &self.inner.l2 else { return };
        if let Err(error) = l2.unlock(key, &self.inner.core.lock_owner, settings.l2_timeout).await {
            tracing::warn!(store = %self.inner.core.name, key, %error, "fleet-wide lock not released; it ends with its TTL");
        }
    }

    /// The factory failed and a graced value is served: it is fresh again
    /// until now + backoff (from now — BentoCache adds to the old expiry).
    async fn apply_backoff<T: CacheValue>(&self, key: &str, mut entry: Entry<T>, settings: &Settings) {
        entry.logical_expiration = Some(ms_after(now_ms(), settings.grace_backoff));
        let mut quiet = settings.clone();
        quiet.skip_bus_notify = true;
        quiet.suppress_l2_errors = true;
        let write = Write::new(key, entry, settings.grace);
        if let Err(error) = self.write_entries(smallvec::smallvec![write], &quiet, Notify::AfterL2).await {
            tracing::warn!(key, %error, "grace backoff could not be written");
        }
    }
}

/// The span of a wait for a key's lock (inside the operation's span).
fn lock_wait_span() -> tracing::Span {
    tracing::debug_span!("bento.lock_wait")
}

/// The refresh of a `get_or_set`, run by the caller's own task while the
/// caller waits for it (no hand-over to another task and thread on every
/// miss), and spawned to finish on its own when the caller stops waiting:
/// a soft or hard timeout, or a caller that gives up, never loses the
/// factory's value, and the lock is released on every path.
struct DetachOnExit {
    future: Option<BoxFuture<'static, ()>>,
    /// The runtime the refresh started on, which finishes it: the caller's
    /// future may be dropped on a thread outside it.
    runtime: Option<tokio::runtime::Handle>,
}

impl DetachOnExit {
    fn new(future: impl Future<Output = ()> + Send + 'static) -> DetachOnExit {
        DetachOnExit { future: Some(Box::pin(future)), runtime: tokio::runtime::Handle::try_current().ok() }
    }

    fn is_running(&self) -> bool {
        self.future.is_some()
    }
}

impl Future for DetachOnExit {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, context: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if let Some(future) = &mut self.future {
            std::task::ready!(future.as_mut().poll(context));
            self.future = None;
        }
        std::task::Poll::Ready(())
    }
}

impl Drop for DetachOnExit {
    fn drop(&mut self) {
        let Some(future) = self.future.take() else { return };
        // A refresh that panicked (outside the factory, whose panics are
        // caught) is not polled again; without a runtime it is dropped,
        // which releases the lock (a runtime shutting down drops it too).
        if !std::thread::panicking() {
            if let Some(runtime) = self.runtime.take().or_else(|| tokio::runtime::Handle::try_current().ok()) {
                runtime.spawn(future);
            }
        }
    }
}

/// What the refresh has sent on `receiver`, without lending it this
/// task's waker.
///
/// While the caller waits, only the refresh it polls itself (`refresh`,
/// in the same `select!`) sends on its channels, so each pass looks at
/// them again right after polling the refresh, and a send needs no wake-up.
/// A receiver holding the waker made every send wake the task while it was
/// being polled: tokio re-queues a task woken that way as a yield and
/// wakes another worker to take it, two context switches per miss
/// (`try_recv` also takes nothing from the task's budget, whose exhaustion
/// would answer "not yet" and count on a wake-up). Once the refresh runs
/// detached, the caller no longer reads the channels.
fn fed_inline<V>(receiver: &mut oneshot::Receiver<V>) -> impl Future<Output = Result<V, TryRecvError>> + '_ {
    std::future::poll_fn(move |_| match receiver.try_recv() {
        Err(TryRecvError::Empty) => std::task::Poll::Pending,
        done => std::task::Poll::Ready(done),
    })
}

async fn sleep_until_or_never(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    format!("factory panicked: {text}")
}
