//! Stage 1 of the pipeline: collect one [`FdRecord`] per open fd, from the BPF iterator or from procfs.

pub mod bpf;
pub mod plan;
pub mod procfs;

use std::{fmt, time::Duration};

use crate::record::FdRecord;

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
    pub source: Source,
    /// True when the kernel itself walked only the target processes (BPF iterator pid filter).
    pub kernel_filtered: bool,
    /// Processes whose fds could not be read (procfs without the privileges to look at them).
    pub unreadable: Vec<u32>,
    /// Time spent walking and decoding.
    pub elapsed: Duration,
}
