//! The seam between a store and its bus (SPEC §6). A store announces every
//! successful write, delete, clear and expire as a [`Change`] through one
//! [`Notifier`]; the bus side (`crate::bus`) encodes it, publishes it with
//! retries, and hands changes received from other instances back to
//! [`crate::Store::apply_change`]. Values never travel.

/// What happened to the keys of a [`Change`]. Wire bytes: Set 1, Clear 2,
/// Delete 3, Expire 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Keys were written: other L1 copies are stale.
    Set,
    /// The namespace was cleared.
    Clear,
    /// Keys were deleted.
    Delete,
    /// Keys were logically expired.
    Expire,
}

impl ChangeKind {
    /// The type byte on the bus.
    pub const fn to_byte(self) -> u8 {
        match self {
            ChangeKind::Set => 1,
            ChangeKind::Clear => 2,
            ChangeKind::Delete => 3,
            ChangeKind::Expire => 4,
        }
    }
}

/// One change: `keys` (relative to `namespace`) of the full prefix
/// `namespace` (e.g. `bentocache` or `bentocache:posts`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// Full key prefix of the cache handle.
    pub namespace: String,
    /// Keys relative to `namespace`; empty for [`ChangeKind::Clear`].
    pub keys: Vec<String>,
}

/// Publishes a store's changes to other instances. Fire and forget: the
/// implementation owns queuing and retries, and must not block.
pub trait Notifier: Send + Sync + 'static {
    /// Publish `change` (never called for changes that were received).
    fn publish(&self, change: Change);
}

impl<F: Fn(Change) + Send + Sync + 'static> Notifier for F {
    fn publish(&self, change: Change) {
        self(change)
    }
}
