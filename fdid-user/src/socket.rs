//! What a socket is, for people and programs: family, type, protocol, state, addresses, unix path —
//! decoded from the [`SocketRecord`] the iterator read in the kernel.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use crate::record::SocketRecord;
pub use fdid_ebpf::SOCKET_PATH_IS_PEERS;

/// A socket, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    pub state: u8,
    /// Inode number of its network namespace.
    pub netns: u32,
    /// Local address and port (inet sockets).
    pub local: Option<SocketAddr>,
    /// Remote address and port (connected inet sockets).
    pub remote: Option<SocketAddr>,
    /// A unix socket's path (`@name` for an abstract one), its own or, when `path_is_peers`, its
    /// peer's.
    pub path: Option<String>,
    pub path_is_peers: bool,
    /// Inode number of a unix socket's peer.
    pub peer_ino: Option<u64>,
}

impl Socket {
    pub fn from_record(r: &SocketRecord) -> Self {
        let inet = |addr: &[u8; 16], port: u16| -> Option<SocketAddr> {
            let ip = match i32::from(r.family) {
                libc::AF_INET => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
                libc::AF_INET6 => IpAddr::V6(Ipv6Addr::from(*addr)),
                _ => return None,
            };
            Some(SocketAddr::new(ip, port))
        };
        let remote_port = u16::from_be(r.remote_port_be);
        let path = (r.path_len > 0).then(|| {
            let bytes = &r.path[..usize::from(r.path_len).min(r.path.len())];
            match bytes.split_first() {
                // Abstract: a leading NUL, written `@` as ss and lsfd write it.
                Some((0, name)) => format!("@{}", String::from_utf8_lossy(name)),
                // A path: NUL-terminated within the length.
                _ => {
                    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                    String::from_utf8_lossy(&bytes[..end]).into_owned()
                }
            }
        });
        Self {
            family: r.family,
            sock_type: r.sock_type,
            protocol: r.protocol,
            state: r.state,
            netns: r.netns,
            local: inet(&r.local_addr, r.local_port),
            remote: inet(&r.remote_addr, remote_port).filter(|_| remote_port != 0),
            path,
            path_is_peers: r.flags & SOCKET_PATH_IS_PEERS != 0,
            peer_ino: (r.peer_ino != 0).then_some(r.peer_ino),
        }
    }

    /// `UNIX`, `INET`, `INET6`, `NETLINK`, … (`AF_*` without the prefix), or the number.
    pub fn family_name(&self) -> String {
        let name = match i32::from(self.family) {
            libc::AF_UNIX => "UNIX",
            libc::AF_INET => "INET",
            libc::AF_INET6 => "INET6",
            libc::AF_NETLINK => "NETLINK",
            libc::AF_PACKET => "PACKET",
            libc::AF_VSOCK => "VSOCK",
            _ => return self.family.to_string(),
        };
        name.to_owned()
    }

    /// `STREAM`, `DGRAM`, `SEQPACKET`, `RAW`, … or the number.
    pub fn type_name(&self) -> String {
        let name = match i32::from(self.sock_type) {
            libc::SOCK_STREAM => "STREAM",
            libc::SOCK_DGRAM => "DGRAM",
            libc::SOCK_SEQPACKET => "SEQPACKET",
            libc::SOCK_RAW => "RAW",
            libc::SOCK_RDM => "RDM",
            _ => return self.sock_type.to_string(),
        };
        name.to_owned()
    }

    fn is_inet(&self) -> bool {
        matches!(i32::from(self.family), libc::AF_INET | libc::AF_INET6)
    }

    /// For inet sockets `TCP`, `UDP`, `UDPLITE`, `SCTP`, `RAW`…; otherwise the number (0: the family's
    /// default).
    pub fn protocol_name(&self) -> String {
        if !self.is_inet() {
            return self.protocol.to_string();
        }
        let name = match i32::from(self.protocol) {
            libc::IPPROTO_TCP => "TCP",
            libc::IPPROTO_UDP => "UDP",
            libc::IPPROTO_UDPLITE => "UDPLITE",
            libc::IPPROTO_SCTP => "SCTP",
            libc::IPPROTO_ICMP => "ICMP",
            libc::IPPROTO_ICMPV6 => "ICMPV6",
            libc::IPPROTO_MPTCP => "MPTCP",
            _ if i32::from(self.sock_type) == libc::SOCK_RAW => "RAW",
            _ => return self.protocol.to_string(),
        };
        name.to_owned()
    }

