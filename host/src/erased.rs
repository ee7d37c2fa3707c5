//! [`ErasedValue`]: a type-erased L1 value stored inline when it fits in
//! four words (a `String`, a `Vec`, an `Arc<T>`, any number, a small struct
//! such as `{ id: u64, name: String }`…), else in an `Arc`. It is what makes an L1 hit cheap: the store's clone of an entry
//! is the clone of the value itself (one reference-count increment for an
//! `Arc`, nothing for a number), and a typed read moves that clone out
//! instead of cloning again — no `Arc<dyn Any>` around the value, so no
//! extra allocation per entry and no extra atomic operations per hit.
//!
//! This is the one place outside the loader and the ABI layer with
//! `unsafe` code (STYLE.md keeps it there), on purpose: against an
//! `Arc<dyn Any>` per value it measured 51 → 48 ns per L1 hit and 270 → 239
//! MiB for 1 M entries (BENCHMARKS.md), and no well-kept crate offers an
//! inline, clonable, by-value-downcastable erased value on stable Rust.
//! The tests below count live instances (no leak, no double drop) and
//! pass under valgrind.
//!
//! The unsafe code is confined to this file. Invariant: `vtable` was made
//! for the type `V` that `data` holds (inline when [`inline::<V>`], else as
//! an `Arc<V>`), and every access goes through that vtable or checks
//! `V`'s `TypeId` first.

use crate::error::BoxError;
use crate::serializer::Serializer;
use std::any::TypeId;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Arc;

/// What an erased value can be: cloned, shared between threads, and turned
/// into the serializer's bytes (to be read as another type, or written to a
/// local plugin).
pub(crate) trait Erasable: Clone + Send + Sync + 'static {
    fn encode(&self, serializer: &dyn Serializer) -> Result<Vec<u8>, BoxError>;
}

/// The inline room. Four words, not three: a struct of an id and a
/// `String` (the commonest cached shape) fits, so a hit clones it like a
/// bare map would instead of going through a shared `Arc` (an atomic
/// increment and decrement more per hit, and the allocation per entry).
type Words = [usize; 4];

/// True when `V` is stored inline rather than in an `Arc`.
const fn inline<V>() -> bool {
    size_of::<V>() <= size_of::<Words>() && align_of::<V>() <= align_of::<Words>()
}

struct VTable {
    type_id: fn() -> TypeId,
    clone: unsafe fn(&ErasedValue) -> ErasedValue,
    drop: unsafe fn(&mut ErasedValue),
    encode: unsafe fn(&ErasedValue, &dyn Serializer) -> Result<Vec<u8>, BoxError>,
}

struct VTableOf<V>(std::marker::PhantomData<V>);

impl<V: Erasable> VTableOf<V> {
    const VTABLE: VTable = VTable {
        type_id: TypeId::of::<V>,
        clone: |value| {
            if inline::<V>() {
                // SAFETY: the vtable is `V`'s (module invariant).
                return ErasedValue::new(unsafe { value.get_unchecked::<V>() }.clone());
            }
            let mut data = MaybeUninit::<Words>::uninit();
            // SAFETY: `value` holds an `Arc<V>`; the copy holds a new
            // reference to the same value.
            unsafe {
                let shared = &*value.data.as_ptr().cast::<Arc<V>>();
                data.as_mut_ptr().cast::<Arc<V>>().write(Arc::clone(shared));
            }
            ErasedValue { data, vtable: value.vtable }
        },
        drop: |value| {
            let data = value.data.as_mut_ptr();
            // SAFETY: `data` holds a live `V` (inline) or `Arc<V>`, dropped once.
            unsafe {
                if inline::<V>() {
                    ptr::drop_in_place(data.cast::<V>())
                } else {
                    ptr::drop_in_place(data.cast::<Arc<V>>())
                }
            }
        },
        encode: |value, serializer| {
            // SAFETY: the vtable is `V`'s (module invariant).
            unsafe { value.get_unchecked::<V>() }.encode(serializer)
        },
    };
}

/// What an [`ErasedValue`] holds after [`ErasedValue::take`]: nothing.
#[derive(Clone)]
struct Taken;

