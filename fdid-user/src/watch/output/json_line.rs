//! One change as a JSON line. The lines one event makes — a fork's shares, an exit's gones — differ
//! only in their fds and ids, so what they have in common (time, event, via, pid, comm, the pid they
//! came from) is made once per run of such lines and copied into each.

use super::super::model::{Change, ChangeKind, Via};

/// What the parts made were made for: a line with other values here needs its own.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Shared {
    time_ns: u64,
    kind: ChangeKind,
    via: Via,
    pid: Option<u32>,
    from_pid: Option<u32>,
}

/// Makes JSON lines, keeping the parts the last one shares with the next.
pub(super) struct LineMaker {
    made_for: Option<Shared>,
    /// `{"time_ns": …, "event": …, "via": …, "pid": …, "fd": ` (or through `"fd": null`).
    head: Vec<u8>,
    /// `, "comm": …, "from": {"pid": …, "fd": ` (or through `"from": null}` and the newline).
    middle: Vec<u8>,
    number: itoa::Buffer,
    /// Ids written lately, in decimal, each in the slot its value picks: a description's id is on
    /// each of its lines (its opening, every share and gone), and a 17-digit number costs more to
    /// write than to look up.
    ids: Box<[IdDigits]>,
}

/// An id in decimal (`len` 0: an empty slot).
#[derive(Clone, Copy, Default)]
struct IdDigits {
    id: u64,
    len: u8,
    digits: [u8; 20],
}

/// Slots of [`LineMaker::ids`] (a power of two; 32 KiB).
const ID_SLOTS: usize = 1024;

impl Default for LineMaker {
    fn default() -> Self {
        Self {
            made_for: None,
            head: Vec::new(),
            middle: Vec::new(),
            number: itoa::Buffer::new(),
            ids: vec![IdDigits::default(); ID_SLOTS].into_boxed_slice(),
        }
    }
}

impl LineMaker {
    /// Forgets the parts made: a process's name changed.
    pub(super) fn forget(&mut self) {
        self.made_for = None;
    }

    /// Appends `change` as a line to `line`; `comm_json` names the holder's process (asked only
    /// when the parts are made).
    pub(super) fn write<'a>(
        &mut self,
        line: &mut Vec<u8>,
        change: &Change,
        comm_json: impl FnOnce(u32) -> &'a [u8],
    ) {
        let shared = Shared {
            time_ns: change.time_ns,
            kind: change.kind,
            via: change.via,
            pid: change.holder.map(|h| h.pid),
            from_pid: change.from.map(|h| h.pid),
        };
        if self.made_for != Some(shared) {
            self.make(shared, comm_json);
        }
        line.extend_from_slice(&self.head);
        if let Some(holder) = change.holder {
            push_fd(line, &mut self.number, holder.fd);
        }
        line.extend_from_slice(b",\"id\":");
        let id = self.id_digits(change.id.0);
        // All 20 bytes of the slot, then the ones past the id taken back: a copy of fixed size,
        // made in place, where one of the id's own length is a call to memcpy.
        line.extend_from_slice(&id.digits);
        line.truncate(line.len() - (id.digits.len() - usize::from(id.len)));
        line.extend_from_slice(&self.middle);
        if let Some(from) = change.from {
            push_fd(line, &mut self.number, from.fd);
            line.extend_from_slice(b"}}\n");
        }
    }

    /// `id` in decimal: its slot, written first if it held another.
    fn id_digits(&mut self, id: u64) -> &IdDigits {
        // Fibonacci hashing: the top bits of the product pick the slot.
        let slot = &mut self.ids[(id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize];
        const _: () = assert!(ID_SLOTS == 1 << (64 - 54));
        if slot.len == 0 || slot.id != id {
            let digits = self.number.format(id).as_bytes();
            slot.digits[..digits.len()].copy_from_slice(digits);
            (slot.id, slot.len) = (id, digits.len() as u8);
        }
        slot
    }

    fn make<'a>(&mut self, shared: Shared, comm_json: impl FnOnce(u32) -> &'a [u8]) {
        let (head, middle, number) = (&mut self.head, &mut self.middle, &mut self.number);
        head.clear();
        head.extend_from_slice(b"{\"time_ns\":");
        head.extend_from_slice(number.format(shared.time_ns).as_bytes());
        head.extend_from_slice(b",\"event\":\"");
        head.extend_from_slice(shared.kind.name().as_bytes());
        head.extend_from_slice(b"\",\"via\":\"");
        head.extend_from_slice(shared.via.name().as_bytes());
        head.extend_from_slice(b"\",");
        match shared.pid {
            Some(pid) => pid_then_fd(head, number, pid),
            None => head.extend_from_slice(b"\"pid\":null,\"fd\":null"),
        }
        middle.clear();
        middle.extend_from_slice(b",\"comm\":");
        match shared.pid {
            Some(pid) => middle.extend_from_slice(comm_json(pid)),
            None => middle.extend_from_slice(b"null"),
        }
        middle.extend_from_slice(b",\"from\":");
        match shared.from_pid {
            Some(pid) => {
                middle.push(b'{');
                pid_then_fd(middle, number, pid);
            }
            None => middle.extend_from_slice(b"null}\n"),
        }
        self.made_for = Some(shared);
    }
}

/// A holder's `"pid":PID,"fd":`, its fd to follow (the holder's and the source's alike).
fn pid_then_fd(out: &mut Vec<u8>, number: &mut itoa::Buffer, pid: u32) {
    out.extend_from_slice(b"\"pid\":");
    out.extend_from_slice(number.format(pid).as_bytes());
    out.extend_from_slice(b",\"fd\":");
}

/// An fd in decimal: most are below 100, written here digit by digit (no call, no copy of a
/// length known only at run time).
fn push_fd(out: &mut Vec<u8>, number: &mut itoa::Buffer, fd: u32) {
    match fd {
        0..10 => out.push(b'0' + fd as u8),
        10..100 => out.extend_from_slice(&[b'0' + (fd / 10) as u8, b'0' + (fd % 10) as u8]),
        _ => out.extend_from_slice(number.format(fd).as_bytes()),
    }
}
