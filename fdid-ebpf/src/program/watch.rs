//! `fdid watch`'s tracing programs: each change to an fd table, as a [`WatchEvent`] in a ring buffer.
//!
//! New fds are seen at the exit of the syscalls that make them (syscall tracepoints: stable across
//! kernels and architectures, and usable where function tracing is not): the fd comes from the
//! return value (open, socket, dup…), from the user's array (pipe, socketpair) or from the user's
//! control message (`SCM_RIGHTS` received). The file it refers to is read from the caller's fd
//! table and hashed with the iterator's key, so it is named as a walk names it. Entry programs note
//! per thread in [`FDID_CALLS`] what the exit needs (the source fd of a dup…). Forks, execs and
//! exits come from the scheduler's BTF tracepoints, the end of a description from `__fput` where
//! the kernel lets it be traced.
//!
//! Every kernel address is followed with `bpf_probe_read_kernel` at offsets from BTF (the config).

use core::{ffi::c_void, ptr::read_volatile};

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_user,
        generated::{self, bpf_get_current_task, bpf_ktime_get_ns},
    },
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use fdid_ebpf::{
    siphash::siphash24_u64,
    watch::{
        CALLS_ENTRIES, DEFAULT_RING_BYTES, EXEC_FD_WORDS, ExecFds, SCOPE_ENTRIES, SCOPE_SETTINGS,
        SCOPE_TREE, SENT_FILES, SentFiles, WatchEvent, kind, via,
    },
};

use super::{load, read_u32, read_word};

#[map]
static FDID_EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

#[map]
static FDID_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map]
static FDID_SCOPE: HashMap<u32, u32> = HashMap::with_max_entries(SCOPE_ENTRIES, 0);

/// What a syscall's entry noted for its exit.
#[repr(C)]
#[derive(Clone, Copy)]
struct Call {
    via: u32,
    /// The source fd (dup, pidfd_getfd), the fd closed, close_range's first fd.
    fd: u32,
    /// The process an fd is taken from (pidfd_getfd), close_range's last fd.
    other: u32,
    _pad: u32,
    /// A user pointer: pipe's or socketpair's fd array, recvmsg's msghdr.
    user: u64,
    /// The hash of the file a closed fd held.
    hash: u64,
}

/// Thread (pid_tgid) → the call it is inside.
#[map]
static FDID_CALLS: HashMap<u64, Call> = HashMap::with_max_entries(CALLS_ENTRIES, 0);

// ----- the current process's fd table -----

/// `current->files->fdt`, as a number.
#[inline(always)]
fn current_fdt() -> Option<u64> {
    // SAFETY: no preconditions; the pointer is only read through bpf_probe_read_kernel.
    let task = unsafe { bpf_get_current_task() };
    let files = read_word((task + u64::from(config!(offsets.task_files))) as *const c_void)?;
    if files == 0 {
        return None;
    }
    read_word((files + u64::from(config!(offsets.watch.files_fdt))) as *const c_void)
}

/// The `struct file` at `fd` of the current process, as a number (0: none).
#[inline(always)]
fn file_at(fd: u32) -> u64 {
    let Some(fdt) = current_fdt() else {
        return 0;
    };
    let max = read_u32((fdt + u64::from(config!(offsets.watch.fdt_max_fds))) as *const c_void);
    if max.is_none_or(|max| fd >= max) {
        return 0;
    }
    read_word((fdt + u64::from(config!(offsets.watch.fdt_fd))) as *const c_void)
        .and_then(|array| read_word((array + 8 * u64::from(fd)) as *const c_void))
        .unwrap_or(0)
}

#[inline(always)]
fn hash(word: u64) -> u64 {
    siphash24_u64([config!(hash_key[0]), config!(hash_key[1])], word) & config!(hash_mask)
}

