//! What every result of [`identify`](super::identify) must be, whatever the kernel answered: a
//! partition of the records. For tests and fuzzing.

use super::{Description, fixed_flags};
use crate::record::FdRecord;

/// How a list of descriptions fails to be a valid partition of the records.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("description {0} is empty")]
    Empty(usize),
    #[error("description {0} is out of order (descriptions go by their first fd)")]
    OutOfOrder(usize),
    #[error("unconfirmed description {description} has {fds} fds (one at most)")]
    UnconfirmedGroup { description: usize, fds: usize },
    #[error("description {0}: fds not in record order")]
    FdsOutOfOrder(usize),
    #[error("description {description} names record {record} of {records}")]
    NoSuchRecord {
        description: usize,
        record: usize,
        records: usize,
    },
    #[error("record {0} is in two descriptions")]
    Twice(usize),
    #[error("description {0} mixes inodes or access modes")]
    Mixed(usize),
    #[error("record {0} is in no description")]
    Missing(usize),
}

/// Checks that `descriptions` is a valid result of [`identify`](super::identify) over `records`: every
/// record in exactly one description, descriptions ordered by their first fd, fds in record order,
/// everything certainly different kept apart, unconfirmed descriptions single.
pub fn check_partition(
    records: &[FdRecord],
    descriptions: &[Description],
) -> Result<(), PartitionError> {
    let mut seen = vec![false; records.len()];
    let mut previous_first = None;
    for (k, description) in descriptions.iter().enumerate() {
        let Some(&first) = description.fds.first() else {
            return Err(PartitionError::Empty(k));
        };
        if previous_first.is_some_and(|previous| previous >= first) {
            return Err(PartitionError::OutOfOrder(k));
        }
        previous_first = Some(first);
        if description.unconfirmed && description.fds.len() != 1 {
            return Err(PartitionError::UnconfirmedGroup {
                description: k,
                fds: description.fds.len(),
            });
        }
        if !description.fds.windows(2).all(|pair| pair[0] < pair[1]) {
            return Err(PartitionError::FdsOutOfOrder(k));
        }
        let key = |i: usize| {
            (
                records[i].dev,
                records[i].ino,
                fixed_flags(records[i].flags),
            )
        };
        for &i in &description.fds {
            match seen.get_mut(i) {
                None => {
                    return Err(PartitionError::NoSuchRecord {
                        description: k,
                        record: i,
                        records: records.len(),
                    });
                }
                Some(true) => return Err(PartitionError::Twice(i)),
                Some(slot) => *slot = true,
            }
            if key(i) != key(first) {
                return Err(PartitionError::Mixed(k));
            }
        }
    }
    match seen.iter().position(|&s| !s) {
        Some(i) => Err(PartitionError::Missing(i)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records 0 and 1 are fds of one inode, 2 of another.
    fn records() -> Vec<FdRecord> {
        [10, 10, 11]
            .iter()
            .map(|&ino| FdRecord {
                ino,
                flags: 2,
                ..FdRecord::default()
            })
            .collect()
    }

    fn of(groups: &[&[usize]]) -> Vec<Description> {
        groups
            .iter()
            .map(|fds| Description {
                fds: fds.to_vec(),
                ..Description::default()
            })
            .collect()
    }

    #[test]
    fn a_valid_partition_passes() {
        assert_eq!(check_partition(&records(), &of(&[&[0, 1], &[2]])), Ok(()));
        assert_eq!(
            check_partition(&records(), &of(&[&[0], &[1], &[2]])),
            Ok(())
        );
    }

    #[test]
    fn every_way_of_not_being_a_partition_is_named() {
        let records = records();
        let check = |groups: &[&[usize]]| check_partition(&records, &of(groups));
        assert_eq!(check(&[&[0, 1], &[], &[2]]), Err(PartitionError::Empty(1)));
        assert_eq!(check(&[&[2], &[0, 1]]), Err(PartitionError::OutOfOrder(1)));
        assert_eq!(
            check(&[&[0, 1], &[0, 2]]),
            Err(PartitionError::OutOfOrder(1))
        );
        assert_eq!(
            check(&[&[1, 0], &[2]]),
            Err(PartitionError::FdsOutOfOrder(0))
        );
        assert_eq!(
            check(&[&[0, 0, 1], &[2]]),
            Err(PartitionError::FdsOutOfOrder(0))
        );
        assert_eq!(
            check(&[&[0, 1], &[2, 3]]),
            Err(PartitionError::NoSuchRecord {
                description: 1,
                record: 3,
                records: 3
            })
        );
        assert_eq!(check(&[&[0, 1], &[1, 2]]), Err(PartitionError::Twice(1)));
        assert_eq!(check(&[&[0, 1, 2]]), Err(PartitionError::Mixed(0)));
        assert_eq!(check(&[&[0, 1]]), Err(PartitionError::Missing(2)));
        let mut unconfirmed = of(&[&[0, 1], &[2]]);
        unconfirmed[0].unconfirmed = true;
        assert_eq!(
            check_partition(&records, &unconfirmed),
            Err(PartitionError::UnconfirmedGroup {
                description: 0,
                fds: 2
            })
        );
    }
}
