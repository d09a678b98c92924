//! What `fdid watch` prints: one line per change (words, or one JSON object per line), and at the
//! end a summary — shares by kind and the provenance of each share that began while watching.

use std::{
    collections::{BTreeMap, VecDeque},
    io::{self, Write},
    rc::Rc,
};

use rustc_hash::FxHashMap as HashMap;

use super::{
    model::{Change, ChangeKind, Holder, Via},
    tracer::Unfollowed,
};
use crate::{report::json::write_str, tree::OpenFileId};

mod json_line;
use json_line::LineMaker;

/// Stories of shares kept for the summary: a long watch of a busy machine forgets the oldest
/// (about 6 MB).
pub const PROVENANCE_KEPT: usize = 100_000;

/// A share that began while watching, and what happened to it since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    pub holder: Holder,
    pub id: OpenFileId,
    pub via: Via,
    pub from: Option<Holder>,
    /// Kept across an exec (no `O_CLOEXEC`): `Some(true)`; closed by one: `Some(false)`.
    pub exec: Option<bool>,
    /// How it ended, if it did.
    pub ended: Option<Via>,
}

/// A process's name, and the same as a JSON string (made once, written on every line).
struct Comm {
    name: String,
    json: Vec<u8>,
    /// As the programs said it (NUL-padded), to tell at a glance that an event says the same.
    raw: [u8; 16],
}

impl Comm {
    fn new(name: String, raw: [u8; 16]) -> Self {
        let mut json = Vec::new();
        // Writing to a Vec cannot fail.
        write_str(&mut json, &name).expect("writing to memory");
        Self { name, json, raw }
    }
}

/// `pid`'s name in `comms`, asked of `comm_of` the first time.
fn known_comm<'a>(
    comms: &'a mut HashMap<u32, Rc<Comm>>,
    comm_of: &dyn Fn(u32) -> String,
    pid: u32,
) -> &'a Comm {
    comms
        .entry(pid)
        .or_insert_with(|| Rc::new(Comm::new(comm_of(pid), [0; 16])))
}

/// How many distinct process names are kept once made (most machines have a few hundred).
const NAMES_KEPT: usize = 1 << 16;

/// Bytes gathered before they are written out in the middle of a batch.
const WRITE_AT: usize = 1 << 18;

/// Prints changes as they come and keeps what the summary needs.
pub struct Printer<W: Write> {
    /// Where the lines go, written to in large pieces.
    sink: W,
    /// Lines not yet written to `sink`: each line is made here, in place.
    out: Vec<u8>,
    json: bool,
    /// Makes the JSON lines.
    line: LineMaker,
    comms: HashMap<u32, Rc<Comm>>,
    /// The process and name [`Printer::learn_comm`] last found or put in `comms` (no event says
    /// an empty name, so the start matches none).
    learned: (u32, [u8; 16]),
    /// Each name the events said, made once: a forked child shares its parent's (cleared when it
    /// grows past [`NAMES_KEPT`]).
    names: HashMap<[u8; 16], Rc<Comm>>,
    comm_of: Box<dyn Fn(u32) -> String>,
    shares: BTreeMap<Via, u64>,
    /// The latest [`Printer::keep`] shares; `unlisted` earlier ones were let go.
    provenance: VecDeque<Provenance>,
    unlisted: u64,
    keep: usize,
    /// Number (counted from the first share, listed or not) of each holder's share, while it lasts.
    latest: HashMap<Holder, u64>,
}

impl<W: Write> Printer<W> {
    /// `comm_of` names a process the events have not named yet.
    pub fn new(sink: W, json: bool, comm_of: impl Fn(u32) -> String + 'static) -> Self {
        Self {
            sink,
            out: Vec::with_capacity(WRITE_AT + (1 << 12)),
            json,
            line: LineMaker::default(),
            comms: HashMap::default(),
            learned: (0, [0; 16]),
            names: HashMap::default(),
            comm_of: Box::new(comm_of),
            shares: BTreeMap::new(),
            provenance: VecDeque::new(),
            unlisted: 0,
            keep: PROVENANCE_KEPT,
            latest: HashMap::default(),
        }
    }

