//! `fdid watch` under churn: workers that fork, dup and pass fds as fast as they can, timed alone and
//! with a whole-system `fdid watch --json` running; what watch printed is counted and its lost
//! events read from its summary.
//!
//! `fdid-bench churn WORKERS ROUNDS` is the workload ([`fdid_tests::churn`]): each worker, ROUNDS
//! times, makes a pipe and a socketpair, dups the pipe's read end, forks a child that receives the
//! dup over the socketpair (SCM_RIGHTS) and exits, waits for it and closes everything.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{ChildStdout, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::stats::{mean_interval, median, median_interval, quantile};

mod calls;
mod parts;

/// The workload itself (`fdid-bench churn WORKERS ROUNDS`): [`fdid_tests::churn::run`].
pub fn churn(args: &[String]) -> Result<()> {
    let number = |i: usize| -> Result<u32> {
        args.get(i)
            .context("churn WORKERS ROUNDS")?
            .parse()
            .context("a number")
    };
    fdid_tests::churn::run(number(0)?, number(1)?);
    Ok(())
}

/// Wall time of one churn run, and the CPU time its processes used.
fn time_churn(exe: &Path, workers: u32, rounds: u32) -> Result<(Duration, Duration)> {
    let (started, cpu) = (Instant::now(), parts::children_cpu());
    let status = Command::new(exe)
        .args(["churn", &workers.to_string(), &rounds.to_string()])
        .status()?;
    if !status.success() {
        bail!("the churn workload failed ({status})");
    }
    Ok((started.elapsed(), parts::children_cpu().saturating_sub(cpu)))
}

/// Runs `work` (given the watch's pid) while a whole-system `fdid watch --json` runs (from its
/// `ready` line to a Ctrl-C after `work`), its output read on a thread of its own by `consume`, as
/// a consumer (`wc -l`) would: what `work` and `consume` returned.
fn while_watched<T, C: Send + 'static>(
    fdid: &Path,
    consume: impl FnOnce(BufReader<ChildStdout>) -> C + Send + 'static,
    work: impl FnOnce(u32) -> Result<T>,
) -> Result<(T, C)> {
    let mut watch = Command::new(fdid)
        .args(["watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting fdid watch")?;
    let mut out = BufReader::new(watch.stdout.take().context("stdout")?);
    let mut ready = String::new();
    out.read_line(&mut ready)?;
    if !ready.contains("\"ready\"") {
        bail!("fdid watch: {ready}");
    }
    let reader = std::thread::spawn(move || consume(out));
    let done = work(watch.id());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(watch.id() as i32, libc::SIGINT) };
    watch.wait()?;
    let consumed = reader.join().expect("reader");
    Ok((done?, consumed))
}

/// One churn run with a whole-system `fdid watch --json` running: the run's time, the lines watch
/// printed and the events it lost.
fn time_watched(
    fdid: &Path,
    exe: &Path,
    workers: u32,
    rounds: u32,
) -> Result<((Duration, Duration), u64, u64)> {
    let (time, (count, summary)) =
        while_watched(fdid, count_lines, |_| time_churn(exe, workers, rounds))?;
    let summary: serde_json::Value =
        serde_json::from_slice(&summary).context("the summary line")?;
    let lost = summary["lost"].as_u64().context("lost in the summary")?;
    Ok((time, count, lost))
}

/// A consumer of watch's output that counts its lines as `wc -l` does (newlines found with memchr
/// in large reads, no line handled on its own), keeping the last for its summary: (lines, the last
/// line).
fn count_lines(mut out: impl Read) -> (u64, Vec<u8>) {
    let (mut count, mut buffer) = (0u64, vec![0u8; 1 << 16]);
    // The last whole line, and what followed the last newline so far.
    let (mut last, mut partial) = (Vec::new(), Vec::new());
    loop {
        let chunk = match out.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => &buffer[..n],
        };
        let Some(end) = chunk.iter().rposition(|&b| b == b'\n') else {
            partial.extend_from_slice(chunk);
            continue;
        };
        // As wc does (memchr): a byte-by-byte count took 17 ms of CPU a churn's output (46 MB),
        // 1% of the churn, on the cores the churn runs on.
        count += memchr::memchr_iter(b'\n', chunk).count() as u64;
        last.clear();
        match chunk[..end].iter().rposition(|&b| b == b'\n') {
            Some(newline) => last.extend_from_slice(&chunk[newline + 1..end]),
            None => {
                last.append(&mut partial);
                last.extend_from_slice(&chunk[..end]);
            }
        }
        partial.clear();
        partial.extend_from_slice(&chunk[end + 1..]);
    }
    (count, last)
}

/// A consumer of watch's output that reads and drops it.
fn discard(mut out: BufReader<ChildStdout>) -> std::io::Result<u64> {
    std::io::copy(&mut out, &mut std::io::sink())
}

