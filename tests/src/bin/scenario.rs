//! `fdid-scenario KIND`: builds a process (tree) with a known set of fds for the integration tests.
//!
//! It prints its facts as `name value` lines, then `ready`, and holds everything open until its stdin
//! closes; then it kills its children and exits. Children also die with it (PR_SET_PDEATHSIG), so a test
//! that fails half-way leaves no orphans. Single-threaded, so fork() is safe here.
//!
//! Kinds:
//! - `fdset`: one process with a regular file opened twice (`file`, `file_again`), a dup of the first
//!   (`file_dup`), pipe ends (`pipe_r`, `pipe_w`), a socketpair (`sock_a`, `sock_b`), an eventfd
//!   (`eventfd`) and a memfd (`memfd`).
//! - `fork`: a parent holding `file` and a pipe, then `children` forked children inheriting them
//!   (`child0`, `child1`, ... their pids); the parent then opens `parent_only`.

use std::{
    ffi::CString,
    io::{BufRead, Write},
    os::fd::RawFd,
};

fn check(rc: libc::c_int, what: &str) -> libc::c_int {
    if rc < 0 {
        eprintln!("fdid-scenario: {what}: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    rc
}

fn open(path: &CString, flags: libc::c_int) -> RawFd {
    // SAFETY: `path` is a valid NUL-terminated string.
    check(unsafe { libc::open(path.as_ptr(), flags | libc::O_CREAT, 0o600) }, "open")
}

fn scratch_file() -> CString {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("fdid-scenario-{}", std::process::id()));
    std::fs::write(&path, b"0123456789abcdef").expect("write scratch file");
    CString::new(path.into_os_string().into_encoded_bytes()).expect("no NUL in temp path")
}

struct Facts(Vec<(String, i64)>);

impl Facts {
    fn add(&mut self, name: &str, value: impl Into<i64>) {
        self.0.push((name.to_owned(), value.into()));
    }
    fn print(&self) {
        let mut out = std::io::stdout().lock();
        for (name, value) in &self.0 {
            writeln!(out, "{name} {value}").expect("stdout");
        }
        writeln!(out, "ready").expect("stdout");
        out.flush().expect("stdout");
    }
}

fn fdset(facts: &mut Facts) {
    let path = scratch_file();
    let file = open(&path, libc::O_RDWR);
    // SAFETY (all calls in this function): plain syscalls on fds we own and local buffers.
    unsafe {
        check(libc::lseek(file, 5, libc::SEEK_SET) as libc::c_int, "lseek");
        let file_dup = check(libc::dup(file), "dup");
        let file_again = open(&path, libc::O_RDONLY);
        let mut pipe = [0; 2];
        check(libc::pipe(pipe.as_mut_ptr()), "pipe");
        let mut pair = [0; 2];
        check(libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()), "socketpair");
        let eventfd = check(libc::eventfd(0, 0), "eventfd");
        let memfd = check(libc::memfd_create(c"fdid-scenario".as_ptr(), 0), "memfd_create");
        facts.add("file", file);
        facts.add("file_dup", file_dup);
        facts.add("file_again", file_again);
        facts.add("pipe_r", pipe[0]);
        facts.add("pipe_w", pipe[1]);
        facts.add("sock_a", pair[0]);
        facts.add("sock_b", pair[1]);
        facts.add("eventfd", eventfd);
        facts.add("memfd", memfd);
        libc::unlink(path.as_ptr());
    }
}

fn fork_tree(facts: &mut Facts, children: u32) -> Vec<libc::pid_t> {
    let path = scratch_file();
    let file = open(&path, libc::O_RDWR | libc::O_APPEND);
    let mut pipe = [0; 2];
    // SAFETY: plain syscalls on a local array and fds we own.
    unsafe {
        check(libc::pipe(pipe.as_mut_ptr()), "pipe");
        libc::unlink(path.as_ptr());
    }
    facts.add("file", file);
    facts.add("pipe_r", pipe[0]);
    facts.add("pipe_w", pipe[1]);
    let parent = std::process::id() as libc::pid_t;
    let mut pids = Vec::new();
    for i in 0..children {
        // SAFETY: this process is single-threaded; the child only calls async-signal-safe functions.
        let pid = check(unsafe { libc::fork() }, "fork");
        if pid == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                loop {
                    libc::pause();
                }
            }
        }
        facts.add(&format!("child{i}"), pid);
        pids.push(pid);
    }
    let parent_only = open(&CString::new("/dev/null").expect("literal"), libc::O_RDONLY);
    facts.add("parent_only", parent_only);
    pids
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut facts = Facts(Vec::new());
    facts.add("pid", std::process::id());
    let children = match args.get(1).map(String::as_str) {
        Some("fdset") => {
            fdset(&mut facts);
            Vec::new()
        }
        Some("fork") => {
            let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1);
            fork_tree(&mut facts, n)
        }
        _ => {
            eprintln!("usage: fdid-scenario fdset | fork [CHILDREN]");
            std::process::exit(2);
        }
    };
    facts.print();
    // Hold everything until the test closes our stdin.
    let mut line = String::new();
    while std::io::stdin().lock().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        line.clear();
    }
    for pid in children {
        // SAFETY: signalling and reaping our own children.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
}