    /// What an event said a process is called (its comm at that moment).
    pub fn learn_comm(&mut self, pid: u32, raw: &[u8; 16]) {
        // Mostly the process the last event was of, or the name it had, said the same way.
        if self.learned == (pid, *raw) {
            return;
        }
        if self.comms.get(&pid).is_some_and(|known| known.raw == *raw) {
            self.learned = (pid, *raw);
            return;
        }
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        if end == 0 {
            return;
        }
        if self.names.len() >= NAMES_KEPT {
            self.names.clear();
        }
        let comm = self.names.entry(*raw).or_insert_with(|| {
            let name = String::from_utf8_lossy(&raw[..end]).into_owned();
            Rc::new(Comm::new(name, *raw))
        });
        self.comms.insert(pid, Rc::clone(comm));
        self.learned = (pid, *raw);
        self.line.forget();
    }

    fn comm(&mut self, pid: u32) -> String {
        known_comm(&mut self.comms, &self.comm_of, pid).name.clone()
    }

    /// The line saying the programs are attached and the survey taken.
    pub fn ready(
        &mut self,
        time_ns: u64,
        processes: usize,
        fds: usize,
        unfollowed: &[Unfollowed],
    ) -> io::Result<()> {
        if self.json {
            write!(
                self.out,
                "{{\"event\":\"ready\",\"time_ns\":{time_ns},\"processes\":{processes},\"fds\":{fds},\"unfollowed\":"
            )?;
            write_unfollowed(&mut self.out, unfollowed)?;
            writeln!(self.out, "}}")?;
        } else {
            writeln!(
                self.out,
                "watching {processes} processes, {fds} fds (Ctrl-C to stop)"
            )?;
            for u in unfollowed {
                writeln!(
                    self.out,
                    "cannot follow {} on this kernel ({}: {})",
                    u.what, u.target, u.reason
                )?;
            }
        }
        self.flush()
    }

    /// Writes out what is buffered (after each batch of events).
    pub fn flush(&mut self) -> io::Result<()> {
        self.sink.write_all(&self.out)?;
        self.out.clear();
        self.sink.flush()
    }

