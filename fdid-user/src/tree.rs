//! CRIU's genid tree (`criu/include/file-ids.h`), the unit that hands out open-file-description ids.
//!
//! - The **genid** of a description is `dev ^ ino ^ pos_hi ^ pos_lo` folded to 32 bits, as CRIU's
//!   `make_gen_id()` computes it (with the userspace `dev_t`). It is cheap and may collide.
//! - The **main tree** is keyed by genid; each node holds a **subtree** of the distinct descriptions that
//!   share its genid.
//! - Every description gets a **subid** unique across the whole survey, so the 64-bit id
//!   `genid << 32 | subid` (CRIU's `u.key`/`u.id` union) is unique: same id ⇔ same description.
//!
//! The tree only allocates and finds ids: deciding which fds are one description is [`crate::verify`]'s
//! job, and a description's genid comes from the first fd seen of it, so an offset that moves during the
//! walk cannot split it. No I/O here.

use std::{collections::BTreeMap, fmt};

use crate::record::FdRecord;

/// The identity of one open file description within one survey: genid in the high 32 bits, subid in the
/// low 32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpenFileId(pub u64);

impl OpenFileId {
    pub const fn new(genid: u32, subid: u32) -> Self {
        Self(((genid as u64) << 32) | subid as u64)
    }
    pub const fn genid(self) -> u32 {
        (self.0 >> 32) as u32
    }
    pub const fn subid(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for OpenFileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}:{}", self.genid(), self.subid())
    }
}

/// The genid of the description a record's fd holds: [`make_genid`] of its device (as userspace's
/// `dev_t`), inode and offset.
pub fn genid_of(record: &FdRecord) -> u32 {
    make_genid(crate::dev::to_user(record.dev), record.ino, record.pos)
}

/// CRIU's `make_gen_id()`: `(u32)dev ^ (u32)ino ^ (u32)pos ^ (u32)(pos >> 32)`, `dev` being the
/// userspace `dev_t`.
pub fn make_genid(dev: u64, ino: u64, pos: i64) -> u32 {
    let pos = pos as u64;
    (dev as u32) ^ (ino as u32) ^ (pos as u32) ^ ((pos >> 32) as u32)
}

/// The main tree: genid → the distinct descriptions (their subids) at that genid.
#[derive(Debug, Default)]
pub struct GenidTree {
    main: BTreeMap<u32, Vec<u32>>,
    next_subid: u32,
}

impl GenidTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a description distinct from every one already in the tree, whose first fd gave `genid`.
    pub fn add(&mut self, genid: u32) -> OpenFileId {
        // CRIU starts subids at 1; 0 never names a description.
        self.next_subid += 1;
        let subid = self.next_subid;
        self.main.entry(genid).or_default().push(subid);
        OpenFileId::new(genid, subid)
    }

    /// Number of distinct genids (main tree nodes).
    pub fn genids(&self) -> usize {
        self.main.len()
    }

    /// Ids of the descriptions at `genid`.
    pub fn ids_at(&self, genid: u32) -> Vec<OpenFileId> {
        self.main
            .get(&genid)
            .map(|subids| {
                subids
                    .iter()
                    .map(|&subid| OpenFileId::new(genid, subid))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of descriptions in the tree.
    pub fn len(&self) -> usize {
        self.next_subid as usize
    }

    pub fn is_empty(&self) -> bool {
        self.next_subid == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genid_folds_dev_ino_and_both_halves_of_the_offset() {
        assert_eq!(make_genid(0, 0, 0), 0);
        assert_eq!(make_genid(0x801, 0, 0), 0x801);
        assert_eq!(
            make_genid(0, 0x1_0000_0002, 0),
            2,
            "ino is truncated to 32 bits"
        );
        assert_eq!(make_genid(0, 0, 0x5_0000_0003), 5 ^ 3, "pos_hi ^ pos_lo");
        assert_eq!(make_genid(1, 2, 4), 7);
        // Overlapping bits cancel: xor, not or.
        assert_eq!(make_genid(0b1100, 0b1010, 0b0110), 0);
        assert_eq!(make_genid(0b11, 0, 0x1_0000_0001), 0b11);
    }

    #[test]
    fn a_records_genid_uses_the_userspace_device_number() {
        // 8:1 is 0x801 in userspace's dev_t, (8 << 20) | 1 in the record.
        let record = FdRecord {
            dev: (8 << 20) | 1,
            ino: 0x10,
            pos: 0x2_0000_0000,
            ..FdRecord::default()
        };
        assert_eq!(genid_of(&record), 0x801 ^ 0x10 ^ 2);
    }

    #[test]
    fn id_layout_is_genid_high_subid_low() {
        let id = OpenFileId::new(0xdead_beef, 7);
        assert_eq!(id.0, 0xdead_beef_0000_0007);
        assert_eq!((id.genid(), id.subid()), (0xdead_beef, 7));
        assert_eq!(id.to_string(), "deadbeef:7");
    }

    #[test]
    fn descriptions_with_one_genid_share_a_node_with_distinct_subids() {
        let mut tree = GenidTree::new();
        assert!(tree.is_empty());
        let a = tree.add(42);
        assert!(!tree.is_empty());
        let b = tree.add(42);
        let c = tree.add(7);
        assert_eq!((a.genid(), b.genid(), c.genid()), (42, 42, 7));
        assert_ne!(a, b, "a genid collision still gives two ids");
        assert_eq!(tree.ids_at(42), vec![a, b]);
        assert_eq!(tree.genids(), 2);
        assert_eq!(tree.len(), 3);
    }

    #[test]
    fn subids_are_unique_across_the_whole_survey() {
        let mut tree = GenidTree::new();
        let ids: Vec<OpenFileId> = (0..1000u32).map(|i| tree.add(i % 13)).collect();
        let mut subids: Vec<u32> = ids.iter().map(|id| id.subid()).collect();
        subids.sort_unstable();
        subids.dedup();
        assert_eq!(subids.len(), 1000);
        assert!(!subids.contains(&0));
    }
}
