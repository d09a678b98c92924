//! Files out of Debian packages — kernels, busybox — fetched with `apt-get download` through a
//! private apt configuration per suite and architecture (the system's sources are not touched) and
//! cached under target/vm/.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// One suite of one architecture, with its package lists under `target/vm/apt-SUITE-ARCH`.
pub struct Archive {
    dir: PathBuf,
    suite: &'static str,
    arch: &'static str,
    updated: bool,
}

impl Archive {
    pub fn new(vm_dir: &Path, suite: &'static str, arch: &'static str) -> Self {
        Self {
            dir: vm_dir.join(format!("apt-{suite}-{arch}")),
            suite,
            arch,
            updated: false,
        }
    }

    /// apt-get / apt-cache with this archive's private configuration.
    fn apt(&self, tool: &str) -> Command {
        let mut command = Command::new(tool);
        let option = |name: &str, value: &Path| format!("{name}={}", value.display());
        command
            .arg("-o")
            .arg(option(
                "Dir::Etc::sourcelist",
                &self.dir.join("sources.list"),
            ))
            .args(["-o", "Dir::Etc::sourceparts=/nonexistent"])
            .arg("-o")
            .arg(option("Dir::State::Lists", &self.dir.join("lists")))
            .arg("-o")
            .arg(option("Dir::Cache", &self.dir.join("cache")))
            .arg("-o")
            .arg(format!("APT::Architecture={}", self.arch))
            .arg("-o")
            .arg(format!("APT::Architectures={}", self.arch));
        command
    }

    fn update(&mut self) -> Result<()> {
        if self.updated {
            return Ok(());
        }
        fs::create_dir_all(self.dir.join("lists/partial"))?;
        fs::create_dir_all(self.dir.join("cache/archives/partial"))?;
        fs::write(
            self.dir.join("sources.list"),
            format!(
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian {} main\n",
                self.suite
            ),
        )?;
        let status = self
            .apt("apt-get")
            .arg("update")
            .stdout(Stdio::null())
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!(
                "apt-get update for {} {} failed ({status})",
                self.suite,
                self.arch
            );
        }
        self.updated = true;
        Ok(())
    }

    /// The newest package whose name matches `pattern` (numeric parts compared as numbers).
    pub fn newest(&mut self, pattern: &str) -> Result<String> {
        self.update()?;
        let output = self
            .apt("apt-cache")
            .args(["search", "--names-only", pattern])
            .output()?;
        let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect();
        names.sort_by_key(|name| version_key(name));
        names.pop().with_context(|| {
            format!(
                "no package matches {pattern} in {} ({})",
                self.suite, self.arch
            )
        })
    }

    /// Downloads `package`, unpacks it and copies the first file for which `wanted` holds (given the
    /// path inside the package) to `to`. Nothing is fetched when `to` exists.
    pub fn extract(
        &mut self,
        package: &str,
        wanted: impl Fn(&Path) -> bool,
        to: &Path,
    ) -> Result<PathBuf> {
        if to.is_file() {
            return Ok(to.to_path_buf());
        }
        self.update()?;
        let work = to.with_extension("download");
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work)?;
        eprintln!(
            "xtask vm-test: downloading {package} ({} {})",
            self.suite, self.arch
        );
        let status = self
            .apt("apt-get")
            .current_dir(&work)
            .args(["download", package])
            .status()?;
        if !status.success() {
            bail!("apt-get download {package} failed ({status})");
        }
        let deb = fs::read_dir(&work)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .context("the downloaded .deb")?;
        let unpacked = work.join("unpacked");
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&unpacked)
            .status()?;
        if !status.success() {
            bail!("dpkg-deb -x {} failed", deb.display());
        }
        let file = find(&unpacked, &unpacked, &wanted)?
            .with_context(|| format!("{package} has no such file"))?;
        fs::copy(&file, to)?;
        let _ = fs::remove_dir_all(&work);
        Ok(to.to_path_buf())
    }
}

/// The first regular file under `dir` whose path relative to `root` satisfies `wanted`.
fn find(root: &Path, dir: &Path, wanted: &impl Fn(&Path) -> bool) -> Result<Option<PathBuf>> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if let Some(found) = find(root, &path, wanted)? {
                return Ok(Some(found));
            }
        } else if kind.is_file() && wanted(path.strip_prefix(root)?) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Numeric parts of a package name, for picking the newest.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_newest_kernel_is_chosen_by_numbers_not_by_text() {
        let mut names = [
            "linux-image-6.12.9+bpo-amd64",
            "linux-image-6.12.48+deb12-amd64",
            "linux-image-6.9.1+bpo-amd64",
        ];
        names.sort_by_key(|name| super::version_key(name));
        assert_eq!(names[2], "linux-image-6.12.48+deb12-amd64");
    }
}