/// Fills the file's identity into `event` (the same members a walk reads).
#[inline(always)]
fn describe(event: &mut WatchEvent, file: u64) {
    let at = |base: u64, offset: u32| (base + u64::from(offset)) as *const c_void;
    event.file_hash = hash(file);
    event.flags = read_u32(at(file, config!(offsets.file_flags))).unwrap_or(0);
    event.pos = read_word(at(file, config!(offsets.file_pos))).unwrap_or(0) as i64;
    let inode = read_word(at(file, config!(offsets.file_inode))).unwrap_or(0);
    if inode == 0 {
        return;
    }
    event.ino = read_word(at(inode, config!(offsets.inode_ino))).unwrap_or(0);
    event.mode = read_u32(at(inode, config!(offsets.inode_mode))).unwrap_or(0) as u16;
    let sb = read_word(at(inode, config!(offsets.inode_sb))).unwrap_or(0);
    if sb != 0 {
        event.dev = read_u32(at(sb, config!(offsets.sb_dev))).unwrap_or(0);
    }
}

// ----- events -----

/// Whether `tgid` is followed.
#[inline(always)]
fn in_scope(tgid: u32) -> bool {
    // SAFETY: plain lookups; the values are not kept.
    unsafe { FDID_SCOPE.get(&SCOPE_SETTINGS).is_none() || FDID_SCOPE.get(&tgid).is_some() }
}

/// An event of the current thread, with its ids, time and comm.
#[inline(always)]
fn event_of_current(kind: u8) -> WatchEvent {
    let pid_tgid = bpf_get_current_pid_tgid();
    WatchEvent {
        // SAFETY: no preconditions.
        time_ns: unsafe { bpf_ktime_get_ns() },
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        kind,
        comm: bpf_get_current_comm().unwrap_or([0; 16]),
        ..WatchEvent::default()
    }
}

/// Wakes the reader only once this much waits in the ring buffer; it also reads on a short timer
/// (`fdid watch`'s `WAKE_INTERVAL`). A wakeup per event would cost the traced processes more than
/// the programs themselves.
const WAKE_BYTES: u64 = 256 << 10;

/// Writes `value` to the ring buffer, or counts it lost.
#[inline(always)]
fn emit<T: 'static>(value: &T) {
    const BPF_RB_NO_WAKEUP: u64 = 1;
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    const BPF_RB_AVAIL_DATA: u64 = 0;
    let flags = if FDID_EVENTS.query(BPF_RB_AVAIL_DATA) >= WAKE_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    if FDID_EVENTS.output(value, flags).is_err()
        && let Some(lost) = FDID_LOST.get_ptr_mut(0)
    {
        // SAFETY: this CPU's slot of our own map.
        unsafe { *lost += 1 };
    }
}

/// Emits an INSTALL of the current process's `fd`.
#[inline(always)]
fn install(fd: u32, via: u8, aux: u32, from_pid: u32) {
    let file = file_at(fd);
    if file == 0 {
        return;
    }
    let mut event = event_of_current(kind::INSTALL);
    event.fd = fd;
    event.via = via;
    event.aux = aux;
    event.from_pid = from_pid;
    describe(&mut event, file);
    emit(&event);
}

// ----- syscall tracepoints -----

/// `args[n]` of a `sys_enter_*` record (8-byte common header, `long id`, `unsigned long args[6]`).
#[inline(always)]
fn syscall_arg(ctx: *mut c_void, n: usize) -> u64 {
    // SAFETY: within the tracepoint's record, which the verifier bounds.
    unsafe { read_volatile(ctx.cast::<u8>().add(16 + 8 * n).cast::<u64>()) }
}

/// `ret` of a `sys_exit_*` record (8-byte common header, `long id`, `long ret`).
#[inline(always)]
fn syscall_ret(ctx: *mut c_void) -> i64 {
    // SAFETY: as in `syscall_arg`.
    unsafe { read_volatile(ctx.cast::<u8>().add(16).cast::<i64>()) }
}

/// Notes the call the current thread enters, if its process is followed; `call` is only worked
/// out then (reading and hashing files is not done for processes out of scope).
#[inline(always)]
fn enter(call: impl FnOnce() -> Call) {
    let pid_tgid = bpf_get_current_pid_tgid();
    if in_scope((pid_tgid >> 32) as u32) {
        let _ = FDID_CALLS.insert(&pid_tgid, &call(), 0);
    }
}

