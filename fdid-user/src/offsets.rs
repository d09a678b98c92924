//! Resolves the kernel struct members the iterator reads from the running kernel's BTF.
//!
//! Nothing is compiled in: each member is looked up by name, its size and kind are checked against what
//! the program loads, and a missing member is an error that names it.

use fdid_ebpf::FieldOffsets;

use crate::btf::{Btf, BtfError, MemberKind};

/// Offsets for the program plus what differs between kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    pub offsets: FieldOffsets,
    /// Added (wrapping) to the raw reference count so that the record holds the number of references
    /// other than the iterator's own (it holds one while the program runs): 0 for `file.f_ref`
    /// (file_ref_t stores count − 1, 6.13+), −1 for `file.f_count` (atomic_long_t, up to 6.12).
    pub refs_bias: u64,
    /// Which member holds the reference count.
    pub refs_member: &'static str,
    /// Whether the iterator link takes a pid filter (`bpf_iter_link_info.task`, 6.1+).
    pub kernel_pid_filter: bool,
    /// BTF type id of `bpf_iter_task_file`, the function the program attaches to.
    pub task_file_func: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error(
        "BTF member `{strukt}.{member}` is {found_size} bytes ({found_kind:?}), fdid reads {size} bytes ({kind:?})"
    )]
    Shape {
        strukt: &'static str,
        member: &'static str,
        size: u32,
        kind: MemberKind,
        found_size: u32,
        found_kind: MemberKind,
    },
    #[error("BTF struct `file` has neither `f_ref` nor `f_count`")]
    NoRefCount,
    #[error("this kernel has no task_file BPF iterator (bpf_iter_task_file missing from BTF)")]
    NoTaskFileIterator,
}

fn member(
    btf: &Btf,
    strukt: &'static str,
    member: &'static str,
    size: u32,
    kinds: &[MemberKind],
) -> Result<u32, LayoutError> {
    let found = btf.member(strukt, member)?;
    if found.size != size || !kinds.contains(&found.kind) {
        return Err(LayoutError::Shape {
            strukt,
            member,
            size,
            kind: kinds[0],
            found_size: found.size,
            found_kind: found.kind,
        });
    }
    Ok(found.offset)
}

impl KernelLayout {
    pub fn resolve(btf: &Btf) -> Result<Self, LayoutError> {
        use MemberKind::{Int, Pointer, Struct, Union};
        let task_file_func = btf
            .func_id("bpf_iter_task_file")
            .ok_or(LayoutError::NoTaskFileIterator)?;
        let int = &[Int][..];
        let ptr = &[Pointer][..];
        let (file_refs, refs_bias, refs_member) = match btf.member("file", "f_ref") {
            Ok(_) => (
                member(btf, "file", "f_ref", 8, &[Struct, Union])?,
                0,
                "f_ref",
            ),
            Err(BtfError::NoMember { .. }) => match btf.member("file", "f_count") {
                Ok(_) => (
                    member(btf, "file", "f_count", 8, &[Struct, Union])?,
                    u64::MAX,
                    "f_count",
                ),
                Err(BtfError::NoMember { .. }) => return Err(LayoutError::NoRefCount),
                Err(other) => return Err(other.into()),
            },
            Err(other) => return Err(other.into()),
        };
        let offsets = FieldOffsets {
            task_tgid: member(btf, "task_struct", "tgid", 4, int)?,
            task_pid: member(btf, "task_struct", "pid", 4, int)?,
            task_files: member(btf, "task_struct", "files", 8, ptr)?,
            file_inode: member(btf, "file", "f_inode", 8, ptr)?,
            file_pos: member(btf, "file", "f_pos", 8, int)?,
            file_flags: member(btf, "file", "f_flags", 4, int)?,
            file_refs,
            inode_sb: member(btf, "inode", "i_sb", 8, ptr)?,
            inode_ino: member(btf, "inode", "i_ino", 8, int)?,
            inode_mode: member(btf, "inode", "i_mode", 2, int)?,
            sb_dev: member(btf, "super_block", "s_dev", 4, int)?,
            task_group_leader: member(btf, "task_struct", "group_leader", 8, ptr)?,
            task_thread_pid: member(btf, "task_struct", "thread_pid", 8, ptr)?,
            pid_level: member(btf, "pid", "level", 4, int)?,
            // A flexible array: its BTF size is 0 (or one element on old kernels); only the offset
            // matters.
            pid_numbers: btf.member("pid", "numbers")?.offset,
            upid_nr: member(btf, "upid", "nr", 4, int)?,
            upid_size: btf.struct_size("upid")?,
            _pad: 0,
        };
        Ok(Self {
            offsets,
            refs_bias,
            refs_member,
            kernel_pid_filter: btf.composite_has_member("bpf_iter_link_info", "task"),
            task_file_func,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_kernel_has_every_member_fdid_reads() {
        let path = std::path::Path::new(crate::btf::VMLINUX_BTF);
        if !path.exists() && !crate::in_ci() {
            eprintln!("SKIPPED: {} is missing", path.display());
            return;
        }
        let layout = KernelLayout::resolve(&Btf::from_file(path).unwrap()).unwrap();
        let offsets = layout.offsets;
        assert_ne!(offsets.task_tgid, offsets.task_pid);
        assert_ne!(offsets.file_pos, offsets.file_flags);
        // 6.13 renamed the count (f_count -> f_ref, stored as count - 1).
        assert!(["f_ref", "f_count"].contains(&layout.refs_member));
    }
}
