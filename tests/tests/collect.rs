//! The BPF collector against ground truth: what the scenario built, procfs, and kcmp.

use std::collections::HashSet;

use fdid::{
    Scope, SurveyOptions,
    collect::{Target, bpf::BpfOptions},
};
use fdid_tests::{
    Scenario, assert_grouping_matches_kcmp, bpf_collect, bpf_survey, bpf_survey_settled, by_fd,
    fds_of, id, kcmp_same, procfs_collect, refs_of,
};

const SCENARIO: &str = env!("CARGO_BIN_EXE_fdid-scenario");

#[test]
fn one_process_collected_by_bpf_equals_procfs_field_by_field() {
    let scenario = Scenario::start(SCENARIO, &["fdset"]);
    let pid = scenario.pid();
    let target = Target::Pids(vec![pid]);
    let Some(bpf) = bpf_collect(&target, &BpfOptions::default()) else {
        return;
    };
    let procfs = procfs_collect(&target);

    let bpf_fds = by_fd(&bpf, pid);
    let procfs_fds = by_fd(&procfs, pid);
    assert_eq!(
        bpf_fds.keys().collect::<HashSet<_>>(),
        procfs_fds.keys().collect::<HashSet<_>>(),
        "both collectors see the same fds"
    );
    for name in [
        "file",
        "file_dup",
        "file_again",
        "pipe_r",
        "pipe_w",
        "sock_a",
        "sock_b",
        "tcp",
        "eventfd",
        "epoll",
        "timerfd",
        "memfd",
    ] {
        assert!(
            bpf_fds.contains_key(&scenario.fact(name)),
            "BPF survey lacks the scenario's {name}"
        );
    }
    for (fd, from_bpf) in &bpf_fds {
        let from_procfs = &procfs_fds[fd];
        // Fds 0–2 are the test harness's stdio, shared with every other test running beside
        // this one: when that is a log file, its offset moves between the two reads. Every
        // other description here is the scenario's own and still.
        let still = |r: &fdid::FdRecord| if r.fd <= 2 { None } else { Some(r.pos) };
        let key = |r: &fdid::FdRecord| (r.tgid, r.fd, r.dev, r.ino, still(r), r.flags, r.mode);
        assert_eq!(
            key(from_bpf),
            key(from_procfs),
            "fd {fd}: (pid, fd, dev, ino, pos, flags, mode)"
        );
        assert!(
            from_bpf.refs >= 1,
            "fd {fd}: an open description has at least one reference"
        );
        assert_ne!(
            from_bpf.file_hash, 0,
            "fd {fd}: BPF records carry a pointer hash"
        );
    }
    assert_eq!(
        bpf_fds[&scenario.fact("file")].pos,
        5,
        "the scenario seeked its file to 5"
    );
}

#[test]
fn a_dup_shares_one_description_and_a_second_open_does_not() {
    let scenario = Scenario::start(SCENARIO, &["fdset"]);
    let pid = scenario.pid();
    let settled = |s: &fdid::Survey| {
        refs_of(s, pid, scenario.fact("file")).and_then(|r| r.0) == Some(5)
            && refs_of(s, pid, scenario.fact("file_again")).and_then(|r| r.0) == Some(1)
    };
    let Some(survey) = bpf_survey_settled(&SurveyOptions::new(Scope::pids([pid])), settled) else {
        return;
    };
    let (file, dup, again) = (
        scenario.fact("file"),
        scenario.fact("file_dup"),
        scenario.fact("file_again"),
    );

    assert!(
        kcmp_same(pid, file, pid, dup),
        "ground truth: dup shares the description"
    );
    assert!(
        !kcmp_same(pid, file, pid, again),
        "ground truth: a second open is another description"
    );
    assert_eq!(id(&survey, pid, file), id(&survey, pid, dup));
    assert_ne!(id(&survey, pid, file), id(&survey, pid, again));
    let file_entry = survey.file(id(&survey, pid, file)).unwrap();
    assert_eq!(
        file_entry.refs,
        Some(5),
        "fd, dup, dup2, dup3 and F_DUPFD_CLOEXEC: five references"
    );
    assert_eq!(survey.file(id(&survey, pid, again)).unwrap().refs, Some(1));
    assert_eq!(
        survey.same_inode(id(&survey, pid, file)),
        vec![id(&survey, pid, again)],
        "same inode, opened twice"
    );
}

#[test]
fn every_pair_of_fds_in_a_process_is_grouped_as_kcmp_says() {
    let scenario = Scenario::start(SCENARIO, &["fdset"]);
    let pid = scenario.pid();
    let Some(survey) = bpf_survey(&SurveyOptions::new(Scope::pids([pid]))) else {
        return;
    };
    let shared_pairs = assert_grouping_matches_kcmp(&survey, &fds_of(&[pid]));
    assert!(
        shared_pairs >= 10,
        "the five holders of the dup'ed file make 10 pairs, got {shared_pairs}"
    );
}

