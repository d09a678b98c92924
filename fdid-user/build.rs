//! Builds fdid's BPF program — the `fdid-ebpf` package's bin target, for `bpfel-unknown-none` — and
//! leaves it at `$OUT_DIR/fdid-ebpf`, which `src/collect/bpf.rs` embeds. This is what aya-build does,
//! with the tools `cargo xtask setup` installs: the pinned nightly named by `FDID_BPF_TOOLCHAIN` (set in
//! `.cargo/config.toml`) and bpf-linker under `target/xtask-tools/bin` (or on `PATH`).
//!
//! Without those tools (a `cargo check` on a machine that never ran setup) the build goes on with an
//! empty object and a warning: the binary then says that it has no BPF program and `--collector auto`
//! uses procfs. When the tools are there, a failing BPF build fails the build.

use std::{
    env,
    ffi::OsString,
    fs,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

const TOOLCHAIN_ENV: &str = "FDID_BPF_TOOLCHAIN";
const BPF_TARGET: &str = "bpfel-unknown-none";

enum Outcome {
    Built(PathBuf),
    /// The tools are not installed: why, in a few words.
    NoTools(String),
    /// The tools are there but the build failed.
    Failed(String),
}

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("fdid-user sits in the workspace");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("fdid-ebpf");
    let ebpf = root.join("fdid-ebpf");
    println!("cargo::rerun-if-changed={}", ebpf.join("src").display());
    println!(
        "cargo::rerun-if-changed={}",
        ebpf.join("Cargo.toml").display()
    );
    println!(
        "cargo::rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!("cargo::rerun-if-env-changed={TOOLCHAIN_ENV}");
    let local_linker = root.join("target/xtask-tools/bin/bpf-linker");
    // Setup writes the linker last: its appearance means the tools are complete.
    println!("cargo::rerun-if-changed={}", local_linker.display());

    match build(root, &local_linker) {
        Outcome::Built(object) => {
            if let Err(error) = fs::copy(&object, &out) {
                println!(
                    "cargo::error=copying {} to {}: {error}",
                    object.display(),
                    out.display()
                );
            }
        }
        Outcome::NoTools(why) => {
            println!(
                "cargo::warning=fdid is built without its BPF program ({why}): run `cargo xtask \
                 setup` in the fdid checkout, then build again"
            );
            if let Err(error) = fs::write(&out, []) {
                println!("cargo::error=writing {}: {error}", out.display());
            }
        }
        Outcome::Failed(why) => println!("cargo::error=building the BPF program failed: {why}"),
    }
}

fn build(root: &Path, local_linker: &Path) -> Outcome {
    let Some(toolchain) = env::var_os(TOOLCHAIN_ENV) else {
        return Outcome::NoTools(format!(
            "{TOOLCHAIN_ENV} is unset: cargo was not run from the fdid checkout"
        ));
    };
    let linker = if local_linker.is_file() {
        local_linker.to_path_buf()
    } else if let Some(found) = on_path("bpf-linker") {
        found
    } else {
        return Outcome::NoTools("bpf-linker is not installed".into());
    };
    let toolchain = toolchain.to_string_lossy().into_owned();
    match Command::new("rustup")
        .args([
            "component",
            "list",
            "--installed",
            "--toolchain",
            &toolchain,
        ])
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
    {
        Ok(output) if !output.status.success() => {
            return Outcome::NoTools(format!("the {toolchain} toolchain is not installed"));
        }
        Ok(output) => {
            if !String::from_utf8_lossy(&output.stdout)
                .lines()
                .any(|line| line.starts_with("rust-src"))
            {
                return Outcome::NoTools(format!("{toolchain} has no rust-src"));
            }
        }
        Err(error) => return Outcome::NoTools(format!("rustup cannot run: {error}")),
    }

    let target_dir = root.join("target/bpf");
    let mut cargo = Command::new("rustup");
    cargo
        .args(["run", &toolchain, "cargo", "build", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .args(["--package", "fdid-ebpf", "--bin", "fdid-ebpf", "--release"])
        .args(["--target", BPF_TARGET, "-Z", "build-std=core"])
        .args(["--config", "profile.release.panic=\"abort\""])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("CARGO_TARGET_BPFEL_UNKNOWN_NONE_LINKER", &linker)
        // Replaces the outer build's flags (a fuzzing build's sanitizers, say).
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-Cdebuginfo=2\x1f-Clink-arg=--btf",
        );
    for (key, _) in env::vars_os() {
        if is_outer_build_variable(&key) {
            cargo.env_remove(key);
        }
    }
    // Build script stdout is read by cargo as directives: the nested build prints to stderr only.
    match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(stderr) => cargo.stdout(Stdio::from(stderr)),
        Err(_) => cargo.stdout(Stdio::null()),
    };
    match cargo.status() {
        Ok(status) if status.success() => {
            let object = target_dir.join(BPF_TARGET).join("release/fdid-ebpf");
            if object.is_file() {
                Outcome::Built(object)
            } else {
                Outcome::Failed(format!("{} is missing after the build", object.display()))
            }
        }
        Ok(status) => Outcome::Failed(format!(
            "cargo build for {BPF_TARGET} with {toolchain}: {status} (its messages are above)"
        )),
        Err(error) => Outcome::Failed(format!("cannot run rustup: {error}")),
    }
}

/// Variables that cargo set for this build script or for the outer build, which must not leak into
/// the nested one (it sets its own): the toolchain choice, wrappers (clippy's), flags, and the build
/// script environment (`CARGO_CFG_*` of the host, `OUT_DIR`, …).
fn is_outer_build_variable(key: &OsString) -> bool {
    let Some(key) = key.to_str() else {
        return false;
    };
    const EXACT: [&str; 17] = [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTDOC",
        "RUSTC_LINKER",
        "RUSTFLAGS",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "OPT_LEVEL",
        "PROFILE",
        "DEBUG",
    ];
    const PREFIXES: [&str; 5] = [
        "CARGO_CFG_",
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "DEP_",
        "__CARGO",
    ];
    EXACT.contains(&key) || PREFIXES.iter().any(|prefix| key.starts_with(prefix))
}

fn on_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
