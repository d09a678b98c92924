//! The raw syscall-exit tracepoint and what it does at the syscalls that change fd tables.

use super::*;

/// What the config says to do at syscall `nr`.
#[inline(always)]
fn action(nr: u64) -> u8 {
    if nr >= SYSCALL_SLOTS as u64 {
        return syscall::NONE;
    }
    config!(watch.syscalls[nr as usize])
}

/// Whether the current task makes compat (32-bit) syscalls, whose numbers mean other calls.
#[inline(always)]
fn compat(current: Current) -> bool {
    let (mask, offset) = (
        config!(offsets.watch.compat_mask),
        config!(offsets.watch.task_compat),
    );
    if mask == 0 {
        return false;
    }
    let word = match current.typed() {
        // SAFETY: a typed task pointer; a frozen offset inside `thread_info`'s flag word.
        Some(task) => Some(unsafe { load::<u32>(task, offset) }),
        None => {
            // SAFETY: no preconditions; the task is only read through bpf_probe_read_kernel.
            let task = unsafe { bpf_get_current_task() };
            read_u32((task + u64::from(offset)) as *const c_void)
        }
    };
    word.is_none_or(|word| word & mask != 0)
}

/// A syscall's registers (`struct pt_regs`, typed): its arguments and number.
#[derive(Clone, Copy)]
struct Regs(*const u8);

impl Regs {
    /// Argument `N`, as it was at entry.
    #[inline(always)]
    fn arg<const N: usize>(self) -> u64 {
        let offset = config!(offsets.watch.regs_args[N]);
        // SAFETY: a typed pt_regs pointer from the tracepoint; a frozen offset of an 8-byte member.
        unsafe { load(self.0, offset) }
    }

    /// The syscall's number (its low 32 bits: a negative one is out of the table).
    #[inline(always)]
    fn nr(self) -> u64 {
        let offset = config!(offsets.watch.regs_nr);
        // SAFETY: as in `arg`.
        u64::from(unsafe { load::<u32>(self.0, offset) })
    }
}

/// `sys_exit(struct pt_regs *regs, long ret)`: the fds a syscall made.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sys_exit")]
pub extern "C" fn fdid_sys_exit(ctx: *mut c_void) -> i32 {
    let regs = Regs(arg_ptr(ctx, 0));
    if regs.0.is_null() {
        return 0;
    }
    let action = action(regs.nr());
    if action == syscall::NONE {
        return 0;
    }
    let current = Current::get();
    if compat(current) || !current_in_scope() {
        return 0;
    }
    let ret = arg_word(ctx, 1) as i64;
    if action == syscall::CLOSE {
        // Whatever else it returns, a close of an open fd took it out of the table.
        const EBADF: i64 = 9;
        if ret != -EBADF {
            closed(current, regs.arg::<0>() as u32);
        }
        return 0;
    }
    if ret < 0 {
        return 0;
    }
    let fd = ret as u32;
    match action {
        syscall::NEW_FD => install(current, fd, via::OPEN, 0, 0),
        syscall::DUP => install(current, fd, via::DUP, regs.arg::<0>() as u32, 0),
        syscall::FCNTL => {
            const F_DUPFD: u64 = 0;
            const F_DUPFD_CLOEXEC: u64 = 1030;
            let cmd = regs.arg::<1>();
            if cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC {
                install(current, fd, via::DUP, regs.arg::<0>() as u32, 0);
            }
        }
        syscall::PIDFD_GETFD => {
            // The pidfd is still open: the process it names is the one the fd came from.
            let pidfd = file_at(current, regs.arg::<0>() as u32);
            let from = if pidfd == 0 { 0 } else { pidfd_target(pidfd) };
            install(current, fd, via::PIDFD_GETFD, regs.arg::<1>() as u32, from);
        }
        syscall::PIPE if ret == 0 => installed_pair(current, regs.arg::<0>()),
        syscall::SOCKETPAIR if ret == 0 => installed_pair(current, regs.arg::<3>()),
        // One call site each (the verifier checks a subprogram once per call site).
        syscall::RECVMSG | syscall::RECVMMSG => {
            received(current, regs.arg::<1>(), messages(action, ret));
        }
        syscall::SENDMSG | syscall::SENDMMSG => {
            sending(current, regs.arg::<1>(), messages(action, ret));
        }
        syscall::CLOSE_RANGE if ret == 0 => {
            const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
            if regs.arg::<2>() & CLOSE_RANGE_CLOEXEC == 0 {
                closed_range(current, regs.arg::<0>() as u32, regs.arg::<1>() as u32);
            }
        }
        syscall::BPF if makes_bpf_fd(regs.arg::<0>()) => install(current, fd, via::OPEN, 0, 0),
        syscall::SECCOMP => {
            const SECCOMP_SET_MODE_FILTER: u64 = 1;
            const SECCOMP_FILTER_FLAG_NEW_LISTENER: u64 = 1 << 3;
            if regs.arg::<0>() == SECCOMP_SET_MODE_FILTER
                && regs.arg::<1>() & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0
            {
                install(current, fd, via::OPEN, 0, 0);
            }
        }
        _ => {}
    }
    0
}

