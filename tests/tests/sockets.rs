//! Sockets as the BPF program reads them in the kernel, against what this process made them: their
//! addresses as the socket API reports them, their inodes from fstat, the network namespace from
//! /proc/self/ns/net, and for unix sockets the other end's inode.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::{
        fd::{AsRawFd, FromRawFd as _, OwnedFd, RawFd},
        unix::{
            fs::MetadataExt as _,
            net::{UnixListener, UnixStream},
        },
    },
};

use fdid::{
    collect::{Target, bpf::BpfOptions},
    record::{SOCKET_PATH_IS_PEERS, SocketRecord},
};
use fdid_tests::{bpf_collect, procfs_collect};

const AF_UNIX: u16 = libc::AF_UNIX as u16;
const AF_INET: u16 = libc::AF_INET as u16;
const AF_INET6: u16 = libc::AF_INET6 as u16;
const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

/// The socket records of this process's fds, by fd.
fn sockets_of_this_process() -> Option<HashMap<RawFd, SocketRecord>> {
    let me = std::process::id();
    let collection = bpf_collect(&Target::Pids(vec![me]), &BpfOptions::default())?;
    Some(by_fd(&collection))
}

fn by_fd(collection: &fdid::collect::Collection) -> HashMap<RawFd, SocketRecord> {
    let me = std::process::id();
    collection
        .records
        .iter()
        .filter(|r| r.tgid == me)
        .filter_map(|r| Some((r.fd as RawFd, *collection.sockets.get(&r.ino)?)))
        .collect()
}

fn inode(fd: &impl AsRawFd) -> u64 {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a stat into the buffer given; the fd is open.
    assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) }, 0);
    // SAFETY: fstat succeeded, so the stat is initialised.
    unsafe { st.assume_init() }.st_ino
}

fn netns() -> u32 {
    std::fs::metadata("/proc/self/ns/net").unwrap().ino() as u32
}

fn v4(addr: &[u8; 16]) -> Ipv4Addr {
    Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])
}

fn path(socket: &SocketRecord) -> &[u8] {
    &socket.path[..usize::from(socket.path_len)]
}

#[test]
fn a_tcp_listener_and_both_ends_of_a_loopback_connection_have_their_addresses_and_states() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let Some(sockets) = sockets_of_this_process() else {
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let client_port = client.local_addr().unwrap().port();

    let listening = &sockets[&listener.as_raw_fd()];
    assert_eq!(
        (listening.family, listening.sock_type, listening.protocol),
        (AF_INET, libc::SOCK_STREAM as u16, libc::IPPROTO_TCP as u16)
    );
    assert_eq!(listening.state, TCP_LISTEN);
    assert_eq!(listening.local_port, port);
    assert_eq!(v4(&listening.local_addr), Ipv4Addr::LOCALHOST);
    assert_eq!(listening.remote_port_be, 0);
    assert_eq!(listening.netns, netns());

    for (end, local, remote) in [(&client, client_port, port), (&server, port, client_port)] {
        let socket = &sockets[&end.as_raw_fd()];
        assert_eq!(socket.state, TCP_ESTABLISHED);
        assert_eq!(socket.local_port, local);
        assert_eq!(u16::from_be(socket.remote_port_be), remote);
        assert_eq!(v4(&socket.remote_addr), Ipv4Addr::LOCALHOST);
        assert_eq!(socket.peer_ino, 0, "inet sockets have no peer inode");
    }
}

#[test]
fn a_udp_socket_bound_to_ipv6_loopback_has_its_address() {
    let Ok(udp) = UdpSocket::bind("[::1]:0") else {
        eprintln!("SKIPPED: no IPv6 loopback here");
        return;
    };
    let Some(sockets) = sockets_of_this_process() else {
        return;
    };
    let socket = &sockets[&udp.as_raw_fd()];
    assert_eq!(
        (socket.family, socket.sock_type, socket.protocol),
        (AF_INET6, libc::SOCK_DGRAM as u16, libc::IPPROTO_UDP as u16)
    );
    assert_eq!(socket.state, TCP_CLOSE, "unconnected");
    assert_eq!(Ipv6Addr::from(socket.local_addr), Ipv6Addr::LOCALHOST);
    let SocketAddr::V6(local) = udp.local_addr().unwrap() else {
        unreachable!()
    };
    assert_eq!(socket.local_port, local.port());
}