/// Takes what the entry noted.
#[inline(always)]
fn leave() -> Option<Call> {
    let key = bpf_get_current_pid_tgid();
    // SAFETY: a lookup in our own map, copied out at once.
    let call = unsafe { FDID_CALLS.get(&key).copied() };
    if call.is_some() {
        let _ = FDID_CALLS.remove(&key);
    }
    call
}

const fn call(via: u8, fd: u32) -> Call {
    Call {
        via: via as u32,
        fd,
        other: 0,
        _pad: 0,
        user: 0,
        hash: 0,
    }
}

/// Exit of open, socket, accept… (see `NEW_FD_SYSCALLS_EXIT`): the fd returned.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_exit_openat")]
pub extern "C" fn fdid_new_fd(ctx: *mut c_void) -> i32 {
    let ret = syscall_ret(ctx);
    if ret >= 0 && in_scope((bpf_get_current_pid_tgid() >> 32) as u32) {
        install(ret as u32, via::OPEN, 0, 0);
    }
    0
}

/// dup, dup2, dup3: `args[0]` is the fd copied.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_dup")]
pub extern "C" fn fdid_dup_enter(ctx: *mut c_void) -> i32 {
    enter(|| call(via::DUP, syscall_arg(ctx, 0) as u32));
    0
}

/// fcntl `F_DUPFD` and `F_DUPFD_CLOEXEC`.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_fcntl")]
pub extern "C" fn fdid_fcntl_enter(ctx: *mut c_void) -> i32 {
    const F_DUPFD: u64 = 0;
    const F_DUPFD_CLOEXEC: u64 = 1030;
    let cmd = syscall_arg(ctx, 1);
    if cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC {
        enter(|| call(via::DUP, syscall_arg(ctx, 0) as u32));
    }
    0
}

/// The initial-namespace number of the process a pidfd's file refers to: its `struct pid` is the
/// file's `private_data` (up to 6.8) or, with pidfs, its inode's `i_private`; `numbers[0].nr`.
#[inline(always)]
fn pidfd_target(pidfd: u64) -> u32 {
    let at = |base: u64, offset: u32| (base + u64::from(offset)) as *const c_void;
    let private = read_word(at(pidfd, config!(offsets.watch.file_private_data))).unwrap_or(0);
    let pid = if private != 0 {
        private
    } else {
        read_word(at(pidfd, config!(offsets.file_inode)))
            .filter(|&inode| inode != 0)
            .and_then(|inode| read_word(at(inode, config!(offsets.watch.inode_private))))
            .unwrap_or(0)
    };
    if pid == 0 {
        return 0;
    }
    read_u32(at(
        pid,
        config!(offsets.pid_numbers) + config!(offsets.upid_nr),
    ))
    .unwrap_or(0)
}

/// pidfd_getfd(pidfd, targetfd, flags).
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_pidfd_getfd")]
pub extern "C" fn fdid_pidfd_getfd_enter(ctx: *mut c_void) -> i32 {
    enter(|| {
        let pidfd = file_at(syscall_arg(ctx, 0) as u32);
        let mut noted = call(via::PIDFD_GETFD, syscall_arg(ctx, 1) as u32);
        noted.other = if pidfd == 0 { 0 } else { pidfd_target(pidfd) };
        noted
    });
    0
}

/// Exit of dup, dup2, dup3, fcntl, pidfd_getfd: the fd returned, as the entry said.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_exit_dup")]
pub extern "C" fn fdid_call_fd_exit(ctx: *mut c_void) -> i32 {
    let ret = syscall_ret(ctx);
    if let Some(call) = leave()
        && ret >= 0
    {
        install(ret as u32, call.via as u8, call.fd, call.other);
    }
    0
}

/// pipe(fds), pipe2(fds, flags): the user's array.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_pipe")]
pub extern "C" fn fdid_fd_pair_enter(ctx: *mut c_void) -> i32 {
    enter(|| Call {
        user: syscall_arg(ctx, 0),
        ..call(via::OPEN, 0)
    });
    0
}

/// socketpair(domain, type, protocol, fds).
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_socketpair")]
pub extern "C" fn fdid_socketpair_enter(ctx: *mut c_void) -> i32 {
    enter(|| Call {
        user: syscall_arg(ctx, 3),
        ..call(via::OPEN, 0)
    });
    0
}

