//! Processes sharing one fd table (`clone(CLONE_FILES)` without `CLONE_THREAD`): listed once.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::CompareFiles;
use crate::record::FdRecord;

/// Processes sharing one fd table: their fds are listed once, under the first pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedTable {
    pub pids: Vec<u32>,
}

/// Finds processes that share one fd table — equal `files_struct` hash (BPF) or table signature
/// (procfs), confirmed by `kernel` (`kcmp(KCMP_FILES)`) — and drops the duplicate records of all but
/// one of them, listing the table under a process of `scope` when there is one.
pub fn merge_shared_tables(
    records: &mut Vec<FdRecord>,
    scope: Option<&BTreeSet<u32>>,
    kernel: &mut impl CompareFiles,
) -> Vec<SharedTable> {
    let mut tables: HashMap<u64, BTreeSet<u32>> = HashMap::new();
    // Records come table by table: look at each (process, table) pair once.
    let mut previous = None;
    for r in records.iter().filter(|r| r.files_hash != 0) {
        if previous != Some((r.tgid, r.files_hash)) {
            previous = Some((r.tgid, r.files_hash));
            tables.entry(r.files_hash).or_default().insert(r.tgid);
        }
    }
    let mut shared = Vec::new();
    let mut dropped: HashSet<u32> = HashSet::new();
    for pids in tables.values() {
        // List the table under a process of the scope when there is one.
        let primary = pids
            .iter()
            .copied()
            .find(|pid| scope.is_none_or(|s| s.contains(pid)))
            .unwrap_or(*pids.first().expect("non-empty"));
        let mut members = vec![primary];
        for &pid in pids.iter().filter(|&&pid| pid != primary) {
            if kernel.same_fd_table(primary, pid).unwrap_or(false) {
                members.push(pid);
                dropped.insert(pid);
            }
        }
        if members.len() > 1 {
            shared.push(SharedTable { pids: members });
        }
    }
    if !dropped.is_empty() {
        records.retain(|r| !dropped.contains(&r.tgid));
    }
    shared.sort_by_key(|t| t.pids[0]);
    shared
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, io};

    use super::*;
    use crate::verify::KernelOrder;

    /// Tables are named by a number per process; fds are never compared here.
    struct FakeTables(Vec<(u32, u32)>);

    impl CompareFiles for FakeTables {
        fn compare(&mut self, _: &FdRecord, _: &FdRecord) -> io::Result<KernelOrder> {
            unreachable!("tables only")
        }
        fn same_fd_table(&mut self, a: u32, b: u32) -> io::Result<bool> {
            let table = |pid| self.0.iter().find(|(p, _)| *p == pid).map(|&(_, t)| t);
            match (table(a), table(b)) {
                (Some(a), Some(b)) => Ok(a == b),
                _ => Err(io::ErrorKind::NotFound.into()),
            }
        }
    }

    fn records(tables: &[(u32, u64, u32)]) -> Vec<FdRecord> {
        tables
            .iter()
            .flat_map(|&(pid, hash, fds)| {
                (0..fds).map(move |fd| FdRecord {
                    tgid: pid,
                    tid: pid,
                    fd,
                    files_hash: hash,
                    ..FdRecord::default()
                })
            })
            .collect()
    }

    #[test]
    fn equal_hashes_are_one_table_only_when_the_kernel_says_so() {
        // 10 and 11 share a table; 12 has one that looks the same (a procfs signature) but is its
        // own; 13 is gone before it can be compared; 14 has another hash.
        let mut found = records(&[(10, 7, 3), (11, 7, 3), (12, 7, 3), (13, 7, 3), (14, 9, 2)]);
        let mut kernel = FakeTables(vec![(10, 1), (11, 1), (12, 2), (14, 3)]);
        let shared = merge_shared_tables(&mut found, None, &mut kernel);
        assert_eq!(shared, vec![SharedTable { pids: vec![10, 11] }]);
        let pids: BTreeSet<u32> = found.iter().map(|r| r.tgid).collect();
        assert_eq!(
            pids,
            [10, 12, 13, 14].into(),
            "11's copy of the table is dropped"
        );
        assert_eq!(found.len(), 3 * 3 + 2);
    }

    #[test]
    fn a_shared_table_is_listed_under_a_process_of_the_scope() {
        let mut found = records(&[(10, 7, 2), (11, 7, 2)]);
        let mut kernel = FakeTables(vec![(10, 1), (11, 1)]);
        let scope: BTreeSet<u32> = [11].into();
        let shared = merge_shared_tables(&mut found, Some(&scope), &mut kernel);
        assert_eq!(shared, vec![SharedTable { pids: vec![11, 10] }]);
        assert!(found.iter().all(|r| r.tgid == 11));
    }

    #[test]
    fn records_without_a_table_hash_are_left_alone() {
        let mut found = records(&[(10, 0, 2), (11, 0, 2)]);
        let shared = merge_shared_tables(&mut found, None, &mut FakeTables(Vec::new()));
        assert!(shared.is_empty());
        assert_eq!(found.len(), 4);
    }
}
