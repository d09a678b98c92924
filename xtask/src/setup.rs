//! Idempotent bootstrap of everything fdid builds with, with no system LLVM:
//! - the pinned toolchains, named once in `.cargo/config.toml`: [`TOOLCHAIN`] (with clippy and rustfmt)
//!   and [`BPF_TOOLCHAIN`] (a nightly with rust-src, for `-Z build-std=core`). rustup installs them
//!   only when asked where `RUSTUP_AUTO_INSTALL=0`, so this does;
//! - [`TOOLCHAIN`] as the checkout's rustup directory override, so that plain `cargo` in it uses the
//!   pin (a `rust-toolchain.toml` would make every `cargo`, `cargo xtask` included, fail on a machine
//!   that does not have the pin yet);
//! - bpf-linker 0.13.0 built against the BPF toolchain's own `libLLVM.so.<major>.<minor>-rust-*`
//!   (exposed as `<tools>/llvm/lib/libLLVM.so` through `LLVM_PREFIX`, feature `llvm-<major>`, with an
//!   rpath to that library so it runs without `LD_LIBRARY_PATH`), installed into `<tools>/bin`, where
//!   fdid-user's build script finds it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::Workspace;

/// The stable toolchain the host code builds with.
pub const TOOLCHAIN: &str = env!("FDID_TOOLCHAIN");
/// The nightly toolchain the BPF program builds with.
pub const BPF_TOOLCHAIN: &str = env!("FDID_BPF_TOOLCHAIN");

const BPF_LINKER_VERSION: &str = "0.13.0";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Say what was checked even when nothing had to be done (`cargo xtask setup`).
    Report,
    /// Say only what was done.
    Quiet,
}

impl Verbosity {
    fn say(self, done: bool, message: &str) {
        if done || self == Verbosity::Report {
            eprintln!("xtask setup: {message}");
        }
    }
}

/// Makes sure the toolchains, the directory override and bpf-linker are in place.
pub fn ensure(ws: &Workspace, verbosity: Verbosity) -> Result<()> {
    ensure_toolchain(TOOLCHAIN, &["clippy", "rustfmt"], verbosity)?;
    ensure_toolchain(BPF_TOOLCHAIN, &["rust-src"], verbosity)?;
    ensure_override(&ws.root, verbosity)?;
    ensure_bpf_linker(ws, verbosity)
}

/// `rustup …` without the toolchain choice of the process that runs xtask.
fn rustup() -> Command {
    let mut command = Command::new("rustup");
    command.env_remove("RUSTUP_TOOLCHAIN");
    command
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {what} (is rustup installed?)"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn ensure_toolchain(name: &str, components: &[&str], verbosity: Verbosity) -> Result<()> {
    let listed = rustup()
        .args(["component", "list", "--installed", "--toolchain", name])
        .output()
        .context("running rustup (is rustup installed?)")?;
    if !listed.status.success() {
        verbosity.say(true, &format!("installing the {name} toolchain"));
        let mut install = rustup();
        install.args(["toolchain", "install", name, "--profile", "minimal"]);
        for component in components {
            install.args(["--component", component]);
        }
        return run(&mut install, &format!("rustup toolchain install {name}"));
    }
    let installed = String::from_utf8_lossy(&listed.stdout);
    let missing: Vec<&str> = components
        .iter()
        .copied()
        .filter(|component| !installed.lines().any(|line| line.starts_with(component)))
        .collect();
    if missing.is_empty() {
        verbosity.say(
            false,
            &format!("{name} ok (with {})", components.join(", ")),
        );
        return Ok(());
    }
    verbosity.say(true, &format!("adding {} to {name}", missing.join(", ")));
    run(
        rustup()
            .args(["component", "add", "--toolchain", name])
            .args(&missing),
        &format!("rustup component add --toolchain {name}"),
    )
}

