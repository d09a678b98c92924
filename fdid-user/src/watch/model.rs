//! The fd tables `fdid watch` follows: seeded from a survey, kept up to date by events, and turned
//! into [`Change`]s — a new description, a new share, a holder gone, a description released — each
//! with how it came to be (`via`) and, for a share, the fd it came from.
//!
//! Descriptions are known by their pointer hash (the same key as the survey's), so a description
//! keeps the id the survey gave it, and one first seen here gets the id a later survey of this boot
//! gives it ([`GenidTree`] with the hash as subid). Fd tables are known by the hash of their
//! `files_struct` where the survey saw them, so processes sharing one (`CLONE_FILES`) share it here.
//! No I/O.

use std::collections::{BTreeMap, hash_map::Entry};

use rustc_hash::FxHashMap as HashMap;

use fdid_ebpf::watch::{EXEC_FD_WORDS, ExecFds, SentFiles, WatchEvent, via as kernel_via};

use super::event::Event;
use crate::{
    dev,
    survey::Survey,
    tree::{GenidTree, OpenFileId, make_genid},
};
pub use change::{Change, ChangeKind, Holder, Via};
use passing::Passing;

/// Which fd table a process uses: the survey's `files_struct` hash, or one made up here.
type Table = u64;

/// An fd table: fd → the hash of the description it holds, and how many processes use it.
#[derive(Debug, Default)]
struct Fds {
    fds: BTreeMap<u32, u64>,
    users: usize,
}

#[derive(Debug)]
struct Description {
    id: OpenFileId,
    /// How many fds (of any table) hold it.
    fds: usize,
    /// Its release was told while fds still held it here: the calls that dropped them are told
    /// after (close, dup2 over an open fd and exec are told at their end, the release inside them).
    released: bool,
}

/// The state.
#[derive(Debug, Default)]
pub struct Model {
    tables: HashMap<Table, Fds>,
    table_of: HashMap<u32, Table>,
    descriptions: HashMap<u64, Description>,
    tree: GenidTree,
    /// Files sent with SCM_RIGHTS and receipts whose send is not told yet.
    passing: Passing,
    /// Descriptions released while fds still held them here, and when: (hash, time).
    releasing: Vec<(u64, u64)>,
    /// Next made-up table (high bit set: survey hashes are masked to 64 bits, but a clash costs only
    /// a merged table of two processes).
    next_table: Table,
}

impl Model {
    /// The state a survey saw.
    pub fn from_survey(survey: &Survey) -> Self {
        let mut model = Self {
            next_table: 1 << 63,
            ..Self::default()
        };
        for fd in survey.fds() {
            let record = fd.record;
            let table = model.tables.entry(record.files_hash).or_default();
            if model
                .table_of
                .insert(record.tgid, record.files_hash)
                .is_none()
            {
                table.users += 1;
            }
            if table.fds.insert(record.fd, record.file_hash).is_none() {
                let description =
                    model
                        .descriptions
                        .entry(record.file_hash)
                        .or_insert(Description {
                            id: fd.id,
                            fds: 0,
                            released: false,
                        });
                description.fds += 1;
            }
        }
        for file in &survey.files {
            model.tree.reserve(file.id);
        }
        model
    }

    /// The id the model knows for the description `pid`'s fd `fd` holds.
    pub fn id_of(&self, pid: u32, fd: u32) -> Option<OpenFileId> {
        let hash = self.table(pid)?.get(&fd)?;
        Some(self.descriptions.get(hash)?.id)
    }

    /// Applies one event; returns what changed.
    pub fn apply(&mut self, event: &Event) -> Vec<Change> {
        let mut changes = Vec::new();
        self.apply_into(event, &mut changes);
        changes
    }

    /// Applies one event; appends what changed to `changes` (unless held back behind a receipt
    /// waiting for its send, see [`passing`]).
    pub fn apply_into(&mut self, event: &Event, changes: &mut Vec<Change>) {
        let start = changes.len();
        self.apply_event(event, changes);
        self.passing.route(changes, start);
    }

