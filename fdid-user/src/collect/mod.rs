//! Stage 1 of the pipeline: collect one [`FdRecord`] per open fd, from the BPF iterator or from procfs.

pub mod bpf;
mod collector;
pub mod plan;
pub mod procfs;
mod procnet;

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt,
    time::Duration,
};

pub use collector::{CollectError, Collector, CollectorKind, Walk};

use crate::{
    record::{FdRecord, Sockets},
    verify::Evidence,
};

/// Which collector produced a [`Collection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The `iter/task_file` BPF program: every field, pointer hashes included.
    Bpf,
    /// `/proc/PID/fd` and `/proc/PID/fdinfo`: no pointer hash and no reference count; identity needs kcmp.
    Procfs,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bpf => "bpf",
            Self::Procfs => "procfs",
        })
    }
}

/// Which processes to collect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every process of the pid namespace.
    All,
    /// These processes (pids in fdid's pid namespace).
    Pids(Vec<u32>),
}

/// The records of one walk.
#[derive(Clone, Debug)]
pub struct Collection {
    pub records: Vec<FdRecord>,
    /// What the sockets among the records are, by inode number (BPF: read in the kernel).
    pub sockets: Sockets,
    pub source: Source,
    /// What the records prove about identity (pointer hashes or none), for [`crate::verify`].
    pub evidence: Evidence,
    /// True when the kernel itself walked only the target processes (BPF iterator pid filter).
    pub kernel_filtered: bool,
    /// Processes whose fds could not be read (procfs without the privileges to look at them).
    pub unreadable: Vec<u32>,
    /// Time spent walking and decoding.
    pub elapsed: Duration,
}

impl Collection {
    /// Whether some description this walk saw may have holders it did not see: always for procfs
    /// (no reference counts), for BPF when a description has more references than holders here.
    pub fn may_be_held_outside(&self) -> bool {
        if !self.evidence.hashed {
            return true;
        }
        let mut holders: HashMap<u64, (u64, u64)> = HashMap::new();
        for r in &self.records {
            let entry = holders.entry(r.file_hash).or_default();
            entry.0 += 1;
            entry.1 = entry.1.max(r.refs);
        }
        holders.values().any(|&(count, refs)| refs > count)
    }

    /// After a whole-system walk for a scoped survey: keeps the scope's records, the records of
    /// other processes that may be the same descriptions (same pointer hash, or same inode without
    /// hashes), and those of the other ends of the scope's pipes and sockets.
    pub fn keep_related(&mut self, scope: &BTreeSet<u32>) {
        let hashed = self.evidence.hashed;
        let key = |r: &FdRecord| {
            if hashed {
                (r.file_hash, 0, 0)
            } else {
                (0, r.dev, r.ino)
            }
        };
        let wanted: HashSet<(u64, u32, u64)> = self
            .records
            .iter()
            .filter(|r| scope.contains(&r.tgid))
            .map(key)
            .collect();
        let ends = crate::endpoints::other_end_inodes(
            self.records.iter().filter(|r| scope.contains(&r.tgid)),
            &self.sockets,
        );
        self.records.retain(|r| {
            scope.contains(&r.tgid) || wanted.contains(&key(r)) || ends.contains(&(r.dev, r.ino))
        });
    }
}
