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
    /// No read or write after this: a server that drips bytes slower than
    /// the time-out but never finishes still ends the run.
    deadline: std::time::Instant,
}

/// The longest a run's connection lives.
pub const MAX_RUN: Duration = Duration::from_secs(3600);

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
            deadline: std::time::Instant::now() + MAX_RUN,
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

    fn in_time(&self) -> io::Result<()> {
        if std::time::Instant::now() > self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the run took more than {} s", MAX_RUN.as_secs()),
            ));
        }
        Ok(())
    }

    /// One line without its CRLF (LF alone accepted).
    pub fn read_line(&mut self) -> io::Result<String> {
        self.in_time()?;
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
        self.in_time()?;
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
        let mut left = n;
        while left > 0 {
            self.in_time()?;
            let chunk = left.min(64 * 1024);
            let room = keep.saturating_sub(n - left).min(chunk);
            let got = (&mut self.r).take(room).read_to_end(out)? as u64;
            let dropped = io::copy(&mut (&mut self.r).take(chunk - room), &mut io::sink())?;
            if got + dropped < chunk {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection inside a literal",
                ));
            }
            left -= chunk;
        }
        Ok(())
    }

    pub fn send(&mut self, line: &str) -> io::Result<()> {
        self.in_time()?;
        let s = self.r.get_mut();
        s.write_all(line.as_bytes())?;
        s.write_all(b"\r\n")?;
        s.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that says `script` and then closes.
    fn server(script: Vec<u8>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let _ = s.write_all(&script);
            }
        });
        port
    }

    #[test]
    fn hostile_servers_get_bounded_reads() {
        let t = Duration::from_secs(5);
        // A line that never ends: refused after MAX_LINE.
        let port = server(vec![b'x'; MAX_LINE * 2]);
        let mut c = Conn::connect("127.0.0.1", port, t, None).unwrap();
        assert!(c.read_line().unwrap_err().to_string().contains("too long"));
        // A literal larger than allowed: kept up to `keep`, the rest read
        // and dropped.
        let mut script = b"{300000}\r\n".to_vec();
        script.extend(std::iter::repeat_n(b'a', 300_000));
        script.extend(b"\r\nnext\r\n");
        let port = server(script);
        let mut c = Conn::connect("127.0.0.1", port, t, None).unwrap();
        assert_eq!(c.read_line().unwrap(), "{300000}");
        let mut out = Vec::new();
        c.read_exact_into(300_000, 1000, &mut out).unwrap();
        assert_eq!(out.len(), 1000);
        assert_eq!(c.read_line().unwrap(), "");
        assert_eq!(c.read_line().unwrap(), "next");
        // A literal cut short.
        let port = server(b"abc".to_vec());
        let mut c = Conn::connect("127.0.0.1", port, t, None).unwrap();
        assert!(c.read_exact_into(10, 10, &mut Vec::new()).is_err());
        // Past the run's deadline nothing more is read.
        let port = server(b"+OK\r\n".to_vec());
        let mut c = Conn::connect("127.0.0.1", port, t, None).unwrap();
        c.deadline = std::time::Instant::now() - Duration::from_secs(1);
        assert_eq!(c.read_line().unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
