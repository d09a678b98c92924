//! `fdid watch`: a survey, then every change to the fd tables in scope as it happens, from BPF
//! tracing programs, with how each share came to be.
//!
//! Order of work, so that nothing falls between the survey and the stream: the programs are
//! attached first and their events read from then on; the survey walks meanwhile; events stamped
//! before the walk began are in the survey already and dropped, later ones are applied to the
//! survey's state (one the walk already saw changes nothing and prints nothing). Then `ready`, and
//! the stream until Ctrl-C, `--duration` or a closed pipe; then the summary. Events lost to a full
//! ring buffer are counted and said.

pub mod event;
pub mod model;
pub mod output;
pub(crate) mod syscalls;
pub mod tracer;

use std::{io::Write, os::fd::AsRawFd, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    collect::bpf::{self, BpfError, BpfOptions},
    survey::{Scope, Survey, SurveyError, SurveyOptions},
};
use event::{Event, EventError};
use model::{Change, Model};
use output::Printer;
use tracer::{TraceScope, Tracer, TracerError};

/// How often the ring buffer is read (the programs never wake the reader: a wakeup costs the
/// traced processes more than the event): the most an event waits to be printed. Each read costs
/// the reader about 0.15 ms besides its events (waking, a cold cache): read every 5 ms, a watched
/// churn took it 89 ms of CPU instead of 62; every 50 ms, 46 instead of 51.5 (every 20 ms).
const WAKE_INTERVAL: Duration = Duration::from_millis(50);

/// How long a release told while fds still hold the description waits for the calls that dropped
/// them, and a receipt of a passed file for its send (each told microseconds later, but maybe in a
/// later read of the ring, and later still where the sender is preempted at its syscall's exit).
const WAIT_NS: u64 = 10 * WAKE_INTERVAL.as_nanos() as u64;

