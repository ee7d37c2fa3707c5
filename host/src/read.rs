//! The read pipeline (SPEC §5): the one place that decides what a key is
//! worth — fresh, stale within grace, or missing — and from which tier.
//! Every verb that reads (`get`, `get_many`, `has`, `missing`,
//! `get_or_set`, `pull`'s fallback) composes it; none re-states freshness,
//! grace or tag rules.
//!
//! For a batch of keys: L1 (one synchronous lookup per key for the built-in
//! store, one batched call for a plugin), then ONE L2 call for the keys
//! not fresh in L1, then grace. An L2 hit that is fresh, or newer than the
//! stale L1 copy, is copied into L1 keeping its created_at and logical
//! expiration — only if no write changed the key meanwhile (`ordering.rs`).
//! An entry is invalid when created at or before one of its tags'
//! invalidation times (`tags.rs`); the timestamps are read here too.

use crate::cache::{Cache, CacheValue};
use crate::entry::{is_before, ms_after, now_ms, Entry};
use crate::error::{BoxError, Error};
use crate::events::Layer;
use crate::l1::{L1Entry, NEVER};
use crate::l2::{decode_entry, L2Value};
use crate::options::Settings;
use crate::ordering::Snapshot;
use crate::serializer::Serializer;
use crate::tags::{TagState, HARD_TAG_PREFIX, SOFT_TAG_PREFIX};
use bento_memory_store::Slot;
use futures::future::Either;
use serde::de::IgnoredAny;
use std::future::Future;
use std::marker::PhantomData;

/// What the tiers hold for one key.
pub(crate) enum Lookup<V> {
    /// Fresh, from this layer.
    Fresh(V, Layer),
    /// Logically expired but within grace, from this layer.
    Stale(Entry<V>, Layer),
    /// Nothing usable.
    Missing,
}

/// What step 2 ([`Cache::l2_step`]) leaves to await.
enum L2Rest<V> {
    /// The entry's tag timestamps, to read from L2 before judging it.
    Tags { entry: Entry<V>, snapshot: Option<Snapshot>, size: usize },
    /// The entry's copy into L1.
    Copy { copy: L1Entry, snapshot: Snapshot, size: usize },
}

/// One key on its way through the pipeline: what is fresh so far, and the
/// newest stale candidate (served only within grace).
struct KeyState<V> {
    result: Lookup<V>,
    stale: Option<(Entry<V>, Layer)>,
}

impl<V> Default for KeyState<V> {
    fn default() -> Self {
        KeyState { result: Lookup::Missing, stale: None }
    }
}

impl<V> KeyState<V> {
    fn is_fresh(&self) -> bool {
        matches!(self.result, Lookup::Fresh(..))
    }

    /// Step 3: the answer: fresh, else the stale candidate within grace.
    fn settle(self, settings: &Settings, now: u64) -> Lookup<V> {
        match (self.result, self.stale) {
            (Lookup::Missing, Some((entry, layer))) if within_grace(&entry, settings, now) => {
                Lookup::Stale(entry, layer)
            }
            (result, _) => result,
        }
    }
}

/// What the synchronous L1 probe of the hit path found.
pub(crate) enum Probe<T> {
    /// A fresh L1 value (recorded as a hit), and whether it is due for an
    /// eager refresh (past the asked fraction of its TTL).
    Hit(T, bool),
    /// Not a fresh hit; what L1 holds, when the probe could tell without a
    /// second look (`None` = read it again).
    Miss(KnownL1),
}

/// What L1 showed before a miss: the entry (see [`KnownL1`]) and the
/// store's change count read before looking ([`crate::ordering::KeyOrder::writes`]).
pub(crate) struct SeenInL1 {
    pub entry: KnownL1,
    pub writes: u64,
}

/// The L1 entry of a key as already read (`Some(None)`: L1 has nothing),
/// or `None` when L1 must still be read.
pub(crate) type KnownL1 = Option<Option<L1Entry>>;

