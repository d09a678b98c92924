//! The other ends: for each description of a survey, the descriptions at the other end of the same
//! pipe or FIFO, of a connected unix socket, or of a TCP/UDP connection whose both ends are here.
//!
//! - A pipe's (or FIFO's) descriptions share its inode: readers are the other end of writers, a
//!   description open for both is the other end of every other one.
//! - A unix socket names its peer's inode (read in the kernel): the description of that socket.
//! - A connected inet socket is the other end of the socket in the same network namespace whose local
//!   and remote address and port are its remote and local ones (same protocol).

use std::collections::{HashMap, HashSet};

use crate::{
    record::{FdRecord, Sockets},
    socket::Socket,
};

/// For each description (by its first fd's record, in `firsts`), the indices of its other ends among
/// `firsts`, in order.
pub fn link(firsts: &[&FdRecord], sockets: &Sockets) -> Vec<Vec<usize>> {
    let mut ends = vec![Vec::new(); firsts.len()];
    let mut pipes: HashMap<(u32, u64), Vec<usize>> = HashMap::new();
    let mut by_socket_ino: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut by_address: HashMap<InetKey, Vec<usize>> = HashMap::new();
    let mut described: Vec<(usize, Socket)> = Vec::new();
    for (i, r) in firsts.iter().enumerate() {
        match u32::from(r.mode) & libc::S_IFMT {
            libc::S_IFIFO => pipes.entry((r.dev, r.ino)).or_default().push(i),
            libc::S_IFSOCK => {
                let Some(socket) = sockets.get(&r.ino).map(Socket::from_record) else {
                    continue;
                };
                by_socket_ino.entry(r.ino).or_default().push(i);
                if let Some(key) = inet_key(&socket, false) {
                    by_address.entry(key).or_default().push(i);
                }
                described.push((i, socket));
            }
            _ => {}
        }
    }
    for group in pipes.values() {
        for &a in group {
            let (reads_a, writes_a) = direction(firsts[a].flags);
            ends[a] = group
                .iter()
                .copied()
                .filter(|&b| b != a)
                .filter(|&b| {
                    let (reads_b, writes_b) = direction(firsts[b].flags);
                    (reads_a && writes_b) || (writes_a && reads_b)
                })
                .collect();
        }
    }
    for (i, socket) in &described {
        let others = match socket.peer_ino {
            Some(peer) => by_socket_ino.get(&peer),
            None => inet_key(socket, true).and_then(|key| by_address.get(&key)),
        };
        ends[*i] = others
            .into_iter()
            .flatten()
            .copied()
            .filter(|other| other != i)
            .collect();
    }
    ends
}

/// The (dev, ino) of every inode at the other end of `records`' pipes and sockets: what a scoped
/// survey keeps of a whole-system walk besides the scope's own descriptions, so that their other ends
/// are found too.
pub fn other_end_inodes<'a>(
    records: impl Iterator<Item = &'a FdRecord>,
    sockets: &Sockets,
) -> HashSet<(u32, u64)> {
    let mut by_address: Option<HashMap<InetKey, u64>> = None;
    let mut inodes = HashSet::new();
    for r in records {
        match u32::from(r.mode) & libc::S_IFMT {
            libc::S_IFIFO => {
                inodes.insert((r.dev, r.ino));
            }
            libc::S_IFSOCK => {
                let Some(socket) = sockets.get(&r.ino).map(Socket::from_record) else {
                    continue;
                };
                if let Some(peer) = socket.peer_ino {
                    inodes.insert((r.dev, peer));
                } else if let Some(key) = inet_key(&socket, true) {
                    let by_address = by_address.get_or_insert_with(|| {
                        sockets
                            .iter()
                            .filter_map(|(&ino, s)| {
                                Some((inet_key(&Socket::from_record(s), false)?, ino))
                            })
                            .collect()
                    });
                    if let Some(&ino) = by_address.get(&key) {
                        inodes.insert((r.dev, ino));
                    }
                }
            }
            _ => {}
        }
    }
    inodes
}

/// (reads, writes) of open flags.
fn direction(flags: u32) -> (bool, bool) {
    match flags as i32 & libc::O_ACCMODE {
        libc::O_RDONLY => (true, false),
        libc::O_WRONLY => (false, true),
        _ => (true, true),
    }
}

/// A connected inet socket's (netns, protocol, local, remote) — or, `swapped`, the key its other end
/// has.
type InetKey = (u32, u16, std::net::SocketAddr, std::net::SocketAddr);

