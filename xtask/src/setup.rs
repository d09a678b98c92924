//! Idempotent bootstrap of the BPF toolchain, with no system LLVM:
//! - `rust-src` for the nightly toolchain (`-Z build-std=core` for bpfel-unknown-none);
//! - bpf-linker 0.13.0 built with `--features llvm-22` against the nightly toolchain's own
//!   `libLLVM.so.22.1-rust-*`, exposed as `<tools>/llvm/lib/libLLVM.so` through `LLVM_PREFIX`,
//!   and installed into `<tools>/bin` (project-local, under `target/`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::Workspace;

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_FEATURE: &str = "llvm-22";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Say what was checked even when nothing had to be done (`cargo xtask setup`).
    Report,
    /// Say only what was done.
    Quiet,
}

/// The tools a BPF build needs, ready to use.
pub struct Tools {
    pub bpf_linker: PathBuf,
    /// Directory holding nightly's libLLVM, which bpf-linker loads at run time.
    pub llvm_lib_dir: PathBuf,
}

pub fn ensure(ws: &Workspace, verbosity: Verbosity) -> Result<Tools> {
    let say = |message: &str| eprintln!("xtask setup: {message}");
    ensure_rust_src(verbosity, &say)?;

    let sysroot = nightly_sysroot()?;
    let llvm_lib_dir = sysroot.join("lib");
    let libllvm = find_libllvm(&llvm_lib_dir)?;
    let prefix = ws.tools.join("llvm");
    let link = prefix.join("lib/libLLVM.so");
    if fs::read_link(&link).ok().as_deref() != Some(libllvm.as_path()) {
        fs::create_dir_all(prefix.join("lib")).context("creating the LLVM prefix")?;
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("linking {} to {}", link.display(), libllvm.display()))?;
        say(&format!(
            "LLVM prefix: {} -> {}",
            link.display(),
            libllvm.display()
        ));
    } else if verbosity == Verbosity::Report {
        say(&format!("LLVM prefix ok: {}", link.display()));
    }

    let bpf_linker = ws.tools.join("bin/bpf-linker");
    if linker_version(&bpf_linker, &llvm_lib_dir).as_deref() == Some(BPF_LINKER_VERSION) {
        if verbosity == Verbosity::Report {
            say(&format!(
                "bpf-linker {BPF_LINKER_VERSION} ok: {}",
                bpf_linker.display()
            ));
        }
    } else {
        say(&format!(
            "building bpf-linker {BPF_LINKER_VERSION} ({LLVM_FEATURE}) into {} (about a minute)",
            ws.tools.display()
        ));
        let status = crate::toolchain_neutral_cargo()
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args([
                "--no-default-features",
                "--features",
                LLVM_FEATURE,
                "--force",
            ])
            .arg("--root")
            .arg(&ws.tools)
            .env("LLVM_PREFIX", &prefix)
            .status()
            .context("running cargo install bpf-linker")?;
        if !status.success() {
            bail!("cargo install bpf-linker failed ({status})");
        }
        match linker_version(&bpf_linker, &llvm_lib_dir) {
            Some(version) if version == BPF_LINKER_VERSION => say("bpf-linker installed"),
            other => bail!("bpf-linker was installed but reports version {other:?}"),
        }
    }
    Ok(Tools {
        bpf_linker,
        llvm_lib_dir,
    })
}

fn ensure_rust_src(verbosity: Verbosity, say: &dyn Fn(&str)) -> Result<()> {
    let output = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .context("running rustup (is rustup installed?)")?;
    if !output.status.success() {
        bail!(
            "the nightly toolchain is not installed (rustup said: {})",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    if String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|line| line.starts_with("rust-src"))
    {
        if verbosity == Verbosity::Report {
            say("rust-src for nightly ok");
        }
        return Ok(());
    }
    say("adding rust-src to the nightly toolchain");
    let status = Command::new("rustup")
        .args(["component", "add", "rust-src", "--toolchain", "nightly"])
        .status()
        .context("running rustup component add")?;
    if !status.success() {
        bail!("rustup component add rust-src --toolchain nightly failed ({status})");
    }
    Ok(())
}

fn nightly_sysroot() -> Result<PathBuf> {
    let output = Command::new("rustc")
        .env_remove("RUSTUP_TOOLCHAIN")
        .args(["+nightly", "--print", "sysroot"])
        .output()
        .context("running rustc +nightly --print sysroot")?;
    if !output.status.success() {
        bail!(
            "rustc +nightly --print sysroot failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

/// The nightly toolchain's own LLVM, `lib/libLLVM.so.<major>.<minor>-rust-*`.
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
            "no libLLVM.so.*-rust-* in {} (nightly toolchain incomplete?)",
            lib_dir.display()
        ),
    }
}

/// `bpf-linker --version` of an installed binary, `None` when absent or not runnable.
fn linker_version(bpf_linker: &Path, llvm_lib_dir: &Path) -> Option<String> {
    let output = Command::new(bpf_linker)
        .arg("--version")
        .env("LD_LIBRARY_PATH", llvm_lib_dir)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    // "bpf-linker 0.13.0"
    text.split_whitespace().nth(1).map(str::to_owned)
}

/// cargo-fuzz, installed into `<tools>/bin` when missing; returns that directory.
pub fn ensure_cargo_fuzz(ws: &Workspace) -> Result<PathBuf> {
    let bin = ws.tools.join("bin");
    if bin.join("cargo-fuzz").is_file() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing cargo-fuzz into {} (a minute or two, once)",
        ws.tools.display()
    );
    let status = crate::toolchain_neutral_cargo()
        .args(["install", "cargo-fuzz", "--root"])
        .arg(&ws.tools)
        .status()
        .context("running cargo install cargo-fuzz")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(bin)
}
