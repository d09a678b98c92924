//! The identity engine on live processes: each scenario knows its ground truth and checks it with kcmp.

use fdid::{
    Scope, Survey, SurveyOptions, VerifyMode,
    survey::{CollectorKind, OutsideHolders},
};
use fdid_tests::{
    Scenario, assert_grouping_matches_kcmp, bpf_survey, bpf_survey_settled, fds_of, id, kcmp_same,
    refs_of,
};

const SCENARIO: &str = env!("CARGO_BIN_EXE_fdid-scenario");

fn system() -> SurveyOptions {
    SurveyOptions::new(Scope::system())
}

#[test]
fn dup_dup2_dup3_and_f_dupfd_cloexec_all_share_the_description() {
    let scenario = Scenario::start(SCENARIO, &["fdset"]);
    let pid = scenario.pid();
    let Some(survey) = bpf_survey(&SurveyOptions::new(Scope::pids([pid]))) else {
        return;
    };
    let file = id(&survey, pid, scenario.fact("file"));
    for name in ["file_dup", "file_dup2", "file_dup3", "file_dupfd_cloexec"] {
        let fd = scenario.fact(name);
        assert!(
            kcmp_same(pid, scenario.fact("file"), pid, fd),
            "ground truth for {name}"
        );
        assert_eq!(id(&survey, pid, fd), file, "{name}");
    }
    assert_eq!(survey.file(file).unwrap().holders.len(), 5);
    assert_eq!(
        file.genid(),
        survey.fds().find(|f| f.id == file).unwrap().id.genid()
    );
}

#[test]
fn pipe_ends_sockets_and_anonymous_files_are_distinct_descriptions() {
    let scenario = Scenario::start(SCENARIO, &["fdset"]);
    let pid = scenario.pid();
    let Some(survey) = bpf_survey(&SurveyOptions::new(Scope::pids([pid]))) else {
        return;
    };
    let names = [
        "pipe_r", "pipe_w", "sock_a", "sock_b", "tcp", "eventfd", "epoll", "timerfd", "memfd",
    ];
    let ids: Vec<_> = names
        .iter()
        .map(|name| id(&survey, pid, scenario.fact(name)))
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "each is its own description");
    // The two ends of one pipe: one inode, two descriptions (the second level of sharing).
    let (read_end, write_end) = (ids[0], ids[1]);
    assert_eq!(survey.same_inode(read_end), vec![write_end]);
    assert!(
        survey.same_inode(ids[2]).is_empty(),
        "socketpair ends are two inodes"
    );
    assert_grouping_matches_kcmp(&survey, &fds_of(&[pid]));
}

#[test]
fn scm_rights_between_unrelated_processes_shares_one_description() {
    let name = format!(
        "fdid-test-{}-{:?}",
        std::process::id(),
        std::time::Instant::now()
    );
    let mut receiver = Scenario::start(SCENARIO, &["scm-recv", &name]);
    let sender = Scenario::start(SCENARIO, &["scm-send", &name]);
    let received = receiver.later_fact("received");
    let (to, from, file) = (receiver.pid(), sender.pid(), sender.fact("file"));
    assert!(kcmp_same(from, file, to, received), "ground truth");
    let Some(survey) = bpf_survey(&system()) else {
        return;
    };
    assert_eq!(id(&survey, from, file), id(&survey, to, received));
    assert_eq!(
        survey
            .file(id(&survey, to, received))
            .unwrap()
            .holders
            .len(),
        2
    );
    assert_grouping_matches_kcmp(&survey, &fds_of(&[from, to]));
}

#[test]
fn a_file_passed_with_scm_rights_to_a_child_is_one_description_in_both() {
    let scenario = Scenario::start(SCENARIO, &["scm"]);
    let (parent, child) = (scenario.pid(), scenario.fact("child"));
    let (file, child_fd) = (scenario.fact("file"), scenario.fact("child_fd"));
    let Some(survey) = bpf_survey(&system()) else {
        return;
    };
    assert!(kcmp_same(parent, file, child, child_fd), "ground truth");
    assert_eq!(id(&survey, parent, file), id(&survey, child, child_fd));
    assert_grouping_matches_kcmp(&survey, &fds_of(&[parent, child]));
}

