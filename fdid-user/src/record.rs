//! Decoding the iterator's byte stream into [`FdRecord`]s, with length checks.

use std::io::ErrorKind;

pub use fdid_ebpf::{FdRecord, RECORD_SIZE};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record stream of {len} bytes is not a multiple of the {RECORD_SIZE}-byte record")]
    Truncated { len: usize },
}

/// Decodes a complete stream. An empty stream is zero records; a length that is not a multiple of
/// [`RECORD_SIZE`] is an error.
pub fn decode(bytes: &[u8]) -> Result<Vec<FdRecord>, DecodeError> {
    if !bytes.len().is_multiple_of(RECORD_SIZE) {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    let (records, _) = bytes.as_chunks::<RECORD_SIZE>();
    Ok(records.iter().map(record_from_bytes).collect())
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
            out.extend_from_slice(&r.pid_ns_level.to_le_bytes());
            out.extend_from_slice(&r.dev.to_le_bytes());
            out.extend_from_slice(&r.ino.to_le_bytes());
            out.extend_from_slice(&r.pos.to_le_bytes());
            for word in [r.refs, r.file_hash, r.files_hash] {
                out.extend_from_slice(&word.to_le_bytes());
            }
        }
        out
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
        assert_eq!(decode(&[]), Ok(vec![]));
        let mut seen = Vec::new();
        assert_eq!(read_into(&mut seen, from_slice(&[], 4096)).unwrap(), 0);
        assert!(seen.is_empty());
    }

    #[test]
    fn exact_multiples_decode_field_by_field() {
        let records = sample(3);
        assert_eq!(decode(&bytes_of(&records)), Ok(records.clone()));
        let mut seen = Vec::new();
        read_into(&mut seen, from_slice(&bytes_of(&records), 1 << 20)).unwrap();
        assert_eq!(seen, records);
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
