//! `fdid-bench reader ROUNDS`: `fdid watch`'s reader alone — the model and the JSON printer — fed
//! the events of ROUNDS churn rounds made up in memory, its lines written to nowhere. What the
//! watched churn costs in fdid's own CPU, without the kernel, the ring buffer or the machine's noise.

use std::time::Instant;

use anyhow::{Context as _, Result};
use fdid::watch::{
    event::{Event, SentFiles, WatchEvent, kind, via},
    model::{Change, Model},
    output::Printer,
};

/// One worker's events for `round`, in the order the programs say them: a pipe, a socketpair, a
/// dup, a fork, the dup sent to the child, received, closed, the child's exit, the parent's closes.
fn round(worker: u32, round: u32, into: &mut Vec<Event>) {
    let parent = 1000 + worker;
    let child = 100_000 + worker * 10_000 + round;
    // Distinct per worker and for a while, like the addresses of new files, then reused as the
    // kernel reuses freed ones.
    let file = |n: u64| (u64::from(worker) << 40) | (u64::from(round % 256) << 8) | n;
    let event = |pid: u32, kind: u8, fd: u32, file_hash: u64| WatchEvent {
        time_ns: u64::from(round) * 1000,
        file_hash,
        ino: file_hash & 0xffff_ffff,
        pid,
        tid: pid,
        fd,
        kind,
        via: via::OPEN,
        comm: *b"fdid-bench\0\0\0\0\0\0",
        ..WatchEvent::default()
    };
    for (fd, n) in [(3, 1), (4, 2), (5, 3), (6, 4)] {
        into.push(Event::Install(event(parent, kind::INSTALL, fd, file(n))));
    }
    let mut dup = event(parent, kind::INSTALL, 7, file(1));
    (dup.via, dup.aux) = (via::DUP, 3);
    into.push(Event::Install(dup));
    into.push(Event::Fork(event(parent, kind::FORK, child, 0)));
    let mut sent = SentFiles {
        count: 1,
        _pad: 0,
        fds: [0; 16],
        file_hashes: [0; 16],
    };
    (sent.fds[0], sent.file_hashes[0]) = (7, file(1));
    into.push(Event::Send(event(parent, kind::SEND, 5, 0), Box::new(sent)));
    let mut received = event(child, kind::INSTALL, 8, file(1));
    received.via = via::SCM_RIGHTS;
    into.push(Event::Install(received));
    into.push(Event::Close(event(child, kind::CLOSE, 8, file(1))));
    into.push(Event::Exit(event(child, kind::EXIT, 0, 0)));
    for (fd, n) in [(3, 1), (4, 2), (5, 3), (6, 4), (7, 1)] {
        into.push(Event::Close(event(parent, kind::CLOSE, fd, file(n))));
    }
}

/// Times the reader over ROUNDS rounds of 4 workers (each with stdin, stdout and stderr open).
pub fn run(args: &[String]) -> Result<()> {
    let rounds: u32 = args
        .first()
        .context("reader ROUNDS")?
        .parse()
        .context("a number")?;
    let mut events = Vec::new();
    for r in 0..rounds {
        for worker in 0..4 {
            round(worker, r, &mut events);
        }
    }
    let mut model = Model::default();
    let mut printer = Printer::new(std::io::sink(), true, |_| "fdid-bench".into());
    for worker in 0..4 {
        for fd in 0..3 {
            let mut stdio = WatchEvent {
                pid: 1000 + worker,
                fd,
                file_hash: u64::from(fd) + 1,
                kind: kind::INSTALL,
                via: via::OPEN,
                ..WatchEvent::default()
            };
            stdio.comm[..10].copy_from_slice(b"fdid-bench");
            model.apply_into(&Event::Install(stdio), &mut Vec::new());
        }
    }
    let (mut changes, mut lines) = (Vec::<Change>::new(), 0u64);
    let started = Instant::now();
    for event in &events {
        let header = event.header();
        printer.learn_comm(header.pid, &header.comm);
        if let Event::Fork(fork) = event {
            printer.learn_comm(fork.fd, &fork.comm);
        }
        changes.clear();
        model.apply_into(event, &mut changes);
        for change in &changes {
            printer.change(change)?;
        }
        lines += changes.len() as u64;
    }
    printer.flush()?;
    let elapsed = started.elapsed();
    println!(
        "{} events, {lines} lines in {:.1} ms: {:.0} ns an event, {:.0} ns a line",
        events.len(),
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / events.len() as f64,
        elapsed.as_nanos() as f64 / lines as f64
    );
    Ok(())
}
