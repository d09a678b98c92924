//! The two raw syscall tracepoints and what they do at the syscalls that change fd tables.

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
fn compat() -> bool {
    let (mask, offset) = (
        config!(offsets.watch.compat_mask),
        config!(offsets.watch.task_compat),
    );
    if mask == 0 {
        return false;
    }
    let word = match typed_current() {
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

/// `sys_enter(struct pt_regs *regs, long id)`: close and close_range (what the fds hold is gone
/// by the exit), sendmsg (the fds sent, said before they can be received).
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sys_enter")]
pub extern "C" fn fdid_sys_enter(ctx: *mut c_void) -> i32 {
    let action = action(arg_word(ctx, 1));
    // Most calls in the table are seen at their exit only: nothing more to look at here.
    if !matches!(
        action,
        syscall::CLOSE | syscall::CLOSE_RANGE | syscall::SENDMSG
    ) || compat()
    {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if !in_scope((pid_tgid >> 32) as u32) {
        return 0;
    }
    let regs = Regs(arg_ptr(ctx, 0));
    match action {
        syscall::CLOSE => closing(regs.arg::<0>() as u32),
        syscall::CLOSE_RANGE => {
            const CLOSE_RANGE_CLOEXEC: u64 = 1 << 2;
            if regs.arg::<2>() & CLOSE_RANGE_CLOEXEC == 0 {
                let call = Call {
                    first: regs.arg::<0>() as u32,
                    last: regs.arg::<1>() as u32,
                };
                let _ = FDID_CALLS.insert(&pid_tgid, &call, 0);
            }
        }
        syscall::SENDMSG => sending(regs.arg::<1>()),
        _ => {}
    }
    0
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
    if action == syscall::NONE || action == syscall::SENDMSG || action == syscall::CLOSE {
        return 0;
    }
    if compat() || !in_scope((bpf_get_current_pid_tgid() >> 32) as u32) {
        return 0;
    }
    let ret = arg_word(ctx, 1) as i64;
    if action == syscall::CLOSE_RANGE {
        closed_range(ret);
        return 0;
    }
    if ret < 0 {
        return 0;
    }
    let fd = ret as u32;
    match action {
        syscall::NEW_FD => install(fd, via::OPEN, 0, 0),
        syscall::DUP => install(fd, via::DUP, regs.arg::<0>() as u32, 0),
        syscall::FCNTL => {
            const F_DUPFD: u64 = 0;
            const F_DUPFD_CLOEXEC: u64 = 1030;
            let cmd = regs.arg::<1>();
            if cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC {
                install(fd, via::DUP, regs.arg::<0>() as u32, 0);
            }
        }
        syscall::PIDFD_GETFD => {
            // The pidfd is still open: the process it names is the one the fd came from.
            let pidfd = file_at(regs.arg::<0>() as u32);
            let from = if pidfd == 0 { 0 } else { pidfd_target(pidfd) };
            install(fd, via::PIDFD_GETFD, regs.arg::<1>() as u32, from);
        }
        syscall::PIPE if ret == 0 => installed_pair(regs.arg::<0>()),
        syscall::SOCKETPAIR if ret == 0 => installed_pair(regs.arg::<3>()),
        syscall::RECVMSG => received(regs.arg::<1>()),
        syscall::BPF if makes_bpf_fd(regs.arg::<0>()) => install(fd, via::OPEN, 0, 0),
        syscall::SECCOMP => {
            const SECCOMP_SET_MODE_FILTER: u64 = 1;
            const SECCOMP_FILTER_FLAG_NEW_LISTENER: u64 = 1 << 3;
            if regs.arg::<0>() == SECCOMP_SET_MODE_FILTER
                && regs.arg::<1>() & SECCOMP_FILTER_FLAG_NEW_LISTENER != 0
            {
                install(fd, via::OPEN, 0, 0);
            }
        }
        _ => {}
    }
    0
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
fn installed_pair(user: u64) {
    if user == 0 {
        return;
    }
    // SAFETY: bpf_probe_read_user checks the user address itself.
    if let Ok(fds) = unsafe { bpf_probe_read_user(user as *const [i32; 2]) } {
        for fd in fds {
            if fd >= 0 {
                install(fd as u32, via::OPEN, 0, 0);
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

/// `SENT_FILES` × -1, written in a subprogram with volatile stores (see `fill_event`: `[-1; N]`,
/// or a copy of it, is a byte-by-byte memset).
#[inline(always)]
fn no_fds() -> [i32; SENT_FILES] {
    let mut fds = MaybeUninit::<[i32; SENT_FILES]>::uninit();
    fill_no_fds(fds.as_mut_ptr());
    // SAFETY: `fill_no_fds` wrote every element.
    unsafe { fds.assume_init() }
}

#[inline(never)]
fn fill_no_fds(fds: *mut [i32; SENT_FILES]) {
    let words = fds.cast::<u64>();
    for i in 0..SENT_FILES / 2 {
        // SAFETY: within the caller's array (16 × i32 is 8 × u64); all ones is -1 in each half.
        unsafe { words.add(i).write_volatile(u64::MAX) };
    }
}

/// The fds of the first `SCM_RIGHTS` control message of a user msghdr (up to [`SENT_FILES`]):
/// (count, fds). The control data is the kernel's copy on receipt, the user's on send.
#[inline(always)]
fn rights_in(msghdr: u64) -> (u32, [i32; SENT_FILES]) {
    let mut fds = no_fds();
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
        return (0, no_fds());
    }
    (count, fds)
}

/// recvmsg succeeded: the fds received, from the control message the kernel wrote back.
#[inline(always)]
fn received(msghdr: u64) {
    if msghdr == 0 {
        return;
    }
    let (count, fds) = rights_in(msghdr);
    for (i, fd) in fds.into_iter().enumerate() {
        if (i as u32) < count && fd >= 0 {
            install(fd as u32, via::SCM_RIGHTS, 0, 0);
        }
    }
}

#[repr(C)]
struct SendEvent {
    event: WatchEvent,
    files: SentFiles,
}

/// sendmsg(fd, msghdr, flags), at entry: the fds an `SCM_RIGHTS` message carries and their
/// files, said before the message can be received.
#[inline(always)]
fn sending(msghdr: u64) {
    let (count, fds) = rights_in(msghdr);
    if count == 0 {
        return;
    }
    let event = event_of_current(kind::SEND);
    emit_in_place(|send: *mut SendEvent| {
        // SAFETY: `send` is the reserved room for one SendEvent, written member by member (every
        // byte: SendEvent has no padding).
        unsafe {
            (&raw mut (*send).event).write(event);
            (&raw mut (*send).files.count).write(count);
            (&raw mut (*send).files._pad).write(0);
            for (i, fd) in fds.into_iter().enumerate() {
                let (fd, file) = if (i as u32) < count && fd >= 0 {
                    (fd as u32, file_at(fd as u32))
                } else {
                    (u32::MAX, 0)
                };
                (*send).files.fds[i] = fd;
                (*send).files.file_hashes[i] = if file == 0 { 0 } else { hash(file) };
            }
        }
    });
}

/// close(fd), at entry: a close of an open fd always takes it out of the table (whatever it then
/// returns), and nothing else can be installed there before, so it is said now, with the file.
#[inline(always)]
fn closing(fd: u32) {
    let file = file_at(fd);
    if file == 0 {
        return;
    }
    let mut event = event_of_current(kind::CLOSE);
    event.fd = fd;
    event.file_hash = hash(file);
    emit(&event);
}

/// close_range's exit: on success, the range its entry noted is closed.
#[inline(always)]
fn closed_range(ret: i64) {
    let key = bpf_get_current_pid_tgid();
    // SAFETY: a lookup in our own map, copied out at once.
    let Some(call) = (unsafe { FDID_CALLS.get(&key).copied() }) else {
        return;
    };
    let _ = FDID_CALLS.remove(&key);
    if ret == 0 {
        let mut event = event_of_current(kind::CLOSE_RANGE);
        event.fd = call.first;
        event.aux = call.last;
        emit(&event);
    }
}
