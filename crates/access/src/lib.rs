//! facteur-access: what the daemons that serve mailboxes to their users
//! (facteur-imapd, facteur-pop3d, facteur-managesieved) share, so that each
//! program keeps only its protocol.
//!
//! Offers [`Access`], the part of a daemon's context every session of such
//! a daemon reads (the directory, the logins against it, the mail store,
//! the TLS certificate, the per-address limits), built from the
//! configuration in one call, and [`run`], which binds a daemon's two kinds of listener (clear text, where the
//! protocol offers STARTTLS/STLS, and implicit TLS), publishes the
//! addresses it bound, reloads the certificate on SIGHUP and serves them
//! through the shared accept loop ([`facteur_daemon::accept`]).
//!
//! Needs: config, directory, store, daemon, auth. Guarantees: the same
//! connection limits, refusal path, socket activation and reload rules for
//! every access daemon; a daemon with no listener configured does not
//! start, and names the keys to set.
//!
//! Security: sessions get the client's address from the accept loop (for
//! the login slow-down and the per-address limits); an implicit-TLS
//! listener's sessions start only after the handshake.

pub mod metrics;

use facteur_auth::Logins;
use facteur_config::Config;
use facteur_daemon::Stream;
use facteur_daemon::accept;
use facteur_daemon::conn::Conn;
use facteur_daemon::limits::Limits;
use facteur_daemon::reload::Fixed;
use facteur_daemon::tls::TlsState;
use facteur_directory::Directory;
use facteur_store::{FolderLimits, Store, StoreConfig};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::sync::watch;

/// Runs blocking store work off the async threads (a failed task is an
/// I/O error of the session).
pub async fn blocking<T, F>(f: F) -> std::io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| std::io::Error::other(format!("blocking task failed: {e}")))
}

/// A command line without its CRLF (or bare LF).
pub fn strip_eol(mut line: Vec<u8>) -> Vec<u8> {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    line
}

/// The shared part of an access daemon's context.
pub struct Access {
    /// Our name, in greetings.
    pub hostname: String,
    pub directory: Arc<dyn Directory>,
    /// Logins: SASL and command logins against the directory, with the
    /// cache of verified passwords (`directory.login_cache_seconds`), the
    /// slow-down of failed logins and the bound on password hashes
    /// (`[auth]`).
    pub logins: Arc<Logins>,
    pub store: Store,
    pub tls: TlsState,
    pub limits: Arc<Limits>,
}

impl Access {
    /// Opens the directory and the store and loads the certificate (which
    /// must be configured when `daemon` has implicit-TLS listeners).
    pub fn from_config(cfg: &Config, daemon: Daemon) -> anyhow::Result<Access> {
        let (_, tls_listeners, _, _) = daemon.listeners(cfg);
        let tls_key = format!("{}.listen_tls", daemon.section());
        let tls_key = (!tls_listeners.is_empty()).then_some(tls_key.as_str());
        let directory: Arc<dyn Directory> = facteur_directory::open(cfg)?;
        let hostname = cfg.hostname();
        let limits = FolderLimits {
            mailboxes: cfg.store.max_mailboxes as usize,
            depth: cfg.store.max_mailbox_depth as usize,
            subscriptions: cfg.store.max_subscriptions as usize,
        };
        let store = Store::with_limits(
            StoreConfig {
                root: cfg.store.mail_root.clone(),
                hostname: hostname.clone(),
            },
            limits,
        );
        let tls = facteur_daemon::tls::initial(&cfg.tls, tls_key)?;
        let logins = Logins::for_daemon(cfg, &directory)?;
        Ok(Access {
            hostname,
            directory,
            logins,
            store,
            tls,
            limits: Arc::new(Limits::default()),
        })
    }
}

impl Access {
    /// For the daemons' session tests: `directory` and `store` as given,
    /// the certificate and key in the PEM files `tls`, logins without a password cache
    /// and with a short pause ([`Logins::for_tests`]).
    pub fn for_tests(
        directory: &Arc<dyn Directory>,
        store: Store,
        (cert, key): (&std::path::Path, &std::path::Path),
    ) -> anyhow::Result<Access> {
        let tls = TlsState::default();
        tls.set(Some(facteur_daemon::tls::load(cert, key)?));
        Ok(Access {
            hostname: "mail.example.test".into(),
            logins: Logins::for_tests(directory)?,
            directory: Arc::clone(directory),
            store,
            tls,
            limits: Arc::new(Limits::default()),
        })
    }
}

/// The access daemons, and what each one's configuration says about its
/// listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Imapd,
    Pop3d,
    Managesieved,
}