#[test]
fn an_fd_sent_but_not_yet_received_is_one_hidden_reference() {
    let scenario = Scenario::start(SCENARIO, &["scm"]);
    let parent = scenario.pid();
    let settled = |s: &Survey| {
        refs_of(s, parent, scenario.fact("in_flight")) == Some((Some(2), Some(1)))
            && refs_of(s, parent, scenario.fact("file")).and_then(|r| r.1) == Some(0)
    };
    let Some(survey) = bpf_survey_settled(&system(), settled) else {
        return;
    };
    let in_flight = survey
        .file(id(&survey, parent, scenario.fact("in_flight")))
        .unwrap();
    assert_eq!(in_flight.holders.len(), 1);
    assert_eq!(
        in_flight.refs,
        Some(2),
        "the sender's fd and the message in the socket queue"
    );
    assert_eq!(in_flight.hidden_refs, Some(1));
    let received = survey
        .file(id(&survey, parent, scenario.fact("file")))
        .unwrap();
    assert_eq!(
        received.hidden_refs,
        Some(0),
        "the received one is fully explained by fds"
    );
}

#[test]
fn an_fd_that_is_also_mmapped_shows_one_hidden_reference() {
    let scenario = Scenario::start(SCENARIO, &["mmap"]);
    let pid = scenario.pid();
    let settled = |s: &Survey| refs_of(s, pid, scenario.fact("file")) == Some((Some(2), Some(1)));
    let Some(survey) = bpf_survey_settled(&system(), settled) else {
        return;
    };
    let file = survey
        .file(id(&survey, pid, scenario.fact("file")))
        .unwrap();
    assert_eq!(
        (file.holders.len(), file.refs, file.hidden_refs),
        (1, Some(2), Some(1))
    );
}

#[test]
fn pidfd_getfd_copies_share_the_childs_description() {
    let scenario = Scenario::start(SCENARIO, &["pidfd"]);
    let (parent, child) = (scenario.pid(), scenario.fact("child"));
    let (child_file, copy) = (scenario.fact("child_file"), scenario.fact("parent_copy"));
    let Some(survey) = bpf_survey(&SurveyOptions::new(Scope::pids([parent]))) else {
        return;
    };
    assert!(kcmp_same(parent, copy, child, child_file), "ground truth");
    // Scoped to the parent, the child's fd is still shown as an outside holder.
    let file = survey.file(id(&survey, parent, copy)).unwrap();
    let outside: Vec<_> = file
        .holders
        .iter()
        .map(|&h| survey.fd(h))
        .filter(|f| !f.in_scope)
        .map(|f| (f.record.tgid, f.record.fd))
        .collect();
    assert_eq!(outside, vec![(child, child_file)]);
}

/// A survey of `options` by `collector`: BPF under the CI rule, procfs always.
fn survey_by(collector: CollectorKind, mut options: SurveyOptions) -> Option<Survey> {
    options.collector = collector;
    match collector {
        CollectorKind::Procfs => Some(Survey::run(&options).expect("procfs survey")),
        _ => bpf_survey(&options),
    }
}

fn threads_do_not_duplicate_fds_but_a_thread_with_its_own_table_is_seen(collector: CollectorKind) {
    let scenario = Scenario::start(SCENARIO, &["threads", "4"]);
    let pid = scenario.pid();
    let Some(survey) = survey_by(collector, SurveyOptions::new(Scope::pids([pid]))) else {
        return;
    };
    let (file, tid) = (scenario.fact("file"), scenario.fact("own_table_tid"));
    let tids: std::collections::BTreeSet<u32> = survey
        .fds()
        .filter(|f| f.record.tgid == pid)
        .map(|f| f.record.tid)
        .collect();
    assert_eq!(
        tids,
        [pid, tid].into(),
        "four threads share the leader's table; only the unshared one is walked too"
    );
    let copies = survey
        .fds()
        .filter(|f| f.record.tid == pid && f.record.fd == file)
        .count();
    assert_eq!(copies, 1, "fd {file} is listed once for the shared table");
    // unshare(CLONE_FILES) copied the table: the thread's copy of fd 3 holds the same description.
    let in_thread = survey
        .fds()
        .find(|f| f.record.tid == tid && f.record.fd == file)
        .unwrap();
    assert_eq!(in_thread.id, id(&survey, pid, file));
    assert!(kcmp_same(pid, file, tid, file), "ground truth");
    let own = survey
        .fds()
        .find(|f| f.record.tid == tid && f.record.fd == scenario.fact("own_table_fd"))
        .expect("the thread's own fd table is walked");
    assert_eq!(own.record.tgid, pid);
    assert_eq!(survey.file(own.id).unwrap().holders.len(), 1);
}

