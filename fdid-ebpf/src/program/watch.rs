//! `fdid watch`'s tracing programs: each change to an fd table, as a [`WatchEvent`] in a ring buffer.
//!
//! Syscalls are seen by two raw BTF tracepoints, `sys_enter` and `sys_exit`, which act on the
//! syscalls the config's table names (by number, for the architecture userspace was built for):
//! the new fd comes from the return value (open, socket, dup…), from the user's array (pipe,
//! socketpair) or from the user's control message (`SCM_RIGHTS` received); the arguments are read
//! from the syscall's saved registers. The file behind a new fd is read from the caller's fd table
//! and hashed with the iterator's key, so it is named as a walk names it. A close is said at its
//! entry, with what the fd holds. Forks, execs and exits come from the scheduler's BTF
//! tracepoints, the end of a description from `__fput` where the kernel lets it be traced.
//!
//! Every kernel address not handed over typed by a tracepoint is followed with
//! `bpf_probe_read_kernel`, at offsets from BTF (the config).

use core::{ffi::c_void, mem::MaybeUninit, ptr::read_volatile};

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_probe_read_user,
        generated::{self, bpf_get_current_task, bpf_ktime_get_ns, bpf_probe_read_kernel},
    },
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use fdid_ebpf::{
    siphash::siphash24_u64,
    watch::{
        CALLS_ENTRIES, DEFAULT_RING_BYTES, EXEC_FD_WORDS, ExecFds, SCOPE_ENTRIES, SCOPE_SETTINGS,
        SCOPE_TREE, SENT_FILES, SYSCALL_SLOTS, SentFiles, WatchEvent, kind, syscall, via,
    },
};

use super::{load, read_u32, read_word};

#[map]
static FDID_EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

#[map]
static FDID_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map]
static FDID_SCOPE: HashMap<u32, u32> = HashMap::with_max_entries(SCOPE_ENTRIES, 0);

/// What close_range's entry noted for its exit: the range.
#[repr(C)]
#[derive(Clone, Copy)]
struct Call {
    first: u32,
    last: u32,
}

/// Thread (pid_tgid) → the close_range it is inside.
#[map]
static FDID_CALLS: HashMap<u64, Call> = HashMap::with_max_entries(CALLS_ENTRIES, 0);

// ----- the current process's fd table -----

/// `WORDS` × 8 bytes of a kernel object at a number-address, from `start` on, read with one
/// probe read (a probe read costs as much as the rest of an event); members at frozen offsets are
/// picked from it, or read on their own when they lie outside it or it could not be read.
struct Span<const WORDS: usize> {
    base: u64,
    start: u32,
    words: [u64; WORDS],
    read: bool,
}

impl<const WORDS: usize> Span<WORDS> {
    /// The span that begins at the lowest of `offsets` (rounded down to 8 bytes).
    #[inline(always)]
    fn around(base: u64, offsets: &[u32]) -> Self {
        let start = offsets.iter().copied().min().unwrap_or(0) & !7;
        let mut words = MaybeUninit::<[u64; WORDS]>::uninit();
        // SAFETY: bpf_probe_read_kernel checks the source itself; the destination is our array,
        // which it fills (or zeroes, when the read fails): no zeroing before, which would cost a
        // call to memset.
        let (rc, words) = unsafe {
            let rc = bpf_probe_read_kernel(
                words.as_mut_ptr().cast(),
                (WORDS * 8) as u32,
                (base + u64::from(start)) as *const c_void,
            );
            (rc, words.assume_init())
        };
        Self {
            base,
            start,
            words,
            read: rc == 0,
        }
    }

    /// The `size`-byte member at `offset` (1, 2, 4 or 8 bytes, naturally aligned), zero-extended.
    /// The verifier knows `offset` (frozen config): it sees a constant index.
    #[inline(always)]
    fn member(&self, offset: u32, size: u32) -> u64 {
        let mask = if size == 8 {
            u64::MAX
        } else {
            (1u64 << (size * 8)) - 1
        };
        if self.read && offset >= self.start && offset % size == 0 {
            let within = offset - self.start;
            let index = (within / 8) as usize;
            if index < WORDS {
                return (self.words[index] >> ((within % 8) * 8)) & mask;
            }
        }
        let address = (self.base + u64::from(offset)) as *const c_void;
        match size {
            8 => read_word(address).unwrap_or(0),
            _ => u64::from(read_u32(address).unwrap_or(0)) & mask,
        }
    }
}