#[test]
fn the_two_ends_of_a_socketpair_name_each_others_inode() {
    let (a, b) = UnixStream::pair().unwrap();
    let Some(sockets) = sockets_of_this_process() else {
        return;
    };
    let (sa, sb) = (&sockets[&a.as_raw_fd()], &sockets[&b.as_raw_fd()]);
    assert_eq!(
        (sa.family, sa.sock_type),
        (AF_UNIX, libc::SOCK_STREAM as u16)
    );
    assert_eq!(sa.state, TCP_ESTABLISHED);
    assert_eq!(sa.peer_ino, inode(&b));
    assert_eq!(sb.peer_ino, inode(&a));
    assert_eq!((sa.path_len, sb.path_len), (0, 0), "unnamed");
    assert_eq!(sa.netns, netns());
}

#[test]
fn a_unix_server_its_accepted_connection_and_the_client_show_the_path_and_their_peers() {
    let dir = std::env::temp_dir().join(format!("fdid-sockets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("app.sock");
    let _ = std::fs::remove_file(&socket_path);
    let listener = UnixListener::bind(&socket_path).unwrap();
    let client = UnixStream::connect(&socket_path).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    // The socket's file opened with O_PATH: S_IFSOCK, but not a socket (not on sockfs). By open(2)
    // itself: Rust's std drops O_PATH from custom_flags on musl, where it is part of O_ACCMODE.
    let c_path = std::ffi::CString::new(socket_path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: open(2) on a NUL-terminated path.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open O_PATH: {}", std::io::Error::last_os_error());
    // SAFETY: a new fd that nothing else owns.
    let on_disk = unsafe { OwnedFd::from_raw_fd(fd) };
    let sockets = sockets_of_this_process();
    std::fs::remove_dir_all(&dir).unwrap();
    let Some(sockets) = sockets else {
        return;
    };
    let wanted = socket_path.as_os_str().as_encoded_bytes();

    let listening = &sockets[&listener.as_raw_fd()];
    assert_eq!(listening.state, TCP_LISTEN);
    assert_eq!(
        path(listening)
            .strip_suffix(b"\0")
            .unwrap_or(path(listening)),
        wanted
    );
    assert_eq!(listening.flags & SOCKET_PATH_IS_PEERS, 0);

    let theirs = &sockets[&client.as_raw_fd()];
    assert_eq!(theirs.peer_ino, inode(&accepted));
    assert_eq!(
        theirs.flags & SOCKET_PATH_IS_PEERS,
        SOCKET_PATH_IS_PEERS,
        "the client has no address: the path is its peer's"
    );
    assert_eq!(
        path(theirs).strip_suffix(b"\0").unwrap_or(path(theirs)),
        wanted
    );

    let ours = &sockets[&accepted.as_raw_fd()];
    assert_eq!(ours.peer_ino, inode(&client));
    assert_eq!(ours.state, TCP_ESTABLISHED);
    assert!(
        !sockets.contains_key(&on_disk.as_raw_fd()),
        "an O_PATH fd of the socket's file is no socket"
    );
}

/// What /proc/net's tables can say of a socket: no peer, no peer's path, no trailing NUL.
fn as_procfs_knows_it(mut socket: SocketRecord) -> SocketRecord {
    socket.peer_ino = 0;
    if socket.flags & SOCKET_PATH_IS_PEERS != 0 {
        socket.path = [0; 108];
        socket.path_len = 0;
        socket.flags = 0;
    }
    while socket.path_len > 0 && socket.path[usize::from(socket.path_len) - 1] == 0 {
        socket.path_len -= 1;
    }
    socket
}

#[test]
fn procfs_describes_the_sockets_as_bpf_does_but_for_unix_peers() {
    let dir = std::env::temp_dir().join(format!("fdid-sockets-procfs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket_path = dir.join("app.sock");
    let unix_listener = UnixListener::bind(&socket_path).unwrap();
    let unix_client = UnixStream::connect(&socket_path).unwrap();
    let (unix_accepted, _) = unix_listener.accept().unwrap();
    let pair = UnixStream::pair().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let udp6 = UdpSocket::bind("[::1]:0");
    let bpf = sockets_of_this_process();
    let procfs = by_fd(&procfs_collect(&Target::Pids(vec![std::process::id()])));
    std::fs::remove_dir_all(&dir).unwrap();
    let Some(bpf) = bpf else {
        return;
    };
    // Only this test's own fds: the other tests of this binary open and close sockets in the same
    // process meanwhile.
    let mut fds = vec![
        unix_listener.as_raw_fd(),
        unix_client.as_raw_fd(),
        unix_accepted.as_raw_fd(),
        pair.0.as_raw_fd(),
        pair.1.as_raw_fd(),
        listener.as_raw_fd(),
        client.as_raw_fd(),
        accepted.as_raw_fd(),
    ];
    fds.extend(udp6.as_ref().map(|s| s.as_raw_fd()));
    for fd in fds {
        assert_eq!(
            procfs.get(&fd),
            Some(&as_procfs_knows_it(bpf[&fd])),
            "fd {fd}"
        );
    }
    assert_eq!(
        procfs[&unix_client.as_raw_fd()].peer_ino,
        0,
        "no peers from procfs"
    );
}

/// A collector loaded once, for tests of several walks.
fn collector() -> Option<fdid::collect::bpf::BpfCollector> {
    match fdid::collect::bpf::BpfCollector::load(&BpfOptions::default(), None) {
        Ok(collector) => Some(collector),
        // The CI rule: skips outside CI only where BPF cannot load, fails otherwise.
        Err(_) => bpf_collect(
            &Target::Pids(vec![std::process::id()]),
            &BpfOptions::default(),
        )
        .map(|_| panic!("the collector did not load, but a collection did")),
    }
}

/// Every pair is described, each end naming the other, in each of `walks` walks of one collector.
fn assert_pairs_described(pairs: &[(UnixStream, UnixStream)], walks: usize) {
    let Some(mut collector) = collector() else {
        return;
    };
    for walk in 0..walks {
        let collection = collector
            .collect(&Target::Pids(vec![std::process::id()]))
            .unwrap();
        let sockets = by_fd(&collection);
        for (a, b) in pairs {
            let (sa, sb) = (sockets.get(&a.as_raw_fd()), sockets.get(&b.as_raw_fd()));
            assert_eq!(
                (sa.map(|s| s.peer_ino), sb.map(|s| s.peer_ino)),
                (Some(inode(b)), Some(inode(a))),
                "walk {walk}, fds {} and {}",
                a.as_raw_fd(),
                b.as_raw_fd()
            );
        }
    }
}

/// More sockets than fit in one buffer of the iterator, whose overflowing writes the kernel discards
/// and repeats: every one is described (the program marks a socket described only once its write
/// went through).
#[test]
fn four_hundred_socketpairs_are_all_described() {
    // 800 sockets of 256 bytes: the iterator's 32 KiB buffer overflows six times (and they fit
    // under the guests' 1024-fd limit).
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..400).map(|_| UnixStream::pair().unwrap()).collect();
    assert_pairs_described(&pairs, 1);
}

/// The program describes each socket once per walk, not once per loaded program.
#[test]
fn a_long_lived_collector_describes_the_sockets_again_in_every_walk() {
    let pairs: Vec<(UnixStream, UnixStream)> =
        (0..3).map(|_| UnixStream::pair().unwrap()).collect();
    assert_pairs_described(&pairs, 3);
}
