//! A tool root runs on production machines: bad input, missing privileges or kernel features, closed
//! pipes, and no kernel address in anything it prints.

use std::{
    os::fd::FromRawFd,
    process::{Command, Output, Stdio},
};

mod common;
use common::{in_ci, is_root};
const FDID: &str = env!("CARGO_BIN_EXE_fdid");

fn fdid(args: &[&str]) -> Output {
    Command::new(FDID).args(args).output().expect("run fdid")
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs fdid with no capabilities at all (uid 0 stays, CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN go).
fn fdid_without_capabilities(args: &[&str]) -> Option<Output> {
    let output = Command::new("setpriv")
        .args([
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
            "--",
            FDID,
        ])
        .args(args)
        .output();
    match output {
        Ok(output) => Some(output),
        Err(error) => {
            assert!(!in_ci(), "setpriv (util-linux) is needed: {error}");
            eprintln!("SKIPPED: no setpriv: {error}");
            None
        }
    }
}

#[test]
fn without_privileges_fdid_says_why_and_falls_back_to_procfs() {
    if !is_root() {
        eprintln!("SKIPPED: needs root to drop capabilities from");
        return;
    }
    let Some(output) = fdid_without_capabilities(&["--pid", "1"]) else {
        return;
    };
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("fdid: warning:"))
        .collect();
    assert!(
        warnings[0].contains("permission denied loading BPF") && warnings[0].contains("procfs"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("procfs"),
        "the summary names the collector"
    );

    let Some(strict) = fdid_without_capabilities(&["--pid", "1", "--collector", "bpf"]) else {
        return;
    };
    let stderr = stderr_of(&strict);
    assert_eq!(strict.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "fdid: error: permission denied loading BPF: fdid needs root (CAP_BPF and CAP_PERFMON)"
    );
}

#[test]
fn without_privileges_procfs_still_groups_what_it_may_read() {
    if !is_root() {
        eprintln!("SKIPPED: needs root to drop capabilities from");
        return;
    }
    // The shell and its child run without capabilities too, so fdid may read them.
    let script = format!("exec 3</dev/null 4<&3; sleep 30 & {FDID} --pid $!; kill $!");
    let Ok(output) = Command::new("setpriv")
        .args([
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .output()
    else {
        assert!(!in_ci(), "setpriv (util-linux) is needed");
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stdout.contains("held by sleep(") && stdout.contains("):3 sleep("),
        "{stdout}"
    );
    assert!(
        stdout.lines().last().unwrap_or_default().contains("procfs"),
        "{stdout}"
    );
}

#[test]
fn a_missing_or_fake_btf_falls_back_or_fails_with_one_line() {
    let output = fdid(&["--btf", "/nonexistent/vmlinux", "--pid", "1"]);
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("fdid: warning: cannot read BTF from /nonexistent/vmlinux"),
        "{stderr}"
    );

    let output = fdid(&[
        "--btf",
        "/nonexistent/vmlinux",
        "--collector",
        "bpf",
        "--pid",
        "1",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr_of(&output).trim(),
        "fdid: error: cannot read BTF from /nonexistent/vmlinux: No such file or directory (os error 2)"
    );

    let fake = std::env::temp_dir().join(format!("fdid-fake-btf-{}", std::process::id()));
    std::fs::write(&fake, b"this is not BTF at all, just some bytes").unwrap();
    let output = fdid(&[
        "--btf",
        fake.to_str().unwrap(),
        "--collector",
        "bpf",
        "--pid",
        "1",
    ]);
    let _ = std::fs::remove_file(&fake);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr_of(&output).trim(),
        "fdid: error: malformed BTF: bad magic (not little-endian BTF?)"
    );
}

#[test]
fn a_thread_id_is_named_as_a_thread_of_its_process() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        sender.send(unsafe { libc::gettid() }).unwrap();
        let _ = stopped.recv();
    });
    let tid = receiver.recv().unwrap();
    let output = fdid(&["--pid", &tid.to_string()]);
    drop(stop);
    thread.join().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let expected = format!(
        "fdid: error: {tid} is a thread of process {0}, not a process: use --pid {0}",
        std::process::id()
    );
    assert_eq!(stderr_of(&output).trim(), expected);
}

