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
//! Confirming a group sorts its fds into descriptions the way CRIU's subtrees do: kcmp orders kernel
//! objects, so each fd is placed by binary search among the descriptions found so far (one kcmp call per
//! fd when they are all one description, about log2(descriptions) otherwise). An fd that vanished
//! before it could be compared (its process exited or closed it) becomes a description of its own
//! marked **unconfirmed** — it is never merged on hash evidence alone.

mod partition;
mod tables;

use std::io;

pub use partition::{PartitionError, check_partition};
use rustc_hash::FxHashMap;
pub use tables::{SharedTable, merge_shared_tables};

pub use crate::kcmp::KernelOrder;
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

/// Compares two fds' open file descriptions; [`Kcmp`] asks the kernel, tests use fakes.
pub trait CompareFiles {
    /// The kernel's order of the two descriptions ([`KernelOrder::Same`]: one description); an error of
    /// kind `NotFound` when either fd is gone.
    fn compare(&mut self, a: &FdRecord, b: &FdRecord) -> io::Result<KernelOrder>;
    /// Whether processes `a` and `b` share one fd table; an error when either is gone.
    fn same_fd_table(&mut self, a: u32, b: u32) -> io::Result<bool>;
}

/// The real comparison: `kcmp(KCMP_FILE)` on the task the fd was found through.
pub struct Kcmp;

impl CompareFiles for Kcmp {
    fn compare(&mut self, a: &FdRecord, b: &FdRecord) -> io::Result<KernelOrder> {
        crate::kcmp::compare_files(a.tid, a.fd, b.tid, b.fd)
    }
    fn same_fd_table(&mut self, a: u32, b: u32) -> io::Result<bool> {
        crate::kcmp::same_fd_table(a, b)
    }
}

/// One open file description: indices into the records, in record order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Description {
    pub fds: Vec<usize>,
    /// The largest reference count seen among its fds' records (0: unknown).
    pub refs: u64,
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
pub(crate) fn fixed_flags(flags: u32) -> u32 {
    flags & (libc::O_ACCMODE | libc::O_PATH) as u32
}

/// What puts two fds in one candidate group: pointer hash (0 without), dev, ino, fixed flags.
type CandidateKey = (u64, u32, u64, u32);

/// Groups `records` into open file descriptions, in order of first appearance.
pub fn identify(
    records: &[FdRecord],
    evidence: Evidence,
    mode: VerifyMode,
    cmp: &mut impl CompareFiles,
) -> (Vec<Description>, VerifyStats) {
    // Candidate groups: everything that is certainly different is apart.
    // Fx: the keys are not attacker-chosen in a way that matters here (the pointer hash is keyed).
    let mut slots: FxHashMap<CandidateKey, usize> = FxHashMap::default();
    // In front of the map, a small direct-mapped cache: a survey usually has far fewer descriptions
    // than fds, so most fds find theirs here.
    const CACHE: usize = 4096;
    let mut cache: Vec<Option<(CandidateKey, usize)>> = vec![None; CACHE];
    // Each candidate: its fds and the largest reference count seen.
    let mut candidates: Vec<(Vec<usize>, u64)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let hash = if evidence.hashed { r.file_hash } else { 0 };
        let key = (hash, r.dev, r.ino, fixed_flags(r.flags));
        let line = (hash ^ r.ino) as usize % CACHE;
        let slot = match cache[line] {
            Some((cached, slot)) if cached == key => slot,
            _ => {
                let slot = *slots.entry(key).or_insert_with(|| {
                    candidates.push((Vec::new(), 0));
                    candidates.len() - 1
                });
                cache[line] = Some((key, slot));
                slot
            }
        };
        let candidate = &mut candidates[slot];
        candidate.0.push(i);
        candidate.1 = candidate.1.max(r.refs);
    }

    let mut stats = VerifyStats::default();
    let mut descriptions = Vec::with_capacity(candidates.len());
    for (group, refs) in candidates {
        if group.len() > 1 && needs_kcmp(group.len(), refs, evidence, mode) {
            stats.groups_checked += 1;
            split(records, group, cmp, &mut stats, &mut descriptions);
        } else {
            descriptions.push(Description {
                fds: group,
                refs,
                confirmed: false,
                unconfirmed: false,
            });
        }
    }
    descriptions.sort_by_key(|d| d.fds[0]);
    (descriptions, stats)
}

