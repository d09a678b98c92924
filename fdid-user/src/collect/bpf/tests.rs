use std::hash::Hasher as _;

use fdid_ebpf::siphash::siphash24_u64;

use super::{BpfCollector, BpfError, BpfOptions};
use crate::btf::Btf;

/// The program's hash is standard SipHash-2-4 of the pointer's 8 little-endian bytes.
#[test]
fn the_pointer_hash_is_siphash_2_4() {
    let keys = crate::boot_key::random().unwrap();
    for pointer in [0u64, 1, 0xffff_8880_0123_4567, u64::MAX, keys[0] ^ keys[1]] {
        let mut reference = siphasher::sip::SipHasher24::new_with_keys(keys[0], keys[1]);
        reference.write(&pointer.to_le_bytes());
        assert_eq!(
            siphash24_u64(keys, pointer),
            reference.finish(),
            "pointer {pointer:#x}"
        );
    }
}

/// A struct offset that does not fit the running kernel makes the program fail to load (the
/// verifier checks every load against BTF) rather than read garbage: `task_struct.tgid` is moved
/// past the end of the struct in a copy of the kernel's BTF.
#[test]
fn a_wrong_offset_is_refused_by_the_verifier() {
    if !can_load_bpf() {
        return;
    }
    let real = std::path::Path::new(crate::btf::VMLINUX_BTF);
    let btf = Btf::from_file(real).unwrap();
    let size = btf.struct_size("task_struct").unwrap();
    let at = btf.member_offset_position("task_struct", "tgid").unwrap();
    let mut bytes = btf.bytes().to_vec();
    let past_the_end_bits = (size + 64) * 8;
    bytes[at..at + 4].copy_from_slice(&past_the_end_bits.to_le_bytes());
    let path = std::env::temp_dir().join(format!("fdid-wrong-offset-btf-{}", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let options = BpfOptions {
        btf_path: path.clone(),
        ..BpfOptions::default()
    };
    let result = BpfCollector::load(&options, None);
    let _ = std::fs::remove_file(&path);
    match result {
        Err(BpfError::Verifier { error, .. }) => {
            assert_eq!(error.raw_os_error(), Some(libc::EACCES), "{error}")
        }
        Err(other) => panic!("expected the verifier to refuse the program, got: {other}"),
        Ok(_) => panic!("a load past the end of task_struct was accepted"),
    }
}

/// The socket offsets resolved from BTF read what the socket API knows: the two ends of a
/// socketpair name each other's inode, a bound unix socket its path, both their namespace.
/// (tests/tests/sockets.rs checks every field; this one runs with the library's own tests.)
#[test]
fn sockets_are_read_as_the_socket_api_sees_them() {
    use std::os::{
        fd::AsRawFd as _,
        unix::{fs::MetadataExt as _, net::UnixStream},
    };
    if !can_load_bpf() {
        return;
    }
    let (a, b) = UnixStream::pair().unwrap();
    let path = std::env::temp_dir().join(format!("fdid-lib-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let bound = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let me = std::process::id();
    let mut collector = BpfCollector::load(&BpfOptions::default(), None).unwrap();
    let collection = collector
        .collect(&crate::collect::Target::Pids(vec![me]))
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let socket_of = |fd: i32| {
        let r = collection
            .records
            .iter()
            .find(|r| r.tgid == me && r.fd == fd as u32)
            .unwrap();
        collection.sockets[&r.ino]
    };
    let inode = |s: &UnixStream| {
        std::fs::metadata(format!("/proc/self/fd/{}", s.as_raw_fd()))
            .unwrap()
            .ino()
    };
    let netns = std::fs::metadata("/proc/self/ns/net").unwrap().ino() as u32;
    let (sa, sb) = (socket_of(a.as_raw_fd()), socket_of(b.as_raw_fd()));
    assert_eq!((sa.peer_ino, sb.peer_ino), (inode(&b), inode(&a)));
    assert_eq!(
        (sa.family, sa.netns, sb.netns),
        (libc::AF_UNIX as u16, netns, netns)
    );
    let listening = socket_of(bound.as_raw_fd());
    let wanted = path.as_os_str().as_encoded_bytes();
    assert_eq!(&listening.path[..wanted.len()], wanted);
    assert!(usize::from(listening.path_len) >= wanted.len());
}

#[test]
fn the_verifiers_verdict_is_the_last_line_before_its_statistics() {
    let log = "0: (b7) r0 = 0\n2091: (85) call bpf_probe_read_kernel#113\nR2 min value is negative, either use unsigned or 'var &= const'\nverification time 12703 usec\nstack depth 200+0\nprocessed 3295 insns (limit 1000000) max_states_per_insn 4\n\n";
    assert_eq!(
        super::verdict(log),
        "R2 min value is negative, either use unsigned or 'var &= const'"
    );
    assert_eq!(super::verdict(""), "no log");
}

/// Skips (outside CI) where BPF cannot load.
fn can_load_bpf() -> bool {
    let real = std::path::Path::new(crate::btf::VMLINUX_BTF);
    // SAFETY: geteuid has no preconditions.
    if (!real.exists() || unsafe { libc::geteuid() } != 0) && !crate::in_ci() {
        eprintln!("SKIPPED: needs root and {}", real.display());
        return false;
    }
    true
}

/// aya's stand-in for the kernel BTF names `bpf_iter_task_file` at the id aya itself finds in
/// the real kernel BTF (an off-by-one among the placeholders would attach to another function).
#[test]
fn the_attach_point_stand_in_has_the_kernels_id() {
    let real = std::path::Path::new(crate::btf::VMLINUX_BTF);
    if !real.exists() && !crate::in_ci() {
        eprintln!("SKIPPED: {} is missing", real.display());
        return;
    }
    let ours = Btf::from_file(real).unwrap().func_id("bpf_iter_task_file");
    let kind = aya_obj::btf::BtfKind::Func;
    let aya_view = super::AyaBtf::parse_file(real, aya::Endianness::default()).unwrap();
    let expected = aya_view
        .id_by_type_name_kind("bpf_iter_task_file", kind)
        .unwrap();
    assert_eq!(ours, Some(expected));
    let stand_in = super::attach_point_btf(expected);
    assert_eq!(
        stand_in
            .id_by_type_name_kind("bpf_iter_task_file", kind)
            .unwrap(),
        expected
    );
}

/// The per-boot cache is what the program is loaded with: a cached layout for this boot with a
/// wrong `task_struct.tgid` is refused by the verifier, where parsing the BTF would have worked.
#[test]
fn a_cached_layout_is_used_as_it_is() {
    if !can_load_bpf() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("fdid-cache-used-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = crate::layout_cache::LayoutCache::for_this_boot(&dir).unwrap();
    let btf = Btf::from_file(std::path::Path::new(crate::btf::VMLINUX_BTF)).unwrap();
    let mut layout = crate::offsets::KernelLayout::resolve(&btf).unwrap();
    let options = BpfOptions {
        layout_cache: Some(dir.clone()),
        ..BpfOptions::default()
    };
    cache.store(&layout);
    assert!(
        BpfCollector::load(&options, None).is_ok(),
        "the right layout loads"
    );
    layout.offsets.task_tgid = btf.struct_size("task_struct").unwrap() + 64;
    cache.store(&layout);
    let result = BpfCollector::load(&options, None);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Err(BpfError::Verifier { .. }) => {}
        Err(other) => panic!("expected the verifier to refuse the cached layout, got: {other}"),
        Ok(_) => panic!("the cached layout was not used"),
    }
}

#[test]
fn a_load_without_a_key_directory_gets_a_key_of_its_own() {
    let options = BpfOptions {
        boot_key: None,
        ..Default::default()
    };
    assert_ne!(
        super::hash_key(&options).unwrap(),
        super::hash_key(&options).unwrap()
    );
}
