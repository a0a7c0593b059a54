//! The I/O half of a line-oriented protocol session (SMTP, LMTP, POP3, IMAP):
//! one input buffer, one output buffer, command-line framing with a length
//! limit, read time-outs, and the shutdown signal. Sessions keep their state
//! machines and call this for bytes; protocol-specific readers (SMTP's DATA)
//! sit on [`LineIo::consume`].
//!
//! Guarantees:
//! - Replies are batched and flushed before every blocking read, so
//!   pipelined commands (RFC 2920) get their replies together and a client
//!   that waits for a reply always gets it.
//! - Memory is bounded: a command line by the framer's limit (an overlong
//!   line is reported once and skipped), data read through
//!   [`LineIo::consume`] and [`LineIo::read_exact`] by the caller's sink
//!   (bytes are handed over chunk by chunk, never accumulated here).
//! - Bytes after the end of a data section stay buffered for the next
//!   command; [`LineIo::discard_input`] drops them (STARTTLS).
//! - Time is bounded per command, not per read, so a client that trickles
//!   a byte now and then cannot stretch it: a command line must arrive
//!   whole within the time-out; a data section ([`LineIo::consume`],
//!   [`LineIo::read_exact`]) gets the time-out plus one second per
//!   [`LineIo::set_min_rate`] bytes received (1 KiB/s by default); and a
//!   phase of the session may have a hard end ([`LineIo::set_deadline`]:
//!   IMAP's login phase).
//! - COMPRESS=DEFLATE (RFC 4978, [`LineIo::start_deflate`]): once started,
//!   output is deflated at each flush (a sync flush, so the client can
//!   read every reply at once) and input inflated as it is read, into the
//!   same bounded buffers: a small compressed input that inflates hugely
//!   (a "zip bomb") is inflated a chunk at a time, as the framer and the
//!   caller's sink take it, never all at once.

use crate::conn::Conn;
use facteur_util::line::{LineEvent, LineFramer};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

const READ_CHUNK: usize = 64 * 1024;
/// The default slowest data transfer a client may keep up (bytes/s).
pub const MIN_RATE: u64 = 1024;
/// The read buffer between commands.
const IDLE_CHUNK: usize = 4 * 1024;
/// What a read between commands with nothing buffered takes, into the
/// session's own state rather than a heap buffer: a connection waiting
/// for its next command (an IMAP IDLE for hours) holds no buffer at all.
/// Small, since every connection's task is sized for it all its life: a
/// command longer than this takes a second read.
const FIRST_READ: usize = 32;

/// What a read brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Data,
    Eof,
    Timeout,
    /// The daemon is shutting down (only while idle).
    Stop,
}

/// The next thing on the command channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A command line, with its terminator.
    Line(Vec<u8>),
    /// A line over the limit (skipped).
    TooLong,
    Eof,
    Timeout,
    Stop,
}

/// Buffers and framing around a stream.
pub struct LineIo<S> {
    /// The stream; sessions may swap it (STARTTLS) after
    /// [`discard_input`](Self::discard_input).
    pub stream: S,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    framer: LineFramer,
    max_line: usize,
    timeout: Duration,
    /// Bytes per second a data section must keep up.
    min_rate: u64,
    /// A hard end for the current phase of the session.
    deadline: Option<Instant>,
    /// The first bytes of the last overlong line.
    overlong_head: Vec<u8>,
    stop: watch::Receiver<bool>,
    /// COMPRESS=DEFLATE, once started.
    deflate: Option<Box<Deflate>>,
}

/// Raw deflate streams (RFC 1951, no zlib header: RFC 4978 §3) both ways.
struct Deflate {
    out: flate2::Compress,
    inp: flate2::Decompress,
    /// Input read but not inflated yet.
    raw: Vec<u8>,
}

