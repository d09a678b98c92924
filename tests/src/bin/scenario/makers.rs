//! `makers`: after `ready` and a line on stdin, one new fd from each of many calls that make one —
//! open, socket, eventfd, memfd_create, timerfd_create, epoll_create1, inotify_init1, pidfd_open,
//! both ends of a pipe and of a socketpair, a BPF map (bpf(2)) and a seccomp listener — then each
//! as a fact (`openat 3`, `pipe_read 4`…) and `done 1`.

use std::io::Write as _;

use super::{check, open, pipe, scratch_file, socketpair, unlink, wait_for_go};

pub fn run() {
    wait_for_go();
    let path = scratch_file("makers");
    let file = open(&path, libc::O_RDWR);
    unlink(&path);
    let [pipe_read, pipe_write] = pipe();
    let pair = socketpair();
    // SAFETY: plain fd-making syscalls with integer arguments and NUL-terminated names.
    let made = unsafe {
        [
            ("openat", file),
            ("pipe_read", pipe_read),
            ("pipe_write", pipe_write),
            ("pair_a", pair[0]),
            ("pair_b", pair[1]),
            (
                "socket",
                check(
                    libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0).into(),
                    "socket",
                ),
            ),
            ("eventfd", check(libc::eventfd(0, 0).into(), "eventfd")),
            (
                "memfd",
                check(
                    libc::memfd_create(c"fdid".as_ptr(), 0).into(),
                    "memfd_create",
                ),
            ),
            (
                "timerfd",
                check(
                    libc::timerfd_create(libc::CLOCK_MONOTONIC, 0).into(),
                    "timerfd_create",
                ),
            ),
            (
                "epoll",
                check(libc::epoll_create1(0).into(), "epoll_create1"),
            ),
            (
                "inotify",
                check(libc::inotify_init1(0).into(), "inotify_init1"),
            ),
            (
                "pidfd",
                check(
                    libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0),
                    "pidfd_open",
                ),
            ),
            ("bpf_map", bpf_map()),
            ("seccomp_listener", seccomp_listener()),
        ]
    };
    let mut out = std::io::stdout().lock();
    for (name, fd) in made {
        writeln!(out, "{name} {fd}").expect("stdout");
    }
    writeln!(out, "done 1").expect("stdout");
    out.flush().expect("stdout");
}

/// A one-entry BPF array map: bpf(BPF_MAP_CREATE).
fn bpf_map() -> i32 {
    // The first words of `union bpf_attr` for BPF_MAP_CREATE: map_type, key_size, value_size,
    // max_entries; the rest zero.
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[BPF_MAP_TYPE_ARRAY, 4, 8, 1]);
    // Kernels before 5.11 charge maps to RLIMIT_MEMLOCK (EPERM past it): no limit, as root.
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads our own struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const unlimited) };
    // SAFETY: bpf(2) reads `size_of_val(&attr)` bytes of our own array.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_bpf,
                0, // BPF_MAP_CREATE
                attr.as_ptr(),
                size_of_val(&attr),
            )
        },
        "bpf(BPF_MAP_CREATE)",
    )
}

/// A seccomp user-notification listener: a filter that allows everything, installed with
/// SECCOMP_FILTER_FLAG_NEW_LISTENER (the scenario runs as root).
fn seccomp_listener() -> i32 {
    const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
    const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 1 << 3;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    let allow = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: SECCOMP_RET_ALLOW,
    }];
    let program = libc::sock_fprog {
        len: 1,
        filter: allow.as_ptr().cast_mut(),
    };
    // SAFETY: seccomp(2) reads the program and its one instruction, both ours.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &raw const program,
            )
        },
        "seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)",
    )
}