/// How many messages a successful recvmsg, sendmsg, recvmmsg or sendmmsg handled: recvmsg and
/// sendmsg return bytes, of one message; recvmmsg and sendmmsg the number of messages.
#[inline(always)]
fn messages(action: u8, ret: i64) -> u64 {
    if action == syscall::RECVMMSG || action == syscall::SENDMMSG {
        ret as u64
    } else {
        1
    }
}

/// Whether bpf(2) command `cmd` returns a new fd (the others return 0 or a count): MAP_CREATE,
/// PROG_LOAD, OBJ_GET, PROG/MAP/BTF/LINK_GET_FD_BY_ID, RAW_TRACEPOINT_OPEN, BTF_LOAD,
/// LINK_CREATE, ENABLE_STATS, ITER_CREATE, TOKEN_CREATE.
#[inline(always)]
fn makes_bpf_fd(cmd: u64) -> bool {
    const FD_COMMANDS: u64 = 1 << 0
        | 1 << 5
        | 1 << 7
        | 1 << 13
        | 1 << 14
        | 1 << 17
        | 1 << 18
        | 1 << 19
        | 1 << 28
        | 1 << 30
        | 1 << 32
        | 1 << 33
        | 1 << 36;
    cmd < 64 && FD_COMMANDS & (1 << cmd) != 0
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

/// pipe, pipe2, socketpair succeeded: the two fds the kernel wrote to the user's array.
#[inline(always)]
fn installed_pair(current: Current, user: u64) {
    if user == 0 {
        return;
    }
    // SAFETY: bpf_probe_read_user checks the user address itself.
    if let Ok(fds) = unsafe { bpf_probe_read_user(user as *const [i32; 2]) } {
        for fd in fds {
            if fd >= 0 {
                install(current, fd as u32, via::OPEN, 0, 0);
            }
        }
    }
}

/// `struct user_msghdr` and `struct cmsghdr` on 64-bit Linux (x86_64 and arm64 alike).
const MSG_CONTROL: u64 = 32;
const MSG_CONTROLLEN: u64 = 40;
const CMSG_HEADER: u64 = 16;
const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;

/// Writes `SENT_FILES` × -1 to `*fds`, in a subprogram with volatile stores (see `fill_event`:
/// `[-1; N]`, or a copy of it, is a byte-by-byte memset).
#[inline(never)]
fn fill_no_fds(fds: *mut [i32; SENT_FILES]) {
    let words = fds.cast::<u64>();
    for i in 0..SENT_FILES / 2 {
        // SAFETY: within the caller's array (16 × i32 is 8 × u64); all ones is -1 in each half.
        unsafe { words.add(i).write_volatile(u64::MAX) };
    }
}

/// The first `SCM_RIGHTS` control message of a user msghdr: (how many fds it carries, where they
/// are). The control data is the kernel's copy on receipt, the user's on send.
#[inline(always)]
fn rights_of(msghdr: u64) -> Option<(u32, u64)> {
    // Two adjacent words in one read (zeroes if it fails).
    let read = |address: u64| {
        // SAFETY: bpf_probe_read_user checks the user address itself.
        unsafe { bpf_probe_read_user(address as *const [u64; 2]) }.unwrap_or([0; 2])
    };
    const _: () = assert!(MSG_CONTROLLEN == MSG_CONTROL + 8);
    let [control, length] = read(msghdr + MSG_CONTROL);
    if control == 0 || length < CMSG_HEADER {
        return None;
    }
    // `cmsg_len`, then `cmsg_level` and `cmsg_type`.
    let [cmsg_len, level_and_type] = read(control);
    if level_and_type as i32 != SOL_SOCKET || (level_and_type >> 32) as i32 != SCM_RIGHTS {
        return None;
    }
    let count = (cmsg_len.saturating_sub(CMSG_HEADER) / 4).min(length / 4) as u32;
    (count > 0).then_some((count, control + CMSG_HEADER))
}

/// Reads the first `count` (at most [`SENT_FILES`]) fds at user address `fds` into `into`, the rest
/// -1; false (all -1) if they could not be read.
#[inline(always)]
fn read_fds(into: *mut [i32; SENT_FILES], count: u32, fds: u64) -> bool {
    fill_no_fds(into);
    // Exactly the fds there are: the buffer may end right after the last one, at a page's end.
    let size = count.min(SENT_FILES as u32) * 4;
    // SAFETY: `into` is room for SENT_FILES × 4 bytes ≥ `size`; the helper checks the user address.
    let rc = unsafe { generated::bpf_probe_read_user(into.cast(), size, fds as *const c_void) };
    if rc != 0 {
        fill_no_fds(into);
    }
    rc == 0
}

/// The fds of the first `SCM_RIGHTS` control message of a user msghdr (up to [`SENT_FILES`]):
/// (count, fds).
#[inline(always)]
fn rights_in(msghdr: u64) -> (u32, [i32; SENT_FILES]) {
    let mut fds = MaybeUninit::<[i32; SENT_FILES]>::uninit();
    let count = match rights_of(msghdr) {
        // A failed read leaves them all -1.
        Some((count, at)) => {
            if read_fds(fds.as_mut_ptr(), count, at) {
                count
            } else {
                0
            }
        }
        None => {
            fill_no_fds(fds.as_mut_ptr());
            0
        }
    };
    // SAFETY: `read_fds` or `fill_no_fds` wrote every element.
    (count, unsafe { fds.assume_init() })
}

/// `struct mmsghdr` on 64-bit Linux: a user msghdr and the bytes it carried, padded to 64 bytes.
const MMSGHDR: u64 = 64;

/// recvmsg (one msghdr) or recvmmsg (`messages` mmsghdrs, the first [`MMSG_FOLLOWED`] of them)
/// succeeded: the fds received, from the control messages the kernel wrote back. Inlined: as a
/// subprogram of its own, its frame between the tracepoint's and `install`'s makes a stack 5.10
/// refuses (544 bytes).
#[inline(always)]
fn received(current: Current, first: u64, messages: u64) {
    if first == 0 {
        return;
    }
    for message in 0..MMSG_FOLLOWED as u64 {
        if message >= messages {
            return;
        }
        // A msghdr begins each mmsghdr; recvmsg's is read as the first of one.
        let (count, fds) = rights_in(first + message * MMSGHDR);
        for (i, fd) in fds.into_iter().enumerate() {
            if (i as u32) < count && fd >= 0 {
                install(current, fd as u32, via::SCM_RIGHTS, 0, 0);
            }
        }
    }
}

#[repr(C)]
struct SendEvent {
    event: WatchEvent,
    files: SentFiles,
}

/// sendmsg (one msghdr) or sendmmsg (`messages` mmsghdrs, the first [`MMSG_FOLLOWED`] of them)
/// sent: the fds each `SCM_RIGHTS` message carried (read again from the caller's msghdr) and their
/// files (still open in the sender), a SEND event a message.
///
/// A subprogram of its own: its stack is not added to the one `install` extends (5.10 and arm64
/// refuse a combined stack over 512 bytes).
#[inline(never)]
fn sending(current: Current, first: u64, messages: u64) {
    for message in 0..MMSG_FOLLOWED as u64 {
        if message >= messages {
            return;
        }
        // A msghdr begins each mmsghdr; sendmsg's is read as the first of one.
        sent_in(current, first + message * MMSGHDR);
    }
}

/// One message `sending` found, as a SEND event.
#[inline(always)]
fn sent_in(current: Current, msghdr: u64) {
    let Some((count, at)) = rights_of(msghdr) else {
        return;
    };
    emit_in_place(|send: *mut SendEvent| {
        // SAFETY: `send` is the reserved room for one SendEvent, written member by member (every
        // byte: SendEvent has no padding); the fds are read straight into it, then each file.
        unsafe {
            fill_event(&raw mut (*send).event, kind::SEND, current);
            let read = read_fds((&raw mut (*send).files.fds).cast(), count, at);
            (&raw mut (*send).files.count).write(if read { count } else { 0 });
            (&raw mut (*send).files._pad).write(0);
            for i in 0..SENT_FILES {
                let fd = (*send).files.fds[i];
                let file = if (i as u32) < count && (fd as i32) >= 0 {
                    file_at(current, fd)
                } else {
                    (*send).files.fds[i] = u32::MAX;
                    0
                };
                (*send).files.file_hashes[i] = if file == 0 { 0 } else { hash(file) };
            }
        }
    });
}

/// close(fd) took `fd` out of the table. What the fd holds now is read after the event's room is
/// taken: an fd another thread got at the same number since is seen here, or told after this.
#[inline(always)]
fn closed(current: Current, fd: u32) {
    emit_in_place(|event: *mut WatchEvent| {
        fill_event(event, kind::CLOSE, current);
        // SAFETY: `event` is the reserved room for one WatchEvent, every member of which
        // `fill_event` just wrote.
        let event = unsafe { &mut *event };
        event.fd = fd;
        let now = file_at(current, fd);
        event.file_hash = if now == 0 { 0 } else { hash(now) };
    });
}

/// close_range(first, last) without `CLOSE_RANGE_CLOEXEC` succeeded: every fd from `first` to
/// `last` is closed. A subprogram of its own, as `sending`.
#[inline(never)]
fn closed_range(current: Current, first: u32, last: u32) {
    emit_in_place(|event: *mut WatchEvent| {
        fill_event(event, kind::CLOSE_RANGE, current);
        // SAFETY: `event` is the reserved room for one WatchEvent, every member of which
        // `fill_event` just wrote.
        let event = unsafe { &mut *event };
        event.fd = first;
        event.aux = last;
    });
}
