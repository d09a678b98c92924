//! Identification and the genid tree on arbitrary records, against a fake kernel derived from the
//! input: never a panic, always a consistent partition, unique ids, and what kcmp confirmed agrees
//! with the fake kernel.
#![no_main]

use std::{collections::HashMap, io};

use fdid::{
    record::{FdRecord, decode},
    tree::{GenidTree, genid_of},
    verify::{CompareFiles, Evidence, KernelOrder, VerifyMode, check_partition, identify},
};
use libfuzzer_sys::fuzz_target;

/// Each (pid, fd) is one description named by a number; those missing are gone.
struct FakeKernel(HashMap<(u32, u32), u64>);

impl CompareFiles for FakeKernel {
    fn compare(&mut self, a: &FdRecord, b: &FdRecord) -> io::Result<KernelOrder> {
        let truth = |r: &FdRecord| self.0.get(&(r.tid, r.fd)).copied().ok_or(io::ErrorKind::NotFound);
        Ok(match truth(a)?.cmp(&truth(b)?) {
            std::cmp::Ordering::Equal => KernelOrder::Same,
            std::cmp::Ordering::Less => KernelOrder::Less,
            std::cmp::Ordering::Greater => KernelOrder::Greater,
        })
    }
    /// Every task has a table of its own.
    fn same_fd_table(&mut self, a: u32, b: u32) -> io::Result<bool> {
        Ok(a == b)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let usable = rest.len() / 64 * 64;
    // Plain records only: the extension byte (offset 19) of each is cleared.
    let mut bytes = rest[..usable].to_vec();
    bytes.iter_mut().skip(19).step_by(64).for_each(|b| *b = 0);
    let Ok(fdid::record::Decoded { mut records, .. }) = decode(&bytes) else { return };
    // Small domains make collisions likely; (tid, fd) pairs are unique as in a real walk.
    for (i, r) in records.iter_mut().enumerate() {
        r.tid = r.tgid % 8;
        r.tgid = r.tid;
        r.fd = i as u32;
        r.file_hash %= 16;
        r.ino %= 4;
        r.dev %= 2;
    }
    // The truth: pointer-hash classes refined by what one description cannot differ in (inode,
    // access mode) and by the low bits of pos; some fds gone.
    let truth: HashMap<(u32, u32), u64> = records
        .iter()
        .filter(|r| r.flags % 11 != 0)
        .map(|r| {
            let access = u64::from(r.flags & 0o10_000_003); // O_ACCMODE | O_PATH
            let truth = r.file_hash << 40 | access << 16 | r.ino << 8 | u64::from(r.dev) << 4 | (r.pos as u64 & 3);
            ((r.tid, r.fd), truth)
        })
        .collect();
    let evidence = Evidence { hashed: control & 1 == 0, full_hash: control & 2 == 0 };
    let mode = [VerifyMode::None, VerifyMode::Ambiguous, VerifyMode::All][usize::from(control >> 2) % 3];
    let (descriptions, stats) = identify(&records, evidence, mode, &mut FakeKernel(truth.clone()));
    if let Err(problem) = check_partition(&records, &descriptions) {
        panic!("{problem}");
    }
    assert!(stats.splits <= descriptions.len());
    if !evidence.hashed || mode == VerifyMode::All {
        let mut owner = HashMap::new();
        for (k, d) in descriptions.iter().enumerate().filter(|(_, d)| !d.unconfirmed) {
            for &i in &d.fds {
                match truth.get(&(records[i].tid, records[i].fd)) {
                    Some(&t) => assert_eq!(*owner.entry(t).or_insert(k), k, "one description split"),
                    None => assert_eq!(d.fds.len(), 1, "a vanished fd was merged"),
                }
            }
            let mut truths: Vec<u64> =
                d.fds.iter().filter_map(|&i| truth.get(&(records[i].tid, records[i].fd)).copied()).collect();
            truths.sort_unstable();
            truths.dedup();
            assert!(truths.len() <= 1, "descriptions {truths:?} merged into one");
        }
    }
    let mut tree = GenidTree::new();
    let mut ids: Vec<u64> = descriptions
        .iter()
        .map(|d| {
            let r = &records[d.fds[0]];
            tree.add(genid_of(r), Some(r.file_hash)).0
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), descriptions.len(), "ids are unique");
});
