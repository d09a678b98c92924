//! The BPF collector: loads the `iter/task_file` program, attaches it (with the kernel's pid filter when
//! asked for specific processes), and decodes its record stream.

use std::{
    fs::File,
    os::fd::AsFd,
    path::{Path, PathBuf},
    time::Instant,
};

use aya::{Btf as AyaBtf, Ebpf, EbpfLoader, Pod, programs::Iter};
use fdid_ebpf::{CONFIG_GLOBAL, FdRecord, IterConfig, PROGRAM_NAME, watch};

use super::{Collection, Source, Target};
use crate::{
    boot_key,
    btf::{self, Btf},
    layout_cache::{self, LayoutCache},
    offsets::{KernelLayout, LayoutError},
    record::{self, Sockets},
    verify::Evidence,
};

/// The program, built by this package's build script and embedded at compile time; empty when the
/// build had no BPF toolchain (it said so in a warning).
static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fdid-ebpf"));

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    // aya's and getrandom's errors are sources; `fdid::error_line` prints a chain on one line.
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(
        "this fdid was built without its BPF program (no BPF toolchain at build time: run `cargo \
         xtask setup` in the fdid checkout, then build again)"
    )]
    NotBuilt,
    #[error("cannot load the BPF object")]
    Object(#[source] aya::EbpfError),
    #[error("cannot patch kfunc calls into the BPF object")]
    Patch(#[from] kfunc::PatchError),
    #[error("the BPF object has no program `{PROGRAM_NAME}`")]
    MissingProgram,
    #[error("the kernel refused the BPF program")]
    Load(#[source] aya::programs::ProgramError),
    #[error("the verifier refused the BPF program ({error}): {reason}; `-v` shows its log")]
    Verifier {
        error: std::io::Error,
        /// The log's verdict: its last line before the statistics.
        reason: String,
    },
    #[error("permission denied loading BPF: fdid needs root (CAP_BPF and CAP_PERFMON)")]
    PermissionDenied,
    #[error("attaching the iterator")]
    Attach(#[source] aya::programs::ProgramError),
    #[error("opening the iterator")]
    Iterator(#[source] aya::programs::links::LinkError),
    #[error("{call} failed: {error}")]
    Syscall {
        call: &'static str,
        error: std::io::Error,
    },
    #[error("reading the iterator: {0}")]
    Read(std::io::Error),
    #[error("the iterator's record stream is malformed")]
    Decode(#[source] record::DecodeError),
    #[error("the program was loaded to filter on process {0}; it cannot walk other processes")]
    FilteredProgram(u32),
    #[error("no random key")]
    Random(#[source] getrandom::Error),
}

/// How to load the program.
#[derive(Clone, Debug)]
pub struct BpfOptions {
    /// Where the kernel's BTF is (offsets are resolved from it).
    pub btf_path: PathBuf,
    /// Mask applied to the pointer hashes; all ones except in tests that force collisions.
    pub hash_mask: u64,
    /// Forward the program's aya-log messages to the `log` crate.
    pub forward_logs: bool,
    /// Make the program filter on the load's one target process even where the kernel's iterator
    /// link could (tests of the path kernels before 6.1 take).
    pub force_program_filter: bool,
    /// Directory of the per-boot [`LayoutCache`] (used for the default `btf_path` only; `None`: BTF
    /// is parsed on every load).
    pub layout_cache: Option<PathBuf>,
    /// Directory of the per-boot hash key ([`boot_key`]; `None`: a key for this load alone, so its
    /// ids are its own).
    pub boot_key: Option<PathBuf>,
    /// The hash key to use, whatever `boot_key` says (`fdid watch` hands its tracer's key to its
    /// survey).
    pub hash_key: Option<[u64; 2]>,
    /// Load for `fdid watch`'s tracing programs; `None`: a survey, whose load creates their maps
    /// as small as the kernel allows.
    pub watch: Option<WatchLoad>,
}

/// How `fdid watch` loads the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchLoad {
    /// Size of the ring buffer events arrive in (bytes, a power of two).
    pub ring_bytes: u32,
    /// Only processes the scope map holds are followed.
    pub scoped: bool,
}

impl Default for BpfOptions {
    fn default() -> Self {
        Self {
            btf_path: PathBuf::from(btf::VMLINUX_BTF),
            hash_mask: u64::MAX,
            forward_logs: false,
            force_program_filter: false,
            layout_cache: Some(PathBuf::from(layout_cache::DEFAULT_DIR)),
            boot_key: Some(PathBuf::from(crate::run_dir::DEFAULT_DIR)),
            hash_key: None,
            watch: None,
        }
    }
}

/// `IterConfig` as a global for aya; the newtype exists only to implement aya's `Pod` for a type of
/// another crate.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct ConfigGlobal(IterConfig);

// SAFETY: IterConfig is repr(C), made of integers only, with explicit padding and no implicit padding
// (its size is asserted in fdid-ebpf): any byte pattern is a valid value.
unsafe impl Pod for ConfigGlobal {}

/// The loaded iterator program, ready to walk as often as asked (one key for all walks).
pub struct BpfCollector {
    ebpf: Ebpf,
    layout: KernelLayout,
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    /// Set when the program itself filters (kernels before 6.1, one target process).
    program_filter: u32,
    /// The mask the program applies to its hashes.
    hash_mask: u64,
}

impl BpfCollector {
    /// Resolves offsets from BTF, loads and verifies the program. `filter_hint` is the one process a
    /// kernel without link pid filtering should make the program itself filter on, if any.
    pub fn load(options: &BpfOptions, filter_hint: Option<u32>) -> Result<Self, BpfError> {
        if BPF_OBJECT.is_empty() {
            return Err(BpfError::NotBuilt);
        }
        let started = Instant::now();
        let layout = kernel_layout(options)?;
        log::debug!("kernel layout known after {:?}", started.elapsed());
        let program_filter = if layout.kernel_pid_filter && !options.force_program_filter {
            0
        } else {
            filter_hint.unwrap_or(0)
        };
        // The watch's programs read files directly where the kernel has `bpf_rdonly_cast`: their
        // placeholder calls become calls of it. Anything else loads the object as built, and its
        // config says to read with probe reads.
        let mut offsets = layout.offsets;
        let patched = match options.watch {
            Some(_) if offsets.watch.rdonly_cast_func != 0 => {
                let (patched, calls) = kfunc::patch_kfunc_calls(
                    BPF_OBJECT,
                    watch::RDONLY_CAST_PLACEHOLDER,
                    offsets.watch.rdonly_cast_func,
                )?;
                log::debug!("{calls} calls of bpf_rdonly_cast patched in");
                Some(patched)
            }
            _ => {
                offsets.watch.rdonly_cast_func = 0;
                offsets.watch.file_btf_id = 0;
                offsets.watch.word_btf_id = 0;
                None
            }
        };
        let config = ConfigGlobal(IterConfig {
            hash_key: hash_key(options)?,
            hash_mask: options.hash_mask,
            refs_bias: layout.refs_bias,
            filter_tgid: program_filter,
            _pad: 0,
            offsets,
            watch: match options.watch {
                Some(load) => watch::WatchConfig {
                    scoped: u32::from(load.scoped),
                    _pad: 0,
                    syscalls: crate::watch::syscalls::table(),
                },
                None => watch::WatchConfig::ZERO,
            },
        });
        // The stand-in for the kernel BTF takes a few ms to build: on the second core, while aya
        // parses the object and creates its maps.
        let (attach_btf, loaded) = std::thread::scope(|scope| {
            let attach_btf = scope.spawn(|| attach_point_btf(layout.task_file_func));
            let mut loader = EbpfLoader::new();
            // The object has no CO-RE relocations, so aya reads no kernel BTF; were it to, this
            // makes it fail loudly instead of parsing the kernel's BTF behind our back.
            loader
                .btf_source(|_| {
                    Err(aya::EbpfError::BtfSourceError(std::io::Error::other(
                        "fdid's BPF object needs no kernel BTF",
                    )))
                })
                .override_global(CONFIG_GLOBAL, &config, true);
            // Every map of the object is created with it: the tracer's only at full size.
            let (ring, entries) = match options.watch {
                Some(load) => (load.ring_bytes, None),
                None => (4096, Some(1)),
            };
            loader.map_max_entries(watch::EVENTS_MAP, ring);
            if let Some(entries) = entries {
                loader.map_max_entries(watch::SCOPE_MAP, entries);
            }
            let loaded = loader.load(patched.as_ref().map_or(BPF_OBJECT, |p| p.bytes()));
            (attach_btf.join().expect("no panic building a Vec"), loaded)
        });
        let mut ebpf = loaded.map_err(|error| {
            if permission_denied(&error) {
                BpfError::PermissionDenied
            } else {
                BpfError::Object(error)
            }
        })?;
        let logger = if options.forward_logs {
            match aya_log::EbpfLogger::init(&mut ebpf) {
                Ok(logger) => Some(logger),
                Err(error) => {
                    log::debug!("BPF log forwarding unavailable: {error}");
                    None
                }
            }
        } else {
            None
        };
        log::debug!(
            "offsets resolved and object loaded after {:?}",
            started.elapsed()
        );
        load_program(&mut ebpf, &attach_btf)?;
        log::debug!("program verified and loaded after {:?}", started.elapsed());
        Ok(Self {
            ebpf,
            layout,
            logger,
            program_filter,
            hash_mask: options.hash_mask,
        })
    }

    /// The loaded object, for `fdid watch` to load and attach its tracing programs from (they share
    /// the iterator's config: offsets and hash key).
    pub(crate) fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// What was resolved from the kernel's BTF.
    pub fn layout(&self) -> &KernelLayout {
        &self.layout
    }

    /// Walks the processes of `target`.
    pub fn collect(&mut self, target: &Target) -> Result<Collection, BpfError> {
        let started = Instant::now();
        let program = iter_program(&mut self.ebpf)?;
        let mut records = Vec::new();
        let mut sockets = Sockets::default();
        let filter = self.program_filter;
        let kernel_filtered = match target {
            // Cannot happen through Survey (it loads without a program filter); say so rather than
            // return a partial walk.
            Target::All if filter != 0 => return Err(BpfError::FilteredProgram(filter)),
            Target::Pids(pids) if filter != 0 && pids[..] != [filter] => {
                return Err(BpfError::FilteredProgram(filter));
            }
            // The program itself keeps only that process's records: nothing to drop here.
            Target::Pids(_) if filter != 0 => {
                read_iterator(program, None, &mut records, &mut sockets)?;
                false
            }
            Target::Pids(pids) if self.layout.kernel_pid_filter => {
                for &pid in pids {
                    read_iterator(program, Some(pid), &mut records, &mut sockets)?;
                }
                true
            }
            Target::Pids(pids) => {
                read_iterator(program, None, &mut records, &mut sockets)?;
                records.retain(|r| pids.contains(&r.tgid));
                false
            }
            Target::All => {
                read_iterator(program, None, &mut records, &mut sockets)?;
                false
            }
        };
        if let Some(logger) = &mut self.logger {
            logger.flush();
        }
        Ok(Collection {
            records,
            sockets,
            source: Source::Bpf,
            evidence: Evidence {
                hashed: true,
                full_hash: self.hash_mask == u64::MAX,
            },
            kernel_filtered,
            unreadable: Vec::new(),
            elapsed: started.elapsed(),
        })
    }
}

impl BpfCollector {
    /// The floor of any survey, for benchmarks: attaches and reads the whole iterator stream of every
    /// process into one reused buffer, without decoding. Returns the number of bytes read.
    pub fn raw_walk(&mut self) -> Result<u64, BpfError> {
        use std::io::Read as _;
        let program = iter_program(&mut self.ebpf)?;
        let mut iterator = open_iterator(program, None)?;
        let mut buffer = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match iterator.read(&mut buffer) {
                Ok(0) => return Ok(total),
                Ok(n) => total += n as u64,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(BpfError::Read(error)),
            }
        }
    }
}

/// Loads the program and walks the processes of `target` once.
pub fn collect(target: &Target, options: &BpfOptions) -> Result<Collection, BpfError> {
    let hint = match target {
        Target::Pids(pids) if pids.len() == 1 => Some(pids[0]),
        _ => None,
    };
    BpfCollector::load(options, hint)?.collect(target)
}

/// The kernel layout: from the per-boot cache when it holds one, else resolved from BTF (and cached).
fn kernel_layout(options: &BpfOptions) -> Result<KernelLayout, BpfError> {
    let cache = options
        .layout_cache
        .as_deref()
        .filter(|_| options.btf_path == Path::new(btf::VMLINUX_BTF))
        .and_then(LayoutCache::for_this_boot);
    if let Some(layout) = cache.as_ref().and_then(LayoutCache::load) {
        log::debug!("kernel layout from the per-boot cache");
        return Ok(layout);
    }
    let btf = Btf::from_file(&options.btf_path)?;
    let layout = KernelLayout::resolve(&btf)?;
    if let Some(cache) = cache {
        cache.store(&layout);
    }
    Ok(layout)
}

/// What aya needs of the kernel's BTF to load an iterator: `Iter::load` looks up the type id of
/// `bpf_iter_task_file` by name and passes it to the kernel as the attach point. Rather than have
/// aya parse the whole kernel BTF (about 20 ms here) for that one number, it gets a stand-in holding
/// that function at the kernel's id: placeholders below it, and nothing else.
fn attach_point_btf(task_file_func: u32) -> AyaBtf {
    use aya_obj::btf::{BtfType, Func, FuncLinkage};
    let mut btf = AyaBtf::new();
    let name = btf.add_string("bpf_iter_task_file");
    for _ in 1..task_file_func {
        btf.add_type(BtfType::Unknown);
    }
    let id = btf.add_type(BtfType::Func(Func::new(name, 0, FuncLinkage::Global)));
    debug_assert_eq!(id, task_file_func);
    btf
}

fn iter_program(ebpf: &mut Ebpf) -> Result<&mut Iter, BpfError> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or(BpfError::MissingProgram)?
        .try_into()
        .map_err(BpfError::Load)
}

fn load_program(ebpf: &mut Ebpf, kernel_btf: &AyaBtf) -> Result<(), BpfError> {
    let program = iter_program(ebpf)?;
    // The verifier gives up with EAGAIN when a signal is pending for the loading thread (it checks
    // between instructions); like libbpf, try again a few times.
    let mut attempts = 5;
    loop {
        match program.load("task_file", kernel_btf) {
            Err(aya::programs::ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempts > 1 =>
            {
                attempts -= 1;
                log::debug!("BPF_PROG_LOAD interrupted (EAGAIN), retrying");
            }
            Err(aya::programs::ProgramError::LoadError {
                io_error,
                verifier_log,
            }) => {
                // EPERM: no privileges. The verifier's own refusals are EACCES or EINVAL.
                if io_error.raw_os_error() == Some(libc::EPERM) {
                    return Err(BpfError::PermissionDenied);
                }
                log::debug!("verifier log:\n{verifier_log}");
                return Err(BpfError::Verifier {
                    error: io_error,
                    reason: verdict(&verifier_log.to_string()),
                });
            }
            result => return result.map_err(BpfError::Load),
        }
    }
}

/// The verifier's verdict in its log: the last line that is not one of the closing statistics
/// ("verification time", "stack depth", "processed N insns").
fn verdict(log: &str) -> String {
    log.lines()
        .rev()
        .map(str::trim)
        .find(|line| {
            !line.is_empty()
                && !["verification time", "stack depth", "processed "]
                    .iter()
                    .any(|statistic| line.starts_with(statistic))
        })
        .unwrap_or("no log")
        .to_owned()
}

/// Creates an iterator link (optionally filtered to one process by the kernel), opens an iterator
/// instance on it and decodes everything it writes.
fn read_iterator(
    program: &mut Iter,
    pid: Option<u32>,
    records: &mut Vec<FdRecord>,
    sockets: &mut Sockets,
) -> Result<(), BpfError> {
    let iterator = open_iterator(program, pid)?;
    let from = records.len();
    record::read_fd_into(iterator.as_fd(), records).map_err(BpfError::Read)?;
    record::split_extensions(records, from, sockets).map_err(BpfError::Decode)
}

/// Attaches the program (with the kernel's pid filter for `pid`) and opens an iterator instance on
/// it. The link is closed with the iterator.
fn open_iterator(program: &mut Iter, pid: Option<u32>) -> Result<File, BpfError> {
    let Some(pid) = pid else {
        let link = program.attach().map_err(BpfError::Attach)?;
        let link = program.take_link(link).map_err(BpfError::Attach)?;
        return link.into_file().map_err(BpfError::Iterator);
    };
    // aya's `Iter::attach` cannot pass `bpf_iter_link_info`: the filtered link is made here.
    let program = program.fd().map_err(BpfError::Load)?;
    let link = sys::iter_link_create(program.as_fd(), pid).map_err(|error| BpfError::Syscall {
        call: "BPF_LINK_CREATE (iter/task_file, pid filter)",
        error,
    })?;
    let iterator = sys::iter_create(link.as_fd()).map_err(|error| BpfError::Syscall {
        call: "BPF_ITER_CREATE",
        error,
    })?;
    Ok(File::from(iterator))
}

/// Whether an error (or one of its causes) is EPERM/EACCES from the kernel.
fn permission_denied(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && matches!(io.raw_os_error(), Some(libc::EPERM | libc::EACCES))
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The key `options` give, else the boot's when they name its directory and it can be kept there,
/// else a fresh one.
pub fn hash_key(options: &BpfOptions) -> Result<[u64; 2], BpfError> {
    if let Some(key) = options
        .boot_key
        .as_deref()
        .and_then(boot_key::for_this_boot)
    {
        return Ok(key);
    }
    boot_key::random().map_err(BpfError::Random)
}

/// The `bpf(2)` commands for an iterator link with the kernel's pid filter, which aya (0.16) cannot
/// make: its `Iter::attach` passes no `bpf_iter_link_info`.
pub(crate) mod sys;

mod kfunc;
#[cfg(test)]
mod tests;
