//! Looking things up in a survey: fds, descriptions, processes, sockets — what reports, `check` and
//! `who` ask.

use std::collections::BTreeSet;

use super::{OpenFile, Survey, SurveyFd};
use crate::{record::FdRecord, socket::Socket, tree::OpenFileId};

impl Survey {
    /// Number of fds in the survey (the scope's and outside holders of its descriptions).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Whether `pid` is in the survey's scope.
    pub fn in_scope(&self, pid: u32) -> bool {
        self.scope.as_ref().is_none_or(|pids| pids.contains(&pid))
    }

    /// The `index`th fd (an index from [`OpenFile::holders`] or below [`Survey::len`]).
    pub fn fd(&self, index: usize) -> SurveyFd {
        let record = self.records[index];
        let file = &self.files[self.file_of[index] as usize];
        SurveyFd {
            record,
            id: file.id,
            in_scope: self.in_scope(record.tgid),
            unconfirmed: file.unconfirmed,
        }
    }

    /// Every fd, in walk order.
    pub fn fds(&self) -> impl ExactSizeIterator<Item = SurveyFd> + '_ {
        (0..self.records.len()).map(|i| self.fd(i))
    }

    /// The record of the `index`th fd.
    pub fn record(&self, index: usize) -> &FdRecord {
        &self.records[index]
    }

    /// Index in [`Survey::files`] of the description the `index`th fd holds.
    pub fn file_index_of(&self, index: usize) -> usize {
        self.file_of[index] as usize
    }

    /// The description the `index`th fd holds.
    pub fn file_of(&self, index: usize) -> &OpenFile {
        &self.files[self.file_of[index] as usize]
    }

    /// Index in [`Survey::files`] of the description with this id.
    pub fn file_index(&self, id: OpenFileId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// The description with this id.
    pub fn file(&self, id: OpenFileId) -> Option<&OpenFile> {
        self.by_id.get(&id).map(|&i| &self.files[i])
    }

    /// What the description is, when it is a socket the collector could read.
    pub fn socket(&self, file: &OpenFile) -> Option<Socket> {
        let r = &self.records[file.holders[0]];
        (u32::from(r.mode) & libc::S_IFMT == libc::S_IFSOCK)
            .then(|| self.sockets.get(&r.ino))
            .flatten()
            .map(Socket::from_record)
    }

    /// The id of `pid`'s fd `fd`.
    pub fn id_of(&self, pid: u32, fd: u32) -> Option<OpenFileId> {
        let index = self
            .records
            .iter()
            .position(|r| r.tgid == pid && r.fd == fd)?;
        Some(self.file_of(index).id)
    }

    /// Descriptions held by more than one fd (in the scope or outside it).
    pub fn shared_files(&self) -> impl Iterator<Item = &OpenFile> {
        self.files.iter().filter(|f| f.holders.len() > 1)
    }

    /// Descriptions that have at least one holder in the scope.
    pub fn files_in_scope(&self) -> impl Iterator<Item = &OpenFile> {
        self.files.iter().filter(|f| {
            f.holders
                .iter()
                .any(|&h| self.in_scope(self.records[h].tgid))
        })
    }

    /// Other descriptions of the same inode (opened separately: two `open()`s of one file, the two
    /// ends of one pipe).
    pub fn same_inode(&self, id: OpenFileId) -> Vec<OpenFileId> {
        let Some(file) = self.file(id) else {
            return Vec::new();
        };
        let r = &self.records[file.holders[0]];
        self.by_inode[&(r.dev, r.ino)]
            .iter()
            .map(|&i| self.files[i].id)
            .filter(|&other| other != id)
            .collect()
    }

    /// The processes of the scope that hold fds.
    pub fn processes_in_scope(&self) -> BTreeSet<u32> {
        self.records
            .iter()
            .map(|r| r.tgid)
            .filter(|&pid| self.in_scope(pid))
            .collect()
    }

    /// Number of fds held by processes of the scope.
    pub fn fds_in_scope(&self) -> usize {
        self.records
            .iter()
            .filter(|r| self.in_scope(r.tgid))
            .count()
    }

    /// Distinct processes among the fds.
    pub fn processes(&self) -> usize {
        self.records
            .iter()
            .map(|r| r.tgid)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// The survey restricted to the descriptions `files` (indices into [`Survey::files`]) and their
    /// holders, in walk order, ids unchanged: what `fdid who` reports.
    pub fn select(&self, files: &[usize]) -> Survey {
        let kept: BTreeSet<usize> = files.iter().copied().collect();
        let mut old_records: Vec<usize> = kept
            .iter()
            .flat_map(|&f| self.files[f].holders.iter().copied())
            .collect();
        old_records.sort_unstable();
        let mut new_index = vec![usize::MAX; self.records.len()];
        for (new, &old) in old_records.iter().enumerate() {
            new_index[old] = new;
        }
        let records: Vec<FdRecord> = old_records.iter().map(|&i| self.records[i]).collect();
        let mut file_of = vec![0u32; records.len()];
        let files: Vec<OpenFile> = kept
            .iter()
            .enumerate()
            .map(|(k, &f)| {
                let mut file = self.files[f].clone();
                for holder in &mut file.holders {
                    *holder = new_index[*holder];
                    file_of[*holder] = k as u32;
                }
                file
            })
            .collect();
        let (by_id, by_inode) = super::index(&records, &files);
        Survey {
            records,
            file_of,
            files,
            shared_tables: Vec::new(),
            stats: self.stats.clone(),
            sockets: self.sockets.clone(),
            scope: None,
            by_id,
            by_inode,
        }
    }
}
