//! The record-stream decoder on arbitrary bytes, fed in arbitrary read sizes: never a panic, and the
//! streaming reader agrees with the one-shot decoder.
#![no_main]

use fdid::record::{RECORD_SIZE, Sockets, decode, read_into, split_extensions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, stream)) = data.split_first() else { return };
    let step = usize::from(step).max(1);
    let whole = decode(stream);
    let mut rest = stream;
    let mut records = Vec::new();
    let streamed = read_into(&mut records, |buffer, len| {
        let n = step.min(len).min(rest.len());
        // SAFETY: read_into hands out `len` >= n writable bytes at `buffer`.
        unsafe { std::ptr::copy_nonoverlapping(rest.as_ptr(), buffer, n) };
        rest = &rest[n..];
        Ok(n)
    });
    let mut sockets = Sockets::default();
    let streamed = streamed.map(|bytes| (bytes, split_extensions(&mut records, 0, &mut sockets)));
    match (whole, streamed) {
        (Ok(decoded), Ok((bytes, Ok(())))) => {
            assert_eq!(bytes as usize, stream.len());
            assert_eq!(decoded.records, records);
            assert_eq!(decoded.sockets, sockets);
        }
        (Err(whole), Ok((_, Err(split)))) => assert_eq!(whole, split),
        (Err(_), Err(_)) => assert_ne!(stream.len() % RECORD_SIZE, 0),
        (whole, streamed) => panic!("decoders disagree: {whole:?} vs {streamed:?}"),
    }
});
