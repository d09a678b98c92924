//! Which fds are one open file description: grouping by evidence, confirmed with `kcmp(KCMP_FILE)`.
//!
//! CRIU froze the tasks it dumped; fdid surveys a live system, so the evidence is weighed as follows.
//!
//! **Certain, no syscall.** Two fds whose records differ in device, inode or access mode
//! (`O_ACCMODE`/`O_PATH`, fixed when a file is opened) are different descriptions. Two fds with
//! different pointer hashes are different descriptions: one `struct file` has one address.
//!
//! **Strong evidence.** Two fds with the same full 64-bit keyed pointer hash, the same inode and the
//! same access mode are taken to be one description. The residual risk is an address reused during the
//! walk (a description freed and a new one of the same inode allocated at the same address); `--verify=all`
//! removes it.
//!
//! **Ambiguous**, confirmed with kcmp under the default `--verify=ambiguous`: a candidate group (same
//! hash, inode and access mode) with two or more fds when
//! 1. the records have no pointer hash (procfs collector): inode alone proves nothing;
//! 2. the hash was narrowed below 64 bits (a test knob), so collisions are expected;
//! 3. the group has more holders than the kernel's reference count shows for it (each fd holds one
//!    reference): at least one holder must belong to another description.
//!
//! Confirming a group compares its first fd with each other one; those kcmp calls say differ are split
//! off and confirmed among themselves the same way. An fd that vanished before it could be compared (its
//! process exited or closed it) becomes a description of its own marked **unconfirmed** — it is never
//! merged on hash evidence alone.

use std::io;

use rustc_hash::FxHashMap;

use crate::record::FdRecord;

/// How much to confirm with kcmp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyMode {
    /// Trust the pointer hash; kcmp only what has no hash.
    None,
    /// Confirm the ambiguous groups (see the module docs).
    #[default]
    Ambiguous,
    /// Confirm every fd that joins another one (every cross-fd edge of every shared group).
    All,
}

/// Compares two fds for identity; [`Kcmp`] asks the kernel, tests use fakes.
pub trait SameFile {
    /// `Ok(true)` when both fds are one open file description; an error of kind `NotFound` when either
    /// one is gone.
    fn same_file(&mut self, a: &FdRecord, b: &FdRecord) -> io::Result<bool>;
}

/// The real comparison: `kcmp(KCMP_FILE)` on the task the fd was found through.
pub struct Kcmp;

impl SameFile for Kcmp {
    fn same_file(&mut self, a: &FdRecord, b: &FdRecord) -> io::Result<bool> {
        crate::kcmp::same_file(a.tid, a.fd, b.tid, b.fd)
    }
}

/// One open file description: indices into the records, in record order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Description {
    pub fds: Vec<usize>,
    /// kcmp confirmed that every fd here is one description.
    pub confirmed: bool,
    /// The fd vanished before it could be compared with the others that looked the same.
    pub unconfirmed: bool,
}

/// What verification cost and found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyStats {
    /// Candidate groups that were confirmed with kcmp.
    pub groups_checked: usize,
    pub kcmp_calls: u64,
    /// Descriptions split off a candidate group because kcmp said they differ.
    pub splits: usize,
    /// Fds that vanished before they could be confirmed.
    pub unconfirmed_fds: usize,
}

/// What identification needs to know about the records.
#[derive(Clone, Copy, Debug)]
pub struct Evidence {
    /// Records carry a pointer hash (BPF collector).
    pub hashed: bool,
    /// The hash keeps all 64 bits (not narrowed by the test knob).
    pub full_hash: bool,
}

/// Flags fixed for the life of a description.
fn fixed_flags(flags: u32) -> u32 {
    flags & (libc::O_ACCMODE | libc::O_PATH) as u32
}

/// Groups `records` into open file descriptions, in order of first appearance.
pub fn identify(
    records: &[FdRecord],
    evidence: Evidence,
    mode: VerifyMode,
    cmp: &mut impl SameFile,
) -> (Vec<Description>, VerifyStats) {
    // Candidate groups: everything that is certainly different is apart.
    // Fx: the keys are not attacker-chosen in a way that matters here (the pointer hash is keyed).
    let mut slots: FxHashMap<(u64, u32, u64, u32), usize> = FxHashMap::default();
    let mut candidates: Vec<Vec<usize>> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let hash = if evidence.hashed { r.file_hash } else { 0 };
        let key = (hash, r.dev, r.ino, fixed_flags(r.flags));
        let slot = *slots.entry(key).or_insert_with(|| {
            candidates.push(Vec::new());
            candidates.len() - 1
        });
        candidates[slot].push(i);
    }

    let mut stats = VerifyStats::default();
    let mut descriptions = Vec::with_capacity(candidates.len());
    for group in candidates {
        if group.len() > 1 && needs_kcmp(records, &group, evidence, mode) {
            stats.groups_checked += 1;
            let before = descriptions.len();
            split(records, group, cmp, &mut stats, &mut descriptions);
            let confirmed = descriptions[before..]
                .iter()
                .filter(|d| !d.unconfirmed)
                .count();
            stats.splits += confirmed.saturating_sub(1);
        } else {
            descriptions.push(Description {
                fds: group,
                confirmed: false,
                unconfirmed: false,
            });
        }
    }
    descriptions.sort_by_key(|d| d.fds[0]);
    (descriptions, stats)
}

