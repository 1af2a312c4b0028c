//! What the fuzz targets share: their input as a stored object, and a heap meter.
//!
//! The targets feed emwrite's readers bytes that a client or a corrupt object could hold. Beyond
//! "no panic", two of them check memory: a reader must not let a few bytes of input make it
//! allocate far more than the limits it documents, so [`MeteredAlloc`] is every target's global
//! allocator and [`heap_peak_of`] reads the heap's high-water mark around the call under test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use emwrite::storage::location::{Location, ObjectPath};
use emwrite::storage::memory::MemoryStorage;

/// The system allocator, counting live bytes and their high-water mark.
pub struct MeteredAlloc;

#[global_allocator]
static ALLOC: MeteredAlloc = MeteredAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` with the same arguments; the counters only observe.
unsafe impl GlobalAlloc for MeteredAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `layout` is `System`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        // SAFETY: `p` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(p, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's to check.
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        q
    }
}

/// Runs `f` and returns its result with the most heap it held at once beyond what was live
/// before. Calloc'd pages that are never touched count in full: a wasm instance's linear memory
/// grows by the whole allocation whether or not it is written.
pub fn heap_peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - before)
}

/// The name every target reads its input as; [`stored`] puts the input there.
pub fn object() -> ObjectPath {
    Location::parse("source", "fuzz")
        .expect("a valid bucket name")
        .object("0")
}

/// A store (emwrite's own in-memory one) holding the fuzz input as [`object`].
pub fn stored(input: &[u8]) -> MemoryStorage {
    let store = MemoryStorage::default();
    store.insert(&object(), input.to_vec());
    store
}
