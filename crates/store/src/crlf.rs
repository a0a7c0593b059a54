//! Line-ending conversion between network form (CRLF) and Maildir form (LF).
//!
//! Offers two incremental converters, [`ToLf`] (CRLF -> LF, used when a
//! message is written) and [`ToCrlf`] (LF -> CRLF, used when it is read), and
//! [`CrlfReader`], a streaming `Read` adapter over a Maildir file.
//!
//! Guarantees: `ToLf` turns only the pair CR LF into LF; `ToCrlf` turns
//! every LF into CR LF; a lone CR is copied unchanged both ways. So
//! `to_lf(to_crlf(y)) == y` for every `y`, and `to_crlf(to_lf(x)) == x` for
//! every `x` without a bare LF (network form, which is what callers hand us).
//! Hence the CRLF size of a stored file is its size plus its number of LFs.
//!
//! Input may be split anywhere (a CR at the end of one chunk and the LF at the
//! start of the next are still one line ending). Pure code: no I/O but the
//! `Read` adapter. Needs `memchr`.

use std::io::{self, Read};

/// Incremental CRLF -> LF converter.
#[derive(Debug, Default)]
pub struct ToLf {
    pending_cr: bool,
}

impl ToLf {
    /// A converter at the start of a message.
    pub fn new() -> ToLf {
        ToLf::default()
    }

    /// Converts `input`, appending to `out`. A trailing CR is held back until
    /// the next call (or [`ToLf::finish`]) tells whether an LF follows.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        if self.pending_cr {
            self.pending_cr = false;
            if input[0] == b'\n' {
                out.push(b'\n');
                input = &input[1..];
            } else {
                out.push(b'\r');
            }
        }
        while let Some(i) = memchr::memchr(b'\r', input) {
            out.extend_from_slice(&input[..i]);
            match input.get(i + 1) {
                Some(b'\n') => {
                    out.push(b'\n');
                    input = &input[i + 2..];
                }
                Some(_) => {
                    out.push(b'\r');
                    input = &input[i + 1..];
                }
                None => {
                    self.pending_cr = true;
                    return;
                }
            }
        }
        out.extend_from_slice(input);
    }

    /// Flushes a held-back CR at the end of the message.
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.pending_cr {
            out.push(b'\r');
        }
    }
}

/// LF -> CRLF converter. Stateless: every LF becomes CR LF.
#[derive(Debug, Default)]
pub struct ToCrlf;

impl ToCrlf {
    /// Converts `input`, appending to `out`.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while let Some(i) = memchr::memchr(b'\n', input) {
            out.extend_from_slice(&input[..i]);
            out.extend_from_slice(b"\r\n");
            input = &input[i + 1..];
        }
        out.extend_from_slice(input);
    }
}

/// Converts a whole buffer from CRLF to LF.
pub fn to_lf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut c = ToLf::new();
    c.push(input, &mut out);
    c.finish(&mut out);
    out
}

/// Converts a whole buffer from LF to CRLF.
pub fn to_crlf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    ToCrlf.push(input, &mut out);
    out
}

/// Converts a whole buffer from LF to CRLF, sized exactly (one pass to
/// count the LFs, one to copy: no reallocation for big messages).
pub fn to_crlf_exact(input: &[u8]) -> Vec<u8> {
    let lfs = memchr::memchr_iter(b'\n', input).count();
    let mut out = Vec::with_capacity(input.len() + lfs);
    ToCrlf.push(input, &mut out);
    out
}

/// Reads LF-form bytes from `r` up to and with the empty line that ends
/// the header block, in CRLF form (everything if no line is empty), in
/// reads of `chunk` bytes: a header-only FETCH of a big message reads its
/// first few kilobytes, not all of it. The header ends where IMAP's
/// sections say it does: at the first line with nothing before its line
/// end.
pub fn read_header(r: &mut impl Read, chunk: usize) -> io::Result<Vec<u8>> {
    let mut raw = vec![0u8; chunk.max(1)];
    let mut out = Vec::with_capacity(chunk + chunk / 8);
    let mut searched: usize = 0;
    loop {
        let n = match r.read(&mut raw) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(out);
        }
        ToCrlf.push(&raw[..n], &mut out);
        // In CRLF form every line ends with CR LF, so an empty line is a
        // CR LF at the start or right after another line's CR LF.
        if out.starts_with(b"\r\n") {
            out.truncate(2);
            return Ok(out);
        }
        let from = searched.saturating_sub(3);
        if let Some(i) = memchr::memmem::find(&out[from..], b"\r\n\r\n") {
            out.truncate(from + i + 4);
            return Ok(out);
        }
        searched = out.len();
    }
}