    /// Writes out what is buffered once there is much of it (in the middle of a batch).
    fn write_if_full(&mut self) -> io::Result<()> {
        if self.out.len() < WRITE_AT {
            return Ok(());
        }
        self.sink.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Prints one change and notes it for the summary (buffered: see [`Printer::flush`]).
    pub fn change(&mut self, change: &Change) -> io::Result<()> {
        self.note(change);
        let holder = change.holder;
        if self.json {
            // Named only when the line's shared parts are made (once for a fork's or an exit's
            // lines).
            let (comms, comm_of) = (&mut self.comms, &self.comm_of);
            self.line.write(&mut self.out, change, move |pid| {
                known_comm(comms, comm_of, pid).json.as_slice()
            });
            return self.write_if_full();
        }
        let comm = holder.map(|h| self.comm(h.pid));
        let from_comm = change.from.map(|h| self.comm(h.pid));
        let who = match (holder, &comm) {
            (Some(h), Some(comm)) => format!("{comm}({}) fd {}", h.pid, h.fd),
            _ => String::new(),
        };
        let id = change.id;
        let line = match change.kind {
            ChangeKind::New => format!("{who} holds a new description {id}"),
            ChangeKind::Share => match (change.from, from_comm) {
                (Some(from), Some(from_comm)) => format!(
                    "{who} now shares {id} with {from_comm}({}):{} — {}",
                    from.pid,
                    from.fd,
                    share_reason(change.via)
                ),
                _ => format!(
                    "{who} now holds {id} — {}, from an unknown holder",
                    share_reason(change.via)
                ),
            },
            ChangeKind::Kept => format!("{who} still holds {id} after exec (no O_CLOEXEC)"),
            ChangeKind::Gone => {
                format!("{who} no longer holds {id} — {}", gone_reason(change.via))
            }
            ChangeKind::Released => format!("{id} released (its last reference went)"),
        };
        writeln!(self.out, "{line}")?;
        self.write_if_full()
    }

    /// Says that the ring buffer overflowed: `count` events lost so far.
    pub fn lost(&mut self, time_ns: u64, count: u64) -> io::Result<()> {
        if self.json {
            writeln!(
                self.out,
                "{{\"event\":\"lost\",\"time_ns\":{time_ns},\"count\":{count}}}"
            )?;
        } else {
            writeln!(
                self.out,
                "{count} events lost so far (the ring buffer was full): what follows may be incomplete"
            )?;
        }
        self.flush()
    }

    fn note(&mut self, change: &Change) {
        let Some(holder) = change.holder else {
            return;
        };
        match change.kind {
            ChangeKind::Share => {
                *self.shares.entry(change.via).or_default() += 1;
                if self.provenance.len() == self.keep {
                    self.provenance.pop_front();
                    self.unlisted += 1;
                }
                let number = self.unlisted + self.provenance.len() as u64;
                self.latest.insert(holder, number);
                self.provenance.push_back(Provenance {
                    holder,
                    id: change.id,
                    via: change.via,
                    from: change.from,
                    exec: None,
                    ended: None,
                });
            }
            ChangeKind::Kept | ChangeKind::Gone => {
                let listed = self
                    .latest
                    .get(&holder)
                    .and_then(|&number| number.checked_sub(self.unlisted))
                    .map(|index| index as usize);
                if let Some(share) = listed.and_then(|index| self.provenance.get_mut(index))
                    && share.id == change.id
                {
                    if change.via == Via::Exec {
                        share.exec = Some(change.kind == ChangeKind::Kept);
                    }
                    if change.kind == ChangeKind::Gone {
                        share.ended = Some(change.via);
                    }
                }
                if change.kind == ChangeKind::Gone {
                    // Its story is told: only shares still held are looked up.
                    self.latest.remove(&holder);
                }
            }
            ChangeKind::New | ChangeKind::Released => {}
        }
    }

    /// The shares that began while watching (the latest [`PROVENANCE_KEPT`]).
    pub fn provenance(&self) -> &VecDeque<Provenance> {
        &self.provenance
    }

    /// Keeps the stories of the latest `shares` shares only (tests).
    #[cfg(test)]
    pub fn keep(mut self, shares: usize) -> Self {
        self.keep = shares;
        self
    }

    /// The closing summary.
    pub fn summary(
        &mut self,
        time_ns: u64,
        lost: u64,
        skipped: u64,
        unfollowed: &[Unfollowed],
    ) -> io::Result<()> {
        let total: u64 = self.shares.values().sum();
        let provenance = self.provenance.clone();
        if self.json {
            write!(
                self.out,
                "{{\"event\":\"summary\",\"time_ns\":{time_ns},\"shares\":{{"
            )?;
            for (i, (via, count)) in self.shares.iter().enumerate() {
                let comma = if i == 0 { "" } else { "," };
                write!(self.out, "{comma}\"{}\":{count}", via.name())?;
            }
            write!(self.out, "}},\"provenance\":[")?;
            for (i, share) in provenance.iter().enumerate() {
                let comma = if i == 0 { "" } else { "," };
                write!(
                    self.out,
                    "{comma}{{\"pid\":{},\"fd\":{},\"id\":{},\"via\":\"{}\",\"from\":",
                    share.holder.pid,
                    share.holder.fd,
                    share.id.0,
                    share.via.name()
                )?;
                match share.from {
                    Some(h) => write!(self.out, "{{\"pid\":{},\"fd\":{}}}", h.pid, h.fd)?,
                    None => write!(self.out, "null")?,
                }
                let exec = match share.exec {
                    Some(true) => "\"kept\"",
                    Some(false) => "\"closed\"",
                    None => "null",
                };
                write!(self.out, ",\"exec\":{exec},\"ended\":")?;
                match share.ended {
                    Some(via) => write!(self.out, "\"{}\"}}", via.name())?,
                    None => write!(self.out, "null}}")?,
                }
            }
            write!(
                self.out,
                "],\"unlisted\":{},\"lost\":{lost},\"skipped\":{skipped},\"unfollowed\":",
                self.unlisted
            )?;
            write_unfollowed(&mut self.out, unfollowed)?;
            writeln!(self.out, "}}")?;
        } else {
            let kinds: Vec<String> = self
                .shares
                .iter()
                .map(|(via, count)| format!("{} {count}", via.name()))
                .collect();
            writeln!(
                self.out,
                "{total} shares began while watching{}{}",
                if kinds.is_empty() { "" } else { ": " },
                kinds.join(", ")
            )?;
            if self.unlisted > 0 {
                writeln!(
                    self.out,
                    "  ({} earlier ones not listed: the latest {} are)",
                    self.unlisted,
                    self.provenance.len()
                )?;
            }
            for share in &provenance {
                let comm = self.comm(share.holder.pid);
                let mut story = vec![share_reason(share.via).to_owned()];
                match share.exec {
                    Some(true) => story.push("kept across exec".into()),
                    Some(false) => story.push("closed at exec (O_CLOEXEC)".into()),
                    None => {}
                }
                if let Some(via) = share.ended.filter(|v| *v != Via::Exec) {
                    story.push(format!("then {}", gone_reason(via)));
                }
                let from = match share.from {
                    Some(h) => format!("{}({}):{}", self.comm(h.pid), h.pid, h.fd),
                    None => "an unknown holder".into(),
                };
                writeln!(
                    self.out,
                    "  {comm}({}) fd {} ← {from}  {}: {}",
                    share.holder.pid,
                    share.holder.fd,
                    share.id,
                    story.join(", ")
                )?;
            }
            writeln!(self.out, "{lost} events lost")?;
            if skipped > 0 {
                writeln!(
                    self.out,
                    "{skipped} syscalls or scheduler events unseen: the kernel skipped its tracing \
                     program while another run of it was preempted on that CPU"
                )?;
            }
        }
        self.flush()
    }
}

fn share_reason(via: Via) -> &'static str {
    match via {
        Via::Fork => "inherited at fork",
        Via::CloneFiles => "one fd table with it (CLONE_FILES)",
        Via::Dup => "dup'ed",
        Via::ScmRights => "received with SCM_RIGHTS",
        Via::PidfdGetfd => "taken with pidfd_getfd",
        _ => "installed by the kernel",
    }
}

fn gone_reason(via: Via) -> &'static str {
    match via {
        Via::Exec => "closed at exec (O_CLOEXEC)",
        Via::Exit => "its process exited",
        Via::Dup => "replaced by dup2/dup3",
        Via::CloseRange => "closed by close_range",
        _ => "closed",
    }
}

fn write_unfollowed(out: &mut impl Write, unfollowed: &[Unfollowed]) -> io::Result<()> {
    write!(out, "[")?;
    for (i, u) in unfollowed.iter().enumerate() {
        write!(out, "{}{{\"what\":", if i == 0 { "" } else { "," })?;
        write_str(out, u.what)?;
        write!(out, ",\"target\":")?;
        write_str(out, u.target)?;
        write!(out, ",\"reason\":")?;
        write_str(out, &u.reason)?;
        write!(out, "}}")?;
    }
    write!(out, "]")
}

#[cfg(test)]
mod tests;
