//! A blocking connection to a remote POP3 or IMAP server, in clear or TLS
//! (from the start, or after STLS/STARTTLS), with bounded lines and a
//! time-out on every read and write.
//!
//! Blocking on purpose: a collector holds a few connections at a time,
//! each on its own thread (facteur-fetchd's runs are `spawn_blocking`),
//! and the protocol code reads as a script.

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// The longest response line read (longer: an error).
pub const MAX_LINE: usize = 64 * 1024;

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// Between the two, during a failed upgrade.
    Closed,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection is closed")
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Closed => Err(closed()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Closed => Err(closed()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Closed => Err(closed()),
        }
    }
}

pub struct Conn {
    r: BufReader<Stream>,
    host: String,
    pub tls: bool,
}

fn protocol_error(m: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.into())
}

impl Conn {
    /// Connects to `host:port`; with `tls`, the handshake first (the
    /// certificate checked by the configuration given).
    pub fn connect(
        host: &str,
        port: u16,
        timeout: Duration,
        tls: Option<Arc<ClientConfig>>,
    ) -> io::Result<Conn> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
        let mut stream = None;
        for a in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let s = stream.ok_or(last)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let mut c = Conn {
            r: BufReader::new(Stream::Plain(s)),
            host: host.to_string(),
            tls: false,
        };
        if let Some(cfg) = tls {
            c.start_tls(cfg)?;
        }
        Ok(c)
    }

    /// The TLS handshake on the connection as it is (after STLS's `+OK`).
    pub fn start_tls(&mut self, cfg: Arc<ClientConfig>) -> io::Result<()> {
        if !self.r.buffer().is_empty() {
            return Err(protocol_error(
                "the server sent data before the TLS handshake",
            ));
        }
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| protocol_error(format!("{}: {e}", self.host)))?;
        let old = std::mem::replace(&mut self.r, BufReader::new(Stream::Closed)).into_inner();
        let Stream::Plain(tcp) = old else {
            return Err(protocol_error("TLS is already on"));
        };
        let conn = ClientConnection::new(cfg, name).map_err(|e| protocol_error(e.to_string()))?;
        let mut tls = StreamOwned::new(conn, tcp);
        // Finish the handshake now, so a bad certificate fails here.
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| io::Error::new(e.kind(), format!("TLS with {}: {e}", self.host)))?;
        }
        self.r = BufReader::new(Stream::Tls(Box::new(tls)));
        self.tls = true;
        Ok(())
    }

    /// One line without its CRLF (LF alone accepted).
    pub fn read_line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        let n = (&mut self.r)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        if buf.last() != Some(&b'\n') {
            return Err(protocol_error("a response line is too long"));
        }
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// One line with its line end, as bytes (message data).
    pub fn read_raw_line(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let n = (&mut self.r)
            .take(MAX_LINE as u64 * 16)
            .read_until(b'\n', buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(n)
    }

    /// Exactly `n` bytes (an IMAP literal), into `out` up to `keep` bytes
    /// (the rest read and dropped).
    pub fn read_exact_into(&mut self, n: u64, keep: u64, out: &mut Vec<u8>) -> io::Result<()> {
        let kept = n.min(keep);
        let got = (&mut self.r).take(kept).read_to_end(out)? as u64;
        let dropped = io::copy(&mut (&mut self.r).take(n - kept), &mut io::sink())?;
        if got + dropped < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection inside a literal",
            ));
        }
        Ok(())
    }

    pub fn send(&mut self, line: &str) -> io::Result<()> {
        let s = self.r.get_mut();
        s.write_all(line.as_bytes())?;
        s.write_all(b"\r\n")?;
        s.flush()
    }
}
