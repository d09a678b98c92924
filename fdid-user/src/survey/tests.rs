//! The survey's own logic: scopes, the walks [`Survey::run`] chooses, and what [`Survey::assemble`]
//! makes of records (through the fake kernel), looked up the ways reports and `who` look them up.

use std::{
    collections::{BTreeSet, HashMap},
    process::{Child, Command},
};

use super::*;
use crate::testing::{PID, fd, kernel_of, survey, walked};

fn own_pid() -> u32 {
    std::process::id()
}

/// A child that has exited but is not reaped yet: a zombie, with no fds.
fn zombie() -> Child {
    let child = Command::new("true").spawn().expect("spawn true");
    while !proc::has_exited(child.id()) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

#[test]
fn scopes_say_what_they_cover() {
    assert!(Scope::system().is_system());
    assert_eq!(Scope::system().pids, Vec::<u32>::new());
    let pids = Scope::pids([7, 8]);
    assert_eq!((pids.pids.as_slice(), pids.tree), (&[7, 8][..], false));
    assert!(!pids.is_system());
    let trees = Scope::trees([7]);
    assert_eq!((trees.pids.as_slice(), trees.tree), (&[7][..], true));
}

#[test]
fn a_scope_resolves_to_its_processes_and_their_descendants_with_tree() {
    assert_eq!(resolve_scope(&Scope::system()).unwrap(), None);
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let alone = resolve_scope(&Scope::pids([own_pid()])).unwrap().unwrap();
    let tree = resolve_scope(&Scope::trees([own_pid()])).unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(alone, BTreeSet::from([own_pid()]));
    assert!(
        tree.contains(&own_pid()) && tree.contains(&child.id()),
        "{tree:?}"
    );
}

#[test]
fn a_thread_or_a_missing_pid_is_a_named_error() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        sender.send(unsafe { libc::gettid() } as u32).unwrap();
        stopped.recv().ok();
    });
    let tid = receiver.recv().unwrap();
    let error = resolve_scope(&Scope::pids([tid])).unwrap_err();
    stop.send(()).unwrap();
    thread.join().unwrap();
    assert!(
        matches!(error, SurveyError::Thread { pid, tgid } if pid == tid && tgid == own_pid()),
        "{error}"
    );
    assert!(matches!(
        resolve_scope(&Scope::pids([PID])),
        Err(SurveyError::NoSuchProcess(PID))
    ));
}

/// A child holding a few fds (this process's own fds are not in its surveys: fdid drops its own).
fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep")
}

fn survey_of(child: &mut Child, options: &mut SurveyOptions) -> Survey {
    options.scope = Scope::pids([child.id()]);
    let survey = Survey::run(options);
    child.kill().unwrap();
    child.wait().unwrap();
    survey.unwrap()
}

#[test]
fn scope_only_for_a_small_process_is_planned_onto_procfs() {
    let mut options = SurveyOptions::new(Scope::system());
    options.outside = OutsideHolders::Never;
    let survey = survey_of(&mut sleeper(), &mut options);
    assert_eq!(survey.stats.source, Source::Procfs);
    assert!(survey.stats.plan.is_some(), "{:?}", survey.stats);
    assert!(!survey.stats.whole_system);
}

#[test]
fn looking_for_outside_holders_walks_the_whole_system_after_the_scope() {
    let mut child = sleeper();
    let pid = child.id();
    let mut options = SurveyOptions::new(Scope::system());
    options.outside = OutsideHolders::Always;
    options.collector = CollectorKind::Procfs;
    let survey = survey_of(&mut child, &mut options);
    assert!(survey.stats.whole_system);
    assert!(survey.stats.collect_time <= survey.stats.elapsed);
    assert_eq!(survey.processes_in_scope(), BTreeSet::from([pid]));
}

#[test]
fn a_process_of_the_scope_that_exited_is_reported_not_an_error() {
    let mut gone = zombie();
    let mut alive = sleeper();
    let mut options = SurveyOptions::new(Scope::pids([gone.id(), alive.id()]));
    options.outside = OutsideHolders::Never;
    options.collector = CollectorKind::Procfs;
    let survey = Survey::run(&options);
    alive.kill().unwrap();
    alive.wait().unwrap();
    gone.wait().unwrap();
    let survey = survey.unwrap();
    assert_eq!(survey.stats.exited, vec![gone.id()]);
    assert_eq!(survey.processes_in_scope(), BTreeSet::from([alive.id()]));
}

