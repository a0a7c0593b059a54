//! The body of a message being received: in memory while small, spilled to an
//! unlinked temporary file past [`SPILL_AT`], so a connection's memory stays
//! bounded whatever the message size (a 50 MB message costs one read buffer).
//!
//! Readers ([`Body::reader`]) are independent: each recipient's delivery reads
//! the whole body at its own offset (positioned reads), concurrently.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Bodies larger than this go to a temporary file.
pub const SPILL_AT: usize = 1 << 20;

/// A message body under construction, then frozen for delivery.
#[derive(Debug)]
pub enum Body {
    Memory(Vec<u8>),
    File { file: File, len: u64 },
}

impl Default for Body {
    fn default() -> Self {
        Body::Memory(Vec::new())
    }
}

impl Body {
    /// Appends bytes; spills to a file in `tmp_dir` when the body grows large.
    pub fn append(&mut self, bytes: &[u8], tmp_dir: &Path) -> io::Result<()> {
        match self {
            Body::Memory(v) if v.len() + bytes.len() <= SPILL_AT => {
                v.extend_from_slice(bytes);
                Ok(())
            }
            Body::Memory(v) => {
                let mut file = tempfile::tempfile_in(tmp_dir)?;
                file.write_all(v)?;
                file.write_all(bytes)?;
                let len = (v.len() + bytes.len()) as u64;
                *self = Body::File { file, len };
                Ok(())
            }
            Body::File { file, len } => {
                file.write_all(bytes)?;
                *len += bytes.len() as u64;
                Ok(())
            }
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Body::Memory(v) => v.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Freezes the body so that several readers can share it.
    pub fn freeze(self) -> Arc<Body> {
        Arc::new(self)
    }

    /// A reader over the bytes appended so far, from the first (checks at
    /// the end of the data read it before it is frozen).
    pub fn read_from_start(&self) -> io::Result<impl Read + Send + '_> {
        Ok(Partial { body: self, pos: 0 })
    }

    /// Reads at `pos`; 0 at the end.
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Body::Memory(v) => {
                let start = (pos as usize).min(v.len());
                let n = (v.len() - start).min(buf.len());
                buf[..n].copy_from_slice(&v[start..start + n]);
                Ok(n)
            }
            Body::File { file, len } => {
                let left = len.saturating_sub(pos);
                let want = (left.min(buf.len() as u64)) as usize;
                if want == 0 {
                    Ok(0)
                } else {
                    file.read_at(&mut buf[..want], pos)
                }
            }
        }
    }

    /// A reader over the whole body, starting with `prefix` (the headers this
    /// delivery adds).
    pub fn reader(self: &Arc<Body>, prefix: Vec<u8>) -> BodyReader {
        BodyReader {
            prefix,
            prefix_pos: 0,
            body: Arc::clone(self),
            pos: 0,
        }
    }
}

/// Reads `prefix`, then the body.
#[derive(Debug)]
pub struct BodyReader {
    prefix: Vec<u8>,
    prefix_pos: usize,
    body: Arc<Body>,
    pos: u64,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.prefix_pos < self.prefix.len() {
            let n = (self.prefix.len() - self.prefix_pos).min(buf.len());
            buf[..n].copy_from_slice(&self.prefix[self.prefix_pos..self.prefix_pos + n]);
            self.prefix_pos += n;
            return Ok(n);
        }
        let n = self.body.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Reads a body that is still being received.
struct Partial<'a> {
    body: &'a Body,
    pos: u64,
}

impl Read for Partial<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.body.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_stays_in_memory_large_spills_and_reads_back() {
        let d = tempfile::tempdir().unwrap();
        let mut b = Body::default();
        b.append(b"hello ", d.path()).unwrap();
        assert!(matches!(b, Body::Memory(_)));
        let chunk = vec![b'x'; 300_000];
        for _ in 0..5 {
            b.append(&chunk, d.path()).unwrap();
        }
        assert!(matches!(b, Body::File { .. }));
        assert_eq!(b.len(), 6 + 1_500_000);
        let mut partial = Vec::new();
        b.read_from_start()
            .unwrap()
            .read_to_end(&mut partial)
            .unwrap();
        assert_eq!(partial.len(), 6 + 1_500_000);
        assert!(partial.starts_with(b"hello xxx"));
        let b = b.freeze();
        // Two readers at once, each from the start.
        let mut r1 = b.reader(b"P: 1\r\n".to_vec());
        let mut r2 = b.reader(Vec::new());
        let mut s1 = Vec::new();
        let mut s2 = Vec::new();
        r1.read_to_end(&mut s1).unwrap();
        r2.read_to_end(&mut s2).unwrap();
        assert_eq!(s1.len(), 6 + 6 + 1_500_000);
        assert!(s1.starts_with(b"P: 1\r\nhello xxx"));
        assert_eq!(&s1[6..], &s2[..]);
        // Nothing visible in the temporary directory: the file is unlinked.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
