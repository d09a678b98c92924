//! One guest: boot a kernel with an initramfs under QEMU, echo its console, and read what its tests
//! reported.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use super::Arch;

/// Boot and test timeout per guest.
const GUEST_TIMEOUT: Duration = Duration::from_secs(420);

/// What a guest reported.
pub struct Outcome {
    pub uname: String,
    /// (test binary, exit status)
    exits: Vec<(String, i32)>,
    done: bool,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.done && !self.exits.is_empty() && self.exits.iter().all(|(_, status)| *status == 0)
    }
    pub fn summary(&self) -> String {
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
pub fn boot(
    arch: Arch,
    vmlinuz: &Path,
    initramfs: &Path,
    log: &Path,
    tcg: bool,
) -> Result<Outcome> {
    let mut qemu = Command::new(arch.qemu());
    qemu.args(arch.machine(tcg))
        .args(["-m", "2048", "-smp", "2", "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(format!("console={} panic=-1 quiet", arch.console()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = qemu
        .spawn()
        .with_context(|| format!("starting {}", arch.qemu()))?;
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
