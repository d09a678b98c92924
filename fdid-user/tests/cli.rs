//! The `fdid` binary as a user runs it.

use std::process::{Command, Output, Stdio};

const FDID: &str = env!("CARGO_BIN_EXE_fdid");

fn fdid(args: &[&str]) -> Output {
    Command::new(FDID).args(args).output().expect("run fdid")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true" || value == "1")
}

/// Bad input: one clear error line, exit status 2, no panic.
fn assert_one_line_error(args: &[&str], needle: &str) {
    let output = fdid(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "fdid {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "fdid {args:?} panicked: {stderr}");
    assert!(stderr.contains(needle), "fdid {args:?}: expected `{needle}` in: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() <= 3, "fdid {args:?}: a short error, got: {stderr}");
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
    std::io::BufRead::read_line(&mut std::io::BufReader::new(shell.stdout.as_mut().unwrap()), &mut line).unwrap();
    let pid = shell.id().to_string();
    let output = fdid(&["--pid", &pid]);
    shell.kill().ok();
    shell.wait().ok();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && !in_ci() && unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: fdid needs root for BPF: {stderr}");
        return;
    }
    assert!(output.status.success(), "fdid --pid {pid} failed: {stderr}");
    let holders = format!("    held by sleep({pid}):3 sleep({pid}):4\n");
    assert!(stdout.contains(&holders), "expected `{holders}` in:\n{stdout}");
    assert!(stdout.contains("/dev/null"), "{stdout}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(summary.starts_with("1 processes,"), "summary line: {summary}");
    assert!(summary.contains("kernel pid filter"), "summary line: {summary}");
}
