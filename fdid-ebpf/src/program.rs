//! The `iter/task_file` program: one [`FdRecord`] per (task, fd, file), written with `bpf_seq_write`.
//!
//! Shape of every access, chosen for the verifier (see the README's "BPF notes"):
//! - ctx fields are read once, volatile, so the compiler cannot re-read a nullable pointer after the
//!   null check;
//! - struct members are loaded directly through the typed `task`/`file` pointers at offsets read from the
//!   frozen read-only [`IterConfig`], which the verifier sees as constants and checks against BTF;
//! - the two pointers that get hashed (`file` itself, `task->files`) are copied as plain numbers with
//!   `bpf_probe_read_kernel`, because the verifier allows no arithmetic on pointers.

use core::{
    ffi::c_void,
    mem::size_of,
    ptr::{addr_of, addr_of_mut, read_volatile},
};

use aya_ebpf::helpers::generated::{bpf_get_current_task, bpf_probe_read_kernel, bpf_seq_write};
use aya_log_ebpf::warn;
use fdid_ebpf::{
    EXTENSION_SOCKET, FdRecord, IterConfig, SOCKFS_MAGIC, SocketRecord, siphash::siphash24_u64,
};

/// `struct bpf_iter_meta` (uapi of BPF iterators).
#[repr(C)]
struct IterMeta {
    seq: *mut c_void,
    session_id: u64,
    seq_num: u64,
}

/// `struct bpf_iter__task_file`, the program's context (kernel/bpf/task_iter.c): every member is
/// 8-byte aligned (`__bpf_md_ptr`, `u32 fd __aligned(8)`).
#[repr(C)]
pub struct TaskFileCtx {
    meta: *const IterMeta,
    task: *const u8,
    fd: u32,
    _fd_pad: u32,
    file: *const u8,
}

/// Filled in by userspace before load; frozen (read-only for the program).
#[unsafe(no_mangle)]
static FDID_CONFIG: IterConfig = IterConfig::ZERO;

/// What the program computed for the task it is walking, reused for each of that task's fds: the
/// kernel visits a task's fds one after another. Keyed by the task pointer's value and its (initial
/// namespace) pid, so an address reused by another task cannot be mistaken for it.
#[repr(C)]
struct TaskCache {
    task: u64,
    raw_pid: u32,
    tgid: u32,
    tid: u32,
    pid_ns_level: u32,
    files_hash: u64,
}

/// Writable, private to this program instance (`.bss`).
#[unsafe(no_mangle)]
static mut FDID_TASK_CACHE: TaskCache = TaskCache {
    task: 0,
    raw_pid: 0,
    tgid: 0,
    tid: 0,
    pid_ns_level: 0,
    files_hash: 0,
};

/// Reads one member of [`FDID_CONFIG`]; volatile so the compiler cannot fold in the zero initialiser.
macro_rules! config {
    ($($member:tt)+) => {
        // SAFETY: FDID_CONFIG is a valid, initialised static; the read has the member's own type.
        unsafe {
            ::core::ptr::read_volatile(::core::ptr::addr_of!($crate::program::FDID_CONFIG.$($member)+))
        }
    };
}

mod file;
mod socket;
pub mod watch;

use file::file_facts;

/// Loads a `T` at `offset` bytes into a kernel object reached through a BTF-typed pointer.
///
/// # Safety
/// `base` must be a pointer the verifier knows as `PTR_TO_BTF_ID` and `offset` a frozen-config constant:
/// the verifier then checks the access against the kernel's BTF and turns it into a fault-tolerant load.
#[inline(always)]
unsafe fn load<T>(base: *const u8, offset: u32) -> T {
    // SAFETY: the caller's contract above.
    unsafe { read_volatile(base.add(offset as usize).cast::<T>()) }
}

/// Zeroes a socket record with 8-byte volatile stores: `*socket = SocketRecord::ZERO` compiles to a
/// call of a byte-by-byte memset (this toolchain does not expand llvm.memset for BPF), ~1000
/// instructions per socket fd.
#[inline(always)]
fn zero_socket_record(socket: &mut SocketRecord) {
    const WORDS: usize = size_of::<SocketRecord>() / 8;
    const _: () = assert!(size_of::<SocketRecord>() % 8 == 0);
    let words = core::ptr::from_mut(socket).cast::<u64>();
    for i in 0..WORDS {
        // SAFETY: within the record (8-byte aligned, a multiple of 8 bytes); all zeroes is a valid
        // SocketRecord (plain integers).
        unsafe { words.add(i).write_volatile(0) };
    }
}

