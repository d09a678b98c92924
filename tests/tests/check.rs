//! `fdid check`'s policy on live processes: who may share a description with the scope.

use std::collections::BTreeSet;

use fdid::{
    Scope, SurveyOptions,
    check::{self, CheckPolicy, Violation},
    survey::{CollectorKind, OutsideHolders},
};
use fdid_tests::{Scenario, bpf_survey, kcmp_same};

const SCENARIO: &str = env!("CARGO_BIN_EXE_fdid-scenario");

/// What `fdid check --pid PID [--no-inherited]` finds: a whole-system BPF survey for the scope.
fn violations(pid: u32, no_inherited: bool) -> Option<Vec<Violation>> {
    let mut options = SurveyOptions::new(Scope::pids([pid]));
    options.outside = OutsideHolders::Always;
    options.collector = CollectorKind::Bpf;
    let survey = bpf_survey(&options)?;
    let scope: BTreeSet<u32> = [pid].into();
    let policy = CheckPolicy {
        allowed: BTreeSet::new(),
        no_inherited,
    };
    Some(check::violations(&survey, &scope, &policy))
}

/// The outsiders reported for the scope's fd `fd` of `pid`.
fn outsiders_of(violations: &[Violation], pid: u32, fd: u32) -> Vec<(u32, u32)> {
    violations
        .iter()
        .filter(|v| v.holder == (pid, fd))
        .flat_map(|v| v.outsiders.iter().copied())
        .collect()
}

#[test]
fn a_file_passed_with_scm_rights_to_an_unrelated_process_is_a_violation_by_default() {
    let name = format!("fdid-check-{}", std::process::id());
    let mut receiver = Scenario::start(SCENARIO, &["scm-recv", &name]);
    let sender = Scenario::start(SCENARIO, &["scm-send", &name]);
    let received = receiver.later_fact("received");
    let (from, to, file) = (sender.pid(), receiver.pid(), sender.fact("file"));
    assert!(kcmp_same(from, file, to, received), "ground truth");
    let Some(found) = violations(from, false) else {
        return;
    };
    assert_eq!(outsiders_of(&found, from, file), vec![(to, received)]);
}

#[test]
fn a_sibling_is_not_an_ancestor() {
    // Both are children of the scenario process; the sender opened the file after the fork, so their
    // parent never held it: inheriting cannot explain the sharing.
    let scenario = Scenario::start(SCENARIO, &["siblings"]);
    let (sender, receiver) = (scenario.fact("sender"), scenario.fact("receiver"));
    let (file, received) = (scenario.fact("file"), scenario.fact("received"));
    assert!(kcmp_same(sender, file, receiver, received), "ground truth");
    let Some(found) = violations(sender, false) else {
        return;
    };
    assert_eq!(
        outsiders_of(&found, sender, file),
        vec![(receiver, received)]
    );
}

#[test]
fn what_a_child_inherited_is_allowed_unless_no_inherited() {
    // The scenario's child got a file over SCM_RIGHTS from its parent, and shares the parent's pipes.
    let scenario = Scenario::start(SCENARIO, &["scm"]);
    let (parent, child) = (scenario.pid(), scenario.fact("child"));
    let child_fd = scenario.fact("child_fd");
    let (Some(by_default), Some(strict)) = (violations(child, false), violations(child, true))
    else {
        return;
    };
    assert!(
        by_default
            .iter()
            .all(|v| v.outsiders.iter().all(|o| o.0 != parent)),
        "the parent is an ancestor: {by_default:?}"
    );
    assert_eq!(
        outsiders_of(&strict, child, child_fd),
        vec![(parent, scenario.fact("file"))]
    );
}