fn needs_kcmp(records: &[FdRecord], group: &[usize], evidence: Evidence, mode: VerifyMode) -> bool {
    if !evidence.hashed {
        return true;
    }
    match mode {
        VerifyMode::None => false,
        VerifyMode::All => true,
        VerifyMode::Ambiguous => {
            let max_refs = group.iter().map(|&i| records[i].refs).max().unwrap_or(0);
            !evidence.full_hash || (max_refs > 0 && group.len() as u64 > max_refs)
        }
    }
}

/// Splits one candidate group into confirmed descriptions (and unconfirmed singletons).
fn split(
    records: &[FdRecord],
    mut rest: Vec<usize>,
    cmp: &mut impl SameFile,
    stats: &mut VerifyStats,
    out: &mut Vec<Description>,
) {
    while let Some((&first, others)) = rest.split_first() {
        if others.is_empty() {
            out.push(Description {
                fds: vec![first],
                confirmed: false,
                unconfirmed: false,
            });
            break;
        }
        let mut same = vec![first];
        let mut different = Vec::new();
        let mut vanished = Vec::new();
        let mut first_gone = false;
        for &other in others {
            stats.kcmp_calls += 1;
            match cmp.same_file(&records[first], &records[other]) {
                Ok(true) => same.push(other),
                Ok(false) => different.push(other),
                Err(_) => {
                    // Which side is gone? Compare the first fd with itself.
                    stats.kcmp_calls += 1;
                    if cmp.same_file(&records[first], &records[first]).is_err() {
                        first_gone = true;
                        break;
                    }
                    vanished.push(other);
                }
            }
        }
        stats.unconfirmed_fds += vanished.len();
        for &gone in &vanished {
            out.push(Description {
                fds: vec![gone],
                confirmed: false,
                unconfirmed: true,
            });
        }
        if first_gone {
            stats.unconfirmed_fds += 1;
            out.push(Description {
                fds: vec![first],
                confirmed: false,
                unconfirmed: true,
            });
            // Start over without it (and without those already known gone) under a new first fd.
            rest = others
                .iter()
                .copied()
                .filter(|i| !vanished.contains(i))
                .collect();
            continue;
        }
        out.push(Description {
            fds: same,
            confirmed: true,
            unconfirmed: false,
        });
        rest = different;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A fake kernel: each (pid, fd) names a description; some fds are gone.
    struct FakeKernel {
        truth: HashMap<(u32, u32), u32>,
        calls: u64,
    }

    impl SameFile for FakeKernel {
        fn same_file(&mut self, a: &FdRecord, b: &FdRecord) -> io::Result<bool> {
            self.calls += 1;
            let lookup = |r: &FdRecord| {
                self.truth
                    .get(&(r.tgid, r.fd))
                    .copied()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
            };
            Ok(lookup(a)? == lookup(b)?)
        }
    }

    fn fd(pid: u32, fd: u32, hash: u64, refs: u64) -> FdRecord {
        FdRecord {
            tgid: pid,
            tid: pid,
            fd,
            dev: 1,
            ino: 10,
            flags: 2,
            refs,
            file_hash: hash,
            ..FdRecord::default()
        }
    }

    fn groups(descriptions: &[Description], records: &[FdRecord]) -> Vec<Vec<(u32, u32)>> {
        descriptions
            .iter()
            .map(|d| {
                d.fds
                    .iter()
                    .map(|&i| (records[i].tgid, records[i].fd))
                    .collect()
            })
            .collect()
    }

    const FULL: Evidence = Evidence {
        hashed: true,
        full_hash: true,
    };

    #[test]
    fn equal_full_hashes_are_trusted_without_kcmp() {
        let records = [fd(1, 3, 0xaa, 2), fd(2, 3, 0xaa, 2), fd(2, 4, 0xbb, 1)];
        let mut kernel = FakeKernel {
            truth: HashMap::new(),
            calls: 0,
        };
        let (found, stats) = identify(&records, FULL, VerifyMode::Ambiguous, &mut kernel);
        assert_eq!(
            groups(&found, &records),
            vec![vec![(1, 3), (2, 3)], vec![(2, 4)]]
        );
        assert_eq!((stats.kcmp_calls, kernel.calls), (0, 0));
    }

    #[test]
    fn more_holders_than_references_is_ambiguous_and_kcmp_splits_it() {
        // Same hash (an address reused during the walk) but only one reference each.
        let records = [fd(1, 3, 0xaa, 1), fd(2, 5, 0xaa, 1)];
        let truth = HashMap::from([((1, 3), 100), ((2, 5), 200)]);
        let mut kernel = FakeKernel { truth, calls: 0 };
        let (found, stats) = identify(&records, FULL, VerifyMode::Ambiguous, &mut kernel);
        assert_eq!(groups(&found, &records), vec![vec![(1, 3)], vec![(2, 5)]]);
        assert_eq!(
            (stats.groups_checked, stats.kcmp_calls, stats.splits),
            (1, 1, 1)
        );
    }

    #[test]
    fn narrowed_hashes_are_confirmed_and_collisions_split() {
        let records = [
            fd(1, 3, 1, 2),
            fd(2, 3, 1, 2),
            fd(3, 7, 1, 1),
            fd(3, 8, 1, 1),
        ];
        let truth = HashMap::from([((1, 3), 1), ((2, 3), 1), ((3, 7), 2), ((3, 8), 3)]);
        let mut kernel = FakeKernel { truth, calls: 0 };
        let evidence = Evidence {
            hashed: true,
            full_hash: false,
        };
        let (found, stats) = identify(&records, evidence, VerifyMode::Ambiguous, &mut kernel);
        assert_eq!(
            groups(&found, &records),
            vec![vec![(1, 3), (2, 3)], vec![(3, 7)], vec![(3, 8)]]
        );
        assert_eq!(stats.splits, 2);
        assert!(found[0].confirmed);
    }

    #[test]
    fn different_inodes_or_access_modes_are_apart_without_kcmp() {
        let mut other_inode = fd(2, 3, 0xaa, 2);
        other_inode.ino = 11;
        let mut read_only = fd(3, 3, 0xaa, 2);
        read_only.flags = 0;
        let records = [fd(1, 3, 0xaa, 2), other_inode, read_only];
        let mut kernel = FakeKernel {
            truth: HashMap::new(),
            calls: 0,
        };
        let (found, stats) = identify(&records, FULL, VerifyMode::All, &mut kernel);
        assert_eq!(found.len(), 3);
        assert_eq!(stats.kcmp_calls, 0);
    }

    #[test]
    fn a_vanished_fd_is_unconfirmed_never_merged() {
        let records = [fd(1, 3, 0xaa, 3), fd(2, 3, 0xaa, 3), fd(9, 3, 0xaa, 3)];
        // pid 9 is gone.
        let truth = HashMap::from([((1, 3), 1), ((2, 3), 1)]);
        let mut kernel = FakeKernel { truth, calls: 0 };
        let (found, stats) = identify(&records, FULL, VerifyMode::All, &mut kernel);
        assert_eq!(
            groups(&found, &records),
            vec![vec![(1, 3), (2, 3)], vec![(9, 3)]]
        );
        assert!(found[1].unconfirmed && !found[0].unconfirmed);
        assert_eq!(stats.unconfirmed_fds, 1);
        assert_eq!(stats.splits, 0, "a vanished fd is not a split");
    }

    #[test]
    fn a_vanished_first_fd_does_not_lose_the_others() {
        let records = [fd(9, 3, 0xaa, 3), fd(1, 3, 0xaa, 3), fd(2, 3, 0xaa, 3)];
        let truth = HashMap::from([((1, 3), 1), ((2, 3), 1)]);
        let mut kernel = FakeKernel { truth, calls: 0 };
        let (found, _) = identify(&records, FULL, VerifyMode::All, &mut kernel);
        assert_eq!(
            groups(&found, &records),
            vec![vec![(9, 3)], vec![(1, 3), (2, 3)]]
        );
        assert!(found[0].unconfirmed);
    }

    #[test]
    fn records_without_hash_are_always_compared() {
        let records = [fd(1, 3, 0, 0), fd(2, 3, 0, 0), fd(2, 4, 0, 0)];
        let truth = HashMap::from([((1, 3), 1), ((2, 3), 1), ((2, 4), 2)]);
        let mut kernel = FakeKernel { truth, calls: 0 };
        let evidence = Evidence {
            hashed: false,
            full_hash: false,
        };
        let (found, stats) = identify(&records, evidence, VerifyMode::None, &mut kernel);
        assert_eq!(
            groups(&found, &records),
            vec![vec![(1, 3), (2, 3)], vec![(2, 4)]]
        );
        assert_eq!(stats.kcmp_calls, 2);
    }
}