impl Daemon {
    /// The program's name, for logs and `run_dir/<name>.listen`.
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Imapd => "facteur-imapd",
            Daemon::Pop3d => "facteur-pop3d",
            Daemon::Managesieved => "facteur-managesieved",
        }
    }

    /// The names systemd passes the clear-text and implicit-TLS
    /// listeners' sockets under.
    fn socket_names(self) -> (&'static str, &'static str) {
        match self {
            Daemon::Imapd => ("imap", "imaps"),
            Daemon::Pop3d => ("pop3", "pop3s"),
            Daemon::Managesieved => ("sieve", "sieves"),
        }
    }

    /// The configuration section.
    fn section(self) -> &'static str {
        match self {
            Daemon::Imapd => "imapd",
            Daemon::Pop3d => "pop3d",
            Daemon::Managesieved => "managesieved",
        }
    }

    /// The listeners (clear text, implicit TLS) and the connection limits
    /// (total, per address) the configuration sets.
    pub fn listeners(self, cfg: &Config) -> Listen<'_> {
        match self {
            Daemon::Imapd => {
                let c = &cfg.imapd;
                (
                    &c.listen,
                    &c.listen_tls,
                    c.max_connections,
                    c.max_connections_per_ip,
                )
            }
            Daemon::Pop3d => {
                let c = &cfg.pop3d;
                (
                    &c.listen,
                    &c.listen_tls,
                    c.max_connections,
                    c.max_connections_per_ip,
                )
            }
            Daemon::Managesieved => {
                let c = &cfg.managesieved;
                (
                    &c.listen,
                    &c.listen_tls,
                    c.max_connections,
                    c.max_connections_per_ip,
                )
            }
        }
    }

    /// What a reload cannot change: the listeners and the connection
    /// limits of the accept loop (the rest of the daemon's section, and
    /// the certificate, apply to the sessions that start after it).
    fn fixed(self) -> &'static [Fixed] {
        match self {
            Daemon::Imapd => &[(
                "imapd.listen, listen_tls, max_connections, max_connections_per_ip",
                |c| format!("{:?}", Daemon::Imapd.listeners(c)),
            )],
            Daemon::Pop3d => &[(
                "pop3d.listen, listen_tls, max_connections, max_connections_per_ip",
                |c| format!("{:?}", Daemon::Pop3d.listeners(c)),
            )],
            Daemon::Managesieved => &[(
                "managesieved.listen, listen_tls, max_connections, max_connections_per_ip",
                |c| format!("{:?}", Daemon::Managesieved.listeners(c)),
            )],
        }
    }
}

/// Clear-text addresses, implicit-TLS addresses, connections in all and
/// per address.
pub type Listen<'a> = (&'a [SocketAddr], &'a [SocketAddr], u32, u32);

/// Runs `daemon` until a shutdown signal: binds its listeners (or takes
/// the sockets systemd passed under their names), publishes them,
/// reloads the certificate on SIGHUP, tells systemd it is ready and serves
/// each connection with `session` (the context, the connection, the
/// client's address, the stop signal). A client refused for load gets
/// `refusal` (see [`accept::Policy`]). A reload hands the new
/// configuration to `apply`.
pub async fn run<C, F, Fut>(
    daemon: Daemon,
    cfg: &Config,
    ctx: Arc<C>,
    refusal: fn(&str) -> Vec<u8>,
    apply: impl Fn(&C, &Config) + Send + Sync + 'static,
    session: F,
) -> anyhow::Result<()>
where
    C: std::ops::Deref<Target = Access> + Send + Sync + 'static,
    F: Fn(Arc<C>, Conn<Stream>, IpAddr, watch::Receiver<bool>) -> Fut
        + Copy
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (plain, tls, max_connections, max_connections_per_ip) = daemon.listeners(cfg);
    let (plain_name, tls_name) = daemon.socket_names();
    let section = daemon.section();
    let listeners = accept::bind_listeners(
        &[((), false, plain_name, plain), ((), true, tls_name, tls)],
        &format!("{section}.listen or {section}.listen_tls"),
    )
    .await?;
    accept::publish(&cfg.paths.run_dir, daemon.name(), &listeners);
    let live = Arc::clone(&ctx);
    accept::ready(
        daemon.name(),
        cfg,
        ctx.tls.clone(),
        daemon.fixed(),
        move |new| apply(&live, new),
    )?;
    let policy = accept::Policy {
        daemon: daemon.name(),
        max_connections,
        max_connections_per_ip,
        limits: Arc::clone(&ctx.limits),
        tls: ctx.tls.clone(),
        refusal,
    };
    let shutdown = facteur_daemon::shutdown_signal();
    accept::serve(policy, listeners, shutdown, move |(), conn, peer, stop| {
        // A Unix-socket client has no address: it counts as 0.0.0.0.
        let ip = peer.ip().unwrap_or(Ipv4Addr::UNSPECIFIED.into());
        session(Arc::clone(&ctx), conn, ip, stop)
    })
    .await
}
