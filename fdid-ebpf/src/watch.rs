//! What `fdid watch`'s tracing programs and their reader agree on: the events they put in the ring
//! buffer, the offsets they need beyond the iterator's, and the names of programs and maps.
//!
//! Every event starts with a [`WatchEvent`]; [`WatchEvent::kind`] says whether more follows
//! ([`ExecFds`] after an exec, [`SentFiles`] after a send of fds).

/// The ring buffer the programs write events to.
pub const EVENTS_MAP: &str = "FDID_EVENTS";
/// Per-CPU count of events the programs could not write (ring buffer full).
pub const LOST_MAP: &str = "FDID_LOST";
/// The scope (a hash map, u32 → u32), used when [`WatchConfig::scoped`] says so (otherwise every
/// process is followed): only the tgids it holds, and the entry at [`SCOPE_SETTINGS`] says how it
/// grows.
pub const SCOPE_MAP: &str = "FDID_SCOPE";
/// The key of the scope's settings entry (no process has tgid 0): its value is
/// [`SCOPE_TREE`] when a forked child of a process in scope joins the scope (`--tree`), else 0.
pub const SCOPE_SETTINGS: u32 = 0;
pub const SCOPE_TREE: u32 = 1;
/// Entries of [`SCOPE_MAP`].
pub const SCOPE_ENTRIES: u32 = 65_536;
/// Ring buffer size by default (bytes, a power of two).
pub const DEFAULT_RING_BYTES: u32 = 16 << 20;

/// What happened.
pub mod kind {
    /// `fd` now refers to the file (`file_hash` …): a new description or a new share of one.
    pub const INSTALL: u8 = 1;
    /// `fd` was closed. `file_hash`: what the fd holds now, read after the event's room in the ring
    /// was taken (0: nothing) — another thread's open that got the number since is either seen here
    /// or told after this event.
    pub const CLOSE: u8 = 2;
    /// Every fd from `fd` to `aux` was closed (`close_range`).
    pub const CLOSE_RANGE: u8 = 3;
    /// `pid` forked process `fd` (`aux` = 1: with `CLONE_FILES`, one fd table for both).
    pub const FORK: u8 = 4;
    /// `pid` exec'd; an [`super::ExecFds`] follows with the fds that survived.
    pub const EXEC: u8 = 5;
    /// The last thread of `pid` exited: its fds are gone.
    pub const EXIT: u8 = 6;
    /// The description with `file_hash` was released (its last reference went).
    pub const RELEASE: u8 = 7;
    /// `pid` sent files with `SCM_RIGHTS`; a [`super::SentFiles`] follows.
    pub const SEND: u8 = 8;
}

/// How an [`kind::INSTALL`]ed fd came to be, as the programs see it (userspace adds `fork`,
/// `clone_files` and `exec`).
pub mod via {
    /// A new fd with no other context: open, socket, accept, pipe, memfd, eventfd…
    pub const OPEN: u8 = 1;
    /// dup, dup2, dup3, fcntl `F_DUPFD`/`F_DUPFD_CLOEXEC`: `aux` is the fd it came from.
    pub const DUP: u8 = 2;
    /// Received with `SCM_RIGHTS`.
    pub const SCM_RIGHTS: u8 = 3;
    /// Taken with `pidfd_getfd`: `from_pid`'s fd `aux`.
    pub const PIDFD_GETFD: u8 = 4;
}

/// One event: 80 bytes, no implicit padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchEvent {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC.
    pub time_ns: u64,
    /// Keyed hash of the `struct file` pointer (INSTALL, RELEASE), under the iterator's key.
    pub file_hash: u64,
    pub ino: u64,
    pub pos: i64,
    /// Process (thread group) id, initial pid namespace.
    pub pid: u32,
    pub tid: u32,
    /// INSTALL/CLOSE: the fd; CLOSE_RANGE: the first fd; FORK: the child's pid.
    pub fd: u32,
    /// INSTALL by DUP or PIDFD_GETFD: the source fd; CLOSE_RANGE: the last fd; FORK: 1 with
    /// `CLONE_FILES`.
    pub aux: u32,
    /// INSTALL by PIDFD_GETFD: the process the fd was taken from.
    pub from_pid: u32,
    /// `super_block.s_dev` (kernel encoding).
    pub dev: u32,
    /// `file.f_flags`.
    pub flags: u32,
    pub mode: u16,
    pub kind: u8,
    pub via: u8,
    pub comm: [u8; 16],
}