/// Whether a candidate group of `holders` fds whose records show at most `max_refs` references must be
/// confirmed with kcmp.
fn needs_kcmp(holders: usize, max_refs: u64, evidence: Evidence, mode: VerifyMode) -> bool {
    if !evidence.hashed {
        return true;
    }
    match mode {
        VerifyMode::None => false,
        VerifyMode::All => true,
        VerifyMode::Ambiguous => !evidence.full_hash || (max_refs > 0 && holders as u64 > max_refs),
    }
}

/// Where an fd belongs among the descriptions found so far.
enum Placement {
    /// In this description.
    Member(usize),
    /// A new description, inserted here to keep the kernel's order.
    New(usize),
    /// The fd is gone.
    FdGone,
    /// This description's representative (first live fd) is gone.
    RepresentativeGone(usize),
}

/// Splits one candidate group into confirmed descriptions (and unconfirmed singletons).
///
/// `classes` is kept sorted by the kernel's order of the descriptions (CRIU's subtree), so each fd is
/// placed by binary search; should kcmp ever answer "different, unordered", that fd is placed by a
/// linear scan instead.
fn split(
    records: &[FdRecord],
    group: Vec<usize>,
    cmp: &mut impl CompareFiles,
    stats: &mut VerifyStats,
    out: &mut Vec<Description>,
) {
    // Each class: its fds, the first one being the live representative.
    let mut classes: Vec<Vec<usize>> = Vec::new();
    let mut compare = |a: usize, b: usize, stats: &mut VerifyStats| {
        stats.kcmp_calls += 1;
        cmp.compare(&records[a], &records[b])
    };
    for fd in group {
        loop {
            match place(&classes, fd, &mut compare, stats) {
                Placement::Member(k) => classes[k].push(fd),
                Placement::New(at) => classes.insert(at, vec![fd]),
                Placement::FdGone => {
                    stats.unconfirmed_fds += 1;
                    out.push(Description {
                        fds: vec![fd],
                        refs: records[fd].refs,
                        confirmed: false,
                        unconfirmed: true,
                    });
                }
                Placement::RepresentativeGone(k) => {
                    if classes[k].len() == 1 {
                        // Never compared with anything while it lived: unconfirmed.
                        stats.unconfirmed_fds += 1;
                        let fds = classes.remove(k);
                        let refs = records[fds[0]].refs;
                        out.push(Description {
                            fds,
                            refs,
                            confirmed: false,
                            unconfirmed: true,
                        });
                    } else {
                        // It was confirmed equal to the others before it went; let a live one stand
                        // for the description.
                        classes[k].rotate_left(1);
                    }
                    continue;
                }
            }
            break;
        }
    }
    let live = classes.len();
    stats.splits += live.saturating_sub(1);
    for mut fds in classes {
        fds.sort_unstable();
        let confirmed = fds.len() > 1;
        let refs = fds.iter().map(|&i| records[i].refs).max().unwrap_or(0);
        out.push(Description {
            fds,
            refs,
            confirmed,
            unconfirmed: false,
        });
    }
}

fn place(
    classes: &[Vec<usize>],
    fd: usize,
    compare: &mut impl FnMut(usize, usize, &mut VerifyStats) -> io::Result<KernelOrder>,
    stats: &mut VerifyStats,
) -> Placement {
    let (mut low, mut high) = (0, classes.len());
    while low < high {
        let mid = (low + high) / 2;
        let representative = classes[mid][0];
        match compare(representative, fd, stats) {
            Ok(KernelOrder::Same) => return Placement::Member(mid),
            Ok(KernelOrder::Less) => low = mid + 1,
            Ok(KernelOrder::Greater) => high = mid,
            Ok(KernelOrder::Different) => return place_linearly(classes, fd, compare, stats),
            Err(_) => return which_is_gone(fd, mid, compare, stats),
        }
    }
    Placement::New(low)
}

