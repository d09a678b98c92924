//! Small `/proc` readers used for display and for checking user input.

use std::{fs, path::PathBuf};

/// The command name of a process (`/proc/PID/comm`), or `?` when it is gone.
pub fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|name| name.trim_end().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// What an fd points to (`readlink /proc/PID/fd/N`), for display only.
pub fn fd_path(pid: u32, fd: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()
}

/// What a number given as `--pid` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PidKind {
    Process,
    /// A thread of the process `tgid`.
    Thread { tgid: u32 },
    Missing,
}

/// Tells whether `pid` is a process, a thread of one, or nothing (in fdid's pid namespace).
pub fn pid_kind(pid: u32) -> PidKind {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return PidKind::Missing;
    };
    let tgid = status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|value| value.trim().parse().ok());
    match tgid {
        Some(tgid) if tgid != pid => PidKind::Thread { tgid },
        Some(_) => PidKind::Process,
        None => PidKind::Missing,
    }
}