#[test]
fn parent_and_two_children_of_one_fork_share_the_inherited_fds() {
    let scenario = Scenario::start(SCENARIO, &["fork", "2"]);
    let (parent, child0, child1) = (
        scenario.pid(),
        scenario.fact("child0"),
        scenario.fact("child1"),
    );
    let file_fd = scenario.fact("file");
    let settled = |s: &fdid::Survey| refs_of(s, parent, file_fd) == Some((Some(3), Some(0)));
    let Some(survey) = bpf_survey_settled(&SurveyOptions::new(Scope::system()), settled) else {
        return;
    };
    for name in ["file", "pipe_r", "pipe_w"] {
        let fd = scenario.fact(name);
        for child in [child0, child1] {
            assert!(
                kcmp_same(parent, fd, child, fd),
                "ground truth: {name} is inherited"
            );
            assert_eq!(
                id(&survey, parent, fd),
                id(&survey, child, fd),
                "{name}: parent and child {child}"
            );
        }
    }
    let file = survey
        .file(id(&survey, parent, scenario.fact("file")))
        .unwrap();
    assert_eq!(file.refs, Some(3), "one reference per process");
    assert_eq!(file.holders.len(), 3);
    assert_eq!(
        file.hidden_refs,
        Some(0),
        "every reference is explained by an fd"
    );
    let parent_only = scenario.fact("parent_only");
    assert_eq!(
        survey.id_of(child0, parent_only),
        None,
        "opened after the fork"
    );
    assert_eq!(
        survey
            .file(id(&survey, parent, parent_only))
            .unwrap()
            .holders
            .len(),
        1
    );
    assert_grouping_matches_kcmp(&survey, &fds_of(&[parent, child0, child1]));
}

#[test]
fn pid_filter_makes_the_kernel_walk_only_that_process() {
    let scenario = Scenario::start(SCENARIO, &["fork", "1"]);
    let (parent, child) = (scenario.pid(), scenario.fact("child0"));
    let Some(collection) = bpf_collect(&Target::Pids(vec![parent]), &BpfOptions::default()) else {
        return;
    };

    // Does this kernel take a pid filter on the iterator link (6.1+)? Its BTF says.
    let btf = fdid::btf::Btf::from_file(std::path::Path::new(fdid::btf::VMLINUX_BTF)).unwrap();
    let layout = fdid::offsets::KernelLayout::resolve(&btf).unwrap();
    if layout.kernel_pid_filter {
        // With the kernel's filter the collector drops nothing in userspace, so any record of
        // another task would show that the kernel walked it.
        eprintln!("path taken: the kernel's pid filter on the iterator link");
        assert!(collection.kernel_filtered, "the kernel's filter was used");
    } else {
        // Before 6.1 the kernel walks everything; for one process the program itself drops the
        // other tasks' fds.
        eprintln!("path taken: this kernel has no link pid filter; the BPF program filtered");
        assert!(!collection.kernel_filtered);
    }
    let others = collection
        .records
        .iter()
        .filter(|r| r.tgid != parent)
        .count();
    assert_eq!(others, 0, "records of other tasks");
    assert!(!collection.records.iter().any(|r| r.tgid == child));
    let procfs = procfs_collect(&Target::Pids(vec![parent]));
    assert_eq!(
        collection.records.len(),
        procfs.records.len(),
        "every fd of the process, no more"
    );
    assert!(
        collection
            .records
            .iter()
            .any(|r| r.fd == scenario.fact("parent_only"))
    );
}

/// The filter kernels before 6.1 rely on — the program itself drops other processes' records — is
/// checked on the raw collection (the collector filters nothing else then): every fd table of the
/// process, its own-table thread's included, and nothing of anyone else.
#[test]
fn the_programs_own_pid_filter_keeps_the_process_and_its_threads_tables_only() {
    let scenario = Scenario::start(SCENARIO, &["threads", "2"]);
    let (pid, tid) = (scenario.pid(), scenario.fact("own_table_tid"));
    let options = BpfOptions {
        force_program_filter: true,
        ..BpfOptions::default()
    };
    let Some(collection) = bpf_collect(&Target::Pids(vec![pid]), &options) else {
        return;
    };
    assert!(
        !collection.kernel_filtered,
        "the program filtered, not the kernel"
    );
    assert!(
        collection.records.iter().all(|r| r.tgid == pid),
        "records of other processes"
    );
    assert!(
        collection.records.iter().any(|r| r.tid == tid),
        "the thread with its own fd table (tgid {pid}, tid {tid}) is kept"
    );
    let procfs = procfs_collect(&Target::Pids(vec![pid]));
    assert_eq!(
        collection.records.len(),
        procfs.records.len(),
        "every fd of every table of the process, no more"
    );
}

#[test]
fn procfs_collector_groups_the_fork_tree_like_bpf() {
    let scenario = Scenario::start(SCENARIO, &["fork", "2"]);
    let pids = [
        scenario.pid(),
        scenario.fact("child0"),
        scenario.fact("child1"),
    ];
    let Some(bpf) = bpf_survey(&SurveyOptions::new(Scope::pids(pids))) else {
        return;
    };
    let mut options = SurveyOptions::new(Scope::pids(pids));
    options.collector = fdid::survey::CollectorKind::Procfs;
    let procfs = fdid::Survey::run(&options).expect("procfs survey");
    let fds = fds_of(&pids);
    for (i, &(p1, f1)) in fds.iter().enumerate() {
        for &(p2, f2) in &fds[i + 1..] {
            assert_eq!(
                id(&bpf, p1, f1) == id(&bpf, p2, f2),
                id(&procfs, p1, f1) == id(&procfs, p2, f2),
                "{p1}:{f1} and {p2}:{f2}"
            );
        }
    }
    assert!(
        procfs.stats.verify.kcmp_calls > 0,
        "procfs grouping is done by kcmp"
    );
}
