//! Finding a few given bytes in text.
//!
//! Records are mostly short strings (names, ids, dates), read a few at a time: for a
//! dozen bytes, memchr's set-up costs more than its search. Sixteen bytes at a time in a
//! vector register (SSE2, which every x86-64 CPU has), or else eight in a machine word,
//! keeps the search cheap at every length.

/// Where the first byte that is one of `needles` is in `text`.
#[inline]
pub fn find<const N: usize>(text: &[u8], needles: [u8; N]) -> Option<usize> {
    find_or_below(text, needles, 0)
}

/// Where the first byte that is one of `needles`, or below `below` (at most 0x80), is in
/// `text`.
#[inline(always)]
pub fn find_or_below<const N: usize>(text: &[u8], needles: [u8; N], below: u8) -> Option<usize> {
    debug_assert!(
        below <= 0x80,
        "bytes from 0x80 up look alike to the word test"
    );
    #[cfg(target_arch = "x86_64")]
    let at = {
        let mut at = 0;
        for block in text.chunks_exact(16) {
            if let Some(i) = sse2::find(block, needles, below) {
                return Some(at + i);
            }
            at += 16;
        }
        at
    };
    #[cfg(not(target_arch = "x86_64"))]
    let at = 0;
    find_in_words(&text[at..], needles, below).map(|i| at + i)
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_setzero_si128,
    };

    /// [`super::find_or_below`] in a block of 16 bytes.
    #[inline(always)]
    pub fn find<const N: usize>(block: &[u8], needles: [u8; N], below: u8) -> Option<usize> {
        assert_eq!(block.len(), 16);
        // SAFETY: SSE2 is part of every x86-64 CPU, and the load reads the block's 16
        // bytes, no more.
        let hits = unsafe {
            let bytes = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            let mut hits = match below {
                0 => _mm_setzero_si128(),
                // A byte is below `below` when the smaller of it and `below - 1` is itself.
                _ => {
                    let limit = _mm_set1_epi8(below.wrapping_sub(1) as i8);
                    _mm_cmpeq_epi8(_mm_min_epu8(bytes, limit), bytes)
                }
            };
            for b in needles {
                hits = _mm_or_si128(hits, _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b as i8)));
            }
            _mm_movemask_epi8(hits)
        };
        (hits != 0).then(|| hits.trailing_zeros() as usize)
    }
}

/// [`find_or_below`] eight bytes at a time.
#[inline]
fn find_in_words<const N: usize>(text: &[u8], needles: [u8; N], below: u8) -> Option<usize> {
    let mut words = text.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let found = (needles.iter()).fold(under(word, below), |found, &b| {
            found | under(word ^ spread(b), 1)
        });
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let rest = words.remainder();
    (rest.iter())
        .position(|&b| b < below || needles.contains(&b))
        .map(|i| at + i)
}

const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);

/// `byte` in each of a word's bytes.
#[inline]
fn spread(byte: u8) -> u64 {
    ONES * u64::from(byte)
}

/// A word with the high bit set in the lowest byte of `word` below `limit` (and maybe in
/// some above it, which the caller's `trailing_zeros` never looks at); 0 if none is.
#[inline]
fn under(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(spread(limit)) & !word & HIGHS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_needle_at_every_position_and_length() {
        for len in 0..70 {
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

    #[test]
    fn finds_the_first_byte_below_a_limit_too() {
        for len in 0..70 {
            for at in 0..len {
                for low in [0x00, 0x01, 0x1f] {
                    let mut text: Vec<u8> =
                        (0..len).map(|i| [b' ', b'~', 0x80, 0xff][i % 4]).collect();
                    text[at] = low;
                    assert_eq!(
                        find_or_below(&text, [b'"'], 0x20),
                        Some(at),
                        "{len} {at} {low}"
                    );
                    text[at] = b'"';
                    assert_eq!(find_or_below(&text, [b'"'], 0x20), Some(at), "{len} {at}");
                }
            }
            let clean: Vec<u8> = (0..len).map(|i| [b' ', b'~', 0x80, 0xff][i % 4]).collect();
            assert_eq!(find_or_below(&clean, [b'"', b'\\'], 0x20), None, "{len}");
        }
    }

    /// The word-at-a-time search is what every CPU without SSE2 runs for the whole text,
    /// not just the tail under sixteen bytes that x86-64 leaves it: checked on long texts
    /// against a plain search, for needles, bytes below a limit, and high bytes that look
    /// alike to the word test.
    #[test]
    fn the_word_search_alone_finds_what_a_plain_search_finds_in_long_texts() {
        let alphabet = [
            b'a',
            b' ',
            b'~',
            b'"' + 0x80,
            0x80,
            0xff,
            0x21,
            0x5b,
            0x1f,
            b'"',
            b'\\',
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for round in 0..2000 {
            let len = 16 + round % 400;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    // xorshift: a fixed, repeatable spread of texts.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let pick = (state % 64) as usize;
                    alphabet.get(pick).copied().unwrap_or(b'a')
                })
                .collect();
            for below in [0, 0x20] {
                let plain = text
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < below);
                assert_eq!(
                    find_in_words(&text, [b'"', b'\\'], below),
                    plain,
                    "{text:?}"
                );
            }
        }
    }
}