    fn apply_event(&mut self, event: &Event, changes: &mut Vec<Change>) {
        match event {
            Event::Install(e) => self.install(e, changes),
            Event::Close(e) => {
                // What the fd holds after the close (0: nothing). Already what the model has there:
                // an open that took the number since was told first, or the survey's walk saw it.
                let held = self.table(e.pid).and_then(|table| table.get(&e.fd));
                if e.file_hash == 0 || held != Some(&e.file_hash) {
                    self.close(e.pid, e.fd, e.time_ns, Via::Close, changes);
                }
            }
            Event::CloseRange(e) => {
                let fds: Vec<u32> = self
                    .table(e.pid)
                    .map(|table| table.range(e.fd..=e.aux).map(|(fd, _)| *fd).collect())
                    .unwrap_or_default();
                for fd in fds {
                    self.close(e.pid, fd, e.time_ns, Via::CloseRange, changes);
                }
            }
            Event::Fork(e) => self.fork(e, changes),
            Event::Exec(e, fds) => self.exec(e, fds, changes),
            Event::Exit(e) => self.exit(e, changes),
            Event::Release(e) => match self.descriptions.get_mut(&e.file_hash) {
                // Still held here: said once the calls that dropped its fds are told, or when
                // they have not come in time (`expire_held`).
                Some(description) if description.fds > 0 => {
                    description.released = true;
                    self.releasing.push((e.file_hash, e.time_ns));
                }
                Some(_) => self.release(e.file_hash, e.time_ns, changes),
                None => {}
            },
            Event::Send(e, files) => self.send(e, files),
        }
    }

    fn table(&self, pid: u32) -> Option<&BTreeMap<u32, u64>> {
        Some(&self.tables.get(self.table_of.get(&pid)?)?.fds)
    }

    /// Makes `pid` a user of a new table holding `fds`.
    fn new_table(&mut self, pid: u32, fds: BTreeMap<u32, u64>) {
        self.next_table += 1;
        self.table_of.insert(pid, self.next_table);
        self.tables.insert(self.next_table, Fds { fds, users: 1 });
    }

    /// The table of `pid`, a new empty one for a process not seen yet.
    fn table_mut(&mut self, pid: u32) -> &mut BTreeMap<u32, u64> {
        if !self.table_of.contains_key(&pid) {
            self.new_table(pid, BTreeMap::new());
        }
        let table = self.table_of[&pid];
        &mut self.tables.entry(table).or_default().fds
    }

    fn install(&mut self, e: &WatchEvent, changes: &mut Vec<Change>) {
        let previous = self.table_mut(e.pid).insert(e.fd, e.file_hash);
        match previous {
            // Already known (an event the survey's walk had seen): nothing changed.
            Some(hash) if hash == e.file_hash => return,
            // dup2/dup3 onto an open fd closes what it held; any other call takes a free number,
            // so the fd was closed and its close is still to be told.
            Some(hash) => self.lose(
                hash,
                Holder {
                    pid: e.pid,
                    fd: e.fd,
                },
                e.time_ns,
                if e.via == kernel_via::DUP {
                    Via::Dup
                } else {
                    Via::Close
                },
                changes,
            ),
            None => {}
        }
        let holder = Holder {
            pid: e.pid,
            fd: e.fd,
        };
        let via = Via::of_install(e.via);
        let from = match via {
            Via::Dup => Some(Holder {
                pid: e.pid,
                fd: e.aux,
            }),
            Via::PidfdGetfd => Some(Holder {
                pid: e.from_pid,
                fd: e.aux,
            }),
            // Named by `passing`, below.
            _ => None,
        };
        let (kind, via, id) = match self.descriptions.entry(e.file_hash) {
            // open, socket, pipe… always make a new description: one known by the same hash was
            // freed and its address reused (its release was not seen).
            Entry::Occupied(mut known) if via != Via::Open => {
                let description = known.get_mut();
                description.fds += 1;
                (ChangeKind::Share, via, description.id)
            }
            entry => {
                if let Entry::Occupied(reused) = &entry {
                    self.tree.forget(reused.get().id);
                }
                let genid = make_genid(dev::to_user(e.dev), e.ino, e.pos);
                let id = self.tree.add(genid, Some(e.file_hash));
                entry.insert_entry(Description {
                    id,
                    fds: 1,
                    released: false,
                });
                // Passed in from a process the model does not follow: still a share.
                let kind = if via == Via::Open {
                    ChangeKind::New
                } else {
                    ChangeKind::Share
                };
                (kind, via, id)
            }
        };
        let change = Change {
            time_ns: e.time_ns,
            kind,
            via,
            holder: Some(holder),
            id,
            from,
        };
        if via == Via::ScmRights {
            self.passing.receive(e.file_hash, change, changes);
        } else {
            changes.push(change);
        }
    }

