//! `fdid check`: the CI gate. Does the scope share an open file description with a process outside the
//! allowed set?
//!
//! Allowed: the scope itself, `--allow-shared-with` pids, and — unless `--no-inherited` — the scope's
//! ancestors (fds inherited from the parent, such as a shell's terminal, are normal). With
//! `--no-inherited`, sharing with an ancestor is reported too, except on fds 0–2 (the standard streams):
//! that catches a descriptor leaked to a child across exec because it lacked `O_CLOEXEC`.

use std::collections::BTreeSet;

use crate::{proc, survey::Survey};

/// What is allowed to share with the scope.
#[derive(Clone, Debug, Default)]
pub struct CheckPolicy {
    pub allowed: BTreeSet<u32>,
    /// Treat sharing with ancestors as a violation too (except fds 0–2 of the scope).
    pub no_inherited: bool,
}

/// One fd of the scope whose description is also held outside the allowed set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The fd in the scope: (pid, fd).
    pub holder: (u32, u32),
    /// Holders outside the allowed set: (pid, fd).
    pub outsiders: Vec<(u32, u32)>,
    /// Index of the description in `Survey::files`.
    pub file: usize,
}

/// Finds the violations of `policy` in a survey that walked the whole system for the scope `scope`.
pub fn violations(survey: &Survey, scope: &BTreeSet<u32>, policy: &CheckPolicy) -> Vec<Violation> {
    let mut ancestors = BTreeSet::new();
    for &pid in scope {
        ancestors.extend(proc::ancestors(pid));
    }
    let mut found = Vec::new();
    for (index, file) in survey.files.iter().enumerate() {
        let holders: Vec<(u32, u32)> = file
            .holders
            .iter()
            .map(|&h| (survey.fds[h].record.tgid, survey.fds[h].record.fd))
            .collect();
        let inside: Vec<(u32, u32)> = holders.iter().copied().filter(|(pid, _)| scope.contains(pid)).collect();
        if inside.is_empty() {
            continue;
        }
        let standard_streams = inside.iter().all(|&(_, fd)| fd <= 2);
        let outsiders: Vec<(u32, u32)> = holders
            .iter()
            .copied()
            .filter(|(pid, _)| !scope.contains(pid) && !policy.allowed.contains(pid))
            .filter(|(pid, _)| {
                !ancestors.contains(pid) || (policy.no_inherited && !standard_streams)
            })
            .collect();
        if !outsiders.is_empty() {
            for &holder in &inside {
                found.push(Violation { holder, outsiders: outsiders.clone(), file: index });
            }
        }
    }
    found
}
