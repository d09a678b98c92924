//! Decoding the iterator's byte stream into [`FdRecord`]s and their extensions, with length checks.
//!
//! The stream is a sequence of 64-byte blocks: [`read_into`] reads them all into a `Vec<FdRecord>`
//! (one copy, no per-record work), then [`split_extensions`] takes out the blocks that extend a record
//! (a socket's [`SocketRecord`]) and closes the gaps.

use std::io::ErrorKind;

pub use fdid_ebpf::{
    EXTENSION_NONE, EXTENSION_SOCKET, FdRecord, RECORD_SIZE, SOCKET_PATH_IS_PEERS,
    SOCKET_RECORD_SIZE, SocketRecord,
};

/// Sockets by the inode number of their fds (a socket's own inode on sockfs).
pub type Sockets = rustc_hash::FxHashMap<u64, SocketRecord>;

/// Blocks of the stream a [`SocketRecord`] takes.
const SOCKET_BLOCKS: usize = SOCKET_RECORD_SIZE / RECORD_SIZE;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record stream of {len} bytes is not a multiple of the {RECORD_SIZE}-byte record")]
    Truncated { len: usize },
    #[error("block {index} announces an extension the stream ends before")]
    MissingExtension { index: usize },
    #[error("block {index} announces an unknown extension {kind}")]
    UnknownExtension { index: usize, kind: u8 },
}

/// A decoded stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    pub records: Vec<FdRecord>,
    pub sockets: Sockets,
}

/// Decodes a complete stream. An empty stream is zero records; a length that is not a multiple of
/// [`RECORD_SIZE`], or a record whose extension is missing or unknown, is an error.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if !bytes.len().is_multiple_of(RECORD_SIZE) {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    let (blocks, _) = bytes.as_chunks::<RECORD_SIZE>();
    let mut records = blocks.iter().map(record_from_bytes).collect();
    let mut sockets = Sockets::default();
    split_extensions(&mut records, 0, &mut sockets)?;
    Ok(Decoded { records, sockets })
}

/// Takes the extension blocks out of `records[from..]` (as [`read_into`] left them): each socket's
/// goes to `sockets` under its inode number, and the records close up, in order.
pub fn split_extensions(
    records: &mut Vec<FdRecord>,
    from: usize,
    sockets: &mut Sockets,
) -> Result<(), DecodeError> {
    let Some(first) = records[from..]
        .iter()
        .position(|r| r.extension != EXTENSION_NONE)
    else {
        return Ok(());
    };
    let (mut read, mut write) = (from + first, from + first);
    while read < records.len() {
        let record = records[read];
        match record.extension {
            EXTENSION_NONE => read += 1,
            EXTENSION_SOCKET => {
                let blocks = records
                    .get(read + 1..read + 1 + SOCKET_BLOCKS)
                    .ok_or(DecodeError::MissingExtension { index: read })?;
                sockets.insert(record.ino, socket_from_blocks(blocks));
                read += 1 + SOCKET_BLOCKS;
            }
            kind => return Err(DecodeError::UnknownExtension { index: read, kind }),
        }
        records[write] = record;
        write += 1;
    }
    records.truncate(write);
    Ok(())
}

fn socket_from_blocks(blocks: &[FdRecord]) -> SocketRecord {
    assert_eq!(blocks.len() * RECORD_SIZE, SOCKET_RECORD_SIZE);
    // SAFETY: `blocks` holds exactly size_of::<SocketRecord>() readable bytes (asserted); SocketRecord
    // is `repr(C)` with integer fields only, so every byte pattern is a valid value, and
    // `read_unaligned` imposes no alignment.
    unsafe { blocks.as_ptr().cast::<SocketRecord>().read_unaligned() }
}

fn record_from_bytes(chunk: &[u8; RECORD_SIZE]) -> FdRecord {
    // SAFETY: `chunk` holds exactly size_of::<FdRecord>() readable bytes; FdRecord is `repr(C)` with
    // integer fields only and no padding, so every byte pattern is a valid value, and `read_unaligned`
    // imposes no alignment on the source.
    unsafe { chunk.as_ptr().cast::<FdRecord>().read_unaligned() }
}

