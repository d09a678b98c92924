//! `cargo xtask mutants`: cargo-mutants over the library's pure modules and pipeline (the files and
//! the test command are in `.cargo/mutants.toml`), then the score, with the survivors the README lists
//! as equivalent set apart.

use std::{collections::BTreeSet, ffi::OsString, path::Path, process::ExitCode};

use anyhow::{Context as _, Result};

use crate::{Workspace, setup};

/// The README block that lists equivalent mutants, one `NAME — why` per line (NAME without its
/// `:line:col`, so that edits elsewhere in a file do not stale it).
const BEGIN: &str = "<!-- equivalent-mutants -->";
const END: &str = "<!-- /equivalent-mutants -->";

/// The score a run must reach, in percent of viable mutants caught.
const REQUIRED_SCORE: f64 = 90.0;

pub fn run(ws: &Workspace, args: &[OsString]) -> Result<ExitCode> {
    let tools_bin = setup::ensure_cargo_mutants(ws)?;
    let output = ws.target.join("mutants");
    // The copies cargo-mutants builds in have no rustup override and no target/xtask-tools: name the
    // toolchain, and put bpf-linker on PATH for the build script.
    let path = crate::path_with(&tools_bin)?;
    let started = std::time::Instant::now();
    let status = crate::toolchain_neutral_cargo()
        .current_dir(&ws.root)
        .env("PATH", path)
        .env("RUSTUP_TOOLCHAIN", setup::TOOLCHAIN)
        .args([
            "mutants",
            "--package",
            "fdid-user",
            "--jobs",
            "2",
            "--timeout",
            "120",
        ])
        .arg("--output")
        .arg(&output)
        .args(args)
        .status()
        .context("running cargo mutants")?;
    let elapsed = started.elapsed();
    // cargo-mutants exits 2 when mutants were missed, 3 on timeouts: the score decides here.
    if !matches!(status.code(), Some(0 | 2 | 3)) {
        anyhow::bail!("cargo mutants failed ({status})");
    }
    let out = output.join("mutants.out");
    let list = |name: &str| -> Result<Vec<String>> {
        let path = out.join(name);
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .map(str::to_owned)
            .collect())
    };
    let (caught, missed, timeout) = (
        list("caught.txt")?,
        list("missed.txt")?,
        list("timeout.txt")?,
    );
    let equivalent = equivalent_mutants(&ws.root.join("README.md"))?;
    let (listed, unexplained): (Vec<&String>, Vec<&String>) = missed
        .iter()
        .partition(|name| equivalent.contains(&without_position(name)));
    let detected = caught.len() + timeout.len();
    let viable = detected + missed.len();
    let score = |viable: usize| 100.0 * detected as f64 / viable.max(1) as f64;
    println!(
        "mutants: {viable} viable, {detected} caught ({} by timeout), {} missed ({} listed as \
         equivalent in the README) in {:.0} s",
        timeout.len(),
        missed.len(),
        listed.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "score: {:.1}% of viable mutants, {:.1}% of those not known to be equivalent",
        score(viable),
        score(viable - listed.len())
    );
    for name in &unexplained {
        println!("  survivor, not listed as equivalent: {name}");
    }
    Ok(
        if unexplained.is_empty() && score(viable) >= REQUIRED_SCORE {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// `file:line:col: what` → `file: what`.
fn without_position(name: &str) -> String {
    let mut parts = name.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(file), Some(_line), Some(_col), Some(what)) => format!("{file}:{what}"),
        _ => name.to_owned(),
    }
}

/// The mutant names the README lists as equivalent.
fn equivalent_mutants(readme: &Path) -> Result<BTreeSet<String>> {
    let text =
        std::fs::read_to_string(readme).with_context(|| format!("reading {}", readme.display()))?;
    let block = text
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(block, _)| block)
        .unwrap_or_default();
    Ok(block
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- `"))
        .filter_map(|line| line.split_once('`'))
        .map(|(name, _why)| name.to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_mutant_is_named_without_its_position() {
        assert_eq!(
            super::without_position("fdid-user/src/dev.rs:9:30: replace | with ^ in from_user"),
            "fdid-user/src/dev.rs: replace | with ^ in from_user"
        );
    }
}
