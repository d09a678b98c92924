//! What a socket is, read for an fd whose inode lives on sockfs: from the file's `struct socket` to its
//! `struct sock`, every read a `bpf_probe_read_kernel` at an address computed from BTF offsets (the
//! chain starts at `file->private_data`, a `void *` the verifier knows only as a number).

use core::ffi::c_void;

use fdid_ebpf::{SOCKET_PATH_IS_PEERS, SocketRecord};

use super::{read_into, read_u32, read_word};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `sizeof(sa_family_t)`, counted in `unix_address.len`.
const SUN_FAMILY_SIZE: u32 = 2;
/// `sizeof(sockaddr_un.sun_path)`.
const SUN_PATH_MAX: u32 = 108;

#[inline(always)]
fn read_u16(address: u64) -> u16 {
    let mut value: u16 = 0;
    read_into((&raw mut value).cast(), 2, address);
    value
}

#[inline(always)]
fn read_u8(address: u64) -> u8 {
    let mut value: u8 = 0;
    read_into(&raw mut value, 1, address);
    value
}

#[inline(always)]
fn word(address: u64) -> u64 {
    read_word(address as *const c_void).unwrap_or(0)
}

/// Fills `out` from the `struct socket` at `socket`; false when it has no `struct sock` (being torn
/// down), in which case the fd is written without its socket.
#[inline(always)]
pub(super) fn read_socket(socket: u64, out: &mut SocketRecord) -> bool {
    let sk = word(socket + u64::from(config!(offsets.socket.socket_sk)));
    if sk == 0 {
        return false;
    }
    out.family = read_u16(sk + u64::from(config!(offsets.socket.family)));
    out.state = read_u8(sk + u64::from(config!(offsets.socket.state)));
    out.sock_type = read_u16(sk + u64::from(config!(offsets.socket.sk_type)));
    out.protocol = read_u16(sk + u64::from(config!(offsets.socket.sk_protocol)));
    let net = word(sk + u64::from(config!(offsets.socket.net)));
    if net != 0 {
        out.netns = read_u32((net + u64::from(config!(offsets.socket.net_inum))) as *const c_void)
            .unwrap_or(0);
    }
    match out.family {
        AF_INET | AF_INET6 => {
            out.local_port = read_u16(sk + u64::from(config!(offsets.socket.num)));
            out.remote_port_be = read_u16(sk + u64::from(config!(offsets.socket.dport)));
            let (local, remote, len) = if out.family == AF_INET {
                (
                    config!(offsets.socket.rcv_saddr),
                    config!(offsets.socket.daddr),
                    4,
                )
            } else {
                (
                    config!(offsets.socket.v6_rcv_saddr),
                    config!(offsets.socket.v6_daddr),
                    16,
                )
            };
            read_into(out.local_addr.as_mut_ptr(), len, sk + u64::from(local));
            read_into(out.remote_addr.as_mut_ptr(), len, sk + u64::from(remote));
        }
        AF_UNIX => {
            let unix_addr = u64::from(config!(offsets.socket.unix_addr));
            let peer = word(sk + u64::from(config!(offsets.socket.unix_peer)));
            if peer != 0 {
                let peer_socket = word(peer + u64::from(config!(offsets.socket.sk_socket)));
                if peer_socket != 0 {
                    out.peer_ino =
                        word(peer_socket + u64::from(config!(offsets.socket.socket_ino)));
                }
            }
            let own = word(sk + unix_addr);
            if own != 0 {
                read_path(own, out);
            } else if peer != 0 {
                let theirs = word(peer + unix_addr);
                if theirs != 0 && read_path(theirs, out) {
                    out.flags |= SOCKET_PATH_IS_PEERS;
                }
            }
        }
        _ => {}
    }
    true
}

/// Copies a `struct unix_address`'s path (no more than its length says) into `out`.
#[inline(always)]
fn read_path(address: u64, out: &mut SocketRecord) -> bool {
    let Some(len) =
        read_u32((address + u64::from(config!(offsets.socket.unix_address_len))) as *const c_void)
    else {
        return false;
    };
    // An unnamed socket's length is the family alone. In 64 bits, so that the register passed as the
    // size is the one checked (the verifier needs its bounds).
    let len = u64::from(len).wrapping_sub(u64::from(SUN_FAMILY_SIZE));
    if len == 0 || len > u64::from(SUN_PATH_MAX) {
        return false;
    }
    let path = address + u64::from(config!(offsets.socket.unix_address_path));
    // Kernels before 5.11 do not carry a check's bounds over to a copy of the register, and the
    // compiler may pass a copy: a mask on a value it cannot see through (read back from the stack)
    // puts the bound on the register passed. A no-op: len ≤ 108 < 128.
    // SAFETY: reading a local.
    let len = unsafe { core::ptr::read_volatile(&len) } & 0x7f;
    if !read_into(out.path.as_mut_ptr(), len as u32, path) {
        return false;
    }
    out.path_len = len as u16;
    true
}
