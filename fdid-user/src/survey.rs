//! The whole pipeline behind one call: collect → shared fd tables → identify (verify) → ids.
//!
//! ```no_run
//! use fdid::survey::{Scope, Survey, SurveyOptions};
//!
//! // Everything process 1234 holds, and who else holds the same open file descriptions.
//! let survey = Survey::run(&SurveyOptions::new(Scope::pids([1234])))?;
//! for file in survey.shared_files() {
//!     let holders: Vec<String> = file
//!         .holders
//!         .iter()
//!         .map(|&i| format!("{}:{}", survey.record(i).tgid, survey.record(i).fd))
//!         .collect();
//!     println!("{} is held by {}", file.id, holders.join(", "));
//! }
//! # Ok::<(), fdid::survey::SurveyError>(())
//! ```

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

pub use crate::{collect::CollectorKind, verify::SharedTable};
use crate::{
    collect::{self, Collection, Collector, Source, Target, Walk, bpf::BpfOptions},
    endpoints, proc,
    record::{FdRecord, Sockets},
    tree::{GenidTree, OpenFileId, genid_of},
    verify::{self, CompareFiles, Kcmp, VerifyMode, VerifyStats},
};

/// Which processes a survey is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Empty: every process.
    pub pids: Vec<u32>,
    /// Include the descendants of `pids`.
    pub tree: bool,
}

impl Scope {
    /// Every process of the pid namespace.
    pub fn system() -> Self {
        Self::default()
    }
    /// These processes.
    pub fn pids(pids: impl IntoIterator<Item = u32>) -> Self {
        Self {
            pids: pids.into_iter().collect(),
            tree: false,
        }
    }
    /// These processes and their descendants.
    pub fn trees(pids: impl IntoIterator<Item = u32>) -> Self {
        Self {
            pids: pids.into_iter().collect(),
            tree: true,
        }
    }
    pub fn is_system(&self) -> bool {
        self.pids.is_empty()
    }
}

/// Everything a survey can be told.
#[derive(Clone, Debug)]
pub struct SurveyOptions {
    pub scope: Scope,
    pub verify: VerifyMode,
    pub collector: CollectorKind,
    pub bpf: BpfOptions,
    /// For a scoped survey: when to walk every process to find holders outside the scope.
    pub outside: OutsideHolders,
}

/// When a scoped survey also walks every process, to show who outside the scope holds the same open
/// file descriptions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutsideHolders {
    /// When a description of the scope has more references than holders in the scope (always for
    /// procfs, which has no reference counts).
    #[default]
    WhenReferenced,
    /// Always (`fdid check`).
    Always,
    /// Never: only the scope's processes are walked (`--scope-only`, like `lsof -p`).
    Never,
}

impl SurveyOptions {
    pub fn new(scope: Scope) -> Self {
        Self {
            scope,
            verify: VerifyMode::default(),
            collector: CollectorKind::default(),
            bpf: BpfOptions::default(),
            outside: OutsideHolders::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    #[error("no process with pid {0}")]
    NoSuchProcess(u32),
    #[error("{pid} is a thread of process {tgid}, not a process: use --pid {tgid}")]
    Thread { pid: u32, tgid: u32 },
    #[error(transparent)]
    Collect(#[from] collect::CollectError),
}

/// One fd of the survey.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SurveyFd {
    pub record: FdRecord,
    pub id: OpenFileId,
    /// Held by a process of the scope (false: an outside holder of a description the scope holds).
    pub in_scope: bool,
    /// Vanished before kcmp could confirm it (its description is its own).
    pub unconfirmed: bool,
}

/// One open file description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenFile {
    pub id: OpenFileId,
    /// Indices of its fds (see [`Survey::fd`]), in walk order.
    pub holders: Vec<usize>,
    /// The kernel's reference count (largest seen during the walk); `None` when the collector cannot
    /// read it (procfs).
    pub refs: Option<u64>,
    /// References no fd explains (mmaps, SCM_RIGHTS in flight, io_uring…): `refs − holders`, known
    /// only when the whole system was walked. Approximate: counts move while the walk runs.
    pub hidden_refs: Option<u64>,
    /// kcmp confirmed the holders.
    pub confirmed: bool,
    /// Its one fd vanished before kcmp could compare it with others that looked the same.
    pub unconfirmed: bool,
    /// The descriptions at its other end (a pipe's, a connected socket's), see [`crate::endpoints`].
    pub endpoints: Vec<OpenFileId>,
}

/// Counts and costs of a survey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SurveyStats {
    pub source: Source,
    /// The kernel walked only the scope's processes (BPF pid filter).
    pub kernel_filtered: bool,
    /// Every process was walked, so every holder and `hidden_refs` are known.
    pub whole_system: bool,
    pub verify: VerifyStats,
    /// Why the BPF collector could not be used, when `CollectorKind::Auto` fell back to procfs.
    pub fallback: Option<String>,
    /// Why `CollectorKind::Auto` planned procfs for this survey (what it lacks included).
    pub plan: Option<String>,
    /// Processes whose fds could not be read (procfs without the privileges to look at them).
    pub unreadable: Vec<u32>,
    /// Processes of the scope that exited before the walk reached them (their fds are absent).
    pub exited: Vec<u32>,
    /// Time collecting (all walks).
    pub collect_time: Duration,
    /// Time for the whole survey.
    pub elapsed: Duration,
}

