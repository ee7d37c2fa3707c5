//! One stored value with its physical expiry and accounted weight, both
//! packed into a single `u64` next to the value: the slot is cloned on every
//! hit, and 1 M L1 entries must fit in < 300 MB (an `Option<Instant>` plus a
//! `u64` weight cost 16 bytes more per entry).
//!
//! Layout: the high 42 bits are the expiry in milliseconds since the
//! store's [`Clock`] epoch (139 years; all ones = never), the low 22 bits
//! the weight as a small float (exact below 2^17, above that rounded up by
//! less than 2^-16 of its value, saturating at ~2^48 bytes).

use std::time::Duration;

const WEIGHT_BITS: u32 = 22;
const WEIGHT_MASK: u64 = (1 << WEIGHT_BITS) - 1;
/// Mantissa bits of the weight; the 5 bits above hold the shift.
const MANTISSA_BITS: u32 = 17;
const MANTISSA_MASK: u64 = (1 << MANTISSA_BITS) - 1;
const MAX_SHIFT: u32 = (1 << (WEIGHT_BITS - MANTISSA_BITS)) - 1;
/// The expiry meaning "never" (every expiry bit set).
const NEVER: u64 = u64::MAX >> WEIGHT_BITS;

/// The store's time base: whole milliseconds since the store was created,
/// read from the TSC (quanta), so an expiry fits in 42 bits.
pub(crate) struct Clock {
    epoch: quanta::Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock { epoch: quanta::Instant::now() }
    }

    /// Milliseconds elapsed since the epoch, rounded down.
    pub fn now_ms(&self) -> u64 {
        let elapsed = quanta::Instant::now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    /// The expiry of an entry stored now for `ttl`, rounded up to the next
    /// millisecond so an entry never expires early; [`NEVER`] beyond the
    /// 139-year range.
    fn expiry_after(&self, ttl: Duration) -> u64 {
        let deadline = quanta::Instant::now().saturating_duration_since(self.epoch).saturating_add(ttl);
        let partial_ms = u64::from(!deadline.subsec_nanos().is_multiple_of(1_000_000));
        u64::try_from(deadline.as_millis()).map_or(NEVER, |ms| ms.saturating_add(partial_ms).min(NEVER))
    }
}

/// The weight as stored: a 17-bit mantissa and a 5-bit shift, rounded up.
fn encode_weight(weight: u64) -> u64 {
    let bits = u64::BITS - weight.leading_zeros();
    if bits <= MANTISSA_BITS {
        return weight;
    }
    let mut shift = bits - MANTISSA_BITS;
    let mut mantissa = weight.div_ceil(1 << shift);
    if mantissa > MANTISSA_MASK {
        // Rounding up carried into a new bit.
        shift += 1;
        mantissa >>= 1;
    }
    if shift > MAX_SHIFT {
        return WEIGHT_MASK;
    }
    (u64::from(shift) << MANTISSA_BITS) | mantissa
}

fn decode_weight(code: u64) -> u64 {
    (code & MANTISSA_MASK) << (code >> MANTISSA_BITS)
}

/// A stored value with its packed expiry and weight, as the store holds
/// it; [`crate::MemoryStore::get_slot_ignoring_expiry`] hands out a clone.
#[derive(Clone)]
pub struct Slot<V> {
    pub(crate) value: V,
    expiry_and_weight: u64,
}

impl<V> Slot<V> {
    /// The value.
    #[inline]
    pub fn get(&self) -> &V {
        &self.value
    }

    /// The value, to take parts of in place.
    #[inline]
    pub fn get_mut(&mut self) -> &mut V {
        &mut self.value
    }

    /// The value, moved out.
    #[inline]
    pub fn into_inner(self) -> V {
        self.value
    }

    /// `value` living for `ttl` (`None` = forever) and weighing `weight`
    /// (see [`Slot::weight`] for the rounding).
    pub(crate) fn new(value: V, ttl: Option<Duration>, weight: u64, clock: &Clock) -> Slot<V> {
        let expiry = ttl.map_or(NEVER, |ttl| clock.expiry_after(ttl));
        Slot { value, expiry_and_weight: (expiry << WEIGHT_BITS) | encode_weight(weight) }
    }

    /// The accounted weight: the weight given to [`Slot::new`], rounded up
    /// by less than 2^-16 of it when above 2^17.
    pub(crate) fn weight(&self) -> u64 {
        decode_weight(self.expiry_and_weight & WEIGHT_MASK)
    }

    fn expiry(&self) -> u64 {
        self.expiry_and_weight >> WEIGHT_BITS
    }

    /// True until the expiry, given the current time.
    pub(crate) fn is_live_at(&self, now_ms: u64) -> bool {
        let expiry = self.expiry();
        expiry == NEVER || now_ms < expiry
    }

    /// Liveness, reading the clock only when the entry can expire.
    pub(crate) fn is_live(&self, clock: &Clock) -> bool {
        let expiry = self.expiry();
        expiry == NEVER || clock.now_ms() < expiry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_weights_are_exact() {
        for weight in [0, 1, 100, 4096, MANTISSA_MASK] {
            assert_eq!(decode_weight(encode_weight(weight)), weight);
        }
    }

    #[test]
    fn large_weights_round_up_by_less_than_one_in_65536() {
        for weight in [MANTISSA_MASK + 1, 1_000_003, (1 << 30) - 1, 5 << 30, 123_456_789_012_345] {
            let stored = decode_weight(encode_weight(weight));
            assert!(stored >= weight && stored - weight <= weight >> 16, "{weight} stored as {stored}");
        }
        assert!(decode_weight(encode_weight(u64::MAX)) >= 1 << 47);
    }

    #[test]
    fn expiry_and_weight_do_not_overlap() {
        let clock = Clock::new();
        let forever = Slot::new((), None, u64::MAX, &clock);
        assert!(forever.is_live_at(u64::MAX));
        let short = Slot::new((), Some(Duration::from_millis(5)), 7, &clock);
        assert_eq!(short.weight(), 7);
        assert!(short.is_live_at(0));
        assert!(!short.is_live_at(clock.now_ms() + 6));
    }

    #[test]
    fn a_ttl_beyond_the_range_is_forever() {
        let clock = Clock::new();
        assert!(Slot::new((), Some(Duration::MAX), 1, &clock).is_live_at(u64::MAX));
    }
}
