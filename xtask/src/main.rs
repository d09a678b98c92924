//! `cargo xtask`: installs fdid's pinned toolchains and bpf-linker, builds, and runs things.
//!
//! xtask itself builds with whatever stable toolchain rustup has (it asks for rustc 1.88); every command
//! first makes sure the pinned toolchains and tools exist (`setup`) and then drives them explicitly, so a
//! fresh machine needs nothing but rustup. The BPF object is built by `fdid-user`'s build script.

mod dist;
mod mutants;
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
    /// Install the pinned toolchains (FDID_TOOLCHAIN with clippy and rustfmt, FDID_BPF_TOOLCHAIN with
    /// rust-src), make FDID_TOOLCHAIN this checkout's rustup override, and build bpf-linker against the
    /// BPF toolchain's LLVM. Afterwards plain `cargo build`, `cargo test` and `cargo install --path
    /// fdid-user` work.
    Setup,
    /// Build the `fdid` binary (release), its BPF program included.
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
    /// record-stream decoder) or `identify` (identification and ids on arbitrary records), starting
    /// from the committed seeds in fdid-user/fuzz/seeds/TARGET.
    Fuzz {
        #[arg(default_value = "decode")]
        target: String,
        /// How long to run.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Build what a user installs, into target/dist/: for x86_64 and arm64, a tarball with the static
    /// (musl) `fdid` — its BPF program inside — the man pages, shell completions, README and
    /// licenses, a .deb, and SHA256SUMS. Installs the rustup targets, the arm64 cross linker (apt) and
    /// cargo-deb (into target/xtask-tools) when missing.
    Dist,
    /// Mutation testing (cargo-mutants, installed into target/xtask-tools when missing) of the
    /// library's pure modules and pipeline, as listed in .cargo/mutants.toml; prints the score and
    /// fails below 90% or on a survivor the README does not list as equivalent. Results in
    /// target/mutants/mutants.out. Arguments go to cargo-mutants (e.g. `--file fdid-user/src/tree.rs`).
    Mutants {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Run the BPF integration tests and the shipped `fdid` in guests on Debian kernels (default:
    /// x86_64 5.10, 6.1, 6.12 and the newest Debian serves; arm64 6.12).
    VmTest {
        /// A kernel: 5.10, 6.1, 6.12, newest (x86_64), arm64, or the path of an x86_64 vmlinuz
        /// (repeatable).
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
    let verbosity = match cli.command {
        Cmd::Setup => setup::Verbosity::Report,
        _ => setup::Verbosity::Quiet,
    };
    setup::ensure(&ws, verbosity)?;
    match cli.command {
        Cmd::Setup => {}
        Cmd::Build => {
            build_release(&ws, &["--package", "fdid-user", "--bin", "fdid"])?;
        }
        Cmd::Run { args } => {
            build_release(&ws, &["--package", "fdid-user", "--bin", "fdid"])?;
            let status = Command::new(ws.target.join("release/fdid"))
                .args(args)
                .status()
                .context("running target/release/fdid")?;
            return Ok(exit_code(status));
        }
        Cmd::Bench { args } => {
            build_release(
                &ws,
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
            let tools_bin = setup::ensure_cargo_fuzz(&ws)?;
            let corpus = ws.root.join("fdid-user/fuzz/corpus").join(&target);
            std::fs::create_dir_all(&corpus)
                .with_context(|| format!("creating {}", corpus.display()))?;
            let status = toolchain_neutral_cargo()
                .current_dir(ws.root.join("fdid-user"))
                .env("PATH", path_with(&tools_bin)?)
                .arg(format!("+{}", setup::BPF_TOOLCHAIN))
                // New inputs go to corpus/TARGET (not committed); seeds/TARGET is the committed,
                // minimized corpus every run starts from.
                .args(["fuzz", "run", &target])
                .arg(format!("fuzz/corpus/{target}"))
                .arg(format!("fuzz/seeds/{target}"))
                .args(["--", &format!("-max_total_time={seconds}")])
                .status()
                .context("running cargo fuzz")?;
            return Ok(exit_code(status));
        }
        Cmd::Mutants { args } => return mutants::run(&ws, &args),
        Cmd::Dist => {
            dist::run(&ws)?;
        }
        Cmd::VmTest { kernels, tcg } => {
            let passed = vm::run(&ws, &vm::VmTest { kernels, tcg })?;
            return Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Cmd::Test { args } => {
            let status = cargo(&ws)
                .args(["test", "--workspace"])
                .args(args)
                .status()
                .context("running cargo test")?;
            return Ok(exit_code(status));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Paths of the workspace this xtask belongs to.
pub struct Workspace {
    pub root: PathBuf,
    pub target: PathBuf,
    /// Project-local tools (bpf-linker and the LLVM prefix it is built against), always under the
    /// checkout's own `target/`, where fdid-user's build script looks for bpf-linker.
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
        let tools = root.join("target/xtask-tools");
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

/// `PATH` with `dir` in front.
pub fn path_with(dir: &Path) -> Result<OsString> {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    Ok(std::env::join_paths(
        std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&rest)),
    )?)
}

/// A `cargo` command for the host build on the pinned toolchain, run from the workspace root.
fn cargo(ws: &Workspace) -> Command {
    let mut command = toolchain_neutral_cargo();
    command
        .current_dir(&ws.root)
        .arg(format!("+{}", setup::TOOLCHAIN));
    command
}

/// `cargo build --release ARGS` (the BPF program is built and embedded by fdid-user's build script).
fn build_release(ws: &Workspace, args: &[&str]) -> Result<()> {
    let status = cargo(ws)
        .args(["build", "--release"])
        .args(args)
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
