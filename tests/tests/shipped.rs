//! The `fdid` a user runs, checked from the outside: its JSON, `--pid`, `check` and `who` against
//! scenarios whose sharing is known (dup and its kin, fork, SCM_RIGHTS) and against kcmp.
//!
//! The binary is `FDID_BINARY` when set — `cargo xtask vm-test` points it at the shipped static
//! binary inside each guest, x86_64 and arm64 — else the workspace's own build beside the scenario.

use std::{
    collections::{BTreeSet, HashMap},
    process::{Command, Output},
};

use fdid_tests::{
    Scenario, assert_ids_match_kcmp, bpf_unavailable_reason, fdid_binary, fds_of, in_ci,
};
use serde_json::Value;

const SCENARIO: &str = env!("CARGO_BIN_EXE_fdid-scenario");

/// Runs `fdid ARGS --collector bpf`. `None` (the test skips) only outside CI on a machine that
/// obviously cannot load BPF; an error exit (2) fails otherwise.
fn fdid(args: &[&str]) -> Option<Output> {
    let output = Command::new(fdid_binary(SCENARIO))
        .args(args)
        .args(["--collector", "bpf"])
        .output()
        .expect("run fdid");
    if output.status.code() == Some(2) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        match bpf_unavailable_reason() {
            Some(reason) if !in_ci() => {
                eprintln!("SKIPPED: fdid cannot use BPF here: {reason} ({stderr})");
                return None;
            }
            _ => panic!("fdid {args:?} failed: {stderr}"),
        }
    }
    Some(output)
}

/// fdid's JSON (a survey, or `who --json`), from a run that exited 0.
fn json(args: &[&str]) -> Option<Value> {
    let output = fdid(args)?;
    assert!(
        output.status.success(),
        "fdid {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("fdid printed valid JSON");
    Some(json)
}

/// What one JSON output says: each fd's id, and each id's holders.
struct Listing {
    ids: HashMap<(u32, u32), u64>,
    in_scope: HashMap<(u32, u32), bool>,
    files: HashMap<u64, Value>,
}

impl Listing {
    fn of(json: &Value) -> Self {
        let number =
            |v: &Value, key: &str| v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"));
        let key = |fd: &Value| (number(fd, "pid") as u32, number(fd, "fd") as u32);
        let fds = json["fds"].as_array().expect("fds[]");
        Self {
            ids: fds.iter().map(|fd| (key(fd), number(fd, "id"))).collect(),
            in_scope: fds
                .iter()
                .map(|fd| (key(fd), fd["in_scope"].as_bool().expect("in_scope")))
                .collect(),
            files: json["files"]
                .as_array()
                .expect("files[]")
                .iter()
                .map(|file| (number(file, "id"), file.clone()))
                .collect(),
        }
    }

    fn id(&self, pid: u32, fd: u32) -> u64 {
        *self
            .ids
            .get(&(pid, fd))
            .unwrap_or_else(|| panic!("fdid listed no fd {fd} of process {pid}"))
    }

    /// Every (pid, fd) holding the description `pid`'s fd `fd` refers to.
    fn holders_with(&self, pid: u32, fd: u32) -> BTreeSet<(u32, u32)> {
        let id = self.id(pid, fd);
        self.ids
            .iter()
            .filter(|(_, other)| **other == id)
            .map(|(key, _)| *key)
            .collect()
    }

    fn file_with(&self, pid: u32, fd: u32) -> &Value {
        &self.files[&self.id(pid, fd)]
    }
}

#[test]
fn a_whole_system_survey_groups_every_dup_fork_and_passed_fd_as_kcmp_does() {
    let fdset = Scenario::start(SCENARIO, &["fdset"]);
    let forked = Scenario::start(SCENARIO, &["fork", "2"]);
    let scm = Scenario::start(SCENARIO, &["scm"]);
    let Some(json) = json(&["--json"]) else {
        return;
    };
    assert_eq!(json["summary"]["source"], "bpf", "{}", json["summary"]);
    let listing = Listing::of(&json);

    // dup, dup2, dup3, F_DUPFD_CLOEXEC: one description with exactly those five fds; a second
    // open(2) of the same file is another.
    let p = fdset.pid();
    let dups: BTreeSet<_> = [
        "file",
        "file_dup",
        "file_dup2",
        "file_dup3",
        "file_dupfd_cloexec",
    ]
    .map(|name| (p, fdset.fact(name)))
    .into();
    assert_eq!(listing.holders_with(p, fdset.fact("file")), dups);
    assert_eq!(
        listing.holders_with(p, fdset.fact("file_again")),
        [(p, fdset.fact("file_again"))].into()
    );

    // fork: both children hold the parent's file and pipe ends, not what it opened afterwards.
    let (parent, children) = (forked.pid(), [forked.fact("child0"), forked.fact("child1")]);
    for name in ["file", "pipe_r", "pipe_w"] {
        let fd = forked.fact(name);
        let expected: BTreeSet<_> = [parent, children[0], children[1]]
            .map(|pid| (pid, fd))
            .into();
        assert_eq!(listing.holders_with(parent, fd), expected, "{name}");
    }
    let parent_only = forked.fact("parent_only");
    assert_eq!(
        listing.holders_with(parent, parent_only),
        [(parent, parent_only)].into()
    );

    // SCM_RIGHTS: the child received the parent's file under its own fd number; the memfd still in
    // flight is one fd plus a reference no fd holds.
    let (sender, receiver) = (scm.pid(), scm.fact("child"));
    assert_eq!(
        listing.holders_with(sender, scm.fact("file")),
        [(sender, scm.fact("file")), (receiver, scm.fact("child_fd"))].into()
    );
    let in_flight = listing.file_with(sender, scm.fact("in_flight"));
    assert_eq!(in_flight["holders"].as_array().map(Vec::len), Some(1));
    assert!(
        in_flight["hidden_refs"].as_u64() >= Some(1),
        "the in-flight reference: {in_flight}"
    );

    // Every pair of the scenarios' fds, against the kernel's own answer.
    let pids = [p, parent, children[0], children[1], sender, receiver];
    let shared = assert_ids_match_kcmp(&fds_of(&pids), |pid, fd| listing.id(pid, fd));
    assert!(shared > 10 + 3 * 3, "only {shared} sharing pairs");
}

#[test]
fn a_pid_survey_marks_the_process_in_scope_and_its_children_with_tree() {
    let forked = Scenario::start(SCENARIO, &["fork", "2"]);
    let (parent, child) = (forked.pid(), forked.fact("child0"));
    let file = forked.fact("file");
    // Reference counts are a moment's truth: a survey another test runs meanwhile holds one on the
    // file it visits. As `bpf_survey_settled` does, run again (ten times at most) until the count
    // settles; the exact count is asserted below.
    let settled = |args: &[&str]| {
        let mut listing = Listing::of(&json(args)?);
        for _ in 0..10 {
            if listing.file_with(parent, file)["refs"].as_u64() == Some(3) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            listing = Listing::of(&json(args)?);
        }
        Some(listing)
    };
    let pid = parent.to_string();
    let Some(alone) = settled(&["--pid", &pid, "--json"]) else {
        return;
    };
    let Some(tree) = settled(&["--pid", &pid, "--tree", "--json"]) else {
        return;
    };
    // Without --tree the children are holders outside the scope; with it, inside.
    assert!(alone.in_scope[&(parent, file)]);
    assert!(!alone.in_scope[&(child, file)], "a child outside the scope");
    assert!(tree.in_scope[&(child, file)], "a child inside the tree");
    for listing in [&alone, &tree] {
        assert_eq!(listing.holders_with(parent, file).len(), 3);
        assert_eq!(
            listing.file_with(parent, file)["refs"].as_u64(),
            Some(3),
            "three fds, no other reference"
        );
    }
    let scoped: BTreeSet<u32> = alone
        .in_scope
        .iter()
        .filter(|(_, in_scope)| **in_scope)
        .map(|((pid, _), _)| *pid)
        .collect();
    assert_eq!(scoped, [parent].into());
}

#[test]
fn check_flags_a_passed_fd_and_passes_a_tree_that_keeps_its_sharing_inside() {
    let scm = Scenario::start(SCENARIO, &["scm"]);
    let (sender, receiver) = (scm.pid(), scm.fact("child"));
    let Some(strict) = fdid(&["check", "--pid", &receiver.to_string(), "--no-inherited"]) else {
        return;
    };
    let Some(sender_alone) = fdid(&["check", "--pid", &sender.to_string(), "--no-inherited"])
    else {
        return;
    };
    let Some(whole_tree) = fdid(&["check", "--pid", &sender.to_string(), "--tree"]) else {
        return;
    };
    let report = String::from_utf8_lossy(&strict.stdout);
    assert_eq!(strict.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!(
            "fd {} of fdid-scenario({receiver})",
            scm.fact("child_fd")
        )) && report.contains(&format!("fdid-scenario({sender}):{}", scm.fact("file"))),
        "{report}"
    );
    let report = String::from_utf8_lossy(&sender_alone.stdout);
    assert_eq!(sender_alone.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!("fdid-scenario({receiver})")),
        "{report}"
    );
    assert_eq!(
        whole_tree.status.code(),
        Some(0),
        "the child is inside the scope; the test's own fds are inherited: {}",
        String::from_utf8_lossy(&whole_tree.stdout)
    );
}

