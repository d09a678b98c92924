//! `fdid`: which file descriptors share one open file description. Thin CLI over the `fdid` library.

use std::{
    io::{self, BufWriter, Write},
    process::ExitCode,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};
use fdid::{
    collect::{self, Collection, Target, bpf::BpfOptions},
    group, proc, report,
};

#[derive(Parser)]
#[command(name = "fdid", version, about = "Which file descriptors share one open file description")]
struct Cli {
    /// Survey only this process (repeatable); without it, every process.
    #[arg(long = "pid", value_name = "PID", allow_hyphen_values = true, value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pids: Vec<u32>,
    /// Also list descriptions held by a single fd.
    #[arg(long)]
    all: bool,
    /// Where the records come from.
    #[arg(long, value_enum, default_value_t = CollectorChoice::Bpf)]
    collector: CollectorChoice,
    /// Show debug messages, including the BPF program's own log.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CollectorChoice {
    /// The BPF task_file iterator.
    Bpf,
    /// /proc/PID/fd and fdinfo (slow; groups with kcmp).
    Procfs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::new()
        .filter_level(if cli.verbose { log::LevelFilter::Debug } else { log::LevelFilter::Warn })
        .format_timestamp(None)
        .init();
    // The survey blocks in read(2) on the iterator; run it off the runtime so Ctrl-C is answered.
    let survey = tokio::task::spawn_blocking(move || run(&cli));
    tokio::select! {
        joined = survey => match joined {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(error)) if is_broken_pipe(&error) => ExitCode::SUCCESS,
            Ok(Err(error)) => {
                eprintln!("fdid: error: {error:#}");
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

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<io::Error>()
        .is_some_and(|error| error.kind() == io::ErrorKind::BrokenPipe)
}

fn run(cli: &Cli) -> Result<()> {
    let target = target(&cli.pids)?;
    let collection = collect(cli, &target)?;
    let descriptions = group::group(&collection);
    let mut out = BufWriter::new(io::stdout().lock());
    report::write_table(&mut out, &collection, &descriptions, cli.all)?;
    out.flush()?;
    Ok(())
}

fn target(pids: &[u32]) -> Result<Target> {
    if pids.is_empty() {
        return Ok(Target::All);
    }
    for &pid in pids {
        match proc::pid_kind(pid) {
            proc::PidKind::Process => {}
            proc::PidKind::Thread { tgid } => {
                bail!("{pid} is a thread of process {tgid}, not a process: use --pid {tgid}")
            }
            proc::PidKind::Missing => bail!("no process with pid {pid}"),
        }
    }
    let mut pids = pids.to_vec();
    pids.sort_unstable();
    pids.dedup();
    Ok(Target::Pids(pids))
}

fn collect(cli: &Cli, target: &Target) -> Result<Collection> {
    match cli.collector {
        CollectorChoice::Bpf => {
            let options = BpfOptions { forward_logs: cli.verbose, ..BpfOptions::default() };
            collect::bpf::collect(target, &options).context("BPF collector")
        }
        CollectorChoice::Procfs => collect::procfs::collect(target).context("procfs collector"),
    }
}
