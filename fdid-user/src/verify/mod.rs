//! Which fds are one open file description: grouping by evidence, confirmed with `kcmp(KCMP_FILE)`.
//!
//! CRIU froze the tasks it dumped; fdid surveys a live system, so the evidence is weighed as follows.
//!
//! **Certain, no syscall.** Two fds whose records differ in device, inode or access mode
//! (`O_ACCMODE`/`O_PATH`, fixed when a file is opened) are different descriptions. Two fds with
//! different pointer hashes are different descriptions: one `struct file` has one address.
//!
//! **Strong evidence.** Two fds with the same full 64-bit keyed pointer hash, the same inode and the
//! same access mode are taken to be one description. The residual risk is an address reused during the
//! walk (a description freed and a new one of the same inode allocated at the same address); `--verify=all`
//! removes it.
//!
//! **Ambiguous**, confirmed with kcmp under the default `--verify=ambiguous`: a candidate group (same
//! hash, inode and access mode) with two or more fds when
//! 1. the records have no pointer hash (procfs collector): inode alone proves nothing;
//! 2. the hash was narrowed below 64 bits (a test knob), so collisions are expected;
//! 3. the group has more holders than the kernel's reference count shows for it (each fd holds one
//!    reference): at least one holder must belong to another description.
//!
//! Confirming a group sorts its fds into descriptions the way CRIU's subtrees do: kcmp orders kernel
//! objects, so each fd is placed by binary search among the descriptions found so far (one kcmp call per
//! fd when they are all one description, about log2(descriptions) otherwise). An fd that vanished
//! before it could be compared (its process exited or closed it) becomes a description of its own
//! marked **unconfirmed** — it is never merged on hash evidence alone.

mod partition;
mod tables;

use std::io;

pub use partition::{PartitionError, check_partition};
use rustc_hash::FxHashMap;
pub use tables::{SharedTable, merge_shared_tables};

pub use crate::kcmp::KernelOrder;
use crate::record::FdRecord;

/// How much to confirm with kcmp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyMode {
    /// Trust the pointer hash; kcmp only what has no hash.
    None,
    /// Confirm the ambiguous groups (see the module docs).
    #[default]
    Ambiguous,
    /// Confirm every fd that joins another one (every cross-fd edge of every shared group).
    All,
}

/// Compares two fds' open file descriptions; [`Kcmp`] asks the kernel, tests use fakes.
pub trait CompareFiles {
    /// The kernel's order of the two descriptions ([`KernelOrder::Same`]: one description); an error of
    /// kind `NotFound` when either fd is gone.
    fn compare(&mut self, a: &FdRecord, b: &FdRecord) -> io::Result<KernelOrder>;
    /// Whether processes `a` and `b` share one fd table; an error when either is gone.
    fn same_fd_table(&mut self, a: u32, b: u32) -> io::Result<bool>;
}

/// The real comparison: `kcmp(KCMP_FILE)` on the task the fd was found through.
pub struct Kcmp;

impl CompareFiles for Kcmp {
    fn compare(&mut self, a: &FdRecord, b: &FdRecord) -> io::Result<KernelOrder> {
        crate::kcmp::compare_files(a.tid, a.fd, b.tid, b.fd)
    }
    fn same_fd_table(&mut self, a: u32, b: u32) -> io::Result<bool> {
        crate::kcmp::same_fd_table(a, b)
    }
}

/// One open file description: indices into the records, in record order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Description {
    pub fds: Vec<usize>,
    /// The largest reference count seen among its fds' records (0: unknown).
    pub refs: u64,
    /// kcmp confirmed that every fd here is one description.
    pub confirmed: bool,
    /// The fd vanished before it could be compared with the others that looked the same.
    pub unconfirmed: bool,
}

/// What verification cost and found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyStats {
    /// Candidate groups that were confirmed with kcmp.
    pub groups_checked: usize,
    pub kcmp_calls: u64,
    /// Descriptions split off a candidate group because kcmp said they differ.
    pub splits: usize,
    /// Fds that vanished before they could be confirmed.
    pub unconfirmed_fds: usize,
}

