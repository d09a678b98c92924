//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): just enough to find struct members by
//! name, through anonymous structs and unions, with their byte offset and size.
//!
//! aya's own `Btf` keeps member lookup private, so fdid parses the type section itself. Format:
//! `include/uapi/linux/btf.h` (header, then `struct btf_type` records each followed by kind-specific data,
//! then a string table).

use std::path::Path;

/// Default location of the running kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read BTF from {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("BTF has no struct `{0}`")]
    NoStruct(String),
    #[error("BTF struct `{strukt}` has no member `{member}`")]
    NoMember { strukt: String, member: String },
    #[error("BTF member `{strukt}.{member}` is a bitfield, not a plain field")]
    Bitfield { strukt: String, member: String },
}

const MAGIC: u16 = 0xeb9f;

// Type kinds (BTF_KIND_*).
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// What a member's type is, after typedefs and qualifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    Int,
    Pointer,
    Struct,
    Union,
    Enum,
    Array,
    Other,
}

/// A struct member found by [`Btf::member`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// Byte offset from the start of the outer struct (anonymous containers included).
    pub offset: u32,
    /// Size in bytes of the member's type.
    pub size: u32,
    pub kind: MemberKind,
}

#[derive(Clone, Debug)]
struct RawMember {
    name: u32,
    type_id: u32,
    /// Bit offset, and bitfield size (0 for a plain member).
    bit_offset: u32,
    bitfield_size: u32,
}

/// One type record: its fixed part, and where its kind-specific data starts in the type section
/// (members and array data are decoded from there when asked for, so parsing allocates nothing per
/// type).
#[derive(Clone, Copy, Debug)]
struct Type {
    kind: u32,
    kind_flag: bool,
    vlen: u32,
    name: u32,
    /// `size` for sized kinds, `type` for referencing kinds.
    size_or_type: u32,
    extra: u32,
}

/// Parsed BTF types (ids start at 1; index 0 is `void`).
pub struct Btf {
    types: Vec<Type>,
    /// The whole BTF blob; the type section and the string table are ranges of it.
    data: Vec<u8>,
    type_section: std::ops::Range<usize>,
    string_section: std::ops::Range<usize>,
    /// Complete structs by name.
    structs_by_name: rustc_hash::FxHashMap<Box<str>, u32>,
}

