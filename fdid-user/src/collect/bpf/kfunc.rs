//! Kfunc calls for a loader that cannot relocate them: aya 0.16 loads the object's `call`
//! instructions as they are, so the programs call a helper number no helper has (a placeholder),
//! and each such call is rewritten here, in a copy of the object, into a call of a kernel function
//! by its BTF id — what libbpf's kfunc relocation would write.

/// A BPF object's bytes, 8-byte aligned as aya's parser wants them, with its placeholder calls
/// rewritten.
pub(crate) struct PatchedObject {
    words: Vec<u64>,
    len: usize,
}

impl PatchedObject {
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes (the copy of the object).
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast(), self.len) }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    #[error("not a little-endian 64-bit BPF ELF object")]
    NotBpfElf,
    #[error("the BPF object's section headers lie outside it")]
    Truncated,
}

/// `BPF_JMP | BPF_CALL`.
const CALL: u8 = 0x85;
/// `src_reg` of a call of a kernel function by BTF id (`BPF_PSEUDO_KFUNC_CALL`).
const PSEUDO_KFUNC_CALL: u8 = 2;
/// `sh_flags` of a section of instructions.
const SHF_EXECINSTR: u64 = 0x4;
const EM_BPF: u16 = 247;

/// Copies `object` and rewrites every `call PLACEHOLDER` (a helper call: no registers, no offset)
/// in its sections of instructions into a call of the vmlinux kfunc `btf_id`: the copy, and how
/// many calls it rewrote.
pub(crate) fn patch_kfunc_calls(
    object: &[u8],
    placeholder: i32,
    btf_id: u32,
) -> Result<(PatchedObject, usize), PatchError> {
    let mut patched = PatchedObject {
        words: vec![0; object.len().div_ceil(8)],
        len: object.len(),
    };
    // SAFETY: `words` has room for `len` bytes; the slice is the only reference to it here.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(patched.words.as_mut_ptr().cast(), object.len()) };
    bytes.copy_from_slice(object);
    let mut count = 0;
    for section in code_sections(bytes)? {
        for instruction in bytes[section].as_chunks_mut::<8>().0 {
            let imm = i32::from_le_bytes(instruction[4..8].try_into().expect("8-byte chunk"));
            // An ld_imm64's second half has opcode 0: never taken for a call.
            if instruction[..4] == [CALL, 0, 0, 0] && imm == placeholder {
                instruction[1] = PSEUDO_KFUNC_CALL << 4;
                instruction[4..8].copy_from_slice(&btf_id.to_le_bytes());
                count += 1;
            }
        }
    }
    Ok((patched, count))
}

