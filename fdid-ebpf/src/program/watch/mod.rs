//! `fdid watch`'s tracing programs: each change to an fd table, as a [`WatchEvent`] in a ring buffer.
//!
//! Syscalls are seen at their exit by one raw BTF tracepoint, `sys_exit`, which acts on the
//! syscalls the config's table names (by number, for the architecture userspace was built for):
//! the new fd comes from the return value (open, socket, dup…), from the user's array (pipe,
//! socketpair) or from the user's control message (`SCM_RIGHTS` received); the arguments are read
//! from the syscall's saved registers. The file behind a new fd is read from the caller's fd table
//! and hashed with the iterator's key, so it is named as a walk names it. A close is said with
//! what the fd holds afterwards (see [`kind::CLOSE`]). Forks, execs and exits come from the scheduler's BTF
//! tracepoints, the end of a description from `__fput` where the kernel lets it be traced.
//!
//! Every kernel address not handed over typed by a tracepoint is followed with
//! `bpf_probe_read_kernel`, at offsets from BTF (the config).

use core::{ffi::c_void, mem::MaybeUninit, ptr::read_volatile};

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
        DEFAULT_RING_BYTES, EXEC_FD_WORDS, ExecFds, MMSG_FOLLOWED, RDONLY_CAST_PLACEHOLDER,
        SCOPE_ENTRIES, SCOPE_SETTINGS, SCOPE_TREE, SENT_FILES, SYSCALL_SLOTS, SentFiles,
        WatchEvent, kind, syscall, via,
    },
};

use super::{file::file_facts, load, read_into, read_u32, read_word};

#[map]
static FDID_EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

#[map]
static FDID_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map]
static FDID_SCOPE: HashMap<u32, u32> = HashMap::with_max_entries(SCOPE_ENTRIES, 0);

mod sched;
mod syscalls;
mod task;

use task::{Current, current_fdt, describe, file_at, hash};

// ----- events -----

/// Whether `tgid` is followed.
#[inline(always)]
fn in_scope(tgid: u32) -> bool {
    // SAFETY: a plain lookup; the value is not kept.
    config!(watch.scoped) == 0 || unsafe { FDID_SCOPE.get(&tgid).is_some() }
}

/// Whether the current process is followed: its tgid is asked for only when the scope is not the
/// whole system (a helper call, made before the test if passed as an argument).
#[inline(always)]
fn current_in_scope() -> bool {
    config!(watch.scoped) == 0 || in_scope((bpf_get_current_pid_tgid() >> 32) as u32)
}

/// An event of the current thread, with its ids, time and comm.
#[inline(always)]
fn event_of_current(kind: u8, current: Current) -> WatchEvent {
    let mut event = MaybeUninit::<WatchEvent>::uninit();
    fill_event(event.as_mut_ptr(), kind, current);
    // SAFETY: `fill_event` wrote every member.
    unsafe { event.assume_init() }
}

/// Writes every member of `*event`, the zeros with volatile stores, in a subprogram of its own: LLVM
/// otherwise turns runs of zero stores (or a copy of them) into memset calls, which this BPF
/// toolchain compiles to a byte-by-byte loop costing as much as the rest of the event.
#[inline(never)]
fn fill_event(event: *mut WatchEvent, kind: u8, current: Current) {
    let (pid, tid) = current_ids(current);
    // SAFETY: `event` points to room for one WatchEvent (the caller's); each member is written once
    // through its own place.
    unsafe {
        (&raw mut (*event).time_ns).write_volatile(bpf_ktime_get_ns());
        (&raw mut (*event).pid).write_volatile(pid);
        (&raw mut (*event).tid).write_volatile(tid);
        (&raw mut (*event).kind).write_volatile(kind);
        (&raw mut (*event).comm).write_volatile(current_comm(current));
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

/// The current (process, thread) ids: loads from the typed task where the kernel gives one, else
/// the helper's.
#[inline(always)]
fn current_ids(current: Current) -> (u32, u32) {
    let Some(task) = current.typed() else {
        let pid_tgid = bpf_get_current_pid_tgid();
        return ((pid_tgid >> 32) as u32, pid_tgid as u32);
    };
    // SAFETY: a typed task pointer; frozen offsets of 4-byte members.
    unsafe {
        (
            load(task, config!(offsets.task_tgid)),
            load(task, config!(offsets.task_pid)),
        )
    }
}

/// The current process's name (its leader's comm, as ps and the survey name it): two loads from
/// the typed task where the kernel gives one; else the helper's, the calling thread's name.
#[inline(always)]
fn current_comm(current: Current) -> [u8; 16] {
    let Some(task) = current.typed() else {
        return bpf_get_current_comm().unwrap_or([0; 16]);
    };
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
fn install(current: Current, fd: u32, via: u8, aux: u32, from_pid: u32) {
    let file = file_at(current, fd);
    if file == 0 {
        return;
    }
    emit_in_place(|event: *mut WatchEvent| {
        fill_event(event, kind::INSTALL, current);
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

// ----- tracepoint arguments -----

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
