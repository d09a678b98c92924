//! The command line's shared arguments: what to survey and how, for every subcommand that surveys.

use clap::{Args, ValueEnum};
use fdid::{
    Scope, SurveyOptions, VerifyMode,
    collect::bpf::BpfOptions,
    survey::{CollectorKind, OutsideHolders},
};

#[derive(Args, Clone)]
pub struct SurveyArgs {
    /// Survey only this process (repeatable); without it, every process.
    #[arg(long = "pid", value_name = "PID", allow_hyphen_values = true,
          value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pub pids: Vec<u32>,
    /// With --pid: include the processes' descendants.
    #[arg(long, requires = "pids")]
    pub tree: bool,
    /// Which fds to confirm with kcmp(KCMP_FILE).
    #[arg(long, value_enum, default_value_t = VerifyArg::Ambiguous)]
    pub verify: VerifyArg,
    /// Where the records come from (auto: BPF, or procfs with a warning when BPF cannot be used).
    #[arg(long, value_enum, default_value_t = CollectorArg::Auto)]
    pub collector: CollectorArg,
    /// The kernel BTF to find struct offsets in.
    #[arg(long, value_name = "PATH", default_value = fdid::btf::VMLINUX_BTF)]
    pub btf: std::path::PathBuf,
    /// Show debug messages, including the BPF program's own log.
    #[arg(short, long)]
    pub verbose: bool,
    /// Test knob: keep only this many bits of the pointer hash, to force collisions.
    #[arg(long, hide = true, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub hash_bits: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyArg {
    /// Confirm only ambiguous matches (see the README).
    Ambiguous,
    /// Confirm every fd that joins another.
    All,
    /// Trust the pointer hashes.
    None,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CollectorArg {
    /// BPF, falling back to procfs (with a warning) when BPF cannot be used.
    Auto,
    /// The BPF task_file iterator only: an error when it cannot be used.
    Bpf,
    /// /proc/PID/fd and fdinfo (slow; groups with kcmp).
    Procfs,
}

impl SurveyArgs {
    pub fn options(&self, outside: OutsideHolders) -> SurveyOptions {
        let scope = if self.tree {
            Scope::trees(self.pids.clone())
        } else {
            Scope::pids(self.pids.clone())
        };
        let mut options = SurveyOptions::new(scope);
        options.verify = match self.verify {
            VerifyArg::Ambiguous => VerifyMode::Ambiguous,
            VerifyArg::All => VerifyMode::All,
            VerifyArg::None => VerifyMode::None,
        };
        options.collector = match self.collector {
            CollectorArg::Auto => CollectorKind::Auto,
            CollectorArg::Bpf => CollectorKind::Bpf,
            CollectorArg::Procfs => CollectorKind::Procfs,
        };
        options.bpf = BpfOptions {
            forward_logs: self.verbose,
            btf_path: self.btf.clone(),
            hash_mask: match self.hash_bits {
                Some(bits) if bits < 64 => (1u64 << bits) - 1,
                _ => u64::MAX,
            },
            ..BpfOptions::default()
        };
        options.outside = outside;
        options
    }
}

/// What `fdid watch` follows and how it prints.
#[derive(Args, Clone)]
pub struct WatchArgs {
    /// Follow only this process (repeatable); without it, every process.
    #[arg(long = "pid", value_name = "PID", allow_hyphen_values = true,
          value_parser = clap::value_parser!(u32).range(1..=i32::MAX as i64))]
    pub pids: Vec<u32>,
    /// With --pid: the processes' descendants too, present and future.
    #[arg(long, requires = "pids")]
    pub tree: bool,
    /// One JSON object per line; the first, `"event": "ready"`, once the survey is taken.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many seconds (else at Ctrl-C, or when the output is closed).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub duration: Option<std::time::Duration>,
    /// Ring buffer size in MiB (a power of two).
    #[arg(long, value_name = "MIB", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub ring_mib: u32,
    /// The kernel BTF to find struct offsets and traced functions in.
    #[arg(long, value_name = "PATH", default_value = fdid::btf::VMLINUX_BTF)]
    pub btf: std::path::PathBuf,
    /// Show debug messages (which programs attached, the BPF program's own log).
    #[arg(short, long)]
    pub verbose: bool,
}

fn positive_seconds(text: &str) -> Result<std::time::Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds.is_finite() => {
            Ok(std::time::Duration::from_secs_f64(seconds))
        }
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}

impl WatchArgs {
    pub fn options(&self) -> Result<fdid::watch::WatchOptions, String> {
        if !self.ring_mib.is_power_of_two() {
            return Err(format!(
                "--ring-mib {} is not a power of two",
                self.ring_mib
            ));
        }
        Ok(fdid::watch::WatchOptions {
            scope: if self.tree {
                Scope::trees(self.pids.clone())
            } else {
                Scope::pids(self.pids.clone())
            },
            json: self.json,
            duration: self.duration,
            bpf: BpfOptions {
                forward_logs: self.verbose,
                btf_path: self.btf.clone(),
                ..BpfOptions::default()
            },
            ring_bytes: self.ring_mib << 20,
        })
    }
}
