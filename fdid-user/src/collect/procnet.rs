//! Sockets for the procfs collector, from the tables of each network namespace
//! (`/proc/PID/net/{tcp,tcp6,udp,udp6,unix}`): family, type, protocol, state, addresses and ports,
//! unix paths, the namespace. What the tables do not give stays empty: a unix socket's peer (so
//! unix endpoints need the BPF collector), a unix client's peer path, and sockets of other families
//! (netlink, packet, …), which are not described.

use std::{collections::HashMap, os::unix::fs::MetadataExt as _};

use crate::record::{FdRecord, SocketRecord, Sockets};

/// The sockets among `records`, as far as their namespaces' tables describe them.
pub fn sockets_of(records: &[FdRecord]) -> Sockets {
    let wanted: std::collections::HashSet<u64> = records
        .iter()
        .filter(|r| u32::from(r.mode) & libc::S_IFMT == libc::S_IFSOCK)
        .map(|r| r.ino)
        .collect();
    let mut sockets = Sockets::default();
    if wanted.is_empty() {
        return sockets;
    }
    // One process per network namespace: its tables are the namespace's.
    let mut namespaces: HashMap<u64, u32> = HashMap::new();
    let mut previous = None;
    for r in records.iter().filter(|r| wanted.contains(&r.ino)) {
        if previous == Some(r.tgid) {
            continue;
        }
        previous = Some(r.tgid);
        if let Ok(ns) = std::fs::metadata(format!("/proc/{}/ns/net", r.tgid)) {
            namespaces.entry(ns.ino()).or_insert(r.tgid);
        }
    }
    for (&netns, &pid) in &namespaces {
        for (table, family, kind, protocol) in [
            ("tcp", libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_TCP),
            ("tcp6", libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP),
            ("udp", libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP),
            ("udp6", libc::AF_INET6, libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        ] {
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
                continue;
            };
            for line in text.lines().skip(1) {
                if let Some((ino, mut socket)) = inet_line(line, family)
                    && wanted.contains(&ino)
                {
                    socket.sock_type = kind as u16;
                    socket.protocol = protocol as u16;
                    socket.netns = netns as u32;
                    sockets.insert(ino, socket);
                }
            }
        }
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) {
            for line in text.lines().skip(1) {
                if let Some((ino, mut socket)) = unix_line(line)
                    && wanted.contains(&ino)
                {
                    socket.netns = netns as u32;
                    sockets.insert(ino, socket);
                }
            }
        }
    }
    sockets
}

/// `sl local rem st … inode …` of /proc/net/{tcp,udp}[6]: addresses as the kernel's words in hex
/// (each 32-bit word in host order), ports and state in hex.
fn inet_line(line: &str, family: libc::c_int) -> Option<(u64, SocketRecord)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (local, remote, state, ino) = (
        fields.get(1)?,
        fields.get(2)?,
        fields.get(3)?,
        fields.get(9)?,
    );
    let address = |text: &str| -> Option<([u8; 16], u16)> {
        let (hex, port) = text.split_once(':')?;
        let mut bytes = [0u8; 16];
        if hex.len() % 8 != 0 || hex.len() > 32 {
            return None;
        }
        for (k, word) in hex.as_bytes().chunks(8).enumerate() {
            let word = u32::from_str_radix(std::str::from_utf8(word).ok()?, 16).ok()?;
            bytes[4 * k..4 * k + 4].copy_from_slice(&word.to_le_bytes());
        }
        Some((bytes, u16::from_str_radix(port, 16).ok()?))
    };
    let ((local_addr, local_port), (remote_addr, remote_port)) =
        (address(local)?, address(remote)?);
    let socket = SocketRecord {
        family: family as u16,
        state: u8::from_str_radix(state, 16).ok()?,
        local_port,
        remote_port_be: remote_port.to_be(),
        local_addr,
        remote_addr,
        ..SocketRecord::default()
    };
    Some((ino.parse().ok()?, socket))
}

