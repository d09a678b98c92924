//! The key of the pointer hashes, one per boot: every run of this boot hashes a `struct file` to the
//! same value, so ids (whose subid comes from that hash, see [`crate::tree`]) agree between runs —
//! a survey, `fdid who`, `fdid watch` and a survey taken later name a description alike.
//!
//! The key is random, made by the first run of a boot and kept in [`run_dir`] (root's alone, 0600);
//! without it the hashes say nothing about the pointers. Where it cannot be kept (no usable
//! `/run/fdid`), a run uses a key of its own and its ids are its own.

use std::path::Path;

use crate::run_dir;

const FILE: &str = "hash-key";
const FORMAT: &str = "fdid-hash-key 1";

/// A fresh random key.
pub fn random() -> Result<[u64; 2], getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    let (low, high) = bytes.split_at(8);
    Ok([
        u64::from_le_bytes(low.try_into().expect("8 bytes")),
        u64::from_le_bytes(high.try_into().expect("8 bytes")),
    ])
}

/// This boot's key from `dir`, made and stored there by the first run; `None` when `dir` cannot
/// hold one (the caller then uses a [`random`] key of its own).
pub fn for_this_boot(dir: &Path) -> Option<[u64; 2]> {
    let boot = run_dir::boot_id()?;
    if let Some(key) = run_dir::read_trusted(dir, FILE).and_then(|text| decode(&text, &boot)) {
        return Some(key);
    }
    let key = random().ok()?;
    if let Err(error) = run_dir::write_private(dir, FILE, &encode(key, &boot)) {
        log::debug!("no per-boot hash key: {error}");
        return None;
    }
    // Two first runs may race: both write, the last rename wins; read back what is there.
    run_dir::read_trusted(dir, FILE).and_then(|text| decode(&text, &boot))
}

fn encode(key: [u64; 2], boot: &str) -> String {
    format!("{FORMAT}\nboot {boot}\n{:016x} {:016x}\n", key[0], key[1])
}

fn decode(text: &str, boot: &str) -> Option<[u64; 2]> {
    let mut lines = text.lines();
    if lines.next()? != FORMAT || lines.next()? != format!("boot {boot}") {
        return None;
    }
    let (a, b) = lines.next()?.split_once(' ')?;
    if lines.next().is_some() || a.len() != 16 || b.len() != 16 {
        return None;
    }
    Some([
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_comes_back_as_stored_for_its_boot_only() {
        let key = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
        let text = encode(key, "boot-a");
        assert_eq!(decode(&text, "boot-a"), Some(key));
        assert_eq!(decode(&text, "boot-b"), None, "another boot's key");
        assert_eq!(decode(&text[..text.len() - 3], "boot-a"), None, "cut short");
        assert_eq!(
            decode(&format!("{text}x\n"), "boot-a"),
            None,
            "trailing line"
        );
    }

    #[test]
    fn every_fresh_key_differs() {
        assert_ne!(random().unwrap(), random().unwrap());
    }

    #[test]
    fn runs_of_one_boot_share_the_key_in_their_directory() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: the key is root's");
            return;
        }
        let dir = std::env::temp_dir().join(format!("fdid-boot-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = for_this_boot(&dir).expect("a key is made");
        assert_eq!(for_this_boot(&dir), Some(first), "the second run reads it");
        let other = std::env::temp_dir().join(format!("fdid-boot-key-{}-b", std::process::id()));
        let _ = std::fs::remove_dir_all(&other);
        assert_ne!(
            for_this_boot(&other),
            Some(first),
            "another directory, another key"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&other).unwrap();
    }
}