/// Reads what `stream` has into `buf`, waiting until `until` at most;
/// `idle` lets a shutdown interrupt the wait.
async fn read_some(
    read: impl std::future::Future<Output = io::Result<usize>>,
    stop: &watch::Receiver<bool>,
    idle: bool,
    until: Instant,
) -> io::Result<Fill> {
    let mut stop = stop.clone();
    let read = tokio::time::timeout_at(until, read);
    let r = if idle {
        tokio::select! {
            r = read => r,
            _ = stop.wait_for(|s| *s) => return Ok(Fill::Stop),
        }
    } else {
        read.await
    };
    match r {
        Err(_) => Ok(Fill::Timeout),
        Ok(Ok(0)) => Ok(Fill::Eof),
        Ok(Ok(_)) => Ok(Fill::Data),
        Ok(Err(e)) => Err(e),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> LineIo<S> {
    pub fn new(stream: S, max_line: usize, timeout: Duration, stop: watch::Receiver<bool>) -> Self {
        LineIo {
            stream,
            inbuf: Vec::new(),
            out: Vec::new(),
            framer: LineFramer::new(max_line),
            max_line,
            timeout,
            min_rate: MIN_RATE,
            deadline: None,
            overlong_head: Vec::new(),
            stop,
            deflate: None,
        }
    }

    /// COMPRESS=DEFLATE after the positive reply has been queued: the reply
    /// goes out uncompressed, then everything both ways is deflated. What
    /// the client sent after the command is already compressed.
    pub async fn start_deflate(&mut self) -> io::Result<()> {
        self.flush().await?;
        let raw = std::mem::take(&mut self.inbuf);
        self.deflate = Some(Box::new(Deflate {
            out: flate2::Compress::new(flate2::Compression::default(), false),
            inp: flate2::Decompress::new(false),
            raw,
        }));
        Ok(())
    }

    /// Whether COMPRESS=DEFLATE is on.
    pub fn is_deflating(&self) -> bool {
        self.deflate.is_some()
    }

    /// Sets the slowest data transfer a client may keep up (bytes/s; at
    /// least 1).
    pub fn set_min_rate(&mut self, bytes_per_second: u64) {
        self.min_rate = bytes_per_second.max(1);
    }

    /// Ends the session's current phase at `at` (every read after it is a
    /// time-out), or lifts that end (`None`).
    pub fn set_deadline(&mut self, at: Option<Instant>) {
        self.deadline = at;
    }

    /// The first bytes (up to 128) of the last line reported as
    /// [`Input::TooLong`]: where a protocol finds the tag to answer with.
    pub fn overlong_head(&self) -> &[u8] {
        &self.overlong_head
    }

    /// Queues bytes to send at the next flush.
    pub fn write(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// The output buffer, for encoders that append to a `Vec`.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Changes the idle time-out (IMAP allows more once logged in).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Whether input is buffered (a pipelined command waits).
    pub fn has_input(&self) -> bool {
        !self.inbuf.is_empty() || self.deflate.as_ref().is_some_and(|d| !d.raw.is_empty())
    }

    /// Whether the daemon asked sessions to end.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Drops buffered input, and forgets a half-skipped overlong line;
    /// returns how many bytes were dropped (STARTTLS, STLS).
    pub fn discard_input(&mut self) -> usize {
        let n = self.inbuf.len() + usize::from(self.framer.is_discarding());
        self.inbuf.clear();
        self.framer = LineFramer::new(self.max_line);
        n
    }

    /// Writes the batched output, with the idle timeout as a write timeout
    /// (a client that stops reading cannot hold a session forever).
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let deflated = match &mut self.deflate {
            Some(d) => Some(deflate_sync(&mut d.out, &self.out)?),
            None => None,
        };
        let bytes = deflated.as_deref().unwrap_or(&self.out);
        let w = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.timeout, w).await {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "write timeout")),
        }
        self.out.clear();
        // A big transfer (POP3 RETR, IMAP FETCH) may have grown the buffer:
        // give it back.
        if self.out.capacity() > 4 * READ_CHUNK {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Flushes, then reads more input, waiting at most the time-out.
    /// `idle` lets a shutdown interrupt the wait (between commands, never
    /// inside a message).
    pub async fn fill(&mut self, idle: bool) -> io::Result<Fill> {
        let until = Instant::now() + self.timeout;
        self.fill_until(idle, until).await
    }

    /// [`fill`](Self::fill), waiting until `until` at most (and never past
    /// the phase's deadline).
    async fn fill_until(&mut self, idle: bool, until: Instant) -> io::Result<Fill> {
        let until = match self.deadline {
            Some(d) => until.min(d),
            None => until,
        };
        self.flush().await?;
        if idle && self.deflate.is_none() && self.inbuf.is_empty() {
            self.inbuf = Vec::new();
            if self.out.is_empty() {
                self.out = Vec::new();
            }
            let mut first = [0u8; FIRST_READ];
            let mut n = 0;
            let read = async {
                n = self.stream.read(&mut first).await?;
                Ok(n)
            };
            let fill = read_some(read, &self.stop, idle, until).await?;
            self.inbuf.extend_from_slice(&first[..n]);
            if n == FIRST_READ {
                // More may have come in the same packet (pipelined
                // commands): take what is there now, so that it is
                // handled as if read at once (STARTTLS discards it).
                self.take_ready();
            }
            return Ok(fill);
        }
        if idle {
            // Between commands: a small buffer, so thousands of idle
            // connections (IMAP IDLE) cost little; what a bulk transfer
            // grew is given back.
            if self.inbuf.is_empty() && self.inbuf.capacity() > 4 * IDLE_CHUNK {
                self.inbuf = Vec::new();
            }
            // So is what the last response grew (a FETCH of bodies): a
            // session waiting for its next command, or in IDLE for hours,
            // keeps a small output buffer, not up to flush's bound.
            if self.out.is_empty() && self.out.capacity() > 4 * IDLE_CHUNK {
                self.out = Vec::new();
            }
            if self.inbuf.capacity() - self.inbuf.len() < IDLE_CHUNK / 4 {
                self.inbuf.reserve(IDLE_CHUNK);
            }
        } else if self.inbuf.capacity() - self.inbuf.len() < READ_CHUNK / 4 {
            self.inbuf.reserve(READ_CHUNK);
        }
        let Some(d) = &mut self.deflate else {
            return read_some(
                self.stream.read_buf(&mut self.inbuf),
                &self.stop,
                idle,
                until,
            )
            .await;
        };
        loop {
            if !d.raw.is_empty() {
                // At most a chunk of output per call: the framer or the
                // sink takes it before more is inflated.
                if self.inbuf.capacity() - self.inbuf.len() < 1024 {
                    self.inbuf.reserve(READ_CHUNK);
                }
                let (in0, out0) = (d.inp.total_in(), d.inp.total_out());
                d.inp
                    .decompress_vec(&d.raw, &mut self.inbuf, flate2::FlushDecompress::None)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let used = (d.inp.total_in() - in0) as usize;
                d.raw.drain(..used.min(d.raw.len()));
                if d.inp.total_out() > out0 {
                    return Ok(Fill::Data);
                }
                if used == 0 && d.raw.len() > READ_CHUNK {
                    // Input the inflater will not take: not deflate.
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad deflate stream",
                    ));
                }
            }
            match read_some(self.stream.read_buf(&mut d.raw), &self.stop, idle, until).await? {
                Fill::Data => {}
                other => return Ok(other),
            }
        }
    }

    /// Reads what the stream has ready now into the buffer, without
    /// waiting (one poll; nothing, an end or an error is left for the next
    /// read to find).
    fn take_ready(&mut self) {
        self.inbuf.reserve(IDLE_CHUNK);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let read = std::pin::pin!(self.stream.read_buf(&mut self.inbuf));
        let _ = read.poll(&mut cx);
    }

    /// The next command line, reading as needed: the whole line must
    /// arrive within the time-out.
    pub async fn next_line(&mut self, idle: bool) -> io::Result<Input> {
        let until = Instant::now() + self.timeout;
        loop {
            let (used, ev) = self.framer.next(&self.inbuf);
            let ev = ev.map(|e| match e {
                LineEvent::Line(l) => Input::Line(l.to_vec()),
                LineEvent::TooLong(head) => {
                    self.overlong_head.clear();
                    self.overlong_head.extend_from_slice(head);
                    Input::TooLong
                }
            });
            self.inbuf.drain(..used);
            if let Some(ev) = ev {
                return Ok(ev);
            }
            match self.fill_until(idle, until).await? {
                Fill::Data => {}
                Fill::Eof => return Ok(Input::Eof),
                Fill::Timeout => return Ok(Input::Timeout),
                Fill::Stop => return Ok(Input::Stop),
            }
        }
    }

    /// Hands the buffered input to `take`, reading more while it asks for
    /// it. `take` gets everything buffered (possibly nothing) and returns
    /// how many bytes it used and whether it is done; what it leaves stays
    /// buffered for the next command. Returns `Fill::Data` once `take` is
    /// done, or why it could not be.
    pub async fn consume(
        &mut self,
        mut take: impl FnMut(&[u8]) -> (usize, bool),
    ) -> io::Result<Fill> {
        let started = Instant::now();
        let mut received = 0u64;
        loop {
            let (used, done) = take(&self.inbuf);
            let used = used.min(self.inbuf.len());
            self.inbuf.drain(..used);
            received += used as u64;
            if done {
                return Ok(Fill::Data);
            }
            match self
                .fill_until(false, self.data_deadline(started, received))
                .await?
            {
                Fill::Data | Fill::Stop => {}
                other => return Ok(other),
            }
        }
    }

    /// When a data section that began at `started` and has brought
    /// `received` bytes must bring more: the time-out, plus a second per
    /// `min_rate` bytes.
    fn data_deadline(&self, started: Instant, received: u64) -> Instant {
        let earned = Duration::from_secs_f64(received as f64 / self.min_rate as f64);
        started + self.timeout + earned.min(Duration::from_secs(24 * 3600))
    }

    /// Reads exactly `n` bytes (a BDAT chunk, an IMAP literal), handing them
    /// to `sink`.
    pub async fn read_exact(
        &mut self,
        mut n: u64,
        mut sink: impl FnMut(&[u8]),
    ) -> io::Result<Fill> {
        let started = Instant::now();
        let mut received = 0u64;
        while n > 0 {
            if self.inbuf.is_empty() {
                match self
                    .fill_until(false, self.data_deadline(started, received))
                    .await?
                {
                    Fill::Data | Fill::Stop => {}
                    other => return Ok(other),
                }
            }
            let k = (n.min(self.inbuf.len() as u64)) as usize;
            sink(&self.inbuf[..k]);
            self.inbuf.drain(..k);
            n -= k as u64;
            received += k as u64;
        }
        Ok(Fill::Data)
    }
}

