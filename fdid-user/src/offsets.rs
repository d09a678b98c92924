//! Resolves the kernel struct members the iterator reads from the running kernel's BTF.
//!
//! Nothing is compiled in: each member is looked up by name, its size and kind are checked against what
//! the program loads, and a missing member is an error that names it.

use fdid_ebpf::{FieldOffsets, SocketOffsets, watch::WatchOffsets};

use crate::btf::{Btf, BtfError, MemberKind};

/// Offsets for the program plus what differs between kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    pub offsets: FieldOffsets,
    /// Added (wrapping) to the raw reference count so that the record holds the number of references
    /// other than the iterator's own (it holds one while the program runs): 0 for `file.f_ref`
    /// (file_ref_t stores count − 1, 6.13+), −1 for `file.f_count` (atomic_long_t, up to 6.12).
    pub refs_bias: u64,
    /// Which member holds the reference count.
    pub refs_member: &'static str,
    /// Whether the iterator link takes a pid filter (`bpf_iter_link_info.task`, 6.1+).
    pub kernel_pid_filter: bool,
    /// BTF type id of `bpf_iter_task_file`, the function the program attaches to.
    pub task_file_func: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error(
        "BTF member `{strukt}.{member}` is {found_size} bytes ({found_kind:?}), fdid reads {size} bytes ({kind:?})"
    )]
    Shape {
        strukt: &'static str,
        member: &'static str,
        size: u32,
        kind: MemberKind,
        found_size: u32,
        found_kind: MemberKind,
    },
    #[error("BTF member `{strukt}.{member}` is at offset {offset}, fdid needs it first")]
    NotFirst {
        strukt: &'static str,
        member: &'static str,
        offset: u32,
    },
    #[error("BTF struct `file` has neither `f_ref` nor `f_count`")]
    NoRefCount,
    #[error("this kernel has no task_file BPF iterator (bpf_iter_task_file missing from BTF)")]
    NoTaskFileIterator,
}

fn member(
    btf: &Btf,
    strukt: &'static str,
    member: &'static str,
    size: u32,
    kinds: &[MemberKind],
) -> Result<u32, LayoutError> {
    let found = btf.member(strukt, member)?;
    if found.size != size || !kinds.contains(&found.kind) {
        return Err(LayoutError::Shape {
            strukt,
            member,
            size,
            kind: kinds[0],
            found_size: found.size,
            found_kind: found.kind,
        });
    }
    Ok(found.offset)
}

impl KernelLayout {
    pub fn resolve(btf: &Btf) -> Result<Self, LayoutError> {
        use MemberKind::{Int, Pointer, Struct, Union};
        let task_file_func = btf
            .func_id("bpf_iter_task_file")
            .ok_or(LayoutError::NoTaskFileIterator)?;
        let int = &[Int][..];
        let ptr = &[Pointer][..];
        let (file_refs, refs_bias, refs_member) = match btf.member("file", "f_ref") {
            Ok(_) => (
                member(btf, "file", "f_ref", 8, &[Struct, Union])?,
                0,
                "f_ref",
            ),
            Err(BtfError::NoMember { .. }) => match btf.member("file", "f_count") {
                Ok(_) => (
                    member(btf, "file", "f_count", 8, &[Struct, Union])?,
                    u64::MAX,
                    "f_count",
                ),
                Err(BtfError::NoMember { .. }) => return Err(LayoutError::NoRefCount),
                Err(other) => return Err(other.into()),
            },
            Err(other) => return Err(other.into()),
        };
        let offsets = FieldOffsets {
            task_tgid: member(btf, "task_struct", "tgid", 4, int)?,
            task_pid: member(btf, "task_struct", "pid", 4, int)?,
            task_files: member(btf, "task_struct", "files", 8, ptr)?,
            file_inode: member(btf, "file", "f_inode", 8, ptr)?,
            file_pos: member(btf, "file", "f_pos", 8, int)?,
            file_flags: member(btf, "file", "f_flags", 4, int)?,
            file_refs,
            inode_sb: member(btf, "inode", "i_sb", 8, ptr)?,
            inode_ino: member(btf, "inode", "i_ino", 8, int)?,
            inode_mode: member(btf, "inode", "i_mode", 2, int)?,
            sb_dev: member(btf, "super_block", "s_dev", 4, int)?,
            task_group_leader: member(btf, "task_struct", "group_leader", 8, ptr)?,
            task_thread_pid: member(btf, "task_struct", "thread_pid", 8, ptr)?,
            pid_level: member(btf, "pid", "level", 4, int)?,
            // A flexible array: its BTF size is 0 (or one element on old kernels); only the offset
            // matters.
            pid_numbers: btf.member("pid", "numbers")?.offset,
            upid_nr: member(btf, "upid", "nr", 4, int)?,
            upid_size: btf.struct_size("upid")?,
            sb_magic: member(btf, "super_block", "s_magic", 8, int)?,
            socket: socket_offsets(btf).unwrap_or_else(|error| {
                log::debug!("sockets will not be described: {error}");
                SocketOffsets::ZERO
            }),
            watch: watch_offsets(btf).unwrap_or_else(|error| {
                log::debug!("fdid watch cannot follow fds on this kernel: {error}");
                WatchOffsets::ZERO
            }),
        };
        Ok(Self {
            offsets,
            refs_bias,
            refs_member,
            kernel_pid_filter: btf.composite_has_member("bpf_iter_link_info", "task"),
            task_file_func,
        })
    }
}

