//! Compressed page data (`cpr -c --compress`): the pages file as a sequence of chunks,
//! each the LZ4 block of up to `CHUNK` bytes of page data, or those bytes as they are
//! when LZ4 would not make them smaller (random data costs one failed try, no growth).
//!
//! ```text
//! chunk := raw_len: u32 LE | stored_len: u32 LE | stored_len bytes
//!          (stored_len == raw_len: the bytes themselves; else an LZ4 block)
//! ```
//!
//! Chunks are independent, so both sides work on several at once: the checkpoint
//! compresses the chunks of a buffer on two threads, the restart decodes on two. The
//! MmRecord says `compression: "lz4"`; its `pages_bytes` stays the page data's size
//! before compression. Input is hostile: every length is bounded, every block must
//! decode to exactly its raw length, and the chunks must add up to `pages_bytes`.

use std::os::unix::fs::FileExt;

use crate::error::{Error, Kind, Result};
use crate::statefile::reader::damaged_record;

/// Bytes of page data per chunk (before compression).
pub const CHUNK: usize = 1 << 20;
/// The name of the method in MmRecord::compression.
pub const LZ4: &str = "lz4";
const HEADER: usize = 8;

/// Appends the chunks of `raw` (any length) to `out`, compressing them on up to two
/// threads.
pub fn encode(raw: &[u8], out: &mut Vec<u8>) {
    let pieces: Vec<&[u8]> = raw.chunks(CHUNK).collect();
    if pieces.len() < 2 {
        for p in pieces {
            encode_chunk(p, out);
        }
        return;
    }
    let half = pieces.len().div_ceil(2);
    let (first, second) = pieces.split_at(half);
    let theirs = std::thread::scope(|scope| {
        let h = scope.spawn(|| {
            let mut v = Vec::new();
            for p in second {
                encode_chunk(p, &mut v);
            }
            v
        });
        for p in first {
            encode_chunk(p, out);
        }
        h.join()
    });
    match theirs {
        Ok(v) => out.extend_from_slice(&v),
        // the thread cannot panic short of allocation failure; do its part here then
        Err(_) => {
            for p in second {
                encode_chunk(p, out);
            }
        }
    }
}

/// One chunk (at most `CHUNK` bytes) appended to `out`.
fn encode_chunk(raw: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let body = out.len();
    out.resize(
        body + lz4_flex::block::get_maximum_output_size(raw.len()),
        0,
    );
    let stored = match lz4_flex::block::compress_into(raw, &mut out[body..]) {
        Ok(n) if n < raw.len() => n,
        _ => {
            out.truncate(body);
            out.extend_from_slice(raw);
            raw.len()
        }
    };
    out.truncate(body + stored);
    out[start + 4..start + 8].copy_from_slice(&(stored as u32).to_le_bytes());
}

/// Where one chunk is: its body's offset in the file, its stored and raw lengths, and
/// the offset of its raw bytes in the page data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub file_off: u64,
    pub stored: usize,
    pub raw: usize,
    pub raw_off: u64,
}

/// The chunks of a compressed pages file of `file_len` bytes holding `raw_total` bytes
/// of page data, from their headers; damage is "damaged record".
pub fn index(file: &std::fs::File, file_len: u64, raw_total: u64) -> Result<Vec<Chunk>> {
    let mut out = Vec::new();
    let mut off = 0u64;
    let mut raw_off = 0u64;
    while off < file_len {
        let mut h = [0u8; HEADER];
        file.read_exact_at(&mut h, off)
            .map_err(|e| damaged_record(format_args!("compressed page data at {off}: {e}")))?;
        let raw = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let stored = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let body = off + HEADER as u64;
        if raw == 0 || raw > CHUNK || stored == 0 || stored > raw || body + stored as u64 > file_len
        {
            return Err(damaged_record(format_args!(
                "compressed page data: chunk at {off} ({raw} bytes stored in {stored})"
            )));
        }
        out.push(Chunk {
            file_off: body,
            stored,
            raw,
            raw_off,
        });
        raw_off += raw as u64;
        off = body + stored as u64;
    }
    if raw_off != raw_total {
        return Err(damaged_record(format_args!(
            "compressed page data holds {raw_off} bytes, {raw_total} listed"
        )));
    }
    Ok(out)
}

/// Reads chunk `c` and puts its page data in `raw` (at least `c.raw` bytes long), using
/// `stored` as room for the stored bytes.
pub fn decode(file: &std::fs::File, c: &Chunk, stored: &mut Vec<u8>, raw: &mut [u8]) -> Result<()> {
    let damaged = |what: String| {
        Error::with_detail(
            "statefile",
            Kind::CheckpointError,
            format!("compressed page data: chunk at {}: {what}", c.file_off),
        )
    };
    stored.resize(c.stored, 0);
    file.read_exact_at(stored, c.file_off)
        .map_err(|e| damaged(e.to_string()))?;
    if c.stored == c.raw {
        raw[..c.raw].copy_from_slice(stored);
        return Ok(());
    }
    match lz4_flex::block::decompress_into(stored, &mut raw[..c.raw]) {
        Ok(n) if n == c.raw => Ok(()),
        Ok(n) => Err(damaged(format!("{n} bytes decoded, {} expected", c.raw))),
        Err(e) => Err(damaged(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn chunks_round_trip_and_damage_is_refused() {
        // compressible, then random-looking, across several chunks
        let mut raw = vec![7u8; CHUNK + 100];
        let mut x = 1u64;
        for _ in 0..(CHUNK + 5000) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            raw.push(x as u8);
        }
        let mut enc = Vec::new();
        encode(&raw, &mut enc);
        assert!(enc.len() < raw.len());
        let mut f = tempfile();
        f.write_all(&enc).unwrap();
        let chunks = index(&f, enc.len() as u64, raw.len() as u64).unwrap();
        assert_eq!(chunks.len(), 3);
        let mut back = Vec::new();
        let mut stored = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        for c in &chunks {
            decode(&f, c, &mut stored, &mut buf).unwrap();
            back.extend_from_slice(&buf[..c.raw]);
        }
        assert_eq!(back, raw);
        // the wrong total, a length past the end
        assert!(index(&f, enc.len() as u64, raw.len() as u64 + 1).is_err());
        assert!(index(&f, enc.len() as u64 - 1, raw.len() as u64).is_err());
        // a damaged block
        let mut bad = enc.clone();
        bad[HEADER + 1] ^= 0xff;
        let mut g = tempfile();
        g.write_all(&bad).unwrap();
        let c = index(&g, bad.len() as u64, raw.len() as u64).unwrap()[0];
        let _ = decode(&g, &c, &mut stored, &mut buf); // an error or other bytes, no panic
    }

    fn tempfile() -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "cpr-compress-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        f
    }
}
