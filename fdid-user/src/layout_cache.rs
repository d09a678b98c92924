//! A per-boot cache of the [`KernelLayout`] resolved from `/sys/kernel/btf/vmlinux`, so that a run
//! needs no BTF at all once one run of this boot has parsed it.
//!
//! The kernel's BTF cannot change while it runs, so the layout is keyed on what identifies a boot and
//! a kernel: the boot id, the kernel release and the size of the BTF file, plus this cache format and
//! the executable that resolved it (its inode, size and modification time: a rebuilt fdid, which may
//! resolve other members, does not take an older build's layout).
//! It lives in [`run_dir`] (`/run/fdid/`), root's alone. A wrong layout could not read garbage
//! anyway: the verifier checks every load at these offsets against the kernel's BTF.

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use fdid_ebpf::FieldOffsets;

use crate::{btf::VMLINUX_BTF, offsets::KernelLayout, run_dir};

/// Where the cache lives by default.
pub const DEFAULT_DIR: &str = run_dir::DEFAULT_DIR;
const FILE: &str = "layout";
const FORMAT: &str = "fdid-layout 5";

/// Number of `u32` members of [`FieldOffsets`].
const OFFSET_WORDS: usize = size_of::<FieldOffsets>() / 4;
const _: () = assert!(size_of::<FieldOffsets>() == OFFSET_WORDS * 4);

/// The cache of one directory, for the running kernel's default BTF.
pub struct LayoutCache {
    dir: PathBuf,
    /// What the cached layout must have been resolved for (boot id, release, BTF size).
    key: String,
}

impl LayoutCache {
    /// The cache in `dir` for this boot, or `None` when this boot cannot be identified.
    pub fn for_this_boot(dir: &Path) -> Option<Self> {
        let read = |path: &str| fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
        let boot_id = run_dir::boot_id()?;
        let release = read("/proc/sys/kernel/osrelease")?;
        let btf_size = fs::metadata(VMLINUX_BTF).ok()?.len();
        let exe = fs::metadata(std::env::current_exe().ok()?).ok()?;
        Some(Self {
            dir: dir.to_path_buf(),
            key: format!(
                "boot {boot_id} release {release} btf_size {btf_size} exe {}:{} {} {}.{}",
                exe.dev(),
                exe.ino(),
                exe.len(),
                exe.mtime(),
                exe.mtime_nsec()
            ),
        })
    }

    #[cfg(test)]
    fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The cached layout, if one was stored for this boot by root and nobody else could have
    /// changed it.
    pub fn load(&self) -> Option<KernelLayout> {
        let text = run_dir::read_trusted(&self.dir, FILE)?;
        let layout = decode(&text, &self.key);
        if layout.is_none() {
            log::debug!(
                "layout cache in {} is for another boot or format",
                self.dir.display()
            );
        }
        layout
    }

    /// Stores `layout` for this boot (best effort: a read-only or foreign `/run` only costs speed).
    pub fn store(&self, layout: &KernelLayout) {
        if let Err(error) = run_dir::write_private(&self.dir, FILE, &encode(layout, &self.key)) {
            log::debug!("layout cache not written: {error}");
        }
    }
}

fn offset_words(offsets: &FieldOffsets) -> [u32; OFFSET_WORDS] {
    // SAFETY: FieldOffsets is repr(C) and made of `u32`s only (its size is asserted to be
    // OFFSET_WORDS × 4 above), so it has the layout of `[u32; OFFSET_WORDS]`.
    unsafe { std::mem::transmute::<FieldOffsets, [u32; OFFSET_WORDS]>(*offsets) }
}

fn offsets_from_words(words: [u32; OFFSET_WORDS]) -> FieldOffsets {
    // SAFETY: as in `offset_words`; every bit pattern is a valid `u32`.
    unsafe { std::mem::transmute::<[u32; OFFSET_WORDS], FieldOffsets>(words) }
}