/// Copies `len` bytes of kernel memory at `address` to `destination`.
#[inline(always)]
fn read_into(destination: *mut u8, len: u32, address: u64) -> bool {
    // SAFETY: bpf_probe_read_kernel checks the source itself; callers pass a destination with room for
    // `len` bytes.
    unsafe { bpf_probe_read_kernel(destination.cast(), len, address as *const c_void) == 0 }
}

/// Copies a pointer-sized kernel value as a number, for hashing.
#[inline(always)]
fn read_word(address: *const c_void) -> Option<u64> {
    let mut value: u64 = 0;
    // SAFETY: bpf_probe_read_kernel checks the source address itself; the destination is our own u64.
    let rc =
        unsafe { bpf_probe_read_kernel((&raw mut value).cast(), size_of::<u64>() as u32, address) };
    (rc == 0).then_some(value)
}

/// (tgid, tid, pid namespace depth, keyed hash of `task->files`) of the context's task, from the cache
/// when the previous fd belonged to the same task.
#[inline(always)]
fn task_facts(
    ctx: *mut TaskFileCtx,
    task: *const u8,
    key: [u64; 2],
    mask: u64,
) -> Option<(u32, u32, u32, u64)> {
    // SAFETY: reading the context's own `task` member as a number; see `read_word`.
    let task_word = read_word(unsafe { addr_of!((*ctx).task) }.cast())?;
    let pid_offset = config!(offsets.task_pid);
    // SAFETY: `task` is the context's non-null typed pointer; the offset comes from the frozen config.
    let raw_pid: u32 = unsafe { load(task, pid_offset) };
    let cache = &raw mut FDID_TASK_CACHE;
    // SAFETY: the cache is this program's own global; the kernel runs one iterator step at a time per
    // iterator instance, and fdid reads one instance at a time.
    unsafe {
        if read_volatile(addr_of!((*cache).task)) == task_word
            && read_volatile(addr_of!((*cache).raw_pid)) == raw_pid
        {
            return Some((
                read_volatile(addr_of!((*cache).tgid)),
                read_volatile(addr_of!((*cache).tid)),
                read_volatile(addr_of!((*cache).pid_ns_level)),
                read_volatile(addr_of!((*cache).files_hash)),
            ));
        }
    }
    let (tgid, tid, level) = task_ids(task);
    let files_offset = config!(offsets.task_files);
    // SAFETY: only the address is computed here; `read_word` reads it with bpf_probe_read_kernel.
    let files_word = read_word(unsafe { task.add(files_offset as usize) }.cast())?;
    let files_hash = siphash24_u64(key, files_word) & mask;
    // SAFETY: as above.
    unsafe {
        core::ptr::write_volatile(
            cache,
            TaskCache {
                task: task_word,
                raw_pid,
                tgid,
                tid,
                pid_ns_level: u32::from(level),
                files_hash,
            },
        );
    }
    Some((tgid, tid, u32::from(level), files_hash))
}

/// Copies a 32-bit kernel value.
#[inline(always)]
fn read_u32(address: *const c_void) -> Option<u32> {
    let mut value: u32 = 0;
    // SAFETY: bpf_probe_read_kernel checks the source address itself; the destination is our own u32.
    let rc = unsafe { bpf_probe_read_kernel((&raw mut value).cast(), 4, address) };
    (rc == 0).then_some(value)
}

/// The task's (process id, thread id, namespace depth) as seen from the pid namespace of the process reading the
/// iterator — the numbers a user of that namespace knows — rather than the initial namespace's
/// `task->tgid`/`task->pid`.
#[inline(always)]
fn task_ids(task: *const u8) -> (u32, u32, u16) {
    let (thread_pid, level_offset) = (config!(offsets.task_thread_pid), config!(offsets.pid_level));
    // The reader's namespace depth, `current->thread_pid->level`. bpf_get_current_task (unlike its
    // `_btf` twin, 5.11+) exists on every kernel with task iterators; it gives the pointer as a number,
    // so both hops are bpf_probe_read_kernel. Once per task, thanks to the task cache.
    // SAFETY: bpf_get_current_task has no preconditions.
    let current = unsafe { bpf_get_current_task() };
    let level = read_word((current + u64::from(thread_pid)) as *const c_void)
        .filter(|&pid| pid != 0)
        .and_then(|pid| read_u32((pid + u64::from(level_offset)) as *const c_void))
        .unwrap_or(0);
    if level == 0 {
        // The initial namespace: the task's own fields.
        let (tgid, pid) = (config!(offsets.task_tgid), config!(offsets.task_pid));
        // SAFETY: `task` is the context's typed pointer; offsets come from the frozen config.
        return unsafe { (load(task, tgid), load(task, pid), 0) };
    }
    let leader_offset = config!(offsets.task_group_leader);
    // SAFETY: `task` is the context's typed pointer; the offset comes from the frozen config.
    let leader: *const u8 = unsafe { load(task, leader_offset) };
    let tid = number_at_level(task, level);
    let tgid = if leader.is_null() {
        tid
    } else {
        number_at_level(leader, level)
    };
    (tgid, tid, level as u16)
}

