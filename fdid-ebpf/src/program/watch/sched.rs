//! The scheduler's BTF tracepoints (fork, exec, exit) and `__fput`.

use super::*;

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
    // A scoped watch of a tree takes the child in (a whole-system one follows it anyway: no lookup
    // per fork).
    // SAFETY: a lookup in our own map.
    if config!(watch.scoped) != 0
        && unsafe { FDID_SCOPE.get(&SCOPE_SETTINGS).copied() } == Some(SCOPE_TREE)
    {
        let _ = FDID_SCOPE.insert(&child_tgid, &1, 0);
    }
    let mut event = event_of_current(kind::FORK, Current::get());
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
    let current = Current::get();
    let event = event_of_current(kind::EXEC, current);
    if !in_scope(event.pid) {
        return 0;
    }
    let Some((max_fds, _, open_fds)) = current_fdt(current) else {
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
    let mut event = event_of_current(kind::EXIT, Current::get());
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
    let mut event = event_of_current(kind::RELEASE, Current::get());
    event.file_hash = hash(file);
    emit(&event);
    0
}
