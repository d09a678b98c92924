//! Files passed with `SCM_RIGHTS`: which sender's fd each receipt came from, and the order changes
//! go out in while a receipt waits for its send.
//!
//! A send is told at the sender's syscall exit, a receipt at the receiver's. A receiver woken at
//! once can get there first — and go on to close the fd, fork or exit before the send is told. So
//! a receipt with no send told yet is held back, and every change after it waits behind it (the
//! output keeps the order things happened in), until its send is told — then it names the sender —
//! or it has waited long enough ([`Passing::expire`]) — then it names none, and the late send is
//! matched to it rather than kept for a later receipt of another file at the same address.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use super::{Change, Holder};

/// How long a receipt that went out naming no sender is remembered for its late send.
const UNNAMED_KEPT_NS: u64 = 10_000_000_000;

/// A change held back.
#[derive(Debug)]
enum Queued {
    /// Out as soon as everything before it is.
    Ready(Change),
    /// A receipt of the file `hash`, waiting for its send.
    Waiting { hash: u64, change: Change },
}

#[derive(Debug, Default)]
pub(super) struct Passing {
    /// Files sent and not yet received: by hash, the senders' fds in order.
    in_flight: HashMap<u64, VecDeque<Holder>>,
    /// Changes held back, oldest first; the first is always `Waiting`.
    queue: VecDeque<Queued>,
    /// This event's receipts with no send told: their places among the event's changes, and hashes.
    unsent: Vec<(usize, u64)>,
    /// Receipts that went out naming no sender: by hash, how many and when the last went.
    unnamed: HashMap<u64, (u32, u64)>,
}

impl Passing {
    /// `sender` sent the file `hash`.
    pub fn send(&mut self, sender: Holder, hash: u64) {
        let waiting = self
            .queue
            .iter()
            .position(|queued| matches!(queued, Queued::Waiting { hash: h, .. } if *h == hash));
        if let Some(at) = waiting {
            if let Some(Queued::Waiting { mut change, .. }) = self.queue.remove(at) {
                change.from = Some(sender);
                self.queue.insert(at, Queued::Ready(change));
            }
            // Out with what waited behind it at the end of this event (`route`).
            return;
        }
        if let Some((count, _)) = self.unnamed.get_mut(&hash) {
            // Its receipt went out already, naming no sender.
            *count -= 1;
            if *count == 0 {
                self.unnamed.remove(&hash);
            }
            return;
        }
        self.in_flight.entry(hash).or_default().push_back(sender);
    }

    /// A receipt of the file `hash` (`change`, a share naming no sender yet), appended to this
    /// event's `changes`: naming its sender if the send was told, else to be held back
    /// ([`Passing::route`]).
    pub fn receive(&mut self, hash: u64, mut change: Change, changes: &mut Vec<Change>) {
        match self.in_flight.get_mut(&hash).and_then(VecDeque::pop_front) {
            Some(sender) => change.from = Some(sender),
            None => self.unsent.push((changes.len(), hash)),
        }
        changes.push(change);
    }

    /// Whether anything is held back, or about to be.
    fn holding(&self) -> bool {
        !self.queue.is_empty() || !self.unsent.is_empty()
    }

    /// The changes one event (or one expiry) appended to `changes` from `start` on: kept there if
    /// nothing is held back, else queued behind what is; then out, what is no longer held back.
    pub fn route(&mut self, changes: &mut Vec<Change>, start: usize) {
        if !self.holding() {
            return;
        }
        let fresh: Vec<Change> = changes.drain(start..).collect();
        let mut unsent = std::mem::take(&mut self.unsent).into_iter().peekable();
        for (at, change) in fresh.into_iter().enumerate() {
            let waiting = unsent.next_if(|&(place, _)| place == start + at);
            match waiting {
                Some((_, hash)) => self.queue.push_back(Queued::Waiting { hash, change }),
                None if self.queue.is_empty() => changes.push(change),
                None => self.queue.push_back(Queued::Ready(change)),
            }
        }
        self.flush(changes);
    }

    /// Receipts waiting since before `before_ns` go out naming no sender, with what waited behind
    /// them.
    pub fn expire(&mut self, before_ns: u64, changes: &mut Vec<Change>) {
        self.unnamed
            .retain(|_, (_, time_ns)| time_ns.saturating_add(UNNAMED_KEPT_NS) >= before_ns);
        if self.queue.is_empty() {
            return;
        }
        let unnamed = &mut self.unnamed;
        self.queue = std::mem::take(&mut self.queue)
            .into_iter()
            .map(|queued| match queued {
                Queued::Waiting { hash, change } if change.time_ns < before_ns => {
                    let (count, _) = unnamed.get(&hash).copied().unwrap_or((0, 0));
                    unnamed.insert(hash, (count + 1, change.time_ns));
                    Queued::Ready(change)
                }
                other => other,
            })
            .collect();
        self.flush(changes);
    }

    /// Out: the ready changes at the front of the queue.
    fn flush(&mut self, changes: &mut Vec<Change>) {
        while let Some(Queued::Ready(_)) = self.queue.front() {
            if let Some(Queued::Ready(change)) = self.queue.pop_front() {
                changes.push(change);
            }
        }
    }
}
