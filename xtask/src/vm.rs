//! `cargo xtask vm-test`: runs the BPF integration tests inside KVM guests booted on Debian kernels.
//!
//! For each kernel: `apt-get download` the Debian kernel package through a private apt configuration
//! (the system's sources are not touched), unpack its vmlinuz (cached under target/vm/), build an
//! initramfs holding busybox, the test binaries, the scenario binary and the libraries they need, boot
//! it with `qemu-system-x86_64 -enable-kvm` (or, with `--tcg`, software emulation), and read the
//! guest's test results from its console.
//!
//! On this project's machines `/dev/kvm` is served by kvm-pvm (nested virtualization without hardware
//! support), which runs only PVM-enabled guest kernels: stock Debian kernels hang before their first
//! message there, so `--tcg` is the way to run them (about 20 s per kernel).

use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::Workspace;

/// A kernel to test: a Debian suite and the package name pattern of its kernel image.
struct KernelSource {
    name: &'static str,
    suite: &'static str,
    pattern: &'static str,
}

const KERNELS: [KernelSource; 3] = [
    KernelSource {
        name: "5.10",
        suite: "bullseye",
        pattern: r"^linux-image-5\.10\.0-[0-9]+-amd64$",
    },
    KernelSource {
        name: "6.1",
        suite: "bookworm",
        pattern: r"^linux-image-6\.1\.0-[0-9]+-amd64$",
    },
    KernelSource {
        name: "6.12",
        suite: "bookworm-backports",
        pattern: r"^linux-image-6\.12\.[0-9]+\+(deb12|bpo)-amd64$",
    },
];

/// Boot and test timeout per kernel.
const GUEST_TIMEOUT: Duration = Duration::from_secs(420);

pub struct VmTest {
    pub kernels: Vec<String>,
    /// Software emulation instead of KVM (for hosts whose KVM cannot run stock kernels).
    pub tcg: bool,
}

/// Runs the guest tests; returns whether every kernel passed.
pub fn run(ws: &Workspace, options: &VmTest) -> Result<bool> {
    let tcg = options.tcg || {
        let reason = if !Path::new("/dev/kvm").exists() {
            Some("/dev/kvm is missing")
        } else if Path::new("/sys/module/kvm_pvm").exists() {
            Some("/dev/kvm is kvm-pvm, which boots only PVM-enabled kernels, not Debian's")
        } else {
            None
        };
        if let Some(reason) = reason {
            eprintln!("xtask vm-test: {reason}: using software emulation (TCG)");
        }
        reason.is_some()
    };
    crate::setup::ensure_apt_packages(
        "vm-test",
        &[
            ("qemu-system-x86_64", "qemu-system-x86"),
            ("busybox", "busybox-static"),
        ],
    )?;
    let vm_dir = ws.target.join("vm");
    fs::create_dir_all(&vm_dir)?;
    let tests = build_test_binaries(ws)?;
    let initramfs = vm_dir.join("initramfs.cpio");
    build_initramfs(&tests, &initramfs)?;

    let wanted: Vec<String> = if options.kernels.is_empty() {
        KERNELS.iter().map(|k| k.name.to_owned()).collect()
    } else {
        options.kernels.clone()
    };
    let mut results = Vec::new();
    for kernel in &wanted {
        let started = Instant::now();
        let vmlinuz = match KERNELS.iter().find(|k| k.name == kernel) {
            Some(source) => fetch_kernel(&vm_dir, source)?,
            None if Path::new(kernel).is_file() => PathBuf::from(kernel),
            None => bail!("unknown kernel {kernel}: use 5.10, 6.1, 6.12 or a vmlinuz path"),
        };
        eprintln!("xtask vm-test: booting {} ({})", kernel, vmlinuz.display());
        let log = vm_dir.join(format!("console-{}.log", kernel.replace('/', "_")));
        let outcome = boot(&vmlinuz, &initramfs, &log, tcg)?;
        let elapsed = started.elapsed();
        eprintln!(
            "xtask vm-test: {kernel}: {} in {:.1} s",
            outcome.summary(),
            elapsed.as_secs_f64()
        );
        results.push((kernel.clone(), outcome, elapsed));
    }
    println!("\n| kernel | guest uname | result | boot + tests |\n|---|---|---|---:|");
    for (kernel, outcome, elapsed) in &results {
        println!(
            "| {kernel} | {} | {} | {:.1} s |",
            outcome.uname,
            outcome.summary(),
            elapsed.as_secs_f64()
        );
    }
    Ok(results.iter().all(|(_, outcome, _)| outcome.passed()))
}