fn inet_key(socket: &Socket, swapped: bool) -> Option<InetKey> {
    let (local, remote) = (socket.local?, socket.remote?);
    let (local, remote) = if swapped {
        (remote, local)
    } else {
        (local, remote)
    };
    Some((socket.netns, socket.protocol, local, remote))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SocketRecord;

    fn file(mode: u32, ino: u64, flags: i32) -> FdRecord {
        FdRecord {
            mode: mode as u16,
            ino,
            dev: 15,
            flags: flags as u32,
            ..FdRecord::default()
        }
    }

    fn link_of(records: &[FdRecord], sockets: &Sockets) -> Vec<Vec<usize>> {
        let firsts: Vec<&FdRecord> = records.iter().collect();
        link(&firsts, sockets)
    }

    #[test]
    fn a_pipes_readers_and_writers_are_each_others_other_end() {
        let fifo = libc::S_IFIFO | 0o600;
        let records = [
            file(fifo, 5, libc::O_RDONLY),
            file(fifo, 5, libc::O_WRONLY),
            file(fifo, 5, libc::O_WRONLY | libc::O_NONBLOCK),
            file(fifo, 6, libc::O_WRONLY),
            file(fifo, 5, libc::O_RDWR),
            file(libc::S_IFREG | 0o600, 5, libc::O_RDONLY),
            file(fifo, 5, libc::O_RDONLY | libc::O_NONBLOCK),
        ];
        let ends = link_of(&records, &Sockets::default());
        assert_eq!(
            ends[0],
            vec![1, 2, 4],
            "a reader: every writer, not the other reader"
        );
        assert_eq!(
            ends[1],
            vec![0, 4, 6],
            "a writer: the readers, not the other writer"
        );
        assert_eq!(ends[3], Vec::<usize>::new(), "another pipe's writer, alone");
        assert_eq!(ends[4], vec![0, 1, 2, 6], "open for both: every other");
        assert_eq!(ends[5], Vec::<usize>::new(), "not a pipe");
        assert_eq!(ends[6], vec![1, 2, 4]);
    }

    fn socket(family: i32, peer_ino: u64) -> SocketRecord {
        SocketRecord {
            family: family as u16,
            sock_type: libc::SOCK_STREAM as u16,
            state: 1,
            peer_ino,
            netns: 4026531840,
            ..SocketRecord::default()
        }
    }

    #[test]
    fn a_unix_socket_is_linked_to_its_peers_description() {
        let sock = libc::S_IFSOCK | 0o777;
        let records = [
            file(sock, 100, libc::O_RDWR),
            file(sock, 101, libc::O_RDWR),
            file(sock, 102, libc::O_RDWR),
        ];
        let sockets = Sockets::from_iter([
            (100, socket(libc::AF_UNIX, 101)),
            (101, socket(libc::AF_UNIX, 100)),
            // Its peer is not in the survey.
            (102, socket(libc::AF_UNIX, 999)),
        ]);
        assert_eq!(link_of(&records, &sockets), vec![vec![1], vec![0], vec![]]);
    }

    #[test]
    fn a_loopback_connections_two_sockets_are_linked_by_their_addresses() {
        let inet = |local_port: u16, remote_port: u16, netns: u32| {
            let mut s = socket(libc::AF_INET, 0);
            s.protocol = libc::IPPROTO_TCP as u16;
            s.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
            s.remote_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
            s.local_port = local_port;
            s.remote_port_be = remote_port.to_be();
            s.netns = netns;
            s
        };
        let sock = libc::S_IFSOCK | 0o777;
        let records: Vec<FdRecord> = (0..5).map(|i| file(sock, 200 + i, libc::O_RDWR)).collect();
        let sockets = Sockets::from_iter([
            (200, inet(40000, 8080, 1)),
            (201, inet(8080, 40000, 1)),
            // The same addresses in another network namespace: another connection.
            (202, inet(8080, 40000, 2)),
            // A listener: no remote end.
            (203, inet(8080, 0, 1)),
            (204, inet(40001, 8080, 1)),
        ]);
        assert_eq!(
            link_of(&records, &sockets),
            vec![vec![1], vec![0], vec![], vec![], vec![]]
        );
    }

    #[test]
    fn the_other_ends_inodes_of_pipes_unix_and_inet_sockets_are_named() {
        let sock = libc::S_IFSOCK | 0o777;
        let mut inet = socket(libc::AF_INET, 0);
        inet.protocol = libc::IPPROTO_TCP as u16;
        inet.local_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        inet.remote_addr[..4].copy_from_slice(&[127, 0, 0, 1]);
        inet.local_port = 40000;
        inet.remote_port_be = 8080u16.to_be();
        let mut accepted = inet;
        accepted.local_port = 8080;
        accepted.remote_port_be = 40000u16.to_be();
        let sockets = Sockets::from_iter([
            (100, socket(libc::AF_UNIX, 101)),
            (200, inet),
            (201, accepted),
        ]);
        let scope = [
            file(libc::S_IFIFO | 0o600, 5, libc::O_RDONLY),
            file(sock, 100, libc::O_RDWR),
            file(sock, 200, libc::O_RDWR),
            file(libc::S_IFREG | 0o600, 6, libc::O_RDONLY),
        ];
        let found = other_end_inodes(scope.iter(), &sockets);
        assert_eq!(found, HashSet::from([(15, 5), (15, 101), (15, 201)]));
    }
}