#[test]
fn who_names_both_holders_of_a_file_passed_over_scm_rights() {
    let scm = Scenario::start(SCENARIO, &["scm"]);
    let (sender, receiver) = (scm.pid(), scm.fact("child"));
    let target = format!("{sender}:{}", scm.fact("file"));
    let Some(json) = json(&["who", &target, "--json"]) else {
        return;
    };
    let listing = Listing::of(&json);
    let holders: BTreeSet<_> = listing.ids.keys().copied().collect();
    assert_eq!(
        holders,
        [(sender, scm.fact("file")), (receiver, scm.fact("child_fd"))].into()
    );
    let Some(nobody) = fdid(&["who", "/nonexistent/fdid-shipped"]) else {
        return;
    };
    assert_eq!(nobody.status.code(), Some(1));
}

#[test]
fn two_runs_of_one_boot_give_each_description_the_same_id() {
    let scm = Scenario::start(SCENARIO, &["scm"]);
    let (sender, file) = (scm.pid(), scm.fact("file"));
    let pid = sender.to_string();
    let Some(first) = json(&["--pid", &pid, "--json"]) else {
        return;
    };
    let Some(second) = json(&["--json"]) else {
        return;
    };
    let Some(who) = json(&["who", &format!("{sender}:{file}"), "--json"]) else {
        return;
    };
    let (first, second, who) = (Listing::of(&first), Listing::of(&second), Listing::of(&who));
    // A scoped run, a whole-system run and `who` meet other descriptions in other orders.
    for fd in [file, scm.fact("in_flight"), 0, 1] {
        assert_eq!(first.id(sender, fd), second.id(sender, fd), "fd {fd}");
    }
    assert_eq!(who.id(sender, file), first.id(sender, file));
}