/// `Num RefCount Protocol Flags Type St Inode [Path]` of /proc/net/unix.
fn unix_line(line: &str) -> Option<(u64, SocketRecord)> {
    const ACCEPTING: u32 = 0x10000; // __SO_ACCEPTCON: listening
    const SS_CONNECTED: u8 = 3;
    // Seven fields (the inode right-aligned in five columns), then ` PATH` when it has one.
    let mut fields = Vec::with_capacity(7);
    let mut rest = line;
    for _ in 0..7 {
        rest = rest.trim_start();
        let end = rest.find(' ').unwrap_or(rest.len());
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let path = rest.strip_prefix(' ');
    let flags = u32::from_str_radix(fields.get(3)?, 16).ok()?;
    let kind = u16::from_str_radix(fields.get(4)?, 16).ok()?;
    let st = u8::from_str_radix(fields.get(5)?, 16).ok()?;
    let ino: u64 = fields.get(6)?.parse().ok()?;
    let mut socket = SocketRecord {
        family: libc::AF_UNIX as u16,
        sock_type: kind,
        state: if flags & ACCEPTING != 0 {
            10
        } else if st == SS_CONNECTED {
            1
        } else {
            7
        },
        ..SocketRecord::default()
    };
    if let Some(path) = path.filter(|p| !p.is_empty()) {
        // Abstract names are shown with `@` where the kernel has a NUL.
        let bytes: Vec<u8> = match path.strip_prefix('@') {
            Some(name) => std::iter::once(0).chain(name.bytes()).collect(),
            None => path.bytes().collect(),
        };
        let len = bytes.len().min(socket.path.len());
        socket.path[..len].copy_from_slice(&bytes[..len]);
        socket.path_len = len as u16;
    }
    Some((ino, socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_listener_line_reads_as_the_kernel_has_it() {
        let line = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0";
        let (ino, s) = inet_line(line, libc::AF_INET).unwrap();
        assert_eq!(ino, 4242);
        assert_eq!(
            (&s.local_addr[..4], s.local_port, s.state),
            (&[127, 0, 0, 1][..], 8080, 10)
        );
        assert_eq!(s.remote_port_be, 0);
        assert_eq!(s.family, libc::AF_INET as u16);
        let malformed = "   0: 0100007F0:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242";
        assert_eq!(inet_line(malformed, libc::AF_INET), None, "9 hex digits");
    }

    #[test]
    fn this_processs_listener_is_found_in_its_namespaces_table() {
        use std::os::{fd::AsRawFd as _, unix::fs::MetadataExt as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let path = format!("/proc/self/fd/{}", listener.as_raw_fd());
        let ino = std::fs::metadata(path).unwrap().ino();
        let me = std::process::id();
        let socket = |ino| FdRecord {
            tgid: me,
            tid: me,
            mode: 0o140_777,
            ino,
            ..FdRecord::default()
        };
        let mut not_a_socket = socket(ino);
        not_a_socket.mode = 0o100_644;
        assert_eq!(sockets_of(&[not_a_socket]), Sockets::default());
        let found = sockets_of(&[socket(ino), socket(ino)]);
        let s = found[&ino];
        assert_eq!((s.family, s.state), (libc::AF_INET as u16, 10));
        assert_eq!(s.local_port, listener.local_addr().unwrap().port());
        let netns = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        assert_eq!(u64::from(s.netns), netns);
    }

    #[test]
    fn an_ipv6_connection_line_has_both_ends() {
        let line = "   1: 00000000000000000000000001000000:9D88 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 20 4 30 10 -1";
        let (ino, s) = inet_line(line, libc::AF_INET6).unwrap();
        assert_eq!(ino, 77);
        assert_eq!(
            std::net::Ipv6Addr::from(s.local_addr),
            std::net::Ipv6Addr::LOCALHOST
        );
        assert_eq!(
            (s.local_port, u16::from_be(s.remote_port_be), s.state),
            (40328, 8080, 1)
        );
        assert_eq!(
            std::net::Ipv6Addr::from(s.remote_addr),
            std::net::Ipv6Addr::LOCALHOST
        );
    }

    #[test]
    fn unix_lines_give_state_type_and_path() {
        let listening = "0000000000000000: 00000002 00000000 00010000 0001 01 501 /run/app sock";
        let (ino, s) = unix_line(listening).unwrap();
        assert_eq!((ino, s.state, s.sock_type), (501, 10, 1));
        assert_eq!(s.family, libc::AF_UNIX as u16);
        assert_eq!(&s.path[..usize::from(s.path_len)], b"/run/app sock");
        // Inodes below 10000 are padded to five columns.
        let padded = "0000000000000000: 00000002 00000000 00010000 0001 01  1058 /run/x.sock";
        let (ino, s) = unix_line(padded).unwrap();
        assert_eq!((ino, s.state), (1058, 10));
        assert_eq!(&s.path[..usize::from(s.path_len)], b"/run/x.sock");
        let connected = "0000000000000000: 00000003 00000000 00000000 0001 03 502";
        let (_, s) = unix_line(connected).unwrap();
        assert_eq!((s.state, s.path_len), (1, 0));
        let abstract_dgram = "0000000000000000: 00000002 00000000 00000000 0002 01 503 @name";
        let (_, s) = unix_line(abstract_dgram).unwrap();
        assert_eq!((s.state, s.sock_type), (7, 2));
        assert_eq!(&s.path[..usize::from(s.path_len)], b"\0name");
        assert_eq!(
            unix_line("Num RefCount Protocol Flags Type St Inode Path"),
            None
        );
    }
}
