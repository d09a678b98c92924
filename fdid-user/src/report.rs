//! Stage 3: the human-readable table.

use std::{
    collections::{BTreeSet, HashMap},
    io::{self, Write},
};

use fdid_ebpf::{kernel_dev_major, kernel_dev_minor};

use crate::{collect::Collection, group::Description, proc, record::FdRecord};

/// Counts for the one-line summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub processes: usize,
    pub fds: usize,
    pub descriptions: usize,
    /// Descriptions held by more than one fd.
    pub shared: usize,
}

impl Summary {
    pub fn of(collection: &Collection, descriptions: &[Description]) -> Self {
        let processes: BTreeSet<u32> = collection.records.iter().map(|r| r.tgid).collect();
        Self {
            processes: processes.len(),
            fds: collection.records.len(),
            descriptions: descriptions.len(),
            shared: descriptions.iter().filter(|d| d.fds.len() > 1).count(),
        }
    }
}

/// File type letters as `ls -l` and lsof show them.
pub fn file_type(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "REG",
        libc::S_IFDIR => "DIR",
        libc::S_IFCHR => "CHR",
        libc::S_IFBLK => "BLK",
        libc::S_IFIFO => "FIFO",
        libc::S_IFSOCK => "SOCK",
        libc::S_IFLNK => "LINK",
        0 => "ANON",
        _ => "?",
    }
}

/// The access mode part of open flags.
pub fn access_mode(flags: u32) -> &'static str {
    match flags as i32 & libc::O_ACCMODE {
        libc::O_RDONLY => "r",
        libc::O_WRONLY => "w",
        _ => "rw",
    }
}

/// Writes one block per shared description (every description with `all`), then the summary line.
pub fn write_table(
    out: &mut impl Write,
    collection: &Collection,
    descriptions: &[Description],
    all: bool,
) -> io::Result<()> {
    let mut comms: HashMap<u32, String> = HashMap::new();
    let mut comm = |pid: u32| comms.entry(pid).or_insert_with(|| proc::comm(pid)).clone();
    for description in descriptions {
        if description.fds.len() < 2 && !all {
            continue;
        }
        let first: &FdRecord = &collection.records[description.fds[0]];
        let path = proc::fd_path(first.tgid, first.fd)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "?".to_owned());
        writeln!(
            out,
            "{kind:<4} {path}  dev {major}:{minor} ino {ino}  {mode} flags 0{flags:o} pos {pos}{refs}",
            kind = file_type(first.mode),
            major = kernel_dev_major(first.dev),
            minor = kernel_dev_minor(first.dev),
            ino = first.ino,
            mode = access_mode(first.flags),
            flags = first.flags,
            pos = first.pos,
            refs = if first.refs > 0 { format!(" refs {}", first.refs) } else { String::new() },
        )?;
        let holders: Vec<String> = description
            .fds
            .iter()
            .map(|&i| {
                let r = &collection.records[i];
                format!("{}({}):{}", comm(r.tgid), r.tgid, r.fd)
            })
            .collect();
        writeln!(out, "     held by {}", holders.join(" "))?;
    }
    let summary = Summary::of(collection, descriptions);
    writeln!(
        out,
        "{} processes, {} fds, {} open file descriptions, {} shared; collected by {:?}{} in {:.1} ms",
        summary.processes,
        summary.fds,
        summary.descriptions,
        summary.shared,
        collection.source,
        if collection.kernel_filtered { " (kernel pid filter)" } else { "" },
        collection.elapsed.as_secs_f64() * 1e3,
    )
}
