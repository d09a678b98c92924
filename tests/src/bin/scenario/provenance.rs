//! `provenance`: every way a process comes to share a description, done on a signal so that a
//! watcher sees each one happen.
//!
//! Before `ready`: a child `unrelated` is forked (it shares nothing made later) with one end of a
//! socketpair; it blocks in recvmsg at once, before any watch starts. After the test writes a line
//! (`go`) the parent:
//! 1. opens `file` (no O_CLOEXEC);
//! 2. dup2's it to `dup2_fd` (40) and F_DUPFD_CLOEXEC's it to `cloexec_fd` (50 or above);
//! 3. forks `child`, which execs this binary again (`idle`): `file` and `dup2_fd` stay open across
//!    the exec, `cloexec_fd` is closed by it;
//! 4. sends `file` to `unrelated` with SCM_RIGHTS, which receives it as `received`;
//! 5. `unrelated` takes the parent's `dup2_fd` with pidfd_getfd, as `taken`.
//!
//! Then it prints those facts and `done`.

use std::io::Write as _;

use super::{
    Facts, check, child_forever, fork, open, passing::take_fd, pause, pipe, read_i32, receive,
    scratch_file, send, socketpair, unlink, wait_for_go, write_i32,
};

/// The fd `file` is dup2'ed to.
const DUP2_FD: i32 = 40;
/// The lowest fd F_DUPFD_CLOEXEC may give.
const CLOEXEC_FROM: i32 = 50;

/// What `prepare` set up for `run`.
pub struct Prepared {
    unrelated: libc::pid_t,
    socket: i32,
    report: i32,
}

pub fn prepare(facts: &mut Facts) -> Prepared {
    let pair = socketpair();
    let report = pipe();
    let parent = std::process::id() as libc::pid_t;
    let unrelated = fork();
    if unrelated == 0 {
        let received = receive(pair[1]);
        let taken = take_fd(parent, DUP2_FD);
        write_i32(report[1], received);
        write_i32(report[1], taken);
        child_forever(parent, pause);
    }
    facts.add("unrelated", unrelated);
    Prepared {
        unrelated,
        socket: pair[0],
        report: report[0],
    }
}

impl Prepared {
    /// Waits for the test's line, does it all, prints the facts; returns the children.
    pub fn run(self) -> Vec<libc::pid_t> {
        wait_for_go();
        let path = scratch_file("provenance");
        let file = open(&path, libc::O_RDWR);
        unlink(&path);
        // SAFETY: plain fd syscalls with integer arguments.
        let cloexec = unsafe {
            check(libc::dup2(file, DUP2_FD).into(), "dup2");
            check(
                libc::fcntl(file, libc::F_DUPFD_CLOEXEC, CLOEXEC_FROM).into(),
                "F_DUPFD_CLOEXEC",
            )
        };
        let parent = std::process::id() as libc::pid_t;
        let child = fork();
        if child == 0 {
            // SAFETY: prctl and execv with NUL-terminated strings; the process is single-threaded.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                let exe = c"/proc/self/exe";
                let argv = [
                    c"fdid-scenario".as_ptr(),
                    c"idle".as_ptr(),
                    std::ptr::null(),
                ];
                libc::execv(exe.as_ptr(), argv.as_ptr());
                libc::_exit(127);
            }
        }
        send(self.socket, file);
        let received = read_i32(self.report);
        let taken = read_i32(self.report);
        let mut out = std::io::stdout().lock();
        for (name, value) in [
            ("file", file),
            ("dup2_fd", DUP2_FD),
            ("cloexec_fd", cloexec),
            ("child", child),
            ("received", received),
            ("taken", taken),
        ] {
            writeln!(out, "{name} {value}").expect("stdout");
        }
        writeln!(out, "done 1").expect("stdout");
        out.flush().expect("stdout");
        vec![self.unrelated, child]
    }
}

/// `idle`: what the exec'ed child runs — nothing, until its parent dies.
pub fn idle() -> ! {
    // SAFETY: prctl is async-signal-safe.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    loop {
        pause();
    }
}

/// `senders [N]`: after `ready` and a line on stdin, N workers (4 by default) each pass fds to their
/// own children 1000 times at once ([`fdid_tests::churn`]); then `done 1`.
pub fn senders(workers: u32) -> Vec<libc::pid_t> {
    wait_for_go();
    fdid_tests::churn::run(workers, SENDER_ROUNDS);
    let mut out = std::io::stdout().lock();
    writeln!(out, "done 1").expect("stdout");
    out.flush().expect("stdout");
    Vec::new()
}

/// Rounds of each worker in `senders`.
pub const SENDER_ROUNDS: u32 = 1000;
