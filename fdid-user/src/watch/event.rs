//! Decoding one ring-buffer item of `fdid watch`'s tracing programs into an [`Event`]: a
//! [`WatchEvent`] and, for an exec or a send, what follows it. The item must be exactly one event;
//! anything else is an error.

pub use fdid_ebpf::watch::{EVENT_SIZE, ExecFds, MMSG_FOLLOWED, SentFiles, WatchEvent, kind, via};

/// A decoded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Install(WatchEvent),
    Close(WatchEvent),
    CloseRange(WatchEvent),
    Fork(WatchEvent),
    /// With the fds open after the exec.
    Exec(WatchEvent, Box<ExecFds>),
    Exit(WatchEvent),
    Release(WatchEvent),
    /// With the files the message carried.
    Send(WatchEvent, Box<SentFiles>),
}

impl Event {
    pub fn header(&self) -> &WatchEvent {
        match self {
            Self::Install(e)
            | Self::Close(e)
            | Self::CloseRange(e)
            | Self::Fork(e)
            | Self::Exec(e, _)
            | Self::Exit(e)
            | Self::Release(e)
            | Self::Send(e, _) => e,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event of {len} bytes, {expected} expected for kind {kind}")]
    Length {
        kind: u8,
        len: usize,
        expected: usize,
    },
    #[error("event of unknown kind {0}")]
    UnknownKind(u8),
    #[error("event of {0} bytes is shorter than its header")]
    Short(usize),
}

/// Decodes one ring-buffer item.
pub fn decode(bytes: &[u8]) -> Result<Event, EventError> {
    let header = bytes
        .first_chunk::<EVENT_SIZE>()
        .ok_or(EventError::Short(bytes.len()))?;
    let event: WatchEvent = from_bytes(header);
    let rest = &bytes[EVENT_SIZE..];
    let expected = EVENT_SIZE
        + match event.kind {
            kind::EXEC => size_of::<ExecFds>(),
            kind::SEND => size_of::<SentFiles>(),
            kind::INSTALL
            | kind::CLOSE
            | kind::CLOSE_RANGE
            | kind::FORK
            | kind::EXIT
            | kind::RELEASE => 0,
            other => return Err(EventError::UnknownKind(other)),
        };
    if bytes.len() != expected {
        return Err(EventError::Length {
            kind: event.kind,
            len: bytes.len(),
            expected,
        });
    }
    Ok(match event.kind {
        kind::INSTALL => Event::Install(event),
        kind::CLOSE => Event::Close(event),
        kind::CLOSE_RANGE => Event::CloseRange(event),
        kind::FORK => Event::Fork(event),
        kind::EXIT => Event::Exit(event),
        kind::RELEASE => Event::Release(event),
        kind::EXEC => Event::Exec(event, Box::new(from_bytes(rest))),
        _ => Event::Send(event, Box::new(from_bytes(rest))),
    })
}

/// A plain-integer `repr(C)` value from exactly its bytes.
fn from_bytes<T: Copy + Plain>(bytes: &[u8]) -> T {
    assert_eq!(bytes.len(), size_of::<T>());
    // SAFETY: `bytes` holds exactly size_of::<T>() readable bytes (asserted); T is one of the
    // `Plain` types below — repr(C), integers only, no padding — so every byte pattern is a valid
    // value; `read_unaligned` imposes no alignment.
    unsafe { bytes.as_ptr().cast::<T>().read_unaligned() }
}

/// Types made of integers only, without padding (their sizes are asserted in fdid-ebpf).
trait Plain {}
impl Plain for WatchEvent {}
impl Plain for ExecFds {}
impl Plain for SentFiles {}

/// Serializes an event as the programs write it (tests and fuzzing).
pub fn encode(event: &Event) -> Vec<u8> {
    fn bytes_of<T: Plain>(value: &T) -> &[u8] {
        // SAFETY: T is Plain: its size_of bytes are all initialized integers.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
    }
    let mut out = bytes_of(event.header()).to_vec();
    match event {
        Event::Exec(_, fds) => out.extend_from_slice(bytes_of(&**fds)),
        Event::Send(_, files) => out.extend_from_slice(bytes_of(&**files)),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8) -> WatchEvent {
        WatchEvent {
            time_ns: 7,
            file_hash: 0xfeed,
            pid: 42,
            tid: 43,
            fd: 5,
            aux: 3,
            kind,
            via: via::DUP,
            ..WatchEvent::default()
        }
    }

    #[test]
    fn every_kind_comes_back_as_written() {
        let exec = ExecFds {
            max_fds: 64,
            words: 1,
            open_fds: [0b111; fdid_ebpf::watch::EXEC_FD_WORDS],
        };
        let sent = SentFiles {
            count: 2,
            _pad: 0,
            fds: [4; fdid_ebpf::watch::SENT_FILES],
            file_hashes: [9; fdid_ebpf::watch::SENT_FILES],
        };
        for event in [
            Event::Install(header(kind::INSTALL)),
            Event::Close(header(kind::CLOSE)),
            Event::CloseRange(header(kind::CLOSE_RANGE)),
            Event::Fork(header(kind::FORK)),
            Event::Exit(header(kind::EXIT)),
            Event::Release(header(kind::RELEASE)),
            Event::Exec(header(kind::EXEC), Box::new(exec)),
            Event::Send(header(kind::SEND), Box::new(sent)),
        ] {
            assert_eq!(decode(&encode(&event)), Ok(event));
        }
    }

    #[test]
    fn a_remainder_a_short_item_or_an_unknown_kind_is_an_error() {
        let mut bytes = encode(&Event::Close(header(kind::CLOSE)));
        bytes.push(0);
        assert!(matches!(decode(&bytes), Err(EventError::Length { .. })));
        assert_eq!(decode(&bytes[..10]), Err(EventError::Short(10)));
        let exec_without_fds = encode(&Event::Close(header(kind::EXEC)));
        assert!(matches!(
            decode(&exec_without_fds),
            Err(EventError::Length {
                kind: kind::EXEC,
                ..
            })
        ));
        let unknown = encode(&Event::Close(header(99)));
        assert_eq!(decode(&unknown), Err(EventError::UnknownKind(99)));
    }
}
