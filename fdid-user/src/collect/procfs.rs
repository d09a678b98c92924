//! The procfs collector: the same records from `/proc/PID/fd` and `/proc/PID/fdinfo`.
//!
//! A few syscalls per fd and blind to pointers, so its records carry no file hash and no reference
//! count; grouping them needs kcmp. Like the BPF iterator it visits each fd table once: a process's
//! table, plus the table of each of its threads that has one of its own (`unshare(CLONE_FILES)`,
//! found with `kcmp(KCMP_FILES)`), with `tid` set to that thread. Its `files_hash` is a signature of
//! the table's contents, so that processes sharing one table (`clone(CLONE_FILES)`) become candidates
//! that the survey confirms with `kcmp(KCMP_FILES)`, as it does for the BPF collector's pointer hashes.
//! It is the tests' independent oracle and the fallback without BPF.

use std::{
    fs,
    hash::{Hash as _, Hasher as _},
    os::unix::fs::MetadataExt,
    path::Path,
    time::Instant,
};

use super::{Collection, Source, Target};
use crate::{kcmp, record::FdRecord, verify::Evidence};

/// Walks `/proc` for `target`. Processes and fds that vanish during the walk are skipped.
pub fn collect(target: &Target) -> std::io::Result<Collection> {
    let started = Instant::now();
    let pids = match target {
        Target::Pids(pids) => pids.clone(),
        Target::All => all_pids()?,
    };
    let mut records = Vec::new();
    let mut unreadable = Vec::new();
    for pid in pids {
        if let Err(error) = collect_process(pid, &mut records)
            && error.kind() == std::io::ErrorKind::PermissionDenied
        {
            unreadable.push(pid);
        }
    }
    let sockets = super::procnet::sockets_of(&records);
    Ok(Collection {
        records,
        sockets,
        source: Source::Procfs,
        evidence: Evidence {
            hashed: false,
            full_hash: false,
        },
        kernel_filtered: false,
        unreadable,
        elapsed: started.elapsed(),
    })
}

/// Every process id listed in `/proc`.
pub fn all_pids() -> std::io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = fs::read_dir("/proc")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// Reads one process's fd table and the tables of its threads that have their own; a process that is
/// gone is not an error (its fds are simply absent).
fn collect_process(pid: u32, records: &mut Vec<FdRecord>) -> std::io::Result<()> {
    read_table(pid, pid, records)?;
    for tid in threads(pid) {
        if tid != pid && kcmp::same_fd_table(pid, tid).is_ok_and(|same| !same) {
            read_table(pid, tid, records)?;
        }
    }
    Ok(())
}

/// The thread ids of `pid` (none when it is gone).
fn threads(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Reads the fd table reached through thread `tid` of process `pid` and signs its records.
fn read_table(pid: u32, tid: u32, records: &mut Vec<FdRecord>) -> std::io::Result<()> {
    let dir = Path::new("/proc").join(tid.to_string());
    let entries = match fs::read_dir(dir.join("fd")) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let mut fds: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    let start = records.len();
    for fd in fds {
        match read_fd(&dir, fd) {
            Ok(Some(record)) => records.push(FdRecord {
                tgid: pid,
                tid,
                ..record
            }),
            Ok(None) => {}
            // Listing a process's fds is allowed more often than looking at them.
            Err(error) => return Err(error),
        }
    }
    let signature = table_signature(&records[start..]);
    for record in &mut records[start..] {
        record.files_hash = signature;
    }
    Ok(())
}

/// A non-zero signature of an fd table's contents: equal for the processes of one shared table (they
/// see the same fds), and for tables that merely look alike, which kcmp tells apart.
fn table_signature(table: &[FdRecord]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    for r in table {
        (r.fd, r.dev, r.ino, r.flags).hash(&mut hasher);
    }
    hasher.finish() | 1
}

/// A failure to read something of a live process is an error only when it is for lack of permission;
/// anything else means the fd or its process is gone.
fn gone_is_none<T>(result: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => Err(error),
        Err(_) => Ok(None),
    }
}

/// One fd's record; `None` when it (or its process) is gone, or its fdinfo is not as expected.
fn read_fd(dir: &Path, fd: u32) -> std::io::Result<Option<FdRecord>> {
    // stat() follows the magic link to the open file's inode (sockets and pipes included).
    let Some(meta) = gone_is_none(fs::metadata(dir.join("fd").join(fd.to_string())))? else {
        return Ok(None);
    };
    let Some(fdinfo) = gone_is_none(fs::read_to_string(dir.join("fdinfo").join(fd.to_string())))?
    else {
        return Ok(None);
    };
    Ok(record_from(fd, &meta, &fdinfo))
}

/// The record of fd `fd` (process and thread ids left for the caller).
fn record_from(fd: u32, meta: &fs::Metadata, fdinfo: &str) -> Option<FdRecord> {
    let field = |name: &str| {
        fdinfo
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let pos = field("pos")?.parse().ok()?;
    // fdinfo adds O_CLOEXEC, a per-fd attribute, to the description's f_flags.
    let flags = u32::from_str_radix(field("flags")?, 8).ok()? & !(libc::O_CLOEXEC as u32);
    Some(FdRecord {
        tgid: 0,
        tid: 0,
        fd,
        flags,
        // st_mode holds i_mode, a 16-bit field.
        mode: meta.mode() as u16,
        pid_ns_level: 0,
        extension: 0,
        dev: crate::dev::from_user(meta.dev()),
        ino: meta.ino(),
        pos,
        refs: 0,
        file_hash: 0,
        files_hash: 0,
    })
}