/// The current process's fd table: (`max_fds`, the `fd` array, the `open_fds` bitmap), as numbers.
#[inline(always)]
fn current_fdt() -> Option<(u32, u64, u64)> {
    if config!(offsets.watch.current_task_btf) != 0 {
        // Where the kernel has it (5.11+), `current` as a typed pointer: task, files and fdtable
        // are then loaded directly (cheap, checked against BTF) and only the fd array needs a probe
        // read.
        // SAFETY: no preconditions; the verifier types the result (struct task_struct *).
        let task = unsafe { generated::bpf_get_current_task_btf() }
            .cast_const()
            .cast::<u8>();
        let (task_files, files_fdt) = (
            config!(offsets.task_files),
            config!(offsets.watch.files_fdt),
        );
        let (max_fds, fd, open_fds) = (
            config!(offsets.watch.fdt_max_fds),
            config!(offsets.watch.fdt_fd),
            config!(offsets.watch.fdt_open_fds),
        );
        // SAFETY: typed pointers from the helper and from BTF members, frozen offsets.
        unsafe {
            let files: *const u8 = load(task, task_files);
            if files.is_null() {
                return None;
            }
            let fdt: *const u8 = load(files, files_fdt);
            if fdt.is_null() {
                return None;
            }
            return Some((load(fdt, max_fds), load(fdt, fd), load(fdt, open_fds)));
        }
    }
    // SAFETY: no preconditions; the pointer is only read through bpf_probe_read_kernel.
    let task = unsafe { bpf_get_current_task() };
    let files = read_word((task + u64::from(config!(offsets.task_files))) as *const c_void)?;
    if files == 0 {
        return None;
    }
    let fdt = read_word((files + u64::from(config!(offsets.watch.files_fdt))) as *const c_void)?;
    if fdt == 0 {
        return None;
    }
    let (max_fds, fd, open_fds) = (
        config!(offsets.watch.fdt_max_fds),
        config!(offsets.watch.fdt_fd),
        config!(offsets.watch.fdt_open_fds),
    );
    let fdt = Span::<4>::around(fdt, &[max_fds, fd, open_fds]);
    Some((
        fdt.member(max_fds, 4) as u32,
        fdt.member(fd, 8),
        fdt.member(open_fds, 8),
    ))
}

/// The `struct file` at `fd` of the current process, as a number (0: none).
#[inline(always)]
fn file_at(fd: u32) -> u64 {
    match current_fdt() {
        Some((max_fds, array, _)) if fd < max_fds && array != 0 => {
            read_word((array + 8 * u64::from(fd)) as *const c_void).unwrap_or(0)
        }
        _ => 0,
    }
}

#[inline(always)]
fn hash(word: u64) -> u64 {
    siphash24_u64([config!(hash_key[0]), config!(hash_key[1])], word) & config!(hash_mask)
}

/// Fills the file's identity into `event` (the same members a walk reads): one span of the file
/// and one of its inode, in the same stack room one after the other.
#[inline(always)]
fn describe(event: &mut WatchEvent, file: u64) {
    event.file_hash = hash(file);
    let inode = {
        let (flags, pos, inode) = (
            config!(offsets.file_flags),
            config!(offsets.file_pos),
            config!(offsets.file_inode),
        );
        let span = Span::<DESCRIBE_SPAN>::around(file, &[flags, pos, inode]);
        event.flags = span.member(flags, 4) as u32;
        event.pos = span.member(pos, 8) as i64;
        span.member(inode, 8)
    };
    if inode == 0 {
        return;
    }
    let (ino, mode, sb) = (
        config!(offsets.inode_ino),
        config!(offsets.inode_mode),
        config!(offsets.inode_sb),
    );
    let span = Span::<DESCRIBE_SPAN>::around(inode, &[ino, mode, sb]);
    event.ino = span.member(ino, 8);
    event.mode = span.member(mode, 2) as u16;
    let sb = span.member(sb, 8);
    if sb != 0 {
        event.dev =
            read_u32((sb + u64::from(config!(offsets.sb_dev))) as *const c_void).unwrap_or(0);
    }
}