/// Reads records until end of stream straight into `records`' memory, in large chunks (no copy).
///
/// `read(buffer, len)` reads at most `len` bytes into `buffer` like read(2) and returns how many (0 at
/// end of stream). Reads need not end on a record boundary: the bytes of a partial record wait for the
/// next read, and one left at end of stream is [`DecodeError::Truncated`]. Returns the bytes read.
pub fn read_into(
    records: &mut Vec<FdRecord>,
    mut read: impl FnMut(*mut u8, usize) -> std::io::Result<usize>,
) -> std::io::Result<u64> {
    const CHUNK_RECORDS: usize = 1 << 14; // 1 MiB
    let mut partial = [0u8; RECORD_SIZE];
    let mut partial_len = 0;
    let mut total = 0u64;
    loop {
        records.reserve(CHUNK_RECORDS.max(records.len() / 2));
        let spare = records.spare_capacity_mut();
        let spare_bytes = spare.len() * RECORD_SIZE;
        let start = spare.as_mut_ptr().cast::<u8>();
        // SAFETY: `start` points to `spare_bytes` bytes of spare capacity that this Vec owns; the
        // partial record (< RECORD_SIZE bytes) is copied to its beginning.
        unsafe { std::ptr::copy_nonoverlapping(partial.as_ptr(), start, partial_len) };
        // SAFETY: the destination lies within the spare capacity, after the partial record.
        let read = match read(unsafe { start.add(partial_len) }, spare_bytes - partial_len) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        total += read as u64;
        let filled = partial_len + read;
        let whole = filled / RECORD_SIZE;
        partial_len = filled % RECORD_SIZE;
        // SAFETY: the leftover bytes start within the spare capacity, `whole` records in.
        let leftover = unsafe { start.add(whole * RECORD_SIZE) };
        // SAFETY: the leftover bytes were just written, within the spare capacity.
        unsafe { std::ptr::copy_nonoverlapping(leftover, partial.as_mut_ptr(), partial_len) };
        // SAFETY: the first `whole` records of the spare capacity were fully written by `read` (or
        // copied from `partial`), and every byte pattern is a valid FdRecord (integers only, no
        // padding).
        unsafe { records.set_len(records.len() + whole) };
    }
    if partial_len != 0 {
        let error = DecodeError::Truncated {
            len: total as usize,
        };
        return Err(std::io::Error::new(ErrorKind::InvalidData, error));
    }
    Ok(total)
}

