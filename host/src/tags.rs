//! Tags, lazily and by timestamp (the BentoCache/FusionCache approach):
//! invalidating a tag writes one entry, `___bc:t:<tag>` = now (ms), in the
//! namespace of the handle; an entry created at or before one of its tags'
//! timestamps is invalid the next time it is read. `delete_by_tag` is hard
//! (never served, not even from grace); `expire_by_tag` writes
//! `___bc:te:<tag>` and is soft (the entry becomes stale, served within
//! grace). Timestamps are cached in L1 like any entry (for the store TTL
//! when there is an L2 to re-read, so other instances' invalidations are
//! seen without a bus too).

use crate::cache::Cache;
use crate::entry::{now_ms, Entry};
use crate::error::Error;
use crate::events::CacheEvent;
use crate::options::{CacheOptions, Settings};
use crate::serializer;

/// Prefix of hard-invalidation tag keys (BentoCache's layout).
pub const HARD_TAG_PREFIX: &str = "___bc:t:";
/// Prefix of soft-invalidation tag keys (Bento only; BentoCache ignores them).
pub const SOFT_TAG_PREFIX: &str = "___bc:te:";

/// Validity of an entry with respect to its tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagState {
    Valid,
    /// Soft-invalidated at this time (ms): stale from then on.
    Expired(u64),
    /// Hard-invalidated: never served.
    Deleted,
}

impl TagState {
    /// Make `entry` stale from the soft invalidation time.
    pub fn apply_to<T>(self, entry: &mut Entry<T>) {
        if let TagState::Expired(at) = self {
            entry.logical_expiration = Some(entry.logical_expiration.map_or(at, |old| old.min(at)));
        }
    }

    fn combine(self, timestamp_hard: u64, timestamp_soft: u64, created_at: u64) -> TagState {
        if self == TagState::Deleted || created_at <= timestamp_hard {
            TagState::Deleted
        } else if created_at <= timestamp_soft {
            match self {
                TagState::Expired(at) => TagState::Expired(at.min(timestamp_soft)),
                _ => TagState::Expired(timestamp_soft),
            }
        } else {
            self
        }
    }
}

impl Cache {
    /// Tag state from L1 alone; `None` when a timestamp is not in L1.
    pub(crate) fn tag_state_l1(&self, tags: &[String], created_at: u64) -> Option<TagState> {
        let l1 = self.inner.l1.as_ref()?;
        let now = now_ms();
        let timestamp = |key: String| {
            let entry = l1.get_now(&key)?;
            self.fresh_timestamp(&entry, now)
        };
        let mut state = TagState::Valid;
        for tag in tags {
            let hard = timestamp(format!("{HARD_TAG_PREFIX}{tag}"))?;
            let soft = timestamp(format!("{SOFT_TAG_PREFIX}{tag}"))?;
            state = state.combine(hard, soft, created_at);
        }
        Some(state)
    }

    /// Tag state, reading timestamps from L1, then L2.
    pub(crate) async fn tag_state(
        &self,
        tags: &[String],
        created_at: u64,
        settings: &Settings,
    ) -> Result<TagState, Error> {
        if tags.is_empty() {
            return Ok(TagState::Valid);
        }
        if let Some(state) = self.tag_state_l1(tags, created_at) {
            return Ok(state);
        }
        let mut state = TagState::Valid;
        for tag in tags {
            let hard = self.tag_timestamp(&format!("{HARD_TAG_PREFIX}{tag}"), settings).await?;
            let soft = self.tag_timestamp(&format!("{SOFT_TAG_PREFIX}{tag}"), settings).await?;
            state = state.combine(hard, soft, created_at);
        }
        Ok(state)
    }

    /// The invalidation time a tag entry of L1 holds, if still fresh.
    fn fresh_timestamp(&self, entry: &crate::l1::L1Entry, now: u64) -> Option<u64> {
        entry.is_fresh(now).then(|| entry.value::<u64>(&*self.inner.core.serializer)).flatten()
    }

    /// The invalidation time stored at `key` (0 = never invalidated).
    async fn tag_timestamp(&self, key: &str, settings: &Settings) -> Result<u64, Error> {
        let now = now_ms();
        if let Some(timestamp) = self.l1_get(key).await.and_then(|entry| self.fresh_timestamp(&entry, now)) {
            return Ok(timestamp);
        }
        let mut timestamp = 0;
        if let Some(l2) = &self.inner.l2 {
            match l2.call(l2.driver.get(key)).await {
                Ok(Some(bytes)) => match serializer::decode::<u64>(&*self.inner.core.serializer, &bytes) {
                    Ok(entry) => timestamp = entry.value,
                    Err(error) => tracing::warn!(key, %error, "undecodable tag entry ignored"),
                },
                Ok(None) => {}
                Err(source) => self.l2_failed(key, source, settings)?,
            }
        }
        // Cache what we learned; with an L2 re-read it after the store TTL.
        let logical_expiration = match (&self.inner.l2, settings.ttl) {
            (Some(_), Some(ttl)) => Some(crate::entry::ms_after(now, ttl)),
            _ => None,
        };
        let entry = Entry { value: timestamp, logical_expiration, tags: Vec::new(), created_at: now };
        self.store_l1(key, &entry, None, now, 0).await;
        Ok(timestamp)
    }

    async fn invalidate_tags(&self, tags: &[&str], prefix: &str) -> Result<bool, Error> {
        let settings = self.settings_with(&CacheOptions::new().forever())?;
        let now = now_ms();
        let mut stored = true;
        for tag in tags {
            let key = format!("{prefix}{tag}");
            let entry = Entry { value: now, logical_expiration: None, tags: Vec::new(), created_at: now };
            stored &= self.store_entry(&key, &entry, &settings).await?;
        }
        Ok(stored)
    }

    /// Hard-invalidate every entry of this namespace tagged with one of
    /// `tags`: from now on they are never served, not even from grace.
    pub async fn delete_by_tag(&self, tags: &[&str]) -> Result<bool, Error> {
        let stored = self.invalidate_tags(tags, HARD_TAG_PREFIX).await?;
        for tag in tags {
            self.emit(|store, key| CacheEvent::Deleted { store, key }, &format!("{HARD_TAG_PREFIX}{tag}"));
        }
        Ok(stored)
    }

    /// Soft-invalidate every entry of this namespace tagged with one of
    /// `tags`: they become stale (served within grace while a refresh runs).
    pub async fn expire_by_tag(&self, tags: &[&str]) -> Result<bool, Error> {
        let stored = self.invalidate_tags(tags, SOFT_TAG_PREFIX).await?;
        for tag in tags {
            self.emit(|store, key| CacheEvent::Expired { store, key }, &format!("{SOFT_TAG_PREFIX}{tag}"));
        }
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::TagState;

    #[test]
    fn hard_wins_over_soft_and_ties_invalidate() {
        assert_eq!(TagState::Valid.combine(0, 0, 10), TagState::Valid);
        assert_eq!(TagState::Valid.combine(10, 0, 10), TagState::Deleted);
        assert_eq!(TagState::Valid.combine(0, 12, 10), TagState::Expired(12));
        assert_eq!(TagState::Expired(12).combine(11, 0, 10), TagState::Deleted);
    }
}