/// Words of a file's or an inode's span: wide enough for their members fdid reads on the kernels
/// it knows (`f_inode`…`f_pos`: 88 bytes on 6.18), small enough for the 512-byte stack the
/// syscall programs share with `install`.
const DESCRIBE_SPAN: usize = 12;

// ----- events -----

/// Whether `tgid` is followed.
#[inline(always)]
fn in_scope(tgid: u32) -> bool {
    // SAFETY: a plain lookup; the value is not kept.
    config!(watch.scoped) == 0 || unsafe { FDID_SCOPE.get(&tgid).is_some() }
}

/// An event of the current thread, with its ids, time and comm.
#[inline(always)]
fn event_of_current(kind: u8) -> WatchEvent {
    let mut event = MaybeUninit::<WatchEvent>::uninit();
    fill_event(event.as_mut_ptr(), kind);
    // SAFETY: `fill_event` wrote every member.
    unsafe { event.assume_init() }
}

/// Writes every member of `*event`, the zeros with volatile stores, in a subprogram of its own: LLVM
/// otherwise turns runs of zero stores (or a copy of them) into memset calls, which this BPF
/// toolchain compiles to a byte-by-byte loop costing as much as the rest of the event.
#[inline(never)]
fn fill_event(event: *mut WatchEvent, kind: u8) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: `event` points to room for one WatchEvent (the caller's); each member is written once
    // through its own place.
    unsafe {
        (&raw mut (*event).time_ns).write_volatile(bpf_ktime_get_ns());
        (&raw mut (*event).pid).write_volatile((pid_tgid >> 32) as u32);
        (&raw mut (*event).tid).write_volatile(pid_tgid as u32);
        (&raw mut (*event).kind).write_volatile(kind);
        (&raw mut (*event).comm).write_volatile(current_comm());
        (&raw mut (*event).file_hash).write_volatile(0);
        (&raw mut (*event).ino).write_volatile(0);
        (&raw mut (*event).pos).write_volatile(0);
        (&raw mut (*event).fd).write_volatile(0);
        (&raw mut (*event).aux).write_volatile(0);
        (&raw mut (*event).from_pid).write_volatile(0);
        (&raw mut (*event).dev).write_volatile(0);
        (&raw mut (*event).flags).write_volatile(0);
        (&raw mut (*event).mode).write_volatile(0);
        (&raw mut (*event).via).write_volatile(0);
    }
}

/// The current process's name (its leader's comm, as ps and the survey name it): two loads from
/// the typed task where the kernel gives one; else the helper's, the calling thread's name.
#[inline(always)]
fn current_comm() -> [u8; 16] {
    if config!(offsets.watch.current_task_btf) == 0 {
        return bpf_get_current_comm().unwrap_or([0; 16]);
    }
    // SAFETY: no preconditions; the verifier types the result (struct task_struct *).
    let task = unsafe { generated::bpf_get_current_task_btf() }
        .cast_const()
        .cast::<u8>();
    let (leader_at, comm_at) = (
        config!(offsets.task_group_leader),
        config!(offsets.watch.task_comm),
    );
    // SAFETY: typed task pointers (the helper's, then a BTF member's); two 8-byte loads inside the
    // 16-byte `comm` member.
    let halves: [u64; 2] = unsafe {
        let leader: *const u8 = load(task, leader_at);
        let leader = if leader.is_null() { task } else { leader };
        [load(leader, comm_at), load(leader, comm_at + 8)]
    };
    // SAFETY: 16 bytes either way; the words' bytes in memory order are the name's.
    unsafe { core::mem::transmute::<[u64; 2], [u8; 16]>(halves) }
}

/// Events never wake the reader: it reads on a short timer (`fdid watch`'s `WAKE_INTERVAL`). A
/// wakeup per event, or asking the ring how full it is per event, costs the traced processes more
/// than the programs themselves.
const BPF_RB_NO_WAKEUP: u64 = 1;

/// Counts one event the ring buffer had no room for.
#[inline(always)]
fn count_lost() {
    if let Some(lost) = FDID_LOST.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of our own map.
        unsafe { *lost += 1 };
    }
}

