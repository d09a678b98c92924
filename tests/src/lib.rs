//! Support for fdid's integration tests: scenario processes with known fds, the BPF survey with the
//! CI rule (fail, never skip, under `CI=true`), and kcmp ground truth.

pub mod churn;
pub mod fdpass;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
};

use fdid::{
    OpenFileId, Survey, SurveyOptions,
    collect::{Collection, Target, bpf, procfs},
    record::FdRecord,
};

/// For the scenario and workload processes: keeps everything open until the test closes our stdin
/// (or dies), then kills and reaps `children`.
pub fn hold_until_stdin_closes(children: &[libc::pid_t]) {
    let mut line = String::new();
    while std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        line.clear();
    }
    for &pid in children {
        // SAFETY: signalling and reaping the caller's own children.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}

/// A running `fdid-scenario` process and the facts it printed (fd numbers, child pids).
pub struct Scenario {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
    facts: HashMap<String, u32>,
}

impl Scenario {
    /// Starts `fdid-scenario ARGS` and waits until its fds are in place. The scenario starts with
    /// stdio only: whatever else the test inherited (a CI runner's or a shell's fds) stays out.
    pub fn start(binary: &str, args: &[&str]) -> Self {
        let mut child = with_stdio_only(Command::new(binary))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start fdid-scenario");
        let stdin = child.stdin.take();
        let mut facts = HashMap::new();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        for line in stdout.by_ref() {
            let line = line.expect("read scenario output");
            if line == "ready" {
                break;
            }
            let (name, value) = line.split_once(' ').expect("`name value` line");
            facts.insert(name.to_owned(), value.parse().expect("numeric fact"));
        }
        assert!(facts.contains_key("pid"), "scenario {args:?} did not start");
        Self {
            child,
            stdin,
            stdout,
            facts,
        }
    }

    /// Writes `line` to the scenario's stdin (the `provenance` kind waits for one).
    pub fn say(&mut self, line: &str) {
        use std::io::Write as _;
        let stdin = self.stdin.as_mut().expect("the scenario's stdin is open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .expect("write to the scenario");
    }

    /// Waits for a fact the scenario prints after `ready` (e.g. `received`).
    pub fn later_fact(&mut self, name: &str) -> u32 {
        let line = self
            .stdout
            .next()
            .expect("scenario output ended")
            .expect("read scenario output");
        let value = line
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '));
        let value: u32 = value
            .unwrap_or_else(|| panic!("expected `{name} N`, got `{line}`"))
            .parse()
            .expect("number");
        self.facts.insert(name.to_owned(), value);
        value
    }

    /// A fact the scenario printed, e.g. `fact("file_dup")`.
    pub fn fact(&self, name: &str) -> u32 {
        *self
            .facts
            .get(name)
            .unwrap_or_else(|| panic!("scenario has no fact `{name}`"))
    }

    /// A fact the scenario may not have printed (e.g. `udp6` on a machine without IPv6).
    pub fn maybe_fact(&self, name: &str) -> Option<u32> {
        self.facts.get(name).copied()
    }

    pub fn pid(&self) -> u32 {
        self.fact("pid")
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// `command`, set to start its process with fds 0–2 only: whatever else this process inherited (a
/// CI runner's or a shell's fds) stays out.
pub fn with_stdio_only(mut command: Command) -> Command {
    // SAFETY: the closure makes one async-signal-safe system call (close_range, by number: musl's
    // libc has no wrapper).
    unsafe {
        command.pre_exec(|| {
            if libc::syscall(libc::SYS_close_range, 3, u32::MAX, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// The `fdid` binary the CLI tests run: `FDID_BINARY` when set (`cargo xtask vm-test` points it at
/// the shipped static binary in its guests), else the workspace's own build beside `scenario`.
pub fn fdid_binary(scenario: &str) -> std::path::PathBuf {
    let binary = std::env::var_os("FDID_BINARY").map_or_else(
        || Path::new(scenario).with_file_name("fdid"),
        std::path::PathBuf::from,
    );
    assert!(
        binary.is_file(),
        "{} is missing: build it (cargo build --bin fdid) or set FDID_BINARY",
        binary.display()
    );
    binary
}

/// Whether tests run in CI, where a BPF test must fail rather than skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Why BPF cannot work here, if an obvious reason exists.
pub fn bpf_unavailable_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (loading BPF needs CAP_BPF and CAP_PERFMON)".to_owned());
    }
    if !Path::new(fdid::btf::VMLINUX_BTF).exists() {
        return Some(format!(
            "{} is missing (kernel without BTF)",
            fdid::btf::VMLINUX_BTF
        ));
    }
    None
}

/// A BPF survey failed: panics in CI or for a failure that is not an obvious lack of BPF; otherwise says
/// why the test skips.
fn skip_or_fail(error: String) {
    match bpf_unavailable_reason() {
        Some(reason) if !in_ci() => {
            eprintln!("SKIPPED: BPF test cannot run here: {reason} ({error})")
        }
        _ => panic!(
            "BPF survey failed{}: {error}",
            if in_ci() {
                " (CI=true: BPF tests must run)"
            } else {
                ""
            }
        ),
    }
}

/// Collects `target` with the real BPF program. Outside CI, on a machine that obviously cannot load it,
/// prints why and returns `None` (the test then skips); in CI, or for any other failure, panics.
pub fn bpf_collect(target: &Target, options: &bpf::BpfOptions) -> Option<Collection> {
    bpf::collect(target, options)
        .map_err(|error| skip_or_fail(format!("{error:#}")))
        .ok()
}

/// Runs a survey with the real BPF program, with the same CI rule as [`bpf_collect`].
pub fn bpf_survey(options: &SurveyOptions) -> Option<Survey> {
    Survey::run(options)
        .map_err(|error| skip_or_fail(format!("{error:#}")))
        .ok()
}

/// Runs a survey until `settled` holds for it (at most ten times) and returns the last one, for
/// checks of exact reference counts: counts are a moment's truth, and another survey walking at the
/// same time (tests run in parallel) holds a reference on the file it is visiting. The caller still
/// asserts the exact counts on the survey returned; a count that never settles fails.
pub fn bpf_survey_settled(
    options: &SurveyOptions,
    settled: impl Fn(&Survey) -> bool,
) -> Option<Survey> {
    let mut survey = bpf_survey(options)?;
    for _ in 0..10 {
        if settled(&survey) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        survey = bpf_survey(options)?;
    }
    Some(survey)
}

/// The reference count and hidden references of `pid`'s fd `fd` in a survey.
pub fn refs_of(survey: &Survey, pid: u32, fd: u32) -> Option<(Option<u64>, Option<u64>)> {
    let file = survey.file(survey.id_of(pid, fd)?)?;
    Some((file.refs, file.hidden_refs))
}

/// Collects `target` from procfs (the independent oracle).
pub fn procfs_collect(target: &Target) -> Collection {
    procfs::collect(target).expect("procfs survey")
}

/// The records of one process, keyed by fd.
pub fn by_fd(collection: &Collection, pid: u32) -> HashMap<u32, FdRecord> {
    collection
        .records
        .iter()
        .filter(|r| r.tgid == pid)
        .map(|r| (r.fd, *r))
        .collect()
}

/// Ground truth straight from the kernel: do these two fds share one open file description?
pub fn kcmp_same(pid1: u32, fd1: u32, pid2: u32, fd2: u32) -> bool {
    fdid::kcmp::same_file(pid1, fd1, pid2, fd2).expect("kcmp(KCMP_FILE)")
}

/// The survey's id for `pid`'s fd `fd`; panics when the survey does not have it.
pub fn id(survey: &Survey, pid: u32, fd: u32) -> OpenFileId {
    survey
        .id_of(pid, fd)
        .unwrap_or_else(|| panic!("the survey has no fd {fd} of process {pid}"))
}

/// Checks the survey's partition of `fds` against kcmp, pair by pair; returns the number of pairs that
/// share a description.
pub fn assert_grouping_matches_kcmp(survey: &Survey, fds: &[(u32, u32)]) -> usize {
    assert_ids_match_kcmp(fds, |pid, fd| id(survey, pid, fd))
}

/// Checks any partition of `fds` — `id_of` gives each fd's id, from a survey or from fdid's JSON —
/// against kcmp, pair by pair; returns the number of pairs that share a description.
pub fn assert_ids_match_kcmp<T: PartialEq>(
    fds: &[(u32, u32)],
    id_of: impl Fn(u32, u32) -> T,
) -> usize {
    let mut shared = 0;
    for (i, &(pid1, fd1)) in fds.iter().enumerate() {
        for &(pid2, fd2) in &fds[i + 1..] {
            let truth = kcmp_same(pid1, fd1, pid2, fd2);
            let found = id_of(pid1, fd1) == id_of(pid2, fd2);
            assert_eq!(
                found, truth,
                "{pid1}:{fd1} and {pid2}:{fd2}: kcmp says same = {truth}"
            );
            shared += usize::from(truth);
        }
    }
    shared
}

/// Every fd of these processes, as (pid, fd), from procfs.
pub fn fds_of(pids: &[u32]) -> Vec<(u32, u32)> {
    let collection = procfs_collect(&Target::Pids(pids.to_vec()));
    collection.records.iter().map(|r| (r.tgid, r.fd)).collect()
}
