//! What a `struct file` says about itself, read the same way by the iterator and the tracing
//! programs: through a BTF-typed pointer (the context's, or a traced function's argument) at offsets
//! from the frozen config.

use super::load;

/// A file's open flags, offset and raw reference count, and its inode's number, mode and device.
pub struct FileFacts {
    pub flags: u32,
    pub pos: i64,
    /// As stored: add `IterConfig::refs_bias` for the count.
    pub raw_refs: u64,
    pub inode: *const u8,
    pub ino: u64,
    pub mode: u16,
    pub dev: u32,
}

/// Reads [`FileFacts`] of `file`.
///
/// `file` must be a non-null pointer the verifier knows as a `struct file` (`PTR_TO_BTF_ID`; an
/// untrusted one, as `bpf_rdonly_cast` gives, too: its loads are then checked as probe reads).
#[inline(always)]
pub fn file_facts(file: *const u8) -> FileFacts {
    let (flags_offset, pos_offset, refs_offset, inode_offset) = (
        config!(offsets.file_flags),
        config!(offsets.file_pos),
        config!(offsets.file_refs),
        config!(offsets.file_inode),
    );
    // SAFETY: `file` is a non-null typed pointer (the caller's contract); the offsets are frozen
    // constants the verifier checks against BTF.
    let mut facts = unsafe {
        FileFacts {
            flags: load(file, flags_offset),
            pos: load(file, pos_offset),
            raw_refs: load(file, refs_offset),
            inode: load(file, inode_offset),
            ino: 0,
            mode: 0,
            dev: 0,
        }
    };
    let inode = facts.inode;
    if !inode.is_null() {
        let (ino_offset, mode_offset, sb_offset, dev_offset) = (
            config!(offsets.inode_ino),
            config!(offsets.inode_mode),
            config!(offsets.inode_sb),
            config!(offsets.sb_dev),
        );
        // SAFETY: `inode` is a non-null typed pointer loaded through `file`; frozen offsets.
        unsafe {
            facts.ino = load(inode, ino_offset);
            facts.mode = load(inode, mode_offset);
            let sb: *const u8 = load(inode, sb_offset);
            if !sb.is_null() {
                facts.dev = load(sb, dev_offset);
            }
        }
    }
    facts
}