/// Writes `value` to the ring buffer, or counts it lost.
#[inline(always)]
fn emit<T: 'static>(value: &T) {
    if FDID_EVENTS.output(value, BPF_RB_NO_WAKEUP).is_err() {
        count_lost();
    }
}

/// Writes an event too big for the stack straight into the ring buffer: `fill` gets the reserved
/// (uninitialised) room and must write all of it. Counts it lost when there is no room.
#[inline(always)]
fn emit_in_place<T: 'static>(fill: impl FnOnce(*mut T)) {
    match FDID_EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            fill(entry.as_mut_ptr());
            entry.submit(BPF_RB_NO_WAKEUP);
        }
        None => count_lost(),
    }
}

/// Emits an INSTALL of the current process's `fd`, written straight into the ring buffer. A
/// function of its own in the object (a BPF subprogram): inlined at each of its many call sites,
/// the spans it reads overflow the stack, which the syscall programs share with it.
#[inline(never)]
fn install(fd: u32, via: u8, aux: u32, from_pid: u32) {
    let file = file_at(fd);
    if file == 0 {
        return;
    }
    emit_in_place(|event: *mut WatchEvent| {
        fill_event(event, kind::INSTALL);
        // SAFETY: `event` is the reserved room for one WatchEvent, every member of which
        // `fill_event` just wrote.
        let event = unsafe { &mut *event };
        event.fd = fd;
        event.via = via;
        event.aux = aux;
        event.from_pid = from_pid;
        describe(event, file);
    });
}

// ----- syscalls -----

/// Argument `n` of a BTF tracepoint, as a typed kernel pointer.
#[inline(always)]
fn arg_ptr(ctx: *mut c_void, n: usize) -> *const u8 {
    // SAFETY: BTF tracepoint contexts are arrays of the tracepoint's arguments; each program reads
    // only arguments its tracepoint has.
    unsafe { read_volatile(ctx.cast::<*const u8>().add(n)) }
}

/// Argument `n` of a BTF tracepoint, as a number.
#[inline(always)]
fn arg_word(ctx: *mut c_void, n: usize) -> u64 {
    // SAFETY: as in `arg_ptr`.
    unsafe { read_volatile(ctx.cast::<u64>().add(n)) }
}

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
    let mask = config!(offsets.watch.compat_mask);
    if mask == 0 {
        return false;
    }
    // SAFETY: no preconditions; the task is only read through bpf_probe_read_kernel.
    let task = unsafe { bpf_get_current_task() };
    read_u32((task + u64::from(config!(offsets.watch.task_compat))) as *const c_void)
        .is_none_or(|word| word & mask != 0)
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
    if action == syscall::NONE || compat() {
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
        _ => {}
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

// ----- scheduler tracepoints -----

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

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`: after exec
/// closed the close-on-exec fds; the event says which stayed open.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sched_process_exec")]
pub extern "C" fn fdid_exec(_ctx: *mut c_void) -> i32 {
    let event = event_of_current(kind::EXEC);
    if !in_scope(event.pid) {
        return 0;
    }
    let Some((max_fds, _, open_fds)) = current_fdt() else {
        return 0;
    };
    let words = (max_fds as usize).div_ceil(64).min(EXEC_FD_WORDS);
    emit_in_place(|exec: *mut ExecEvent| {
        // SAFETY: `exec` is the reserved room for one ExecEvent, written member by member (every
        // byte: ExecEvent has no padding).
        unsafe {
            (&raw mut (*exec).event).write(event);
            (&raw mut (*exec).fds.max_fds).write(max_fds);
            (&raw mut (*exec).fds.words).write(words as u32);
            for i in 0..EXEC_FD_WORDS {
                (*exec).fds.open_fds[i] = if i < words && open_fds != 0 {
                    read_word((open_fds + 8 * i as u64) as *const c_void).unwrap_or(0)
                } else {
                    0
                };
            }
        }
    });
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
    let (tgid_at, signal_at) = (
        config!(offsets.task_tgid),
        config!(offsets.watch.task_signal),
    );
    // SAFETY: a typed task pointer; frozen offsets; `signal` is then read as a number.
    let (tgid, signal): (u32, u64) = unsafe { (load(task, tgid_at), load(task, signal_at)) };
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
    if config!(watch.scoped) != 0 {
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
