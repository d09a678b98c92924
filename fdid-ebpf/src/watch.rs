//! What `fdid watch`'s tracing programs and their reader agree on: the events they put in the ring
//! buffer, the offsets they need beyond the iterator's, and the names of programs and maps.
//!
//! Every event starts with a [`WatchEvent`]; [`WatchEvent::kind`] says whether more follows
//! ([`ExecFds`] after an exec, [`SentFiles`] after a send of fds).

/// The ring buffer the programs write events to.
pub const EVENTS_MAP: &str = "FDID_EVENTS";
/// Per-CPU count of events the programs could not write (ring buffer full).
pub const LOST_MAP: &str = "FDID_LOST";
/// The scope (a hash map, u32 → u32): empty, every process is followed; otherwise only the tgids it
/// holds, and the entry at [`SCOPE_SETTINGS`] says how it grows.
pub const SCOPE_MAP: &str = "FDID_SCOPE";
/// The key of the scope's settings entry (no process has tgid 0): its value is
/// [`SCOPE_TREE`] when a forked child of a process in scope joins the scope (`--tree`), else 0.
pub const SCOPE_SETTINGS: u32 = 0;
pub const SCOPE_TREE: u32 = 1;
/// Entries of [`SCOPE_MAP`].
pub const SCOPE_ENTRIES: u32 = 65_536;
/// Thread → the call it is inside (dup, SCM_RIGHTS receipt, pidfd_getfd, close_range).
pub const CALLS_MAP: &str = "FDID_CALLS";
/// Entries of [`CALLS_MAP`]: threads inside one of those calls at one time.
pub const CALLS_ENTRIES: u32 = 16_384;
/// Ring buffer size by default (bytes, a power of two).
pub const DEFAULT_RING_BYTES: u32 = 16 << 20;

/// What happened.
pub mod kind {
    /// `fd` now refers to the file (`file_hash` …): a new description or a new share of one.
    pub const INSTALL: u8 = 1;
    /// `fd` was closed (`file_hash`: what it held, 0 if unknown).
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
        _pad: 0,
    };
}

const _: () = assert!(size_of::<WatchOffsets>() == 10 * 4);

/// A tracing program: its name in the object, how and where it attaches (syscall tracepoints by
/// name with the `sys_enter_`/`sys_exit_` prefix, functions, or scheduler tracepoints), and what goes
/// unseen without it. Userspace attaches each to every target this kernel has and says what it could
/// not follow; without an essential one it does not start.
pub struct Program {
    pub name: &'static str,
    pub attach: Attach,
    pub targets: &'static [&'static str],
    /// What is not followed where it cannot attach, in words.
    pub follows: &'static str,
    pub essential: bool,
}

