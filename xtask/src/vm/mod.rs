//! `cargo xtask vm-test`: runs the BPF integration tests, and the shipped `fdid` itself, inside
//! guests booted on Debian's kernels — x86_64 guests and an arm64 guest.
//!
//! For each kernel: fetch its vmlinuz from Debian (cached under target/vm/), build an initramfs for
//! its architecture holding busybox, the test binaries, the scenario binary and the static `fdid`
//! that `cargo xtask dist` ships (built by the same function), boot it with QEMU and read the
//! guest's test results from its console. The `shipped` tests run that binary (`FDID_BINARY`)
//! against scenarios with known sharing: its JSON, `--pid`, `check` and `who`.
//!
//! On this project's machines `/dev/kvm` is served by kvm-pvm (nested virtualization without hardware
//! support), which runs only PVM-enabled guest kernels: stock Debian kernels hang before their first
//! message there, so the x86_64 guests run under software emulation (`--tcg`, chosen by itself,
//! about 20 s per kernel); the arm64 guest always does.

mod debian;
mod guest;
mod initramfs;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Stdio,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::Workspace;
use debian::Archive;

/// A guest architecture.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    /// Debian's name for it.
    fn debian(self) -> &'static str {
        match self {
            Self::X86_64 => "amd64",
            Self::Arm64 => "arm64",
        }
    }

    /// The Rust target of its static binaries (one of `dist::TARGETS`).
    fn musl_target(self) -> &'static str {
        crate::dist::TARGETS
            .iter()
            .find(|(_, debian, _)| *debian == self.debian())
            .map(|(target, _, _)| *target)
            .expect("dist builds every guest architecture")
    }

    fn qemu(self) -> &'static str {
        match self {
            Self::X86_64 => "qemu-system-x86_64",
            Self::Arm64 => "qemu-system-aarch64",
        }
    }

    fn machine(self, tcg: bool) -> &'static [&'static str] {
        match (self, tcg) {
            (Self::X86_64, false) => &["-enable-kvm", "-cpu", "host"],
            // One host thread for both vCPUs: under multi-threaded TCG an x86 guest now and then hits
            // a stale int3 of the kernel's own text patching (jump labels, tracepoints) and oopses,
            // at boot or while programs attach ("Oops: int3" in run_timer_softirq, trace_syscall_enter).
            // Measured no slower here (5.10 46.6 s, 6.12 49.2 s, 7.3 55.6 s).
            (Self::X86_64, true) => &["-accel", "tcg,thread=single", "-cpu", "max"],
            (Self::Arm64, _) => &["-M", "virt", "-accel", "tcg,thread=multi", "-cpu", "max"],
        }
    }

    fn console(self) -> &'static str {
        match self {
            Self::X86_64 => "ttyS0",
            Self::Arm64 => "ttyAMA0",
        }
    }
}

/// The integration tests every guest runs, x86_64 and arm64.
const GUEST_TESTS: [&str; 6] = ["collect", "identity", "sockets", "who", "shipped", "watch"];

/// A kernel to test: a Debian suite and the package name pattern of its kernel image (the newest
/// match is taken).
struct KernelSource {
    name: &'static str,
    arch: Arch,
    suite: &'static str,
    pattern: &'static str,
}

const KERNELS: [KernelSource; 5] = [
    KernelSource {
        name: "5.10",
        arch: Arch::X86_64,
        suite: "bullseye",
        pattern: r"^linux-image-5\.10\.0-[0-9]+-amd64$",
    },
    KernelSource {
        name: "6.1",
        arch: Arch::X86_64,
        suite: "bookworm",
        pattern: r"^linux-image-6\.1\.0-[0-9]+-amd64$",
    },
    KernelSource {
        name: "6.12",
        arch: Arch::X86_64,
        suite: "bookworm-backports",
        pattern: r"^linux-image-6\.12\.[0-9]+\+(deb12|bpo)-amd64$",
    },
    // The newest kernel Debian serves (trixie-backports: 7.3 on 2026-11-27, newer than sid's 7.2).
    // Since 7.x the image package is empty: linux-binary-…, which it depends on, holds the vmlinuz.
    KernelSource {
        name: "newest",
        arch: Arch::X86_64,
        suite: "trixie-backports",
        pattern: r"^linux-binary-[0-9]+\.[0-9]+\.[0-9]+\+deb13-amd64$",
    },
    KernelSource {
        name: "arm64",
        arch: Arch::Arm64,
        suite: "trixie",
        pattern: r"^linux-image-6\.12\.[0-9]+\+deb13-arm64$",
    },
];

/// A guest to boot: one of [`KERNELS`], or an x86_64 vmlinuz given by path.
enum Guest {
    Debian(&'static KernelSource),
    File(PathBuf),
}

impl Guest {
    fn named(name: &str) -> Result<Self> {
        if let Some(source) = KERNELS.iter().find(|k| k.name == name) {
            return Ok(Self::Debian(source));
        }
        if Path::new(name).is_file() {
            return Ok(Self::File(PathBuf::from(name)));
        }
        let names: Vec<_> = KERNELS.iter().map(|k| k.name).collect();
        bail!(
            "unknown kernel {name}: use {} or the path of an x86_64 vmlinuz",
            names.join(", ")
        )
    }

    fn arch(&self) -> Arch {
        match self {
            Self::Debian(source) => source.arch,
            Self::File(_) => Arch::X86_64,
        }
    }

