//! `fdid-workload --fds N [--per-process F] [--truth PATH]`: starts about N open fds spread over
//! processes with realistic sharing, writes the ground truth, and holds everything until stdin closes.
//!
//! The root process opens base descriptions — separate opens of one file (same inode, distinct
//! descriptions), pipes, socketpairs, eventfds — then dups them until it holds F fds. It forks
//! ceil(N / F) − 1 children that inherit everything; after the fork each child opens two files of its
//! own, and the root sends each child one new memfd over SCM_RIGHTS (the root keeps its copy).
//! Children die with the root (PR_SET_PDEATHSIG) and the root kills and reaps them on exit: no orphans.
//!
//! Ground truth (text, one fact a line):
//! ```text
//! root PID
//! child PID
//! inherited FD LABEL        every process has FD, and it is description LABEL
//! own PID FD LABEL          an fd only PID has (LABEL may be shared with another `own` line)
//! ```
//! Equal labels ⇔ one open file description. After writing it the root prints `ready`.

use std::{
    ffi::CString,
    io::{BufWriter, Write},
    os::fd::RawFd,
};

use fdid_tests::fdpass::{receive_fd, send_fd};

fn fail(what: &str) -> ! {
    eprintln!("fdid-workload: {what}: {}", std::io::Error::last_os_error());
    std::process::exit(2);
}

fn check(rc: libc::c_long, what: &str) -> i32 {
    if rc < 0 {
        fail(what);
    }
    rc as i32
}

struct Args {
    fds: u32,
    per_process: u32,
    truth: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        fds: 10_000,
        per_process: 19_000,
        truth: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| fail_usage(&arg));
        match arg.as_str() {
            "--fds" => args.fds = value().parse().unwrap_or_else(|_| fail_usage("--fds")),
            "--per-process" => {
                args.per_process = value()
                    .parse()
                    .unwrap_or_else(|_| fail_usage("--per-process"))
            }
            "--truth" => args.truth = Some(value()),
            _ => fail_usage(&arg),
        }
    }
    args
}

fn fail_usage(arg: &str) -> ! {
    eprintln!(
        "fdid-workload: bad argument {arg}; usage: fdid-workload --fds N [--per-process F] [--truth PATH]"
    );
    std::process::exit(2);
}

/// Raises the soft fd limit to the hard one.
fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        limit.rlim_cur
    }
}

fn main() {
    let args = parse_args();
    let limit = raise_fd_limit();
    // Room for the few fds every process has besides the workload's.
    let per_process = args
        .per_process
        .min(limit.saturating_sub(64) as u32)
        .max(64);
    // At least a root and two children, so that every size forks and passes fds.
    let processes = args.fds.div_ceil(per_process).max(3);
    let per_process = args.fds.div_ceil(processes);

    let dir = std::env::temp_dir();
    let path = dir.join(format!("fdid-workload-{}", std::process::id()));
    std::fs::write(&path, b"fdid workload file\n").unwrap_or_else(|_| fail("write scratch file"));
    let cpath = CString::new(path.clone().into_os_string().into_encoded_bytes()).expect("no NUL");

    // Base descriptions, each with its label; then dups of them up to `per_process` fds.
    let mut base: Vec<(RawFd, String)> = Vec::new();
    // SAFETY: every call below in main is a plain syscall on fds this process owns and local buffers.
    unsafe {
        for i in 0..32 {
            let fd = check(libc::open(cpath.as_ptr(), libc::O_RDONLY).into(), "open");
            base.push((fd, format!("open{i}")));
        }
        for i in 0..16 {
            let mut pipe = [0; 2];
            check(libc::pipe(pipe.as_mut_ptr()).into(), "pipe");
            base.push((pipe[0], format!("pipe{i}r")));
            base.push((pipe[1], format!("pipe{i}w")));
            let mut pair = [0; 2];
            check(
                libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()).into(),
                "socketpair",
            );
            base.push((pair[0], format!("sock{i}a")));
            base.push((pair[1], format!("sock{i}b")));
        }
        for i in 0..8 {
            base.push((
                check(libc::eventfd(0, 0).into(), "eventfd"),
                format!("eventfd{i}"),
            ));
        }
        let mut inherited: Vec<(RawFd, String)> = base.clone();
        let mut next = 0;
        while (inherited.len() as u32) < per_process {
            let (fd, label) = &base[next % base.len()];
            inherited.push((check(libc::dup(*fd).into(), "dup"), label.clone()));
            next += 1;
        }

        // The channel children receive their memfd on, and the pipe they report it through.
        let mut channel = [0; 2];
        check(
            libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, channel.as_mut_ptr()).into(),
            "socketpair",
        );
        let mut report = [0; 2];
        check(libc::pipe(report.as_mut_ptr()).into(), "pipe");
        let root = libc::getpid();
        let mut children = Vec::new();
        let mut own: Vec<(i32, RawFd, String)> = Vec::new();
        for c in 1..processes {
            let pid = check(libc::fork().into(), "fork");
            if pid == 0 {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != root {
                    libc::_exit(0);
                }
                let me = libc::getpid();
                let first = libc::open(cpath.as_ptr(), libc::O_RDONLY);
                let second = libc::open(cpath.as_ptr(), libc::O_RDONLY);
                let received = receive_fd(channel[1]).unwrap_or_else(|_| fail("recvmsg"));
                for value in [me, first, second, received] {
                    libc::write(report[1], value.to_ne_bytes().as_ptr().cast(), 4);
                }
                loop {
                    libc::pause();
                }
            }
            children.push(pid);
            let memfd = check(
                libc::memfd_create(c"fdid-workload-scm".as_ptr(), 0).into(),
                "memfd_create",
            );
            send_fd(channel[0], memfd).unwrap_or_else(|_| fail("sendmsg"));
            let mut values = [0i32; 4];
            for value in &mut values {
                let mut bytes = [0u8; 4];
                if libc::read(report[0], bytes.as_mut_ptr().cast(), 4) != 4 {
                    fail("child report");
                }
                *value = i32::from_ne_bytes(bytes);
            }
            let [child, first, second, received] = values;
            own.push((child, first, format!("child{c}-first")));
            own.push((child, second, format!("child{c}-second")));
            own.push((child, received, format!("scm{c}")));
            own.push((root, memfd, format!("scm{c}")));
        }

        let truth: Box<dyn Write> = match &args.truth {
            Some(path) => {
                Box::new(std::fs::File::create(path).unwrap_or_else(|_| fail("create truth file")))
            }
            None => Box::new(std::io::sink()),
        };
        let mut truth = BufWriter::new(truth);
        let mut out = String::new();
        out.push_str(&format!("root {root}\n"));
        for pid in &children {
            out.push_str(&format!("child {pid}\n"));
        }
        for (fd, label) in &inherited {
            out.push_str(&format!("inherited {fd} {label}\n"));
        }
        for (pid, fd, label) in &own {
            out.push_str(&format!("own {pid} {fd} {label}\n"));
        }
        truth
            .write_all(out.as_bytes())
            .and_then(|()| truth.flush())
            .unwrap_or_else(|_| fail("write truth"));
        drop(truth);
        let _ = std::fs::remove_file(&path);

        let total = u64::from(processes) * u64::from(per_process) + own.len() as u64;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(
            stdout,
            "processes {processes}\nper_process {per_process}\nfds {total}\nroot {root}\nready"
        );
        let _ = stdout.flush();
        drop(stdout);

        fdid_tests::hold_until_stdin_closes(&children);
    }
}