    fn close(&mut self, pid: u32, fd: u32, time_ns: u64, via: Via, changes: &mut Vec<Change>) {
        let Some(table) = self.table_of.get(&pid).and_then(|t| self.tables.get_mut(t)) else {
            return;
        };
        if let Some(hash) = table.fds.remove(&fd) {
            self.lose(hash, Holder { pid, fd }, time_ns, via, changes);
        }
    }

    /// `holder` no longer holds the description `hash`.
    fn lose(
        &mut self,
        hash: u64,
        holder: Holder,
        time_ns: u64,
        via: Via,
        changes: &mut Vec<Change>,
    ) {
        if let Some(description) = self.descriptions.get_mut(&hash) {
            description.fds = description.fds.saturating_sub(1);
            changes.push(Change {
                time_ns,
                kind: ChangeKind::Gone,
                via,
                holder: Some(holder),
                id: description.id,
                from: None,
            });
            if description.fds == 0 && description.released {
                self.release(hash, time_ns, changes);
            }
        }
    }

    /// The description `hash` was released: forgotten, and said.
    fn release(&mut self, hash: u64, time_ns: u64, changes: &mut Vec<Change>) {
        if let Some(description) = self.descriptions.remove(&hash) {
            self.tree.forget(description.id);
            changes.push(Change {
                time_ns,
                kind: ChangeKind::Released,
                via: Via::Close,
                holder: None,
                id: description.id,
                from: None,
            });
        }
    }

    fn fork(&mut self, e: &WatchEvent, changes: &mut Vec<Change>) {
        let (parent, child) = (e.pid, e.fd);
        // A child the survey already walked: its table is known.
        if self.table_of.contains_key(&child) {
            return;
        }
        let Some(&parent_table) = self.table_of.get(&parent) else {
            return;
        };
        let Some(parent_fds) = self.tables.get_mut(&parent_table) else {
            return;
        };
        let via = if e.aux == 1 {
            parent_fds.users += 1;
            Via::CloneFiles
        } else {
            Via::Fork
        };
        for (&fd, hash) in &parent_fds.fds {
            let Some(description) = self.descriptions.get_mut(hash) else {
                continue;
            };
            if via == Via::Fork {
                description.fds += 1;
            }
            changes.push(Change {
                time_ns: e.time_ns,
                kind: ChangeKind::Share,
                via,
                holder: Some(Holder { pid: child, fd }),
                id: description.id,
                from: Some(Holder { pid: parent, fd }),
            });
        }
        match via {
            // A copy of the parent's table; with CLONE_FILES, the parent's table itself.
            Via::Fork => {
                let fds = parent_fds.fds.clone();
                self.new_table(child, fds);
            }
            _ => {
                self.table_of.insert(child, parent_table);
            }
        }
    }