/// Exit of pipe, pipe2, socketpair: the two fds the kernel wrote to the user's array.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_exit_pipe")]
pub extern "C" fn fdid_fd_pair_exit(ctx: *mut c_void) -> i32 {
    if let Some(call) = leave()
        && syscall_ret(ctx) == 0
        && call.user != 0
    {
        // SAFETY: bpf_probe_read_user checks the user address itself.
        if let Ok(fds) = unsafe { bpf_probe_read_user(call.user as *const [i32; 2]) } {
            for fd in fds {
                if fd >= 0 {
                    install(fd as u32, via::OPEN, 0, 0);
                }
            }
        }
    }
    0
}

/// `struct user_msghdr` and `struct cmsghdr` on 64-bit Linux (x86_64 and arm64 alike).
const MSG_CONTROL: u64 = 32;
const MSG_CONTROLLEN: u64 = 40;
const CMSG_HEADER: u64 = 16;
const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;

/// The fds of the first `SCM_RIGHTS` control message of a user msghdr (up to [`SENT_FILES`]):
/// (count, fds). The control data is the kernel's copy on receipt, the user's on send.
#[inline(always)]
fn rights_in(msghdr: u64) -> (u32, [i32; SENT_FILES]) {
    let mut fds = [-1; SENT_FILES];
    let read = |address: u64| {
        // SAFETY: bpf_probe_read_user checks the user address itself.
        unsafe { bpf_probe_read_user((address) as *const u64) }.unwrap_or(0)
    };
    let (control, length) = (read(msghdr + MSG_CONTROL), read(msghdr + MSG_CONTROLLEN));
    if control == 0 || length < CMSG_HEADER {
        return (0, fds);
    }
    let cmsg_len = read(control);
    let level_and_type = read(control + 8);
    if level_and_type as i32 != SOL_SOCKET || (level_and_type >> 32) as i32 != SCM_RIGHTS {
        return (0, fds);
    }
    let count = (cmsg_len.saturating_sub(CMSG_HEADER) / 4).min(length / 4) as u32;
    // Exactly the fds there are (at most SENT_FILES): the buffer may end right after the last one,
    // at the end of a mapped page.
    let size = count.min(SENT_FILES as u32) * 4;
    // SAFETY: the destination is our array of SENT_FILES × 4 bytes ≥ `size`; the helper checks the
    // user address itself.
    let rc = unsafe {
        generated::bpf_probe_read_user(
            fds.as_mut_ptr().cast(),
            size,
            (control + CMSG_HEADER) as *const c_void,
        )
    };
    if rc != 0 {
        return (0, [-1; SENT_FILES]);
    }
    (count, fds)
}

/// recvmsg(fd, msghdr, flags).
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_recvmsg")]
pub extern "C" fn fdid_recvmsg_enter(ctx: *mut c_void) -> i32 {
    enter(|| Call {
        user: syscall_arg(ctx, 1),
        ..call(via::SCM_RIGHTS, 0)
    });
    0
}

/// Exit of recvmsg: the fds received, from the control message the kernel wrote back.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_exit_recvmsg")]
pub extern "C" fn fdid_recvmsg_exit(ctx: *mut c_void) -> i32 {
    if let Some(call) = leave()
        && syscall_ret(ctx) >= 0
        && call.user != 0
    {
        let (count, fds) = rights_in(call.user);
        for (i, fd) in fds.into_iter().enumerate() {
            if (i as u32) < count && fd >= 0 {
                install(fd as u32, via::SCM_RIGHTS, 0, 0);
            }
        }
    }
    0
}

#[repr(C)]
struct SendEvent {
    event: WatchEvent,
    files: SentFiles,
}

#[unsafe(no_mangle)]
static mut FDID_SEND_SCRATCH: SendEvent = SendEvent {
    event: ZERO_EVENT,
    files: SentFiles {
        count: 0,
        _pad: 0,
        fds: [0; SENT_FILES],
        file_hashes: [0; SENT_FILES],
    },
};