/// Makes [`TOOLCHAIN`] the rustup override of the checkout, so that plain `cargo` there uses it.
fn ensure_override(root: &Path, verbosity: Verbosity) -> Result<()> {
    let active = rustup()
        .args(["show", "active-toolchain"])
        .current_dir(root)
        .output()
        .context("running rustup show active-toolchain")?;
    let active = String::from_utf8_lossy(&active.stdout);
    if active.starts_with(&format!("{TOOLCHAIN}-")) {
        verbosity.say(
            false,
            &format!("cargo in {} uses {TOOLCHAIN}", root.display()),
        );
        return Ok(());
    }
    verbosity.say(
        true,
        &format!(
            "making {TOOLCHAIN} the rustup override of {}",
            root.display()
        ),
    );
    run(
        rustup()
            .args(["override", "set", TOOLCHAIN, "--path"])
            .arg(root),
        "rustup override set",
    )
}

fn ensure_bpf_linker(ws: &Workspace, verbosity: Verbosity) -> Result<()> {
    let llvm_lib_dir = sysroot(BPF_TOOLCHAIN)?.join("lib");
    let libllvm = find_libllvm(&llvm_lib_dir)?;
    let feature = llvm_feature(&libllvm)?;
    let prefix = ws.tools.join("llvm");
    let link = prefix.join("lib/libLLVM.so");
    if fs::read_link(&link).ok().as_deref() != Some(libllvm.as_path()) {
        fs::create_dir_all(prefix.join("lib")).context("creating the LLVM prefix")?;
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;
    }

    let bpf_linker = ws.tools.join("bin/bpf-linker");
    // What the installed linker was built for: a new BPF toolchain (another LLVM) needs a rebuild.
    let stamp = ws.tools.join("bpf-linker.built-for");
    let wanted = format!("{BPF_LINKER_VERSION} {feature} {}\n", libllvm.display());
    if fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
        && linker_version(&bpf_linker).as_deref() == Some(BPF_LINKER_VERSION)
    {
        verbosity.say(
            false,
            &format!(
                "bpf-linker {BPF_LINKER_VERSION} ({feature}) ok: {}",
                bpf_linker.display()
            ),
        );
        return Ok(());
    }
    verbosity.say(
        true,
        &format!(
            "building bpf-linker {BPF_LINKER_VERSION} ({feature}, {BPF_TOOLCHAIN}'s LLVM) into {} \
             (about a minute)",
            ws.tools.display()
        ),
    );
    let _ = fs::remove_file(&stamp);
    run(
        crate::toolchain_neutral_cargo()
            .arg(format!("+{TOOLCHAIN}"))
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args(["--no-default-features", "--features", &feature, "--force"])
            .arg("--root")
            .arg(&ws.tools)
            .env("LLVM_PREFIX", &prefix)
            .env(
                "RUSTFLAGS",
                format!("-C link-arg=-Wl,-rpath,{}", llvm_lib_dir.display()),
            ),
        "cargo install bpf-linker",
    )?;
    match linker_version(&bpf_linker) {
        Some(version) if version == BPF_LINKER_VERSION => {
            fs::write(&stamp, wanted).context("writing the bpf-linker stamp")?;
            verbosity.say(true, "bpf-linker installed");
            Ok(())
        }
        other => bail!("bpf-linker was installed but reports version {other:?}"),
    }
}

