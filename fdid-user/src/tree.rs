//! CRIU's genid tree (`criu/include/file-ids.h`), the unit that hands out open-file-description ids.
//!
//! - The **genid** of a description is `dev ^ ino ^ pos_hi ^ pos_lo` folded to 32 bits, as CRIU's
//!   `make_gen_id()` computes it (with the userspace `dev_t`). It is cheap and may collide.
//! - The **main tree** is keyed by genid; each node holds a **subtree** of the distinct descriptions that
//!   share its genid.
//! - Every description gets a **subid** distinct from the others at its genid, so the 64-bit id
//!   `genid << 32 | subid` (CRIU's `u.key`/`u.id` union) is unique: same id ⇔ same description.
//!   Where the collector hashes the `struct file` pointer (BPF, under the boot's key, see
//!   [`crate::boot_key`]), the subid is that hash folded to 32 bits, so another run of the same boot
//!   — a later survey, `fdid who`, `fdid watch` — gives a description the same id as long as its
//!   genid holds (CRIU's genid has the offset in it: a description whose offset moved gets another
//!   genid). Two descriptions whose folded hashes meet at one genid (about one in 2³² per pair) take
//!   the next free subid in the order they are met. Without hashes (procfs) subids count from 1, as
//!   CRIU's do.
//!
//! The tree only allocates and finds ids: deciding which fds are one description is [`crate::verify`]'s
//! job, and a description's genid comes from the first fd seen of it, so an offset that moves during the
//! walk cannot split it. No I/O here.

use std::fmt;

use rustc_hash::FxHashMap as HashMap;

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
        write!(f, "{:08x}:{:x}", self.genid(), self.subid())
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

/// The main tree: genid → the distinct descriptions (their subids) at that genid. Looked up by
/// genid only (CRIU's rbtree; its order is never used).
#[derive(Debug, Default)]
pub struct GenidTree {
    main: HashMap<u32, Subids>,
    /// Descriptions added.
    len: usize,
    /// The last subid counted out to a description without a hash.
    counted: u32,
}

/// The subids at one genid: nearly always one, kept without an allocation of its own (a watch
/// adds and forgets one per new description).
#[derive(Debug, Default)]
struct Subids {
    /// 0 (no description's subid): none.
    first: u32,
    more: Vec<u32>,
}

impl Subids {
    fn contains(&self, subid: u32) -> bool {
        subid != 0 && (self.first == subid || self.more.contains(&subid))
    }

    fn push(&mut self, subid: u32) {
        if self.first == 0 {
            self.first = subid;
        } else {
            self.more.push(subid);
        }
    }

    /// Takes `subid` out; whether it was there.
    fn remove(&mut self, subid: u32) -> bool {
        if subid != 0 && self.first == subid {
            self.first = self.more.pop().unwrap_or(0);
            return true;
        }
        match self.more.iter().position(|&s| s == subid) {
            Some(at) => {
                self.more.swap_remove(at);
                true
            }
            None => false,
        }
    }

    fn is_empty(&self) -> bool {
        self.first == 0
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (self.first != 0)
            .then_some(self.first)
            .into_iter()
            .chain(self.more.iter().copied())
    }
}