/// Follows an [`kind::EXEC`] event: the fds still open after exec closed the close-on-exec ones.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecFds {
    /// `fdtable.max_fds`: bits at or above it mean nothing.
    pub max_fds: u32,
    /// How many words of `open_fds` were read (up to [`EXEC_FD_WORDS`]); fds beyond are unknown.
    pub words: u32,
    /// The first words of `fdtable.open_fds`.
    pub open_fds: [u64; EXEC_FD_WORDS],
}

/// Words of `open_fds` an [`ExecFds`] carries: the first 4096 fds.
pub const EXEC_FD_WORDS: usize = 64;

/// Follows a [`kind::SEND`] event: the fds one `SCM_RIGHTS` message carried, in order, and the
/// files they referred to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentFiles {
    pub count: u32,
    pub _pad: u32,
    /// The sender's fds, the first `min(count, SENT_FILES)`.
    pub fds: [u32; SENT_FILES],
    /// Keyed hashes of their files (0: the fd was not open).
    pub file_hashes: [u64; SENT_FILES],
}

/// Files a [`SentFiles`] names (a message may carry up to 253).
pub const SENT_FILES: usize = 16;

pub const EVENT_SIZE: usize = size_of::<WatchEvent>();
const _: () = assert!(EVENT_SIZE == 80);
const _: () = assert!(size_of::<ExecFds>() == 8 + 8 * EXEC_FD_WORDS);
const _: () = assert!(size_of::<SentFiles>() == 8 + 12 * SENT_FILES);

/// Kernel offsets the tracing programs read besides the iterator's ([`crate::FieldOffsets`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchOffsets {
    /// 1 when every member below was found.
    pub valid: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub fdt_open_fds: u32,
    pub task_signal: u32,
    pub signal_live: u32,
    pub file_private_data: u32,
    pub inode_private: u32,
    /// Where `struct pt_regs` keeps a syscall's arguments, as they were at entry and still are at
    /// exit (x86_64: `di`, `si`, `dx`, `r10`, `r8`, `r9`; arm64: `orig_x0`, `regs[1]`…`regs[5]`).
    pub regs_args: [u32; 6],
    /// Where `struct pt_regs` keeps the syscall's number (x86_64 `orig_ax`, arm64 `syscallno`).
    pub regs_nr: u32,
    /// The 32-bit word of `task_struct` that says a task makes compat (32-bit) syscalls, whose
    /// numbers mean other calls, and the bit that says it (`compat_mask` 0: no such tasks).
    pub task_compat: u32,
    pub compat_mask: u32,
    /// `task_struct.comm`.
    pub task_comm: u32,
    /// 1 where the kernel has `bpf_get_current_task_btf` (5.11+): the programs then load the
    /// current task's members directly instead of with probe reads.
    pub current_task_btf: u32,
    /// Where the kernel has the `bpf_rdonly_cast` kfunc (6.2+) and fdid patched its calls in (see
    /// [`RDONLY_CAST_PLACEHOLDER`]): the kfunc's BTF id, and those of `struct file` and of a
    /// struct whose first member is an 8-byte integer (to read a kernel word as a number). The
    /// programs then load a file's members, and an fd's slot, directly instead of with probe
    /// reads. All 0: probe reads.
    pub rdonly_cast_func: u32,
    pub file_btf_id: u32,
    pub word_btf_id: u32,
    pub _pad: u32,
}

impl WatchOffsets {
    pub const ZERO: Self = Self {
        valid: 0,
        files_fdt: 0,
        fdt_max_fds: 0,
        fdt_fd: 0,
        fdt_open_fds: 0,
        task_signal: 0,
        signal_live: 0,
        file_private_data: 0,
        inode_private: 0,
        regs_args: [0; 6],
        regs_nr: 0,
        task_compat: 0,
        compat_mask: 0,
        task_comm: 0,
        current_task_btf: 0,
        rdonly_cast_func: 0,
        file_btf_id: 0,
        word_btf_id: 0,
        _pad: 0,
    };
}

const _: () = assert!(size_of::<WatchOffsets>() == 24 * 4);

/// Syscall numbers the table in [`WatchConfig`] has room for (x86_64 and arm64 stay below 512).
pub const SYSCALL_SLOTS: usize = 512;