/// Where the program finds a socket's identity (see [`SocketOffsets`]).
fn socket_offsets(btf: &Btf) -> Result<SocketOffsets, LayoutError> {
    use MemberKind::{Array, Int, Pointer, Struct};
    let (int, ptr, strukt) = (&[Int][..], &[Pointer][..], &[Struct][..]);
    // The program adds these to a `struct sock` pointer: sock begins with sock_common, unix_sock and
    // socket_alloc with sock and socket.
    for (strukt, member) in [
        ("sock", "__sk_common"),
        ("unix_sock", "sk"),
        ("socket_alloc", "socket"),
    ] {
        let offset = btf.member(strukt, member)?.offset;
        if offset != 0 {
            return Err(LayoutError::NotFirst {
                strukt,
                member,
                offset,
            });
        }
    }
    let common = |name: &'static str, size: u32, kinds: &[MemberKind]| {
        member(btf, "sock_common", name, size, kinds)
    };
    // possible_net_t is a struct holding one `struct net *`.
    let net = common("skc_net", 8, strukt)?;
    Ok(SocketOffsets {
        valid: 1,
        file_private_data: member(btf, "file", "private_data", 8, ptr)?,
        socket_sk: member(btf, "socket", "sk", 8, ptr)?,
        family: common("skc_family", 2, int)?,
        state: common("skc_state", 1, int)?,
        num: common("skc_num", 2, int)?,
        dport: common("skc_dport", 2, int)?,
        rcv_saddr: common("skc_rcv_saddr", 4, int)?,
        daddr: common("skc_daddr", 4, int)?,
        v6_rcv_saddr: common("skc_v6_rcv_saddr", 16, strukt)?,
        v6_daddr: common("skc_v6_daddr", 16, strukt)?,
        net,
        // ns_common's size differs between kernels: only its place matters.
        net_inum: btf.member("net", "ns")?.offset + member(btf, "ns_common", "inum", 4, int)?,
        sk_type: member(btf, "sock", "sk_type", 2, int)?,
        sk_protocol: member(btf, "sock", "sk_protocol", 2, int)?,
        sk_socket: member(btf, "sock", "sk_socket", 8, ptr)?,
        socket_ino: btf.member("socket_alloc", "vfs_inode")?.offset
            + member(btf, "inode", "i_ino", 8, int)?,
        unix_addr: member(btf, "unix_sock", "addr", 8, ptr)?,
        unix_peer: member(btf, "unix_sock", "peer", 8, ptr)?,
        unix_address_len: member(btf, "unix_address", "len", 4, int)?,
        // `name` is a flexible array of sockaddr_un: only its place matters.
        unix_address_path: btf.member("unix_address", "name")?.offset
            + member(btf, "sockaddr_un", "sun_path", 108, &[Array])?,
        _pad: 0,
    })
}

