//! Finding a few given bytes in short text.
//!
//! Records are mostly short strings (names, ids, dates), read a few at a time: for a
//! dozen bytes, memchr's set-up costs more than its search. Testing eight bytes at once in
//! a machine word keeps the search cheap at every length.

/// Where the first byte that is one of `needles` is in `text`.
#[inline]
pub fn find<const N: usize>(text: &[u8], needles: [u8; N]) -> Option<usize> {
    let mut words = text.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let found = needles
            .iter()
            .fold(0, |found, &b| found | zero_bytes(word ^ spread(b)));
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let rest = words.remainder();
    rest.iter()
        .position(|b| needles.contains(b))
        .map(|i| at + i)
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// `byte` in each of a word's bytes.
#[inline]
fn spread(byte: u8) -> u64 {
    ONES * u64::from(byte)
}

/// A word with the high bit set in the lowest zero byte of `word` (and maybe in some
/// above it, which the caller's `trailing_zeros` never looks at).
#[inline]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_needle_at_every_position_and_length() {
        for len in 0..40 {
            for at in 0..=len {
                let mut text = vec![b'a'; len];
                // Bytes next to the needles' values, and high bytes, are not needles.
                for (i, b) in text.iter_mut().enumerate() {
                    *b = [b'a', b'!', b'#', 0x80, 0xff, b'"' + 0x80, 0x21, 0x5b][i % 8];
                }
                if at < len {
                    text[at] = b'\\';
                    if at + 1 < len {
                        text[at + 1] = b'"';
                    }
                }
                let want = (at < len).then_some(at);
                assert_eq!(find(&text, [b'"', b'\\']), want, "{len} {at}");
            }
        }
        assert_eq!(find(b"x\"\\", [b'\\']), Some(2));
        assert_eq!(find("é\u{1}".as_bytes(), [1]), Some(2));
        assert_eq!(find(b"", [b',']), None);
    }
}
