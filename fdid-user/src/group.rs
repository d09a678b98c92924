//! Stage 2: which records are one open file description.
//!
//! BPF records carry a keyed hash of the `struct file` pointer and are grouped by it. procfs records have
//! no pointer: candidates with the same device and inode are compared with `kcmp(KCMP_FILE)`.

use std::collections::HashMap;

use crate::{
    collect::{Collection, Source},
    kcmp,
    record::FdRecord,
};

/// One open file description: the indices (into [`Collection::records`]) of the fds that hold it,
/// in record order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    pub fds: Vec<usize>,
}

/// Groups the records of `collection` into open file descriptions, in order of first appearance.
pub fn group(collection: &Collection) -> Vec<Description> {
    match collection.source {
        Source::Bpf => group_by_hash(&collection.records),
        Source::Procfs => group_by_kcmp(&collection.records),
    }
}

fn group_by_hash(records: &[FdRecord]) -> Vec<Description> {
    let mut index: HashMap<u64, usize> = HashMap::with_capacity(records.len());
    let mut descriptions: Vec<Description> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let slot = *index.entry(record.file_hash).or_insert_with(|| {
            descriptions.push(Description { fds: Vec::new() });
            descriptions.len() - 1
        });
        descriptions[slot].fds.push(i);
    }
    descriptions
}

fn group_by_kcmp(records: &[FdRecord]) -> Vec<Description> {
    let mut by_inode: HashMap<(u32, u64), Vec<usize>> = HashMap::new();
    let mut descriptions: Vec<Description> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let candidates = by_inode.entry((record.dev, record.ino)).or_default();
        let found = candidates.iter().copied().find(|&slot| {
            let first = &records[descriptions[slot].fds[0]];
            // An fd gone before it could be compared counts as not shared: it is no longer held.
            kcmp::same_file(first.tgid, first.fd, record.tgid, record.fd).unwrap_or(false)
        });
        match found {
            Some(slot) => descriptions[slot].fds.push(i),
            None => {
                candidates.push(descriptions.len());
                descriptions.push(Description { fds: vec![i] });
            }
        }
    }
    descriptions
}
