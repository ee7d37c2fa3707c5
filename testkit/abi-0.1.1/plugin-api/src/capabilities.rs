//! What a driver can do beyond the base contract (SPEC §3), declared by the
//! driver and read by the host. Crosses the boundary as a plain bit set.

use abi_stable::StableAbi;
use std::fmt;

/// An open set of optional driver features. New capabilities are new bits:
/// a host ignores bits it does not know, and a driver built before a bit
/// existed never sets it. Drivers built against plugin-api 0.1.0 cannot
/// declare anything and report [`Capabilities::NONE`].
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// No optional feature.
    pub const NONE: Capabilities = Capabilities(0);
    /// Distributed lock: [`crate::CacheDriver::try_lock`] and
    /// [`crate::CacheDriver::unlock`] are implemented, atomically in the
    /// backend, so a lock taken through one handle excludes every handle
    /// (every connection, every process) on the same storage. Since 0.1.1.
    pub const LOCK: Capabilities = Capabilities(1);

    /// True when every capability of `other` is in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` plus the capabilities of `other`.
    pub const fn with(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: &[(Capabilities, &str)] = &[(Capabilities::LOCK, "lock")];
        let mut names: Vec<String> =
            NAMES.iter().filter(|(bit, _)| self.contains(*bit)).map(|(_, name)| name.to_string()).collect();
        let unknown = NAMES.iter().fold(self.0, |rest, (bit, _)| rest & !bit.0);
        if unknown != 0 {
            names.push(format!("unknown({unknown:#x})"));
        }
        write!(f, "Capabilities({})", if names.is_empty() { "none".to_string() } else { names.join(" | ") })
    }
}

#[cfg(test)]
mod tests {
    use super::Capabilities;

    #[test]
    fn contains_and_debug() {
        assert!(Capabilities::LOCK.contains(Capabilities::NONE));
        assert!(!Capabilities::NONE.contains(Capabilities::LOCK));
        assert!(Capabilities::NONE.with(Capabilities::LOCK).contains(Capabilities::LOCK));
        assert_eq!(format!("{:?}", Capabilities::NONE), "Capabilities(none)");
        assert_eq!(format!("{:?}", Capabilities(1 | 8)), "Capabilities(lock | unknown(0x8))");
    }
}
