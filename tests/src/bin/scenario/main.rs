//! `fdid-scenario KIND [ARGS]`: builds processes with a known set of fds for the integration tests.
//!
//! It prints its facts as `name value` lines, then `ready`, and holds everything open until its stdin
//! closes; then it kills its children and exits. Children also die with it (PR_SET_PDEATHSIG), so a test
//! that fails half-way leaves no orphans. The process is single-threaded when it forks (only the
//! `threads` kind starts threads, and it never forks).
//!
//! Kinds (fact names in backquotes):
//! - `fdset`: a regular file opened twice (`file`, `file_again`) and duplicated every way (`file_dup`
//!   by dup, `file_dup2` by dup2, `file_dup3` by dup3 with O_CLOEXEC, `file_dupfd_cloexec` by
//!   F_DUPFD_CLOEXEC); pipe ends (`pipe_r`, `pipe_w`), a socketpair (`sock_a`, `sock_b`), a TCP listener
//!   on loopback (`tcp`), an `eventfd`, an `epoll`, a `timerfd` and a `memfd`.
//! - `fork N [FILES]`: a parent holding `file` (seeked to 7), FILES more opens of it and a pipe, then N
//!   forked children (`child0`, …) inheriting them; then the parent opens `parent_only`.
//! - `scm`: a child forked first; then the parent opens `file` and sends it over a socketpair, the child
//!   receives it as `child_fd` — shared only by SCM_RIGHTS. The parent also sends `in_flight` (a memfd)
//!   that the child never receives.
//! - `scm-recv NAME` / `scm-send NAME`: two unrelated processes (started separately by the test). The
//!   receiver listens on the abstract unix socket NAME; the sender opens `file` and sends it there.
//!   After its `ready`, the receiver prints `received N`, the fd it got.
//! - `pidfd`: a child opens `child_file` after the fork; the parent copies it with pidfd_getfd as
//!   `parent_copy`.
//! - `threads N`: N threads; fds `file` and `pipe_r`/`pipe_w` opened by the main thread; thread
//!   `own_table_tid` unshares its fd table (CLONE_FILES) and opens `own_table_fd` in it.
//! - `clone-files`: a child made by clone(CLONE_FILES) without CLONE_THREAD, sharing the fd table;
//!   `file` opened by the parent after the clone is in both.
//! - `writer`: a parent and a forked child share `file`; the child keeps appending, so the offset moves.
//! - `churn N`: see [`shapes::churn`].
//! - `mmap`: `file` is open and also mmap'ed (MAP_SHARED), `mapped_only` was mmap'ed then closed.
//! - `server N` and `ends`: see [`ends`].
//! - `provenance`: see [`provenance`] (it waits for a line on stdin after `ready`).
//! - `senders [N]`: see [`provenance::senders`] (it waits for a line on stdin after `ready`).
//! - `makers`: see [`makers`] (it waits for a line on stdin after `ready`).
//! - `batched`: see [`passing::Batched`] (it waits for a line on stdin after `ready`).

use std::{ffi::CString, io::Write, os::fd::RawFd};

use fdid_tests::fdpass::{receive_fd, send_fd};

mod ends;
mod makers;
mod passing;
mod provenance;
mod shapes;

fn check(rc: libc::c_long, what: &str) -> i32 {
    if rc < 0 {
        eprintln!("fdid-scenario: {what}: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    rc as i32
}

fn open(path: &CString, flags: libc::c_int) -> RawFd {
    // SAFETY: `path` is a valid NUL-terminated string.
    check(
        unsafe { libc::open(path.as_ptr(), flags | libc::O_CREAT, 0o600) }.into(),
        "open",
    )
}

/// A new file in the temp dir with some content; unlinked when the scenario ends (see `main`).
fn scratch_file(tag: &str) -> CString {
    let path = std::env::temp_dir().join(format!("fdid-scenario-{}-{tag}", std::process::id()));
    std::fs::write(&path, b"0123456789abcdef").expect("write scratch file");
    CString::new(path.into_os_string().into_encoded_bytes()).expect("no NUL in temp path")
}

fn unlink(path: &CString) {
    // SAFETY: `path` is a valid NUL-terminated string.
    unsafe { libc::unlink(path.as_ptr()) };
}

struct Facts(Vec<(String, i64)>);

impl Facts {
    fn add(&mut self, name: &str, value: impl Into<i64>) {
        self.0.push((name.to_owned(), value.into()));
    }
    fn print(&self) {
        let mut out = std::io::stdout().lock();
        for (name, value) in &self.0 {
            writeln!(out, "{name} {value}").expect("stdout");
        }
        writeln!(out, "ready").expect("stdout");
        out.flush().expect("stdout");
    }
}

/// In a child: die with the parent, then wait forever (or run `work` forever).
fn child_forever(parent: libc::pid_t, mut work: impl FnMut()) -> ! {
    // SAFETY: prctl/getppid/pause/_exit are async-signal-safe; the process is single-threaded.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(0);
        }
    }
    loop {
        work();
    }
}

