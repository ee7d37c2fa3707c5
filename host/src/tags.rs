//! Tags, lazily and by timestamp (the BentoCache/FusionCache approach):
//! invalidating a tag writes one entry, `___bc:t:<tag>` = now (ms), in the
//! namespace of the handle; an entry created at or before one of its tags'
//! timestamps is invalid the next time it is read. `delete_by_tag` is hard
//! (never served, not even from grace); `expire_by_tag` writes
//! `___bc:te:<tag>` and is soft (the entry becomes stale, served within
//! grace). Timestamps are cached in L1 like any entry (for the store TTL
//! when there is an L2 to re-read, so other instances' invalidations are
//! seen without a bus too).

//!
//! Tag keys expire (BentoCache gives them an expiry too, Bento used to
//! keep them forever): a tag key lives as long as the longest-lived tagged
//! entry of its store can ([`tag_key_lifetime`]), so it never disappears
//! while an entry it invalidates could still be read, and never piles up
//! beyond that. The state of an entry's tags is read by the read pipeline
//! (`read.rs`); invalidations are written by the write pipeline.

use crate::entry::Entry;
use std::time::Duration;

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

    pub(crate) fn combine(self, timestamp_hard: u64, timestamp_soft: u64, created_at: u64) -> TagState {
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

/// The physical lifetime of a tag key written now: it must outlive every
/// entry it can invalidate, i.e. every tagged entry created before it, and
/// no longer. That is the longest physical lifetime (ttl + grace) of a
/// tagged entry of the store: the store's own (`store_lifetime`), or a
/// longer per-operation one this process wrote (`longest_written_ms`,
/// `u64::MAX` = forever). Forever when either is forever.
pub(crate) fn tag_key_lifetime(store_lifetime: Option<Duration>, longest_written_ms: u64) -> Option<Duration> {
    let store = store_lifetime?;
    if longest_written_ms == u64::MAX {
        return None;
    }
    Some(store.max(Duration::from_millis(longest_written_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys_outlive_every_entry_they_can_invalidate() {
        let hour = Duration::from_secs(3600);
        assert_eq!(tag_key_lifetime(Some(hour), 0), Some(hour));
        assert_eq!(tag_key_lifetime(Some(hour), 2 * 3_600_000), Some(2 * hour));
        assert_eq!(tag_key_lifetime(Some(hour), u64::MAX), None);
        assert_eq!(tag_key_lifetime(None, 0), None);
    }

    #[test]
    fn hard_wins_over_soft_and_ties_invalidate() {
        assert_eq!(TagState::Valid.combine(0, 0, 10), TagState::Valid);
        assert_eq!(TagState::Valid.combine(10, 0, 10), TagState::Deleted);
        assert_eq!(TagState::Valid.combine(0, 12, 10), TagState::Expired(12));
        assert_eq!(TagState::Expired(12).combine(11, 0, 10), TagState::Deleted);
    }
}