#[test]
fn a_walk_from_a_nested_pid_namespace_cannot_count_hidden_references() {
    let mut inner = fd(PID, 3, 7, 3);
    inner.pid_ns_level = 1;
    let survey = survey(vec![inner], &[]);
    assert!(!survey.stats.whole_system);
    assert_eq!(survey.files[0].hidden_refs, None);
    assert_eq!(survey.files[0].refs, Some(3));
}

#[test]
fn fdids_own_references_are_not_hidden_references() {
    // Description 7 has 4 references: PID's fd 3, one of fdid's own, two held by no fd.
    let records = vec![fd(PID, 3, 7, 4)];
    let mut kernel = kernel_of(&records);
    let mut walk = walked(records, &[]);
    walk.own_refs = HashMap::from([(7, 1)]);
    let survey = Survey::assemble(walk, VerifyMode::Ambiguous, &mut kernel);
    assert_eq!(survey.files[0].hidden_refs, Some(2));
}

/// PID holds description 7 twice (fds 3, 4) and 8 (fd 5); PID+1 holds 7 (fd 3) and 9 (fd 4), a
/// second open of 8's inode; PID+2 holds 10 alone.
fn three_processes() -> Vec<FdRecord> {
    let mut second_open = fd(PID + 1, 4, 9, 1);
    second_open.ino = fd(PID, 5, 8, 1).ino;
    vec![
        fd(PID, 3, 7, 3),
        fd(PID, 4, 7, 3),
        fd(PID, 5, 8, 1),
        fd(PID + 1, 3, 7, 3),
        second_open,
        fd(PID + 2, 3, 10, 1),
    ]
}

#[test]
fn each_fd_finds_its_description_by_pid_and_fd_and_by_index() {
    let survey = survey(three_processes(), &[]);
    assert_eq!((survey.len(), survey.is_empty()), (6, false));
    let ids: Vec<OpenFileId> = [(PID, 3), (PID, 4), (PID, 5), (PID + 1, 3), (PID + 1, 4)]
        .iter()
        .map(|&(pid, fd)| survey.id_of(pid, fd).unwrap())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0], ids[3], "inherited");
    assert_ne!(ids[3], ids[4], "same fd number, another process");
    assert_ne!(ids[2], ids[4], "same inode, opened separately");
    assert_eq!(survey.id_of(PID + 2, 5), None);
    for index in 0..survey.len() {
        let file = &survey.files[survey.file_index_of(index)];
        assert!(file.holders.contains(&index));
        assert_eq!(survey.fd(index).id, file.id);
        assert_eq!(survey.file(file.id), Some(file));
    }
    assert_eq!(survey.file(OpenFileId(1)), None);
    for (i, file) in survey.files.iter().enumerate() {
        assert_eq!(survey.file_index(file.id), Some(i));
    }
    assert_eq!(survey.file_index(OpenFileId(1)), None);
}

#[test]
fn shared_descriptions_and_separate_opens_of_one_inode_are_told_apart() {
    let survey = survey(three_processes(), &[]);
    let shared: Vec<OpenFileId> = survey.shared_files().map(|f| f.id).collect();
    assert_eq!(shared, vec![survey.id_of(PID, 3).unwrap()]);
    let (first, second) = (
        survey.id_of(PID, 5).unwrap(),
        survey.id_of(PID + 1, 4).unwrap(),
    );
    assert_eq!(survey.same_inode(first), vec![second]);
    assert_eq!(survey.same_inode(second), vec![first]);
    assert_eq!(survey.same_inode(survey.id_of(PID, 3).unwrap()), vec![]);
}

#[test]
fn a_scoped_survey_counts_its_own_processes_and_lists_outside_holders() {
    let survey = survey(three_processes(), &[PID]);
    assert_eq!(survey.processes_in_scope(), BTreeSet::from([PID]));
    assert_eq!(survey.processes(), 2, "PID and the outside holder PID+1");
    assert_eq!(survey.fds_in_scope(), 3);
    let outside: Vec<bool> = survey.fds().map(|fd| fd.in_scope).collect();
    assert_eq!(outside, vec![true, true, true, false]);
    let whole = crate::testing::survey(three_processes(), &[]);
    assert_eq!(whole.processes(), 3);
    assert_eq!(
        whole.processes_in_scope(),
        BTreeSet::from([PID, PID + 1, PID + 2])
    );
    let empty = crate::testing::survey(Vec::new(), &[]);
    assert!(empty.is_empty());
}