const ZERO_EVENT: WatchEvent = WatchEvent {
    time_ns: 0,
    file_hash: 0,
    ino: 0,
    pos: 0,
    pid: 0,
    tid: 0,
    fd: 0,
    aux: 0,
    from_pid: 0,
    dev: 0,
    flags: 0,
    mode: 0,
    kind: 0,
    via: 0,
    comm: [0; 16],
};

/// sendmsg(fd, msghdr, flags): the fds an `SCM_RIGHTS` message carries and their files, said
/// before the message can be received.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_sendmsg")]
pub extern "C" fn fdid_sendmsg_enter(ctx: *mut c_void) -> i32 {
    if !in_scope((bpf_get_current_pid_tgid() >> 32) as u32) {
        return 0;
    }
    let (count, fds) = rights_in(syscall_arg(ctx, 1));
    if count == 0 {
        return 0;
    }
    let scratch = &raw mut FDID_SEND_SCRATCH;
    // SAFETY: the scratch is ours; tracing programs do not nest on one CPU and `emit` copies it
    // out before the program returns.
    unsafe {
        (*scratch).event = event_of_current(kind::SEND);
        (*scratch).files.count = count;
        for (i, fd) in fds.into_iter().enumerate() {
            let (fd, file) = if (i as u32) < count && fd >= 0 {
                (fd as u32, file_at(fd as u32))
            } else {
                (u32::MAX, 0)
            };
            (*scratch).files.fds[i] = fd;
            (*scratch).files.file_hashes[i] = if file == 0 { 0 } else { hash(file) };
        }
        emit(&*scratch);
    }
    0
}

/// Notes a close of `fd` (to `last` for close_range) with what `fd` holds, for the exit.
#[inline(always)]
fn note_close(fd: u32, last: u32) {
    enter(|| {
        let mut noted = call(0, fd);
        noted.other = last;
        let file = file_at(fd);
        noted.hash = if file == 0 { 0 } else { hash(file) };
        noted
    });
}

/// close(fd). (A tracepoint program may read only its record's arguments, hence two.)
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_close")]
pub extern "C" fn fdid_close_enter(ctx: *mut c_void) -> i32 {
    note_close(syscall_arg(ctx, 0) as u32, 0);
    0
}

/// close_range(first, last, flags); with `CLOSE_RANGE_CLOEXEC` it only marks the fds.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_close_range")]
pub extern "C" fn fdid_close_range_enter(ctx: *mut c_void) -> i32 {
    const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
    if syscall_arg(ctx, 2) & CLOSE_RANGE_CLOEXEC == 0 {
        note_close(syscall_arg(ctx, 0) as u32, syscall_arg(ctx, 1) as u32);
    }
    0
}

/// Exit of close and close_range: on success, the fd (or range) is closed.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_exit_close")]
pub extern "C" fn fdid_close_exit(ctx: *mut c_void) -> i32 {
    if let Some(call) = leave()
        && syscall_ret(ctx) == 0
    {
        let mut event = event_of_current(kind::CLOSE);
        event.fd = call.fd;
        event.file_hash = call.hash;
        // close_range: its last fd (close notes 0).
        if call.other > call.fd {
            event.kind = kind::CLOSE_RANGE;
            event.aux = call.other;
        }
        emit(&event);
    }
    0
}

// ----- scheduler tracepoints -----