/// [`read_into`] from a file descriptor (the iterator).
pub fn read_fd_into(
    fd: std::os::fd::BorrowedFd<'_>,
    records: &mut Vec<FdRecord>,
) -> std::io::Result<u64> {
    use std::os::fd::AsRawFd as _;
    read_into(records, |buffer, len| {
        // SAFETY: `read_into` hands out `len` writable bytes at `buffer`.
        let n = unsafe { libc::read(fd.as_raw_fd(), buffer.cast(), len) };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(records: &[FdRecord]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            for word in [r.tgid, r.tid, r.fd, r.flags] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&r.mode.to_le_bytes());
            out.extend_from_slice(&[r.pid_ns_level, r.extension]);
            out.extend_from_slice(&r.dev.to_le_bytes());
            out.extend_from_slice(&r.ino.to_le_bytes());
            out.extend_from_slice(&r.pos.to_le_bytes());
            for word in [r.refs, r.file_hash, r.files_hash] {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
        out
    }

    /// A socket's extension as the program writes it, field by field.
    fn socket_bytes(s: &SocketRecord) -> Vec<u8> {
        let mut out = Vec::new();
        for half in [s.family, s.sock_type, s.protocol] {
            out.extend_from_slice(&half.to_le_bytes());
        }
        out.extend_from_slice(&[s.state, s.flags]);
        out.extend_from_slice(&s.netns.to_le_bytes());
        out.extend_from_slice(&s.local_port.to_le_bytes());
        out.extend_from_slice(&s.remote_port_be.to_le_bytes());
        out.extend_from_slice(&s.local_addr);
        out.extend_from_slice(&s.remote_addr);
        out.extend_from_slice(&s.peer_ino.to_le_bytes());
        out.extend_from_slice(&s.path_len.to_le_bytes());
        out.extend_from_slice(&s.path);
        out.extend_from_slice(&[0; 26]);
        out
    }

    fn a_socket(ino: u64) -> (FdRecord, SocketRecord) {
        let record = FdRecord {
            tgid: 7,
            tid: 7,
            fd: 3,
            mode: 0o140_777,
            ino,
            extension: EXTENSION_SOCKET,
            ..FdRecord::default()
        };
        let mut socket = SocketRecord {
            family: 1,
            sock_type: 1,
            state: 10,
            netns: 4_026_531_840,
            peer_ino: ino + 1,
            path_len: 13,
            ..SocketRecord::default()
        };
        socket.path[..13].copy_from_slice(b"/run/app.sock");
        (record, socket)
    }

    #[test]
    fn a_sockets_extension_is_taken_out_and_the_records_close_up() {
        let records = sample(3);
        let (socket_record, socket) = a_socket(42);
        let mut bytes = bytes_of(&records[..1]);
        bytes.extend(bytes_of(&[socket_record]));
        bytes.extend(socket_bytes(&socket));
        bytes.extend(bytes_of(&records[1..]));
        let decoded = decode(&bytes).unwrap();
        assert_eq!(
            decoded.records,
            vec![records[0], socket_record, records[1], records[2]]
        );
        assert_eq!(decoded.sockets.len(), 1);
        assert_eq!(decoded.sockets[&42], socket);
        // The same through the streaming reader, in odd read sizes, appended after earlier records.
        let mut seen = sample(2);
        let mut sockets = Sockets::default();
        read_into(&mut seen, from_slice(&bytes, 37)).unwrap();
        split_extensions(&mut seen, 2, &mut sockets).unwrap();
        assert_eq!(&seen[2..], &decoded.records[..]);
        assert_eq!(&seen[..2], &sample(2)[..], "earlier records untouched");
        assert_eq!(sockets, decoded.sockets);
    }

    #[test]
    fn a_missing_or_unknown_extension_is_an_error() {
        let (socket_record, socket) = a_socket(42);
        let mut bytes = bytes_of(&[socket_record]);
        bytes.extend(&socket_bytes(&socket)[..2 * RECORD_SIZE]);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::MissingExtension { index: 0 })
        );
        let mut unknown = sample(2);
        unknown[1].extension = 9;
        assert_eq!(
            decode(&bytes_of(&unknown)),
            Err(DecodeError::UnknownExtension { index: 1, kind: 9 })
        );
    }

    fn sample(n: u32) -> Vec<FdRecord> {
        (0..n)
            .map(|i| FdRecord {
                tgid: 100 + i,
                tid: 100 + i,
                fd: i,
                flags: 0o2,
                mode: 0o100644,
                pid_ns_level: 1,
                extension: 0,
                dev: (8 << 20) | 1,
                ino: 1000 + u64::from(i),
                pos: -1 - i64::from(i),
                refs: 2,
                file_hash: 0xdead_beef_0000 + u64::from(i),
                files_hash: 7,
            })
            .collect()
    }

    #[test]
    fn a_zero_length_stream_is_no_records() {
        assert_eq!(decode(&[]), Ok(Decoded::default()));
        let mut seen = Vec::new();
        assert_eq!(read_into(&mut seen, from_slice(&[], 4096)).unwrap(), 0);
        assert!(seen.is_empty());
    }

    #[test]
    fn exact_multiples_decode_field_by_field() {
        let records = sample(3);
        assert_eq!(decode(&bytes_of(&records)).unwrap().records, records);
        let mut seen = Vec::new();
        let read = read_into(&mut seen, from_slice(&bytes_of(&records), 1 << 20)).unwrap();
        assert_eq!(seen, records);
        assert_eq!(read, 3 * RECORD_SIZE as u64, "bytes read");
    }

    #[test]
    fn each_read_is_offered_large_space_that_ends_on_a_record_boundary() {
        let bytes = bytes_of(&sample(40_000));
        let (mut offered, mut total) = (Vec::new(), 0usize);
        let mut reader = from_slice(&bytes, 1000);
        let mut seen = Vec::new();
        read_into(&mut seen, |buffer, len| {
            offered.push(len);
            assert_eq!(
                (total + len) % RECORD_SIZE,
                0,
                "a read must not run past the spare capacity's last whole record"
            );
            let n = reader(buffer, len)?;
            total += n;
            Ok(n)
        })
        .unwrap();
        assert_eq!(seen.len(), 40_000);
        assert!(
            offered[0] >= 1 << 20,
            "the first read is offered 1 MiB: {}",
            offered[0]
        );
    }

    #[test]
    fn an_interrupted_read_is_retried_and_other_errors_end_the_read() {
        let bytes = bytes_of(&sample(2));
        let mut reader = from_slice(&bytes, 50);
        let mut interrupted = false;
        let mut seen = Vec::new();
        read_into(&mut seen, |buffer, len| {
            interrupted = !interrupted;
            if interrupted {
                Err(ErrorKind::Interrupted.into())
            } else {
                reader(buffer, len)
            }
        })
        .unwrap();
        assert_eq!(seen, sample(2));
        let error = read_into(&mut Vec::new(), |_, _| {
            Err(ErrorKind::PermissionDenied.into())
        });
        assert_eq!(error.unwrap_err().kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn records_are_read_from_a_file_descriptor_and_its_errors_reported() {
        use std::{io::Write as _, os::fd::AsFd as _};
        let (reader, mut writer) = std::io::pipe().unwrap();
        let bytes = bytes_of(&sample(3));
        writer.write_all(&bytes).unwrap();
        drop(writer);
        let mut seen = Vec::new();
        assert_eq!(
            read_fd_into(reader.as_fd(), &mut seen).unwrap(),
            bytes.len() as u64
        );
        assert_eq!(seen, sample(3));
        // Reading the write end of a pipe: EBADF.
        let (_reader, writer) = std::io::pipe().unwrap();
        let error = read_fd_into(writer.as_fd(), &mut Vec::new()).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn a_truncated_stream_is_an_error_not_a_panic() {
        let mut bytes = bytes_of(&sample(2));
        bytes.pop();
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::Truncated {
                len: 2 * RECORD_SIZE - 1
            })
        );
        let error = read_into(&mut Vec::new(), from_slice(&bytes, 4096)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidData);
        assert!(decode(&bytes[..10]).is_err());
    }

    /// A raw reader over `data` that returns at most `step` bytes per read, so records can straddle
    /// reads.
    fn from_slice(
        data: &[u8],
        step: usize,
    ) -> impl FnMut(*mut u8, usize) -> std::io::Result<usize> + '_ {
        let mut rest = data;
        move |buffer, len| {
            let n = step.min(len).min(rest.len());
            // SAFETY: `read_into` hands out `len` >= n writable bytes at `buffer`.
            unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), buffer, n) };
            rest = &rest[n..];
            Ok(n)
        }
    }

    #[test]
    fn records_split_across_reads_are_reassembled() {
        let records = sample(5);
        let bytes = bytes_of(&records);
        let mut seen = Vec::new();
        read_into(&mut seen, from_slice(&bytes, 37)).unwrap();
        assert_eq!(seen, records);
        // Reads of one byte at a time, and reads larger than the spare capacity asks for.
        let mut seen = Vec::new();
        read_into(&mut seen, from_slice(&bytes, 1)).unwrap();
        assert_eq!(seen, records);
        // Many records: the Vec grows while a partial record waits.
        let many = sample(40_000);
        let mut seen = Vec::new();
        read_into(&mut seen, from_slice(&bytes_of(&many), 1000)).unwrap();
        assert_eq!(seen, many);
    }
}