/// kcmp failed comparing `fd` with class `k`'s representative: compare the fd with itself to tell
/// which side is gone.
fn which_is_gone(
    fd: usize,
    k: usize,
    compare: &mut impl FnMut(usize, usize, &mut VerifyStats) -> io::Result<KernelOrder>,
    stats: &mut VerifyStats,
) -> Placement {
    if compare(fd, fd, stats).is_err() {
        Placement::FdGone
    } else {
        Placement::RepresentativeGone(k)
    }
}

fn place_linearly(
    classes: &[Vec<usize>],
    fd: usize,
    compare: &mut impl FnMut(usize, usize, &mut VerifyStats) -> io::Result<KernelOrder>,
    stats: &mut VerifyStats,
) -> Placement {
    for (k, class) in classes.iter().enumerate() {
        match compare(class[0], fd, stats) {
            Ok(KernelOrder::Same) => return Placement::Member(k),
            Ok(_) => {}
            Err(_) => return which_is_gone(fd, k, compare, stats),
        }
    }
    Placement::New(classes.len())
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    use crate::testing::FakeKernel;

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
        assert!(
            !found[1].confirmed && !found[2].confirmed,
            "split off alone: nothing confirmed them equal to anything"
        );
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
        assert_eq!(stats.groups_checked, 0, "a lone fd is no group to check");
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
        let (found, stats) = identify(&records, FULL, VerifyMode::All, &mut kernel);
        assert_eq!(
            groups(&found, &records),
            vec![vec![(9, 3)], vec![(1, 3), (2, 3)]]
        );
        assert!(found[0].unconfirmed);
        assert_eq!(stats.unconfirmed_fds, 1);
    }

    #[test]
    fn many_descriptions_of_one_inode_are_placed_by_binary_search() {
        // 16 separate opens of one file, each held by 8 fds, without hashes (procfs): 128 fds.
        let records: Vec<FdRecord> = (0..128).map(|i| fd(1 + i % 8, 100 + i / 8, 0, 0)).collect();
        let truth = records
            .iter()
            .map(|r| ((r.tgid, r.fd), u64::from(r.fd)))
            .collect();
        let mut kernel = FakeKernel { truth, calls: 0 };
        let evidence = Evidence {
            hashed: false,
            full_hash: false,
        };
        let (found, stats) = identify(&records, evidence, VerifyMode::Ambiguous, &mut kernel);
        assert_eq!(found.len(), 16);
        assert!(found.iter().all(|d| d.fds.len() == 8 && d.confirmed));
        assert_eq!(stats.splits, 15);
        // A linear scan would need up to 16 calls per fd; binary search at most 5.
        assert!(
            stats.kcmp_calls <= 128 * 5,
            "{} kcmp calls",
            stats.kcmp_calls
        );
    }

    /// A short, deterministic fuzz smoke (the cargo-fuzz target `identify` runs the same checks for as
    /// long as one likes): random records from small domains, so that hashes, inodes and fds collide,
    /// with some fds gone, through every mode.
    #[test]
    fn random_records_always_partition_consistently() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for round in 0..3000 {
            let n = 1 + next(40) as usize;
            // Each (pid, fd) once, as in a real walk.
            let records: Vec<FdRecord> = (0..n)
                .map(|i| FdRecord {
                    tgid: 1 + next(4) as u32,
                    tid: 0,
                    fd: i as u32,
                    dev: next(2) as u32,
                    ino: next(3),
                    flags: next(3) as u32,
                    refs: next(5),
                    file_hash: next(4),
                    ..FdRecord::default()
                })
                .map(|mut r| {
                    r.tid = r.tgid;
                    r
                })
                .collect();
            // The kernel's truth: a description per (hash, dev, ino, flags, pid % 2); pid 4 is gone.
            let truth = records
                .iter()
                .filter(|r| r.tgid != 4)
                .map(|r| {
                    (
                        (r.tgid, r.fd),
                        (r.file_hash * 1000
                            + u64::from(r.dev) * 100
                            + r.ino * 10
                            + u64::from(r.flags))
                            * 2
                            + u64::from(r.tgid % 2),
                    )
                })
                .collect();
            let truth: HashMap<(u32, u32), u64> = truth;
            let mut kernel = FakeKernel {
                truth: truth.clone(),
                calls: 0,
            };
            let evidence = Evidence {
                hashed: next(2) == 0,
                full_hash: next(2) == 0,
            };
            let mode = [VerifyMode::None, VerifyMode::Ambiguous, VerifyMode::All][next(3) as usize];
            let (found, stats) = identify(&records, evidence, mode, &mut kernel);
            if let Err(problem) = check_partition(&records, &found) {
                panic!("round {round}: {problem}\n{records:?}\n{found:?}");
            }
            // Whatever kcmp confirmed agrees with the kernel's truth, and what it split is different.
            if !evidence.hashed || mode == VerifyMode::All {
                let mut description_of_truth = HashMap::new();
                for (k, description) in found.iter().enumerate().filter(|(_, d)| !d.unconfirmed) {
                    for &i in &description.fds {
                        let Some(&key) = truth.get(&(records[i].tgid, records[i].fd)) else {
                            // Gone all along: it may stand alone (nothing to compare it with), never
                            // be merged.
                            assert_eq!(
                                description.fds.len(),
                                1,
                                "round {round}: a vanished fd was merged"
                            );
                            continue;
                        };
                        let owner = *description_of_truth.entry(key).or_insert(k);
                        assert_eq!(owner, k, "round {round}: one description split in two");
                    }
                    let truths: HashSet<u64> = description
                        .fds
                        .iter()
                        .filter_map(|&i| truth.get(&(records[i].tgid, records[i].fd)).copied())
                        .collect();
                    assert!(
                        truths.len() <= 1,
                        "round {round}: descriptions {truths:?} merged into one"
                    );
                }
            }
            assert_eq!(
                stats.kcmp_calls, kernel.calls,
                "round {round}: every kcmp call is counted"
            );
        }
    }

    #[test]
    fn status_flags_changed_during_the_walk_do_not_split_a_description() {
        // fcntl(F_SETFL, O_NONBLOCK | O_APPEND) between two fds' records: same description.
        let mut later = fd(2, 3, 0xaa, 2);
        later.flags |= (libc::O_NONBLOCK | libc::O_APPEND) as u32;
        let records = [fd(1, 3, 0xaa, 2), later];
        let mut kernel = FakeKernel {
            truth: HashMap::new(),
            calls: 0,
        };
        let (found, _) = identify(&records, FULL, VerifyMode::Ambiguous, &mut kernel);
        assert_eq!(groups(&found, &records), vec![vec![(1, 3), (2, 3)]]);
    }

    #[test]
    fn full_width_hashes_group_like_small_ones() {
        // Real pointer hashes use all 64 bits.
        let hashes = [0xfedc_ba98_7654_3210u64, 0x8000_0000_0000_0001, u64::MAX];
        let records: Vec<FdRecord> = (0..30)
            .map(|i| fd(1 + i / 3, 3 + i % 3, hashes[(i % 3) as usize], 10))
            .collect();
        let mut kernel = FakeKernel {
            truth: HashMap::new(),
            calls: 0,
        };
        let (found, _) = identify(&records, FULL, VerifyMode::Ambiguous, &mut kernel);
        assert_eq!(found.len(), 3);
        assert!(found.iter().all(|d| d.fds.len() == 10 && d.refs == 10));
    }

    #[test]
    fn an_unknown_reference_count_does_not_call_for_kcmp() {
        // refs 0: a kernel whose count could not be read; the full hash alone decides.
        let records = [fd(1, 3, 0xaa, 0), fd(2, 3, 0xaa, 0)];
        let mut kernel = FakeKernel {
            truth: HashMap::new(),
            calls: 0,
        };
        let (found, stats) = identify(&records, FULL, VerifyMode::Ambiguous, &mut kernel);
        assert_eq!(groups(&found, &records), vec![vec![(1, 3), (2, 3)]]);
        assert_eq!(stats.kcmp_calls, 0);
    }

    #[test]
    fn the_real_kernel_tells_a_shared_fd_table_from_a_copied_one() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let (me, other) = (std::process::id(), child.id());
        let same_as_me = Kcmp.same_fd_table(me, me);
        let same_as_child = Kcmp.same_fd_table(me, other);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(same_as_me.unwrap());
        assert!(!same_as_child.unwrap(), "a child gets a copy of the table");
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
