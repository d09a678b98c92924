//! The planner behind `--collector auto`: which collector answers a survey for less.
//!
//! Loading the BPF program costs a fixed few milliseconds (the verifier, maps, the object); procfs
//! costs a few syscalls per fd. Where both give the same answer, the cheaper one is used:
//! - a `--scope-only` survey of a few fds (like `lsof -p`): procfs and kcmp group them exactly, and
//!   no walk of other processes is needed. What procfs cannot read is each description's reference
//!   count, which such a survey only displays (hidden references need a whole-system walk anyway):
//!   the plan says so, and `--collector bpf` reads them;
//! - everything else — the whole system, or a scope whose descriptions may be held outside it, where
//!   the reference counts decide what else to walk and show hidden references — needs BPF.

use std::collections::BTreeSet;

/// Up to this many fds in a `--scope-only` scope, procfs is cheaper than loading the program: it
/// reads about 100,000 fds a second here, and the load costs about 5 ms.
pub const PROCFS_MAX_FDS: usize = 500;

/// The planner's choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    Bpf,
    /// procfs, and why (for `-v` and the summary).
    Procfs(String),
}

/// Plans a survey of `scope` (`None`: every process) that walks nothing else when `scope_only`.
pub fn plan(scope: Option<&BTreeSet<u32>>, scope_only: bool) -> Plan {
    let Some(pids) = scope.filter(|_| scope_only) else {
        return Plan::Bpf;
    };
    // Counting stops past the limit: listing a big process's fds would cost what procfs would.
    let mut fds = 0;
    for &pid in pids {
        fds += fd_count(pid, PROCFS_MAX_FDS + 1 - fds);
        if fds > PROCFS_MAX_FDS {
            break;
        }
    }
    plan_for(fds)
}

/// The choice for a `--scope-only` scope holding `fds` fds.
fn plan_for(fds: usize) -> Plan {
    if fds <= PROCFS_MAX_FDS {
        Plan::Procfs(format!(
            "planner: {fds} fds in scope, procfs is cheaper (no reference counts; \
             `--collector bpf` reads them)"
        ))
    } else {
        Plan::Bpf
    }
}

/// Number of fds of `pid`'s fd table, counted up to `limit` (0 when it is gone).
fn fd_count(pid: u32, limit: usize) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.take(limit).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_scope_only_survey_is_planned_on_procfs_and_says_what_it_lacks() {
        match plan_for(10) {
            Plan::Procfs(reason) => {
                assert!(reason.contains("10 fds"), "{reason}");
                assert!(reason.contains("no reference counts"), "{reason}");
            }
            Plan::Bpf => panic!("10 fds are cheaper on procfs"),
        }
        assert!(matches!(plan_for(PROCFS_MAX_FDS), Plan::Procfs(_)));
        assert_eq!(plan_for(PROCFS_MAX_FDS + 1), Plan::Bpf);
    }

    /// Planning a big process must not list all of its fds (that costs what procfs would).
    #[test]
    fn counting_stops_at_the_limit() {
        let me = std::process::id();
        assert!(
            fd_count(me, usize::MAX) >= 3,
            "stdin, stdout, stderr at least"
        );
        assert_eq!(fd_count(me, 2), 2);
        assert_eq!(fd_count(u32::MAX, 10), 0, "no such process");
    }

    #[test]
    fn the_whole_system_and_surveys_that_look_outside_use_bpf() {
        let me: BTreeSet<u32> = [std::process::id()].into();
        assert_eq!(plan(None, false), Plan::Bpf);
        assert_eq!(plan(None, true), Plan::Bpf);
        assert_eq!(
            plan(Some(&me), false),
            Plan::Bpf,
            "outside holders need refs"
        );
        assert!(matches!(plan(Some(&me), true), Plan::Procfs(_)));
    }
}