/// The CRLF size of LF-form bytes: their length plus their LF count.
pub fn crlf_len(lf_form: &[u8]) -> u64 {
    lf_form.len() as u64 + memchr::memchr_iter(b'\n', lf_form).count() as u64
}

/// Streams a reader of LF-form bytes as CRLF form.
#[derive(Debug)]
pub struct CrlfReader<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    raw: Box<[u8]>,
}

impl<R: Read> CrlfReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> CrlfReader<R> {
        CrlfReader {
            inner,
            buf: Vec::new(),
            pos: 0,
            raw: vec![0u8; 32 * 1024].into_boxed_slice(),
        }
    }
}

impl<R: Read> Read for CrlfReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            let n = loop {
                match self.inner.read(&mut self.raw) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                return Ok(0);
            }
            ToCrlf.push(&self.raw[..n], &mut self.buf);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: &[(&[u8], &[u8])] = &[
        (b"", b""),
        (b"a\r\nb\r\n", b"a\nb\n"),
        (b"lone\rcr\r\n", b"lone\rcr\n"),
        (b"\r\r\n", b"\r\n"),
        (b"\r", b"\r"),
        (b"end\r", b"end\r"),
        (b"\r\n\r\n.\r\n", b"\n\n.\n"),
        (b"x\r\r\r\ny", b"x\r\r\ny"),
    ];

    #[test]
    fn header_block_read_in_small_chunks() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"\nbody\n", b"\r\n"),
            (b"A: 1\nB: 2\n\nbody\n\nmore\n", b"A: 1\r\nB: 2\r\n\r\n"),
            (b"A: 1\nB: 2\n", b"A: 1\r\nB: 2\r\n"),
            (b"A: 1", b"A: 1"),
            // A lone CR is not an empty line; CR LF on disk is not either.
            (b"A: 1\n\r\nB: 2\n\nx", b"A: 1\r\n\r\r\nB: 2\r\n\r\n"),
            (b"A: 1\r\n\nx", b"A: 1\r\r\n\r\n"),
        ];
        for (disk, want) in cases {
            for chunk in [1, 2, 3, 5, 8192] {
                let got = read_header(&mut &disk[..], chunk).unwrap();
                assert_eq!(got, *want, "{disk:?} in chunks of {chunk}");
            }
            assert!(to_crlf(disk).starts_with(want));
            assert_eq!(to_crlf_exact(disk), to_crlf(disk));
        }
    }

    #[test]
    fn table_round_trip() {
        for (net, disk) in CASES {
            assert_eq!(to_lf(net), *disk, "to_lf {net:?}");
            assert_eq!(to_crlf(disk), *net, "to_crlf {disk:?}");
            assert_eq!(crlf_len(disk), net.len() as u64);
        }
    }

    #[test]
    fn split_at_every_byte() {
        for (net, disk) in CASES {
            for cut in 0..=net.len() {
                let mut out = Vec::new();
                let mut c = ToLf::new();
                c.push(&net[..cut], &mut out);
                c.push(&net[cut..], &mut out);
                c.finish(&mut out);
                assert_eq!(out, *disk, "{net:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn byte_by_byte_and_reader() {
        let net = b"Subject: x\r\n\r\nline\rwith cr\r\n\r\n.\r\n\r";
        let mut out = Vec::new();
        let mut c = ToLf::new();
        for b in net.iter() {
            c.push(std::slice::from_ref(b), &mut out);
        }
        c.finish(&mut out);
        assert_eq!(out, to_lf(net));
        let mut back = Vec::new();
        CrlfReader::new(&out[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, net);
    }

    #[test]
    fn pseudo_random_round_trip() {
        // Inputs over the alphabet {a, CR, LF} where every LF follows a CR.
        let mut seed = 12345u32;
        for _ in 0..500 {
            let mut net = Vec::new();
            for _ in 0..(seed % 40) {
                seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
                match (seed >> 16) % 3 {
                    0 => net.push(b'a'),
                    1 => net.push(b'\r'),
                    _ => net.extend_from_slice(b"\r\n"),
                }
            }
            assert_eq!(to_crlf(&to_lf(&net)), net);
            let disk = to_lf(&net);
            assert_eq!(to_lf(&to_crlf(&disk)), disk);
        }
    }
}
