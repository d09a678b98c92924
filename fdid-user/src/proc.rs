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
    Thread {
        tgid: u32,
    },
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

/// The parent of every process (`/proc/PID/stat`, field 4), for `--tree` and ancestor checks.
pub fn parents() -> std::collections::HashMap<u32, u32> {
    let mut parents = std::collections::HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return parents;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            parents.insert(pid, ppid);
        }
    }
    parents
}

/// Whether a process has exited: it is gone, or a zombie waiting for its parent (no fds any more).
pub fn has_exited(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let state = stat
        .rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next());
    matches!(state, None | Some("Z" | "X"))
}

/// The parent of one process, `None` when it is gone.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `roots` and all their descendants.
pub fn with_descendants(roots: &[u32]) -> Vec<u32> {
    let parents = parents();
    let mut children: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    for (&pid, &ppid) in &parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut stack: Vec<u32> = roots.to_vec();
    while let Some(pid) = stack.pop() {
        if seen.insert(pid) {
            stack.extend(children.get(&pid).into_iter().flatten().copied());
        }
    }
    seen.into_iter().collect()
}

/// The ancestors of `pid` (parent, grandparent, … up to init), nearest first.
pub fn ancestors(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut current = pid;
    while let Some(parent) = parent_of(current) {
        if parent == 0 || out.contains(&parent) {
            break;
        }
        out.push(parent);
        current = parent;
    }
    out
}
