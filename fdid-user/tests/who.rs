//! `fdid who` as a user runs it: a server whose listener two workers inherited, a free port, bad
//! targets.

use std::{
    io::BufRead as _,
    process::{Child, Command, Output, Stdio},
};

mod common;
use common::{in_ci, is_root};
const FDID: &str = env!("CARGO_BIN_EXE_fdid");

fn fdid(args: &[&str]) -> Output {
    Command::new(FDID).args(args).output().expect("run fdid")
}

/// A python3 server listening on a loopback port, forked into two workers that inherit the
/// listener (fd 3); returns it with (port, [server, worker, worker]).
fn server() -> (Child, u16, [u32; 3]) {
    let script = "import os, socket, sys, time\n\
        l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\n\
        assert l.fileno() == 3\n\
        workers = [os.fork() or (time.sleep(60), os._exit(0)) for _ in range(2)]\n\
        print(l.getsockname()[1], os.getpid(), *workers, flush=True)\n\
        sys.stdin.read()\n\
        for w in workers: os.kill(w, 9)\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let numbers: Vec<u32> = line
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    (
        child,
        numbers[0] as u16,
        [numbers[1], numbers[2], numbers[3]],
    )
}

fn stop(mut child: Child) {
    drop(child.stdin.take());
    child.wait().ok();
}

fn ran(output: &Output) -> bool {
    if output.status.code() == Some(2) && !in_ci() && !is_root() {
        eprintln!(
            "SKIPPED: fdid needs root: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return false;
    }
    true
}

#[test]
fn who_lists_every_holder_of_a_port_and_exits_0() {
    let (child, port, pids) = server();
    let output = fdid(&["who", &format!("tcp:{port}")]);
    let json = fdid(&["who", "--json", &format!("tcp:{port}")]);
    stop(child);
    if !ran(&output) {
        return;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("TCP LISTEN 127.0.0.1:{port}")),
        "{stdout}"
    );
    let held = format!(
        "    held by python3({}):3 python3({}):3 python3({}):3\n",
        pids[0], pids[1], pids[2]
    );
    assert!(stdout.contains(&held), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "closing fd 3 of {}, fd 3 of {} and fd 3 of {} frees",
            pids[0], pids[1], pids[2]
        )),
        "{stdout}"
    );

    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    assert_eq!(json["summary"]["source"], "bpf");
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "the listener only: {json}");
    let socket = &files[0]["socket"];
    assert_eq!(socket["state"], "LISTEN");
    assert_eq!(socket["protocol"], "TCP");
    assert!(
        socket["local"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{port}")),
        "{socket}"
    );
    assert_eq!(files[0]["endpoints"], serde_json::json!([]));
    let holders: Vec<u64> = json["fds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(holders, pids.map(u64::from).to_vec());
}

#[test]
fn a_path_that_does_not_exist_is_held_by_nobody_and_exits_1() {
    let output = fdid(&["who", "/nonexistent/fdid"]);
    if !ran(&output) {
        return;
    }
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "/nonexistent/fdid: held by no process\n"
    );
}

#[test]
fn a_port_nobody_holds_exits_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = fdid(&["who", &format!("tcp:{port}")]);
    if !ran(&output) {
        return;
    }
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("tcp:{port}: held by no process\n")
    );
}

#[test]
fn a_bad_or_missing_target_is_one_error_line_and_exit_2() {
    for (args, needle) in [
        (&["who", "tcp:http"][..], "is not a target"),
        (
            &["who", "/etc/passwd/fdid"][..],
            "/etc/passwd/fdid: Not a directory",
        ),
        (&["who"][..], "TARGET"),
    ] {
        let output = fdid(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}
