//! Workers that make, dup and pass fds as fast as they can: the load `fdid watch` is measured
//! under (`fdid-bench churn`) and checked under (the `senders` scenario).

use crate::fdpass::{receive_fd, send_fd};

/// Forks `workers` workers and waits for them. Each, `rounds` times, makes a pipe and a socketpair,
/// dups the pipe's read end, forks a child that receives the dup over the socketpair (SCM_RIGHTS),
/// closes it and exits, waits for it and closes everything.
pub fn run(workers: u32, rounds: u32) {
    let mut pids = Vec::new();
    for _ in 0..workers {
        // SAFETY: the caller is single-threaded; the child only makes syscalls and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            worker(rounds);
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        pids.push(pid);
    }
    for pid in pids {
        // SAFETY: reaping our own children.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    }
}

fn worker(rounds: u32) {
    for _ in 0..rounds {
        let (mut pipe, mut pair) = ([0; 2], [0; 2]);
        // SAFETY: plain fd syscalls on local arrays and fds this worker owns.
        unsafe {
            libc::pipe(pipe.as_mut_ptr());
            libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr());
            let copy = libc::dup(pipe[0]);
            let child = libc::fork();
            if child == 0 {
                if let Ok(fd) = receive_fd(pair[1]) {
                    libc::close(fd);
                }
                libc::_exit(0);
            }
            let _ = send_fd(pair[0], copy);
            libc::waitpid(child, std::ptr::null_mut(), 0);
            for fd in [pipe[0], pipe[1], pair[0], pair[1], copy] {
                libc::close(fd);
            }
        }
    }
}
