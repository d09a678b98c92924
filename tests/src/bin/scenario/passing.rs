//! Scenarios that pass fds between processes: `scm`, `siblings`, `scm-recv`/`scm-send` (two
//! scenario processes over an abstract unix socket), `pidfd` and `batched` (sendmmsg, recvmmsg).

use std::{io::Write as _, os::fd::RawFd};

use fdid_tests::fdpass::{receive_fds_at_once, send_fds_at_once};

use super::{
    Facts, check, child_forever, fork, open, pause, pipe, read_i32, receive, scratch_file, send,
    socketpair, socketpair_of, unlink, wait_for_go, write_i32,
};

pub fn scm(facts: &mut Facts) -> Vec<libc::pid_t> {
    let pair = socketpair();
    let report = pipe();
    let parent = std::process::id() as libc::pid_t;
    let child = fork();
    if child == 0 {
        let received = receive(pair[1]);
        write_i32(report[1], received);
        child_forever(parent, pause);
    }
    let path = scratch_file("scm");
    let file = open(&path, libc::O_RDWR);
    unlink(&path);
    send(pair[0], file);
    facts.add("child", child);
    facts.add("file", file);
    facts.add("child_fd", read_i32(report[0]));
    // SAFETY: memfd_create with a literal name.
    let in_flight = check(
        unsafe { libc::memfd_create(c"fdid-in-flight".as_ptr(), 0) }.into(),
        "memfd_create",
    );
    send(pair[0], in_flight);
    facts.add("in_flight", in_flight);
    vec![child]
}

/// Two children of this process: the first opens a file after the fork (the parent never holds it)
/// and passes it to its sibling over a socketpair made before the fork.
pub fn siblings(facts: &mut Facts) -> Vec<libc::pid_t> {
    let pair = socketpair();
    let (from_receiver, from_sender) = (pipe(), pipe());
    let parent = std::process::id() as libc::pid_t;
    let receiver = fork();
    if receiver == 0 {
        let received = receive(pair[1]);
        write_i32(from_receiver[1], received);
        child_forever(parent, pause);
    }
    let sender = fork();
    if sender == 0 {
        let path = scratch_file("siblings");
        let file = open(&path, libc::O_RDWR);
        unlink(&path);
        send(pair[0], file);
        write_i32(from_sender[1], file);
        child_forever(parent, pause);
    }
    facts.add("receiver", receiver);
    facts.add("received", read_i32(from_receiver[0]));
    facts.add("sender", sender);
    facts.add("file", read_i32(from_sender[0]));
    vec![receiver, sender]
}

/// An abstract unix socket address (`\0NAME`).
fn abstract_address(name: &str) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (slot, &byte) in address.sun_path[1..].iter_mut().zip(name.as_bytes()) {
        *slot = byte as libc::c_char;
    }
    let length = size_of::<libc::sa_family_t>() + 1 + name.len();
    (address, length as libc::socklen_t)
}

fn unix_socket() -> RawFd {
    // SAFETY: socket takes only integers.
    check(
        unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) }.into(),
        "socket",
    )
}

/// Binds and listens on NAME; receiving happens after `ready` (see `main`).
pub fn scm_listen(name: &str) -> RawFd {
    let listener = unix_socket();
    let (address, length) = abstract_address(name);
    // SAFETY: binding and listening with a local address.
    unsafe {
        check(
            libc::bind(listener, (&raw const address).cast(), length).into(),
            "bind",
        );
        check(libc::listen(listener, 1).into(), "listen");
    }
    listener
}

pub fn scm_send(facts: &mut Facts, name: &str) {
    let socket = unix_socket();
    let (address, length) = abstract_address(name);
    // SAFETY: connecting with a local address.
    check(
        unsafe { libc::connect(socket, (&raw const address).cast(), length) }.into(),
        "connect",
    );
    let path = scratch_file("scm-send");
    let file = open(&path, libc::O_RDWR);
    unlink(&path);
    send(socket, file);
    facts.add("file", file);
}

pub fn pidfd(facts: &mut Facts) -> Vec<libc::pid_t> {
    let report = pipe();
    let parent = std::process::id() as libc::pid_t;
    let child = fork();
    if child == 0 {
        let path = scratch_file("pidfd-child");
        let fd = open(&path, libc::O_RDONLY);
        unlink(&path);
        write_i32(report[1], fd);
        child_forever(parent, pause);
    }
    let child_file = read_i32(report[0]);
    let copy = take_fd(child, child_file);
    facts.add("child", child);
    facts.add("child_file", child_file);
    facts.add("parent_copy", copy);
    vec![child]
}

/// A copy of `pid`'s fd `fd`, taken with pidfd_getfd.
pub fn take_fd(pid: libc::pid_t, fd: RawFd) -> RawFd {
    // SAFETY: plain syscalls with integer arguments.
    unsafe {
        let pidfd = check(libc::syscall(libc::SYS_pidfd_open, pid, 0), "pidfd_open");
        let copy = check(
            libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0),
            "pidfd_getfd",
        );
        libc::close(pidfd);
        copy
    }
}

/// Files `batched` passes in one call.
const BATCH: usize = 2;

/// `batched`, set up before `ready`: a child `receiver` that blocks at once in recvmmsg for
/// [`BATCH`] messages on a datagram socketpair. [`Batched::run`], after a line on stdin: the parent
/// opens BATCH files (`file0`…) and sends them, one a message, with one sendmmsg call; the
/// receiver reports the fds it got (`received0`…); then `done 1`.
pub struct Batched {
    receiver: libc::pid_t,
    socket: RawFd,
    report: RawFd,
}

pub fn batched(facts: &mut Facts) -> Batched {
    // Datagrams: each message arrives as sent, one fd in each.
    let pair = socketpair_of(libc::SOCK_DGRAM);
    let report = pipe();
    let parent = std::process::id() as libc::pid_t;
    let receiver = fork();
    if receiver == 0 {
        let received =
            receive_fds_at_once(pair[1], BATCH).unwrap_or_else(|_| vec![check(-1, "recvmmsg")]);
        for fd in received {
            write_i32(report[1], fd);
        }
        child_forever(parent, pause);
    }
    facts.add("receiver", receiver);
    Batched {
        receiver,
        socket: pair[0],
        report: report[0],
    }
}

impl Batched {
    /// Waits for the test's line, passes the files, prints the facts; returns the receiver.
    pub fn run(self) -> Vec<libc::pid_t> {
        wait_for_go();
        let files: Vec<RawFd> = (0..BATCH)
            .map(|n| {
                let path = scratch_file(&format!("batched{n}"));
                let file = open(&path, libc::O_RDWR);
                unlink(&path);
                file
            })
            .collect();
        if send_fds_at_once(self.socket, &files).is_err() {
            check(-1, "sendmmsg");
        }
        let mut out = std::io::stdout().lock();
        for (n, file) in files.into_iter().enumerate() {
            let received = read_i32(self.report);
            writeln!(out, "file{n} {file}\nreceived{n} {received}").expect("stdout");
        }
        writeln!(out, "done 1").expect("stdout");
        out.flush().expect("stdout");
        vec![self.receiver]
    }
}