impl GenidTree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a description distinct from every one already in the tree, whose first fd gave `genid`;
    /// `file_hash` is its pointer hash where the collector has one.
    pub fn add(&mut self, genid: u32, file_hash: Option<u64>) -> OpenFileId {
        let subids = self.main.entry(genid).or_default();
        let mut subid = match file_hash {
            Some(hash) => subid_of(hash),
            None => {
                self.counted += 1;
                self.counted
            }
        };
        // CRIU starts subids at 1; 0 never names a description.
        while subid == 0 || subids.contains(subid) {
            subid = subid.wrapping_add(1);
        }
        subids.push(subid);
        self.len += 1;
        OpenFileId::new(genid, subid)
    }

    /// Takes `id` for a description known from elsewhere (a survey), so that [`GenidTree::add`]
    /// gives every other description at its genid another subid.
    pub fn reserve(&mut self, id: OpenFileId) {
        let subids = self.main.entry(id.genid()).or_default();
        if id.subid() != 0 && !subids.contains(id.subid()) {
            subids.push(id.subid());
            self.len += 1;
        }
    }

    /// Gives up `id` (its description is gone), so that a description met later may have it.
    pub fn forget(&mut self, id: OpenFileId) {
        if let Some(subids) = self.main.get_mut(&id.genid())
            && subids.remove(id.subid())
        {
            self.len -= 1;
            if subids.is_empty() {
                self.main.remove(&id.genid());
            }
        }
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
                    .map(|subid| OpenFileId::new(genid, subid))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Number of descriptions in the tree.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A pointer hash folded to a subid.
pub fn subid_of(file_hash: u64) -> u32 {
    (file_hash ^ (file_hash >> 32)) as u32
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
        let a = tree.add(42, None);
        assert!(!tree.is_empty());
        let b = tree.add(42, None);
        let c = tree.add(7, None);
        assert_eq!((a.genid(), b.genid(), c.genid()), (42, 42, 7));
        assert_ne!(a, b, "a genid collision still gives two ids");
        assert_eq!(tree.ids_at(42), vec![a, b]);
        assert_eq!(tree.genids(), 2);
        assert_eq!(tree.len(), 3);
    }

    #[test]
    fn without_hashes_subids_count_from_one_across_the_survey() {
        let mut tree = GenidTree::new();
        let subids: Vec<u32> = (0..1000u32)
            .map(|i| tree.add(i % 13, None).subid())
            .collect();
        assert_eq!(subids, (1..=1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_hashed_description_gets_the_same_id_whatever_else_the_survey_holds() {
        let (hash, other) = (0x1234_5678_9abc_def0, 0x1111_1111_2222_2222);
        let mut one = GenidTree::new();
        let alone = one.add(42, Some(hash));
        let mut two = GenidTree::new();
        two.add(42, Some(other));
        two.add(7, Some(hash));
        assert_eq!(two.add(42, Some(hash)), alone, "met after others, same id");
        assert_eq!(alone.subid(), 0x1234_5678 ^ 0x9abc_def0, "the hash folded");
    }

    #[test]
    fn folded_hashes_that_meet_at_one_genid_take_the_next_free_subid() {
        let mut tree = GenidTree::new();
        // Two hashes with one fold, and one folding to 0 (never a subid).
        let a = tree.add(5, Some(0x0000_0001_0000_0003));
        let b = tree.add(5, Some(0x0000_0003_0000_0001));
        let zero = tree.add(5, Some(0x0000_0009_0000_0009));
        assert_eq!((a.subid(), b.subid(), zero.subid()), (2, 3, 1));
        // At another genid the same fold is free.
        assert_eq!(tree.add(6, Some(0x0000_0003_0000_0001)).subid(), 2);
        assert_eq!(tree.len(), 4);
    }

    #[test]
    fn a_reserved_id_is_not_given_again() {
        let mut tree = GenidTree::new();
        let known = OpenFileId::new(5, subid_of(0x0000_0001_0000_0003));
        tree.reserve(known);
        tree.reserve(known);
        assert_eq!(tree.len(), 1);
        let other = tree.add(5, Some(0x0000_0003_0000_0001));
        assert_ne!(
            other, known,
            "a hash folding onto a reserved subid takes the next"
        );
        assert_eq!(tree.ids_at(5), vec![known, other]);
        tree.forget(known);
        assert_eq!((tree.ids_at(5), tree.len()), (vec![other], 1));
        assert_eq!(
            tree.add(5, Some(0x0000_0001_0000_0003)),
            known,
            "free again"
        );
    }

    #[test]
    fn forgetting_one_of_three_at_a_genid_keeps_the_other_two_and_the_last_empties_the_node() {
        let mut tree = GenidTree::new();
        let [a, b, c] = [(); 3].map(|()| tree.add(9, None));
        let sorted = |mut ids: Vec<OpenFileId>| {
            ids.sort();
            ids
        };
        tree.forget(b);
        assert_eq!(sorted(tree.ids_at(9)), vec![a, c]);
        tree.forget(OpenFileId::new(9, 77));
        assert_eq!(tree.len(), 2, "an id never given changes nothing");
        tree.forget(a);
        assert_eq!(tree.ids_at(9), vec![c]);
        tree.forget(c);
        assert_eq!((tree.genids(), tree.len()), (0, 0));
        assert!(tree.ids_at(9).is_empty());
    }

    #[test]
    fn ids_print_as_hex_genid_and_subid() {
        assert_eq!(
            OpenFileId::new(0x0098_3e1a, 0x8c2f_41d4).to_string(),
            "00983e1a:8c2f41d4"
        );
        assert_eq!(OpenFileId::new(5, 1).to_string(), "00000005:1");
    }
}