/// apt-get/apt-cache with a private configuration for one suite.
fn apt(dir: &Path, tool: &str) -> Command {
    let mut command = Command::new(tool);
    command
        .arg("-o")
        .arg(format!(
            "Dir::Etc::sourcelist={}",
            dir.join("sources.list").display()
        ))
        .args(["-o", "Dir::Etc::sourceparts=/nonexistent"])
        .arg("-o")
        .arg(format!("Dir::State::Lists={}", dir.join("lists").display()))
        .arg("-o")
        .arg(format!("Dir::Cache={}", dir.join("cache").display()));
    command
}

/// The kernel's vmlinuz, downloaded and unpacked once.
fn fetch_kernel(vm_dir: &Path, source: &KernelSource) -> Result<PathBuf> {
    let dir = vm_dir.join(format!("kernel-{}", source.name));
    let vmlinuz = dir.join("vmlinuz");
    if vmlinuz.is_file() {
        return Ok(vmlinuz);
    }
    let apt_dir = vm_dir.join(format!("apt-{}", source.suite));
    fs::create_dir_all(apt_dir.join("lists/partial"))?;
    fs::create_dir_all(apt_dir.join("cache/archives/partial"))?;
    fs::write(
        apt_dir.join("sources.list"),
        format!(
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian {} main\n",
            source.suite
        ),
    )?;
    let status = apt(&apt_dir, "apt-get")
        .arg("update")
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("apt-get update for {} failed ({status})", source.suite);
    }
    let output = apt(&apt_dir, "apt-cache")
        .args(["search", "--names-only", source.pattern])
        .output()?;
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    names.sort_by_key(|a| version_key(a));
    let package = names.pop().with_context(|| {
        format!(
            "no kernel package matches {} in {}",
            source.pattern, source.suite
        )
    })?;
    let download = dir.join("deb");
    fs::create_dir_all(&download)?;
    eprintln!("xtask vm-test: downloading {package} ({})", source.suite);
    let status = apt(&apt_dir, "apt-get")
        .current_dir(&download)
        .args(["download", &package])
        .status()?;
    if !status.success() {
        bail!("apt-get download {package} failed ({status})");
    }
    let deb = fs::read_dir(&download)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("the downloaded .deb")?;
    let unpacked = dir.join("unpacked");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .status()?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed", deb.display());
    }
    let image = fs::read_dir(unpacked.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
        })
        .context("no vmlinuz in the package")?;
    fs::copy(&image, &vmlinuz)?;
    let _ = fs::remove_dir_all(&unpacked);
    let _ = fs::remove_dir_all(&download);
    Ok(vmlinuz)
}

/// Numeric parts of a package name, for picking the newest.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect()
}

/// The test binaries to run in the guest, and the scenario binary they start.
struct TestBinaries {
    tests: Vec<PathBuf>,
    scenario: PathBuf,
}