/// What the walks of a survey collected, before identification.
pub struct Walked {
    pub collection: Collection,
    /// References held by fdid's own fds, by pointer hash (not hidden references).
    pub own_refs: HashMap<u64, u64>,
    /// The scope's processes; `None` for the whole system.
    pub scope: Option<BTreeSet<u32>>,
    /// Every process was walked.
    pub whole_system: bool,
}

/// The result of a survey.
///
/// Fds are stored in walk order (process by process, fd by fd) as the collector's records plus the
/// index of each one's description; [`Survey::fd`] and [`Survey::fds`] assemble [`SurveyFd`]s.
#[derive(Clone, Debug)]
pub struct Survey {
    records: Vec<FdRecord>,
    /// For each record, its index in `files`.
    file_of: Vec<u32>,
    pub files: Vec<OpenFile>,
    pub shared_tables: Vec<SharedTable>,
    pub stats: SurveyStats,
    /// The sockets among the records, by inode number.
    sockets: Sockets,
    /// The scope's processes; `None` for the whole system.
    scope: Option<BTreeSet<u32>>,
    by_id: HashMap<OpenFileId, usize>,
    /// Descriptions (indices into `files`) by (dev, ino).
    by_inode: HashMap<(u32, u64), Vec<usize>>,
}

impl Survey {
    /// Collects and identifies everything `options` asks for.
    pub fn run(options: &SurveyOptions) -> Result<Self, SurveyError> {
        let started = Instant::now();
        let scope = resolve_scope(&options.scope)?;
        let mut collector = Collector::new(
            options.collector,
            &options.bpf,
            scope.as_ref(),
            options.outside == OutsideHolders::Never,
        )?;
        let Walk {
            mut collection,
            mut own_refs,
        } = match &scope {
            None => collector.collect(&Target::All)?,
            Some(pids) => collector.collect(&Target::Pids(pids.iter().copied().collect()))?,
        };
        let mut collect_time = collection.elapsed;
        let mut whole_system = scope.is_none();

        // A scoped survey walks the whole system too when someone outside may hold the same
        // descriptions.
        if let Some(pids) = &scope
            && match options.outside {
                OutsideHolders::WhenReferenced => collection.may_be_held_outside(),
                OutsideHolders::Always => true,
                OutsideHolders::Never => false,
            }
        {
            let all = collector.collect(&Target::All)?;
            own_refs = all.own_refs;
            collect_time += all.collection.elapsed;
            let kernel_filtered = collection.kernel_filtered;
            collection = all.collection;
            collection.kernel_filtered = kernel_filtered;
            whole_system = true;
            collection.keep_related(pids);
        }

        log::debug!(
            "collected {} records from {} after {:?}",
            collection.records.len(),
            collection.source,
            started.elapsed()
        );
        // A process of the scope that is gone and left no record exited during the survey: not an
        // error, but worth saying.
        let exited: Vec<u32> = scope
            .iter()
            .flatten()
            .copied()
            .filter(|pid| !collection.records.iter().any(|r| r.tgid == *pid))
            .filter(|pid| proc::has_exited(*pid))
            .collect();
        let walked = Walked {
            collection,
            own_refs,
            scope,
            whole_system,
        };
        let mut survey = Self::assemble(walked, options.verify, &mut Kcmp);
        survey.stats.fallback = collector.fallback.take();
        survey.stats.plan = collector.plan.take();
        survey.stats.exited = exited;
        survey.stats.collect_time = collect_time;
        survey.stats.elapsed = started.elapsed();
        log::debug!("survey done after {:?}", survey.stats.elapsed);
        Ok(survey)
    }