#[test]
fn threads_with_bpf() {
    threads_do_not_duplicate_fds_but_a_thread_with_its_own_table_is_seen(CollectorKind::Bpf);
}

#[test]
fn threads_with_procfs() {
    threads_do_not_duplicate_fds_but_a_thread_with_its_own_table_is_seen(CollectorKind::Procfs);
}

fn processes_sharing_one_fd_table_are_reported_once(collector: CollectorKind) {
    let scenario = Scenario::start(SCENARIO, &["clone-files"]);
    let (parent, child) = (scenario.pid(), scenario.fact("child"));
    assert!(
        fdid::kcmp::same_fd_table(parent, child).unwrap(),
        "ground truth: one table"
    );
    let survey = match collector {
        CollectorKind::Procfs => survey_by(collector, system()),
        _ => {
            let settled =
                |s: &Survey| refs_of(s, parent, scenario.fact("file")).and_then(|r| r.1) == Some(0);
            let mut options = system();
            options.collector = collector;
            bpf_survey_settled(&options, settled)
        }
    };
    let Some(survey) = survey else {
        return;
    };
    let table = survey
        .shared_tables
        .iter()
        .find(|t| t.pids.contains(&parent))
        .expect("the shared table is detected");
    assert_eq!(table.pids, vec![parent, child]);
    let file = survey
        .file(id(&survey, parent, scenario.fact("file")))
        .unwrap();
    assert_eq!(file.holders.len(), 1, "not N× duplicate fds");
    if collector != CollectorKind::Procfs {
        assert_eq!(file.hidden_refs, Some(0), "one table entry, one reference");
    }
    assert!(survey.fds().all(|f| f.record.tgid != child));
}

#[test]
fn shared_tables_with_bpf() {
    processes_sharing_one_fd_table_are_reported_once(CollectorKind::Bpf);
}

#[test]
fn shared_tables_with_procfs() {
    processes_sharing_one_fd_table_are_reported_once(CollectorKind::Procfs);
}

#[test]
fn a_description_whose_offset_moves_during_the_walk_keeps_one_id() {
    let scenario = Scenario::start(SCENARIO, &["writer"]);
    let (parent, child, file) = (
        scenario.pid(),
        scenario.fact("child"),
        scenario.fact("file"),
    );
    for round in 0..5 {
        for verify in [VerifyMode::Ambiguous, VerifyMode::All] {
            let mut options = SurveyOptions::new(Scope::pids([parent, child]));
            options.verify = verify;
            // Only the two writers: a process outside that shares their stderr may be moving its own
            // fds (a test harness spawning a child), and kcmp rightly splits those.
            options.outside = OutsideHolders::Never;
            let Some(survey) = bpf_survey(&options) else {
                return;
            };
            assert_eq!(
                id(&survey, parent, file),
                id(&survey, child, file),
                "round {round}, {verify:?}"
            );
            assert_eq!(survey.stats.verify.splits, 0);
        }
    }
}

