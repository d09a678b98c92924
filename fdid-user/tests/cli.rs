//! The `fdid` binary as a user runs it.

use std::process::{Command, Output, Stdio};

mod common;
use common::{in_ci, is_root};
const FDID: &str = env!("CARGO_BIN_EXE_fdid");

fn fdid(args: &[&str]) -> Output {
    Command::new(FDID).args(args).output().expect("run fdid")
}

/// Bad input: one clear error line, exit status 2, no panic.
fn assert_one_line_error(args: &[&str], needle: &str) {
    let output = fdid(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "fdid {args:?}: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "fdid {args:?} panicked: {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "fdid {args:?}: expected `{needle}` in: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "fdid {args:?}: one error line, got: {stderr}"
    );
}

#[test]
fn bad_pids_are_rejected_with_one_line() {
    assert_one_line_error(&["--pid", "0"], "--pid");
    assert_one_line_error(&["--pid", "-1"], "--pid");
    assert_one_line_error(&["--pid", "abc"], "--pid");
    assert_one_line_error(&["--pid", "4294967296"], "--pid");
}

#[test]
fn a_pid_that_does_not_exist_is_an_error() {
    // pid_max is at most 2^22, so this pid cannot exist.
    assert_one_line_error(&["--pid", "2000000000"], "no process with pid 2000000000");
}

#[test]
fn a_shell_holding_a_dup_is_shown_as_one_description() {
    // fd 4 is a dup of fd 3: one open file description held twice.
    let mut shell = Command::new("sh")
        .args(["-c", "exec 3</dev/null 4<&3; echo ready; exec sleep 30"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start sh");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(shell.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let pid = shell.id().to_string();
    let output = fdid(&["--pid", &pid]);
    shell.kill().ok();
    shell.wait().ok();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && !in_ci() && !is_root() {
        eprintln!("SKIPPED: fdid needs root for BPF: {stderr}");
        return;
    }
    assert!(output.status.success(), "fdid --pid {pid} failed: {stderr}");
    let holders = format!("    held by sleep({pid}):3 sleep({pid}):4\n");
    assert!(
        stdout.contains(&holders),
        "expected `{holders}` in:\n{stdout}"
    );
    assert!(stdout.contains("/dev/null"), "{stdout}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("1 processes,"),
        "summary line: {summary}"
    );
    assert!(
        summary.contains("; bpf (kernel pid filter"),
        "summary line: {summary}"
    );
}

/// Starts `sh -c SCRIPT`; the script prints one line (a pid) and keeps running. Returns (shell, line).
fn shell_printing_a_pid(script: &str) -> (std::process::Child, u32) {
    use std::os::unix::process::CommandExt as _;
    let mut command = Command::new("sh");
    command
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: close_range is async-signal-safe. It drops the fds this test process inherited without
    // O_CLOEXEC (from cargo and whatever started it), which other processes share too.
    unsafe {
        command.pre_exec(|| {
            libc::close_range(3, u32::MAX, 0);
            Ok(())
        });
    }
    let mut shell = command.spawn().expect("start sh");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(shell.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    (shell, line.trim().parse().expect("a pid"))
}

/// Skips (outside CI, not root) or fails when fdid could not survey.
fn survey_ran(output: &Output) -> bool {
    if !output.status.success() && !in_ci() && !is_root() {
        eprintln!(
            "SKIPPED: fdid needs root for BPF: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return false;
    }
    true
}

/// For outputs that do not name their collector (DOT, `check`): `-v` says where the records came
/// from. No silent procfs.
fn assert_bpf_used(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(" records from bpf after "), "{stderr}");
}

/// The JSON fdid printed; `None` when the test skips (see `survey_ran`).
fn json_of(output: &Output) -> Option<serde_json::Value> {
    if !survey_ran(output) {
        return None;
    }
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    // A survey that ran used BPF unless the planner says why not: no silent procfs.
    if json["summary"]["plan"].is_null() {
        assert_eq!(json["summary"]["source"], "bpf", "{}", json["summary"]);
    }
    Some(json)
}

#[test]
fn json_is_one_object_with_fds_files_and_summary() {
    let (mut shell, pid) = shell_printing_a_pid("exec 3</dev/null 4<&3; echo $$; exec sleep 30");
    let output = fdid(&["--json", "--pid", &pid.to_string()]);
    shell.kill().ok();
    shell.wait().ok();
    let Some(json) = json_of(&output) else { return };
    let fds = json["fds"].as_array().expect("fds array");
    let fd = |n: u64| {
        fds.iter()
            .find(|f| f["pid"] == pid && f["fd"] == n)
            .unwrap_or_else(|| panic!("fd {n} of {pid} in {fds:?}"))
    };
    assert_eq!(fd(3)["id"], fd(4)["id"], "a dup has the description's id");
    assert!(fd(3)["id"].is_u64());
    let id = fd(3)["id"].as_u64().unwrap();
    assert_eq!(fd(3)["genid"].as_u64().unwrap(), id >> 32);
    assert_eq!(fd(3)["subid"].as_u64().unwrap(), id & 0xffff_ffff);
    assert_eq!(fd(3)["path"], "/dev/null");
    assert_eq!(fd(3)["type"], "CHR");
    assert_eq!(fd(3)["comm"], "sleep");
    assert!(fd(3)["dev"].as_str().unwrap().contains(':'));
    let file = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .expect("the description");
    let holders: Vec<(u64, u64)> = file["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["pid"].as_u64().unwrap(), h["fd"].as_u64().unwrap()))
        .collect();
    assert!(holders.contains(&(u64::from(pid), 3)) && holders.contains(&(u64::from(pid), 4)));
    assert!(file["refs"].as_u64().unwrap() >= 2);
    assert_eq!(json["summary"]["source"], "bpf");
    assert_eq!(json["summary"]["kernel_filtered"], true);
}

#[test]
fn dot_draws_the_process_and_the_description_it_holds_twice() {
    let (mut shell, pid) = shell_printing_a_pid("exec 3</dev/null 4<&3; echo $$; exec sleep 30");
    let output = fdid(&["--dot", "--pid", &pid.to_string(), "-v"]);
    shell.kill().ok();
    shell.wait().ok();
    if !survey_ran(&output) {
        return;
    }
    assert_bpf_used(&output);
    let dot = String::from_utf8_lossy(&output.stdout);
    assert!(dot.starts_with("digraph fdid {"), "{dot}");
    assert!(dot.contains(&format!("p{pid} [shape=box")), "{dot}");
    assert!(
        dot.contains(&format!("p{pid} -> f")) && dot.contains("[taillabel=\"3,4\"]"),
        "{dot}"
    );
    assert!(dot.contains("CHR /dev/null"), "{dot}");
    assert!(dot.trim_end().ends_with('}'));
}

#[test]
fn check_catches_an_fd_leaked_to_a_child_across_exec() {
    // The shell opens fd 5 without O_CLOEXEC; the child it execs (sleep) inherits it.
    let (mut shell, child) = shell_printing_a_pid("exec 5</dev/null; sleep 30 & echo $!; wait");
    let child_arg = child.to_string();
    let strict = fdid(&["check", "--pid", &child_arg, "--no-inherited"]);
    let lenient = fdid(&["check", "--pid", &child_arg, "-v"]);
    let allowed = fdid(&[
        "check",
        "--pid",
        &child_arg,
        "--no-inherited",
        "--allow-shared-with",
        &shell.id().to_string(),
    ]);
    shell.kill().ok();
    shell.wait().ok();
    if !survey_ran(&lenient) {
        return;
    }
    assert_bpf_used(&lenient);
    let strict_out = String::from_utf8_lossy(&strict.stdout);
    assert_eq!(
        strict.status.code(),
        Some(1),
        "{strict_out}{}",
        String::from_utf8_lossy(&strict.stderr)
    );
    assert!(
        strict_out.contains(&format!("fd 5 of sleep({child})")),
        "{strict_out}"
    );
    assert!(
        strict_out.contains(&format!("sh({})", shell.id())),
        "{strict_out}"
    );
    assert!(
        !strict_out.contains("fd 1 of"),
        "standard streams are not leaks: {strict_out}"
    );
    assert_eq!(
        lenient.status.code(),
        Some(0),
        "inherited sharing is allowed by default: {}",
        String::from_utf8_lossy(&lenient.stdout)
    );
    assert_eq!(
        allowed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&allowed.stdout)
    );
}

#[test]
fn check_without_pid_is_an_error_with_status_2() {
    assert_one_line_error(&["check"], "--pid");
}

#[test]
fn conflicting_flags_are_rejected() {
    assert_one_line_error(&["--json", "--dot"], "cannot be used with");
    assert_one_line_error(&["--tree"], "--pid");
    assert_one_line_error(&["--verify", "sometimes"], "--verify");
}

#[test]
fn pids_inside_a_new_pid_namespace_are_that_namespaces_pids() {
    if Command::new("unshare").arg("--version").output().is_err() {
        assert!(!in_ci(), "unshare (util-linux) is needed");
        return;
    }
    let script = format!("exec 3</dev/null 4<&3; sleep 30 & {FDID} --json --pid $!; kill $!");
    let output = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
        .output()
        .unwrap();
    let Some(json) = json_of(&output) else { return };
    let fds = json["fds"].as_array().unwrap();
    let in_scope: Vec<&serde_json::Value> = fds.iter().filter(|f| f["in_scope"] == true).collect();
    assert!(!in_scope.is_empty());
    // In the new namespace sh is pid 1 and its first child, sleep, is pid 2.
    assert!(
        in_scope
            .iter()
            .all(|f| f["pid"] == 2 && f["comm"] == "sleep"),
        "{in_scope:?}"
    );
    let fd = |n: u64| in_scope.iter().find(|f| f["fd"] == n).unwrap();
    assert_eq!(fd(3)["id"], fd(4)["id"]);
    // The shell (pid 1 here) holds the same description as an outside holder.
    assert!(fds.iter().any(|f| f["pid"] == 1 && f["id"] == fd(3)["id"]));
    assert_eq!(
        json["summary"]["whole_system"], false,
        "holders outside the namespace are invisible"
    );
}

/// The descriptions of a JSON survey as sets of (pid, fd) holders, and the summary's source.
fn partition_of(json: &serde_json::Value) -> (std::collections::BTreeSet<Vec<(u64, u64)>>, String) {
    let partition = json["files"]
        .as_array()
        .expect("files array")
        .iter()
        .map(|file| {
            let mut holders: Vec<(u64, u64)> = file["holders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h["pid"].as_u64().unwrap(), h["fd"].as_u64().unwrap()))
                .collect();
            holders.sort_unstable();
            holders
        })
        .collect();
    let source = json["summary"]["source"].as_str().unwrap().to_owned();
    (partition, source)
}

#[test]
fn a_small_scope_only_survey_is_planned_on_procfs_with_the_same_grouping_as_bpf() {
    // fds 3, 4 and 5: one /dev/null description; 6: a second open of it; 7: /dev/zero.
    let script =
        "exec 3</dev/null 4<&3 5<&3 6</dev/null; exec 7<>/dev/zero; echo $$; exec sleep 30";
    let (mut shell, pid) = shell_printing_a_pid(script);
    let pid = pid.to_string();
    let planned = fdid(&["--pid", &pid, "--scope-only", "--json"]);
    let bpf = fdid(&[
        "--pid",
        &pid,
        "--scope-only",
        "--json",
        "--collector",
        "bpf",
    ]);
    shell.kill().ok();
    shell.wait().ok();
    let (Some(planned), Some(bpf)) = (json_of(&planned), json_of(&bpf)) else {
        return;
    };
    let (planned_partition, planned_source) = partition_of(&planned);
    let (bpf_partition, bpf_source) = partition_of(&bpf);
    assert_eq!(planned_source, "procfs", "10 fds are cheaper on procfs");
    let plan = planned["summary"]["plan"]
        .as_str()
        .expect("the plan says why");
    assert!(plan.contains("no reference counts"), "{plan}");
    assert_eq!(bpf_source, "bpf");
    assert_eq!(bpf["summary"]["plan"], serde_json::Value::Null);
    assert_eq!(
        planned_partition, bpf_partition,
        "the same answer either way"
    );
    let pid: u64 = pid.parse().unwrap();
    assert!(
        planned_partition.contains(&vec![(pid, 3), (pid, 4), (pid, 5)]),
        "{planned_partition:?}"
    );
}

#[test]
fn fdids_own_fds_are_not_hidden_references_of_what_it_shares_with_the_scope() {
    // The target's stdout and fdid's stderr are one pipe description (in real life: the terminal of
    // the shell that runs fdid).
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut target = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .stdout(writer.try_clone().expect("dup"))
        .stderr(Stdio::null())
        .spawn()
        .expect("start sleep");
    let pid = target.id();
    // The count is a moment's truth: another test of this binary forking meanwhile holds copies of
    // this process's fds until its child execs. Run again (a few times at most) until it settles.
    let mut file = serde_json::Value::Null;
    for _ in 0..10 {
        let output = Command::new(FDID)
            .args(["--pid", &pid.to_string(), "--json"])
            .stderr(writer.try_clone().expect("dup"))
            .output()
            .expect("run fdid");
        let Some(json) = json_of(&output) else {
            target.kill().ok();
            target.wait().ok();
            return;
        };
        let stdout_id = json["fds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["pid"] == pid && f["fd"] == 1)
            .expect("the target's stdout")["id"]
            .clone();
        file = json["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == stdout_id)
            .expect("its description")
            .clone();
        let holders = file["holders"].as_array().unwrap().len() as u64;
        if file["refs"] == holders + 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    target.kill().ok();
    target.wait().ok();
    drop((reader, writer));
    // Holders: the target's fd 1 and this test's copies (its own, and the one its Command keeps while
    // fdid runs); fdid's own fd 2 is the one reference more, and not a hidden one.
    let holders = file["holders"].as_array().unwrap().len() as u64;
    assert_eq!(file["refs"], holders + 1, "{file}");
    assert_eq!(
        file["hidden_refs"], 0,
        "fdid's own fd is not hidden: {file}"
    );
}
