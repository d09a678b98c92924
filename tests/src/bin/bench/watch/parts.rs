//! Where a watched churn's time goes, part by part, from counters that the machine's drift moves
//! less than wall time: the churn's own CPU (its processes' user and system time — fdid's programs
//! run inside it), the programs' own run time (`kernel.bpf_stats_enabled`, on for that one run)
//! and the CPU of fdid's reader.

use std::{collections::BTreeMap, fs, mem::MaybeUninit, path::Path, time::Duration};

use anyhow::Result;

/// CPU time (user + system) of every process this one has waited for, so far.
pub fn children_cpu() -> Duration {
    let mut usage = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the struct it is given (zeroed first, so it is initialised either
    // way).
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// CPU time of every thread of process `pid` so far (each thread's `schedstat`: ns on a CPU).
fn process_cpu(pid: u32) -> Duration {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let ns = tasks
        .flatten()
        .filter_map(|task| fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// Run time of the BPF programs process `pid` holds (`run_time_ns` in the fdinfo of its program
/// fds, counted while `kernel.bpf_stats_enabled` is on), each program once: an attached raw
/// tracepoint holds its program by a second fd.
fn programs_time(pid: u32) -> Duration {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Duration::ZERO;
    };
    let field = |info: &str, name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.trim().parse::<u64>().ok())
    };
    let programs: BTreeMap<u64, u64> = fds
        .flatten()
        .filter_map(|fd| fs::read_to_string(fd.path()).ok())
        .filter(|info| info.contains("prog_type:"))
        .filter_map(|info| Some((field(&info, "prog_id:")?, field(&info, "run_time_ns:")?)))
        .collect();
    Duration::from_nanos(programs.values().sum())
}

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// `kernel.bpf_stats_enabled` on while it lives (if it could be turned on), as it was after.
struct BpfStats {
    before: Option<String>,
}

impl BpfStats {
    fn on() -> Self {
        let before = fs::read_to_string(BPF_STATS)
            .ok()
            .filter(|_| fs::write(BPF_STATS, "1").is_ok());
        Self { before }
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(before) = &self.before {
            let _ = fs::write(BPF_STATS, before.trim());
        }
    }
}

/// One watched churn, part by part.
pub struct Parts {
    /// CPU of the churn's processes.
    pub churn_cpu: Duration,
    /// Of that, fdid's programs (`None`: the kernel's stats could not be turned on).
    pub programs: Option<Duration>,
    /// CPU of fdid's reader (the `fdid watch` process).
    pub reader_cpu: Duration,
}

/// Runs one more watched churn with the kernel's BPF stats on and measures its parts.
pub fn measure(fdid: &Path, exe: &Path, workers: u32, rounds: u32) -> Result<Parts> {
    let stats = BpfStats::on();
    let (parts, _) = super::while_watched(fdid, super::discard, |pid| {
        let (programs, reader) = (programs_time(pid), process_cpu(pid));
        let (_, churn_cpu) = super::time_churn(exe, workers, rounds)?;
        // The reader reads the ring on a timer: let it finish with the churn's last events.
        std::thread::sleep(Duration::from_millis(100));
        Ok(Parts {
            churn_cpu,
            programs: stats
                .before
                .is_some()
                .then(|| programs_time(pid).saturating_sub(programs)),
            reader_cpu: process_cpu(pid).saturating_sub(reader),
        })
    })?;
    Ok(parts)
}