/// Argument `n` of a BTF tracepoint, as a typed kernel pointer.
#[inline(always)]
fn arg_ptr(ctx: *mut c_void, n: usize) -> *const u8 {
    // SAFETY: BTF tracepoint contexts are arrays of the tracepoint's arguments; each program below
    // reads only arguments its tracepoint has.
    unsafe { read_volatile(ctx.cast::<*const u8>().add(n)) }
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sched_process_fork")]
pub extern "C" fn fdid_fork(ctx: *mut c_void) -> i32 {
    let (parent, child) = (arg_ptr(ctx, 0), arg_ptr(ctx, 1));
    if parent.is_null() || child.is_null() {
        return 0;
    }
    let (tgid, files) = (config!(offsets.task_tgid), config!(offsets.task_files));
    // SAFETY: typed task pointers from the tracepoint; frozen offsets.
    let (parent_tgid, child_tgid, parent_files, child_files): (u32, u32, u64, u64) = unsafe {
        (
            load(parent, tgid),
            load(child, tgid),
            load(parent, files),
            load(child, files),
        )
    };
    // A new thread: same process, same fds.
    if parent_tgid == child_tgid || !in_scope(parent_tgid) {
        return 0;
    }
    // SAFETY: a lookup in our own map.
    if unsafe { FDID_SCOPE.get(&SCOPE_SETTINGS).copied() } == Some(SCOPE_TREE) {
        let _ = FDID_SCOPE.insert(&child_tgid, &1, 0);
    }
    let mut event = event_of_current(kind::FORK);
    event.pid = parent_tgid;
    event.fd = child_tgid;
    event.aux = u32::from(parent_files == child_files);
    emit(&event);
    0
}

#[repr(C)]
struct ExecEvent {
    event: WatchEvent,
    fds: ExecFds,
}

#[unsafe(no_mangle)]
static mut FDID_EXEC_SCRATCH: ExecEvent = ExecEvent {
    event: ZERO_EVENT,
    fds: ExecFds {
        max_fds: 0,
        words: 0,
        open_fds: [0; EXEC_FD_WORDS],
    },
};

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`: after exec
/// closed the close-on-exec fds; the event says which stayed open.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sched_process_exec")]
pub extern "C" fn fdid_exec(_ctx: *mut c_void) -> i32 {
    let event = event_of_current(kind::EXEC);
    if !in_scope(event.pid) {
        return 0;
    }
    let Some(fdt) = current_fdt() else {
        return 0;
    };
    let at = |offset: u32| (fdt + u64::from(offset)) as *const c_void;
    let max_fds = read_u32(at(config!(offsets.watch.fdt_max_fds))).unwrap_or(0);
    let open_fds = read_word(at(config!(offsets.watch.fdt_open_fds))).unwrap_or(0);
    let words = (max_fds as usize).div_ceil(64).min(EXEC_FD_WORDS);
    let scratch = &raw mut FDID_EXEC_SCRATCH;
    // SAFETY: the scratch is ours (see `fdid_sendmsg_enter`).
    unsafe {
        (*scratch).event = event;
        (*scratch).fds.max_fds = max_fds;
        (*scratch).fds.words = words as u32;
        for i in 0..EXEC_FD_WORDS {
            (*scratch).fds.open_fds[i] = if i < words && open_fds != 0 {
                read_word((open_fds + 8 * i as u64) as *const c_void).unwrap_or(0)
            } else {
                0
            };
        }
        emit(&*scratch);
    }
    0
}

/// `sched_process_exit(struct task_struct *p)`: the process is gone with its last thread
/// (`signal->live` already counted down).
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sched_process_exit")]
pub extern "C" fn fdid_exit(ctx: *mut c_void) -> i32 {
    let task = arg_ptr(ctx, 0);
    if task.is_null() {
        return 0;
    }
    // SAFETY: a typed task pointer; frozen offsets; `signal` is then read as a number.
    let (tgid, signal): (u32, u64) = unsafe {
        (
            load(task, config!(offsets.task_tgid)),
            load(task, config!(offsets.watch.task_signal)),
        )
    };
    if !in_scope(tgid) {
        return 0;
    }
    let live = read_u32((signal + u64::from(config!(offsets.watch.signal_live))) as *const c_void);
    if live != Some(0) {
        return 0;
    }
    let mut event = event_of_current(kind::EXIT);
    event.pid = tgid;
    emit(&event);
    // SAFETY: a lookup in our own map.
    if unsafe { FDID_SCOPE.get(&SCOPE_SETTINGS).is_some() } {
        let _ = FDID_SCOPE.remove(&tgid);
    }
    0
}

/// `void __fput(struct file *)`: the description's last reference is gone.
#[unsafe(no_mangle)]
#[unsafe(link_section = "fentry/__fput")]
pub extern "C" fn fdid_release(ctx: *mut c_void) -> i32 {
    // The pointer's value, as a number (no arithmetic on pointers).
    let Some(file) = read_word(ctx.cast_const()) else {
        return 0;
    };
    let mut event = event_of_current(kind::RELEASE);
    event.file_hash = hash(file);
    emit(&event);
    0
}