/// The byte ranges of an ELF object's sections of instructions, each a whole number of
/// instructions (8 bytes) from its start.
fn code_sections(elf: &[u8]) -> Result<Vec<std::ops::Range<usize>>, PatchError> {
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    // ELFCLASS64, ELFDATA2LSB.
    if elf.get(..6) != Some(b"\x7fELF\x02\x01") || u16_at(18) != Some(EM_BPF) {
        return Err(PatchError::NotBpfElf);
    }
    let table = u64_at(0x28).ok_or(PatchError::Truncated)? as usize;
    let entry = usize::from(u16_at(0x3a).ok_or(PatchError::Truncated)?);
    let count = usize::from(u16_at(0x3c).ok_or(PatchError::Truncated)?);
    let mut sections = Vec::new();
    for index in 0..count {
        let header = table + index * entry;
        let (flags, offset, size) = (
            u64_at(header + 8).ok_or(PatchError::Truncated)?,
            u64_at(header + 24).ok_or(PatchError::Truncated)? as usize,
            u64_at(header + 32).ok_or(PatchError::Truncated)? as usize,
        );
        if flags & SHF_EXECINSTR == 0 || size == 0 {
            continue;
        }
        let end = offset.checked_add(size).ok_or(PatchError::Truncated)?;
        if end > elf.len() {
            return Err(PatchError::Truncated);
        }
        sections.push(offset..offset + size / 8 * 8);
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACEHOLDER: i32 = 0x7fff_f00d;

    fn instruction(code: u8, regs: u8, off: i16, imm: i32) -> [u8; 8] {
        let mut bytes = [0u8; 8];
        bytes[0] = code;
        bytes[1] = regs;
        bytes[2..4].copy_from_slice(&off.to_le_bytes());
        bytes[4..8].copy_from_slice(&imm.to_le_bytes());
        bytes
    }

    /// A minimal BPF ELF: a null section header, one of instructions (`code`), one of data
    /// (`data`), the headers at the end.
    fn elf(code: &[[u8; 8]], data: &[[u8; 8]]) -> Vec<u8> {
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[18..20].copy_from_slice(&EM_BPF.to_le_bytes());
        let code_at = elf.len();
        elf.extend(code.iter().flatten());
        let data_at = elf.len();
        elf.extend(data.iter().flatten());
        let table = elf.len();
        elf[0x28..0x30].copy_from_slice(&(table as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        for (flags, at, len) in [
            (0, 0, 0),
            (SHF_EXECINSTR | 0x2, code_at, code.len()),
            (0x2, data_at, data.len()),
        ] {
            let mut header = [0u8; 64];
            header[8..16].copy_from_slice(&flags.to_le_bytes());
            header[24..32].copy_from_slice(&(at as u64).to_le_bytes());
            header[32..40].copy_from_slice(&(8 * len as u64).to_le_bytes());
            elf.extend(header);
        }
        elf
    }

    #[test]
    fn only_placeholder_helper_calls_among_instructions_become_kfunc_calls() {
        let code = [
            // r1 = r6; call PLACEHOLDER; call 14 (a real helper); call +PLACEHOLDER (a
            // subprogram call: src_reg 1); ld_imm64 whose second half holds the pattern's bytes
            // but opcode 0; call PLACEHOLDER again.
            instruction(0xbf, 0x61, 0, 0),
            instruction(CALL, 0, 0, PLACEHOLDER),
            instruction(CALL, 0, 0, 14),
            instruction(CALL, 0x10, 0, PLACEHOLDER),
            instruction(0x18, 0x01, 0, 0),
            instruction(0, 0, 0, PLACEHOLDER),
            instruction(CALL, 0, 0, PLACEHOLDER),
        ];
        // The same bytes in a data section are data.
        let data = [instruction(CALL, 0, 0, PLACEHOLDER)];
        let object = elf(&code, &data);
        let (patched, count) = patch_kfunc_calls(&object, PLACEHOLDER, 54_321).unwrap();
        assert_eq!(count, 2);
        let mut expected = code;
        expected[1] = instruction(CALL, 0x20, 0, 54_321);
        expected[6] = instruction(CALL, 0x20, 0, 54_321);
        assert_eq!(patched.bytes(), elf(&expected, &data));
        assert_eq!(patched.bytes().as_ptr() as usize % 8, 0, "aligned for aya");
    }

    #[test]
    fn what_is_not_a_bpf_object_or_has_headers_outside_it_is_refused() {
        let object = elf(&[instruction(CALL, 0, 0, PLACEHOLDER)], &[]);
        let mut x86 = object.clone();
        x86[18..20].copy_from_slice(&62u16.to_le_bytes());
        assert_eq!(
            patch_kfunc_calls(&x86, PLACEHOLDER, 1).err(),
            Some(PatchError::NotBpfElf)
        );
        // The last header's offset and size cut off.
        let cut = &object[..object.len() - 40];
        assert_eq!(
            patch_kfunc_calls(cut, PLACEHOLDER, 1).err(),
            Some(PatchError::Truncated)
        );
        // The code section said to run past the end.
        let mut long = object.clone();
        let code_size_at = long.len() - 2 * 64 + 32;
        long[code_size_at..code_size_at + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
        assert_eq!(
            patch_kfunc_calls(&long, PLACEHOLDER, 1).err(),
            Some(PatchError::Truncated)
        );
        assert_eq!(
            patch_kfunc_calls(b"", PLACEHOLDER, 1).err(),
            Some(PatchError::NotBpfElf)
        );
    }
}
