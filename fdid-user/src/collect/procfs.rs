//! The procfs collector: the same records from `/proc/PID/fd` and `/proc/PID/fdinfo`.
//!
//! Slow (a few syscalls per fd) and blind to pointers, so its records carry no hashes and no reference
//! count; grouping them needs kcmp. It is the tests' independent oracle and the fallback without BPF.

use std::{fs, os::unix::fs::MetadataExt, path::Path, time::Instant};

use super::{Collection, Source, Target};
use crate::record::FdRecord;

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
    Ok(Collection {
        records,
        source: Source::Procfs,
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

/// Reads one process's fds; a process that is gone is not an error (its fds are simply absent).
fn collect_process(pid: u32, records: &mut Vec<FdRecord>) -> std::io::Result<()> {
    let dir = Path::new("/proc").join(pid.to_string());
    let entries = match fs::read_dir(dir.join("fd")) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let mut fds: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    for fd in fds {
        match read_fd(&dir, pid, fd) {
            Ok(Some(record)) => records.push(record),
            Ok(None) => {}
            // Listing a process's fds is allowed more often than looking at them.
            Err(error) => return Err(error),
        }
    }
    Ok(())
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
fn read_fd(dir: &Path, pid: u32, fd: u32) -> std::io::Result<Option<FdRecord>> {
    // stat() follows the magic link to the open file's inode (sockets and pipes included).
    let Some(meta) = gone_is_none(fs::metadata(dir.join("fd").join(fd.to_string())))? else {
        return Ok(None);
    };
    let Some(fdinfo) = gone_is_none(fs::read_to_string(dir.join("fdinfo").join(fd.to_string())))?
    else {
        return Ok(None);
    };
    Ok(record_from(pid, fd, &meta, &fdinfo))
}

fn record_from(pid: u32, fd: u32, meta: &fs::Metadata, fdinfo: &str) -> Option<FdRecord> {
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
        tgid: pid,
        tid: pid,
        fd,
        flags,
        // st_mode holds i_mode, a 16-bit field.
        mode: meta.mode() as u16,
        pid_ns_level: 0,
        dev: kernel_dev(meta.dev()),
        ino: meta.ino(),
        pos,
        refs: 0,
        file_hash: 0,
        files_hash: 0,
    })
}

/// Converts a userspace `dev_t` to the kernel's internal encoding (major << 20 | minor).
pub fn kernel_dev(dev: u64) -> u32 {
    (libc::major(dev) << 20) | (libc::minor(dev) & 0xf_ffff)
}