/// What to watch and how to print it.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub scope: Scope,
    pub json: bool,
    /// Stop after this long (else at Ctrl-C or a closed pipe).
    pub duration: Option<Duration>,
    pub bpf: BpfOptions,
    /// Ring buffer size in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Key(#[from] BpfError),
    #[error(transparent)]
    Tracer(#[from] TracerError),
    #[error("the initial survey")]
    Survey(#[source] SurveyError),
    #[error("the initial survey stopped")]
    SurveyTask(#[source] tokio::task::JoinError),
    #[error("reading the ring buffer")]
    Ring(#[source] std::io::Error),
    #[error("a malformed event")]
    Event(#[from] EventError),
    #[error("writing the output")]
    Output(#[source] std::io::Error),
}

/// CLOCK_MONOTONIC in ns: the clock of `bpf_ktime_get_ns`.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Watches until the end `options` set, writing to `out`; Ctrl-C ends it too (with the summary).
pub async fn run(options: &WatchOptions, out: impl Write) -> Result<(), WatchError> {
    let mut bpf_options = options.bpf.clone();
    bpf_options.hash_key = Some(bpf::hash_key(&options.bpf)?);
    bpf_options.watch = Some(bpf::WatchLoad {
        ring_bytes: options.ring_bytes,
        scoped: !options.scope.is_system(),
    });
    let trace_scope = TraceScope {
        pids: if options.scope.is_system() {
            Vec::new()
        } else if options.scope.tree {
            crate::proc::with_descendants(&options.scope.pids)
        } else {
            options.scope.pids.clone()
        },
        tree: options.scope.tree,
    };
    let (tracer, ring) = Tracer::attach(&bpf_options, &trace_scope)?;
    // SAFETY: the ring buffer's map fd stays open, the same description, for as long as the
    // RingBuf that owns it lives, which is as long as the AsyncFd holding it.
    let mut ring = unsafe { AsyncFd::register_with_interest(RingFd(ring), Interest::READABLE) }
        .map_err(|error| WatchError::Ring(error.into()))?;

    // The survey, while the events it races are kept.
    let walk_began = now_ns();
    let mut survey_options = SurveyOptions::new(options.scope.clone());
    survey_options.bpf = bpf_options.clone();
    survey_options.bpf.watch = None;
    let mut survey_task = tokio::task::spawn_blocking(move || Survey::run(&survey_options));
    let mut early = Vec::new();
    let survey = loop {
        tokio::select! {
            done = &mut survey_task => {
                break done.map_err(WatchError::SurveyTask)?.map_err(WatchError::Survey)?;
            }
            ready = ring.readable_mut() => {
                let mut guard = ready.map_err(WatchError::Ring)?;
                guard.clear_ready();
                drain(&mut guard.get_inner_mut().0, &mut early)?;
            }
        }
    };
    drain(&mut ring.get_mut().0, &mut early)?;

    let mut model = Model::from_survey(&survey);
    let mut printer = Printer::new(out, options.json, crate::proc::comm);
    let mut stream = Stream {
        model: &mut model,
        printer: &mut printer,
        own_pid: std::process::id(),
        changes: Vec::new(),
    };
    // Events that raced the walk: what the walk missed joins the state `ready` stands for.
    for event in early.iter().filter(|e| e.header().time_ns >= walk_began) {
        stream.absorb(event);
    }
    // Not printed either: releases and receipts among them still waiting.
    stream.model.expire_held(u64::MAX, &mut stream.changes);
    let processes = survey.processes_in_scope().len();
    let fds = survey.fds_in_scope();
    // Registered before `ready` is said (a reader may stop the watch as soon as it reads it), and
    // once: a Ctrl-C while a batch is printed is not lost. SIGTERM ends it the same way (with the
    // summary).
    let signal = |kind| tokio::signal::unix::signal(kind).map_err(WatchError::Ring);
    let mut interrupted = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut terminated = signal(tokio::signal::unix::SignalKind::terminate())?;
    if !ok(stream
        .printer
        .ready(now_ns(), processes, fds, &tracer.unfollowed))?
    {
        return Ok(());
    }

    let deadline = async {
        match options.duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(WAKE_INTERVAL);
    let mut lost_said = 0;
    let mut events = Vec::new();
    loop {
        events.clear();
        tokio::select! {
            ready = ring.readable_mut() => {
                let mut guard = ready.map_err(WatchError::Ring)?;
                // The programs write without waking the reader (the timer below reads), so this
                // fires only if one ever asks for a wakeup. Cleared before reading: data that
                // comes meanwhile wakes the next wait.
                guard.clear_ready();
                drain(&mut guard.get_inner_mut().0, &mut events)?;
            }
            _ = tick.tick() => drain(&mut ring.get_mut().0, &mut events)?,
            _ = interrupted.recv() => break,
            _ = terminated.recv() => break,
            () = &mut deadline => break,
        }
        let mut open = stream.apply_all(&events, now_ns().saturating_sub(WAIT_NS))?;
        let lost = tracer.lost();
        if open && lost > lost_said {
            lost_said = lost;
            open = ok(stream.printer.lost(now_ns(), lost))?;
        }
        if !open {
            return Ok(());
        }
    }
    events.clear();
    drain(&mut ring.get_mut().0, &mut events)?;
    // The end: nothing waits any more.
    if !stream.apply_all(&events, u64::MAX)? {
        return Ok(());
    }
    let (lost, skipped) = (tracer.lost(), tracer.skipped());
    ok(stream
        .printer
        .summary(now_ns(), lost, skipped, &tracer.unfollowed))?;
    drop(tracer);
    Ok(())
}

/// The model and the printer, fed one event at a time.
struct Stream<'a, W: Write> {
    model: &'a mut Model,
    printer: &'a mut Printer<W>,
    /// fdid's own fds are not watched.
    own_pid: u32,
    /// What one event changed (kept to reuse its allocation).
    changes: Vec<Change>,
}

impl<W: Write> Stream<'_, W> {
    /// What the event says processes are called: its own, and a forked child's (its parent's name
    /// until it execs).
    fn learn_comms(&mut self, event: &Event) {
        let header = event.header();
        self.printer.learn_comm(header.pid, &header.comm);
        if let Event::Fork(fork) = event {
            self.printer.learn_comm(fork.fd, &fork.comm);
        }
    }

    /// Applies one event without printing.
    fn absorb(&mut self, event: &Event) {
        if event.header().pid != self.own_pid {
            self.learn_comms(event);
            self.changes.clear();
            self.model.apply_into(event, &mut self.changes);
        }
    }

    /// Applies and prints a batch of events, and what waited since before `waited_ns` for calls
    /// not told (see `Model::expire_held`), then writes it out; `false` once the output is closed.
    fn apply_all(&mut self, events: &[Event], waited_ns: u64) -> Result<bool, WatchError> {
        for event in events {
            if !self.apply(event)? {
                return Ok(false);
            }
        }
        self.changes.clear();
        self.model.expire_held(waited_ns, &mut self.changes);
        if !self.print_changes()? {
            return Ok(false);
        }
        ok(self.printer.flush())
    }

    /// Prints what the model said changed; `false` once the output is closed.
    fn print_changes(&mut self) -> Result<bool, WatchError> {
        for change in &self.changes {
            if !ok(self.printer.change(change))? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Applies and prints one event; `false` once the output is closed.
    fn apply(&mut self, event: &Event) -> Result<bool, WatchError> {
        let header = event.header();
        if header.pid == self.own_pid {
            return Ok(true);
        }
        self.learn_comms(event);
        self.changes.clear();
        self.model.apply_into(event, &mut self.changes);
        self.print_changes()
    }
}

/// `Ok(false)` for a closed pipe (the reader went: stop quietly), the error otherwise.
fn ok(written: std::io::Result<()>) -> Result<bool, WatchError> {
    match written {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(WatchError::Output(error)),
    }
}

/// Decodes every event the ring buffer holds now.
fn drain(ring: &mut RingBuf<MapData>, into: &mut Vec<Event>) -> Result<(), WatchError> {
    while let Some(item) = ring.next() {
        into.push(event::decode(&item)?);
    }
    Ok(())
}

/// The ring buffer as something tokio can wait on.
struct RingFd(RingBuf<MapData>);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}
