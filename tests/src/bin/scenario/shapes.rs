//! Scenarios shaped around fd tables and offsets: `threads` (one table, and one unshared),
//! `clone-files`, `writer` (an offset that moves), `mmap` and `churn` (processes that come and go).

use std::{ffi::CString, os::fd::RawFd};

use fdid_tests::fdpass::{receive_fd, send_fd};

use super::{
    Facts, check, child_forever, fork, open, pause, pipe, read_i32, scratch_file, unlink, write_i32,
};

pub fn threads(facts: &mut Facts, count: u32) {
    let path = scratch_file("threads");
    let file = open(&path, libc::O_RDWR);
    unlink(&path);
    let pipe = pipe();
    facts.add("file", file);
    facts.add("pipe_r", pipe[0]);
    facts.add("pipe_w", pipe[1]);
    for _ in 0..count {
        std::thread::spawn(|| {
            loop {
                std::thread::park();
            }
        });
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: unshare and open affect only this thread's new fd table.
        unsafe {
            check(
                libc::unshare(libc::CLONE_FILES).into(),
                "unshare(CLONE_FILES)",
            );
            let fd = open(&CString::new("/dev/zero").expect("literal"), libc::O_RDONLY);
            sender
                .send((libc::gettid(), fd))
                .expect("report to main thread");
        }
        loop {
            std::thread::park();
        }
    });
    let (tid, fd) = receiver.recv().expect("own-table thread started");
    facts.add("own_table_tid", tid);
    facts.add("own_table_fd", fd);
}

pub fn clone_files(facts: &mut Facts) -> Vec<libc::pid_t> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: clone without a new stack behaves like fork (the child runs on a copy-on-write stack);
    // the process is single-threaded.
    let child = check(
        unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::CLONE_FILES | libc::SIGCHLD,
                0,
                0,
                0,
                0,
            )
        },
        "clone(CLONE_FILES)",
    );
    if child == 0 {
        child_forever(parent, pause);
    }
    let path = scratch_file("clone-files");
    let file = open(&path, libc::O_RDWR);
    unlink(&path);
    facts.add("child", child);
    facts.add("file", file);
    vec![child]
}

pub fn writer(facts: &mut Facts) -> Vec<libc::pid_t> {
    let path = scratch_file("writer");
    let file = open(&path, libc::O_WRONLY | libc::O_APPEND);
    unlink(&path);
    let parent = std::process::id() as libc::pid_t;
    let child = fork();
    if child == 0 {
        let line = b"a line appended by the child\n";
        let mut written = 0usize;
        child_forever(parent, || {
            // SAFETY: writing a static buffer to our own fd.
            unsafe { libc::write(file, line.as_ptr().cast(), line.len()) };
            written += line.len();
            if written > (64 << 20) {
                // Keep the file small: start over (the offset then moves backwards too).
                // SAFETY: truncating our own fd.
                unsafe { libc::ftruncate(file, 0) };
                written = 0;
            }
        });
    }
    facts.add("child", child);
    facts.add("file", file);
    vec![child]
}

pub fn mmap(facts: &mut Facts) {
    let path = scratch_file("mmap");
    let file = open(&path, libc::O_RDWR);
    let mapped_only = open(&path, libc::O_RDONLY);
    unlink(&path);
    // SAFETY: mapping 16 bytes of files we own; the mappings are kept for the life of the process.
    unsafe {
        for (fd, prot) in [
            (file, libc::PROT_READ | libc::PROT_WRITE),
            (mapped_only, libc::PROT_READ),
        ] {
            let address = libc::mmap(std::ptr::null_mut(), 16, prot, libc::MAP_SHARED, fd, 0);
            if address == libc::MAP_FAILED {
                check(-1, "mmap");
            }
        }
        libc::close(mapped_only);
    }
    facts.add("file", file);
}

/// `churn N`: N workers that keep opening, duplicating, closing, forking short-lived children and
/// passing their own file to themselves over SCM_RIGHTS, around three fds that never change: the
/// parent's `shared` file (inherited by every worker at the same fd number), each worker's `own` file,
/// and the socketpair it passes it over.
pub fn churn(facts: &mut Facts, workers: u32) -> Vec<libc::pid_t> {
    let path = scratch_file("churn");
    let shared = open(&path, libc::O_RDONLY);
    facts.add("shared", shared);
    let report = pipe();
    let parent = std::process::id() as libc::pid_t;
    let mut pids = Vec::new();
    for i in 0..workers {
        let pid = fork();
        if pid == 0 {
            let own = open(&path, libc::O_RDONLY);
            let mut pair = [0; 2];
            // SAFETY: socketpair writes two fds into the local array.
            check(
                unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()) }
                    .into(),
                "socketpair",
            );
            // SAFETY: getpid has no preconditions.
            write_i32(report[1], unsafe { libc::getpid() });
            write_i32(report[1], own);
            let mut received: Vec<RawFd> = Vec::new();
            let mut round = 0u64;
            // The churn file reopened and closed every round, in every worker: freed `struct file`s
            // are reused by the next open, so one address stands for several descriptions of this
            // inode during a walk.
            let reopen = CString::new(format!("/proc/self/fd/{own}")).expect("no NUL");
            let mut transient = -1;
            child_forever(parent, || {
                round += 1;
                // SAFETY: plain syscalls on fds this worker owns; the child only calls _exit.
                unsafe {
                    if transient >= 0 {
                        libc::close(transient);
                    }
                    transient = libc::open(reopen.as_ptr(), libc::O_RDONLY);
                    let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
                    let dup = libc::fcntl(fd, libc::F_DUPFD, 100);
                    libc::close(fd);
                    libc::close(dup);
                    if round.is_multiple_of(4) && send_fd(pair[0], own).is_ok() {
                        if let Ok(copy) = receive_fd(pair[1]) {
                            received.push(copy);
                        }
                        if received.len() > 3 {
                            libc::close(received.remove(0));
                        }
                    }
                    if round.is_multiple_of(16) {
                        // Not inherited: a reopened description keeps one reference, so two that
                        // share an address are more holders than references.
                        libc::close(transient);
                        transient = -1;
                        let child = libc::fork();
                        if child == 0 {
                            libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
                            libc::_exit(0);
                        }
                        while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
                    }
                    libc::usleep(2000);
                }
            });
        }
        pids.push(pid);
        let worker = read_i32(report[0]);
        let own = read_i32(report[0]);
        facts.add(&format!("worker{i}"), worker);
        facts.add(&format!("worker{i}_own"), own);
    }
    unlink(&path);
    pids
}
