//! Ordinary sizes, the everyday questions: one process holding 10 fds, and the whole idle machine,
//! with lsof and lsfd beside fdid and fdid's time as a ratio of each.

use std::{
    fmt::Write as _,
    io::BufRead as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result};

use super::{measure, stats::median};

/// A process holding exactly fds 0–9 (a pipe, /dev/null and its dups), until dropped.
struct TenFds {
    child: Child,
    pid: u32,
}

impl TenFds {
    fn start() -> Result<Self> {
        let mut command = fdid_tests::with_stdio_only(Command::new("sh"));
        command
            .args([
                "-c",
                "exec 3</dev/null 4<&3 5<&3 6>/dev/null 7</dev/zero 8<&7 9</dev/null; echo $$; \
                 exec sleep 600",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = command.spawn().context("starting sh")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().context("sh stdout")?)
            .read_line(&mut line)?;
        let pid = line.trim().parse().context("the shell's pid")?;
        Ok(Self { child, pid })
    }
}

impl Drop for TenFds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One row: fdid, and the lsof and lsfd commands that answer the same question.
struct Case {
    name: String,
    fdid: Command,
    lsof: Option<Command>,
    lsfd: Option<Command>,
}

fn command(program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    command
}

/// Median wall time of `runs` runs, `None` when the command fails.
fn time(command: &Command, runs: usize) -> Option<Duration> {
    let walls: Option<Vec<Duration>> = (0..runs)
        .map(|_| measure(command).ok().map(|m| m.wall))
        .collect();
    walls.map(median)
}

/// Times every case and returns the report's table.
pub fn run(
    fdid: &Path,
    lsof: Option<&PathBuf>,
    lsfd: Option<&PathBuf>,
    runs: usize,
) -> Result<String> {
    let process = TenFds::start()?;
    let pid = process.pid.to_string();
    let with = |tool: Option<&PathBuf>, args: &[&str]| tool.map(|path| command(path, args));
    let cases = [
        Case {
            name: "one process, 10 fds: `fdid --pid P`".into(),
            fdid: command(fdid, &["--pid", &pid]),
            lsof: with(lsof, &["-n", "-P", "-p", &pid]),
            lsfd: with(lsfd, &["-p", &pid]),
        },
        Case {
            name: "one process, 10 fds: `fdid --pid P --scope-only` (planner: procfs)".into(),
            fdid: command(fdid, &["--pid", &pid, "--scope-only"]),
            lsof: with(lsof, &["-n", "-P", "-p", &pid]),
            lsfd: with(lsfd, &["-p", &pid]),
        },
        Case {
            name: "one process, 10 fds: `fdid --pid P --scope-only --collector bpf` (BPF path)"
                .into(),
            fdid: command(fdid, &["--pid", &pid, "--scope-only", "--collector", "bpf"]),
            lsof: with(lsof, &["-n", "-P", "-p", &pid]),
            lsfd: with(lsfd, &["-p", &pid]),
        },
        Case {
            name: "whole idle machine: `fdid`".into(),
            fdid: command(fdid, &[]),
            lsof: with(lsof, &["-n", "-P"]),
            lsfd: with(lsfd, &[]),
        },
    ];
    let files = std::fs::read_to_string("/proc/sys/fs/file-nr").unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Ordinary sizes (median of {runs} runs; {} open files system-wide):\n",
        files.split_whitespace().next().unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "| case | fdid | lsof | lsfd | fdid ÷ lsof | fdid ÷ lsfd |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let ms = |wall: Option<Duration>| match wall {
        Some(wall) => format!("{:.1} ms", wall.as_secs_f64() * 1e3),
        None => "—".into(),
    };
    let ratio = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", a.as_secs_f64() / b.as_secs_f64()),
        _ => "—".into(),
    };
    for case in cases {
        let fdid = time(&case.fdid, runs);
        let lsof = case.lsof.as_ref().and_then(|c| time(c, runs));
        let lsfd = case.lsfd.as_ref().and_then(|c| time(c, runs));
        eprintln!(
            "   {}: fdid {} lsof {} lsfd {}",
            case.name,
            ms(fdid),
            ms(lsof),
            ms(lsfd)
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            case.name,
            ms(fdid),
            ms(lsof),
            ms(lsfd),
            ratio(fdid, lsof),
            ratio(fdid, lsfd)
        );
    }
    drop(process);
    Ok(out)
}