/// What the tracing programs do at a syscall, by its number ([`WatchConfig::syscalls`]).
pub mod syscall {
    /// Not one that changes an fd table.
    pub const NONE: u8 = 0;
    /// Returns a new fd of a new description (open, socket, accept, memfd_create…).
    pub const NEW_FD: u8 = 1;
    /// dup, dup2, dup3: returns a copy of `args[0]`.
    pub const DUP: u8 = 2;
    /// fcntl: with `F_DUPFD`/`F_DUPFD_CLOEXEC`, returns a copy of `args[0]`.
    pub const FCNTL: u8 = 3;
    /// pidfd_getfd(pidfd, fd, flags): returns a copy of another process's fd.
    pub const PIDFD_GETFD: u8 = 4;
    /// pipe(fds), pipe2(fds, flags): two new fds in the user's array `args[0]`.
    pub const PIPE: u8 = 5;
    /// socketpair(domain, type, protocol, fds): two new fds in the user's array `args[3]`.
    pub const SOCKETPAIR: u8 = 6;
    /// recvmsg(fd, msghdr, flags): fds received with `SCM_RIGHTS`.
    pub const RECVMSG: u8 = 7;
    /// sendmsg(fd, msghdr, flags): fds sent with `SCM_RIGHTS`.
    pub const SENDMSG: u8 = 8;
    /// close(fd).
    pub const CLOSE: u8 = 9;
    /// close_range(first, last, flags).
    pub const CLOSE_RANGE: u8 = 10;
    /// bpf(cmd, attr, size): a new fd for the commands that make one (maps, programs, links…).
    pub const BPF: u8 = 11;
    /// seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER…): a new listener fd.
    pub const SECCOMP: u8 = 12;
    /// recvmmsg(fd, msgvec, vlen, flags, timeout): fds received with `SCM_RIGHTS` in each of the
    /// first [`super::MMSG_FOLLOWED`] messages it returns.
    pub const RECVMMSG: u8 = 13;
    /// sendmmsg(fd, msgvec, vlen, flags): fds sent with `SCM_RIGHTS` in each of the first
    /// [`super::MMSG_FOLLOWED`] messages it sent.
    pub const SENDMMSG: u8 = 14;
}

/// Messages of one recvmmsg or sendmmsg whose `SCM_RIGHTS` fds the programs follow: the first. The
/// verifier checks the code for each message again (16 fds installed or looked up, each file
/// described), and each one more made `fdid watch` start ~0.1 s later here, far more under emulation.
pub const MMSG_FOLLOWED: usize = 1;

/// What `fdid watch`'s programs need besides offsets, in the read-only config.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchConfig {
    /// 1: only processes in [`SCOPE_MAP`] are followed; 0: every process (no lookup).
    pub scoped: u32,
    pub _pad: u32,
    /// Syscall number → a [`syscall`] action.
    pub syscalls: [u8; SYSCALL_SLOTS],
}

impl WatchConfig {
    pub const ZERO: Self = Self {
        scoped: 0,
        _pad: 0,
        syscalls: [syscall::NONE; SYSCALL_SLOTS],
    };
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self::ZERO
    }
}

/// A tracing program: its name in the object, how and where it attaches (BTF tracepoints or
/// functions), and what goes unseen without it. Userspace attaches each where this kernel has it
/// and says what it could not follow; without an essential one it does not start.
pub struct Program {
    pub name: &'static str,
    pub attach: Attach,
    pub target: &'static str,
    /// What is not followed where it cannot attach, in words.
    pub follows: &'static str,
    pub essential: bool,
}

/// Every tracing program of the object. The syscall program sees every syscall's exit and acts on
/// those [`WatchConfig::syscalls`] names: one raw tracepoint costs the traced processes less than a
/// tracepoint per syscall (or a second one at entry), and attaches and detaches at once.
pub const PROGRAMS: [Program; 5] = [
    Program {
        name: "fdid_sys_exit",
        attach: Attach::BtfTracepoint,
        target: "sys_exit",
        follows: "new fds (open, socket, accept, dup, pipe, SCM_RIGHTS…) and closes",
        essential: true,
    },
    Program {
        name: "fdid_fork",
        attach: Attach::BtfTracepoint,
        target: "sched_process_fork",
        follows: "forks",
        essential: false,
    },
    Program {
        name: "fdid_exec",
        attach: Attach::BtfTracepoint,
        target: "sched_process_exec",
        follows: "exec",
        essential: false,
    },
    Program {
        name: "fdid_exit",
        attach: Attach::BtfTracepoint,
        target: "sched_process_exit",
        follows: "exits",
        essential: false,
    },
    Program {
        name: "fdid_release",
        attach: Attach::FEntry,
        target: "__fput",
        follows: "releases of descriptions",
        essential: false,
    },
];

/// How a tracing program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    FEntry,
    /// `tp_btf/NAME`.
    BtfTracepoint,
}

/// The helper number the programs call where they mean the `bpf_rdonly_cast` kfunc: aya cannot
/// relocate kfunc calls, so fdid patches each such call (`call` with this immediate) into a kfunc
/// call by the kernel's BTF id before loading. No helper has this number; where the kernel lacks
/// the kfunc the calls are left alone, behind a config that makes them dead code.
pub const RDONLY_CAST_PLACEHOLDER: i32 = 0x7fff_f00d;
