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
                    (r.file_hash * 1000 + u64::from(r.dev) * 100 + r.ino * 10 + u64::from(r.flags))
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
