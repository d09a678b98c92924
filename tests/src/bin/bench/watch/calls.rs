//! What a watch adds to single calls: loops of one kind of call each, alone and with a
//! whole-system `fdid watch --json` running. A syscall the watch has nothing to do at pays its
//! syscall-exit tracepoint (every syscall of the machine does); the calls it follows pay their
//! events as well.

use std::{fmt::Write as _, path::Path, time::Instant};

use anyhow::{Result, bail};
use fdid_tests::fdpass::{receive_fd, send_fd};

/// The fds the rounds use: a unix socket pair, and /dev/null open, to dup and to pass over it.
struct Fds {
    sockets: [libc::c_int; 2],
    file: libc::c_int,
}

impl Fds {
    fn new() -> Result<Self> {
        let mut sockets = [-1; 2];
        // SAFETY: socketpair writes two fds into the array it is given; open takes a C string.
        let file = unsafe {
            if libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sockets.as_mut_ptr()) != 0 {
                bail!("socketpair: {}", std::io::Error::last_os_error());
            }
            libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
        };
        let fds = Self { sockets, file };
        if file < 0 {
            bail!("/dev/null: {}", std::io::Error::last_os_error());
        }
        Ok(fds)
    }
}

impl Drop for Fds {
    fn drop(&mut self) {
        for fd in self
            .sockets
            .into_iter()
            .chain([self.file])
            .filter(|&fd| fd >= 0)
        {
            // SAFETY: closing fds this value owns, once.
            unsafe { libc::close(fd) };
        }
    }
}

/// One kind of round: its name and the calls it makes.
struct Round {
    name: &'static str,
    calls: fn(&Fds),
}

const ROUNDS: [Round; 4] = [
    Round {
        name: "getppid (nothing to follow)",
        // SAFETY: getppid has no arguments and no effects.
        calls: |_| unsafe {
            libc::syscall(libc::SYS_getppid);
        },
    },
    Round {
        name: "dup + close",
        // SAFETY: dup of an fd `Fds` owns; the copy is closed at once.
        calls: |fds| unsafe {
            libc::close(libc::dup(fds.file));
        },
    },
    Round {
        name: "pipe2 + two closes",
        calls: |_| {
            let mut ends = [-1; 2];
            // SAFETY: pipe2 writes two fds into the array it is given; both are closed at once.
            unsafe {
                if libc::pipe2(ends.as_mut_ptr(), 0) == 0 {
                    libc::close(ends[0]);
                    libc::close(ends[1]);
                }
            }
        },
    },
    Round {
        name: "SCM_RIGHTS send + receive + close",
        calls: |fds| {
            if send_fd(fds.sockets[0], fds.file).is_ok()
                && let Ok(fd) = receive_fd(fds.sockets[1])
            {
                // SAFETY: closing the fd just received.
                unsafe { libc::close(fd) };
            }
        },
    },
];

/// Loops of each kind of round, and rounds a loop.
const LOOPS: usize = 3;
const LOOP: u32 = 100_000;

/// ns a round: the fastest of `LOOPS` loops of `LOOP` rounds.
fn round_ns(round: &Round, fds: &Fds) -> f64 {
    (0..LOOPS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..LOOP {
                (round.calls)(fds);
            }
            started.elapsed().as_nanos() as f64 / f64::from(LOOP)
        })
        .fold(f64::INFINITY, f64::min)
}

/// Times each kind of round alone, then while a whole-system watch runs (its output discarded),
/// and appends the table to the report.
pub fn section(fdid: &Path, report: &mut String) -> Result<()> {
    let fds = Fds::new()?;
    let all = || -> Vec<f64> { ROUNDS.iter().map(|round| round_ns(round, &fds)).collect() };
    let alone = all();
    let (watched, _) = super::while_watched(fdid, super::discard, |_| Ok(all()))?;
    writeln!(
        report,
        "\nSingle calls in a loop (the fastest of {LOOPS} loops of {LOOP} rounds), alone and with a \
         whole-system `fdid watch --json` running: every syscall of the machine passes the \
         watch's syscall-exit tracepoint, and the calls it follows write events.\n\n\
         | round | alone | watched | added |\n|---|---:|---:|---:|"
    )?;
    for ((round, alone), watched) in ROUNDS.iter().zip(alone).zip(watched) {
        writeln!(
            report,
            "| {} | {alone:.0} ns | {watched:.0} ns | {:+.0} ns |",
            round.name,
            watched - alone
        )?;
        eprintln!(
            "{}: {alone:.0} ns alone, {watched:.0} ns watched",
            round.name
        );
    }
    Ok(())
}
