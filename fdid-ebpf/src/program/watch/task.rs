//! The current process's fd table and the file at an fd: read as cheaply as the kernel allows
//! (direct BTF loads where it gives a typed `current`, one probe read per span otherwise).

use super::*;

/// `WORDS` × 8 bytes of a kernel object at a number-address, from `start` on, read with one
/// probe read (a probe read costs as much as the rest of an event); members at frozen offsets are
/// picked from it, or read on their own when they lie outside it or it could not be read.
pub(super) struct Span<const WORDS: usize> {
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
        // bpf_probe_read_kernel fills the array (or zeroes it, when the read fails): no zeroing
        // before, which would cost a call to memset.
        let read = read_into(
            words.as_mut_ptr().cast(),
            (WORDS * 8) as u32,
            base + u64::from(start),
        );
        // SAFETY: written by the helper either way, as above.
        let words = unsafe { words.assume_init() };
        Self {
            base,
            start,
            words,
            read,
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

/// The current task: a typed pointer (`struct task_struct *`) where the kernel gives one (5.11+,
/// `bpf_get_current_task_btf`), whose members are then loaded directly instead of with probe
/// reads; null on older kernels, where the config says so and the verifier drops the call as dead
/// code. Asked for once per program run and handed down: each ask is a helper call.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(super) struct Current(*const u8);

impl Current {
    #[inline(always)]
    pub(super) fn get() -> Self {
        if config!(offsets.watch.current_task_btf) == 0 {
            return Self(core::ptr::null());
        }
        // SAFETY: no preconditions; the verifier types the result.
        Self(
            unsafe { generated::bpf_get_current_task_btf() }
                .cast_const()
                .cast::<u8>(),
        )
    }

    /// The typed task, where the kernel gives one.
    #[inline(always)]
    pub(super) fn typed(self) -> Option<*const u8> {
        (!self.0.is_null()).then_some(self.0)
    }
}

/// The current process's fd table: (`max_fds`, the `fd` array, the `open_fds` bitmap), as numbers.
#[inline(always)]
pub(super) fn current_fdt(current: Current) -> Option<(u32, u64, u64)> {
    if let Some(task) = current.typed() {
        // Task, files and fdtable loaded directly (cheap, checked against BTF); the fd array's
        // slots are numbers, read by `file_at`.
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

/// `address` as a typed (read-only, untrusted) pointer to the BTF type `btf_id`: the
/// `bpf_rdonly_cast` kfunc, called by its placeholder helper number (see
/// [`RDONLY_CAST_PLACEHOLDER`]); the verifier turns it into a plain move. Only called where the
/// config has the type's id, which it has only when the calls were patched.
#[inline(always)]
fn rdonly_cast(address: u64, btf_id: u32) -> *const u8 {
    // SAFETY: a call by number, as aya-ebpf calls helpers; patched into the kfunc before loading.
    unsafe {
        let cast: unsafe extern "C" fn(u64, u32) -> *const u8 =
            core::mem::transmute(RDONLY_CAST_PLACEHOLDER as usize);
        cast(address, btf_id)
    }
}

/// The `struct file` at `fd` of the current process, as a number (0: none).
#[inline(always)]
pub(super) fn file_at(current: Current, fd: u32) -> u64 {
    match current_fdt(current) {
        Some((max_fds, array, _)) if fd < max_fds && array != 0 => {
            let slot = array + 8 * u64::from(fd);
            let word_id = config!(offsets.watch.word_btf_id);
            if word_id != 0 {
                // SAFETY: a typed read-only pointer; its first member is an 8-byte integer.
                return unsafe { load::<u64>(rdonly_cast(slot, word_id), 0) };
            }
            read_word(slot as *const c_void).unwrap_or(0)
        }
        _ => 0,
    }
}

#[inline(always)]
pub(super) fn hash(word: u64) -> u64 {
    siphash24_u64([config!(hash_key[0]), config!(hash_key[1])], word) & config!(hash_mask)
}

/// Fills the file's identity into `event` (the same members a walk reads): one span of the file
/// and one of its inode, in the same stack room one after the other.
#[inline(always)]
pub(super) fn describe(event: &mut WatchEvent, file: u64) {
    event.file_hash = hash(file);
    let file_id = config!(offsets.watch.file_btf_id);
    if file_id != 0 {
        // Read as the iterator reads its typed file.
        let facts = file_facts(rdonly_cast(file, file_id));
        event.flags = facts.flags;
        event.pos = facts.pos;
        event.ino = facts.ino;
        event.mode = facts.mode;
        event.dev = facts.dev;
        return;
    }
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
pub(super) const DESCRIBE_SPAN: usize = 12;
