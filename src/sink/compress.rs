//! Compressing the output as it is written: gzip or zstd, chosen by `--compress` or by the
//! output's name (`orders.csv.gz`), and counting the bytes on both sides for the summary.
//!
//! Only the output itself is ever compressed. The partial file a run to `--out` keeps
//! beside it stays plain text in the output's format until the very end, so `--resume`
//! carries it on exactly as it would an uncompressed run's: a compressed stream cannot be
//! cut back to its last complete page and appended to, and re-encoding it on every resume
//! would cost the whole file again. The final write, which for a plain output is often a
//! rename, then compresses the partial file into the temporary file renamed over the
//! output, so the atomic replace holds as before.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;

/// How the output is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    /// Plain text in the output format.
    None,
    /// gzip (RFC 1952), for zcat, gunzip and every data tool.
    Gzip,
    /// Zstandard, with a checksum, for zstdcat: faster and smaller than gzip.
    Zstd,
}

impl Compression {
    /// The compression an output's name asks for by its last extension, and the name
    /// without that extension, whose own extension then names the format:
    /// `orders.csv.gz` is csv in gzip.
    pub fn from_path(path: &Path) -> (Self, PathBuf) {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("gz") => (Compression::Gzip, path.with_extension("")),
            Some("zst") => (Compression::Zstd, path.with_extension("")),
            _ => (Compression::None, path.to_path_buf()),
        }
    }
}

/// Bytes an output took, as its format has them and as they were stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub bytes: u64,
    /// `None` when the output is not compressed.
    pub compressed: Option<u64>,
}

/// A destination written through a [`Compression`], counting what goes in and what comes
/// out. [`Compressed::finish`] must end it: gzip and zstd write their trailers there.
pub struct Compressed<W: Write> {
    encoder: Encoder<Counted<W>>,
    bytes: u64,
}

enum Encoder<W: Write> {
    Plain(W),
    Gzip(GzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
}

/// A writer that counts the bytes it passes on.
struct Counted<W> {
    out: W,
    bytes: u64,
}

impl<W: Write> Compressed<W> {
    pub fn new(compression: Compression, out: W) -> io::Result<Self> {
        let out = Counted { out, bytes: 0 };
        let encoder = match compression {
            Compression::None => Encoder::Plain(out),
            Compression::Gzip => Encoder::Gzip(GzEncoder::new(out, flate2::Compression::default())),
            Compression::Zstd => {
                // Level 0 is zstd's own default (3), the one the zstd tool uses.
                let mut zstd = zstd::Encoder::new(out, 0)?;
                zstd.include_checksum(true)?;
                Encoder::Zstd(zstd)
            }
        };
        Ok(Compressed { encoder, bytes: 0 })
    }

    /// Ends the compressed stream and gives back the destination, with what was written.
    pub fn finish(self) -> io::Result<(W, Written)> {
        let (counted, compressed) = match self.encoder {
            Encoder::Plain(out) => (out, false),
            Encoder::Gzip(gzip) => (gzip.finish()?, true),
            Encoder::Zstd(zstd) => (zstd.finish()?, true),
        };
        let written = Written {
            bytes: self.bytes,
            compressed: compressed.then_some(counted.bytes),
        };
        Ok((counted.out, written))
    }
}

impl<W: Write> Write for Compressed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.encoder {
            Encoder::Plain(out) => out.write(buf),
            Encoder::Gzip(gzip) => gzip.write(buf),
            Encoder::Zstd(zstd) => zstd.write(buf),
        }?;
        self.bytes += n as u64;
        Ok(n)
    }

    /// Passes on everything written so far, so a reader downstream can decompress it now:
    /// a page streamed to standard output is not held back in the encoder.
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.encoder {
            Encoder::Plain(out) => out.flush(),
            Encoder::Gzip(gzip) => gzip.flush(),
            Encoder::Zstd(zstd) => zstd.flush(),
        }
    }
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_last_extension_names_the_compression_and_the_one_before_it_the_format() {
        for (name, compression, inner) in [
            ("orders.csv.gz", Compression::Gzip, "orders.csv"),
            ("x/e.JSONL.ZST", Compression::Zstd, "x/e.JSONL"),
            ("orders.gz", Compression::Gzip, "orders"),
            ("orders.csv", Compression::None, "orders.csv"),
            ("orders.csv.bz2", Compression::None, "orders.csv.bz2"),
            (".gz", Compression::None, ".gz"),
        ] {
            let (found, rest) = Compression::from_path(Path::new(name));
            assert_eq!((found, rest.as_path()), (compression, Path::new(inner)));
        }
    }

    fn compress(compression: Compression, text: &[u8]) -> (Vec<u8>, Written) {
        let mut out = Compressed::new(compression, Vec::new()).unwrap();
        // In pieces, flushed between them as pages streamed to standard output are.
        for piece in text.chunks(1000) {
            out.write_all(piece).unwrap();
            out.flush().unwrap();
        }
        out.finish().unwrap()
    }

    #[test]
    fn each_compression_round_trips_and_counts_both_sides() {
        let text: Vec<u8> = (0..5000)
            .flat_map(|i| format!("{i},item {i}\n").into_bytes())
            .collect();
        let (plain, written) = compress(Compression::None, &text);
        assert_eq!(plain, text);
        assert_eq!(
            written,
            Written {
                bytes: text.len() as u64,
                compressed: None
            }
        );

        let (gzip, written) = compress(Compression::Gzip, &text);
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, text);
        assert_eq!(written.bytes, text.len() as u64);
        assert_eq!(written.compressed, Some(gzip.len() as u64));
        assert!(gzip.len() < text.len() / 2, "{} bytes", gzip.len());

        let (zstd, written) = compress(Compression::Zstd, &text);
        assert_eq!(zstd::decode_all(&zstd[..]).unwrap(), text);
        assert_eq!(written.compressed, Some(zstd.len() as u64));
    }

    #[test]
    fn nothing_written_is_still_a_valid_empty_stream() {
        let (gzip, _) = compress(Compression::Gzip, b"");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert!(unzipped.is_empty() && !gzip.is_empty());
        let (zstd, written) = compress(Compression::Zstd, b"");
        assert_eq!(zstd::decode_all(&zstd[..]).unwrap(), b"");
        assert_eq!(written.bytes, 0);
    }
}