    /// Identifies and numbers what a walk collected: shared fd tables, descriptions (confirmed by
    /// `kernel` as `mode` asks), ids, hidden references. Its only I/O is through `kernel`, so tests
    /// build surveys from records and a fake kernel. The stats it cannot know (fallback, plan,
    /// exited processes, times) are left empty for [`Survey::run`].
    pub fn assemble(walked: Walked, mode: VerifyMode, kernel: &mut impl CompareFiles) -> Self {
        let Walked {
            mut collection,
            own_refs,
            scope,
            mut whole_system,
        } = walked;
        // From a nested pid namespace, holders outside it are invisible: the walk is not whole.
        if collection.records.iter().any(|r| r.pid_ns_level > 0) {
            whole_system = false;
        }
        let shared_tables =
            verify::merge_shared_tables(&mut collection.records, scope.as_ref(), kernel);
        let records = collection.records;
        let evidence = collection.evidence;
        let (descriptions, verify_stats) = verify::identify(&records, evidence, mode, kernel);
        log::debug!("{} descriptions identified", descriptions.len());

        let mut tree = GenidTree::new();
        let mut file_of = vec![0u32; records.len()];
        let mut files = Vec::with_capacity(descriptions.len());
        for description in descriptions {
            let first = &records[description.fds[0]];
            let id = tree.add(genid_of(first), evidence.hashed.then_some(first.file_hash));
            let refs = evidence.hashed.then_some(description.refs);
            let own = if evidence.hashed {
                own_refs.get(&first.file_hash).copied().unwrap_or(0)
            } else {
                0
            };
            let holders = description.fds;
            let hidden_refs = refs
                .filter(|_| whole_system)
                .map(|refs| refs.saturating_sub(holders.len() as u64 + own));
            for &i in &holders {
                file_of[i] = files.len() as u32;
            }
            files.push(OpenFile {
                id,
                holders,
                refs,
                hidden_refs,
                confirmed: description.confirmed,
                unconfirmed: description.unconfirmed,
                endpoints: Vec::new(),
            });
        }
        let firsts: Vec<&FdRecord> = files.iter().map(|f| &records[f.holders[0]]).collect();
        let ends = endpoints::link(&firsts, &collection.sockets);
        for (i, others) in ends.into_iter().enumerate() {
            files[i].endpoints = others.into_iter().map(|k| files[k].id).collect();
        }
        let (by_id, by_inode) = index(&records, &files);
        Self {
            records,
            file_of,
            files,
            shared_tables,
            sockets: collection.sockets,
            stats: SurveyStats {
                source: collection.source,
                kernel_filtered: collection.kernel_filtered,
                whole_system,
                verify: verify_stats,
                fallback: None,
                plan: None,
                unreadable: collection.unreadable,
                exited: Vec::new(),
                collect_time: collection.elapsed,
                elapsed: collection.elapsed,
            },
            scope,
            by_id,
            by_inode,
        }
    }
}

/// The descriptions by id and by (dev, ino).
#[allow(clippy::type_complexity)]
fn index(
    records: &[FdRecord],
    files: &[OpenFile],
) -> (HashMap<OpenFileId, usize>, HashMap<(u32, u64), Vec<usize>>) {
    let by_id = files.iter().enumerate().map(|(i, f)| (f.id, i)).collect();
    let mut by_inode: HashMap<(u32, u64), Vec<usize>> = HashMap::new();
    for (i, file) in files.iter().enumerate() {
        let r = &records[file.holders[0]];
        by_inode.entry((r.dev, r.ino)).or_default().push(i);
    }
    (by_id, by_inode)
}

/// The scope's pids (with descendants for `--tree`), checked; `None` for the whole system.
fn resolve_scope(scope: &Scope) -> Result<Option<BTreeSet<u32>>, SurveyError> {
    if scope.is_system() {
        return Ok(None);
    }
    for &pid in &scope.pids {
        match proc::pid_kind(pid) {
            proc::PidKind::Process => {}
            proc::PidKind::Thread { tgid } => return Err(SurveyError::Thread { pid, tgid }),
            proc::PidKind::Missing => return Err(SurveyError::NoSuchProcess(pid)),
        }
    }
    let pids = if scope.tree {
        proc::with_descendants(&scope.pids)
    } else {
        scope.pids.clone()
    };
    Ok(Some(pids.into_iter().collect()))
}

mod query;
#[cfg(test)]
mod tests;
