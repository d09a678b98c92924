//! fdid: for every file descriptor on this machine (or in chosen processes), which other fds refer to the
//! same open file description — the kernel's `struct file` — shared by fork, dup, SCM_RIGHTS,
//! pidfd_getfd or inheritance across exec.
//!
//! [`Survey::run`] runs the whole pipeline; each stage is its own module:
//! 1. [`collect`]: one [`FdRecord`] per fd, from the BPF `iter/task_file` program ([`collect::bpf`]) or
//!    from procfs ([`collect::procfs`]);
//! 2. [`verify`]: which records are one open file description — pointer-hash evidence, confirmed with
//!    `kcmp(KCMP_FILE)` where it is ambiguous;
//! 3. [`tree`]: CRIU's genid tree hands out the ids ([`OpenFileId`] = genid << 32 | subid);
//! 4. [`report`]: table, JSON or DOT; [`check`]: the CI gate.
//!
//! Supporting modules: [`btf`] and [`offsets`] find kernel struct members in the running kernel's BTF,
//! [`record`] decodes the iterator's stream, [`kcmp`] asks the kernel directly, [`proc`] reads names,
//! paths and the process tree.
//!
//! ```no_run
//! use fdid::{Scope, Survey, SurveyOptions, VerifyMode};
//!
//! let mut options = SurveyOptions::new(Scope::trees([1234]));
//! options.verify = VerifyMode::All;
//! let survey = Survey::run(&options)?;
//! for file in survey.shared_files() {
//!     println!("{}: {} holders, {:?} references", file.id, file.holders.len(), file.refs);
//! }
//! # Ok::<(), fdid::survey::SurveyError>(())
//! ```

pub mod boot_key;
pub mod btf;
pub mod check;
pub mod collect;
pub mod dev;
pub mod endpoints;
pub mod kcmp;
pub mod layout_cache;
pub mod offsets;
pub mod proc;
pub mod record;
pub mod report;
pub mod run_dir;
pub mod socket;
pub mod survey;
#[cfg(test)]
mod testing;
pub mod tree;
pub mod verify;
pub mod watch;
pub mod who;

pub use record::FdRecord;

/// An error and its causes on one line, each cause once: `top: cause: deeper cause`, leaving out a
/// cause whose message an earlier one already holds (aya's messages repeat their causes).
pub fn error_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let message = error.to_string();
        if !line.contains(&message) {
            line.push_str(": ");
            line.push_str(&message);
        }
        cause = error.source();
    }
    line
}

/// The CI rule for unit tests that need the running kernel: in CI (`CI=true` or `CI=1`) they fail,
/// never skip.
#[cfg(test)]
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}
pub use survey::{OpenFile, Scope, Survey, SurveyFd, SurveyOptions};
pub use tree::OpenFileId;
pub use verify::VerifyMode;

#[cfg(test)]
mod tests {
    use std::{error::Error, fmt};

    /// An error with a message and an optional cause.
    #[derive(Debug)]
    struct Chain(&'static str, Option<Box<Chain>>);

    impl fmt::Display for Chain {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Chain {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1
                .as_deref()
                .map(|cause| cause as &(dyn Error + 'static))
        }
    }

    #[test]
    fn an_error_line_names_each_cause_once() {
        let root = Chain("Operation not permitted (os error 1)", None);
        let map = Chain(
            "map error: Operation not permitted (os error 1)",
            Some(Box::new(root)),
        );
        let top = Chain("cannot load the BPF object", Some(Box::new(map)));
        assert_eq!(
            super::error_line(&top),
            "cannot load the BPF object: map error: Operation not permitted (os error 1)"
        );
        assert_eq!(super::error_line(&Chain("alone", None)), "alone");
    }
}