impl Erasable for Taken {
    fn encode(&self, _: &dyn Serializer) -> Result<Vec<u8>, BoxError> {
        Err("the cached value was already moved out".into())
    }
}

/// The vtable of an emptied value: one `static`, so that one address
/// tells that a value was taken (a `const` may exist once per codegen
/// unit).
static TAKEN: VTable = VTableOf::<Taken>::VTABLE;

/// A value of some [`Erasable`] type, inline or in an `Arc`.
pub(crate) struct ErasedValue {
    data: MaybeUninit<Words>,
    vtable: &'static VTable,
}

// SAFETY: every `Erasable` type is `Send + Sync`, and so is `Arc` of one.
unsafe impl Send for ErasedValue {}
// SAFETY: as above.
unsafe impl Sync for ErasedValue {}

impl ErasedValue {
    pub fn new<V: Erasable>(value: V) -> ErasedValue {
        let mut data = MaybeUninit::<Words>::uninit();
        // SAFETY: `Words` is large and aligned enough for what is written.
        unsafe {
            if inline::<V>() {
                data.as_mut_ptr().cast::<V>().write(value);
            } else {
                data.as_mut_ptr().cast::<Arc<V>>().write(Arc::new(value));
            }
        }
        ErasedValue { data, vtable: &VTableOf::<V>::VTABLE }
    }

    fn is<V: Erasable>(&self) -> bool {
        // Same vtable address: certainly `V`. Otherwise compare type ids
        // (one vtable constant may exist once per codegen unit).
        ptr::eq(self.vtable, &VTableOf::<V>::VTABLE) || (self.vtable.type_id)() == TypeId::of::<V>()
    }

    /// # Safety
    /// `self` must hold a `V`.
    unsafe fn get_unchecked<V: Erasable>(&self) -> &V {
        let data = self.data.as_ptr();
        // SAFETY: the caller guarantees `data` holds a `V` or an `Arc<V>`.
        unsafe {
            if inline::<V>() {
                &*data.cast::<V>()
            } else {
                &*data.cast::<Arc<V>>()
            }
        }
    }

    /// The value if it is a `V`.
    pub fn downcast_ref<V: Erasable>(&self) -> Option<&V> {
        // SAFETY: just checked.
        self.is::<V>().then(|| unsafe { self.get_unchecked::<V>() })
    }

    /// The value moved out if it is a `V` (cloned out of a shared `Arc`),
    /// leaving nothing behind: the L1 hit reads its entry where the store's
    /// lookup put it, and takes the value from there instead of moving the
    /// whole entry first (see `MemoryStore::get_slot_ignoring_expiry`).
    #[inline]
    pub fn take<V: Erasable>(&mut self) -> Option<V> {
        if !self.is::<V>() {
            return None;
        }
        let data = self.data.as_ptr();
        // SAFETY: `data` holds a `V` (or `Arc<V>`), read out exactly once:
        // the vtable becomes `Taken`'s, whose drop does nothing (`Taken`
        // is a zero-sized type, inline: it reads nothing of `data`).
        let value = unsafe {
            if inline::<V>() {
                data.cast::<V>().read()
            } else {
                Arc::unwrap_or_clone(data.cast::<Arc<V>>().read())
            }
        };
        self.vtable = &TAKEN;
        Some(value)
    }

    /// The value's bytes in `serializer`'s format.
    pub fn encode(&self, serializer: &dyn Serializer) -> Result<Vec<u8>, BoxError> {
        // SAFETY: the vtable is the held type's.
        unsafe { (self.vtable.encode)(self, serializer) }
    }
}

impl std::fmt::Debug for ErasedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErasedValue")
    }
}

impl Clone for ErasedValue {
    fn clone(&self) -> ErasedValue {
        // SAFETY: the vtable is the held type's.
        unsafe { (self.vtable.clone)(self) }
    }
}

impl Drop for ErasedValue {
    /// Inlined: what an L1 hit leaves after taking the value has nothing
    /// to drop, and the hit should not pay a call to find that out.
    #[inline]
    fn drop(&mut self) {
        if !ptr::eq(self.vtable, &TAKEN) {
            self.drop_value();
        }
    }
}

