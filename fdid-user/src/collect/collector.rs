//! The collector of a survey, loaded once for all its walks: which kind (BPF, procfs, or what the
//! `auto` planner chose, with the fallback when BPF cannot load), and fdid's own fds kept out of what
//! it reports.

use std::collections::{BTreeSet, HashMap};

use super::{
    Collection, Target,
    bpf::{BpfCollector, BpfError, BpfOptions},
    plan::{self, Plan},
    procfs,
};

/// Where the records come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CollectorKind {
    /// BPF, or procfs when the planner finds it cheaper for the same answer or BPF cannot be used
    /// here (the reason is in [`Collector::fallback`] or [`Collector::plan`]).
    #[default]
    Auto,
    /// BPF only: failing to load it is an error.
    Bpf,
    Procfs,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error("procfs: {0}")]
    Procfs(#[source] std::io::Error),
}

/// One walk's records without fdid's own, and the references fdid's own fds hold, by pointer hash
/// (so that they are not mistaken for hidden ones).
pub struct Walk {
    pub collection: Collection,
    pub own_refs: HashMap<u64, u64>,
}

enum Loaded {
    Bpf(Box<BpfCollector>),
    Procfs,
}

/// A collector ready to walk, as often as asked.
pub struct Collector {
    loaded: Loaded,
    /// Why BPF could not be used, when `Auto` fell back to procfs.
    pub fallback: Option<String>,
    /// Why `Auto` planned procfs, and what that lacks.
    pub plan: Option<String>,
}

impl Collector {
    /// The collector of `kind` for a survey of `scope` (`None`: every process) that walks nothing
    /// else when `scope_only`.
    pub fn new(
        kind: CollectorKind,
        bpf: &BpfOptions,
        scope: Option<&BTreeSet<u32>>,
        scope_only: bool,
    ) -> Result<Self, CollectError> {
        // No in-program filter: a whole-system walk may follow the scoped one. Kernels without the
        // link's pid filter walk everything and the scope is filtered in userspace.
        let load = || BpfCollector::load(bpf, None).map(|c| Loaded::Bpf(Box::new(c)));
        let (loaded, fallback, plan) = match kind {
            CollectorKind::Bpf => (load()?, None, None),
            CollectorKind::Procfs => (Loaded::Procfs, None, None),
            CollectorKind::Auto => match plan::plan(scope, scope_only) {
                Plan::Procfs(reason) => {
                    log::debug!("{reason}");
                    (Loaded::Procfs, None, Some(reason))
                }
                Plan::Bpf => match load() {
                    Ok(loaded) => (loaded, None, None),
                    Err(error) => (Loaded::Procfs, Some(crate::error_line(&error)), None),
                },
            },
        };
        Ok(Self {
            loaded,
            fallback,
            plan,
        })
    }

    /// Walks `target`. fdid does not report itself: its own fds (the iterator, inherited ones) are
    /// artifacts of looking.
    pub fn collect(&mut self, target: &Target) -> Result<Walk, CollectError> {
        let mut collection = match &mut self.loaded {
            Loaded::Bpf(collector) => collector.collect(target)?,
            Loaded::Procfs => procfs::collect(target).map_err(CollectError::Procfs)?,
        };
        let me = std::process::id();
        let mut own_refs: HashMap<u64, u64> = HashMap::new();
        collection.records.retain(|r| {
            if r.tgid == me {
                *own_refs.entry(r.file_hash).or_default() += 1;
            }
            r.tgid != me
        });
        Ok(Walk {
            collection,
            own_refs,
        })
    }
}
