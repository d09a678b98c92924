//! The BTF reader against hand-built blobs: every kind of member fdid looks up, and the malformed.
use std::collections::HashMap;

use super::*;

/// Builds little-endian BTF from (name, info, size_or_type, extra words) records.
fn blob(types: &[(&str, u32, u32, Vec<u32>)], extra_names: &[&str]) -> Vec<u8> {
    let mut strings = vec![0u8];
    let mut offsets = HashMap::new();
    for name in types.iter().map(|t| t.0).chain(extra_names.iter().copied()) {
        if !name.is_empty() && !offsets.contains_key(name) {
            offsets.insert(name.to_owned(), strings.len() as u32);
            strings.extend_from_slice(name.as_bytes());
            strings.push(0);
        }
    }
    let name_off = |name: &str| if name.is_empty() { 0 } else { offsets[name] };
    let mut type_data = Vec::new();
    for (name, info, size, extra) in types {
        for word in [name_off(name), *info, *size] {
            type_data.extend_from_slice(&word.to_le_bytes());
        }
        for word in extra {
            type_data.extend_from_slice(&word.to_le_bytes());
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&[1, 0]);
    for word in [
        24u32,
        0,
        type_data.len() as u32,
        type_data.len() as u32,
        strings.len() as u32,
    ] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&type_data);
    out.extend_from_slice(&strings);
    out
}

fn info(kind: u32, vlen: u32, kind_flag: bool) -> u32 {
    (u32::from(kind_flag) << 31) | (kind << 24) | vlen
}

/// `struct file { unsigned int f_flags; union { loff_t f_pos; }; unsigned int bits:3; }` and
/// `struct task_struct { struct file *files; }`, member names resolved through the string table.
fn sample() -> Btf {
    let names = ["f_flags", "f_pos", "bits", "files"];
    let mut offsets = HashMap::new();
    let mut at = 1u32;
    // Names are laid out in first-use order: type names first, then member names.
    for name in ["unsigned int", "long", "loff_t", "file", "task_struct"]
        .iter()
        .chain(names.iter())
    {
        offsets.insert(*name, at);
        at += name.len() as u32 + 1;
    }
    let m = |name: &str| offsets[name];
    let types = vec![
        ("unsigned int", info(KIND_INT, 0, false), 4, vec![32]),
        ("long", info(KIND_INT, 0, false), 8, vec![64]),
        ("loff_t", info(KIND_TYPEDEF, 0, false), 2, vec![]),
        ("", info(KIND_UNION, 1, false), 8, vec![m("f_pos"), 3, 0]),
        (
            "file",
            info(KIND_STRUCT, 3, true),
            24,
            vec![m("f_flags"), 1, 0, 0, 4, 64, m("bits"), 1, (3 << 24) | 128],
        ),
        ("", info(KIND_PTR, 0, false), 5, vec![]),
        (
            "task_struct",
            info(KIND_STRUCT, 1, false),
            8,
            vec![m("files"), 6, 0],
        ),
    ];
    Btf::parse(&blob(&types, &names)).expect("sample BTF parses")
}

#[test]
fn finds_plain_members_and_members_of_anonymous_unions() {
    let btf = sample();
    assert_eq!(
        btf.member("file", "f_flags").unwrap(),
        Member {
            offset: 0,
            size: 4,
            kind: MemberKind::Int
        }
    );
    assert_eq!(
        btf.member("file", "f_pos").unwrap(),
        Member {
            offset: 8,
            size: 8,
            kind: MemberKind::Int
        }
    );
    assert_eq!(
        btf.member("task_struct", "files").unwrap(),
        Member {
            offset: 0,
            size: 8,
            kind: MemberKind::Pointer
        }
    );
}

#[test]
fn missing_structs_members_and_bitfields_are_named_errors() {
    let btf = sample();
    assert!(matches!(btf.member("inode", "i_ino"), Err(BtfError::NoStruct(s)) if s == "inode"));
    let error = btf.member("file", "f_count").unwrap_err();
    assert_eq!(
        error.to_string(),
        "BTF struct `file` has no member `f_count`"
    );
    assert!(matches!(
        btf.member("file", "bits"),
        Err(BtfError::Bitfield { .. })
    ));
}

#[test]
fn malformed_data_is_an_error_not_a_panic() {
    assert!(matches!(Btf::parse(b""), Err(BtfError::Malformed(_))));
    assert!(matches!(
        Btf::parse(&[0u8; 64]),
        Err(BtfError::Malformed(_))
    ));
    let mut good = blob(&[("int", info(KIND_INT, 0, false), 4, vec![32])], &[]);
    assert!(Btf::parse(&good).is_ok());
    // Cut inside the type record: the header still claims the full section.
    good.truncate(24 + 8);
    assert!(matches!(Btf::parse(&good), Err(BtfError::Malformed(_))));
}

/// Builds BTF type by type; ids count from 1 in the order of [`Builder::add`].
#[derive(Default)]
struct Builder {
    strings: Vec<u8>,
    names: HashMap<String, u32>,
    types: Vec<u8>,
    count: u32,
}

impl Builder {
    fn new() -> Self {
        Self {
            strings: vec![0],
            ..Self::default()
        }
    }

    fn name(&mut self, name: &str) -> u32 {
        if name.is_empty() {
            return 0;
        }
        if let Some(&offset) = self.names.get(name) {
            return offset;
        }
        let offset = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.names.insert(name.to_owned(), offset);
        offset
    }

