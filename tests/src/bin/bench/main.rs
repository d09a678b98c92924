//! `fdid-bench`: the side-by-side benchmark behind `cargo xtask bench`.
//!
//! For each size it starts `fdid-workload`, times each tool as a separate process (median
//! wall time and peak RSS over several runs): the raw iterator walk, `fdid --json` for each `--verify`
//! mode, `fdid --pid` on the workload's root (its biggest process), fdid's procfs collector, and
//! `lsfd`/`lsof` (whole system and `-p`) when installed; each fdid row's command line runs once more
//! with its JSON kept, parsed and checked against the workload's truth ([`json_check`]). Writes
//! `report.md` and `time-vs-fds.svg`.
//!
//! Before the sizes, the ordinary ones ([`ordinary`]): one process with 10 fds and the idle machine.
//!
//! After them, `fdid watch` under churn ([`watch`]).
//!
//! `fdid-bench raw-walk` is the raw walk itself: load, attach and read the iterator, no decoding;
//! `fdid-bench watch [--runs N] [--sessions K]` the watch section alone (K sessions of N pairs).

mod json_check;
mod ordinary;
mod reader;
mod report;
mod stats;
mod watch;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use fdid::collect::bpf::{BpfCollector, BpfOptions};
use stats::median;

struct Options {
    sizes: Vec<u64>,
    runs: usize,
    /// `fdid watch`'s comparison: sessions of `runs` pairs, one after the other.
    sessions: usize,
    out: PathBuf,
    fdid: PathBuf,
}

fn parse_options() -> Result<Options> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("binary directory")?.to_path_buf();
    let mut options = Options {
        sizes: vec![10_000, 100_000, 1_000_000],
        runs: 3,
        sessions: 1,
        out: PathBuf::from("target/bench"),
        fdid: dir.join("fdid"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--sizes" => {
                options.sizes = value()?
                    .split(',')
                    .map(|n| n.trim().parse().context("--sizes takes numbers"))
                    .collect::<Result<_>>()?
            }
            "--runs" => options.runs = value()?.parse().context("--runs takes a number")?,
            "--sessions" => {
                options.sessions = value()?.parse().context("--sessions takes a number")?
            }
            "--out" => options.out = PathBuf::from(value()?),
            "--fdid" => options.fdid = PathBuf::from(value()?),
            // `fdid-bench watch [OPTIONS]`: the subcommand itself.
            "watch" => {}
            "--quick" => {
                // More than one JSON formatting chunk (32,768 fds).
                options.sizes = vec![40_000];
                options.runs = 1;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if options.runs == 0 || options.sessions == 0 || options.sizes.is_empty() {
        bail!("nothing to run");
    }
    Ok(options)
}

/// The running workload and its ground truth.
struct Workload {
    child: Child,
    stdin: Option<ChildStdin>,
    root: u32,
    fds: u64,
    /// (pid, fd) → description label.
    truth: HashMap<(u32, u32), String>,
}

impl Workload {
    fn start(size: u64, out: &Path) -> Result<Self> {
        let exe = std::env::current_exe()?;
        let truth_path = out.join(format!("truth-{size}.txt"));
        let mut child = Command::new(exe.with_file_name("fdid-workload"))
            .args(["--fds", &size.to_string(), "--truth"])
            .arg(&truth_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting fdid-workload (built next to fdid-bench)")?;
        let stdin = child.stdin.take();
        let mut facts = HashMap::new();
        for line in BufReader::new(child.stdout.take().context("workload stdout")?).lines() {
            let line = line?;
            if line == "ready" {
                break;
            }
            if let Some((name, value)) = line.split_once(' ') {
                facts.insert(name.to_owned(), value.parse::<u64>()?);
            }
        }
        let root = *facts.get("root").context("the workload did not start")? as u32;
        let fds = facts["fds"];
        let truth = read_truth(&truth_path)?;
        Ok(Self {
            child,
            stdin,
            root,
            fds,
            truth,
        })
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn read_truth(path: &Path) -> Result<HashMap<(u32, u32), String>> {
    let text = std::fs::read_to_string(path)?;
    let mut processes = Vec::new();
    let mut inherited = Vec::new();
    let mut truth = HashMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["root", pid] | ["child", pid] => processes.push(pid.parse::<u32>()?),
            ["inherited", fd, label] => inherited.push((fd.parse::<u32>()?, *label)),
            ["own", pid, fd, label] => {
                truth.insert((pid.parse()?, fd.parse()?), (*label).to_owned());
            }
            _ => bail!("bad truth line: {line}"),
        }
    }
    for &pid in &processes {
        for &(fd, label) in &inherited {
            truth.insert((pid, fd), label.to_owned());
        }
    }
    Ok(truth)
}

/// What the last column says of a row.
enum Note {
    Text(String),
    /// The row's JSON, checked against this truth, from this collector.
    Check {
        truth: HashMap<(u32, u32), String>,
        source: &'static str,
    },
}

struct Measurement {
    wall: Duration,
    rss_kib: u64,
}

/// Runs a command to completion (stdout and stderr discarded), with its wall time and peak RSS.
///
/// The command is started by a small `fdid-bench measure` process: a child's peak RSS includes the
/// memory of the process it was forked from until it execs, and this benchmark process is large.
fn measure(command: &Command) -> Result<Measurement> {
    let output = Command::new(std::env::current_exe()?)
        .arg("measure")
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    let mut words = text.split_whitespace();
    let wall_ns: u64 = words.next().context("measure output")?.parse()?;
    let rss_kib: u64 = words.next().context("measure output")?.parse()?;
    Ok(Measurement {
        wall: Duration::from_nanos(wall_ns),
        rss_kib,
    })
}

/// `fdid-bench measure PROGRAM ARGS…`: runs it (output discarded) and prints
/// `WALL_NS PEAK_RSS_KIB`; fails when it fails.
fn measure_child(args: &[String]) -> Result<()> {
    let (program, rest) = args.split_first().context("measure needs a command")?;
    let started = Instant::now();
    let child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child; `child` is not waited on again (its Drop does not wait).
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if rc < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr {
            use std::io::Read as _;
            let _ = pipe.read_to_string(&mut stderr);
        }
        bail!(
            "exit status {status:#x}: {}",
            stderr.lines().next().unwrap_or("")
        );
    }
    println!("{} {}", wall.as_nanos(), usage.ru_maxrss);
    Ok(())
}

struct Row {
    fds: u64,
    tool: String,
    wall: Option<Duration>,
    rss_kib: u64,
    note: String,
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|path| path.is_file())
}

