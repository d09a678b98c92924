//! After every kind of run — normal, failed, interrupted mid-walk, cut off by a closed pipe — no BPF
//! program, link or map of fdid's is left in the kernel.
//!
//! Tests in their own binary, one at a time: cargo runs test binaries one after another, and [`SERIAL`]
//! keeps this binary's tests apart, so nothing else loads fdid's program while one counts.

use std::{
    process::{Command, Stdio},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use fdid::collect::{
    Target,
    bpf::{BpfCollector, BpfOptions},
};

/// Held by each test while it counts.
static SERIAL: Mutex<()> = Mutex::new(());

mod common;

const FDID: &str = env!("CARGO_BIN_EXE_fdid");

/// fdid's programs, iterator links and log maps currently in the kernel.
fn fdid_objects() -> (usize, usize, usize) {
    let programs: Vec<u32> = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str() == Some("fdid_task_file"))
        .map(|p| p.id())
        .collect();
    let links = aya::programs::loaded_links()
        .filter_map(Result::ok)
        .filter(|l| programs.contains(&l.program_id()))
        .count();
    let maps = aya::maps::loaded_maps()
        .filter_map(Result::ok)
        .filter(|m| m.name_as_str() == Some("AYA_LOGS"))
        .count();
    (programs.len(), links, maps)
}

/// Waits until there are no more of fdid's objects than `baseline` (the kernel frees them after an RCU
/// grace period), failing after two seconds.
fn assert_nothing_left(baseline: (usize, usize, usize), after: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        // Objects of earlier test processes may still be on their way out: never more than before.
        let now = fdid_objects();
        if now.0 <= baseline.0 && now.1 <= baseline.1 && now.2 <= baseline.2 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {after}: (programs, links, maps) {now:?}, before {baseline:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes holding many fds, so that a whole-system walk takes long enough to be interrupted.
fn fd_holders() -> Vec<std::process::Child> {
    let script = "import os, resource, sys, time\n\
                  resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))\n\
                  fd = os.open('/dev/null', os.O_RDONLY)\n\
                  [os.dup(fd) for _ in range(15000)]\n\
                  print('ready', flush=True)\n\
                  sys.stdin.read()\n";
    (0..4)
        .map(|_| {
            let mut child = Command::new("python3")
                .args(["-c", script])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3");
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
                &mut line,
            )
            .unwrap();
            assert_eq!(line.trim(), "ready");
            child
        })
        .collect()
}

/// The objects before a test, once earlier test binaries' programs are gone (they are freed shortly
/// after those exit); `None` when the test skips.
fn clean_baseline() -> Option<(usize, usize, usize)> {
    if !common::is_root() && !common::in_ci() {
        eprintln!("SKIPPED: needs root to see BPF objects");
        return None;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while fdid_objects().0 > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let baseline = fdid_objects();
    assert_eq!(baseline.0, 0, "no fdid program before the test");
    Some(baseline)
}

/// A long-lived library user (a daemon that surveys again and again) keeps one program loaded and
/// no link between walks: each walk's link and iterator are closed when it ends.
#[test]
fn a_long_lived_collector_keeps_one_program_and_no_links() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(baseline) = clean_baseline() else {
        return;
    };
    let mut collector = BpfCollector::load(&BpfOptions::default(), None).expect("load");
    let loaded = (baseline.0 + 1, baseline.1, baseline.2 + 1);
    assert_eq!(fdid_objects().0, loaded.0, "the counting sees the program");
    let me = std::process::id();
    for round in 0..20 {
        let target = if round % 2 == 0 {
            Target::All
        } else {
            Target::Pids(vec![me])
        };
        let collection = collector.collect(&target).expect("collect");
        assert!(collection.records.iter().any(|r| r.tgid == me));
        assert_nothing_left(loaded, &format!("walk {round} of one collector"));
        assert_eq!(
            fdid_objects().0,
            loaded.0,
            "still one program after walk {round}"
        );
    }
    drop(collector);
    assert_nothing_left(baseline, "dropping the collector");
}

#[test]
fn no_bpf_object_survives_any_kind_of_run() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(baseline) = clean_baseline() else {
        return;
    };

    // A normal run, and the check that the counting sees fdid's objects at all: a slow consumer keeps
    // fdid alive mid-output.
    let status = Command::new(FDID)
        .arg("--all")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_nothing_left(baseline, "a normal run");

    // An error after loading: a pid that does not exist is caught before; a fake BTF fails before too.
    let status = Command::new(FDID)
        .args(["--collector", "bpf", "--btf", "/nonexistent"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    assert_nothing_left(baseline, "a failed run");

    // Interrupted (SIGINT) while its program is loaded (caught by watching for it), and at fixed
    // points of a whole-system walk over 60,000 extra fds.
    let holders = fd_holders();
    let mut caught_loaded = 0;
    for delay_ms in [
        None,
        None,
        None,
        Some(0u64),
        Some(30),
        Some(60),
        Some(100),
        Some(200),
    ] {
        let mut child = Command::new(FDID)
            .arg("--json")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        match delay_ms {
            Some(delay) => std::thread::sleep(Duration::from_millis(delay)),
            None => {
                let deadline = Instant::now() + Duration::from_secs(10);
                while fdid_objects().0 == baseline.0
                    && child.try_wait().unwrap().is_none()
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if fdid_objects().0 > baseline.0 {
                    caught_loaded += 1;
                }
            }
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let status = child.wait().unwrap();
        // 130: its handler ran; killed by the signal: it came before the handler was installed.
        use std::os::unix::process::ExitStatusExt as _;
        assert!(
            matches!(status.code(), Some(0 | 130)) || status.signal() == Some(libc::SIGINT),
            "{status:?}"
        );
        assert_nothing_left(baseline, &format!("SIGINT ({delay_ms:?} ms)"));
    }
    assert!(
        caught_loaded > 0,
        "at least one run was interrupted with its program loaded"
    );

    // Cut off by a closed pipe mid-output (SIGPIPE ignored by Rust: EPIPE, quiet exit).
    let mut child = Command::new(FDID)
        .arg("--json")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a closed pipe is a quiet end");
    assert_nothing_left(baseline, "a closed pipe");

    for mut holder in holders {
        drop(holder.stdin.take());
        let _ = holder.wait();
    }
}