fn word(data: &[u8], at: usize) -> Result<u32, BtfError> {
    data.get(at..at + 4)
        .map(|bytes| u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
        .ok_or(BtfError::Malformed("type section ends inside a record"))
}

impl Btf {
    /// Reads and parses BTF from a file such as [`VMLINUX_BTF`].
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|error| BtfError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Self::parse_owned(data)
    }

    /// Parses raw little-endian BTF.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        Self::parse_owned(data.to_vec())
    }

    /// Parses raw little-endian BTF, keeping the buffer.
    pub fn parse_owned(data: Vec<u8>) -> Result<Self, BtfError> {
        let field = |at: usize| -> Result<u32, BtfError> {
            data.get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
                .ok_or(BtfError::Malformed("shorter than its header"))
        };
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF?)"));
        }
        let hdr_len = field(4)? as usize;
        let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
        let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
        let section = |off: usize, len: usize| {
            let range = hdr_len + off..hdr_len + off + len;
            if range.end <= data.len() {
                Ok(range)
            } else {
                Err(BtfError::Malformed("section outside the data"))
            }
        };
        let type_section = section(type_off, type_len)?;
        let string_section = section(str_off, str_len)?;
        let type_data = &data[type_section.clone()];

        let mut types = vec![Type {
            kind: 0,
            kind_flag: false,
            vlen: 0,
            name: 0,
            size_or_type: 0,
            extra: 0,
        }];
        let mut at = 0;
        while at < type_data.len() {
            let name = word(type_data, at)?;
            let info = word(type_data, at + 4)?;
            let size_or_type = word(type_data, at + 8)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = info & 0xffff;
            let extra = at + 12;
            let extra_len = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen as usize,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen as usize,
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            if extra + extra_len > type_data.len() {
                return Err(BtfError::Malformed("type section ends inside a record"));
            }
            types.push(Type {
                kind,
                kind_flag: info >> 31 == 1,
                vlen,
                name,
                size_or_type,
                extra: extra as u32,
            });
            at = extra + extra_len;
        }

        let mut btf = Btf {
            types,
            data,
            type_section,
            string_section,
            structs_by_name: rustc_hash::FxHashMap::default(),
        };
        let mut structs_by_name = rustc_hash::FxHashMap::default();
        for (id, ty) in btf.types.iter().enumerate() {
            // A struct may also appear as a forward declaration or (in split BTF) twice; keep the first
            // complete definition.
            if ty.kind == KIND_STRUCT && ty.vlen > 0 {
                structs_by_name
                    .entry(Box::from(btf.name(ty.name)))
                    .or_insert(id as u32);
            }
        }
        btf.structs_by_name = structs_by_name;
        Ok(btf)
    }

    fn type_data(&self) -> &[u8] {
        &self.data[self.type_section.clone()]
    }

    /// The members of a struct or union.
    fn members(&self, ty: &Type) -> impl Iterator<Item = RawMember> + '_ {
        let (extra, kind_flag) = (ty.extra as usize, ty.kind_flag);
        let count = if matches!(ty.kind, KIND_STRUCT | KIND_UNION) {
            ty.vlen as usize
        } else {
            0
        };
        (0..count).map(move |k| {
            // In bounds: checked when the type was parsed.
            let at = extra + 12 * k;
            let field = |n: usize| word(self.type_data(), at + 4 * n).unwrap_or(0);
            let offset = field(2);
            let (bit_offset, bitfield_size) = if kind_flag {
                (offset & 0xff_ffff, offset >> 24)
            } else {
                (offset, 0)
            };
            RawMember {
                name: field(0),
                type_id: field(1),
                bit_offset,
                bitfield_size,
            }
        })
    }

    /// (element type, count) of an array.
    fn array(&self, ty: &Type) -> (u32, u32) {
        let at = ty.extra as usize;
        (
            word(self.type_data(), at).unwrap_or(0),
            word(self.type_data(), at + 8).unwrap_or(0),
        )
    }

    fn name(&self, offset: u32) -> &str {
        let tail = self.data[self.string_section.clone()]
            .get(offset as usize..)
            .unwrap_or_default();
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        std::str::from_utf8(&tail[..end]).unwrap_or("")
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    /// Follows typedefs, qualifiers and type tags to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.ty(id) {
                Some(ty)
                    if matches!(
                        ty.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = ty.size_or_type
                }
                _ => break,
            }
        }
        id
    }

    fn size_of(&self, id: u32) -> u32 {
        let id = self.resolve(id);
        match self.ty(id) {
            Some(ty) => match ty.kind {
                KIND_PTR => 8,
                KIND_ARRAY => {
                    let (elem, count) = self.array(ty);
                    self.size_of(elem).saturating_mul(count)
                }
                KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 | KIND_FLOAT => {
                    ty.size_or_type
                }
                _ => 0,
            },
            None => 0,
        }
    }

    fn kind_of(&self, id: u32) -> MemberKind {
        match self.ty(self.resolve(id)).map(|ty| ty.kind) {
            Some(KIND_INT) => MemberKind::Int,
            Some(KIND_PTR) => MemberKind::Pointer,
            Some(KIND_STRUCT) => MemberKind::Struct,
            Some(KIND_UNION) => MemberKind::Union,
            Some(KIND_ENUM | KIND_ENUM64) => MemberKind::Enum,
            Some(KIND_ARRAY) => MemberKind::Array,
            _ => MemberKind::Other,
        }
    }

    /// The type id of the function named `name` (e.g. `bpf_iter_task_file`, which an iterator target
    /// declares and a program of that target attaches to), if it exists.
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|ty| ty.kind == KIND_FUNC && self.name(ty.name) == name)
            .map(|index| index as u32)
    }

    /// Size in bytes of the struct `strukt`.
    pub fn struct_size(&self, strukt: &str) -> Result<u32, BtfError> {
        let &id = self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        Ok(self.size_of(id))
    }

    /// The type id of the struct `strukt`, if it exists.
    pub fn struct_id(&self, strukt: &str) -> Option<u32> {
        self.structs_by_name.get(strukt).copied()
    }

    /// Whether the struct `strukt` exists.
    pub fn has_struct(&self, strukt: &str) -> bool {
        self.structs_by_name.contains_key(strukt)
    }

    /// Finds `strukt.member`, looking inside anonymous struct/union members too.
    pub fn member(&self, strukt: &str, member: &str) -> Result<Member, BtfError> {
        let &id = self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        match self.find_member(id, member, 0, 0)? {
            Some(found) => Ok(found),
            None => Err(BtfError::NoMember {
                strukt: strukt.to_owned(),
                member: member.to_owned(),
            }),
        }
    }

    /// Like [`Btf::member`] for a union or struct found by name among all composite types
    /// (e.g. `bpf_iter_link_info`, a union).
    pub fn composite_has_member(&self, name: &str, member: &str) -> bool {
        self.types.iter().enumerate().any(|(id, ty)| {
            matches!(ty.kind, KIND_STRUCT | KIND_UNION)
                && self.name(ty.name) == name
                && matches!(self.find_member(id as u32, member, 0, 0), Ok(Some(_)))
        })
    }

    /// Where, in the raw blob, the offset word of a direct member of `strukt` is (for tests that
    /// corrupt a kernel BTF on purpose).
    #[cfg(test)]
    pub(crate) fn member_offset_position(&self, strukt: &str, member: &str) -> Option<usize> {
        let &id = self.structs_by_name.get(strukt)?;
        let ty = self.ty(id)?;
        let k = self.members(ty).position(|m| self.name(m.name) == member)?;
        Some(self.type_section.start + ty.extra as usize + 12 * k + 8)
    }

    /// The raw blob.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data
    }

    fn find_member(
        &self,
        id: u32,
        wanted: &str,
        base_bits: u32,
        depth: u32,
    ) -> Result<Option<Member>, BtfError> {
        let Some(ty) = self.ty(self.resolve(id)) else {
            return Ok(None);
        };
        if depth > 8 {
            return Ok(None);
        }
        for member in self.members(ty) {
            let bits = base_bits + member.bit_offset;
            let name = self.name(member.name);
            if name == wanted {
                if member.bitfield_size != 0 || !bits.is_multiple_of(8) {
                    return Err(BtfError::Bitfield {
                        strukt: self.name(ty.name).to_owned(),
                        member: wanted.to_owned(),
                    });
                }
                return Ok(Some(Member {
                    offset: bits / 8,
                    size: self.size_of(member.type_id),
                    kind: self.kind_of(member.type_id),
                }));
            }
            if name.is_empty()
                && matches!(
                    self.kind_of(member.type_id),
                    MemberKind::Struct | MemberKind::Union
                )
                && let Some(found) = self.find_member(member.type_id, wanted, bits, depth + 1)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
