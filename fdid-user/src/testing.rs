//! Surveys built from records and a fake kernel, for the unit tests of the stages after the walk.
//! Pids are above `pid_max` (2^22), so nothing of this machine is looked up by mistake.

use std::{collections::HashMap, io, time::Duration};

use crate::{
    collect::{Collection, Source},
    record::FdRecord,
    survey::{Survey, Walked},
    verify::{CompareFiles, Evidence, KernelOrder, VerifyMode},
};

/// The first pid of the fake processes.
pub const PID: u32 = 5_000_000;

/// A fake kernel: a description number per (thread, fd) — fds it does not know are gone — and each
/// process its own fd table; counts the comparisons asked of it.
pub struct FakeKernel {
    pub truth: HashMap<(u32, u32), u64>,
    pub calls: u64,
}

impl CompareFiles for FakeKernel {
    fn compare(&mut self, a: &FdRecord, b: &FdRecord) -> io::Result<KernelOrder> {
        self.calls += 1;
        let truth = |r: &FdRecord| {
            self.truth
                .get(&(r.tid, r.fd))
                .copied()
                .ok_or(io::Error::from(io::ErrorKind::NotFound))
        };
        Ok(match truth(a)?.cmp(&truth(b)?) {
            std::cmp::Ordering::Equal => KernelOrder::Same,
            std::cmp::Ordering::Less => KernelOrder::Less,
            std::cmp::Ordering::Greater => KernelOrder::Greater,
        })
    }

    fn same_fd_table(&mut self, a: u32, b: u32) -> io::Result<bool> {
        Ok(a == b)
    }
}

/// An fd of `pid` holding description `description` (its pointer hash), with `refs` references.
pub fn fd(pid: u32, fd: u32, description: u64, refs: u64) -> FdRecord {
    FdRecord {
        tgid: pid,
        tid: pid,
        fd,
        flags: 0o2,
        mode: 0o100_644,
        dev: 254 << 20,
        ino: 1000 + description,
        refs,
        file_hash: description,
        files_hash: u64::from(pid),
        ..FdRecord::default()
    }
}

/// An end of one pipe (inode 77) opened with `flags`, holding description `description`.
pub fn pipe_end(pid: u32, fd_number: u32, description: u64, refs: u64, flags: i32) -> FdRecord {
    let mut r = fd(pid, fd_number, description, refs);
    r.mode = 0o010_600;
    r.ino = 77;
    r.flags = flags as u32;
    r
}

/// An fd of `pid` on the socket whose inode is `ino` (also its description's hash).
pub fn socket_fd(pid: u32, fd_number: u32, ino: u64) -> FdRecord {
    let mut r = fd(pid, fd_number, ino, 1);
    r.mode = 0o140_777;
    r.ino = ino;
    r
}

/// What a BPF-like walk of the whole system found, scoped to `scope` (empty: every process) as
/// [`Survey::run`] scopes a whole-system walk.
pub fn walked(records: Vec<FdRecord>, scope: &[u32]) -> Walked {
    let mut collection = Collection {
        records,
        sockets: Default::default(),
        source: Source::Bpf,
        evidence: Evidence {
            hashed: true,
            full_hash: true,
        },
        kernel_filtered: false,
        unreadable: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let scope = (!scope.is_empty()).then(|| scope.iter().copied().collect());
    if let Some(scope) = &scope {
        collection.keep_related(scope);
    }
    Walked {
        collection,
        own_refs: HashMap::new(),
        scope,
        whole_system: true,
    }
}

/// A fake kernel whose truth is the records' pointer hashes.
pub fn kernel_of(records: &[FdRecord]) -> FakeKernel {
    let truth = records
        .iter()
        .map(|r| ((r.tid, r.fd), r.file_hash))
        .collect();
    FakeKernel { truth, calls: 0 }
}

/// A BPF-like whole-system survey of `records`, scoped to `scope` (empty: every process).
pub fn survey(records: Vec<FdRecord>, scope: &[u32]) -> Survey {
    let mut kernel = kernel_of(&records);
    Survey::assemble(walked(records, scope), VerifyMode::Ambiguous, &mut kernel)
}
