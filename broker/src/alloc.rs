//! A global allocator that survives forged array lengths in Kafka requests.
//!
//! `kafka-protocol` 0.18 (the latest release) sizes each decoded array with
//! `Vec::with_capacity(n)` for the length `n` read off the wire, before reading any
//! element (upstream pull requests #152 and #200 are open). A 20-byte Metadata request
//! claiming 2^31 topics asks for ~150 GB; the system allocator refuses, and Rust aborts
//! the process: one packet would stop the broker for every client.
//!
//! [`LazyHugeAlloc`] serves allocations of [`HUGE_ALLOCATION_BYTES`] or more with an
//! anonymous `mmap(MAP_NORESERVE)`: address space, not memory. The decoder then fails
//! on the first missing element, as it should, and the mapping is returned untouched.
//! No legitimate allocation of the broker comes near that size (frames are capped by
//! `socket.request.max.bytes`, 100 MiB by default), and if one did it would behave as
//! ordinary lazily-committed memory. Everything smaller goes to the system allocator.
//! With `vm.overcommit_memory = 2` the kernel refuses such mappings too; the README says
//! so. Remove this module once the codec bounds its pre-allocation.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are mapped lazily.
pub const HUGE_ALLOCATION_BYTES: usize = 1 << 30;

/// The system allocator, with lazy mappings for huge requests. Install it in a binary
/// with `#[global_allocator] static A: LazyHugeAlloc = LazyHugeAlloc;`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LazyHugeAlloc;

fn is_huge(layout: &Layout) -> bool {
    // mmap returns page-aligned memory; larger alignments stay with the system allocator.
    layout.size() >= HUGE_ALLOCATION_BYTES && layout.align() <= 4096
}

// SAFETY: every pointer handed out is either from `System` (and returned to it) or from
// `mmap` of exactly `layout.size()` bytes (and returned with `munmap` of the same size);
// `is_huge` of the same layout decides which, so the pairs always match. mmap memory is
// page-aligned, which satisfies any alignment `is_huge` accepts, and zero-filled, which
// satisfies `alloc_zeroed`.
unsafe impl GlobalAlloc for LazyHugeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_huge(&layout) {
            return System.alloc(layout);
        }
        let p = libc::mmap(
            std::ptr::null_mut(),
            layout.size(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            std::ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            self.alloc(layout)
        } else {
            System.alloc_zeroed(layout)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            libc::munmap(ptr.cast(), layout.size());
        } else {
            System.dealloc(ptr, layout);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        match (is_huge(&layout), is_huge(&new_layout)) {
            (false, false) => System.realloc(ptr, layout, new_size),
            // Both mapped: let the kernel move the pages instead of copying them.
            (true, true) => {
                let p = libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE);
                if p == libc::MAP_FAILED {
                    std::ptr::null_mut()
                } else {
                    p.cast()
                }
            }
            // One side is small, so the copy is small.
            _ => {
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_allocations_are_lazy_and_small_ones_are_ordinary() {
        let a = LazyHugeAlloc;
        unsafe {
            // 256 GiB: far beyond this machine's memory, yet only address space.
            let layout = Layout::from_size_align(256 << 30, 8).unwrap();
            let p = a.alloc(layout);
            assert!(!p.is_null());
            *p = 7; // touches one page
            let grown = a.realloc(p, layout, (256 << 30) + 4096);
            assert!(!grown.is_null());
            assert_eq!(*grown, 7);
            a.dealloc(
                grown,
                Layout::from_size_align((256 << 30) + 4096, 8).unwrap(),
            );

            let small = Layout::from_size_align(64, 8).unwrap();
            let q = a.alloc_zeroed(small);
            assert!(!q.is_null() && *q == 0);
            let q = a.realloc(q, small, 128);
            a.dealloc(q, Layout::from_size_align(128, 8).unwrap());
        }
    }
}