impl ErasedValue {
    fn drop_value(&mut self) {
        // The L1 drops replaced and cleared values while holding a shard's
        // write lock, which a panic would poison for every later reader:
        // a value whose `Drop` panics is reported, not propagated.
        // SAFETY: the vtable is the held type's; dropped once (a panicking
        // drop is not retried).
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (self.vtable.drop)(self) }));
        if dropped.is_err() {
            tracing::error!("a cached value panicked while being dropped; the panic was contained");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serializer::JsonSerializer;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, PartialEq, Debug)]
    struct Plain<T>(T);

    impl<T: serde::Serialize + Clone + Send + Sync + 'static> Erasable for Plain<T> {
        fn encode(&self, serializer: &dyn Serializer) -> Result<Vec<u8>, BoxError> {
            serializer.serialize(&self.0)
        }
    }

    /// Counts live instances, to check nothing leaks or drops twice.
    static LIVE: AtomicUsize = AtomicUsize::new(0);

    #[derive(Debug, PartialEq)]
    struct Counted<const N: usize>([u64; N]);

    impl<const N: usize> Counted<N> {
        fn new() -> Self {
            LIVE.fetch_add(1, Ordering::SeqCst);
            Counted([7; N])
        }
    }

    impl<const N: usize> Clone for Counted<N> {
        fn clone(&self) -> Self {
            Counted::new()
        }
    }

    impl<const N: usize> Drop for Counted<N> {
        fn drop(&mut self) {
            LIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl<const N: usize> Erasable for Counted<N> {
        fn encode(&self, serializer: &dyn Serializer) -> Result<Vec<u8>, BoxError> {
            serializer.serialize(&self.0.to_vec())
        }
    }

    #[test]
    fn small_and_large_values_round_trip_without_leaks() {
        assert!(inline::<Counted<4>>() && !inline::<Counted<5>>());
        {
            let small = ErasedValue::new(Counted::<4>::new());
            let large = ErasedValue::new(Counted::<8>::new());
            let (mut small2, mut large2) = (small.clone(), large.clone());
            assert_eq!(LIVE.load(Ordering::SeqCst), 3, "inline clones clone, Arc clones share");
            assert!(small2.take::<Counted<8>>().is_none(), "not the held type: nothing taken");
            assert_eq!(small2.take::<Counted<4>>().unwrap().0, [7; 4]);
            // The large value is shared with `large`: moving it out clones it.
            assert_eq!(large2.take::<Counted<8>>().unwrap().0, [7; 8]);
            assert_eq!(LIVE.load(Ordering::SeqCst), 2, "the caller dropped what it took; `small2` holds nothing");
            assert!(large.downcast_ref::<Counted<4>>().is_none());
            assert_eq!(large.encode(&JsonSerializer).unwrap(), b"[7,7,7,7,7,7,7,7]");
            // Emptied: nothing to take again, to encode, or to drop.
            assert!(small2.take::<Counted<4>>().is_none() && small2.downcast_ref::<Counted<4>>().is_none());
            assert!(small2.encode(&JsonSerializer).is_err());
            assert!(small2.clone().take::<Counted<4>>().is_none());
        }
        assert_eq!(LIVE.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn common_value_types_are_inline() {
        assert!(inline::<Plain<String>>() && inline::<Plain<Vec<u8>>>() && inline::<Plain<Arc<String>>>());
        // The struct shape of most cached values: an id and a string.
        assert!(inline::<Plain<(u64, String)>>());
        let value = ErasedValue::new(Plain("Ada".to_string()));
        assert_eq!(value.downcast_ref::<Plain<String>>(), Some(&Plain("Ada".to_string())));
        assert_eq!(value.encode(&JsonSerializer).unwrap(), b"\"Ada\"");
        assert_eq!(value.clone().take::<Plain<String>>().unwrap(), Plain("Ada".to_string()));
        assert!(value.clone().take::<Plain<u32>>().is_none());
    }
}
