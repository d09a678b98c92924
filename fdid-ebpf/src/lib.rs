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
pub mod watch;

/// Name of the iterator program (its function symbol) in the BPF object.
pub const PROGRAM_NAME: &str = "fdid_task_file";
/// Name of the read-only global holding the [`IterConfig`].
pub const CONFIG_GLOBAL: &str = "FDID_CONFIG";

/// One open file descriptor as the kernel sees it, written once per (task, fd) by the iterator.
///
/// Fixed-width fields only, laid out so that there is no implicit padding (four `u32`, one `u16`, two
/// `u8`, one `u32`, then five `u64`); the size is asserted below and checked again by the decoder.
///
/// The stream is a sequence of 64-byte blocks: each record, followed by the blocks of its extension
/// when [`FdRecord::extension`] names one (a [`SocketRecord`] for a socket).
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
    pub pid_ns_level: u8,
    /// What follows this record in the stream: [`EXTENSION_NONE`] or [`EXTENSION_SOCKET`].
    pub extension: u8,
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
const _: () = assert!(core::mem::offset_of!(FdRecord, extension) == 19);

/// [`FdRecord::extension`]: nothing follows the record.
pub const EXTENSION_NONE: u8 = 0;
/// [`FdRecord::extension`]: a [`SocketRecord`] follows the record.
pub const EXTENSION_SOCKET: u8 = 1;

/// `SocketRecord::flags`: `path` is the peer's address (the socket has none of its own, like the
/// client end of a unix connection).
pub const SOCKET_PATH_IS_PEERS: u8 = 1;

/// What a socket is, read by the iterator from its `struct sock` for an fd of a socket (a file of
/// sockfs), once per fd: the extension that follows its [`FdRecord`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SocketRecord {
    /// `sk_family` (`AF_*`).
    pub family: u16,
    /// `sk_type` (`SOCK_*`).
    pub sock_type: u16,
    /// `sk_protocol` (`IPPROTO_*` for inet sockets).
    pub protocol: u16,
    /// `skc_state`: the TCP states, which unix and UDP sockets use too (`TCP_LISTEN`, …).
    pub state: u8,
    /// [`SOCKET_PATH_IS_PEERS`].
    pub flags: u8,
    /// Inode number of the socket's network namespace (`net->ns.inum`).
    pub netns: u32,
    /// Local port, host order (`skc_num`).
    pub local_port: u16,
    /// Remote port, network order as the kernel keeps it (`skc_dport`).
    pub remote_port_be: u16,
    /// Local address: IPv4 in the first 4 bytes (`skc_rcv_saddr`) or IPv6 (`skc_v6_rcv_saddr`).
    pub local_addr: [u8; 16],
    /// Remote address, likewise (`skc_daddr`, `skc_v6_daddr`).
    pub remote_addr: [u8; 16],
    /// Inode number of the peer's socket (a unix socket's `peer`), 0 when it has none.
    pub peer_ino: u64,
    /// Bytes of `path` in use: a unix socket's `sun_path` (abstract names start with a NUL).
    pub path_len: u16,
    pub path: [u8; 108],
    pub _pad: [u8; 26],
}

impl Default for SocketRecord {
    fn default() -> Self {
        Self::ZERO
    }
}

impl SocketRecord {
    /// All zero.
    pub const ZERO: Self = Self {
        family: 0,
        sock_type: 0,
        protocol: 0,
        state: 0,
        flags: 0,
        netns: 0,
        local_port: 0,
        remote_port_be: 0,
        local_addr: [0; 16],
        remote_addr: [0; 16],
        peer_ino: 0,
        path_len: 0,
        path: [0; 108],
        _pad: [0; 26],
    };
}

/// Size in bytes of one [`SocketRecord`] in the stream: three 64-byte blocks.
pub const SOCKET_RECORD_SIZE: usize = size_of::<SocketRecord>();
const _: () = assert!(SOCKET_RECORD_SIZE == 3 * RECORD_SIZE);
const _: () = assert!(align_of::<SocketRecord>() == 8);

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
    /// `super_block.s_magic` (unsigned long): sockfs's is `SOCKFS_MAGIC`.
    pub sb_magic: u32,
    /// Where the socket fields are, or all zero when this kernel's BTF lacks one of them (sockets
    /// are then not described).
    pub socket: SocketOffsets,
    /// For `fdid watch`'s tracing programs.
    pub watch: watch::WatchOffsets,
}

