//! Decoding the iterator's byte stream into [`FdRecord`]s, with length checks.

use std::io::{ErrorKind, Read};

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
    Ok(bytes
        .chunks_exact(RECORD_SIZE)
        .map(record_from_bytes)
        .collect())
}

fn record_from_bytes(chunk: &[u8]) -> FdRecord {
    assert_eq!(chunk.len(), RECORD_SIZE);
    // SAFETY: `chunk` holds exactly size_of::<FdRecord>() readable bytes (asserted above); FdRecord is
    // `repr(C)` with integer fields only and no padding, so every byte pattern is a valid value, and
    // `read_unaligned` imposes no alignment on the source.
    unsafe { chunk.as_ptr().cast::<FdRecord>().read_unaligned() }
}

/// Reads records from `reader` (the iterator's fd) until end of stream, in large chunks.
///
/// Reads need not end on a record boundary: a partial record is carried to the next read, and one left
/// at end of stream is [`DecodeError::Truncated`].
pub fn read_all(mut reader: impl Read, mut sink: impl FnMut(FdRecord)) -> std::io::Result<u64> {
    const CHUNK: usize = 1 << 20;
    let mut buffer = vec![0u8; CHUNK];
    let mut filled = 0;
    let mut total = 0u64;
    loop {
        let read = match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        total += read as u64;
        filled += read;
        let whole = filled - filled % RECORD_SIZE;
        buffer[..whole]
            .chunks_exact(RECORD_SIZE)
            .map(record_from_bytes)
            .for_each(&mut sink);
        buffer.copy_within(whole..filled, 0);
        filled -= whole;
    }
    if filled != 0 {
        let error = DecodeError::Truncated {
            len: total as usize,
        };
        return Err(std::io::Error::new(ErrorKind::InvalidData, error));
    }
    Ok(total)
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
        let mut seen = 0;
        assert_eq!(read_all(&[][..], |_| seen += 1).unwrap(), 0);
        assert_eq!(seen, 0);
    }

    #[test]
    fn exact_multiples_decode_field_by_field() {
        let records = sample(3);
        assert_eq!(decode(&bytes_of(&records)), Ok(records.clone()));
        let mut seen = Vec::new();
        read_all(&bytes_of(&records)[..], |r| seen.push(r)).unwrap();
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
        let error = read_all(&bytes[..], |_| {}).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidData);
        assert!(decode(&bytes[..10]).is_err());
    }

    /// A reader that returns at most `step` bytes per read, so records straddle reads.
    struct Dribble<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn records_split_across_reads_are_reassembled() {
        let records = sample(5);
        let bytes = bytes_of(&records);
        let mut seen = Vec::new();
        read_all(
            Dribble {
                data: &bytes,
                step: 37,
            },
            |r| seen.push(r),
        )
        .unwrap();
        assert_eq!(seen, records);
    }
}