/// How a reader wants values: decoded as a type, or only their presence.
pub(crate) trait Decoder {
    type Value: Clone + Send + Sync + 'static;
    fn from_l1(entry: &L1Entry, serializer: &dyn Serializer) -> Option<Self::Value>;
    fn from_l2(serializer: &dyn Serializer, found: &L2Value) -> Result<Entry<Self::Value>, BoxError>;
    /// The L1 copy of an L2 hit (`None`: do not copy).
    fn to_l1(entry: &Entry<Self::Value>) -> Option<L1Entry>;
}

/// Values of type `T` (another type stored in L1 is converted through the
/// serializer; what does not convert is missing).
pub(crate) struct Typed<T>(PhantomData<fn() -> T>);

impl<T: CacheValue> Decoder for Typed<T> {
    type Value = T;

    fn from_l1(entry: &L1Entry, serializer: &dyn Serializer) -> Option<T> {
        entry.value::<T>(serializer)
    }

    fn from_l2(serializer: &dyn Serializer, found: &L2Value) -> Result<Entry<T>, BoxError> {
        decode_entry(serializer, found)
    }

    fn to_l1(entry: &Entry<T>) -> Option<L1Entry> {
        let logical_expiration = entry.logical_expiration.unwrap_or(NEVER);
        Some(L1Entry::decoded(entry.value.clone(), entry.created_at, logical_expiration, &entry.tags))
    }
}

/// Presence only, whatever the value's type (`has`).
pub(crate) struct Presence;

impl Decoder for Presence {
    type Value = ();

    fn from_l1(_: &L1Entry, _: &dyn Serializer) -> Option<()> {
        Some(())
    }

    fn from_l2(serializer: &dyn Serializer, found: &L2Value) -> Result<Entry<()>, BoxError> {
        let entry: Entry<IgnoredAny> = decode_entry(serializer, found)?;
        Ok(Entry {
            value: (),
            logical_expiration: entry.logical_expiration,
            tags: entry.tags,
            created_at: entry.created_at,
        })
    }

    fn to_l1(_: &Entry<()>) -> Option<L1Entry> {
        None
    }
}