/// Byte offsets of what the iterator reads from a socket, from BTF. Members of `struct sock_common`
/// are given from the start of `struct sock` (which begins with it); `unix_sock` begins with `sock`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketOffsets {
    /// Non-zero when the offsets below are valid.
    pub valid: u32,
    /// `file.private_data` (void *): a sockfs file's `struct socket`.
    pub file_private_data: u32,
    /// `socket.sk` (struct sock *).
    pub socket_sk: u32,
    /// `sock_common.skc_family` (unsigned short).
    pub family: u32,
    /// `sock_common.skc_state` (unsigned char).
    pub state: u32,
    /// `sock_common.skc_num` (u16).
    pub num: u32,
    /// `sock_common.skc_dport` (__be16).
    pub dport: u32,
    /// `sock_common.skc_rcv_saddr` (__be32).
    pub rcv_saddr: u32,
    /// `sock_common.skc_daddr` (__be32).
    pub daddr: u32,
    /// `sock_common.skc_v6_rcv_saddr` (struct in6_addr).
    pub v6_rcv_saddr: u32,
    /// `sock_common.skc_v6_daddr` (struct in6_addr).
    pub v6_daddr: u32,
    /// `sock_common.skc_net` (possible_net_t, one pointer).
    pub net: u32,
    /// `net.ns` + `ns_common.inum` (unsigned int).
    pub net_inum: u32,
    /// `sock.sk_type` (u16).
    pub sk_type: u32,
    /// `sock.sk_protocol` (u16).
    pub sk_protocol: u32,
    /// `sock.sk_socket` (struct socket *).
    pub sk_socket: u32,
    /// `socket_alloc.vfs_inode` − `socket_alloc.socket` + `inode.i_ino`: from a `struct socket` to its
    /// inode number.
    pub socket_ino: u32,
    /// `unix_sock.addr` (struct unix_address *).
    pub unix_addr: u32,
    /// `unix_sock.peer` (struct sock *).
    pub unix_peer: u32,
    /// `unix_address.len` (int: `sizeof(sa_family_t)` + the path's length).
    pub unix_address_len: u32,
    /// `unix_address.name` + `sockaddr_un.sun_path`.
    pub unix_address_path: u32,
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
    /// `fdid watch`'s settings (ignored by the iterator).
    pub watch: watch::WatchConfig,
}

impl SocketOffsets {
    /// All zero (not valid): the initial value of the program's global.
    pub const ZERO: Self = Self {
        valid: 0,
        file_private_data: 0,
        socket_sk: 0,
        family: 0,
        state: 0,
        num: 0,
        dport: 0,
        rcv_saddr: 0,
        daddr: 0,
        v6_rcv_saddr: 0,
        v6_daddr: 0,
        net: 0,
        net_inum: 0,
        sk_type: 0,
        sk_protocol: 0,
        sk_socket: 0,
        socket_ino: 0,
        unix_addr: 0,
        unix_peer: 0,
        unix_address_len: 0,
        unix_address_path: 0,
        _pad: 0,
    };
}

impl FieldOffsets {
    /// All zero: the initial value of the program's global.
    pub const ZERO: Self = Self {
        task_tgid: 0,
        task_pid: 0,
        task_files: 0,
        file_inode: 0,
        file_pos: 0,
        file_flags: 0,
        file_refs: 0,
        inode_sb: 0,
        inode_ino: 0,
        inode_mode: 0,
        sb_dev: 0,
        task_group_leader: 0,
        task_thread_pid: 0,
        pid_level: 0,
        pid_numbers: 0,
        upid_nr: 0,
        upid_size: 0,
        sb_magic: 0,
        socket: SocketOffsets::ZERO,
        watch: watch::WatchOffsets::ZERO,
    };
}

impl IterConfig {
    /// All zero: the initial value of the program's global, filled in by userspace before load.
    pub const ZERO: Self = Self {
        hash_key: [0; 2],
        hash_mask: 0,
        refs_bias: 0,
        filter_tgid: 0,
        _pad: 0,
        offsets: FieldOffsets::ZERO,
        watch: watch::WatchConfig::ZERO,
    };
}

/// `SOCKFS_MAGIC`, sockfs's `s_magic`: an fd whose inode lives there is a socket.
pub const SOCKFS_MAGIC: u64 = 0x534F_434B;

const _: () = assert!(
    size_of::<FieldOffsets>()
        == 18 * 4 + size_of::<SocketOffsets>() + size_of::<watch::WatchOffsets>()
);
const _: () = assert!(size_of::<SocketOffsets>() == 22 * 4);
const _: () = assert!(
    size_of::<IterConfig>() == 40 + size_of::<FieldOffsets>() + size_of::<watch::WatchConfig>()
);
