//! `fdid`: which file descriptors share one open file description. Thin CLI over the `fdid` library.

use std::{
    io::{self, BufWriter, Write},
    os::fd::{AsFd as _, AsRawFd as _},
    process::ExitCode,
};

use anyhow::Result;
use clap::{Parser, Subcommand};
use fdid::{
    Survey,
    check::{self, CheckPolicy},
    report,
    survey::OutsideHolders,
    who,
};

mod args;

use args::{SurveyArgs, WatchArgs};

#[derive(Parser)]
#[command(
    name = "fdid",
    version,
    about = "Which file descriptors share one open file description",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    survey: SurveyArgs,
    /// Also list descriptions held by a single fd.
    #[arg(long)]
    all: bool,
    /// Print one JSON object instead of the table.
    #[arg(long, conflicts_with = "dot")]
    json: bool,
    /// Print a Graphviz graph of processes and the descriptions they share.
    #[arg(long)]
    dot: bool,
    /// With --pid: walk only those processes, not the rest of the system, so holders outside the
    /// scope are not shown (like `lsof -p`; faster on a big machine).
    #[arg(long, requires = "pids")]
    scope_only: bool,
}

const EXAMPLES: &str = "Examples:
  fdid --pid $$                        what your shell shares, and with whom
  fdid --json > survey.json            every fd of the machine, as one JSON object
  fdid who tcp:8080                    who keeps port 8080 bound (exit 1: nobody)
  fdid check --pid 4242 --no-inherited a CI gate: does 4242 share an fd with another process?
  fdid watch --pid 4242 --tree         live: how 4242's children come to share its fds
  fdid --dot --pid 4242 --tree | dot -Tpng -o tree.png";

const WHO_EXAMPLES: &str = "Examples:
  fdid who tcp:8080                    the listener and its connections, every holder
  fdid who /var/log/app.log            who still holds a file open (deleted too: by its old name)
  fdid who --json pipe:[12345]         a pipe's descriptions and its other ends, as JSON
  fdid who 4242:3                      fd 3 of process 4242: who else holds it";

const WATCH_EXAMPLES: &str = "Examples:
  fdid watch                           every change on the machine, until Ctrl-C
  fdid watch --pid 4242 --tree         4242 and its descendants, present and future
  fdid watch --json --duration 10      ten seconds of events, one JSON object per line";