/// A churn run alone and one watched, side by side: wall and CPU time of each.
struct Pair {
    alone: (Duration, Duration),
    watched: (Duration, Duration),
}

impl Pair {
    /// Watched wall time over time alone.
    fn ratio(&self) -> f64 {
        self.watched.0.as_secs_f64() / self.alone.0.as_secs_f64()
    }

    /// The same of the churn processes' own CPU time.
    fn cpu_ratio(&self) -> f64 {
        self.watched.1.as_secs_f64() / self.alone.1.as_secs_f64()
    }
}

/// The pairs of one session, or of several one after the other.
#[derive(Default)]
struct Session {
    pairs: Vec<Pair>,
    /// Lines watch printed in the last run; events lost in all of them.
    lines: u64,
    lost: u64,
}

impl Session {
    /// Runs `runs` pairs in alternating order (alone first, then watched first), as the machine's
    /// speed drifts.
    fn run(fdid: &Path, exe: &Path, (workers, rounds): (u32, u32), runs: usize) -> Result<Self> {
        let mut session = Self::default();
        for run in 0..runs {
            let (alone, (watched, count, lost)) = if run % 2 == 0 {
                let alone = time_churn(exe, workers, rounds)?;
                (alone, time_watched(fdid, exe, workers, rounds)?)
            } else {
                let result = time_watched(fdid, exe, workers, rounds)?;
                (time_churn(exe, workers, rounds)?, result)
            };
            session.pairs.push(Pair { alone, watched });
            session.lines = count;
            session.lost += lost;
        }
        Ok(session)
    }

    /// Adds `later`'s pairs after this session's.
    fn append(&mut self, later: Self) {
        self.pairs.extend(later.pairs);
        self.lines = later.lines;
        self.lost += later.lost;
    }

    fn ratios(&self) -> Vec<f64> {
        self.pairs.iter().map(Pair::ratio).collect()
    }

    /// The median slowdown and its 95% confidence interval, in percent.
    fn slowdown(&self) -> (f64, f64, f64) {
        let (low, high) = median_interval(self.ratios());
        let percent = |ratio: f64| (ratio - 1.0) * 100.0;
        (percent(median(self.ratios())), percent(low), percent(high))
    }
}

/// The goal: a watched churn takes at most this much longer, in percent.
const GOAL_PERCENT: f64 = 10.0;

/// Whether the goal is shown: all of the pooled median's 95% interval (its top, `high`) at or below
/// it, and — with several sessions — all of the 95% interval of the sessions' mean median, taken
/// from their own spread (`sessions`: each one's median), so that the machine's drift between
/// sessions counts as well as the pairs' scatter within one.
fn goal_shown(high: f64, sessions: &[f64]) -> bool {
    high <= GOAL_PERCENT && mean_interval(sessions).is_none_or(|(_, _, high)| high <= GOAL_PERCENT)
}

