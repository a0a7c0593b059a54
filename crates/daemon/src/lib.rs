//! facteur-daemon: the skeleton every facteur daemon stands on.
//!
//! Offers: [`entry::main`] (the whole `main` of a daemon), [`lineio`] (the I/O half of a line protocol session: buffers,
//! framing, time-outs), [`body`] (a message being received, in memory or
//! spilled to an unlinked file), [`tls`] (the rustls server configuration from `[tls]`, reloadable)
//! and [`conn`] (a stream that starts in clear text and may become TLS, for
//! STARTTLS/STLS and implicit TLS); logging set up from `[log]` (only binaries call it; libraries only
//! emit `tracing` events), listeners on TCP and Unix sockets behind one
//! [`Listener`] / [`Stream`] pair so sessions stay generic, safe creation of a
//! Unix socket (a stale socket file is replaced, a live one or a non-socket is
//! never touched), [`shutdown_signal`] (SIGTERM or SIGINT), [`reload`]
//! (the configuration read again on SIGHUP), [`ignore_hangup`],
//! and [`systemd`]
//! (readiness notification; sockets passed by socket activation, which
//! daemons take instead of binding).
//!
//! Needs tokio, tracing-subscriber, facteur-config, sd-notify.
//!
//! Security: a Unix socket gets its permission bits before it accepts
//! connections (bound under a restrictive umask, then chmod-ed).

pub mod accept;
pub mod body;
pub mod conn;
pub mod entry;
pub mod limits;
pub mod lineio;
pub mod metrics;
pub mod reload;
pub mod systemd;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Third-party crates whose chatter an administrator does not need: their
/// warnings are about one client's quirks (rustls warns about every client
/// that sends an IP address as SNI, as Roundcube with `ssl://127.0.0.1`
/// does) and say nothing of where they come from. Errors still show. A
/// `level` that names one of these crates overrides its default here.
const QUIET: &[&str] = &[
    "rustls",
    "tokio_rustls",
    "hickory_proto",
    "hickory_resolver",
    "mail_auth",
    "rusqlite",
];

/// The filter from `[log] level` (or `FACTEUR_LOG`), with [`QUIET`]'s
/// crates at `error` unless the level names them.
pub fn log_filter(level: &str) -> String {
    let mut f = level.trim().to_string();
    for c in QUIET {
        if !level.split(',').any(|d| d.trim().starts_with(c)) {
            f.push_str(&format!(",{c}=error"));
        }
    }
    f
}

/// Every line names the daemon that wrote it: text lines start with its
/// name, as in a syslog tag (under `facteurctl up` all daemons share one
/// terminal); JSON objects get a `"daemon"` member first. A session's span
/// then names its connection.
struct Tagged<F> {
    name: &'static str,
    json: bool,
    inner: F,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Tagged<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if !self.json {
            write!(writer, "{} ", self.name)?;
            return self.inner.format_event(ctx, writer, event);
        }
        let mut obj = String::new();
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut obj),
            event,
        )?;
        match obj.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"daemon\":\"{}\",{rest}", self.name),
            None => writer.write_str(&obj),
        }
    }
}

/// Installs the global tracing subscriber for daemon `name`.
/// `FACTEUR_LOG` overrides the level.
pub fn init_logging(log: &facteur_config::Log, name: &'static str) {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("FACTEUR_LOG")
        .ok()
        .unwrap_or_else(|| log.level.clone());
    let filter = EnvFilter::try_new(log_filter(&level))
        .unwrap_or_else(|_| EnvFilter::new(log_filter("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        // Colours only on a terminal: under systemd, stderr is the journal,
        // where escape codes would clutter every line.
        .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
        .with_target(false);
    let _ = match log.format {
        facteur_config::LogFormat::Json => {
            let inner = tracing_subscriber::fmt::format().json().with_target(false);
            builder
                .json()
                .event_format(Tagged {
                    name,
                    json: true,
                    inner,
                })
                .try_init()
        }
        facteur_config::LogFormat::Text => {
            let inner = tracing_subscriber::fmt::format()
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()));
            builder
                .event_format(Tagged {
                    name,
                    json: false,
                    inner,
                })
                .try_init()
        }
    };
}

/// A listening socket of either kind.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    /// A socket this process bound; its file is removed on drop.
    Unix(UnixListener, PathBuf),
    /// A socket the service manager bound and passed on (socket
    /// activation); it outlives this process, so its file is left in place.
    UnixActivated(UnixListener, PathBuf),
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// A TCP client's address.
    Ip(std::net::IpAddr),
    /// A local process (a Unix socket, a pipe), with a name for logs.
    Local(String),
}