/// `data` deflated and sync-flushed: the client inflates all of it now.
fn deflate_sync(c: &mut flate2::Compress, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let mut input = data;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.len().max(4096));
        }
        let before = c.total_in();
        c.compress_vec(input, &mut out, flate2::FlushCompress::Sync)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let used = (c.total_in() - before) as usize;
        input = &input[used.min(input.len())..];
        // Done when everything went in and the flush left room unused.
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> LineIo<Conn<T>> {
    /// STARTTLS / STLS after the positive reply has been queued: flushes
    /// it, drops whatever the client pipelined in clear text (the
    /// CVE-2011-0411 class), and runs the TLS handshake (30 s at most).
    /// `Ok(true)`: the session goes on in TLS; `Ok(false)`: the handshake
    /// failed or the stream was already TLS, and the connection must close.
    pub async fn start_tls(&mut self, tls: Arc<rustls::ServerConfig>) -> io::Result<bool> {
        self.flush().await?;
        let dropped = self.discard_input();
        if dropped > 0 {
            tracing::warn!(
                bytes = dropped,
                "discarding data pipelined before the TLS handshake"
            );
        }
        let plain = match std::mem::replace(&mut self.stream, Conn::Gone) {
            Conn::Plain(s) => s,
            other => {
                self.stream = other;
                return Ok(false);
            }
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(plain)).await {
            Ok(Ok(t)) => {
                self.stream = Conn::Tls(Box::new(t));
                crate::metrics::tls_session(self.stream.tls_version().unwrap_or("other"));
                tracing::debug!(tls = %self.stream.tls_description().unwrap_or_default(), "TLS started");
                Ok(true)
            }
            Ok(Err(e)) => {
                tracing::info!(error = %e, "TLS handshake failed");
                Ok(false)
            }
            Err(_) => {
                tracing::info!("TLS handshake timed out");
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn lines_data_and_chunks_share_one_buffer() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (_tx, rx) = watch::channel(false);
        let mut io = LineIo::new(server, 64, Duration::from_secs(5), rx);
        client
            .write_all(b"CMD one\r\nDATA-BYTES a\r\n.\r\nXYZWnext\r\n")
            .await
            .unwrap();
        assert_eq!(
            io.next_line(true).await.unwrap(),
            Input::Line(b"CMD one\r\n".to_vec())
        );
        // Up to (and without) the first ".\r\n": a stand-in for a DATA reader.
        let mut msg = Vec::new();
        assert_eq!(
            io.consume(|b| match b.windows(3).position(|w| w == b".\r\n") {
                Some(p) => {
                    msg.extend_from_slice(&b[..p]);
                    (p + 3, true)
                }
                None => (0, false),
            })
            .await
            .unwrap(),
            Fill::Data
        );
        assert_eq!(msg, b"DATA-BYTES a\r\n");
        let mut chunk = Vec::new();
        assert_eq!(
            io.read_exact(4, |b| chunk.extend_from_slice(b))
                .await
                .unwrap(),
            Fill::Data
        );
        assert_eq!(chunk, b"XYZW");
        assert_eq!(
            io.next_line(true).await.unwrap(),
            Input::Line(b"next\r\n".to_vec())
        );
        client.write_all(&[b'x'; 100]).await.unwrap();
        client.write_all(b"\r\n").await.unwrap();
        assert_eq!(io.next_line(true).await.unwrap(), Input::TooLong);
        io.write(b"250 ok\r\n");
        io.flush().await.unwrap();
        let mut got = [0u8; 8];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"250 ok\r\n");
        drop(client);
        assert_eq!(io.next_line(true).await.unwrap(), Input::Eof);
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_cannot_stretch_a_command_or_a_data_section() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (_tx, rx) = watch::channel(false);
        let mut io = LineIo::new(server, 64, Duration::from_secs(10), rx);
        io.set_min_rate(100);
        let trickle = tokio::spawn(async move {
            // A byte every 5 s: each read would be in time, the line never is.
            for b in b"NOOP NOOP NOOP\r\n".iter() {
                if client.write_all(&[*b]).await.is_err() {
                    return client;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            client
        });
        let t0 = Instant::now();
        assert_eq!(io.next_line(true).await.unwrap(), Input::Timeout);
        assert!(t0.elapsed() <= Duration::from_secs(11));
        let mut client = trickle.await.unwrap();
        io.discard_input();
        // Data: 10 s, plus 1 s per 100 bytes received; 150 bytes at once
        // then silence: over at 11.5 s.
        client.write_all(&[b'x'; 150]).await.unwrap();
        let t0 = Instant::now();
        let mut got = 0;
        let end = io.read_exact(1000, |b| got += b.len()).await.unwrap();
        // (What the trickle left in the pipe counts too.)
        assert!(
            end == Fill::Timeout && (150..=166).contains(&got),
            "{end:?} {got}"
        );
        let took = t0.elapsed().as_secs_f64();
        let allowed = 10.0 + got as f64 / 100.0;
        assert!(
            took >= allowed - 0.01 && took < allowed + 0.5,
            "{took} vs {allowed}"
        );
        // A phase deadline cuts any wait short.
        io.set_deadline(Some(Instant::now() + Duration::from_secs(2)));
        let t0 = Instant::now();
        assert_eq!(io.next_line(true).await.unwrap(), Input::Timeout);
        assert!(t0.elapsed() <= Duration::from_secs(2));
        drop(client);
    }

    #[tokio::test]
    async fn a_big_response_leaves_no_big_buffer_while_idle() {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let (_tx, rx) = watch::channel(false);
        let mut io = LineIo::new(server, 1024, Duration::from_secs(5), rx);
        io.write(&vec![b'x'; 200 * 1024]);
        io.flush().await.unwrap();
        let mut sink = vec![0u8; 200 * 1024];
        client.read_exact(&mut sink).await.unwrap();
        assert!(io.out.capacity() >= 200 * 1024);
        client.write_all(b"a NOOP\r\n").await.unwrap();
        assert_eq!(
            io.next_line(true).await.unwrap(),
            Input::Line(b"a NOOP\r\n".to_vec())
        );
        assert!(io.out.capacity() <= 4 * IDLE_CHUNK, "{}", io.out.capacity());
    }

    #[tokio::test]
    async fn waiting_for_a_command_holds_no_buffer() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (_tx, rx) = watch::channel(false);
        let mut io = LineIo::new(server, 4096, Duration::from_millis(100), rx);
        // pipelined lines longer together than the first read's room
        let lines: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("a{i} {}\r\n", "x".repeat(300)).into_bytes())
            .collect();
        client.write_all(&lines.concat()).await.unwrap();
        for l in &lines {
            assert_eq!(io.next_line(true).await.unwrap(), Input::Line(l.clone()));
        }
        io.write(b"a2 OK done\r\n");
        assert_eq!(io.next_line(true).await.unwrap(), Input::Timeout);
        assert_eq!((io.inbuf.capacity(), io.out.capacity()), (0, 0));
        let mut reply = [0u8; 12];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"a2 OK done\r\n");
        client.write_all(b"b NOOP\r\n").await.unwrap();
        assert_eq!(
            io.next_line(true).await.unwrap(),
            Input::Line(b"b NOOP\r\n".to_vec())
        );
    }

    #[tokio::test]
    async fn deflate_both_ways_and_a_bomb_stays_bounded() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (_tx, rx) = watch::channel(false);
        let mut io = LineIo::new(server, 1024, Duration::from_secs(5), rx);
        io.write(b"a OK DEFLATE active\r\n");
        io.start_deflate().await.unwrap();
        let mut ok = [0u8; 21];
        client.read_exact(&mut ok).await.unwrap();
        assert_eq!(&ok, b"a OK DEFLATE active\r\n");
        let mut z = flate2::Compress::new(flate2::Compression::default(), false);
        // 64 MiB of one byte, then a line: about 64 KiB on the wire.
        let mut bomb = vec![b'x'; 64 << 20];
        bomb.extend_from_slice(b"\r\nb NOOP\r\n");
        let wire = deflate_sync(&mut z, &bomb).unwrap();
        assert!(wire.len() < 1 << 20);
        let writer = tokio::spawn(async move {
            client.write_all(&wire).await.unwrap();
            client
        });
        assert_eq!(io.next_line(false).await.unwrap(), Input::TooLong);
        assert!(
            io.inbuf.capacity() <= 4 * READ_CHUNK,
            "{}",
            io.inbuf.capacity()
        );
        assert_eq!(
            io.next_line(false).await.unwrap(),
            Input::Line(b"b NOOP\r\n".to_vec())
        );
        let mut client = writer.await.unwrap();
        io.write(b"b OK NOOP completed\r\n");
        io.flush().await.unwrap();
        let mut got = vec![0u8; 256];
        let n = client.read(&mut got).await.unwrap();
        let mut d = flate2::Decompress::new(false);
        let mut plain = Vec::with_capacity(256);
        d.decompress_vec(&got[..n], &mut plain, flate2::FlushDecompress::Sync)
            .unwrap();
        assert_eq!(plain, b"b OK NOOP completed\r\n");
    }

    #[tokio::test]
    async fn timeout_and_stop() {
        let (_client, server) = tokio::io::duplex(64);
        let (tx, rx) = watch::channel(false);
        let mut io = LineIo::new(server, 64, Duration::from_millis(50), rx);
        assert_eq!(io.next_line(true).await.unwrap(), Input::Timeout);
        tx.send(true).unwrap();
        assert!(io.stopping());
        assert_eq!(io.next_line(true).await.unwrap(), Input::Stop);
    }
}