    fn add(&mut self, name: &str, info: u32, size_or_type: u32, extra: &[u32]) -> u32 {
        let name = self.name(name);
        for word in [name, info, size_or_type].iter().chain(extra) {
            self.types.extend_from_slice(&word.to_le_bytes());
        }
        self.count += 1;
        self.count
    }

    /// A struct (or union) with (name, type, bit offset) members.
    fn composite(&mut self, kind: u32, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let mut extra = Vec::new();
        for &(member, ty, bits) in members {
            extra.extend([self.name(member), ty, bits]);
        }
        self.add(name, info(kind, members.len() as u32, false), size, &extra)
    }

    fn build(self) -> Btf {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        let (types, strings) = (self.types.len() as u32, self.strings.len() as u32);
        for word in [24u32, 0, types, types, strings] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        Btf::parse(&out).expect("built BTF parses")
    }
}

#[test]
fn a_header_with_empty_sections_is_btf_without_types() {
    let btf = Builder::new().build();
    assert!(!btf.has_struct("file"));
    assert_eq!(btf.func_id("bpf_iter_task_file"), None);
    let mut header = Vec::new();
    header.extend_from_slice(&MAGIC.to_le_bytes());
    header.extend_from_slice(&[1, 0]);
    for word in [24u32, 0, 0, 0, 0] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    assert_eq!(header.len(), 24);
    assert!(
        Btf::parse(&header).is_ok(),
        "24 bytes: a header and nothing else"
    );
}

/// `struct holder { int numbers[3]; enum mode state; }`, preceded by an empty `struct holder` (as a
/// declaration may appear), an `enum mode { A }`, and the union `bpf_iter_link_info { int task; }`.
fn arrays_and_enums() -> Btf {
    let mut b = Builder::new();
    let int = b.add("int", info(KIND_INT, 0, false), 4, &[32]);
    let array = b.add("", info(KIND_ARRAY, 0, false), 0, &[int, int, 3]);
    let a = b.name("A");
    let mode = b.add("mode", info(KIND_ENUM, 1, false), 4, &[a, 0]);
    b.composite(KIND_STRUCT, "holder", 0, &[]);
    b.composite(
        KIND_STRUCT,
        "holder",
        16,
        &[("numbers", array, 0), ("state", mode, 96)],
    );
    b.composite(KIND_UNION, "bpf_iter_link_info", 4, &[("task", int, 0)]);
    b.build()
}

#[test]
fn array_and_enum_members_have_their_sizes_and_kinds() {
    let btf = arrays_and_enums();
    assert_eq!(
        btf.member("holder", "numbers").unwrap(),
        Member {
            offset: 0,
            size: 12,
            kind: MemberKind::Array
        }
    );
    assert_eq!(
        btf.member("holder", "state").unwrap(),
        Member {
            offset: 12,
            size: 4,
            kind: MemberKind::Enum
        }
    );
    assert_eq!(btf.struct_size("holder").unwrap(), 16, "the complete one");
}

#[test]
fn structs_are_found_by_name_and_other_kinds_are_not_structs() {
    let btf = arrays_and_enums();
    assert!(btf.has_struct("holder"));
    assert!(!btf.has_struct("mode"), "an enum");
    assert!(!btf.has_struct("bpf_iter_link_info"), "a union");
    assert!(!btf.has_struct("file"));
    assert!(matches!(
        btf.struct_size("file"),
        Err(BtfError::NoStruct(_))
    ));
}

#[test]
fn a_union_or_struct_is_asked_for_a_member_by_both_names() {
    let btf = arrays_and_enums();
    assert!(btf.composite_has_member("bpf_iter_link_info", "task"));
    assert!(btf.composite_has_member("holder", "numbers"));
    assert!(!btf.composite_has_member("bpf_iter_link_info", "pid"));
    assert!(
        !btf.composite_has_member("bpf_iter_link_info", "numbers"),
        "another composite's member"
    );
    assert!(
        !btf.composite_has_member("mode", "A"),
        "an enum's value is no member"
    );
}

/// `struct outer` whose member `leaf` sits `levels` anonymous structs deep, and `struct cyclic`
/// whose anonymous member is itself (a loop no real BTF has, which must not hang the reader).
fn nested(levels: u32) -> Btf {
    let mut b = Builder::new();
    let int = b.add("int", info(KIND_INT, 0, false), 4, &[32]);
    let mut inner = b.composite(KIND_STRUCT, "", 4, &[("leaf", int, 0)]);
    for _ in 1..levels {
        inner = b.composite(KIND_STRUCT, "", 4, &[("", inner, 0)]);
    }
    b.composite(
        KIND_STRUCT,
        "outer",
        8,
        &[("first", int, 0), ("", inner, 32)],
    );
    let next = b.count + 1;
    b.composite(KIND_STRUCT, "cyclic", 4, &[("", next, 0)]);
    b.build()
}

#[test]
fn members_of_anonymous_members_are_found_eight_levels_deep_and_no_deeper() {
    let found = nested(8).member("outer", "leaf").unwrap();
    assert_eq!((found.offset, found.size), (4, 4));
    assert!(matches!(
        nested(9).member("outer", "leaf"),
        Err(BtfError::NoMember { .. })
    ));
    assert!(matches!(
        nested(1).member("cyclic", "leaf"),
        Err(BtfError::NoMember { .. })
    ));
}