fn pause() {
    // SAFETY: pause has no preconditions.
    unsafe { libc::pause() };
}

fn fork() -> libc::pid_t {
    // SAFETY: every caller is single-threaded at this point.
    check(unsafe { libc::fork() }.into(), "fork")
}

fn fdset(facts: &mut Facts) {
    let path = scratch_file("fdset");
    let file = open(&path, libc::O_RDWR);
    // SAFETY: every call in this function is a plain syscall on fds we own and local buffers.
    unsafe {
        check(libc::lseek(file, 5, libc::SEEK_SET), "lseek");
        facts.add("file", file);
        facts.add("file_dup", check(libc::dup(file).into(), "dup"));
        facts.add("file_dup2", check(libc::dup2(file, 50).into(), "dup2"));
        facts.add(
            "file_dup3",
            check(libc::dup3(file, 51, libc::O_CLOEXEC).into(), "dup3"),
        );
        facts.add(
            "file_dupfd_cloexec",
            check(
                libc::fcntl(file, libc::F_DUPFD_CLOEXEC, 60).into(),
                "F_DUPFD_CLOEXEC",
            ),
        );
        facts.add("file_again", open(&path, libc::O_RDONLY));
        let mut pipe = [0; 2];
        check(libc::pipe(pipe.as_mut_ptr()).into(), "pipe");
        facts.add("pipe_r", pipe[0]);
        facts.add("pipe_w", pipe[1]);
        let pair = socketpair();
        facts.add("sock_a", pair[0]);
        facts.add("sock_b", pair[1]);
        let tcp = check(
            libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0).into(),
            "socket",
        );
        let mut address: libc::sockaddr_in = std::mem::zeroed();
        address.sin_family = libc::AF_INET as libc::sa_family_t;
        address.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        check(
            libc::bind(
                tcp,
                (&raw const address).cast(),
                size_of::<libc::sockaddr_in>() as u32,
            )
            .into(),
            "bind 127.0.0.1:0",
        );
        check(libc::listen(tcp, 1).into(), "listen");
        facts.add("tcp", tcp);
        facts.add("eventfd", check(libc::eventfd(0, 0).into(), "eventfd"));
        let epoll = check(libc::epoll_create1(0).into(), "epoll_create1");
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        check(
            libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, pipe[0], &mut event).into(),
            "epoll_ctl",
        );
        facts.add("epoll", epoll);
        facts.add(
            "timerfd",
            check(
                libc::timerfd_create(libc::CLOCK_MONOTONIC, 0).into(),
                "timerfd_create",
            ),
        );
        facts.add(
            "memfd",
            check(
                libc::memfd_create(c"fdid-scenario".as_ptr(), 0).into(),
                "memfd_create",
            ),
        );
    }
    unlink(&path);
}

fn fork_tree(facts: &mut Facts, children: u32, extra_files: u32) -> Vec<libc::pid_t> {
    let path = scratch_file("fork");
    let file = open(&path, libc::O_RDWR);
    for _ in 0..extra_files {
        open(&path, libc::O_RDONLY);
    }
    let mut pipe = [0; 2];
    // SAFETY: plain syscalls on a local array and fds we own.
    unsafe {
        check(libc::lseek(file, 7, libc::SEEK_SET), "lseek");
        check(libc::pipe(pipe.as_mut_ptr()).into(), "pipe");
    }
    unlink(&path);
    facts.add("file", file);
    facts.add("pipe_r", pipe[0]);
    facts.add("pipe_w", pipe[1]);
    let parent = std::process::id() as libc::pid_t;
    let mut pids = Vec::new();
    for i in 0..children {
        let pid = fork();
        if pid == 0 {
            child_forever(parent, pause);
        }
        facts.add(&format!("child{i}"), pid);
        pids.push(pid);
    }
    facts.add(
        "parent_only",
        open(&CString::new("/dev/null").expect("literal"), libc::O_RDONLY),
    );
    pids
}

/// Reads one native-endian i32 from a pipe.
fn read_i32(fd: RawFd) -> i32 {
    let mut bytes = [0u8; 4];
    // SAFETY: reading into a local 4-byte buffer.
    let n = unsafe { libc::read(fd, bytes.as_mut_ptr().cast(), 4) };
    if n != 4 {
        eprintln!("fdid-scenario: short read from child");
        std::process::exit(2);
    }
    i32::from_ne_bytes(bytes)
}