#[derive(Subcommand)]
enum Command {
    /// CI gate: exit 1 when the scope shares an open file description with a process outside the
    /// allowed set, 0 when not, 2 on errors.
    Check {
        #[command(flatten)]
        survey: SurveyArgs,
        /// Sharing with this process is allowed (repeatable).
        #[arg(long = "allow-shared-with", value_name = "PID")]
        allowed: Vec<u32>,
        /// Report descriptions shared with ancestors too (inherited), except on fds 0-2.
        #[arg(long)]
        no_inherited: bool,
    },
    /// Who holds a file, a port, a pipe or a socket: each TARGET's open file descriptions, their
    /// holders, the other ends, and which fds to close to release them. Exit 0 when something holds
    /// a target, 1 when nothing does, 2 on errors.
    #[command(after_help = WHO_EXAMPLES)]
    Who {
        #[command(flatten)]
        survey: SurveyArgs,
        /// A path (a file, or a unix socket's), tcp:PORT, udp:PORT, pipe:[INO], socket:[INO],
        /// MAJOR:MINOR:INO or PID:FD.
        #[arg(required = true, value_name = "TARGET")]
        targets: Vec<String>,
        /// Print the survey's JSON, restricted to the targets' descriptions and their other ends.
        #[arg(long, conflicts_with = "dot")]
        json: bool,
        /// Print the Graphviz graph of the targets' descriptions and their other ends.
        #[arg(long)]
        dot: bool,
    },
    /// Follow every change to the fd tables in scope as it happens — new descriptions, new shares
    /// (fork, dup, SCM_RIGHTS, pidfd_getfd, exec…), holders gone, descriptions released — with
    /// the ids a survey gives; at the end, the shares by kind and each one's provenance.
    #[command(after_help = WATCH_EXAMPLES)]
    Watch {
        #[command(flatten)]
        watch: WatchArgs,
    },
    /// Write the man pages (DIR/man/fdid*.1) and bash, zsh and fish completions
    /// (DIR/completions/), generated from these definitions: for packaging.
    #[command(hide = true)]
    Generate { dir: std::path::PathBuf },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("fdid: {}", one_line(&error.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let verbose = match &cli.command {
        Some(Command::Check { survey, .. } | Command::Who { survey, .. }) => survey.verbose,
        Some(Command::Watch { watch }) => watch.verbose,
        Some(Command::Generate { .. }) => false,
        None => cli.survey.verbose,
    };
    let (level, aya_level) = if verbose {
        (log::LevelFilter::Debug, log::LevelFilter::Debug)
    } else {
        // aya warns about each failed feature probe of a run without privileges; fdid says why BPF
        // cannot be used in one line of its own, and `-v` shows aya's view.
        (log::LevelFilter::Warn, log::LevelFilter::Error)
    };
    env_logger::Builder::new()
        .filter_level(level)
        .filter_module("aya", aya_level)
        .format_timestamp(None)
        .init();
    if let Some(Command::Watch { watch }) = &cli.command {
        return watch_command(watch).await;
    }
    // The survey blocks in read(2) on the iterator; run it off the runtime so Ctrl-C is answered.
    let work = tokio::task::spawn_blocking(move || run(&cli));
    tokio::select! {
        joined = work => match joined {
            Ok(Ok(code)) => code,
            Ok(Err(error)) if is_broken_pipe(&error) => ExitCode::SUCCESS,
            Ok(Err(error)) => {
                eprintln!("fdid: error: {}", fdid::error_line(error.as_ref()));
                ExitCode::from(2)
            }
            Err(error) => {
                eprintln!("fdid: error: the survey stopped: {error}");
                ExitCode::from(2)
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::from(130),
    }
}

/// `fdid watch`: on the runtime itself (it waits on the ring buffer and on Ctrl-C).
async fn watch_command(args: &WatchArgs) -> ExitCode {
    let options = match args.options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("fdid: error: {message}");
            return ExitCode::from(2);
        }
    };
    // A duplicate of stdout's fd, written without std's line buffering (a watch writes in
    // batches).
    let out = match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => std::fs::File::from(fd),
        Err(error) => {
            eprintln!("fdid: error: standard output: {error}");
            return ExitCode::from(2);
        }
    };
    grow_pipe(&out);
    match fdid::watch::run(&options, out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fdid: error: {}", fdid::error_line(&error));
            ExitCode::from(2)
        }
    }
}

/// Room for a batch of lines when the output is a pipe (64 KiB by default): a batch is written
/// in one go instead of waking the reader a dozen times. Not a pipe, or not allowed: left as is.
fn grow_pipe(out: &std::fs::File) {
    const PIPE_BYTES: libc::c_int = 1 << 20;
    let fd = out.as_raw_fd();
    // SAFETY: fcntl on an fd this process owns; F_GETPIPE_SZ/F_SETPIPE_SZ fail on anything but a
    // pipe and change nothing else.
    unsafe {
        let now = libc::fcntl(fd, libc::F_GETPIPE_SZ);
        if (0..PIPE_BYTES).contains(&now) {
            libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_BYTES);
        }
    }
}