/// What `fdid watch`'s tracing programs read (see [`WatchOffsets`]).
fn watch_offsets(btf: &Btf) -> Result<WatchOffsets, LayoutError> {
    use MemberKind::{Int, Pointer, Struct};
    let (int, ptr, strukt) = (&[Int][..], &[Pointer][..], &[Struct][..]);
    Ok(WatchOffsets {
        valid: 1,
        files_fdt: member(btf, "files_struct", "fdt", 8, ptr)?,
        fdt_max_fds: member(btf, "fdtable", "max_fds", 4, int)?,
        fdt_fd: member(btf, "fdtable", "fd", 8, ptr)?,
        fdt_open_fds: member(btf, "fdtable", "open_fds", 8, ptr)?,
        task_signal: member(btf, "task_struct", "signal", 8, ptr)?,
        // atomic_t: a struct holding one int.
        signal_live: member(btf, "signal_struct", "live", 4, strukt)?,
        file_private_data: member(btf, "file", "private_data", 8, ptr)?,
        inode_private: member(btf, "inode", "i_private", 8, ptr)?,
        task_comm: member(btf, "task_struct", "comm", 16, &[MemberKind::Array])?,
        current_task_btf: u32::from(btf.func_id("bpf_get_current_task_btf").is_some()),
        ..rdonly_casts(btf, syscall_registers(btf)?)
    })
}

/// `offsets` with the `bpf_rdonly_cast` kfunc's id and the ids of the types the programs cast
/// to, where the kernel has them all (6.2+); else as they were (probe reads).
fn rdonly_casts(btf: &Btf, offsets: WatchOffsets) -> WatchOffsets {
    // `struct timespec64` begins with `time64_t tv_sec`: an 8-byte integer at offset 0.
    let word = btf
        .member("timespec64", "tv_sec")
        .is_ok_and(|m| m.offset == 0 && m.size == 8 && m.kind == MemberKind::Int);
    match (
        btf.func_id("bpf_rdonly_cast"),
        btf.struct_id("file"),
        btf.struct_id("timespec64").filter(|_| word),
    ) {
        (Some(rdonly_cast_func), Some(file_btf_id), Some(word_btf_id)) => WatchOffsets {
            rdonly_cast_func,
            file_btf_id,
            word_btf_id,
            ..offsets
        },
        _ => offsets,
    }
}

/// Where a syscall's arguments and number are in `struct pt_regs`, and how a compat (32-bit) task
/// is told apart, on the architecture fdid is built for.
#[cfg(target_arch = "x86_64")]
fn syscall_registers(btf: &Btf) -> Result<WatchOffsets, LayoutError> {
    let int = &[MemberKind::Int][..];
    let reg = |name: &'static str| member(btf, "pt_regs", name, 8, int);
    /// `TS_COMPAT` in `thread_info.status` (arch/x86/include/asm/thread_info.h): a 32-bit
    /// syscall is running.
    const TS_COMPAT: u32 = 0x0002;
    Ok(WatchOffsets {
        regs_args: [
            reg("di")?,
            reg("si")?,
            reg("dx")?,
            reg("r10")?,
            reg("r8")?,
            reg("r9")?,
        ],
        regs_nr: reg("orig_ax")?,
        task_compat: btf.member("task_struct", "thread_info")?.offset
            + member(btf, "thread_info", "status", 4, int)?,
        compat_mask: TS_COMPAT,
        ..WatchOffsets::ZERO
    })
}

