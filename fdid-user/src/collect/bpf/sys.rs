//! The `bpf(2)` commands for an iterator link with the kernel's pid filter, which aya (0.16) cannot
//! make: its `Iter::attach` passes no `bpf_iter_link_info`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_ITER_CREATE: libc::c_long = 33;
const BPF_TRACE_ITER: u32 = 28;

/// `union bpf_iter_link_info` (uapi): the `task` variant, padded to the union's 16 bytes.
#[repr(C)]
#[derive(Default)]
struct IterLinkInfoTask {
    tid: u32,
    pid: u32,
    pid_fd: u32,
    _pad: u32,
}

/// The `link_create` member of `union bpf_attr` (uapi), up to `iter_info_len`, zero-padded.
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    iter_info: u64,
    iter_info_len: u32,
    _pad: [u32; 9],
}

/// The `iter_create` member of `union bpf_attr` (uapi).
#[repr(C)]
#[derive(Default)]
struct IterCreateAttr {
    link_fd: u32,
    flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a live, zero-initialised repr(C) prefix of `union bpf_attr` of the size we
    // pass; the kernel zero-extends shorter attrs and only reads what the command defines.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: on success both commands return a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// `BPF_LINK_CREATE` for an iterator program whose kernel walks only process `pid`
/// (`bpf_iter_link_info.task.pid`, 6.1+).
pub fn iter_link_create(program: BorrowedFd<'_>, pid: u32) -> std::io::Result<OwnedFd> {
    let info = IterLinkInfoTask {
        pid,
        ..Default::default()
    };
    let mut attr = LinkCreateAttr {
        prog_fd: program.as_raw_fd() as u32,
        attach_type: BPF_TRACE_ITER,
        iter_info: std::ptr::from_ref(&info) as u64,
        iter_info_len: size_of::<IterLinkInfoTask>() as u32,
        ..Default::default()
    };
    bpf(BPF_LINK_CREATE, &mut attr)
}

/// `BPF_ITER_CREATE`: a readable instance of the iterator behind `link`.
pub fn iter_create(link: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    let mut attr = IterCreateAttr {
        link_fd: link.as_raw_fd() as u32,
        flags: 0,
    };
    bpf(BPF_ITER_CREATE, &mut attr)
}

/// `BPF_OBJ_GET_INFO_BY_FD`.
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// The `info` member of `union bpf_attr` (uapi).
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// How often the kernel skipped `program` because it was already running on that CPU
/// (`bpf_prog_info.recursion_misses`, 5.12+; 0 where the kernel does not count).
pub fn recursion_misses(program: BorrowedFd<'_>) -> std::io::Result<u64> {
    // SAFETY: bpf_prog_info is plain integers and pointers-as-integers; all zeroes is valid.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = InfoAttr {
        bpf_fd: program.as_raw_fd() as u32,
        info_len: size_of::<aya_obj::generated::bpf_prog_info>() as u32,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: `attr` is the command's repr(C) attr; `info` is ours and `info_len` bytes long. The
    // command returns 0 or -1, no fd.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            std::ptr::from_mut(&mut attr),
            size_of::<InfoAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(info.recursion_misses)
}