impl Peer {
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Peer::Ip(ip) => Some(*ip),
            Peer::Local(_) => None,
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Ip(ip) => write!(f, "{ip}"),
            Peer::Local(s) => f.write_str(s),
        }
    }
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
        remove_stale_socket(path, || {
            std::os::unix::net::UnixStream::connect(path).is_ok()
        })?;
        let l = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        Ok(Listener::Unix(l, path.to_path_buf()))
    }

    /// Wraps a TCP socket passed by the service manager.
    pub fn from_inherited_tcp(l: std::net::TcpListener) -> io::Result<Listener> {
        l.set_nonblocking(true)?;
        Ok(Listener::Tcp(TcpListener::from_std(l)?))
    }

    /// Wraps a Unix socket passed by the service manager; its file is
    /// never removed by this process.
    pub fn from_inherited_unix(l: std::os::unix::net::UnixListener) -> io::Result<Listener> {
        l.set_nonblocking(true)?;
        let path = l
            .local_addr()?
            .as_pathname()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Ok(Listener::UnixActivated(UnixListener::from_std(l)?, path))
    }

    /// Accepts one connection; returns it with its peer.
    pub async fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Tcp(l) => {
                let (s, a) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), Peer::Ip(a.ip())))
            }
            Listener::Unix(l, p) | Listener::UnixActivated(l, p) => {
                let (s, _) = l.accept().await?;
                Ok((
                    Stream::Unix(s),
                    Peer::Local(format!("unix:{}", p.display())),
                ))
            }
        }
    }

    /// The TCP address this listens on (port 0 in the configuration asks the
    /// system for a free one: this says which).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            _ => None,
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
            Listener::UnixActivated(_, p) => format!("unix:{} (socket-activated)", p.display()),
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

/// Removes a socket file nobody uses: refuses anything that is not a
/// socket, and a socket that `in_use` finds alive (a stream socket: a
/// connect succeeds; a datagram socket: a send does). Daemons call it
/// before they bind a socket of their own at `path`.
pub fn remove_stale_socket(path: &Path, in_use: impl FnOnce() -> bool) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if !m.file_type().is_socket() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Ok(_) if in_use() => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{}: another process is using it", path.display()),
        )),
        Ok(_) => std::fs::remove_file(path),
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

/// For a daemon with nothing to reload yet: logs SIGHUP instead of dying of
/// it (its default action), so `systemctl reload` (`ExecReload=kill -HUP`)
/// and a stray `kill -HUP` are harmless. Call from inside the runtime.
pub fn ignore_hangup(daemon: &'static str) -> io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("{daemon}: SIGHUP received; nothing to reload");
        }
    });
    Ok(())
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

/// SRS for this configuration (`[srs]`, `facteur_mail::srs`), its secret
/// read from `paths.state_dir`/srs.secret or made there by the first daemon
/// that needs it (smtpd to accept bounces, qmgr to rewrite and resolve);
/// `None` when `[srs] enabled = false`.
pub fn srs(cfg: &facteur_config::Config) -> anyhow::Result<Option<facteur_mail::srs::Srs>> {
    use anyhow::Context as _;
    if !cfg.srs.enabled {
        return Ok(None);
    }
    let path = cfg.srs_secret_file();
    let secret = facteur_util::load_or_create_secret(&path)
        .with_context(|| format!("the SRS secret {}", path.display()))?;
    Ok(Some(facteur_mail::srs::Srs::new(
        secret,
        &cfg.srs_domain(),
        (cfg.srs.max_age.0 / 86_400) as u32,
    )))
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
        assert!(peer.to_string().starts_with("unix:"));
        client.await.unwrap();
    }

    #[tokio::test]
    async fn an_inherited_socket_file_outlives_the_listener() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.sock");
        let raw = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let l = Listener::from_inherited_unix(raw).unwrap();
        assert!(l.describe().contains("socket-activated"));
        let client = tokio::spawn({
            let p = p.clone();
            async move { UnixStream::connect(&p).await.unwrap() }
        });
        let (_s, peer) = l.accept().await.unwrap();
        assert_eq!(peer, Peer::Local(format!("unix:{}", p.display())));
        client.await.unwrap();
        drop(l);
        assert!(p.exists());
        let t = Listener::from_inherited_tcp(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .unwrap();
        assert!(t.describe().starts_with("127.0.0.1:"));
    }

    #[test]
    fn third_party_chatter_is_quiet_unless_asked_for() {
        let f = log_filter("info");
        assert!(f.starts_with("info,") && f.contains(",rustls=error"), "{f}");
        let f = log_filter("debug,rustls=debug");
        assert!(!f.contains(",rustls=error"), "{f}");
        assert!(f.contains("hickory_proto=error"), "{f}");
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