    /// The state as `ss` names it: TCP's states; an unconnected datagram socket is `UNCONN`.
    pub fn state_name(&self) -> &'static str {
        // include/net/tcp_states.h
        match self.state {
            1 => "ESTAB",
            2 => "SYN-SENT",
            3 => "SYN-RECV",
            4 => "FIN-WAIT-1",
            5 => "FIN-WAIT-2",
            6 => "TIME-WAIT",
            7 if i32::from(self.sock_type) != libc::SOCK_STREAM => "UNCONN",
            7 => "CLOSE",
            8 => "CLOSE-WAIT",
            9 => "LAST-ACK",
            10 => "LISTEN",
            11 => "CLOSING",
            12 => "NEW-SYN-RECV",
            _ => "UNKNOWN",
        }
    }
}

/// `TCP LISTEN 127.0.0.1:8080`, `TCP ESTAB 127.0.0.1:40312 → 127.0.0.1:8080`,
/// `UNIX STREAM ESTAB /run/app.sock ↔ socket:[4242]` (a connection accepted on that path, and its
/// peer), `UNIX STREAM ESTAB ↔ /run/app.sock socket:[4241]` (the client), `NETLINK DGRAM`.
impl fmt::Display for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_inet() {
            write!(f, "{} {}", self.protocol_name(), self.state_name())?;
            if let Some(local) = self.local {
                write!(f, " {local}")?;
            }
            if let Some(remote) = self.remote {
                write!(f, " → {remote}")?;
            }
            return Ok(());
        }
        write!(f, "{} {}", self.family_name(), self.type_name())?;
        if i32::from(self.family) == libc::AF_UNIX {
            write!(f, " {}", self.state_name())?;
            let path = self.path.as_deref();
            if let Some(own) = path.filter(|_| !self.path_is_peers) {
                write!(f, " {own}")?;
            }
            let peers_path = path.filter(|_| self.path_is_peers);
            match (peers_path, self.peer_ino) {
                (Some(theirs), Some(peer)) => write!(f, " ↔ {theirs} socket:[{peer}]")?,
                (Some(theirs), None) => write!(f, " ↔ {theirs}")?,
                (None, Some(peer)) => write!(f, " ↔ socket:[{peer}]")?,
                (None, None) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(family: i32, sock_type: i32, protocol: i32, state: u8) -> SocketRecord {
        SocketRecord {
            family: family as u16,
            sock_type: sock_type as u16,
            protocol: protocol as u16,
            state,
            ..SocketRecord::default()
        }
    }

    #[test]
    fn a_tcp_listener_reads_like_ss_writes_it() {
        let mut r = record(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_TCP, 10);
        r.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        r.local_port = 8080;
        let socket = Socket::from_record(&r);
        assert_eq!(socket.local, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(socket.remote, None, "no remote port: not connected");
        assert_eq!(socket.to_string(), "TCP LISTEN 127.0.0.1:8080");
    }

    #[test]
    fn a_connected_ipv6_socket_shows_both_ends_with_the_remote_port_in_host_order() {
        let mut r = record(libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP, 1);
        r.local_addr = Ipv6Addr::LOCALHOST.octets();
        r.remote_addr = Ipv6Addr::LOCALHOST.octets();
        r.local_port = 40312;
        r.remote_port_be = 8080u16.to_be();
        let socket = Socket::from_record(&r);
        assert_eq!(socket.remote, Some("[::1]:8080".parse().unwrap()));
        assert_eq!(socket.to_string(), "TCP ESTAB [::1]:40312 → [::1]:8080");
        assert_eq!(socket.family_name(), "INET6");
    }

    #[test]
    fn datagram_sockets_are_unconnected_not_closed() {
        let udp = Socket::from_record(&record(
            libc::AF_INET,
            libc::SOCK_DGRAM,
            libc::IPPROTO_UDP,
            7,
        ));
        assert_eq!(udp.state_name(), "UNCONN");
        let tcp = Socket::from_record(&record(
            libc::AF_INET,
            libc::SOCK_STREAM,
            libc::IPPROTO_TCP,
            7,
        ));
        assert_eq!(tcp.state_name(), "CLOSE");
    }

    #[test]
    fn unix_paths_abstract_names_and_a_peers_path_are_told_apart() {
        let mut r = record(libc::AF_UNIX, libc::SOCK_STREAM, 0, 10);
        let path = b"/run/app.sock\0";
        r.path[..path.len()].copy_from_slice(path);
        r.path_len = path.len() as u16;
        let server = Socket::from_record(&r);
        assert_eq!(
            server.path.as_deref(),
            Some("/run/app.sock"),
            "the NUL is not part of it"
        );
        assert_eq!(server.to_string(), "UNIX STREAM LISTEN /run/app.sock");
        r.flags = SOCKET_PATH_IS_PEERS;
        r.state = 1;
        r.peer_ino = 77;
        let client = Socket::from_record(&r);
        assert_eq!(
            client.to_string(),
            "UNIX STREAM ESTAB ↔ /run/app.sock socket:[77]"
        );
        assert_eq!(client.peer_ino, Some(77));
        let mut r = record(libc::AF_UNIX, libc::SOCK_DGRAM, 0, 7);
        r.path[..5].copy_from_slice(b"\0name");
        r.path_len = 5;
        assert_eq!(Socket::from_record(&r).path.as_deref(), Some("@name"));
        assert_eq!(Socket::from_record(&r).peer_ino, None);
        assert_eq!(
            Socket::from_record(&r).to_string(),
            "UNIX DGRAM UNCONN @name"
        );
        let mut pair = record(libc::AF_UNIX, libc::SOCK_STREAM, 0, 1);
        pair.peer_ino = 78;
        assert_eq!(
            Socket::from_record(&pair).to_string(),
            "UNIX STREAM ESTAB ↔ socket:[78]"
        );
        pair.path[..5].copy_from_slice(b"/a.s\0");
        pair.path_len = 5;
        assert_eq!(
            Socket::from_record(&pair).to_string(),
            "UNIX STREAM ESTAB /a.s ↔ socket:[78]",
            "accepted on /a.s"
        );
    }

    #[test]
    fn other_families_are_named_or_numbered() {
        let netlink = Socket::from_record(&record(libc::AF_NETLINK, libc::SOCK_RAW, 0, 7));
        assert_eq!(netlink.to_string(), "NETLINK RAW");
        let odd = Socket::from_record(&record(99, 9, 0, 0));
        assert_eq!(
            (odd.family_name(), odd.type_name()),
            ("99".to_owned(), "9".to_owned())
        );
    }

    #[test]
    fn every_named_family_type_protocol_and_state_reads_as_ss_and_lsfd_write_it() {
        let family = |f: i32| Socket::from_record(&record(f, 0, 0, 0)).family_name();
        for (f, name) in [
            (libc::AF_UNIX, "UNIX"),
            (libc::AF_INET, "INET"),
            (libc::AF_INET6, "INET6"),
            (libc::AF_NETLINK, "NETLINK"),
            (libc::AF_PACKET, "PACKET"),
            (libc::AF_VSOCK, "VSOCK"),
        ] {
            assert_eq!(family(f), name);
        }
        let kind = |t: i32| Socket::from_record(&record(libc::AF_UNIX, t, 0, 0)).type_name();
        for (t, name) in [
            (libc::SOCK_STREAM, "STREAM"),
            (libc::SOCK_DGRAM, "DGRAM"),
            (libc::SOCK_SEQPACKET, "SEQPACKET"),
            (libc::SOCK_RAW, "RAW"),
            (libc::SOCK_RDM, "RDM"),
        ] {
            assert_eq!(kind(t), name);
        }
        let protocol =
            |t: i32, p: i32| Socket::from_record(&record(libc::AF_INET, t, p, 0)).protocol_name();
        for (p, name) in [
            (libc::IPPROTO_TCP, "TCP"),
            (libc::IPPROTO_UDP, "UDP"),
            (libc::IPPROTO_UDPLITE, "UDPLITE"),
            (libc::IPPROTO_SCTP, "SCTP"),
            (libc::IPPROTO_ICMP, "ICMP"),
            (libc::IPPROTO_ICMPV6, "ICMPV6"),
            (libc::IPPROTO_MPTCP, "MPTCP"),
        ] {
            assert_eq!(protocol(libc::SOCK_STREAM, p), name);
        }
        assert_eq!(
            protocol(libc::SOCK_RAW, 99),
            "RAW",
            "a raw socket of another protocol"
        );
        assert_eq!(protocol(libc::SOCK_DGRAM, 99), "99");
        let state = |s: u8| {
            Socket::from_record(&record(libc::AF_INET, libc::SOCK_STREAM, 6, s)).state_name()
        };
        let names = [
            "UNKNOWN",
            "ESTAB",
            "SYN-SENT",
            "SYN-RECV",
            "FIN-WAIT-1",
            "FIN-WAIT-2",
            "TIME-WAIT",
            "CLOSE",
            "CLOSE-WAIT",
            "LAST-ACK",
            "LISTEN",
            "CLOSING",
            "NEW-SYN-RECV",
            "UNKNOWN",
        ];
        for (s, name) in names.iter().enumerate() {
            assert_eq!(state(s as u8), *name, "state {s}");
        }
    }
}