fn build_test_binaries(ws: &Workspace) -> Result<TestBinaries> {
    let output = crate::cargo(ws)
        .args([
            "test",
            "--no-run",
            "--message-format=json",
            "--package",
            "fdid-tests",
        ])
        .args([
            "--test", "collect", "--test", "identity", "--test", "sockets", "--test", "who",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("building the test binaries")?;
    if !output.status.success() {
        bail!("building the test binaries failed");
    }
    let mut tests = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        // Integration-test harnesses only (`kind: ["test"]`): the `"test": true` of a target only
        // says that `cargo test` would test it, which is true of the package's binaries too.
        if line.contains("\"reason\":\"compiler-artifact\"")
            && line.contains("\"kind\":[\"test\"]")
            && let Some(path) = json_string(line, "executable")
        {
            tests.push(PathBuf::from(path));
        }
    }
    if tests.is_empty() {
        bail!("cargo built no test executable");
    }
    let scenario = ws.target.join("debug/fdid-scenario");
    if !scenario.is_file() {
        bail!("{} is missing", scenario.display());
    }
    Ok(TestBinaries { tests, scenario })
}

/// The string value of `"key":"…"` in one line of cargo's JSON (paths have no escapes here).
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_owned())
}

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin CI=true RUST_BACKTRACE=1
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# The root is the unpacked initramfs (writable); /tmp is its own directory there: a tmpfs mounted on
# it would hide the scenario binary when the workspace itself lives under /tmp.
ip link set lo up
echo "FDID-VM-UNAME $(uname -r)"
for test in /tests/*; do
    "$test" --test-threads=2
    echo "FDID-VM-EXIT $(basename "$test") $?"
done
echo "FDID-VM-DONE"
poweroff -f
"#;

/// Writes a newc cpio archive: /init, busybox, the tests, the scenario at its host path, and the
/// shared libraries they link.
fn build_initramfs(binaries: &TestBinaries, path: &Path) -> Result<()> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("busybox (busybox-static) is missing")?;
    let mut archive = Cpio::default();
    for dir in [
        "bin",
        "proc",
        "sys",
        "dev",
        "tmp",
        "tests",
        "lib",
        "lib64",
        "lib/x86_64-linux-gnu",
    ] {
        archive.dir(dir);
    }
    archive.file("init", INIT.as_bytes(), 0o755);
    archive.file("bin/busybox", &fs::read(&busybox)?, 0o755);
    let mut libraries = BTreeSet::new();
    for test in &binaries.tests {
        let name = test.file_name().context("test name")?.to_string_lossy();
        // `collect-0123abcd…` → `collect`.
        let short = name.split('-').next().unwrap_or(&name);
        archive.file(&format!("tests/{short}"), &fs::read(test)?, 0o755);
        libraries.extend(shared_libraries(test)?);
    }
    // The tests start the scenario through the absolute path compiled into them.
    archive.copy_of(&binaries.scenario)?;
    libraries.extend(shared_libraries(&binaries.scenario)?);
    for library in libraries {
        archive.copy_of(&library)?;
    }
    let mut out = fs::File::create(path)?;
    out.write_all(&archive.finish())?;
    Ok(())
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

/// What a guest reported.
struct Outcome {
    uname: String,
    /// (test binary, exit status)
    exits: Vec<(String, i32)>,
    done: bool,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.done && !self.exits.is_empty() && self.exits.iter().all(|(_, status)| *status == 0)
    }
    fn summary(&self) -> String {
        if !self.done {
            return "FAILED (the guest did not finish; see its console log)".into();
        }
        let failed: Vec<&str> = self
            .exits
            .iter()
            .filter(|(_, s)| *s != 0)
            .map(|(t, _)| t.as_str())
            .collect();
        if failed.is_empty() {
            format!("pass ({} test binaries)", self.exits.len())
        } else {
            format!("FAILED: {}", failed.join(", "))
        }
    }
}

/// Boots one kernel with the initramfs, echoing the guest console and keeping a copy in `log`.
fn boot(vmlinuz: &Path, initramfs: &Path, log: &Path, tcg: bool) -> Result<Outcome> {
    let accel: &[&str] = if tcg {
        &["-accel", "tcg,thread=multi", "-cpu", "max"]
    } else {
        &["-enable-kvm", "-cpu", "host"]
    };
    let mut child = Command::new("qemu-system-x86_64")
        .args(accel)
        .args(["-m", "2048", "-smp", "2", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting qemu-system-x86_64")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
                    if lines_tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let mut console = fs::File::create(log)?;
    let mut outcome = Outcome {
        uname: String::new(),
        exits: Vec::new(),
        done: false,
    };
    let deadline = Instant::now() + GUEST_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(line) => {
                writeln!(console, "{line}")?;
                println!("  | {line}");
                // The console may prefix the first line with terminal escapes.
                let line = line
                    .find("FDID-VM-")
                    .map_or(line.as_str(), |at| &line[at..]);
                if let Some(uname) = line.strip_prefix("FDID-VM-UNAME ") {
                    outcome.uname = uname.trim().to_owned();
                } else if let Some(rest) = line.strip_prefix("FDID-VM-EXIT ") {
                    let mut words = rest.split_whitespace();
                    if let (Some(test), Some(status)) = (words.next(), words.next()) {
                        outcome
                            .exits
                            .push((test.to_owned(), status.parse().unwrap_or(-1)));
                    }
                } else if line.starts_with("FDID-VM-DONE") {
                    outcome.done = true;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                eprintln!(
                    "xtask vm-test: the guest ran past {} s; stopping it",
                    GUEST_TIMEOUT.as_secs()
                );
                break;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    Ok(outcome)
}