#[test]
fn output_to_a_closed_pipe_exits_quietly() {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both fds were just created and are owned here.
    let (read_end, write_end) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    drop(read_end);
    let output = Command::new(FDID)
        .args(["--json", "--all"])
        .stdout(Stdio::from(write_end))
        .stderr(Stdio::piped())
        .output()
        .expect("run fdid");
    let stderr = stderr_of(&output);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("error"),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

/// Any 64-bit value in the x86_64 kernel half (0xffff8…) printed as hex or decimal.
fn kernel_addresses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        let hex = word.strip_prefix("0x").unwrap_or(word);
        let as_hex = (hex.len() == 16)
            .then(|| u64::from_str_radix(hex, 16).ok())
            .flatten();
        let as_decimal = word.parse::<u64>().ok();
        for value in [as_hex, as_decimal].into_iter().flatten() {
            if value >= 0xffff_8000_0000_0000 {
                found.push(word.to_owned());
            }
        }
    }
    found
}

#[test]
fn no_output_or_log_holds_a_kernel_address() {
    // The detector itself: a pointer in hex and one in decimal, next to ordinary numbers.
    assert_eq!(
        kernel_addresses("file at 0xffff888003a1c2c0, or 18446612682087579328; fd 3, ino 10010625"),
        ["0xffff888003a1c2c0", "18446612682087579328"]
    );
    // A pipe whose two ends this test holds (fds above 2): DOT draws a description with another
    // end, so the report has description nodes however quiet the machine is (fdid leaves out its
    // own fds, and a CI machine may have nothing else to draw).
    let _pipe = std::io::pipe().expect("a pipe");
    let runs: [&[&str]; 4] = [
        &["-v", "--all"],
        &["--json"],
        &["--dot"],
        &["-v", "--pid", "1", "--json"],
    ];
    let reports: Vec<Output> = runs.iter().map(|args| fdid(args)).collect();
    if !reports[0].status.success() && !in_ci() && !is_root() {
        eprintln!("SKIPPED: needs root for BPF");
        return;
    }
    for (args, output) in runs.iter().zip(&reports) {
        assert!(output.status.success(), "{}", stderr_of(output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        // Description ids are genid << 32 | subid, and may have their top bits set: in JSON each
        // one is checked to carry the CRIU genid of one of its fds (a pointer would not); DOT
        // names nodes by the same ids.
        let ids: Vec<u64> = if args.contains(&"--json") {
            json_ids(&output.stdout)
        } else if args.contains(&"--dot") {
            dot_ids(&stdout)
        } else {
            Vec::new()
        };
        let suspicious: Vec<String> = kernel_addresses(&stdout)
            .into_iter()
            .filter(|word| {
                let number = word.strip_prefix('f').unwrap_or(word);
                !number.parse().is_ok_and(|n: u64| ids.contains(&n))
            })
            .collect();
        assert!(
            suspicious.is_empty(),
            "{args:?}: kernel-looking values in the output: {suspicious:?}"
        );
        let logs = kernel_addresses(&stderr_of(output));
        assert!(
            logs.is_empty(),
            "{args:?}: kernel-looking values in the logs: {logs:?}"
        );
    }
}

/// Every description id of a JSON report (which must parse): each fd's and each file's, the same set.
fn json_ids(stdout: &[u8]) -> Vec<u64> {
    let json: serde_json::Value = serde_json::from_slice(stdout).expect("the JSON report parses");
    let ids_in = |key: &str| -> std::collections::BTreeSet<u64> {
        json[key]
            .as_array()
            .unwrap_or_else(|| panic!("`{key}` is an array"))
            .iter()
            .map(|entry| entry["id"].as_u64().expect("ids are unsigned integers"))
            .collect()
    };
    let (of_fds, of_files) = (ids_in("fds"), ids_in("files"));
    assert_eq!(of_fds, of_files, "every fd's description is listed");
    // Each id's high half is the genid of one of its fds' device, inode and offset.
    let mut genid_matches = std::collections::BTreeSet::new();
    for fd in json["fds"].as_array().expect("fds") {
        let id = fd["id"].as_u64().expect("id");
        let (major, minor) = fd["dev"]
            .as_str()
            .and_then(|dev| dev.split_once(':'))
            .expect("dev is MAJOR:MINOR");
        let dev = fdid::dev::from_user(libc::makedev(
            major.parse().expect("major"),
            minor.parse().expect("minor"),
        ));
        let genid = fdid::tree::make_genid(
            fdid::dev::to_user(dev),
            fd["ino"].as_u64().expect("ino"),
            fd["pos"].as_i64().expect("pos"),
        );
        assert_eq!(fd["genid"].as_u64(), Some(id >> 32), "{fd}");
        if u64::from(genid) == id >> 32 {
            genid_matches.insert(id);
        }
    }
    // An offset may move between two fds of one description during the walk; not for most.
    assert!(
        genid_matches.len() * 10 >= of_files.len() * 9,
        "{} of {} ids carry their fds' genid",
        genid_matches.len(),
        of_files.len()
    );
    of_files.into_iter().collect()
}

/// The description ids in a DOT report's node names (`f<id>`); process nodes (`p<pid>`) are pids.
fn dot_ids(dot: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    for token in dot.split(|c: char| !c.is_ascii_alphanumeric()) {
        let numeric = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
        if let Some(digits) = token.strip_prefix('f').filter(|rest| numeric(rest)) {
            ids.push(digits.parse().expect("a node name holds a 64-bit id"));
        } else if let Some(digits) = token.strip_prefix('p').filter(|rest| numeric(rest)) {
            let _: u32 = digits.parse().expect("a process node name holds a pid");
        }
    }
    assert!(!ids.is_empty(), "the DOT report has description nodes");
    ids
}

#[test]
fn a_btf_without_the_task_file_iterator_is_named() {
    // A valid BTF with a single type (`int`): no `bpf_iter_task_file`.
    let mut btf = Vec::new();
    btf.extend_from_slice(&0xeb9fu16.to_le_bytes());
    btf.extend_from_slice(&[1, 0]);
    for word in [24u32, 0, 16, 16, 5] {
        btf.extend_from_slice(&word.to_le_bytes());
    }
    for word in [1u32, 1 << 24, 4, 32] {
        btf.extend_from_slice(&word.to_le_bytes());
    }
    btf.extend_from_slice(b"\0int\0");
    let path = std::env::temp_dir().join(format!("fdid-no-iterator-btf-{}", std::process::id()));
    std::fs::write(&path, &btf).unwrap();
    let strict = fdid(&[
        "--btf",
        path.to_str().unwrap(),
        "--collector",
        "bpf",
        "--pid",
        "1",
    ]);
    let lenient = fdid(&["--btf", path.to_str().unwrap(), "--pid", "1"]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(strict.status.code(), Some(2));
    assert_eq!(
        stderr_of(&strict).trim(),
        "fdid: error: this kernel has no task_file BPF iterator (bpf_iter_task_file missing from BTF)"
    );
    assert!(lenient.status.success());
    assert!(
        stderr_of(&lenient).starts_with("fdid: warning: this kernel has no task_file BPF iterator")
    );
}

#[test]
fn a_process_exiting_during_the_walk_is_reported_not_an_error() {
    if !in_ci() && !is_root() {
        eprintln!("SKIPPED: needs root for BPF");
        return;
    }
    // A process that lives about as long as fdid takes to load: sooner or later it exits between
    // fdid's check that it exists and the walk.
    let mut reported = false;
    for attempt in 0..90u32 {
        let lifetime = format!("{:.3}", 0.001 + f64::from(attempt % 30) * 0.002);
        let mut child = Command::new("sleep").arg(&lifetime).spawn().unwrap();
        let output = fdid(&["--pid", &child.id().to_string()]);
        let _ = child.wait();
        let stderr = stderr_of(&output);
        assert!(!stderr.contains("panicked"), "{stderr}");
        match output.status.code() {
            Some(0) => {
                if stderr.contains(&format!(
                    "fdid: note: process {} exited during the survey",
                    child.id()
                )) {
                    reported = true;
                    break;
                }
            }
            // Gone before fdid even looked: that is a pid that does not exist.
            Some(2) => assert!(stderr.contains("no process with pid"), "{stderr}"),
            other => panic!("exit status {other:?}: {stderr}"),
        }
    }
    assert!(reported, "no attempt caught the process exiting mid-survey");
}