fn run_bench(options: &Options) -> Result<()> {
    std::fs::create_dir_all(&options.out)?;
    if !options.fdid.is_file() {
        bail!(
            "{} does not exist: run through `cargo xtask bench`",
            options.fdid.display()
        );
    }
    let lsfd = which("lsfd");
    let lsof = which("lsof");
    eprintln!("== ordinary sizes");
    let ordinary = ordinary::run(
        &options.fdid,
        lsof.as_ref(),
        lsfd.as_ref(),
        options.runs * 7,
    )?;
    let mut rows: Vec<Row> = Vec::new();
    for &size in &options.sizes {
        eprintln!("== {size} fds: starting the workload");
        let workload = Workload::start(size, &options.out)?;
        let root = workload.root.to_string();

        let root_truth: HashMap<(u32, u32), String> = workload
            .truth
            .iter()
            .filter(|((pid, _), _)| *pid == workload.root)
            .map(|(k, v)| (*k, v.clone()))
            .collect();

        let exe = std::env::current_exe()?;
        let fdid = |args: &[&str]| {
            let mut command = Command::new(&options.fdid);
            command.args(args);
            command
        };
        let checked = |truth: &HashMap<(u32, u32), String>, source: &'static str| Note::Check {
            truth: truth.clone(),
            source,
        };
        let all = &workload.truth;
        let mut tools: Vec<(String, Command, Note)> = vec![
            (
                "raw walk (load+attach+read)".into(),
                {
                    let mut c = Command::new(&exe);
                    c.arg("raw-walk");
                    c
                },
                Note::Text("floor".into()),
            ),
            (
                "fdid --json (verify=ambiguous)".into(),
                fdid(&["--json"]),
                checked(all, "bpf"),
            ),
            (
                "fdid --json --verify=all".into(),
                fdid(&["--json", "--verify", "all"]),
                checked(all, "bpf"),
            ),
            (
                "fdid --json --verify=none".into(),
                fdid(&["--json", "--verify", "none"]),
                checked(all, "bpf"),
            ),
            (
                format!("fdid --pid ROOT --json ({} fds)", root_truth.len()),
                fdid(&["--pid", &root, "--json"]),
                checked(&root_truth, "bpf"),
            ),
            (
                "fdid --pid ROOT --scope-only --json".into(),
                fdid(&["--pid", &root, "--scope-only", "--json"]),
                checked(&root_truth, "bpf"),
            ),
            (
                "fdid --collector procfs --json".into(),
                fdid(&["--collector", "procfs", "--json"]),
                checked(all, "procfs"),
            ),
        ];
        match &lsfd {
            Some(path) => {
                tools.push(("lsfd".into(), Command::new(path), Note::Text(String::new())));
                tools.push((
                    "lsfd -p ROOT".into(),
                    {
                        let mut c = Command::new(path);
                        c.args(["-p", &root]);
                        c
                    },
                    Note::Text(String::new()),
                ));
            }
            None => eprintln!("lsfd not found (it is in util-linux): skipped"),
        }
        match &lsof {
            Some(path) => {
                tools.push((
                    "lsof -n -P".into(),
                    {
                        let mut c = Command::new(path);
                        c.args(["-n", "-P"]);
                        c
                    },
                    Note::Text(String::new()),
                ));
                tools.push((
                    "lsof -n -P -p ROOT".into(),
                    {
                        let mut c = Command::new(path);
                        c.args(["-n", "-P", "-p", &root]);
                        c
                    },
                    Note::Text(String::new()),
                ));
            }
            None => eprintln!("lsof not found: `apt-get install lsof` to compare with it; skipped"),
        }
        for (name, command, note) in tools {
            let mut walls = Vec::new();
            let mut rss = 0;
            let mut failure = None;
            for _ in 0..options.runs {
                match measure(&command) {
                    Ok(m) => {
                        walls.push(m.wall);
                        rss = rss.max(m.rss_kib);
                    }
                    Err(error) => {
                        failure = Some(format!("failed: {error:#}"));
                        break;
                    }
                }
            }
            let wall = failure.is_none().then(|| median(walls));
            let note = match note {
                Note::Text(text) => text,
                // The same command line once more, its output kept and parsed.
                Note::Check { truth, source } => match Command::new(command.get_program())
                    .args(command.get_args())
                    .stderr(Stdio::null())
                    .output()
                {
                    Ok(output) => json_check::check(&output.stdout, &truth, source),
                    Err(error) => format!("not run: {error}"),
                },
            };
            eprintln!(
                "   {name}: {wall:?}, {} MiB {}",
                rss / 1024,
                failure.as_deref().unwrap_or("")
            );
            rows.push(Row {
                fds: workload.fds,
                tool: name,
                wall,
                rss_kib: rss,
                note: failure.unwrap_or(note),
            });
        }
    }
    let mut report = report::report(&ordinary, &rows, options);
    eprintln!("== fdid watch under churn");
    watch::section(&options.fdid, options.runs, options.sessions, &mut report)?;
    std::fs::write(options.out.join("report.md"), &report)?;
    std::fs::write(options.out.join("time-vs-fds.svg"), report::plot(&rows))?;
    println!("{report}");
    eprintln!(
        "wrote {} and {}",
        options.out.join("report.md").display(),
        options.out.join("time-vs-fds.svg").display()
    );
    Ok(())
}

/// `fdid-bench raw-walk`: load the program, then attach and read the whole iterator without decoding.
fn raw_walk() -> Result<()> {
    let mut collector = BpfCollector::load(&BpfOptions::default(), None)?;
    let bytes = collector.raw_walk()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{bytes} bytes")?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("raw-walk") => raw_walk(),
        Some("measure") => measure_child(&args[2..]),
        Some("churn") => watch::churn(&args[2..]),
        Some("reader") => reader::run(&args[2..]),
        Some("watch") => parse_options().and_then(|options| {
            let mut report = String::new();
            watch::section(&options.fdid, options.runs, options.sessions, &mut report)?;
            println!("{report}");
            Ok(())
        }),
        _ => parse_options().and_then(|options| run_bench(&options)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fdid-bench: error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
