//! `fdid check`: the CI gate. Does the scope share an open file description with a process outside the
//! allowed set?
//!
//! Allowed: the scope itself, `--allow-shared-with` pids, and — unless `--no-inherited` — the scope's
//! ancestors (fds inherited from the parent are normal). With `--no-inherited`, sharing with an
//! ancestor is reported too: that catches a descriptor leaked to a child across exec because it lacked
//! `O_CLOEXEC`. The standard streams (fds 0–2 of the scope) are never reported: sharing a terminal or a
//! CI log pipe is expected.

use std::collections::BTreeSet;

use crate::{proc, survey::Survey};

/// What is allowed to share with the scope.
#[derive(Clone, Debug, Default)]
pub struct CheckPolicy {
    pub allowed: BTreeSet<u32>,
    /// Treat sharing with ancestors as a violation too.
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
            .map(|&h| (survey.record(h).tgid, survey.record(h).fd))
            .collect();
        let inside: Vec<(u32, u32)> = holders
            .iter()
            .copied()
            .filter(|&(pid, fd)| scope.contains(&pid) && fd > 2)
            .collect();
        if inside.is_empty() {
            continue;
        }
        let outsiders: Vec<(u32, u32)> = holders
            .iter()
            .copied()
            .filter(|(pid, _)| !scope.contains(pid) && !policy.allowed.contains(pid))
            .filter(|(pid, _)| policy.no_inherited || !ancestors.contains(pid))
            .collect();
        if !outsiders.is_empty() {
            for &holder in &inside {
                found.push(Violation {
                    holder,
                    outsiders: outsiders.clone(),
                    file: index,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{CheckPolicy, violations};
    use crate::testing::{PID, fd, survey};

    #[test]
    fn a_description_held_outside_the_allowed_set_is_a_violation_of_each_scope_fd() {
        let (me, other) = (PID, PID + 1);
        // Description 7: my fds 3 and 4, and the other's 9. Description 2: a terminal, our fds 0–2
        // (standard streams are not reported). Description 8: mine alone.
        let terminal = |pid| (0..3).map(move |n| fd(pid, n, 2, 6));
        let mut records: Vec<_> = terminal(me).collect();
        records.extend([fd(me, 3, 7, 3), fd(me, 4, 7, 3), fd(me, 5, 8, 1)]);
        records.extend(terminal(other));
        records.push(fd(other, 9, 7, 3));
        let survey = survey(records, &[me]);
        let scope: BTreeSet<u32> = [me].into();
        let found = violations(&survey, &scope, &CheckPolicy::default());
        let holders: Vec<(u32, u32)> = found.iter().map(|v| v.holder).collect();
        assert_eq!(holders, vec![(me, 3), (me, 4)]);
        assert!(found.iter().all(|v| v.outsiders == vec![(other, 9)]));

        let allowed = CheckPolicy {
            allowed: [other].into(),
            no_inherited: false,
        };
        assert!(violations(&survey, &scope, &allowed).is_empty());
    }
}
