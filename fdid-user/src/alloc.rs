//! A global allocator for the `fdid` binary: the system allocator, except that blocks of 1 MiB and
//! more are anonymous mappings of their own, advised to use transparent huge pages.
//!
//! Why: a survey's big buffers (the record vector, 64 MB at 1M fds; the kernel BTF, 5 MB; aya's
//! stand-in type table, 4 MB; the JSON output) are written once from start to end. With 4 KiB pages
//! each page is a fault of its own — measured here (a VM) at about 3 µs a fault, 3.7 ms to fill 4.6
//! MB — where a 2 MiB page is one fault. Small allocations stay with the system allocator.
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: fdid::alloc::HugePageAlloc = fdid::alloc::HugePageAlloc;
//! ```

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks at least this large get their own mapping.
const LARGE: usize = 1 << 20;
/// Mappings are page-aligned: at least this much, whatever the page size.
const MIN_PAGE: usize = 4096;
/// Mappings are made in multiples of a huge page, which the kernel places on huge-page boundaries.
const HUGE_PAGE: usize = 2 << 20;

/// The length of the mapping behind a large block of `size` bytes.
fn mapping_len(size: usize) -> usize {
    size.next_multiple_of(HUGE_PAGE)
}

pub struct HugePageAlloc;

fn is_large(layout: Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= MIN_PAGE
}

/// A fresh zeroed mapping of `size` bytes with huge pages advised; null on failure.
fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory.
    let address = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            mapping_len(size),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if address == libc::MAP_FAILED {
        return std::ptr::null_mut();
    }
    advise_huge(address, mapping_len(size));
    address.cast()
}

/// Advises huge pages for a mapping of ours (a hint: failure only costs speed).
fn advise_huge(address: *mut libc::c_void, size: usize) {
    // SAFETY: `address..address + size` is a mapping this allocator made; madvise only changes how
    // it is backed.
    unsafe { libc::madvise(address, size, libc::MADV_HUGEPAGE) };
}

// SAFETY: large blocks are whole mappings of `mapping_len(size)` bytes (page-aligned, so aligned for
// any `align` up to MIN_PAGE), unmapped or remapped only with that length, which the caller's layout
// gives back; small blocks are the system allocator's throughout. `is_large` of a layout decides which, so
// a block is always freed by the side that made it.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout) {
            map(layout.size())
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout) {
            // Anonymous mappings are zeroed by the kernel.
            map(layout.size())
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_large(layout) {
            // SAFETY: `ptr` is a mapping of `layout.size()` bytes made by `map` (see above).
            unsafe { libc::munmap(ptr.cast(), mapping_len(layout.size())) };
        } else {
            // SAFETY: the caller's contract, passed on.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees that `new_size`, rounded up to `layout.align()`, does not
        // overflow, so this is a valid layout.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (is_large(layout), is_large(new_layout)) {
            (false, false) => {
                // SAFETY: the caller's contract, passed on.
                unsafe { System.realloc(ptr, layout, new_size) }
            }
            (true, true) => {
                let (old_len, new_len) = (mapping_len(layout.size()), mapping_len(new_size));
                if old_len == new_len {
                    // The mapping already holds the new size.
                    return ptr;
                }
                // SAFETY: `ptr` is a mapping of `old_len` bytes made by `map` (or a previous
                // remap); the kernel moves or resizes it, keeping its contents.
                let moved =
                    unsafe { libc::mremap(ptr.cast(), old_len, new_len, libc::MREMAP_MAYMOVE) };
                if moved == libc::MAP_FAILED {
                    return std::ptr::null_mut();
                }
                advise_huge(moved, new_len);
                moved.cast()
            }
            _ => {
                // SAFETY: `new_layout` is valid and non-zero (one side is large).
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are live, distinct, and at least this long.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    }
                    // SAFETY: `ptr` was allocated with `layout` by this allocator.
                    unsafe { self.dealloc(ptr, layout) };
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::{HugePageAlloc, LARGE};

    /// Contents survive every kind of move: small → large → larger → small.
    #[test]
    fn realloc_keeps_contents_across_the_large_threshold() {
        let allocator = HugePageAlloc;
        let fill = |ptr: *mut u8, len: usize| {
            for i in 0..len {
                // SAFETY: `ptr` has at least `len` writable bytes.
                unsafe { ptr.add(i).write((i % 251) as u8) };
            }
        };
        let check = |ptr: *const u8, len: usize| {
            for i in 0..len {
                // SAFETY: `ptr` has at least `len` readable bytes.
                assert_eq!(unsafe { ptr.add(i).read() }, (i % 251) as u8, "byte {i}");
            }
        };
        let small = Layout::from_size_align(1000, 8).unwrap();
        // SAFETY: a valid non-zero layout; every pointer below is used with the layout it has.
        unsafe {
            let ptr = allocator.alloc(small);
            fill(ptr, 1000);
            let ptr = allocator.realloc(ptr, small, LARGE + 10);
            assert!(!ptr.is_null());
            check(ptr, 1000);
            let large = Layout::from_size_align(LARGE + 10, 8).unwrap();
            fill(ptr, LARGE + 10);
            let ptr = allocator.realloc(ptr, large, 5 * LARGE);
            assert!(!ptr.is_null());
            check(ptr, LARGE + 10);
            let larger = Layout::from_size_align(5 * LARGE, 8).unwrap();
            let ptr = allocator.realloc(ptr, larger, 500);
            check(ptr, 500);
            allocator.dealloc(ptr, Layout::from_size_align(500, 8).unwrap());
        }
    }

    #[test]
    fn large_zeroed_blocks_are_zero() {
        let allocator = HugePageAlloc;
        let layout = Layout::from_size_align(3 * LARGE, 64).unwrap();
        // SAFETY: a valid non-zero layout, freed with itself.
        unsafe {
            let ptr = allocator.alloc_zeroed(layout);
            assert!(!ptr.is_null());
            assert_eq!(ptr as usize % 64, 0);
            assert!(
                (0..layout.size())
                    .step_by(4093)
                    .all(|i| ptr.add(i).read() == 0)
            );
            allocator.dealloc(ptr, layout);
        }
    }
}
