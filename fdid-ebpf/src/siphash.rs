//! SipHash-2-4 of a single 64-bit word, the keyed PRF that turns kernel pointers into per-run ids.
//!
//! A plain xor/multiply would be inverted from a few outputs; SipHash with a random 128-bit key reveals
//! nothing about the pointer. Written without loops or tables so the BPF program gets straight-line code.

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-2-4 of the 8 little-endian bytes of `message` under the key `(k0, k1)`.
#[inline(always)]
pub fn siphash24_u64(key: [u64; 2], message: u64) -> u64 {
    let [k0, k1] = key;
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    // The one full 8-byte block.
    v[3] ^= message;
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^= message;
    // The final block: no tail bytes, the length (8) in the top byte.
    let last = 8u64 << 56;
    v[3] ^= last;
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^= last;
    // Finalization.
    v[2] ^= 0xff;
    sip_round(&mut v);
    sip_round(&mut v);
    sip_round(&mut v);
    sip_round(&mut v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::siphash24_u64;

    /// The reference vector of the SipHash paper for key 00..0f and the 8-byte message 00..07.
    #[test]
    fn matches_the_reference_vector() {
        let key = [
            u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]),
            u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
        ];
        let message = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(
            siphash24_u64(key, message).to_le_bytes(),
            [0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93]
        );
    }

    #[test]
    fn depends_on_the_key() {
        let message = 0xffff_8880_1234_5600;
        assert_ne!(
            siphash24_u64([1, 2], message),
            siphash24_u64([1, 3], message)
        );
    }
}
