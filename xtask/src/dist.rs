//! `cargo xtask dist`: what a user without a Rust toolchain installs — in `target/dist/`, for x86_64
//! and arm64: a tarball with the static (musl) binary, its BPF program inside, the man pages, shell
//! completions, README and licenses; a .deb; and `SHA256SUMS`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{Workspace, setup};

/// (Rust target, Debian architecture, linker when cross-building).
pub const TARGETS: [(&str, &str, Option<&str>); 2] = [
    ("x86_64-unknown-linux-musl", "amd64", None),
    (
        "aarch64-unknown-linux-musl",
        "arm64",
        Some("aarch64-linux-gnu-gcc"),
    ),
];

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Builds everything; returns the artefacts written.
pub fn run(ws: &Workspace) -> Result<Vec<PathBuf>> {
    let started = std::time::Instant::now();
    let tools = setup::ensure_dist(ws)?;
    let out = ws.target.join("dist");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("emptying {}", out.display()))?;
    }
    std::fs::create_dir_all(&out)?;
    for (target, _, _) in TARGETS {
        build(ws, target)?;
    }
    // The man pages and completions, from the binary that runs here.
    let docs = ws.target.join("dist-docs");
    let host = binary(ws, TARGETS[0].0);
    run_checked(
        Command::new(&host).arg("generate").arg(&docs),
        "fdid generate",
    )?;

    let mut artefacts = Vec::new();
    for (target, deb_arch, _) in TARGETS {
        artefacts.push(tarball(ws, &out, &docs, target)?);
        artefacts.push(deb(ws, &tools, &out, target, deb_arch)?);
    }
    let names: Vec<String> = artefacts
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let sums = Command::new("sha256sum")
        .args(&names)
        .current_dir(&out)
        .output()
        .context("running sha256sum")?;
    if !sums.status.success() {
        bail!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&sums.stderr)
        );
    }
    std::fs::write(out.join("SHA256SUMS"), sums.stdout)?;
    artefacts.push(out.join("SHA256SUMS"));
    for artefact in &artefacts {
        let size = std::fs::metadata(artefact)?.len();
        println!("{:>9} KiB  {}", size / 1024, artefact.display());
    }
    println!("dist: {:.0} s", started.elapsed().as_secs_f64());
    Ok(artefacts)
}

/// Where cargo puts the release binary for `target`.
fn binary(ws: &Workspace, target: &str) -> PathBuf {
    ws.target.join(target).join("release/fdid")
}

/// Builds the static `fdid` for `target` (one of [`TARGETS`]): the binary the tarball and the .deb
/// ship, and the one `cargo xtask vm-test` runs in its guests.
pub fn build(ws: &Workspace, target: &str) -> Result<PathBuf> {
    let mut command = crate::cargo(ws);
    cross_linker(&mut command, target);
    command.args([
        "build",
        "--release",
        "--locked",
        "--package",
        "fdid-user",
        "--bin",
        "fdid",
        "--target",
        target,
    ]);
    // Symbols out: the binary ships without them (the BPF object inside keeps its BTF).
    command.env(
        format!("CARGO_TARGET_{}_RUSTFLAGS", env_name(target)),
        "-C strip=symbols",
    );
    run_checked(&mut command, &format!("cargo build --target {target}"))?;
    Ok(binary(ws, target))
}

/// Points cargo at the cross linker `target` needs, if any.
pub fn cross_linker(command: &mut Command, target: &str) {
    if let Some((_, _, Some(linker))) = TARGETS.iter().find(|(name, _, _)| *name == target) {
        command.env(format!("CARGO_TARGET_{}_LINKER", env_name(target)), linker);
    }
}

/// `aarch64-unknown-linux-musl` → `AARCH64_UNKNOWN_LINUX_MUSL`.
fn env_name(target: &str) -> String {
    target.to_uppercase().replace('-', "_")
}

fn tarball(ws: &Workspace, out: &Path, docs: &Path, target: &str) -> Result<PathBuf> {
    let name = format!("fdid-{VERSION}-{target}");
    let staging = ws.target.join("dist-staging").join(&name);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    std::fs::copy(binary(ws, target), staging.join("fdid"))?;
    for file in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
        std::fs::copy(ws.root.join(file), staging.join(file))?;
    }
    for dir in ["man", "completions"] {
        let into = staging.join(dir);
        std::fs::create_dir_all(&into)?;
        for entry in std::fs::read_dir(docs.join(dir))? {
            let entry = entry?;
            std::fs::copy(entry.path(), into.join(entry.file_name()))?;
        }
    }
    let tarball = out.join(format!("{name}.tar.gz"));
    // Reproducible: sorted, owned by root, dated by the last commit.
    let date = git_date(ws).unwrap_or_else(|| "@0".to_owned());
    run_checked(
        Command::new("tar")
            .arg("--create")
            .arg("--gzip")
            .arg("--file")
            .arg(&tarball)
            .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner"])
            .arg(format!("--mtime={date}"))
            .arg("--directory")
            .arg(staging.parent().unwrap())
            .arg(&name),
        "tar",
    )?;
    Ok(tarball)
}

fn git_date(ws: &Workspace) -> Option<String> {
    let output = Command::new("git")
        .args(["log", "-1", "--format=@%ct"])
        .current_dir(&ws.root)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn deb(ws: &Workspace, tools: &Path, out: &Path, target: &str, arch: &str) -> Result<PathBuf> {
    let deb = out.join(format!("fdid_{VERSION}_{arch}.deb"));
    let mut command = crate::toolchain_neutral_cargo();
    command
        .current_dir(&ws.root)
        .env("PATH", crate::path_with(tools)?)
        .arg(format!("+{}", setup::TOOLCHAIN))
        .args(["deb", "--package", "fdid-user", "--no-build", "--no-strip"])
        .args(["--target", target, "--output"])
        .arg(&deb);
    run_checked(&mut command, &format!("cargo deb --target {target}"))?;
    Ok(deb)
}

fn run_checked(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cargos_per_target_variables_are_named_from_the_triple() {
        assert_eq!(
            super::env_name("aarch64-unknown-linux-musl"),
            "AARCH64_UNKNOWN_LINUX_MUSL"
        );
    }
}