fn write_i32(fd: RawFd, value: i32) {
    // SAFETY: writing a local 4-byte buffer.
    unsafe { libc::write(fd, value.to_ne_bytes().as_ptr().cast(), 4) };
}

/// A connected pair of unix stream sockets.
fn socketpair() -> [RawFd; 2] {
    socketpair_of(libc::SOCK_STREAM)
}

/// A unix socketpair of `kind` (`SOCK_STREAM`, `SOCK_DGRAM`…), or exits.
fn socketpair_of(kind: libc::c_int) -> [RawFd; 2] {
    let mut pair = [0; 2];
    // SAFETY: socketpair writes two fds into the local array.
    check(
        unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, pair.as_mut_ptr()) }.into(),
        "socketpair",
    );
    pair
}

/// Sends `fd` over the unix socket `socket` with SCM_RIGHTS, or exits.
fn send(socket: RawFd, fd: RawFd) {
    if send_fd(socket, fd).is_err() {
        check(-1, "sendmsg");
    }
}

/// Receives one fd sent with SCM_RIGHTS over the unix socket `socket`, or exits.
fn receive(socket: RawFd) -> RawFd {
    receive_fd(socket).unwrap_or_else(|_| check(-1, "recvmsg"))
}

/// Waits for the test's line on stdin (its go-ahead, after `ready`).
fn wait_for_go() {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn pipe() -> [RawFd; 2] {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the local array.
    check(unsafe { libc::pipe(fds.as_mut_ptr()) }.into(), "pipe");
    fds
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut facts = Facts(Vec::new());
    facts.add("pid", std::process::id());
    let count = |default| args.get(2).and_then(|n| n.parse().ok()).unwrap_or(default);
    let name = args.get(2).cloned().unwrap_or_default();
    let mut listener = None;
    let mut prepared = None;
    let mut batched = None;
    let mut senders = None;
    let mut makers = false;
    let children = match args.get(1).map(String::as_str) {
        Some("fdset") => {
            fdset(&mut facts);
            Vec::new()
        }
        Some("fork") => {
            let extra_files = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(0);
            fork_tree(&mut facts, count(1), extra_files)
        }
        Some("scm") => passing::scm(&mut facts),
        Some("siblings") => passing::siblings(&mut facts),
        Some("scm-recv") => {
            listener = Some(passing::scm_listen(&name));
            Vec::new()
        }
        Some("scm-send") => {
            passing::scm_send(&mut facts, &name);
            Vec::new()
        }
        Some("pidfd") => passing::pidfd(&mut facts),
        Some("churn") => shapes::churn(&mut facts, count(100)),
        Some("threads") => {
            shapes::threads(&mut facts, count(3));
            Vec::new()
        }
        Some("clone-files") => shapes::clone_files(&mut facts),
        Some("writer") => shapes::writer(&mut facts),
        Some("mmap") => {
            shapes::mmap(&mut facts);
            Vec::new()
        }
        Some("server") => ends::server(&mut facts, count(2)),
        Some("ends") => ends::ends(&mut facts),
        Some("provenance") => {
            prepared = Some(provenance::prepare(&mut facts));
            Vec::new()
        }
        Some("idle") => provenance::idle(),
        Some("batched") => {
            batched = Some(passing::batched(&mut facts));
            Vec::new()
        }
        Some("makers") => {
            makers = true;
            Vec::new()
        }
        Some("senders") => {
            senders = Some(count(4));
            Vec::new()
        }
        _ => {
            eprintln!(
                "usage: fdid-scenario fdset|churn [N]|fork [N [FILES]]|scm|siblings|scm-recv NAME|scm-send NAME|pidfd|threads [N]|clone-files|writer|mmap|server [N]|ends|provenance|senders [N]|makers|batched"
            );
            std::process::exit(2);
        }
    };
    facts.print();
    let mut children = children;
    if let Some(prepared) = prepared {
        children.extend(prepared.run());
    }
    if let Some(batched) = batched {
        children.extend(batched.run());
    }
    if makers {
        makers::run();
    }
    if let Some(workers) = senders {
        children.extend(provenance::senders(workers));
    }
    if let Some(listener) = listener {
        // SAFETY: accepting on our own listening socket.
        let connection = check(
            unsafe { libc::accept(listener, std::ptr::null_mut(), std::ptr::null_mut()) }.into(),
            "accept",
        );
        let received = receive(connection);
        let mut out = std::io::stdout().lock();
        writeln!(out, "received {received}")
            .and_then(|()| out.flush())
            .expect("stdout");
    }
    fdid_tests::hold_until_stdin_closes(&children);
    let _ = std::fs::remove_file(ends::unix_path(std::process::id()));
}
