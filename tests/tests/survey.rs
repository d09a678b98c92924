//! The BPF survey against ground truth: what the scenario built, procfs, and kcmp.

use std::collections::{HashMap, HashSet};

use fdid::{
    collect::{Collection, Target, bpf::BpfOptions},
    group,
};
use fdid_tests::{Scenario, bpf_survey, by_fd, kcmp_same, procfs_survey};

const SCENARIO: &str = env!("CARGO_BIN_EXE_fdid-scenario");

/// Which description (index from `group::group`) each (pid, fd) was put in.
fn description_of(collection: &Collection) -> HashMap<(u32, u32), usize> {
    let mut map = HashMap::new();
    for (index, description) in group::group(collection).iter().enumerate() {
        for &i in &description.fds {
            let r = &collection.records[i];
            map.insert((r.tgid, r.fd), index);
        }
    }
    map
}

#[test]
fn one_process_survey_equals_procfs_field_by_field() {
    let scenario = Scenario::start(SCENARIO, &["fdset"]);
    let pid = scenario.pid();
    let target = Target::Pids(vec![pid]);
    let Some(bpf) = bpf_survey(&target, &BpfOptions::default()) else { return };
    let procfs = procfs_survey(&target);

    let bpf_fds = by_fd(&bpf, pid);
    let procfs_fds = by_fd(&procfs, pid);
    assert_eq!(
        bpf_fds.keys().collect::<HashSet<_>>(),
        procfs_fds.keys().collect::<HashSet<_>>(),
        "both collectors see the same fds"
    );
    for name in ["file", "file_dup", "file_again", "pipe_r", "pipe_w", "sock_a", "sock_b", "eventfd", "memfd"] {
        assert!(bpf_fds.contains_key(&scenario.fact(name)), "BPF survey lacks the scenario's {name}");
    }
    for (fd, from_bpf) in &bpf_fds {
        let from_procfs = &procfs_fds[fd];
        let key = |r: &fdid::FdRecord| (r.tgid, r.fd, r.dev, r.ino, r.pos, r.flags, r.mode);
        assert_eq!(key(from_bpf), key(from_procfs), "fd {fd}: (pid, fd, dev, ino, pos, flags, mode)");
        assert!(from_bpf.refs >= 1, "fd {fd}: an open description has at least one reference");
        assert_ne!(from_bpf.file_hash, 0, "fd {fd}: BPF records carry a pointer hash");
    }
    assert_eq!(bpf_fds[&scenario.fact("file")].pos, 5, "the scenario seeked its file to 5");
}

#[test]
fn a_dup_shares_one_description_and_a_second_open_does_not() {
    let scenario = Scenario::start(SCENARIO, &["fdset"]);
    let pid = scenario.pid();
    let Some(bpf) = bpf_survey(&Target::Pids(vec![pid]), &BpfOptions::default()) else { return };
    let groups = description_of(&bpf);
    let (file, dup, again) = (scenario.fact("file"), scenario.fact("file_dup"), scenario.fact("file_again"));

    assert!(kcmp_same(pid, file, pid, dup), "ground truth: dup shares the description");
    assert!(!kcmp_same(pid, file, pid, again), "ground truth: a second open is another description");
    assert_eq!(groups[&(pid, file)], groups[&(pid, dup)]);
    assert_ne!(groups[&(pid, file)], groups[&(pid, again)]);
    let records = by_fd(&bpf, pid);
    assert_eq!(records[&file].refs, 2, "fd and its dup: two references");
    assert_eq!(records[&again].refs, 1);
    assert_eq!(records[&file].ino, records[&again].ino, "same inode all the same");
}

#[test]
fn every_pair_of_fds_in_a_process_is_grouped_as_kcmp_says() {
    let scenario = Scenario::start(SCENARIO, &["fdset"]);
    let pid = scenario.pid();
    let Some(bpf) = bpf_survey(&Target::Pids(vec![pid]), &BpfOptions::default()) else { return };
    let groups = description_of(&bpf);
    let fds: Vec<u32> = by_fd(&bpf, pid).into_keys().collect();
    let mut shared_pairs = 0;
    for &a in &fds {
        for &b in &fds {
            let truth = kcmp_same(pid, a, pid, b);
            assert_eq!(groups[&(pid, a)] == groups[&(pid, b)], truth, "fds {a} and {b}");
            shared_pairs += usize::from(truth && a < b);
        }
    }
    assert!(shared_pairs >= 1, "the scenario has at least the dup'ed pair");
}

#[test]
fn parent_and_two_children_of_one_fork_share_the_inherited_fds() {
    let scenario = Scenario::start(SCENARIO, &["fork", "2"]);
    let (parent, child0, child1) = (scenario.pid(), scenario.fact("child0"), scenario.fact("child1"));
    let Some(bpf) = bpf_survey(&Target::All, &BpfOptions::default()) else { return };
    let groups = description_of(&bpf);
    for name in ["file", "pipe_r", "pipe_w"] {
        let fd = scenario.fact(name);
        for child in [child0, child1] {
            assert!(kcmp_same(parent, fd, child, fd), "ground truth: {name} is inherited");
            assert_eq!(groups[&(parent, fd)], groups[&(child, fd)], "{name}: parent and child {child}");
        }
    }
    let file = scenario.fact("file");
    assert_eq!(by_fd(&bpf, parent)[&file].refs, 3, "one reference per process");
    let parent_only = scenario.fact("parent_only");
    assert!(!groups.contains_key(&(child0, parent_only)), "opened after the fork");
    let holders = groups.values().filter(|&&g| g == groups[&(parent, parent_only)]).count();
    assert_eq!(holders, 1, "parent_only is held by the parent alone");
}

#[test]
fn pid_filter_makes_the_kernel_walk_only_that_process() {
    let scenario = Scenario::start(SCENARIO, &["fork", "1"]);
    let (parent, child) = (scenario.pid(), scenario.fact("child0"));
    let Some(bpf) = bpf_survey(&Target::Pids(vec![parent]), &BpfOptions::default()) else { return };

    // With the kernel's filter fdid drops nothing in userspace, so any record of another task would show
    // that the kernel walked it.
    assert!(bpf.kernel_filtered, "this kernel (6.1+) takes the pid filter on the iterator link");
    let others = bpf.records.iter().filter(|r| r.tgid != parent).count();
    assert_eq!(others, 0, "records of other tasks");
    assert!(!bpf.records.iter().any(|r| r.tgid == child));
    let procfs = procfs_survey(&Target::Pids(vec![parent]));
    assert_eq!(bpf.records.len(), procfs.records.len(), "every fd of the process, no more");
    assert!(bpf.records.iter().any(|r| r.fd == scenario.fact("parent_only")));
}

#[test]
fn procfs_collector_groups_the_fork_tree_like_bpf() {
    let scenario = Scenario::start(SCENARIO, &["fork", "2"]);
    let pids = vec![scenario.pid(), scenario.fact("child0"), scenario.fact("child1")];
    let target = Target::Pids(pids);
    let Some(bpf) = bpf_survey(&target, &BpfOptions::default()) else { return };
    let procfs = procfs_survey(&target);
    let partition = |collection: &Collection| {
        let mut sets: Vec<Vec<(u32, u32)>> = group::group(collection)
            .iter()
            .map(|d| {
                let mut members: Vec<_> =
                    d.fds.iter().map(|&i| (collection.records[i].tgid, collection.records[i].fd)).collect();
                members.sort_unstable();
                members
            })
            .collect();
        sets.sort();
        sets
    };
    assert_eq!(partition(&bpf), partition(&procfs));
}