/// `task->thread_pid->numbers[level].nr`. The array index is not a constant, which direct loads
/// through typed pointers do not allow, so the address is computed from the pointer's value as a number
/// and read with `bpf_probe_read_kernel`.
#[inline(always)]
fn number_at_level(task: *const u8, level: u32) -> u32 {
    let thread_pid = config!(offsets.task_thread_pid);
    // SAFETY: only the address is computed here; `read_word` reads it with bpf_probe_read_kernel.
    let Some(pid) = read_word(unsafe { task.add(thread_pid as usize) }.cast()) else {
        return 0;
    };
    if pid == 0 {
        return 0;
    }
    let address = pid
        + u64::from(config!(offsets.pid_numbers))
        + u64::from(level) * u64::from(config!(offsets.upid_size))
        + u64::from(config!(offsets.upid_nr));
    read_u32(address as *const c_void).unwrap_or(0)
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_file")]
pub extern "C" fn fdid_task_file(ctx: *mut TaskFileCtx) -> i32 {
    // SAFETY: the kernel passes a valid bpf_iter__task_file; each member is read exactly once.
    let (meta, task, fd, file) = unsafe {
        (
            read_volatile(addr_of!((*ctx).meta)),
            read_volatile(addr_of!((*ctx).task)),
            read_volatile(addr_of!((*ctx).fd)),
            read_volatile(addr_of!((*ctx).file)),
        )
    };
    // The final call after the last file (seq stop) has no task and no file.
    if task.is_null() || file.is_null() {
        return 0;
    }

    let key = [config!(hash_key[0]), config!(hash_key[1])];
    let mask = config!(hash_mask);
    let Some((tgid, tid, pid_ns_level, files_hash)) = task_facts(ctx, task, key, mask) else {
        warn!(
            &(),
            "fdid: could not read the task pointer or fd table of fd {}", fd
        );
        return 0;
    };
    let filter = config!(filter_tgid);
    if filter != 0 && filter != tgid {
        return 0;
    }

    let facts = file_facts(file);
    let mut record = FdRecord {
        tgid,
        tid,
        fd,
        flags: facts.flags,
        mode: facts.mode,
        pid_ns_level: pid_ns_level as u8,
        extension: 0,
        dev: facts.dev,
        ino: facts.ino,
        pos: facts.pos,
        refs: facts.raw_refs.wrapping_add(config!(refs_bias)),
        file_hash: 0,
        files_hash,
    };
    let inode = facts.inode;

    // A socket (its inode on sockfs): its identity follows the record, built in a global (the
    // stack has no room for it).
    let scratch = &raw mut FDID_SOCKET_SCRATCH;
    // SAFETY: `meta` is the context's non-null iterator meta.
    let session = unsafe { read_volatile(addr_of!((*meta).session_id)) };
    let seen_slot = (record.ino as usize) & (SEEN_SLOTS - 1);
    if is_socket(record.mode, inode) && !already_described(seen_slot, session, record.ino) {
        let private_data_offset = config!(offsets.socket.file_private_data);
        // SAFETY: `file` is the non-null typed pointer from the context; the offset is a frozen
        // constant. The member is a `void *`: the verifier gives it as a number.
        let private_data: u64 = unsafe { load(file, private_data_offset) };
        // SAFETY: the scratch is this program's own global, used by one iterator step at a time.
        let socket = unsafe { &mut (*scratch).socket };
        zero_socket_record(socket);
        if private_data != 0 && socket::read_socket(private_data, socket) {
            record.extension = EXTENSION_SOCKET;
        }
    }

    // The `file` pointer's value sits in the context.
    // SAFETY: only the context member's address is taken; `read_word` reads it.
    match read_word(unsafe { addr_of!((*ctx).file) }.cast()) {
        Some(file_word) => record.file_hash = siphash24_u64(key, file_word) & mask,
        None => {
            // Cannot happen for live objects; leave a trace for `fdid -v` and skip the fd rather than
            // emit a record whose identity is unknown.
            warn!(
                &(),
                "fdid: could not read the file pointer of tgid {} fd {}", tgid, fd
            );
            return 0;
        }
    }

    // SAFETY: `meta` is the context's non-null iterator meta.
    let seq = unsafe { read_volatile(addr_of!((*meta).seq)) };
    if record.extension == EXTENSION_SOCKET {
        // One write for both, so that a full buffer retries them together.
        // SAFETY: the scratch is this program's own global (see above); `seq` is the iterator's
        // seq_file and the scratch has the size given.
        let written = unsafe {
            (*scratch).record = record;
            bpf_seq_write(
                seq.cast(),
                scratch.cast_const().cast(),
                size_of::<WithSocket>() as u32,
            )
        };
        // Only once it is in the stream: a write that overflowed the buffer is discarded, and the
        // kernel shows this fd again.
        if written == 0 {
            mark_described(seen_slot, session, record.ino);
        }
    } else {
        // SAFETY: as above, for the record alone.
        unsafe {
            bpf_seq_write(
                seq.cast(),
                (&raw const record).cast(),
                size_of::<FdRecord>() as u32,
            )
        };
    }
    0
}

/// Sockets already described in this walk, direct-mapped by inode number: the other fds of one socket
/// (dup'ed, inherited) go without the extension — the reader keeps sockets by inode — which spares
/// the reads and 192 bytes per fd. Each slot holds (iterator session, inode): a new walk (a new
/// session) starts with nothing described.
const SEEN_SLOTS: usize = 256;

#[unsafe(no_mangle)]
static mut FDID_SOCKETS_SEEN: [[u64; 2]; SEEN_SLOTS] = [[0; 2]; SEEN_SLOTS];

#[inline(always)]
fn already_described(slot: usize, session: u64, ino: u64) -> bool {
    let seen = &raw const FDID_SOCKETS_SEEN;
    // SAFETY: `slot` < SEEN_SLOTS (masked); the array is this program's own global.
    unsafe {
        read_volatile(addr_of!((*seen)[slot & (SEEN_SLOTS - 1)][0])) == session
            && read_volatile(addr_of!((*seen)[slot & (SEEN_SLOTS - 1)][1])) == ino
    }
}

#[inline(always)]
fn mark_described(slot: usize, session: u64, ino: u64) {
    let seen = &raw mut FDID_SOCKETS_SEEN;
    // SAFETY: as in `already_described`.
    unsafe {
        core::ptr::write_volatile(
            addr_of_mut!((*seen)[slot & (SEEN_SLOTS - 1)]),
            [session, ino],
        );
    }
}

/// A socket's record and its extension, as they go into the stream.
#[repr(C)]
struct WithSocket {
    record: FdRecord,
    socket: SocketRecord,
}

/// Writable, private to this program instance (`.bss`): where a socket's record is built.
#[unsafe(no_mangle)]
static mut FDID_SOCKET_SCRATCH: WithSocket = WithSocket {
    record: FdRecord {
        tgid: 0,
        tid: 0,
        fd: 0,
        flags: 0,
        mode: 0,
        pid_ns_level: 0,
        extension: 0,
        dev: 0,
        ino: 0,
        pos: 0,
        refs: 0,
        file_hash: 0,
        files_hash: 0,
    },
    socket: SocketRecord::ZERO,
};

/// Whether the fd's inode is a socket's: type bits `S_IFSOCK` and its superblock sockfs (a unix
/// socket's path opened with `O_PATH` is `S_IFSOCK` too, on the filesystem it lives on).
#[inline(always)]
fn is_socket(mode: u16, inode: *const u8) -> bool {
    const S_IFMT: u16 = 0o170_000;
    const S_IFSOCK: u16 = 0o140_000;
    if mode & S_IFMT != S_IFSOCK || inode.is_null() || config!(offsets.socket.valid) == 0 {
        return false;
    }
    let sb_offset = config!(offsets.inode_sb);
    // SAFETY: `inode` is a non-null typed pointer loaded through `file`; frozen offset.
    let sb: *const u8 = unsafe { load(inode, sb_offset) };
    if sb.is_null() {
        return false;
    }
    let magic_offset = config!(offsets.sb_magic);
    // SAFETY: `sb` is a non-null typed pointer loaded through `inode`; frozen offset.
    let magic: u64 = unsafe { load(sb, magic_offset) };
    magic == SOCKFS_MAGIC
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