/// True when a logically expired `entry` may still be served.
pub(crate) fn within_grace<T>(entry: &Entry<T>, settings: &Settings, now: u64) -> bool {
    match (settings.grace, entry.logical_expiration) {
        (Some(grace), Some(at)) => now < ms_after(at, grace),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

impl Cache {
    /// The hit path of `get`/`get_or_set`: the fresh built-in L1 value of
    /// `key` as `T`, with no await and no clock read for entries that never
    /// expire. Anything else is a [`Probe::Miss`] for [`Cache::read`].
    #[inline]
    pub(crate) fn probe_l1<T: CacheValue>(&self, key: &str) -> Probe<T> {
        self.probe_l1_at(key, None)
    }

    /// [`Cache::probe_l1`], also telling the store's change count before
    /// the lookup (`get_or_set` then knows whether L1 changed since).
    #[inline]
    pub(crate) fn probe_l1_tracked<T: CacheValue>(
        &self,
        key: &str,
        eager_refresh: Option<f64>,
    ) -> Result<(T, bool), SeenInL1> {
        let writes = self.inner.core.order.writes();
        match self.probe_l1_at(key, eager_refresh) {
            Probe::Hit(value, due) => Ok((value, due)),
            Probe::Miss(entry) => Err(SeenInL1 { entry, writes }),
        }
    }

    /// `eager_refresh`: the fraction of the TTL after which a hit is due
    /// for a background refresh.
    #[inline(always)]
    fn probe_l1_at<T: CacheValue>(&self, key: &str, eager_refresh: Option<f64>) -> Probe<T> {
        let Some(l1) = &self.inner.l1 else { return Probe::Miss(Some(None)) };
        if !l1.is_in_process() {
            return Probe::Miss(None);
        }
        // Read in place, not moved out of the store's answer (see
        // `MemoryStore::get_slot_ignoring_expiry`).
        let mut found = l1.get_for_freshness_check(key);
        let Some(entry) = found.as_mut().map(Slot::get_mut) else { return Probe::Miss(Some(None)) };
        // A stale entry may be physically expired too (this lookup did not
        // check): the pipeline reads it again with the check.
        if entry.logical_expiration != NEVER && !is_before(entry.logical_expiration) {
            return Probe::Miss(None);
        }
        if entry.tags.is_some() && self.tag_state_l1(entry.tags(), entry.created_at) != Some(TagState::Valid) {
            return Probe::Miss(None);
        }
        let due = match eager_refresh {
            Some(fraction) if entry.logical_expiration != NEVER => {
                let lifetime = entry.logical_expiration.saturating_sub(entry.created_at) as f64;
                now_ms() as f64 >= entry.created_at as f64 + fraction * lifetime
            }
            _ => false,
        };
        match entry.take_value::<T>(&*self.inner.core.serializer) {
            Some(value) => {
                self.record_hit(key, Layer::L1, false);
                Probe::Hit(value, due)
            }
            None => Probe::Miss(None),
        }
    }

    /// [`Cache::read`] of one key (the same steps, without the batch's
    /// vectors: the L2 read path of `get` allocates nothing of its own).
    ///
    /// A plain function, not an `async fn`: one more state machine around
    /// the pipeline's would hold its arguments a second time.
    pub(crate) fn read_one<'a, D: Decoder + 'a>(
        &'a self,
        key: &'a str,
        known: KnownL1,
        settings: &'a Settings,
    ) -> impl Future<Output = Result<Lookup<D::Value>, Error>> + 'a {
        self.read_tier_one::<D>(key, known, settings, true)
    }

    /// What the tiers hold for each of `keys`, in order. `known`: the L1
    /// entries already read by the caller (L1 is then not read again).
    pub(crate) async fn read<D: Decoder>(
        &self,
        keys: &[&str],
        known: Option<Vec<Option<L1Entry>>>,
        settings: &Settings,
    ) -> Result<Vec<Lookup<D::Value>>, Error> {
        self.read_tiers::<D>(keys, known, settings, true).await
    }

    /// What L1 alone holds for `key` (`get_or_set` before taking the lock).
    pub(crate) async fn read_l1<D: Decoder>(
        &self,
        key: &str,
        known: KnownL1,
        settings: &Settings,
    ) -> Result<Lookup<D::Value>, Error> {
        self.read_tier_one::<D>(key, known, settings, false).await
    }

    /// An entry found outside [`Cache::read`] (an atomic pull) judged by
    /// the same rules: tags, then freshness, then grace.
    pub(crate) async fn judge<V>(
        &self,
        mut entry: Entry<V>,
        layer: Layer,
        settings: &Settings,
    ) -> Result<Lookup<V>, Error> {
        let state = self.tag_state(&entry.tags, entry.created_at, settings).await?;
        if state == TagState::Deleted {
            return Ok(Lookup::Missing);
        }
        state.apply_to(&mut entry);
        let now = now_ms();
        Ok(if !entry.is_expired(now) {
            Lookup::Fresh(entry.value, layer)
        } else if within_grace(&entry, settings, now) {
            Lookup::Stale(entry, layer)
        } else {
            Lookup::Missing
        })
    }

    /// The pipeline for a batch of keys: L1 (one call), then one L2 call
    /// for the keys not fresh in L1, each key through the steps below.
    async fn read_tiers<D: Decoder>(
        &self,
        keys: &[&str],
        known: Option<Vec<Option<L1Entry>>>,
        settings: &Settings,
        use_l2: bool,
    ) -> Result<Vec<Lookup<D::Value>>, Error> {
        let now = now_ms();
        let mut states: Vec<KeyState<D::Value>> = keys.iter().map(|_| KeyState::default()).collect();
        if let Some(l1) = &self.inner.l1 {
            let entries = match known {
                Some(entries) => entries,
                None => l1.get_many(keys).await,
            };
            for ((key, entry), state) in keys.iter().zip(entries).zip(&mut states) {
                *state = self.l1_step::<D>(key, entry, settings, now).await?;
            }
        }

        let wanted: Vec<usize> = (0..keys.len()).filter(|&i| !states[i].is_fresh()).collect();
        if let (Some(l2), false) = (self.inner.l2.as_ref().filter(|_| use_l2), wanted.is_empty()) {
            let snapshots: Vec<_> = wanted.iter().map(|&i| self.l2_snapshot(keys[i])).collect();
            let answer = match wanted.as_slice() {
                [only] => l2.get(keys[*only], settings.l2_timeout).await.map(|found| vec![found]),
                _ => {
                    let wanted_keys: Vec<String> = wanted.iter().map(|&i| keys[i].to_string()).collect();
                    l2.get_many(&wanted_keys, settings.l2_timeout).await
                }
            };
            let found = match answer {
                Ok(found) => found,
                Err(source) => {
                    self.l2_failed(keys[wanted[0]], source, settings)?;
                    wanted.iter().map(|_| None).collect()
                }
            };
            for ((&index, found), snapshot) in wanted.iter().zip(found).zip(snapshots) {
                let state = &mut states[index];
                if let Some(rest) = self.l2_step::<D>(keys[index], found, snapshot, state, settings, now)? {
                    Box::pin(self.l2_step_rest::<D>(keys[index], rest, state, settings, now)).await?;
                }
            }
        }
        Ok(states.into_iter().map(|state| state.settle(settings, now)).collect())
    }

    /// The pipeline for one key: the same steps as [`Cache::read_tiers`].
    async fn read_tier_one<D: Decoder>(
        &self,
        key: &str,
        known: KnownL1,
        settings: &Settings,
        use_l2: bool,
    ) -> Result<Lookup<D::Value>, Error> {
        let now = now_ms();
        let mut state = KeyState::default();
        if let Some(l1) = &self.inner.l1 {
            let entry = match known {
                Some(entry) => entry,
                None => l1.get(key).await,
            };
            state = self.l1_step::<D>(key, entry, settings, now).await?;
        }
        if let (Some(l2), false) = (self.inner.l2.as_ref().filter(|_| use_l2), state.is_fresh()) {
            let snapshot = self.l2_snapshot(key);
            let found = match l2.get(key, settings.l2_timeout).await {
                Ok(found) => found,
                Err(source) => {
                    self.l2_failed(key, source, settings)?;
                    None
                }
            };
            if let Some(rest) = self.l2_step::<D>(key, found, snapshot, &mut state, settings, now)? {
                // Boxed: rare (tags not in L1, or a tiered store's copy into
                // L1), and its future would otherwise widen every read's.
                Box::pin(self.l2_step_rest::<D>(key, rest, &mut state, settings, now)).await?;
            }
        }
        Ok(state.settle(settings, now))
    }

    /// Step 1: what L1 holds for `key` (`entry`), judged by its tags and
    /// freshness. A tag-deleted entry is removed from L1.
    async fn l1_step<D: Decoder>(
        &self,
        key: &str,
        entry: Option<L1Entry>,
        settings: &Settings,
        now: u64,
    ) -> Result<KeyState<D::Value>, Error> {
        // The state is built at the end: held across the awaits, it would
        // widen every read's future.
        let Some(entry) = entry else { return Ok(KeyState::default()) };
        let Some(value) = D::from_l1(&entry, &*self.inner.core.serializer) else {
            self.decode_failed(key, Layer::L1, "the L1 value does not convert to this type".into(), settings)?;
            return Ok(KeyState::default());
        };
        let tags = self.tag_state(entry.tags(), entry.created_at, settings).await?;
        if tags == TagState::Deleted {
            if let Some(l1) = &self.inner.l1 {
                // Boxed: rare, and this future is part of every read's.
                Box::pin(l1.delete(key)).await;
            }
            return Ok(KeyState::default());
        }
        let mut found = Entry {
            value,
            logical_expiration: entry.logical_expiration(),
            tags: entry.tags().to_vec(),
            created_at: entry.created_at,
        };
        tags.apply_to(&mut found);
        let mut state = KeyState::default();
        if found.is_expired(now) {
            state.stale = Some((found, Layer::L1));
        } else {
            state.result = Lookup::Fresh(found.value, Layer::L1);
        }
        Ok(state)
    }

    /// Taken before reading L2: a write meanwhile cancels the copy of the
    /// L2 value into L1 (`None` without an L1).
    fn l2_snapshot(&self, key: &str) -> Option<Snapshot> {
        self.inner.l1.as_ref().map(|_| self.inner.core.order.snapshot(&self.full_key(key)))
    }

    /// Step 2: what L2 answered for `key` (`found`), judged by its tags and
    /// freshness against what L1 had (`state`); a fresh entry, or one newer
    /// than the stale L1 copy, is copied into L1 unless a write intervened.
    ///
    /// Synchronous as far as it can go: what is left to await (tag
    /// timestamps not in L1, the copy into L1) is returned, for
    /// [`Cache::l2_step_rest`]. Most reads have nothing left, and skip a
    /// state machine on every read.
    fn l2_step<D: Decoder>(
        &self,
        key: &str,
        found: Option<L2Value>,
        snapshot: Option<Snapshot>,
        state: &mut KeyState<D::Value>,
        settings: &Settings,
        now: u64,
    ) -> Result<Option<L2Rest<D::Value>>, Error> {
        let Some(found) = found else { return Ok(None) };
        let entry = match D::from_l2(&*self.inner.core.serializer, &found) {
            Ok(entry) => entry,
            Err(error) => return self.decode_failed(key, Layer::L2, error, settings).map(|()| None),
        };
        let size = found.bytes.len();
        let Some(tags) = self.tag_state_now(&entry.tags, entry.created_at) else {
            return Ok(Some(L2Rest::Tags { entry, snapshot, size }));
        };
        Ok(self.l2_judge::<D>(entry, tags, snapshot, state, now).map(|(copy, snapshot)| L2Rest::Copy {
            copy,
            snapshot,
            size,
        }))
    }

    /// What [`Cache::l2_step`] left to await.
    async fn l2_step_rest<D: Decoder>(
        &self,
        key: &str,
        rest: L2Rest<D::Value>,
        state: &mut KeyState<D::Value>,
        settings: &Settings,
        now: u64,
    ) -> Result<(), Error> {
        let (copy, snapshot, size) = match rest {
            L2Rest::Tags { entry, snapshot, size } => {
                let tags = self.tag_state_l2(&entry.tags, entry.created_at, settings).await?;
                match self.l2_judge::<D>(entry, tags, snapshot, state, now) {
                    Some((copy, snapshot)) => (copy, snapshot, size),
                    None => return Ok(()),
                }
            }
            L2Rest::Copy { copy, snapshot, size } => (copy, snapshot, size),
        };
        self.write_back(key, copy, snapshot, settings.grace, size).await;
        Ok(())
    }

    /// The L2 `entry` under its tag state `tags`, into `state`; the copy
    /// of it L1 is to get, if any.
    fn l2_judge<D: Decoder>(
        &self,
        mut entry: Entry<D::Value>,
        tags: TagState,
        snapshot: Option<Snapshot>,
        state: &mut KeyState<D::Value>,
        now: u64,
    ) -> Option<(L1Entry, Snapshot)> {
        if tags == TagState::Deleted {
            return None;
        }
        tags.apply_to(&mut entry);
        let fresh = !entry.is_expired(now);
        let newer = state.stale.as_ref().is_none_or(|(old, _)| entry.created_at > old.created_at);
        let copy = match (fresh || newer, snapshot) {
            (true, Some(snapshot)) => D::to_l1(&entry).map(|copy| (copy, snapshot)),
            _ => None,
        };
        if fresh {
            state.result = Lookup::Fresh(entry.value, Layer::L2);
        } else if newer {
            state.stale = Some((entry, Layer::L2));
        }
        copy
    }

    /// Tag state from L1 alone; `None` when a timestamp must be read from
    /// L2 (not in L1, or no longer fresh there).
    pub(crate) fn tag_state_l1(&self, tags: &[String], created_at: u64) -> Option<TagState> {
        let l1 = self.inner.l1.as_ref().filter(|l1| l1.is_in_process())?;
        let now = now_ms();
        // Without an L2, L1 is the whole truth: no tag key = never invalidated.
        let authoritative = self.inner.l2.is_none();
        let timestamp = |key: String| match l1.get_now(&key) {
            Some(entry) => self.fresh_timestamp(&entry, now),
            None if authoritative => Some(0),
            None => None,
        };
        let mut state = TagState::Valid;
        for tag in tags {
            let hard = timestamp(format!("{HARD_TAG_PREFIX}{tag}"))?;
            let soft = timestamp(format!("{SOFT_TAG_PREFIX}{tag}"))?;
            state = state.combine(hard, soft, created_at);
        }
        Some(state)
    }

    /// Tag state of an entry created at `created_at` with `tags`, reading
    /// timestamps from L1, then L2. A plain function: the common read (no
    /// tags, or tags known in L1) gets a ready answer, with no state
    /// machine to step through.
    pub(crate) fn tag_state<'a>(
        &'a self,
        tags: &'a [String],
        created_at: u64,
        settings: &'a Settings,
    ) -> impl Future<Output = Result<TagState, Error>> + Send + 'a {
        match self.tag_state_now(tags, created_at) {
            Some(state) => Either::Left(std::future::ready(Ok(state))),
            // Boxed: the common read then keeps a small future.
            None => Either::Right(Box::pin(self.tag_state_l2(tags, created_at, settings))),
        }
    }

    /// [`Cache::tag_state`] when it needs no L2 read (no tags, or their
    /// timestamps fresh in L1); `None` otherwise.
    fn tag_state_now(&self, tags: &[String], created_at: u64) -> Option<TagState> {
        if tags.is_empty() {
            return Some(TagState::Valid);
        }
        self.tag_state_l1(tags, created_at)
    }

    /// [`Cache::tag_state`] reading the timestamps L1 does not hold from L2.
    async fn tag_state_l2(&self, tags: &[String], created_at: u64, settings: &Settings) -> Result<TagState, Error> {
        let mut state = TagState::Valid;
        for tag in tags {
            let hard = self.tag_timestamp(&format!("{HARD_TAG_PREFIX}{tag}"), settings).await?;
            let soft = self.tag_timestamp(&format!("{SOFT_TAG_PREFIX}{tag}"), settings).await?;
            state = state.combine(hard, soft, created_at);
        }
        Ok(state)
    }

    /// The invalidation time a tag entry of L1 holds, if still fresh.
    fn fresh_timestamp(&self, entry: &L1Entry, now: u64) -> Option<u64> {
        entry.is_fresh(now).then(|| entry.value::<u64>(&*self.inner.core.serializer)).flatten()
    }

    /// The invalidation time stored at tag key `key` (0 = never).
    async fn tag_timestamp(&self, key: &str, settings: &Settings) -> Result<u64, Error> {
        let now = now_ms();
        if let Some(l1) = &self.inner.l1 {
            if let Some(timestamp) = l1.get(key).await.and_then(|entry| self.fresh_timestamp(&entry, now)) {
                return Ok(timestamp);
            }
        }
        let Some(l2) = &self.inner.l2 else { return Ok(0) };
        let snapshot = self.inner.core.order.snapshot(&self.full_key(key));
        let timestamp = match l2.get(key, settings.l2_timeout).await {
            Ok(Some(found)) => match decode_entry::<u64>(&*self.inner.core.serializer, &found) {
                Ok(entry) => entry.value,
                Err(error) => {
                    tracing::warn!(store = %self.inner.core.name, key, %error, "undecodable tag entry ignored");
                    0
                }
            },
            Ok(None) => 0,
            Err(source) => {
                // Not cached: L2 may hold an invalidation we could not see.
                self.l2_failed(key, source, settings)?;
                return Ok(0);
            }
        };
        if self.inner.l1.is_some() {
            // Cache what we learned for the store TTL, then read L2 again,
            // so other instances' invalidations are seen without a bus too.
            let logical_expiration = settings.ttl.map_or(NEVER, |ttl| ms_after(now, ttl));
            let copy = L1Entry::decoded(timestamp, now, logical_expiration, &[]);
            self.write_back(key, copy, snapshot, None, 0).await;
        }
        Ok(timestamp)
    }
}
