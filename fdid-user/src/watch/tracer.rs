//! Loads and attaches `fdid watch`'s tracing programs (from the iterator's object, with its config:
//! offsets and hash key), fills the scope map, and hands out the ring buffer. What this kernel lacks
//! is said, not fatal — except the two programs without which nothing can be followed.

use aya::{
    Btf, Ebpf,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, FEntry, ProgramError, TracePoint},
};
use fdid_ebpf::watch::{
    Attach, EVENTS_MAP, LOST_MAP, PROGRAMS, Program, SCOPE_MAP, SCOPE_SETTINGS, SCOPE_TREE,
};

use crate::collect::bpf::{BpfCollector, BpfError, BpfOptions};

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
    /// tracefs, when this tracer had to mount it (unmounted after the programs are gone).
    _tracefs: Option<Tracefs>,
    lost: PerCpuArray<MapData, u64>,
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
        let tracefs = Tracefs::mount_if_missing();
        for program in &PROGRAMS {
            if let Err((target, error)) = attach_one(ebpf, &btf, program) {
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
                _tracefs: tracefs,
                lost,
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
}

/// Loads `program` and attaches it to each of its targets this kernel has; fails when it attaches to
/// none, with the last target tried and why.
fn attach_one(
    ebpf: &mut Ebpf,
    btf: &Btf,
    program: &Program,
) -> Result<(), (&'static str, ProgramError)> {
    let targets = program.targets;
    let first = targets.first().copied().unwrap_or("");
    let found = ebpf
        .program_mut(program.name)
        .ok_or((first, ProgramError::UnexpectedProgramType))?;
    match program.attach {
        Attach::FEntry => {
            let program: &mut FEntry = found.try_into().map_err(|e| (first, e))?;
            program.load(first, btf).map_err(|e| (first, e))?;
            program.attach().map_err(|e| (first, e))?;
        }
        Attach::BtfTracepoint => {
            let program: &mut BtfTracePoint = found.try_into().map_err(|e| (first, e))?;
            program.load(first, btf).map_err(|e| (first, e))?;
            program.attach().map_err(|e| (first, e))?;
        }
        Attach::Syscall => {
            let program: &mut TracePoint = found.try_into().map_err(|e| (first, e))?;
            program.load().map_err(|e| (first, e))?;
            let mut last = None;
            let mut attached = 0;
            for target in targets {
                // Syscalls an architecture lacks (arm64 has no open, pipe, dup2…) have no tracepoint.
                match program.attach("syscalls", target) {
                    Ok(_) => attached += 1,
                    Err(error) => last = Some((*target, error)),
                }
            }
            if attached == 0 {
                return Err(last.unwrap_or((first, ProgramError::UnexpectedProgramType)));
            }
        }
    }
    Ok(())
}

/// tracefs mounted by fdid at its usual place, where nothing had mounted it (syscall tracepoints
/// are attached through it); unmounted when dropped.
pub struct Tracefs;

const TRACEFS: &std::ffi::CStr = c"/sys/kernel/tracing";

impl Tracefs {
    fn mount_if_missing() -> Option<Self> {
        let mounted = [
            "/sys/kernel/tracing/events",
            "/sys/kernel/debug/tracing/events",
        ]
        .iter()
        .any(|path| std::path::Path::new(path).is_dir());
        if mounted {
            return None;
        }
        // SAFETY: mount(2) with NUL-terminated literals and no data.
        let rc = unsafe {
            libc::mount(
                c"tracefs".as_ptr(),
                TRACEFS.as_ptr(),
                c"tracefs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            log::debug!("mounting tracefs: {}", std::io::Error::last_os_error());
            return None;
        }
        log::debug!("mounted tracefs on /sys/kernel/tracing for the syscall tracepoints");
        Some(Self)
    }
}

impl Drop for Tracefs {
    fn drop(&mut self) {
        // SAFETY: umount2(2) of the path mounted above; lazily, as the links may still be closing.
        unsafe { libc::umount2(TRACEFS.as_ptr(), libc::MNT_DETACH) };
    }
}
