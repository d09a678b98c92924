//! What fdid's BPF iterator and its userspace reader agree on: the record the iterator writes for every
//! (task, fd, file), the read-only configuration block userspace fills in before loading, and the keyed
//! hash that turns kernel pointers into per-run identifiers.
//!
//! This is the lib target of the `fdid-ebpf` package: `no_std`, no dependencies, built for the host (by
//! `fdid-user`) and for BPF (by the program, the package's bin target). Nothing here is kernel-version
//! specific: struct field offsets are *not* compiled in, they are resolved from the running kernel's BTF
//! at load time and handed over in [`IterConfig`].
#![no_std]
#[cfg(test)]
extern crate std;

pub mod siphash;

/// Name of the iterator program (its function symbol) in the BPF object.
pub const PROGRAM_NAME: &str = "fdid_task_file";
/// Name of the read-only global holding the [`IterConfig`].
pub const CONFIG_GLOBAL: &str = "FDID_CONFIG";

/// One open file descriptor as the kernel sees it, written once per (task, fd) by the iterator.
///
/// Fixed-width fields only, laid out so that there is no implicit padding (four `u32`, two `u16`, one
/// `u32`, then five `u64`);
/// the size is asserted below and checked again by the decoder.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FdRecord {
    /// Thread group id (the process id) in the pid namespace of the process reading the iterator.
    pub tgid: u32,
    /// Id of the task the fd table was reached through (same namespace): equal to `tgid` except for a
    /// thread that has its own fd table (the kernel skips threads sharing their leader's table).
    pub tid: u32,
    /// The file descriptor number.
    pub fd: u32,
    /// `file->f_flags` (open flags; `O_CLOEXEC` is per fd and not part of it).
    pub flags: u32,
    /// `inode->i_mode` (file type and permission bits).
    pub mode: u16,
    /// Depth of the pid namespace `tgid` and `tid` are numbered in (0: the initial namespace). A walk
    /// from a nested namespace cannot see every holder of a description.
    pub pid_ns_level: u16,
    /// `inode->i_sb->s_dev` in the kernel's encoding (major << 20 | minor), see [`kernel_dev_major`].
    pub dev: u32,
    /// `inode->i_ino`.
    pub ino: u64,
    /// `file->f_pos`.
    pub pos: i64,
    /// References to the open file description, not counting the one the iterator holds while it runs
    /// (from `f_count`, or `f_ref` on 6.13+). Zero when the collector cannot know it (procfs).
    pub refs: u64,
    /// Keyed hash of the `struct file` pointer: equal for fds of one open file description.
    /// Zero when the collector has no pointer (procfs).
    pub file_hash: u64,
    /// Keyed hash of the task's `files_struct` pointer: equal for tasks sharing one fd table.
    pub files_hash: u64,
}

/// Size in bytes of one [`FdRecord`] in the iterator's stream.
pub const RECORD_SIZE: usize = size_of::<FdRecord>();
const _: () = assert!(RECORD_SIZE == 64);
const _: () = assert!(align_of::<FdRecord>() == 8);

/// Major number of a device number in the kernel's internal `dev_t` encoding (`MINORBITS` = 20).
pub const fn kernel_dev_major(dev: u32) -> u32 {
    dev >> 20
}

/// Minor number of a device number in the kernel's internal `dev_t` encoding.
pub const fn kernel_dev_minor(dev: u32) -> u32 {
    dev & ((1 << 20) - 1)
}

/// Byte offsets of the kernel struct members the iterator reads, resolved from the running kernel's BTF.
///
/// They reach the program as part of a frozen read-only global, so the verifier sees them as constants and
/// checks every load through a typed `task_struct`/`file` pointer against BTF: a wrong offset makes the
/// program fail to load rather than read garbage.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldOffsets {
    /// `task_struct.tgid` (pid_t).
    pub task_tgid: u32,
    /// `task_struct.pid` (pid_t).
    pub task_pid: u32,
    /// `task_struct.files` (struct files_struct *).
    pub task_files: u32,
    /// `file.f_inode` (struct inode *).
    pub file_inode: u32,
    /// `file.f_pos` (loff_t).
    pub file_pos: u32,
    /// `file.f_flags` (unsigned int).
    pub file_flags: u32,
    /// `file.f_ref` (file_ref_t, 6.13+) or `file.f_count` (atomic_long_t); 8 bytes either way.
    pub file_refs: u32,
    /// `inode.i_sb` (struct super_block *).
    pub inode_sb: u32,
    /// `inode.i_ino` (unsigned long).
    pub inode_ino: u32,
    /// `inode.i_mode` (umode_t, 16 bits).
    pub inode_mode: u32,
    /// `super_block.s_dev` (dev_t, 32 bits).
    pub sb_dev: u32,
    /// `task_struct.group_leader` (struct task_struct *).
    pub task_group_leader: u32,
    /// `task_struct.thread_pid` (struct pid *).
    pub task_thread_pid: u32,
    /// `pid.level` (unsigned int): depth of the task's pid namespace.
    pub pid_level: u32,
    /// `pid.numbers` (struct upid[]): the task's number at each namespace level.
    pub pid_numbers: u32,
    /// `upid.nr` (int).
    pub upid_nr: u32,
    /// `sizeof(struct upid)`.
    pub upid_size: u32,
    /// Explicit padding to a multiple of 8 bytes.
    pub _pad: u32,
}

/// Everything the program needs from userspace, in one read-only global ([`CONFIG_GLOBAL`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IterConfig {
    /// SipHash key for [`FdRecord::file_hash`] and [`FdRecord::files_hash`]; random per run.
    pub hash_key: [u64; 2],
    /// Mask applied to both hashes. All ones in normal runs; tests narrow it to force collisions.
    pub hash_mask: u64,
    /// Added (wrapping) to the raw reference count read at `file_refs`, so that the record holds the
    /// count without the iterator's own reference: 0 for `f_ref` (which stores count − 1), −1 for
    /// `f_count`.
    pub refs_bias: u64,
    /// When non-zero, the program itself drops records of other processes. Used only on kernels whose
    /// iterator link cannot filter by pid (before 6.1); otherwise the kernel walks just that process.
    pub filter_tgid: u32,
    /// Explicit padding.
    pub _pad: u32,
    /// Struct member offsets from BTF.
    pub offsets: FieldOffsets,
}

const _: () = assert!(size_of::<IterConfig>() == 40 + 72);