fn encode(layout: &KernelLayout, key: &str) -> String {
    let offsets: Vec<String> = offset_words(&layout.offsets)
        .iter()
        .map(u32::to_string)
        .collect();
    format!(
        "{FORMAT}\n{key}\nrefs {} {}\npid_filter {}\ntask_file_func {}\noffsets {}\n",
        layout.refs_member,
        layout.refs_bias,
        u8::from(layout.kernel_pid_filter),
        layout.task_file_func,
        offsets.join(" "),
    )
}

/// The layout in `text` if it is complete, of this format and for `key`.
fn decode(text: &str, key: &str) -> Option<KernelLayout> {
    let mut lines = text.lines();
    if lines.next()? != FORMAT || lines.next()? != key {
        return None;
    }
    let mut field = |name: &str| -> Option<Vec<&str>> {
        let mut words = lines.next()?.split(' ');
        (words.next()? == name).then(|| words.collect())
    };
    let refs = field("refs")?;
    let refs_member = match refs.first().copied()? {
        "f_ref" => "f_ref",
        "f_count" => "f_count",
        _ => return None,
    };
    let refs_bias = refs.get(1)?.parse().ok()?;
    let kernel_pid_filter = match field("pid_filter")?.as_slice() {
        ["0"] => false,
        ["1"] => true,
        _ => return None,
    };
    let task_file_func = field("task_file_func")?.first()?.parse().ok()?;
    let numbers = field("offsets")?;
    if numbers.len() != OFFSET_WORDS || lines.next().is_some() {
        return None;
    }
    let mut words = [0u32; OFFSET_WORDS];
    for (word, number) in words.iter_mut().zip(numbers) {
        *word = number.parse().ok()?;
    }
    Some(KernelLayout {
        offsets: offsets_from_words(words),
        refs_bias,
        refs_member,
        kernel_pid_filter,
        task_file_func,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn sample() -> KernelLayout {
        let mut words = [0u32; OFFSET_WORDS];
        for (i, word) in words.iter_mut().enumerate() {
            *word = 8 * i as u32 + 3;
        }
        KernelLayout {
            offsets: offsets_from_words(words),
            refs_bias: u64::MAX,
            refs_member: "f_count",
            kernel_pid_filter: true,
            task_file_func: 123_456,
        }
    }

    fn cache_in(dir: &Path, key: &str) -> LayoutCache {
        LayoutCache {
            dir: dir.to_path_buf(),
            key: key.to_owned(),
        }
    }

    #[test]
    fn a_layout_comes_back_as_it_was_stored() {
        let layout = sample();
        assert_eq!(decode(&encode(&layout, "boot a"), "boot a"), Some(layout));
        // Each member survives on its own (a swapped or dropped word would not).
        assert_eq!(offset_words(&layout.offsets)[5], 43);
    }

    #[test]
    fn a_layout_of_another_boot_or_a_damaged_file_is_not_used() {
        let text = encode(&sample(), "boot a");
        assert_eq!(decode(&text, "boot b"), None);
        let cut = &text[..text.len() - 4];
        assert_eq!(decode(cut, "boot a"), None);
        let extra = format!("{text}more\n");
        assert_eq!(decode(&extra, "boot a"), None);
        let other_format = text.replacen(FORMAT, "fdid-layout 0", 1);
        assert_eq!(decode(&other_format, "boot a"), None);
    }

    #[test]
    fn only_roots_own_unshared_cache_is_trusted() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: the cache is root's");
            return;
        }
        let dir = std::env::temp_dir().join(format!("fdid-layout-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let cache = cache_in(&dir, "boot a");
        assert_eq!(cache.load(), None, "nothing stored yet");
        cache.store(&sample());
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(cache.path()).unwrap().mode() & 0o777, 0o600);
        assert_eq!(cache.load(), Some(sample()));
        assert_eq!(cache_in(&dir, "boot b").load(), None, "another boot");

        // A file that others may write is ignored.
        fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(cache.load(), None);
        // A symlink is not followed.
        fs::remove_file(cache.path()).unwrap();
        let elsewhere = dir.join("elsewhere");
        fs::write(&elsewhere, encode(&sample(), "boot a")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, cache.path()).unwrap();
        assert_eq!(cache.load(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
