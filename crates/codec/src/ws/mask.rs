//! Payload masking (RFC 6455 §5.3): XOR with a 4-byte key, eight bytes at a time.
//!
//! XOR is its own inverse, so the same functions mask and unmask. [`apply_mask_at`] takes the
//! position of `buf` inside the payload, so a payload that arrives in pieces can be unmasked
//! piece by piece.

/// Masks or unmasks `buf` in place with `key`, `buf` being the start of the payload.
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::mask::apply_mask;
///
/// let mut data = *b"Hello";
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d]);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]); // RFC 6455 §5.7
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d]);
/// assert_eq!(&data, b"Hello");
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    apply_mask_words(buf, key);
}

/// Masks or unmasks `buf` in place, `buf` starting at byte `offset` of the payload.
///
/// # Examples
///
/// Unmasking a payload that arrives in two pieces:
///
/// ```
/// use rswoole_codec::ws::mask::apply_mask_at;
///
/// let key = [0x37, 0xfa, 0x21, 0x3d];
/// let mut first = [0x7f, 0x9f, 0x4d];
/// let mut rest = [0x51, 0x58];
/// apply_mask_at(&mut first, key, 0);
/// apply_mask_at(&mut rest, key, 3);
/// assert_eq!([&first[..], &rest[..]].concat(), b"Hello");
/// ```
#[inline]
pub fn apply_mask_at(buf: &mut [u8], mut key: [u8; 4], offset: usize) {
    key.rotate_left(offset & 3);
    apply_mask_words(buf, key);
}

/// The fast path: whole `u64` words, then the tail byte by byte. Safe code only; the word
/// loop is simple enough for LLVM to vectorise.
fn apply_mask_words(buf: &mut [u8], key: [u8; 4]) {
    let [a, b, c, d] = key;
    let key64 = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let masked = u64::from_ne_bytes(word) ^ key64;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key phase is back at 0.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The obvious byte loop; the reference the fast path is tested against.
#[cfg(test)]
fn apply_mask_simple(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(i + offset) & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ws_mask_rfc_example() {
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn ws_mask_all_lengths_and_offsets() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..70 {
            for offset in 0..8 {
                let orig: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(31)).collect();
                let mut fast = orig.clone();
                let mut slow = orig.clone();
                apply_mask_at(&mut fast, key, offset);
                apply_mask_simple(&mut slow, key, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    proptest! {
        #[test]
        fn ws_mask_differential(data in proptest::collection::vec(any::<u8>(), 0..600),
                                key in any::<[u8; 4]>(), offset in 0usize..16, split in 0usize..600) {
            let mut fast = data.clone();
            let mut slow = data.clone();
            // Unmask in two pieces, as a streaming reader does.
            let split = split.min(fast.len());
            let (a, b) = fast.split_at_mut(split);
            apply_mask_at(a, key, offset);
            apply_mask_at(b, key, offset + split);
            apply_mask_simple(&mut slow, key, offset);
            prop_assert_eq!(fast, slow);
        }
    }
}
