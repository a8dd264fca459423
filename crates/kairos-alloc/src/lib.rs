//! The global allocator of kairos' binaries: mimalloc (version 2).
//!
//! The engine allocates and frees many small objects per event (the events
//! themselves, their properties, reason ids); mimalloc's thread-local free
//! lists handle that pattern markedly better than glibc's malloc (see
//! BENCHMARKS.md). Version 2, not 3: version 3 serves a block whose size is
//! not a power of two (a 40- or 56-byte list or box) by over-allocating once
//! the page of its size runs out of free blocks, which cost the engine time
//! and memory (BENCHMARKS.md, 2026-12-06).
//!
//! Why not the `mimalloc` crate's `MiMalloc`: it asks for every block
//! through mimalloc's aligned entry points (`mi_malloc_aligned`,
//! `mi_realloc_aligned`), which check the alignment of the free block at
//! run time, about 25 instructions more per call than `mi_malloc`. Every
//! block mimalloc hands out is at least word-aligned (its size classes
//! are whole words), so a layout that asks for no more than a word goes to
//! the plain entry points; anything stricter still goes to the aligned
//! ones. On the cart job that is 2 % of the engine's instructions
//! (BENCHMARKS.md, eighth session of 2026-12-06).

#![deny(missing_docs)]

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// mimalloc as the global allocator:
/// `#[global_allocator] static ALLOCATOR: kairos_alloc::Allocator = kairos_alloc::Allocator;`
pub struct Allocator;

/// The alignment every mimalloc block has: a machine word.
const WORD: usize = std::mem::size_of::<usize>();

// SAFETY: each method hands the request to the mimalloc function with the
// same contract; the plain ones only for alignments of at most a word, which
// every mimalloc block satisfies.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if layout.align() <= WORD {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if layout.align() <= WORD {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, pointer: *mut u8, _layout: Layout) {
        unsafe { mi_free(pointer.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            if layout.align() <= WORD {
                mi_realloc(pointer.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(pointer.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of every small size and alignment come back aligned, keep
    /// their bytes when grown, and zeroed ones are zero.
    #[test]
    fn blocks_are_aligned_as_asked_and_keep_their_bytes() {
        let allocator = Allocator;
        for align in [1, 2, 4, 8, 16, 32, 64] {
            for size in (1..=300).chain([1_000, 4_096, 70_000, 1 << 20]) {
                let layout = Layout::from_size_align(size, align).expect("layout");
                unsafe {
                    let block = allocator.alloc(layout);
                    assert!(!block.is_null());
                    assert_eq!(block as usize % align, 0, "size {size} align {align}");
                    block.write_bytes(0xa5, size);
                    let grown = allocator.realloc(block, layout, size * 2 + 8);
                    assert_eq!(grown as usize % align, 0, "grown {size} align {align}");
                    assert!((0..size).all(|i| *grown.add(i) == 0xa5));
                    let grown_layout =
                        Layout::from_size_align(size * 2 + 8, align).expect("layout");
                    allocator.dealloc(grown, grown_layout);
                    let zeroed = allocator.alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % align, 0);
                    assert!((0..size).all(|i| *zeroed.add(i) == 0));
                    allocator.dealloc(zeroed, layout);
                }
            }
        }
    }
}