    fn name(&self) -> String {
        match self {
            Self::Debian(source) => source.name.to_owned(),
            Self::File(path) => path.display().to_string(),
        }
    }
}

/// The suite busybox-static comes from, for every architecture.
const BUSYBOX_SUITE: &str = "trixie";

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
    let wanted: Vec<Guest> = if options.kernels.is_empty() {
        KERNELS.iter().map(Guest::Debian).collect()
    } else {
        options
            .kernels
            .iter()
            .map(|name| Guest::named(name))
            .collect::<Result<_>>()?
    };
    let mut packages = vec![("qemu-system-x86_64", "qemu-system-x86")];
    if wanted.iter().any(|g| g.arch() == Arch::Arm64) {
        packages.push(("qemu-system-aarch64", "qemu-system-arm"));
    }
    crate::setup::ensure_apt_packages("vm-test", &packages)?;
    crate::setup::ensure_musl_targets("vm-test")?;
    let vm_dir = ws.target.join("vm");
    fs::create_dir_all(&vm_dir)?;

    // One initramfs per architecture.
    let mut initramfs = Vec::new();
    for arch in [Arch::X86_64, Arch::Arm64] {
        if wanted.iter().any(|g| g.arch() == arch) {
            initramfs.push((arch, build_initramfs(ws, &vm_dir, arch)?));
        }
    }

    let mut results = Vec::new();
    for guest in &wanted {
        let started = Instant::now();
        let vmlinuz = match guest {
            Guest::Debian(source) => fetch_kernel(&vm_dir, source)?,
            Guest::File(path) => path.clone(),
        };
        let (_, image) = initramfs
            .iter()
            .find(|(arch, _)| *arch == guest.arch())
            .expect("an initramfs per wanted architecture");
        let name = guest.name();
        eprintln!("xtask vm-test: booting {name} ({})", vmlinuz.display());
        let log = vm_dir.join(format!("console-{}.log", name.replace('/', "_")));
        let outcome = guest::boot(guest.arch(), &vmlinuz, image, &log, tcg)?;
        let elapsed = started.elapsed();
        eprintln!(
            "xtask vm-test: {name}: {} in {:.1} s",
            outcome.summary(),
            elapsed.as_secs_f64()
        );
        results.push((guest, outcome, elapsed));
    }
    println!("\n| arch | kernel | guest uname | result | boot + tests |\n|---|---|---|---|---:|");
    for (guest, outcome, elapsed) in &results {
        println!(
            "| {} | {} | {} | {} | {:.1} s |",
            guest.arch().debian(),
            guest.name(),
            outcome.uname,
            outcome.summary(),
            elapsed.as_secs_f64()
        );
    }
    Ok(results.iter().all(|(_, outcome, _)| outcome.passed()))
}

/// The kernel's vmlinuz, downloaded and unpacked once.
fn fetch_kernel(vm_dir: &Path, source: &KernelSource) -> Result<PathBuf> {
    let vmlinuz = vm_dir
        .join(format!("kernel-{}", source.name))
        .join("vmlinuz");
    if vmlinuz.is_file() {
        return Ok(vmlinuz);
    }
    fs::create_dir_all(vmlinuz.parent().unwrap())?;
    let mut archive = Archive::new(vm_dir, source.suite, source.arch.debian());
    let package = archive.newest(source.pattern)?;
    archive.extract(
        &package,
        // boot/vmlinuz-VERSION, or usr/lib/modules/VERSION/vmlinuz since 7.x.
        |path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz"))
        },
        &vmlinuz,
    )
}

/// Builds the tests, the scenario and the shipped `fdid` for `arch`, and packs them with that
/// architecture's busybox.
fn build_initramfs(ws: &Workspace, vm_dir: &Path, arch: Arch) -> Result<PathBuf> {
    let arch_dir = vm_dir.join(arch.debian());
    fs::create_dir_all(&arch_dir)?;
    let busybox = Archive::new(vm_dir, BUSYBOX_SUITE, arch.debian()).extract(
        "busybox-static",
        |path| path.ends_with("bin/busybox"),
        &arch_dir.join("busybox"),
    )?;
    // x86_64 guests run host-built (glibc) tests with the libraries they link; arm64 ones are
    // cross-built static (musl).
    let test_target = (arch != Arch::X86_64).then(|| arch.musl_target());
    let (tests, scenario) = build_test_binaries(ws, &GUEST_TESTS, test_target)?;
    let payload = initramfs::Payload {
        busybox,
        tests,
        scenario,
        fdid: crate::dist::build(ws, arch.musl_target())?,
    };
    let image = arch_dir.join("initramfs.cpio");
    initramfs::build(&payload, &image)?;
    Ok(image)
}

/// Builds the integration tests `names` (for `target`, or the host) and returns their executables
/// and the scenario binary they start.
fn build_test_binaries(
    ws: &Workspace,
    names: &[&str],
    target: Option<&str>,
) -> Result<(Vec<PathBuf>, PathBuf)> {
    let mut command = crate::cargo(ws);
    command.args([
        "test",
        "--no-run",
        "--message-format=json",
        "--package",
        "fdid-tests",
    ]);
    for name in names {
        command.args(["--test", name]);
    }
    if let Some(target) = target {
        command.args(["--target", target]);
        crate::dist::cross_linker(&mut command, target);
    }
    let output = command
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
    if tests.len() != names.len() {
        bail!(
            "cargo built {} of {} test executables",
            tests.len(),
            names.len()
        );
    }
    let profile_dir = match target {
        Some(target) => ws.target.join(target).join("debug"),
        None => ws.target.join("debug"),
    };
    let scenario = profile_dir.join("fdid-scenario");
    if !scenario.is_file() {
        bail!("{} is missing", scenario.display());
    }
    Ok((tests, scenario))
}

/// The string value of `"key":"…"` in one line of cargo's JSON (paths have no escapes here).
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_owned())
}