    fn exec(&mut self, e: &WatchEvent, open: &ExecFds, changes: &mut Vec<Change>) {
        let Some(&table) = self.table_of.get(&e.pid) else {
            return;
        };
        let Some(old) = self.tables.get_mut(&table) else {
            return;
        };
        let fds = old.fds.clone();
        // exec unshares a table other processes use (CLONE_FILES): a copy of its own.
        if old.users > 1 {
            old.users -= 1;
            self.new_table(e.pid, fds.clone());
            for hash in fds.values() {
                if let Some(description) = self.descriptions.get_mut(hash) {
                    description.fds += 1;
                }
            }
        }
        for (fd, hash) in fds {
            let holder = Holder { pid: e.pid, fd };
            match still_open(open, fd) {
                Some(true) => {
                    if let Some(description) = self.descriptions.get(&hash) {
                        changes.push(Change {
                            time_ns: e.time_ns,
                            kind: ChangeKind::Kept,
                            via: Via::Exec,
                            holder: Some(holder),
                            id: description.id,
                            from: None,
                        });
                    }
                }
                Some(false) => self.close(e.pid, fd, e.time_ns, Via::Exec, changes),
                None => {}
            }
        }
    }

    fn exit(&mut self, e: &WatchEvent, changes: &mut Vec<Change>) {
        let Some(table) = self.table_of.remove(&e.pid) else {
            return;
        };
        let Some(old) = self.tables.get_mut(&table) else {
            return;
        };
        old.users = old.users.saturating_sub(1);
        if old.users > 0 {
            // The table lives on in the other processes: this holder alone is gone.
            for (&fd, hash) in &old.fds {
                if let Some(description) = self.descriptions.get(hash) {
                    changes.push(Change {
                        time_ns: e.time_ns,
                        kind: ChangeKind::Gone,
                        via: Via::Exit,
                        holder: Some(Holder { pid: e.pid, fd }),
                        id: description.id,
                        from: None,
                    });
                }
            }
            return;
        }
        let fds = self.tables.remove(&table).map(|old| old.fds);
        for (fd, hash) in fds.unwrap_or_default() {
            self.lose(
                hash,
                Holder { pid: e.pid, fd },
                e.time_ns,
                Via::Exit,
                changes,
            );
        }
    }

    fn send(&mut self, e: &WatchEvent, files: &SentFiles) {
        let count = (files.count as usize).min(files.file_hashes.len());
        for (&fd, &hash) in files.fds[..count].iter().zip(&files.file_hashes[..count]) {
            if hash != 0 {
                self.passing.send(Holder { pid: e.pid, fd }, hash);
            }
        }
    }

    /// What waited since before `before_ns` goes out: receipts of files whose send was not told
    /// (naming no sender, see [`passing`]), releases of descriptions fds still held here.
    pub fn expire_held(&mut self, before_ns: u64, changes: &mut Vec<Change>) {
        self.passing.expire(before_ns, changes);
        // Releases still waiting for calls that did not come (untraced, or out of scope).
        if self.releasing.is_empty() {
            return;
        }
        let start = changes.len();
        let mut waiting = std::mem::take(&mut self.releasing);
        waiting.retain(|&(hash, time_ns)| {
            let released = self
                .descriptions
                .get(&hash)
                .is_some_and(|description| description.released);
            if released && time_ns < before_ns {
                self.release(hash, time_ns, changes);
            }
            released && time_ns >= before_ns
        });
        self.releasing = waiting;
        self.passing.route(changes, start);
    }
}

/// Whether `fd` is set in the open-fd bitmap an exec event carries; `None` beyond what it read.
fn still_open(open: &ExecFds, fd: u32) -> Option<bool> {
    if fd >= open.max_fds {
        return Some(false);
    }
    let word = fd as usize / 64;
    if word >= open.words as usize || word >= EXEC_FD_WORDS {
        return None;
    }
    Some(open.open_fds[word] & (1 << (fd % 64)) != 0)
}

mod change;
mod passing;
#[cfg(test)]
mod tests;
