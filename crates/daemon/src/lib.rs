//! facteur-daemon: the skeleton every facteur daemon stands on.
//!
//! Offers: [`tls`] (the rustls server configuration from `[tls]`, reloadable)
//! and [`conn`] (a stream that starts in clear text and may become TLS, for
//! STARTTLS/STLS and implicit TLS); logging set up from `[log]` (only binaries call it; libraries only
//! emit `tracing` events), listeners on TCP and Unix sockets behind one
//! [`Listener`] / [`Stream`] pair so sessions stay generic, safe creation of a
//! Unix socket (a stale socket file is replaced, a live one or a non-socket is
//! never touched), and [`shutdown_signal`] (SIGTERM or SIGINT).
//!
//! Needs tokio, tracing-subscriber and facteur-config.
//!
//! Security: a Unix socket gets its permission bits before it accepts
//! connections (bound under a restrictive umask, then chmod-ed).

pub mod conn;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Installs the global tracing subscriber. `FACTEUR_LOG` overrides the level.
pub fn init_logging(log: &facteur_config::Log) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("FACTEUR_LOG")
        .ok()
        .unwrap_or_else(|| log.level.clone());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false);
    let _ = match log.format {
        facteur_config::LogFormat::Json => builder.json().try_init(),
        facteur_config::LogFormat::Text => builder.try_init(),
    };
}

/// A listening socket of either kind.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A connected stream of either kind; sessions are generic over
/// `AsyncRead + AsyncWrite`, this is what daemons hand them.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    pub async fn bind_tcp(addr: SocketAddr) -> io::Result<Listener> {
        Ok(Listener::Tcp(TcpListener::bind(addr).await?))
    }

    /// Binds a Unix socket at `path` with permission bits `mode`.
    pub fn bind_unix(path: &Path, mode: u32) -> io::Result<Listener> {
        remove_stale_socket(path)?;
        let l = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        Ok(Listener::Unix(l, path.to_path_buf()))
    }

    /// Accepts one connection; returns it with a printable peer name.
    pub async fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, a) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), a.to_string()))
            }
            Listener::Unix(l, p) => {
                let (s, _) = l.accept().await?;
                Ok((Stream::Unix(s), format!("unix:{}", p.display())))
            }
        }
    }

    /// What this listens on, for logs.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "tcp".into()),
            Listener::Unix(_, p) => format!("unix:{}", p.display()),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Removes a socket file nobody listens on. Refuses to remove anything that
/// is not a socket, and a socket that still accepts connections.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if !m.file_type().is_socket() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: another process is listening there", path.display()),
                ));
            }
            std::fs::remove_file(path)
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}

/// Resolves when the process gets SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn unix_socket_mode_and_stale_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.sock");
        {
            let _l = Listener::bind_unix(&p, 0o600).unwrap();
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            // A live socket is not stolen.
            assert!(Listener::bind_unix(&p, 0o600).is_err());
        }
        // Dropped listener removed its file; a stale socket file is replaced.
        let raw = std::os::unix::net::UnixListener::bind(&p).unwrap();
        drop(raw);
        let l = Listener::bind_unix(&p, 0o660).unwrap();
        let client = tokio::spawn({
            let p = p.clone();
            async move {
                let mut s = UnixStream::connect(&p).await.unwrap();
                s.write_all(b"hi").await.unwrap();
            }
        });
        let (mut s, peer) = l.accept().await.unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        assert!(peer.starts_with("unix:"));
        client.await.unwrap();
    }

    #[test]
    fn never_removes_a_regular_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "x").unwrap();
        assert!(Listener::bind_unix(&p, 0o600).is_err());
        assert!(p.exists());
    }
}
