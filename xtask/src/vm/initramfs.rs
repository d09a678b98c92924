//! The guest's initramfs: busybox, an /init that runs every test binary and reports on the console,
//! the test binaries, the scenario at the path compiled into them, the shipped `fdid` as
//! /dist/fdid, and the shared libraries the (host-built) binaries link.

use std::{
    collections::BTreeSet,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
# FDID_BINARY: the shipped static binary, run by the `shipped` tests.
export PATH=/bin CI=true RUST_BACKTRACE=1 FDID_BINARY=/dist/fdid
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# The root is the unpacked initramfs (writable); /tmp is its own directory there: a tmpfs mounted on
# it would hide the scenario binary when the workspace itself lives under /tmp.
ip link set lo up
echo "FDID-VM-UNAME $(uname -r) $(uname -m)"
for test in /tests/*; do
    "$test" --test-threads=2
    echo "FDID-VM-EXIT $(basename "$test") $?"
done
echo "FDID-VM-DONE"
poweroff -f
"#;

/// What goes into one guest, all built for its architecture.
pub struct Payload {
    pub busybox: PathBuf,
    /// Integration-test executables (`collect-0123abcd…`, installed as /tests/collect).
    pub tests: Vec<PathBuf>,
    /// The scenario binary the tests start, by the absolute path compiled into them.
    pub scenario: PathBuf,
    /// The shipped static `fdid`.
    pub fdid: PathBuf,
}

/// Writes the newc cpio archive for `payload` to `path`.
pub fn build(payload: &Payload, path: &Path) -> Result<()> {
    let mut archive = Cpio::default();
    for dir in [
        // /run: for /run/fdid, the boot's layout cache and hash key, as on a host.
        "bin", "proc", "sys", "dev", "tmp", "run", "tests", "dist", "lib", "lib64",
    ] {
        archive.dir(dir);
    }
    archive.file("init", INIT.as_bytes(), 0o755);
    archive.file("bin/busybox", &read(&payload.busybox)?, 0o755);
    archive.file("dist/fdid", &read(&payload.fdid)?, 0o755);
    let mut libraries = BTreeSet::new();
    for test in &payload.tests {
        let name = test.file_name().context("test name")?.to_string_lossy();
        // `collect-0123abcd…` → `collect`.
        let short = name.split('-').next().unwrap_or(&name);
        archive.file(&format!("tests/{short}"), &read(test)?, 0o755);
        libraries.extend(shared_libraries(test)?);
    }
    archive.copy_of(&payload.scenario)?;
    libraries.extend(shared_libraries(&payload.scenario)?);
    for library in libraries {
        archive.copy_of(&library)?;
    }
    let mut out = fs::File::create(path)?;
    out.write_all(&archive.finish())?;
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The shared libraries `ldd` lists for a binary, at the paths the binary asks for (its PT_INTERP is
/// /lib64/…, a symlink on the host; the archive gets the file's content under that name).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|word| word.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect())
}

/// A newc ("070701") cpio archive in memory.
#[derive(Default)]
struct Cpio {
    data: Vec<u8>,
    inode: u32,
    dirs: BTreeSet<String>,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, content: &[u8]) {
        self.inode += 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.inode,
            mode,
            0,
            0,
            1,
            0,
            content.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.data.extend_from_slice(header.as_bytes());
        self.data.extend_from_slice(name.as_bytes());
        self.data.push(0);
        self.pad();
        self.data.extend_from_slice(content);
        self.pad();
    }
    fn pad(&mut self) {
        while !self.data.len().is_multiple_of(4) {
            self.data.push(0);
        }
    }
    fn dir(&mut self, name: &str) {
        if self.dirs.insert(name.to_owned()) {
            self.entry(name, 0o040_755, &[]);
        }
    }
    fn file(&mut self, name: &str, content: &[u8], permissions: u32) {
        self.entry(name, 0o100_000 | permissions, content);
    }
    /// A copy of a host file at the same path inside the archive, with its parent directories.
    fn copy_of(&mut self, host: &Path) -> Result<()> {
        let inside = host.to_string_lossy().trim_start_matches('/').to_owned();
        let mut parent = PathBuf::new();
        for part in Path::new(&inside)
            .parent()
            .into_iter()
            .flat_map(|p| p.components())
        {
            parent.push(part);
            self.dir(&parent.to_string_lossy());
        }
        let content = fs::read(host).with_context(|| host.display().to_string())?;
        self.file(&inside, &content, 0o755);
        Ok(())
    }
    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.data
    }
}