/// Every tracing program of the object.
pub const PROGRAMS: [Program; 18] = [
    Program {
        name: "fdid_new_fd",
        attach: Attach::Syscall,
        targets: &NEW_FD_SYSCALLS_EXIT,
        follows: "new fds (open, socket, accept…)",
        essential: true,
    },
    Program {
        name: "fdid_dup_enter",
        attach: Attach::Syscall,
        targets: &["sys_enter_dup", "sys_enter_dup2", "sys_enter_dup3"],
        follows: "which fd dup copied",
        essential: false,
    },
    Program {
        name: "fdid_fcntl_enter",
        attach: Attach::Syscall,
        targets: &["sys_enter_fcntl"],
        follows: "which fd F_DUPFD copied",
        essential: false,
    },
    Program {
        name: "fdid_pidfd_getfd_enter",
        attach: Attach::Syscall,
        targets: &["sys_enter_pidfd_getfd"],
        follows: "which process pidfd_getfd took from",
        essential: false,
    },
    Program {
        name: "fdid_call_fd_exit",
        attach: Attach::Syscall,
        targets: &[
            "sys_exit_dup",
            "sys_exit_dup2",
            "sys_exit_dup3",
            "sys_exit_fcntl",
            "sys_exit_pidfd_getfd",
        ],
        follows: "dup, fcntl F_DUPFD and pidfd_getfd",
        essential: false,
    },
    Program {
        name: "fdid_fd_pair_enter",
        attach: Attach::Syscall,
        targets: &["sys_enter_pipe", "sys_enter_pipe2"],
        follows: "pipe and socketpair",
        essential: false,
    },
    Program {
        name: "fdid_socketpair_enter",
        attach: Attach::Syscall,
        targets: &["sys_enter_socketpair"],
        follows: "pipe and socketpair",
        essential: false,
    },
    Program {
        name: "fdid_fd_pair_exit",
        attach: Attach::Syscall,
        targets: &["sys_exit_pipe", "sys_exit_pipe2", "sys_exit_socketpair"],
        follows: "pipe and socketpair",
        essential: false,
    },
    Program {
        name: "fdid_recvmsg_enter",
        attach: Attach::Syscall,
        targets: &["sys_enter_recvmsg"],
        follows: "fds received with SCM_RIGHTS",
        essential: false,
    },
    Program {
        name: "fdid_recvmsg_exit",
        attach: Attach::Syscall,
        targets: &["sys_exit_recvmsg"],
        follows: "fds received with SCM_RIGHTS",
        essential: false,
    },
    Program {
        name: "fdid_sendmsg_enter",
        attach: Attach::Syscall,
        targets: &["sys_enter_sendmsg"],
        follows: "who sent an fd with SCM_RIGHTS",
        essential: false,
    },
    Program {
        name: "fdid_close_enter",
        attach: Attach::Syscall,
        targets: &["sys_enter_close"],
        follows: "closes",
        essential: true,
    },
    Program {
        name: "fdid_close_range_enter",
        attach: Attach::Syscall,
        targets: &["sys_enter_close_range"],
        follows: "close_range",
        essential: false,
    },
    Program {
        name: "fdid_close_exit",
        attach: Attach::Syscall,
        targets: &["sys_exit_close", "sys_exit_close_range"],
        follows: "closes",
        essential: true,
    },
    Program {
        name: "fdid_fork",
        attach: Attach::BtfTracepoint,
        targets: &["sched_process_fork"],
        follows: "forks",
        essential: false,
    },
    Program {
        name: "fdid_exec",
        attach: Attach::BtfTracepoint,
        targets: &["sched_process_exec"],
        follows: "exec",
        essential: false,
    },
    Program {
        name: "fdid_exit",
        attach: Attach::BtfTracepoint,
        targets: &["sched_process_exit"],
        follows: "exits",
        essential: false,
    },
    Program {
        name: "fdid_release",
        attach: Attach::FEntry,
        targets: &["__fput"],
        follows: "releases of descriptions",
        essential: false,
    },
];

/// Exits of the syscalls that return a new fd of a new description (open, socket, accept…). Those
/// this kernel lacks are skipped.
pub const NEW_FD_SYSCALLS_EXIT: [&str; 26] = [
    "sys_exit_open",
    "sys_exit_openat",
    "sys_exit_openat2",
    "sys_exit_creat",
    "sys_exit_open_by_handle_at",
    "sys_exit_socket",
    "sys_exit_accept",
    "sys_exit_accept4",
    "sys_exit_memfd_create",
    "sys_exit_memfd_secret",
    "sys_exit_eventfd",
    "sys_exit_eventfd2",
    "sys_exit_epoll_create",
    "sys_exit_epoll_create1",
    "sys_exit_timerfd_create",
    "sys_exit_signalfd",
    "sys_exit_signalfd4",
    "sys_exit_inotify_init",
    "sys_exit_inotify_init1",
    "sys_exit_fanotify_init",
    "sys_exit_pidfd_open",
    "sys_exit_userfaultfd",
    "sys_exit_perf_event_open",
    "sys_exit_io_uring_setup",
    "sys_exit_open_tree",
    "sys_exit_fsopen",
];

/// How a tracing program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    FEntry,
    /// `tp_btf/NAME`.
    BtfTracepoint,
    /// `tracepoint/syscalls/NAME`.
    Syscall,
}