#[test]
fn forced_hash_collisions_are_split_by_kcmp() {
    let fdset = Scenario::start(SCENARIO, &["fdset"]);
    // Eight more read-only opens of one file: with four hash values, at least two of these distinct
    // descriptions (same inode, same access mode) must collide, so kcmp must split something.
    let tree = Scenario::start(SCENARIO, &["fork", "2", "8"]);
    let pids = [
        fdset.pid(),
        tree.pid(),
        tree.fact("child0"),
        tree.fact("child1"),
    ];
    let mut options = SurveyOptions::new(Scope::pids(pids));
    // Two bits of hash: almost every fd collides with others.
    options.bpf.hash_mask = 0b11;
    let Some(survey) = bpf_survey(&options) else {
        return;
    };
    assert!(
        survey.stats.verify.kcmp_calls > 0,
        "narrowed hashes are verified"
    );
    assert!(
        survey.stats.verify.splits > 0,
        "kcmp split colliding descriptions"
    );
    let shared = assert_grouping_matches_kcmp(&survey, &fds_of(&pids));
    assert!(shared > 0);
    // Without verification the same collisions would merge distinct descriptions of one inode... but
    // distinct inodes are always apart; check that `none` really trusts the hash.
    options.verify = VerifyMode::None;
    let trusting = Survey::run(&options).expect("survey");
    assert_eq!(trusting.stats.verify.kcmp_calls, 0);
}

#[test]
fn verify_all_confirms_every_shared_fd_and_agrees_with_ambiguous() {
    let scenario = Scenario::start(SCENARIO, &["fork", "3"]);
    let pids = [
        scenario.pid(),
        scenario.fact("child0"),
        scenario.fact("child1"),
        scenario.fact("child2"),
    ];
    let mut options = SurveyOptions::new(Scope::pids(pids));
    let Some(ambiguous) = bpf_survey(&options) else {
        return;
    };
    options.verify = VerifyMode::All;
    let all = Survey::run(&options).expect("survey");
    assert!(
        all.stats.verify.kcmp_calls >= 3 * 3,
        "file and both pipe ends, three children each"
    );
    // A plain fork tree is not ambiguous; only the test harness's own stdio, shared with processes
    // that come and go during the walk, can be.
    assert!(
        ambiguous.stats.verify.kcmp_calls < all.stats.verify.kcmp_calls,
        "ambiguous confirms less than all"
    );
    for &(pid, fd) in &fds_of(&pids) {
        let same_in_all: Vec<_> = fds_of(&pids)
            .into_iter()
            .filter(|&(p, f)| id(&all, p, f) == id(&all, pid, fd))
            .collect();
        let same_in_ambiguous: Vec<_> = fds_of(&pids)
            .into_iter()
            .filter(|&(p, f)| id(&ambiguous, p, f) == id(&ambiguous, pid, fd))
            .collect();
        assert_eq!(same_in_all, same_in_ambiguous, "{pid}:{fd}");
    }
}

#[test]
fn tree_scope_includes_descendants_and_their_shared_fds() {
    let scenario = Scenario::start(SCENARIO, &["fork", "2"]);
    let parent = scenario.pid();
    let Some(survey) = bpf_survey(&SurveyOptions::new(Scope::trees([parent]))) else {
        return;
    };
    let file = scenario.fact("file");
    for child in [scenario.fact("child0"), scenario.fact("child1")] {
        let fd = survey
            .fds()
            .find(|f| f.record.tgid == child && f.record.fd == file)
            .unwrap();
        assert!(fd.in_scope, "child {child} is in the tree scope");
        assert_eq!(fd.id, id(&survey, parent, file));
    }
}

#[test]
fn a_process_exiting_during_the_survey_is_not_an_error() {
    // Children come and go while surveys run: each survey must succeed, and the long-lived scenario is
    // always right.
    let scenario = Scenario::start(SCENARIO, &["fork", "1"]);
    let (parent, child, file) = (
        scenario.pid(),
        scenario.fact("child0"),
        scenario.fact("file"),
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut spawned = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut children: Vec<_> = (0..8)
                    .filter_map(|_| std::process::Command::new("true").spawn().ok())
                    .collect();
                for c in &mut children {
                    let _ = c.wait();
                }
                spawned += children.len();
            }
            spawned
        })
    };
    for verify in [
        VerifyMode::Ambiguous,
        VerifyMode::All,
        VerifyMode::Ambiguous,
        VerifyMode::All,
    ] {
        let mut options = system();
        options.verify = verify;
        let Some(survey) = bpf_survey(&options) else {
            break;
        };
        assert_eq!(id(&survey, parent, file), id(&survey, child, file));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(churn.join().unwrap() > 0, "processes did come and go");
}