/// Runs `sessions` sessions of `runs` pairs one after the other — a churn run alone and a watched
/// one side by side, in alternating order — and appends its section to the report. The slowdown is
/// the median of the pairs' ratios; with several sessions, of all pairs, and each session's beside
/// it, so that drift of the machine between sessions shows.
pub fn section(fdid: &Path, runs: usize, sessions: usize, report: &mut String) -> Result<()> {
    let exe = std::env::current_exe()?;
    let (workers, rounds) = (4, 2000);
    let (mut each, mut all) = (Vec::new(), Session::default());
    for _ in 0..sessions {
        let session = Session::run(fdid, &exe, (workers, rounds), runs)?;
        let (slowdown, low, high) = session.slowdown();
        eprintln!(
            "watch under churn, session {} of {sessions}: {slowdown:+.1}% (95% {low:+.1} … {high:+.1}%)",
            each.len() + 1
        );
        each.push((slowdown, low, high));
        all.append(session);
    }
    let pairs = all.pairs.len();
    let times = |of: fn(&Pair) -> Duration| median(all.pairs.iter().map(of).collect());
    let (alone, watched, cpu_alone) = (
        times(|pair| pair.alone.0),
        times(|pair| pair.watched.0),
        times(|pair| pair.alone.1),
    );
    // The pairs' spread: the machine's drift moves single pairs by more than watch costs.
    let (quarter, three_quarters) = (
        (quantile(all.ratios(), 0.25) - 1.0) * 100.0,
        (quantile(all.ratios(), 0.75) - 1.0) * 100.0,
    );
    // How far the median itself can be trusted (pairs taken as independent; the sessions' spread
    // is judged below).
    let (slowdown, low, high) = all.slowdown();
    let cpu_growth = (median(all.pairs.iter().map(Pair::cpu_ratio).collect()) - 1.0) * 100.0;
    let (lines, lost) = (all.lines, all.lost);
    let sessions_said = if sessions > 1 {
        format!(" in {sessions} sessions of {runs} one after the other")
    } else {
        String::new()
    };
    writeln!(
        report,
        "\n## fdid watch under churn\n\n{workers} workers × {rounds} rounds (pipe, socketpair, dup, \
         fork, SCM_RIGHTS to the child, exit, close), {pairs} pairs of runs{sessions_said}, alone \
         and watched in alternating order; `fdid watch --json` on the whole system, its output read \
         by a consumer thread; the slowdown is the median of the pairs' ratios, and so is the \
         growth of the CPU time the churn's own processes use (fdid's programs run inside them; \
         its reader does not). The middle half of the pairs slowed by {quarter:+.1} … \
         {three_quarters:+.1}%; the median slowdown lies in {low:+.1} … {high:+.1}% with 95% \
         confidence.\n\n\
         | | churn wall time | slowdown | churn's own CPU | watch lines (last run) | lost events (all runs) |\n\
         |---|---:|---:|---:|---:|---:|\n\
         | alone | {:.2} s | | {:.2} s | | |\n\
         | with fdid watch | {:.2} s | {slowdown:+.1}% | {cpu_growth:+.1}% | {lines} | {lost} |",
        alone.as_secs_f64(),
        cpu_alone.as_secs_f64(),
        watched.as_secs_f64(),
    )?;
    let medians: Vec<f64> = each.iter().map(|&(median, ..)| median).collect();
    if let Some((mean, low, high)) = mean_interval(&medians) {
        writeln!(
            report,
            "\n| session | median slowdown | 95% confidence |\n|---:|---:|---:|"
        )?;
        for (i, (slowdown, low, high)) in each.iter().enumerate() {
            writeln!(
                report,
                "| {} | {slowdown:+.1}% | {low:+.1} … {high:+.1}% |",
                i + 1
            )?;
        }
        writeln!(
            report,
            "\nThe sessions' medians average {mean:+.1}%, in {low:+.1} … {high:+.1}% with 95% \
             confidence from their own spread (Student's t: the machine's drift between sessions \
             counts, not only the pairs' scatter)."
        )?;
    }
    writeln!(
        report,
        "\nThe goal, ≤ {GOAL_PERCENT}%: {}.",
        if goal_shown(high, &medians) {
            "shown (all of the pooled median's interval below it, and of the sessions' mean's)"
        } else {
            "not shown"
        }
    )?;
    let parts = parts::measure(fdid, &exe, workers, rounds)?;
    writeln!(
        report,
        "\nOne more watched run, part by part: the churn's processes used {:.0} ms of CPU, {} \
         fdid's reader {:.0} ms.",
        parts.churn_cpu.as_secs_f64() * 1e3,
        match parts.programs {
            Some(programs) => format!(
                "fdid's programs {:.0} ms of it (`kernel.bpf_stats_enabled` on for that run);",
                programs.as_secs_f64() * 1e3
            ),
            None => "(fdid's programs' own time unknown: `kernel.bpf_stats_enabled` could not be \
                     turned on);"
                .to_owned(),
        },
        parts.reader_cpu.as_secs_f64() * 1e3
    )?;
    eprintln!(
        "watch under churn: alone {alone:?}, watched {watched:?} ({slowdown:+.1}%, 95% confidence \
         {low:+.1} … {high:+.1}%; middle half of the pairs {quarter:+.1} … {three_quarters:+.1}%), \
         {lines} lines, {lost} lost"
    );
    calls::section(fdid, report)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{count_lines, goal_shown};

    #[test]
    fn the_goal_is_shown_only_when_the_pairs_and_the_sessions_spread_both_keep_below_it() {
        // Twelve sessions near 8%: both intervals below 10%.
        let steady = [9.1, 7.9, 9.4, 7.3, 7.7, 7.4, 8.2, 8.2, 6.7, 7.5, 7.9, 8.4];
        assert!(goal_shown(9.3, &steady));
        // The pairs' interval below 10% does not outweigh sessions that drift: four of them
        // spread so that their mean may lie above it.
        assert!(!goal_shown(9.3, &[7.7, 7.4, 11.5, 8.2]));
        // Nor do steady sessions outweigh a pooled interval reaching above it.
        assert!(!goal_shown(10.3, &steady));
        // One session: the pairs' interval alone.
        assert!(goal_shown(9.8, &[8.3]));
        assert!(!goal_shown(10.1, &[8.3]));
    }

    /// Hands out its bytes a few at a time, as a pipe may.
    struct Trickle<'a>(&'a [u8], usize);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, into: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(self.0.len()).min(into.len());
            into[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_summary_is_the_last_line_however_the_reads_split_it() {
        let output = b"{\"event\": \"ready\"}\n{\"event\": \"share\"}\n{\"event\": \"summary\", \"lost\": 0}\n";
        for step in 1..=output.len() {
            let (count, last) = count_lines(Trickle(output, step));
            assert_eq!(count, 3, "reads of {step} bytes");
            assert_eq!(
                last, b"{\"event\": \"summary\", \"lost\": 0}",
                "reads of {step} bytes"
            );
        }
    }
}
