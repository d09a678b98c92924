//! Scenarios with two ends: servers whose listening socket workers inherited, loopback connections,
//! a socketpair whose other end went to another process over SCM_RIGHTS, a pipe whose write end
//! leaked into a child, a unix socket bound to a path with a connection accepted on it.

use std::os::fd::RawFd;

use super::{
    Facts, check, child_forever, fork, pause, pipe, read_i32, receive, send, socketpair, write_i32,
};

/// A socket of `family`/`kind` bound to loopback port 0; returns (fd, port).
fn bound(family: libc::c_int, kind: libc::c_int) -> Option<(RawFd, u16)> {
    // SAFETY: plain socket calls on a local sockaddr of the family's size.
    unsafe {
        let fd = libc::socket(family, kind, 0);
        if fd < 0 {
            return None;
        }
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let len = if family == libc::AF_INET {
            let addr = (&raw mut storage).cast::<libc::sockaddr_in>();
            (*addr).sin_family = libc::AF_INET as libc::sa_family_t;
            (*addr).sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            size_of::<libc::sockaddr_in>()
        } else {
            let addr = (&raw mut storage).cast::<libc::sockaddr_in6>();
            (*addr).sin6_family = libc::AF_INET6 as libc::sa_family_t;
            (*addr).sin6_addr.s6_addr = std::net::Ipv6Addr::LOCALHOST.octets();
            size_of::<libc::sockaddr_in6>()
        } as libc::socklen_t;
        if libc::bind(fd, (&raw const storage).cast(), len) != 0 {
            libc::close(fd);
            return None;
        }
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        check(
            libc::getsockname(fd, (&raw mut storage).cast(), &mut len).into(),
            "getsockname",
        );
        let port = if family == libc::AF_INET {
            (*(&raw const storage).cast::<libc::sockaddr_in>()).sin_port
        } else {
            (*(&raw const storage).cast::<libc::sockaddr_in6>()).sin6_port
        };
        Some((fd, u16::from_be(port)))
    }
}

/// `server N`: a TCP listener on loopback (`port`, `listener`), a UDP socket (`udp`, `udp_port`) and,
/// when the machine has IPv6 loopback, a TCP listener (`listener6`, `port6`) and a UDP socket (`udp6`,
/// `udp6_port`) on it, all inherited by N forked workers (`worker0`, …); then a client connection to
/// the first listener (`client`) accepted by the parent (`accepted`).
pub fn server(facts: &mut Facts, workers: u32) -> Vec<libc::pid_t> {
    let (listener, port) = bound(libc::AF_INET, libc::SOCK_STREAM).unwrap_or_else(|| {
        check(-1, "bind 127.0.0.1");
        unreachable!()
    });
    // SAFETY: listen on our own socket.
    check(unsafe { libc::listen(listener, 16) }.into(), "listen");
    facts.add("port", port);
    facts.add("listener", listener);
    let (udp, udp_port) = bound(libc::AF_INET, libc::SOCK_DGRAM).unwrap_or_else(|| {
        check(-1, "bind udp 127.0.0.1");
        unreachable!()
    });
    facts.add("udp", udp);
    facts.add("udp_port", udp_port);
    if let Some((listener6, port6)) = bound(libc::AF_INET6, libc::SOCK_STREAM) {
        // SAFETY: listen on our own socket.
        check(unsafe { libc::listen(listener6, 16) }.into(), "listen");
        facts.add("listener6", listener6);
        facts.add("port6", port6);
    }
    if let Some((udp6, udp6_port)) = bound(libc::AF_INET6, libc::SOCK_DGRAM) {
        facts.add("udp6", udp6);
        facts.add("udp6_port", udp6_port);
    }
    let parent = std::process::id() as libc::pid_t;
    let mut pids = Vec::new();
    for i in 0..workers {
        let worker = fork();
        if worker == 0 {
            child_forever(parent, pause);
        }
        facts.add(&format!("worker{i}"), worker);
        pids.push(worker);
    }
    // SAFETY: plain socket calls on local sockaddrs.
    unsafe {
        let client = check(
            libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0).into(),
            "socket",
        );
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        addr.sin_port = port.to_be();
        check(
            libc::connect(
                client,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
            .into(),
            "connect",
        );
        let accepted = check(
            libc::accept(listener, std::ptr::null_mut(), std::ptr::null_mut()).into(),
            "accept",
        );
        facts.add("client", client);
        facts.add("accepted", accepted);
    }
    pids
}

/// The path `ends` binds its unix socket to, for the scenario process `pid`.
pub fn unix_path(pid: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("fdid-scenario-{pid}-app.sock"))
}

/// `ends`: a socketpair (`pair_a`) whose other end went over SCM_RIGHTS to a child forked before it
/// existed (`pair_child`, its fd `pair_b_in_child`); a pipe (`pipe_r`) whose write end a second
/// child inherited (`leaker`, as `pipe_w`) and the parent closed; a unix socket bound to
/// [`unix_path`] (`unix_listener`), a client connected to it (`unix_client`) and the accepted
/// connection (`unix_accepted`).
pub fn ends(facts: &mut Facts) -> Vec<libc::pid_t> {
    let parent = std::process::id() as libc::pid_t;
    let report = pipe();
    let channel = socketpair();
    let pair_child = fork();
    if pair_child == 0 {
        let received = receive(channel[1]);
        write_i32(report[1], received);
        child_forever(parent, pause);
    }
    let pair = socketpair();
    send(channel[0], pair[1]);
    // SAFETY: closing our own copy of the end we sent.
    unsafe { libc::close(pair[1]) };
    facts.add("pair_a", pair[0]);
    facts.add("pair_child", pair_child);
    facts.add("pair_b_in_child", read_i32(report[0]));

    let pipe_fds = pipe();
    let leaker = fork();
    if leaker == 0 {
        child_forever(parent, pause);
    }
    // SAFETY: the parent keeps the read end only.
    unsafe { libc::close(pipe_fds[1]) };
    facts.add("pipe_r", pipe_fds[0]);
    facts.add("leaker", leaker);
    facts.add("pipe_w", pipe_fds[1]);

    let path = unix_path(std::process::id());
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind the unix socket");
    let client = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    let (accepted, _) = listener.accept().expect("accept");
    use std::os::fd::IntoRawFd as _;
    facts.add("unix_listener", listener.into_raw_fd());
    facts.add("unix_client", client.into_raw_fd());
    facts.add("unix_accepted", accepted.into_raw_fd());
    vec![pair_child, leaker]
}