#[cfg(target_arch = "aarch64")]
fn syscall_registers(btf: &Btf) -> Result<WatchOffsets, LayoutError> {
    let int = &[MemberKind::Int][..];
    // `regs[0]` is the return value by the exit; `orig_x0` keeps the first argument.
    let regs = member(btf, "pt_regs", "regs", 31 * 8, &[MemberKind::Array])?;
    /// `TIF_32BIT` in `thread_info.flags` (arch/arm64/include/asm/thread_info.h): an AArch32 task.
    const TIF_32BIT: u32 = 22;
    Ok(WatchOffsets {
        regs_args: [
            member(btf, "pt_regs", "orig_x0", 8, int)?,
            regs + 8,
            regs + 16,
            regs + 24,
            regs + 32,
            regs + 40,
        ],
        regs_nr: member(btf, "pt_regs", "syscallno", 4, int)?,
        task_compat: btf.member("task_struct", "thread_info")?.offset
            + member(btf, "thread_info", "flags", 8, int)?,
        compat_mask: 1 << TIF_32BIT,
        ..WatchOffsets::ZERO
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The running kernel's BTF; `None` (the test skipped, said on stderr) where it has none,
    /// outside CI.
    fn running_kernel_btf() -> Option<Btf> {
        let path = std::path::Path::new(crate::btf::VMLINUX_BTF);
        if !path.exists() && !crate::in_ci() {
            eprintln!("SKIPPED: {} is missing", path.display());
            return None;
        }
        Some(Btf::from_file(path).unwrap())
    }

    #[test]
    fn the_running_kernel_has_every_member_fdid_reads() {
        let Some(btf) = running_kernel_btf() else {
            return;
        };
        let layout = KernelLayout::resolve(&btf).unwrap();
        let offsets = layout.offsets;
        assert_ne!(offsets.task_tgid, offsets.task_pid);
        assert_ne!(offsets.file_pos, offsets.file_flags);
        // 6.13 renamed the count (f_count -> f_ref, stored as count - 1).
        assert!(["f_ref", "f_count"].contains(&layout.refs_member));
        assert_eq!(offsets.socket.valid, 1, "sockets are described");
        assert_eq!(
            offsets.watch.valid, 1,
            "fdid watch follows exec, exit and sends"
        );
        assert_ne!(offsets.watch.fdt_fd, offsets.watch.fdt_open_fds);
        // Six distinct argument registers, none of them the syscall number's.
        let args = offsets.watch.regs_args;
        for (i, a) in args.iter().enumerate() {
            assert!(!args[..i].contains(a), "argument {i} shares a register");
            assert_ne!(*a, offsets.watch.regs_nr);
        }
        assert_ne!(offsets.watch.compat_mask, 0);
    }

    #[test]
    fn where_the_kernel_has_bpf_rdonly_cast_files_are_cast_to_struct_file() {
        let Some(btf) = running_kernel_btf() else {
            return;
        };
        let watch = KernelLayout::resolve(&btf).unwrap().offsets.watch;
        let Some(func) = btf.func_id("bpf_rdonly_cast") else {
            assert_eq!(
                (watch.rdonly_cast_func, watch.file_btf_id, watch.word_btf_id),
                (0, 0, 0),
                "no kfunc: probe reads"
            );
            return;
        };
        assert_eq!(watch.rdonly_cast_func, func);
        assert_eq!(Some(watch.file_btf_id), btf.struct_id("file"));
        // A struct whose first member is read as an 8-byte number.
        assert_eq!(Some(watch.word_btf_id), btf.struct_id("timespec64"));
    }

    #[test]
    fn a_member_of_another_size_or_kind_is_a_shape_error() {
        let Some(btf) = running_kernel_btf() else {
            return;
        };
        let int = &[MemberKind::Int][..];
        assert!(member(&btf, "file", "f_flags", 4, int).is_ok());
        for (size, kinds) in [(8, int), (4, &[MemberKind::Pointer][..])] {
            let error = member(&btf, "file", "f_flags", size, kinds).unwrap_err();
            assert!(
                matches!(
                    error,
                    LayoutError::Shape {
                        found_size: 4,
                        found_kind: MemberKind::Int,
                        ..
                    }
                ),
                "{error}"
            );
        }
    }
}
