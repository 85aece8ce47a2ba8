//! What a state knows of the output its run left: its length and a fingerprint of its
//! last bytes, so that `--append` carries on only from that output, never from one edited
//! or replaced since (cutting that to the old length would end it mid-record).

use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// How many bytes before the recorded length the fingerprint covers: enough to tell an
/// output edited near its end, or replaced, and read in a moment whatever its size.
const SPAN: u64 = 64 * 1024;

/// The fingerprint of `path`'s bytes up to `len` (the SHA-256 of the last [`SPAN`] of
/// them). A file shorter than `len` is an error.
pub fn fingerprint(path: &Path, len: u64) -> io::Result<String> {
    let start = len.saturating_sub(SPAN);
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = vec![0; usize::try_from(len - start).expect("SPAN fits in memory")];
    file.read_exact(&mut bytes)?;
    Ok(super::digest(&bytes))
}

/// The length of the output at `path` and the fingerprint of all of it.
pub fn of(path: &Path) -> io::Result<(u64, String)> {
    let len = std::fs::metadata(path)?.len();
    Ok((len, fingerprint(path, len)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_covers_the_bytes_up_to_the_length_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.jsonl");
        let long: Vec<u8> = (0..SPAN + 10).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&path, &long).unwrap();
        let (len, whole) = of(&path).unwrap();
        assert_eq!(len, SPAN + 10);
        let mut longer = long.clone();
        longer.extend_from_slice(b"half a rec");
        std::fs::write(&path, &longer).unwrap();
        assert_eq!(
            fingerprint(&path, len).unwrap(),
            whole,
            "bytes past it do not count"
        );
        let mut edited = longer.clone();
        edited[len as usize - 1] = b'!';
        std::fs::write(&path, &edited).unwrap();
        assert_ne!(fingerprint(&path, len).unwrap(), whole);
        std::fs::write(&path, &long[..5]).unwrap();
        assert!(fingerprint(&path, len).is_err(), "shorter than the length");
    }
}
