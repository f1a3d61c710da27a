//! The global allocator: mimalloc, called the way its own `malloc` is.
//!
//! The `mimalloc` crate sends every allocation through `mi_malloc_aligned`,
//! whose fast path only serves blocks up to 1 KiB that happen to sit at the
//! asked alignment; every other block (a request's boxed future is about
//! 1.8 KiB) takes the generic aligned path. Every mimalloc block is aligned
//! to at least a machine word (its size classes are whole words), so a
//! layout asking no more than that is served by plain `mi_malloc`, as a C
//! program's `malloc` would be. Measured with callgrind
//! (`bench/perf/cg.sh`): see docs/benchmarks.md.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The alignment every mimalloc block has (`mi_realloc_aligned` relies on
/// the same bound: it reallocates plainly up to it).
const WORD: usize = std::mem::size_of::<usize>();

pub struct Mimalloc;

// SAFETY: each method hands mimalloc a layout's size and, above a word, its
// alignment; mimalloc returns null or a block of at least that size at that
// alignment (a word at least for the plain calls), and `mi_free` takes any
// block mimalloc gave, aligned or not.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { by_alignment(layout, mi_malloc, mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { by_alignment(layout, mi_zalloc, mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the trait's contract).
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the trait's
        // contract); the new block keeps the alignment.
        unsafe {
            if layout.align() <= WORD {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

type Plain = unsafe extern "C" fn(usize) -> *mut c_void;
type Aligned = unsafe extern "C" fn(usize, usize) -> *mut c_void;

/// `plain` for a layout that asks at most a word's alignment, else
/// `aligned` (the pair inlines to one of the two calls).
///
/// # Safety
/// `layout` has a nonzero size, as `GlobalAlloc::alloc` requires.
#[inline(always)]
unsafe fn by_alignment(layout: Layout, plain: Plain, aligned: Aligned) -> *mut u8 {
    // SAFETY: mimalloc's allocation functions take any size and a power
    // of two alignment, which a `Layout` always has.
    unsafe {
        if layout.align() <= WORD {
            plain(layout.size()).cast()
        } else {
            aligned(layout.size(), layout.align()).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment a Rust type can ask, allocated, written,
    /// grown and freed: each block comes back at its alignment.
    #[test]
    fn blocks_keep_the_asked_alignment_through_growth() {
        let allocator = Mimalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 7, 8, 16, 24, 40, 100, 1000, 1864, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a nonzero layout; the block is written within its
                // size, grown once, and freed with its last layout.
                unsafe {
                    for zeroed in [false, true] {
                        let p = if zeroed {
                            allocator.alloc_zeroed(layout)
                        } else {
                            allocator.alloc(layout)
                        };
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "size {size} align {align}");
                        if zeroed {
                            assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                        }
                        p.write_bytes(0xa5, size);
                        let grown = allocator.realloc(p, layout, size * 3);
                        assert!(!grown.is_null());
                        assert_eq!(grown as usize % align, 0, "grown {size} align {align}");
                        assert!(std::slice::from_raw_parts(grown, size)
                            .iter()
                            .all(|&b| b == 0xa5));
                        let grown_layout = Layout::from_size_align(size * 3, align).unwrap();
                        allocator.dealloc(grown, grown_layout);
                    }
                }
            }
        }
    }
}
