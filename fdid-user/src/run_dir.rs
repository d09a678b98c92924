//! fdid's per-boot directory, `/run/fdid/` (a tmpfs, emptied at boot): small files that only root
//! writes (directory 0700, files 0600, written to a temporary name and renamed) and that are trusted
//! only while still root's and writable by nobody else, read without following symlinks. The layout
//! cache and the boot's hash key live there.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _},
    path::Path,
};

/// Where the directory is by default.
pub const DEFAULT_DIR: &str = "/run/fdid";

/// `dir/name`'s text, if root wrote it and nobody else could have changed it.
pub fn read_trusted(dir: &Path, name: &str) -> Option<String> {
    let path = dir.join(name);
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .ok()?;
    if !trusted(&file.metadata().ok()?) || !trusted(&fs::metadata(dir).ok()?) {
        log::debug!("{} not trusted", path.display());
        return None;
    }
    std::io::read_to_string(file).ok()
}

/// Writes `text` to `dir/name` atomically, creating `dir` (0700) when missing; fails when `dir` is
/// not root's alone.
pub fn write_private(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => return Err(error),
        _ => {}
    }
    if !trusted(&fs::metadata(dir)?) {
        return Err(std::io::Error::other(format!(
            "{} is not root's alone",
            dir.display()
        )));
    }
    let temporary = dir.join(format!("{name}.{}", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temporary)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| fs::rename(&temporary, dir.join(name)));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// Owned by root and writable by nobody else.
fn trusted(metadata: &fs::Metadata) -> bool {
    metadata.uid() == 0 && metadata.mode() & 0o022 == 0
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
}
