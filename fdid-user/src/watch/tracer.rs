//! Loads and attaches `fdid watch`'s tracing programs (from the iterator's object, with its config:
//! offsets and hash key), fills the scope map, and hands out the ring buffer. What this kernel lacks
//! is said, not fatal — except the syscall program, without which nothing can be followed.

use aya::{
    Btf, Ebpf,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, FEntry, ProgramError},
};
use fdid_ebpf::watch::{
    Attach, EVENTS_MAP, LOST_MAP, PROGRAMS, Program, SCOPE_MAP, SCOPE_SETTINGS, SCOPE_TREE,
};

use std::os::fd::AsFd as _;

use crate::collect::bpf::{BpfCollector, BpfError, BpfOptions, sys::recursion_misses};

#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    #[error(transparent)]
    Load(#[from] BpfError),
    #[error("reading the kernel's BTF for the tracing programs")]
    Btf(#[source] aya::BtfError),
    #[error("cannot follow new fds on this kernel: {program} ({target}) did not attach")]
    Essential {
        program: &'static str,
        target: &'static str,
        #[source]
        error: ProgramError,
    },
    #[error("the object has no map {0}")]
    NoMap(&'static str),
    #[error("setting up map {name}")]
    Map {
        name: &'static str,
        #[source]
        error: aya::maps::MapError,
    },
}

/// What cannot be followed on this kernel, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unfollowed {
    /// What goes unseen, in words.
    pub what: &'static str,
    pub target: &'static str,
    pub reason: String,
}

/// Which processes to follow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceScope {
    /// Empty: every process.
    pub pids: Vec<u32>,
    /// A forked child of a process in scope joins it.
    pub tree: bool,
}

/// The attached programs (detached when dropped, with the object).
pub struct Tracer {
    /// The object the programs and maps belong to: dropping it detaches and frees them.
    _object: BpfCollector,
    lost: PerCpuArray<MapData, u64>,
    /// The attached programs, whose runs the kernel may skip (see [`Tracer::skipped`]).
    programs: Vec<std::os::fd::OwnedFd>,
    pub unfollowed: Vec<Unfollowed>,
}

impl Tracer {
    /// Loads the object with the tracer's map sizes and attaches every program this kernel has;
    /// returns it and the ring buffer its events arrive in.
    pub fn attach(
        options: &BpfOptions,
        scope: &TraceScope,
    ) -> Result<(Self, RingBuf<MapData>), TracerError> {
        let mut collector = BpfCollector::load(options, None)?;
        let btf = Btf::parse_file(&options.btf_path, aya::Endianness::default())
            .map_err(TracerError::Btf)?;
        let ebpf = collector.ebpf_mut();
        let mut unfollowed = Vec::new();
        let mut programs = Vec::new();
        for program in &PROGRAMS {
            let attached = attach_one(ebpf, &btf, program);
            if attached.is_ok()
                && let Some(fd) = ebpf
                    .program(program.name)
                    .and_then(|found| found.fd().ok())
                    .and_then(|fd| fd.as_fd().try_clone_to_owned().ok())
            {
                programs.push(fd);
            }
            if let Err(error) = attached {
                let target = program.target;
                if program.essential {
                    return Err(TracerError::Essential {
                        program: program.name,
                        target,
                        error,
                    });
                }
                log::debug!("{} ({target}) not attached: {error}", program.name);
                if !unfollowed
                    .iter()
                    .any(|u: &Unfollowed| u.what == program.follows)
                {
                    unfollowed.push(Unfollowed {
                        what: program.follows,
                        target,
                        reason: crate::error_line(&error),
                    });
                }
            }
        }
        if !scope.pids.is_empty() {
            let map = ebpf
                .map_mut(SCOPE_MAP)
                .ok_or(TracerError::NoMap(SCOPE_MAP))?;
            let mut map: BpfHashMap<_, u32, u32> =
                BpfHashMap::try_from(map).map_err(|error| TracerError::Map {
                    name: SCOPE_MAP,
                    error,
                })?;
            let settings = if scope.tree { SCOPE_TREE } else { 0 };
            for (key, value) in scope
                .pids
                .iter()
                .map(|pid| (*pid, 1))
                .chain([(SCOPE_SETTINGS, settings)])
            {
                map.insert(&key, &value, 0)
                    .map_err(|error| TracerError::Map {
                        name: SCOPE_MAP,
                        error,
                    })?;
            }
        }
        let take = |ebpf: &mut Ebpf, name: &'static str| {
            ebpf.take_map(name).ok_or(TracerError::NoMap(name))
        };
        let events =
            RingBuf::try_from(take(ebpf, EVENTS_MAP)?).map_err(|error| TracerError::Map {
                name: EVENTS_MAP,
                error,
            })?;
        let lost =
            PerCpuArray::try_from(take(ebpf, LOST_MAP)?).map_err(|error| TracerError::Map {
                name: LOST_MAP,
                error,
            })?;
        Ok((
            Self {
                _object: collector,
                lost,
                programs,
                unfollowed,
            },
            events,
        ))
    }

    /// Events the programs could not write (ring buffer full), so far.
    pub fn lost(&self) -> u64 {
        self.lost
            .get(&0, 0)
            .map(|values| values.iter().sum())
            .unwrap_or(0)
    }

    /// Runs of a program the kernel skipped because it was already running on that CPU, so far:
    /// on kernels whose syscall tracepoints are preemptible, another task's syscall while one is
    /// preempted inside the program goes unseen.
    pub fn skipped(&self) -> u64 {
        self.programs
            .iter()
            .filter_map(|fd| recursion_misses(fd.as_fd()).ok())
            .sum()
    }
}

/// Loads `program` and attaches it where it says.
fn attach_one(ebpf: &mut Ebpf, btf: &Btf, program: &Program) -> Result<(), ProgramError> {
    let found = ebpf
        .program_mut(program.name)
        .ok_or(ProgramError::UnexpectedProgramType)?;
    match program.attach {
        Attach::FEntry => {
            let found: &mut FEntry = found.try_into()?;
            found.load(program.target, btf)?;
            found.attach()?;
        }
        Attach::BtfTracepoint => {
            let found: &mut BtfTracePoint = found.try_into()?;
            found.load(program.target, btf)?;
            found.attach()?;
        }
    }
    Ok(())
}