fn sysroot(toolchain: &str) -> Result<PathBuf> {
    let output = Command::new("rustc")
        .env_remove("RUSTUP_TOOLCHAIN")
        .args([&format!("+{toolchain}"), "--print", "sysroot"])
        .output()
        .with_context(|| format!("running rustc +{toolchain} --print sysroot"))?;
    if !output.status.success() {
        bail!(
            "rustc +{toolchain} --print sysroot failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

/// The toolchain's own LLVM, `lib/libLLVM.so.<major>.<minor>-rust-*`.
fn find_libllvm(lib_dir: &Path) -> Result<PathBuf> {
    let entries =
        fs::read_dir(lib_dir).with_context(|| format!("reading {}", lib_dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("libLLVM.so.") && name.contains("-rust-"))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some(path) => Ok(path),
        None => bail!(
            "no libLLVM.so.*-rust-* in {} (toolchain incomplete?)",
            lib_dir.display()
        ),
    }
}

/// bpf-linker's cargo feature for a `libLLVM.so.<major>.<minor>-rust-*`: `llvm-<major>`.
fn llvm_feature(libllvm: &Path) -> Result<String> {
    let name = libllvm.file_name().and_then(|name| name.to_str());
    let major = name
        .and_then(|name| name.strip_prefix("libLLVM.so."))
        .and_then(|rest| rest.split(['.', '-']).next())
        .filter(|major| !major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()));
    match major {
        Some(major) => Ok(format!("llvm-{major}")),
        None => bail!("cannot read the LLVM version of {}", libllvm.display()),
    }
}

/// `bpf-linker --version` of an installed binary, `None` when absent or not runnable.
fn linker_version(bpf_linker: &Path) -> Option<String> {
    let output = Command::new(bpf_linker).arg("--version").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    // "bpf-linker 0.13.0"
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// cargo-fuzz, installed into `<tools>/bin` when missing; returns that directory.
pub fn ensure_cargo_fuzz(ws: &Workspace) -> Result<PathBuf> {
    ensure_cargo_tool(ws, "cargo-fuzz", None)
}

/// What `cargo xtask dist` needs: the musl targets of the pinned toolchain, the arm64 cross linker
/// (Debian's gcc-aarch64-linux-gnu) and cargo-deb; returns target/xtask-tools/bin.
pub fn ensure_dist(ws: &Workspace) -> Result<PathBuf> {
    ensure_musl_targets("dist")?;
    ensure_cargo_tool(ws, "cargo-deb", Some("3.8.0"))
}

/// The rustup targets of the static binaries (`dist::TARGETS`) and the aarch64 cross linker. `what`
/// names the command that needs them.
pub fn ensure_musl_targets(what: &str) -> Result<()> {
    let listed = rustup()
        .args(["target", "list", "--installed", "--toolchain", TOOLCHAIN])
        .output()
        .context("running rustup (is rustup installed?)")?;
    let installed = String::from_utf8_lossy(&listed.stdout).into_owned();
    for (target, _, _) in crate::dist::TARGETS {
        if !installed.lines().any(|line| line.trim() == target) {
            eprintln!("xtask {what}: adding the {target} target to {TOOLCHAIN}");
            run(
                rustup().args(["target", "add", "--toolchain", TOOLCHAIN, target]),
                &format!("rustup target add {target}"),
            )?;
        }
    }
    ensure_apt_packages(what, &[("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu")])
}

/// Installs with apt-get the packages whose binary is missing from /usr/bin and /bin: (binary,
/// package) pairs. `what` names the command that needs them.
pub fn ensure_apt_packages(what: &str, wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(binary, _)| {
            !Path::new("/usr/bin").join(binary).exists() && !Path::new("/bin").join(binary).exists()
        })
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask {what}: installing {} with apt-get",
        missing.join(" ")
    );
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .status()
    };
    if install()?.success() {
        return Ok(());
    }
    // A fresh machine's package lists may be missing or stale.
    Command::new("apt-get").arg("update").status()?;
    let status = install()?;
    if !status.success() {
        bail!("apt-get install {} failed ({status})", missing.join(" "));
    }
    Ok(())
}

/// Makes sure cargo-mutants (the version `cargo xtask mutants` is written for) is in
/// target/xtask-tools/bin; returns that directory.
pub fn ensure_cargo_mutants(ws: &Workspace) -> Result<PathBuf> {
    ensure_cargo_tool(ws, "cargo-mutants", Some("27.1.0"))
}

fn ensure_cargo_tool(ws: &Workspace, name: &str, version: Option<&str>) -> Result<PathBuf> {
    let bin = ws.tools.join("bin");
    if bin.join(name).is_file() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing {name} into {} (a minute or two, once)",
        ws.tools.display()
    );
    let mut install = crate::toolchain_neutral_cargo();
    install
        .arg(format!("+{TOOLCHAIN}"))
        .args(["install", "--locked", name, "--root"])
        .arg(&ws.tools);
    if let Some(version) = version {
        install.args(["--version", version]);
    }
    run(&mut install, &format!("cargo install {name}"))?;
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_linker_feature_follows_the_toolchains_llvm() {
        let feature = |name: &str| super::llvm_feature(Path::new(name)).ok();
        assert_eq!(
            feature("/x/lib/libLLVM.so.23.1-rust-1.101.0-nightly").as_deref(),
            Some("llvm-23")
        );
        assert_eq!(
            feature("libLLVM.so.22.1-rust-1.97.0-nightly").as_deref(),
            Some("llvm-22")
        );
        assert_eq!(feature("libLLVM.so.-rust-"), None);
    }
}