/// clap's message up to its first blank line, on one line ("error: … --pid <PID>").
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    lines.join(" ")
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|error| error.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// One line on stderr when the BPF collector could not be used and procfs stood in, one for each
/// process of the scope that exited during the survey, and one when processes could not be read.
fn warn_about_fallback(survey: &Survey) {
    if let Some(reason) = &survey.stats.fallback {
        eprintln!(
            "fdid: warning: {reason}; using the procfs collector instead (slower, no reference counts, no unix socket peers; `--collector bpf` makes this an error)"
        );
    }
    for pid in &survey.stats.exited {
        eprintln!("fdid: note: process {pid} exited during the survey; its fds are absent");
    }
    let unreadable = &survey.stats.unreadable;
    if !unreadable.is_empty() {
        let shown: Vec<String> = unreadable.iter().take(5).map(u32::to_string).collect();
        let more = if unreadable.len() > 5 { ", …" } else { "" };
        eprintln!(
            "fdid: warning: permission denied reading the fds of {} process(es) ({}{more}): they are missing",
            unreadable.len(),
            shown.join(", ")
        );
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Some(Command::Generate { dir }) => generate(dir).map(|()| ExitCode::SUCCESS),
        Some(Command::Watch { .. }) => unreachable!("main runs watch on the runtime"),
        Some(Command::Who {
            survey: args,
            targets,
            json,
            dot,
        }) => who(args, targets, *json, *dot),
        None => {
            let survey = Survey::run(&cli.survey.options(if cli.scope_only {
                OutsideHolders::Never
            } else {
                OutsideHolders::WhenReferenced
            }))?;
            warn_about_fallback(&survey);
            let written = std::time::Instant::now();
            let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            let format = if cli.json {
                report::Format::Json
            } else if cli.dot {
                report::Format::Dot
            } else {
                report::Format::Table { all: cli.all }
            };
            report::write(&mut out, &survey, format)?;
            out.flush()?;
            log::debug!(
                "report written after {:?}",
                survey.stats.elapsed + written.elapsed()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Check {
            survey: args,
            allowed,
            no_inherited,
        }) => {
            if args.pids.is_empty() {
                anyhow::bail!("check needs --pid: which processes to check");
            }
            let survey = Survey::run(&args.options(OutsideHolders::Always))?;
            warn_about_fallback(&survey);
            let mut scope = survey.processes_in_scope();
            scope.extend(args.pids.iter().copied());
            let policy = CheckPolicy {
                allowed: allowed.iter().copied().collect(),
                no_inherited: *no_inherited,
            };
            let violations = check::violations(&survey, &scope, &policy);
            let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
            let mut names = report::Names::default();
            for violation in &violations {
                let file = &survey.files[violation.file];
                let first = survey.fd(file.holders[0]).record;
                let (pid, fd) = violation.holder;
                let outsiders: Vec<String> = violation
                    .outsiders
                    .iter()
                    .map(|&(pid, fd)| format!("{}({pid}):{fd}", names.comm(pid)))
                    .collect();
                let path = names.path(&survey, file);
                writeln!(
                    out,
                    "fd {fd} of {}({pid}) ({} {path}, id {}) is also held by {}",
                    names.comm(pid),
                    report::file_type(first.mode),
                    file.id,
                    outsiders.join(", ")
                )?;
            }
            if violations.is_empty() {
                writeln!(
                    out,
                    "ok: {} processes share no open file description outside the allowed set",
                    scope.len()
                )?;
            }
            out.flush()?;
            Ok(if violations.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn who(args: &SurveyArgs, targets: &[String], json: bool, dot: bool) -> Result<ExitCode> {
    let targets = targets
        .iter()
        .map(|text| who::Resolved::new(text))
        .collect::<Result<Vec<_>, _>>()?;
    let survey = Survey::run(&args.options(OutsideHolders::Always))?;
    warn_about_fallback(&survey);
    let in_scope: std::collections::BTreeSet<usize> = survey
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.holders.iter().any(|&h| survey.fd(h).in_scope))
        .map(|(i, _)| i)
        .collect();
    let found: Vec<Vec<usize>> = targets
        .iter()
        .map(|target| {
            let mut files = target.matching(&survey);
            files.retain(|i| in_scope.contains(i));
            files
        })
        .collect();
    let mut out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    if json || dot {
        let mut keep: Vec<usize> = found.iter().flatten().copied().collect();
        for &i in found.iter().flatten() {
            for id in &survey.files[i].endpoints {
                keep.extend(survey.file_index(*id));
            }
        }
        let format = if json {
            report::Format::Json
        } else {
            report::Format::Dot
        };
        report::write(&mut out, &survey.select(&keep), format)?;
    } else {
        for (target, files) in targets.iter().zip(&found) {
            who::write_table(&mut out, &survey, target, files)?;
        }
    }
    out.flush()?;
    Ok(if found.iter().any(|files| !files.is_empty()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The man pages (fdid.1 and one per visible subcommand) and the shell completions.
fn generate(dir: &std::path::Path) -> Result<()> {
    use anyhow::Context as _;
    use clap::CommandFactory as _;
    let command = Cli::command();
    let man = dir.join("man");
    let completions = dir.join("completions");
    for made in [&man, &completions] {
        std::fs::create_dir_all(made).with_context(|| format!("creating {}", made.display()))?;
    }
    let mut pages = vec![("fdid".to_owned(), command.clone())];
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let name = format!("fdid-{}", sub.get_name());
        let page = sub.clone().name(name.clone());
        pages.push((name, page));
    }
    for (name, page) in pages {
        let path = man.join(format!("{name}.1"));
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        clap_mangen::Man::new(page).render(&mut file)?;
    }
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut command.clone(), "fdid", &completions)?;
    }
    Ok(())
}