/// What identification needs to know about the records.
#[derive(Clone, Copy, Debug)]
pub struct Evidence {
    /// Records carry a pointer hash (BPF collector).
    pub hashed: bool,
    /// The hash keeps all 64 bits (not narrowed by the test knob).
    pub full_hash: bool,
}

/// Flags fixed for the life of a description.
pub(crate) fn fixed_flags(flags: u32) -> u32 {
    flags & (libc::O_ACCMODE | libc::O_PATH) as u32
}

/// What puts two fds in one candidate group: pointer hash (0 without), dev, ino, fixed flags.
type CandidateKey = (u64, u32, u64, u32);

/// Groups `records` into open file descriptions, in order of first appearance.
pub fn identify(
    records: &[FdRecord],
    evidence: Evidence,
    mode: VerifyMode,
    cmp: &mut impl CompareFiles,
) -> (Vec<Description>, VerifyStats) {
    // Candidate groups: everything that is certainly different is apart.
    // Fx: the keys are not attacker-chosen in a way that matters here (the pointer hash is keyed).
    let mut slots: FxHashMap<CandidateKey, usize> = FxHashMap::default();
    // In front of the map, a small direct-mapped cache: a survey usually has far fewer descriptions
    // than fds, so most fds find theirs here.
    const CACHE: usize = 4096;
    let mut cache: Vec<Option<(CandidateKey, usize)>> = vec![None; CACHE];
    // Each candidate: its fds and the largest reference count seen.
    let mut candidates: Vec<(Vec<usize>, u64)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let hash = if evidence.hashed { r.file_hash } else { 0 };
        let key = (hash, r.dev, r.ino, fixed_flags(r.flags));
        let line = (hash ^ r.ino) as usize % CACHE;
        let slot = match cache[line] {
            Some((cached, slot)) if cached == key => slot,
            _ => {
                let slot = *slots.entry(key).or_insert_with(|| {
                    candidates.push((Vec::new(), 0));
                    candidates.len() - 1
                });
                cache[line] = Some((key, slot));
                slot
            }
        };
        let candidate = &mut candidates[slot];
        candidate.0.push(i);
        candidate.1 = candidate.1.max(r.refs);
    }

    let mut stats = VerifyStats::default();
    let mut descriptions = Vec::with_capacity(candidates.len());
    for (group, refs) in candidates {
        if group.len() > 1 && needs_kcmp(group.len(), refs, evidence, mode) {
            stats.groups_checked += 1;
            split(records, group, cmp, &mut stats, &mut descriptions);
        } else {
            descriptions.push(Description {
                fds: group,
                refs,
                confirmed: false,
                unconfirmed: false,
            });
        }
    }
    descriptions.sort_by_key(|d| d.fds[0]);
    (descriptions, stats)
}

/// Whether a candidate group of `holders` fds whose records show at most `max_refs` references must be
/// confirmed with kcmp.
fn needs_kcmp(holders: usize, max_refs: u64, evidence: Evidence, mode: VerifyMode) -> bool {
    if !evidence.hashed {
        return true;
    }
    match mode {
        VerifyMode::None => false,
        VerifyMode::All => true,
        VerifyMode::Ambiguous => !evidence.full_hash || (max_refs > 0 && holders as u64 > max_refs),
    }
}

/// Where an fd belongs among the descriptions found so far.
enum Placement {
    /// In this description.
    Member(usize),
    /// A new description, inserted here to keep the kernel's order.
    New(usize),
    /// The fd is gone.
    FdGone,
    /// This description's representative (first live fd) is gone.
    RepresentativeGone(usize),
}

