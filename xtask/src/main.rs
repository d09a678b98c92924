//! `cargo xtask`: builds fdid's BPF object with the nightly toolchain and bpf-linker, and runs things.
//!
//! Every command first makes sure the tools exist (`setup`), so a fresh machine needs nothing but the
//! stable and nightly toolchains that this machine kind ships with.

mod setup;
mod vm;

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build and run fdid")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the BPF build needs (rust-src for nightly, bpf-linker against nightly's LLVM).
    Setup,
    /// Build the BPF object (fdid-ebpf, bpfel-unknown-none).
    BuildEbpf,
    /// Build the BPF object and the `fdid` binary (release).
    Build,
    /// Build, then run `fdid` with the given arguments, e.g. `cargo xtask run -- --pid $$`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Build everything (release), then run the side-by-side benchmark (`fdid-bench`): writes
    /// target/bench/report.md and target/bench/time-vs-fds.svg. Arguments go to fdid-bench
    /// (`--sizes 10000,100000`, `--runs 5`, `--quick`).
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Fuzz a target with cargo-fuzz (installed into target/xtask-tools when missing): `decode` (the
    /// record-stream decoder) or `identify` (identification and ids on arbitrary records).
    Fuzz {
        #[arg(default_value = "decode")]
        target: String,
        /// How long to run.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Run the BPF integration tests in KVM guests on Debian kernels (default: 5.10, 6.1 and 6.12).
    VmTest {
        /// A kernel: 5.10, 6.1, 6.12 or a path to a vmlinuz (repeatable).
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// Use software emulation (TCG) instead of KVM (chosen by itself when KVM cannot boot the
        /// kernels).
        #[arg(long)]
        tcg: bool,
    },
    /// Build the BPF object, then run every test of the workspace (they load the program for real).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let ws = Workspace::locate()?;
    match cli.command {
        Cmd::Setup => {
            setup::ensure(&ws, setup::Verbosity::Report)?;
        }
        Cmd::BuildEbpf => {
            build_ebpf(&ws)?;
        }
        Cmd::Build => {
            build_user(&ws, &build_ebpf(&ws)?)?;
        }
        Cmd::Run { args } => {
            let object = build_ebpf(&ws)?;
            build_user(&ws, &object)?;
            let status = Command::new(ws.target.join("release/fdid"))
                .args(args)
                .status()
                .context("running target/release/fdid")?;
            return Ok(exit_code(status));
        }
        Cmd::Bench { args } => {
            let object = build_ebpf(&ws)?;
            build_release(
                &ws,
                &object,
                &[
                    "--package",
                    "fdid-user",
                    "--package",
                    "fdid-tests",
                    "--bins",
                ],
            )?;
            let status = Command::new(ws.target.join("release/fdid-bench"))
                .args(["--out"])
                .arg(ws.target.join("bench"))
                .args(args)
                .status()
                .context("running fdid-bench")?;
            return Ok(exit_code(status));
        }
        Cmd::Fuzz { target, seconds } => {
            let object = build_ebpf(&ws)?;
            let tools_bin = setup::ensure_cargo_fuzz(&ws)?;
            let path = std::env::join_paths(std::iter::once(tools_bin).chain(
                std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
            ))?;
            let status = toolchain_neutral_cargo()
                .current_dir(ws.root.join("fdid-user"))
                .env("PATH", path)
                .env(OBJECT_ENV, &object)
                .args([
                    "+nightly",
                    "fuzz",
                    "run",
                    &target,
                    "--",
                    &format!("-max_total_time={seconds}"),
                ])
                .status()
                .context("running cargo fuzz")?;
            return Ok(exit_code(status));
        }
        Cmd::VmTest { kernels, tcg } => {
            let object = build_ebpf(&ws)?;
            let passed = vm::run(&ws, &object, &vm::VmTest { kernels, tcg })?;
            return Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Cmd::Test { args } => {
            let object = build_ebpf(&ws)?;
            let status = cargo(&ws)
                .args(["test", "--workspace"])
                .args(args)
                .env(OBJECT_ENV, &object)
                .status()
                .context("running cargo test")?;
            return Ok(exit_code(status));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How `fdid-user`'s build script learns where the BPF object is.
const OBJECT_ENV: &str = "FDID_BPF_OBJECT";

/// Paths of the workspace this xtask belongs to.
pub struct Workspace {
    pub root: PathBuf,
    pub target: PathBuf,
    /// Project-local tools (bpf-linker and the LLVM prefix it is built against).
    pub tools: PathBuf,
}

impl Workspace {
    fn locate() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask has no parent directory")?
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let tools = target.join("xtask-tools");
        Ok(Self {
            root,
            target,
            tools,
        })
    }
}

/// A `cargo` command free of the toolchain choice `cargo xtask` itself runs under, so that a
/// `+nightly` argument (or the default toolchain) is what the rustup proxy picks.
pub fn toolchain_neutral_cargo() -> Command {
    let mut command = Command::new("cargo");
    for variable in ["RUSTUP_TOOLCHAIN", "RUSTC", "RUSTDOC", "CARGO"] {
        command.env_remove(variable);
    }
    command
}

/// A `cargo` command for the host build, run from the workspace root.
fn cargo(ws: &Workspace) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(&ws.root);
    command
}

/// Builds the BPF program with nightly + bpf-linker and returns the object's path.
fn build_ebpf(ws: &Workspace) -> Result<PathBuf> {
    let tools = setup::ensure(ws, setup::Verbosity::Quiet)?;
    let target_dir = ws.target.join("bpf");
    let status = toolchain_neutral_cargo()
        .current_dir(&ws.root)
        .arg("+nightly")
        .args([
            "build",
            "--package",
            "fdid-ebpf",
            "--bin",
            "fdid-ebpf",
            "--release",
        ])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .args(["--config", "profile.release.panic=\"abort\""])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_TARGET_BPFEL_UNKNOWN_NONE_LINKER", &tools.bpf_linker)
        .env(
            "CARGO_TARGET_BPFEL_UNKNOWN_NONE_RUSTFLAGS",
            "-C debuginfo=2 -C link-arg=--btf",
        )
        .env("LD_LIBRARY_PATH", &tools.llvm_lib_dir)
        .status()
        .context("running cargo +nightly build for the BPF target")?;
    if !status.success() {
        bail!("building the BPF program failed ({status})");
    }
    let object = target_dir.join("bpfel-unknown-none/release/fdid-ebpf");
    if !object.is_file() {
        bail!(
            "the BPF build succeeded but {} is missing",
            object.display()
        );
    }
    Ok(object)
}

/// Builds the `fdid` binary (release) embedding `object`.
fn build_user(ws: &Workspace, object: &Path) -> Result<()> {
    build_release(ws, object, &["--package", "fdid-user", "--bin", "fdid"])
}

/// `cargo build --release ARGS` with the BPF object `object` embedded.
fn build_release(ws: &Workspace, object: &Path, args: &[&str]) -> Result<()> {
    let status = cargo(ws)
        .args(["build", "--release"])
        .args(args)
        .env(OBJECT_ENV, object)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}