/// Splits one candidate group into confirmed descriptions (and unconfirmed singletons).
///
/// `classes` is kept sorted by the kernel's order of the descriptions (CRIU's subtree), so each fd is
/// placed by binary search; should kcmp ever answer "different, unordered", that fd is placed by a
/// linear scan instead.
fn split(
    records: &[FdRecord],
    group: Vec<usize>,
    cmp: &mut impl CompareFiles,
    stats: &mut VerifyStats,
    out: &mut Vec<Description>,
) {
    // Each class: its fds, the first one being the live representative.
    let mut classes: Vec<Vec<usize>> = Vec::new();
    let mut compare = |a: usize, b: usize, stats: &mut VerifyStats| {
        stats.kcmp_calls += 1;
        cmp.compare(&records[a], &records[b])
    };
    for fd in group {
        loop {
            match place(&classes, fd, &mut compare, stats) {
                Placement::Member(k) => classes[k].push(fd),
                Placement::New(at) => classes.insert(at, vec![fd]),
                Placement::FdGone => {
                    stats.unconfirmed_fds += 1;
                    out.push(Description {
                        fds: vec![fd],
                        refs: records[fd].refs,
                        confirmed: false,
                        unconfirmed: true,
                    });
                }
                Placement::RepresentativeGone(k) => {
                    if classes[k].len() == 1 {
                        // Never compared with anything while it lived: unconfirmed.
                        stats.unconfirmed_fds += 1;
                        let fds = classes.remove(k);
                        let refs = records[fds[0]].refs;
                        out.push(Description {
                            fds,
                            refs,
                            confirmed: false,
                            unconfirmed: true,
                        });
                    } else {
                        // It was confirmed equal to the others before it went; let a live one stand
                        // for the description.
                        classes[k].rotate_left(1);
                    }
                    continue;
                }
            }
            break;
        }
    }
    let live = classes.len();
    stats.splits += live.saturating_sub(1);
    for mut fds in classes {
        fds.sort_unstable();
        let confirmed = fds.len() > 1;
        let refs = fds.iter().map(|&i| records[i].refs).max().unwrap_or(0);
        out.push(Description {
            fds,
            refs,
            confirmed,
            unconfirmed: false,
        });
    }
}

fn place(
    classes: &[Vec<usize>],
    fd: usize,
    compare: &mut impl FnMut(usize, usize, &mut VerifyStats) -> io::Result<KernelOrder>,
    stats: &mut VerifyStats,
) -> Placement {
    let (mut low, mut high) = (0, classes.len());
    while low < high {
        let mid = (low + high) / 2;
        let representative = classes[mid][0];
        match compare(representative, fd, stats) {
            Ok(KernelOrder::Same) => return Placement::Member(mid),
            Ok(KernelOrder::Less) => low = mid + 1,
            Ok(KernelOrder::Greater) => high = mid,
            Ok(KernelOrder::Different) => return place_linearly(classes, fd, compare, stats),
            Err(_) => return which_is_gone(fd, mid, compare, stats),
        }
    }
    Placement::New(low)
}

/// kcmp failed comparing `fd` with class `k`'s representative: compare the fd with itself to tell
/// which side is gone.
fn which_is_gone(
    fd: usize,
    k: usize,
    compare: &mut impl FnMut(usize, usize, &mut VerifyStats) -> io::Result<KernelOrder>,
    stats: &mut VerifyStats,
) -> Placement {
    if compare(fd, fd, stats).is_err() {
        Placement::FdGone
    } else {
        Placement::RepresentativeGone(k)
    }
}

fn place_linearly(
    classes: &[Vec<usize>],
    fd: usize,
    compare: &mut impl FnMut(usize, usize, &mut VerifyStats) -> io::Result<KernelOrder>,
    stats: &mut VerifyStats,
) -> Placement {
    for (k, class) in classes.iter().enumerate() {
        match compare(class[0], fd, stats) {
            Ok(KernelOrder::Same) => return Placement::Member(k),
            Ok(_) => {}
            Err(_) => return which_is_gone(fd, k, compare, stats),
        }
    }
    Placement::New(classes.len())
}

#[cfg(test)]
mod tests;
