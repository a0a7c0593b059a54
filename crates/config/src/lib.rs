//! facteur-config: the one configuration file, `/etc/facteur/facteur.toml`.
//!
//! Every program reads the same file (`--config PATH` overrides): the shared
//! sections (`hostname`, `[paths]`, `[tls]`, `[directory]`, `[store]`,
//! `[log]`, `[auth]` for the daemons that log users in) and its own
//! (`[lmtpd]`, ...). `etc/facteur.toml` in the source tree is the
//! annotated reference: every key, its default, what it does.
//!
//! Guarantees: [`Config::load`] either returns a configuration whose every
//! value has been checked (types, ranges, absolute paths, addresses, modes) or
//! an error naming the file, the key (dotted path, e.g. `lmtpd.listen[0]`),
//! the line when known, and the reason. Unknown keys are errors, never
//! silently ignored, so a typo cannot turn a setting off.
//!
//! Needs: serde + toml; serde_path_to_error gives the key path of an error.
//! No global state: the loaded value is passed down explicitly.

mod auth;
mod fetchd;
mod lists;
mod local;
mod metrics;
mod net;
mod qmgr;
pub mod scan;
mod scheduling;
pub mod screen;
pub mod sieve;
pub mod trust;
mod units;

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use auth::Auth;
pub use fetchd::Fetchd;
pub use lists::Lists;
pub use local::{Aliases, Report};
pub use metrics::Metrics;
pub use net::IpNet;
pub use qmgr::{Destination, LmtpAddr, Qmgr, Relayhost, TlsPolicy, parse_relayhost};
pub use scan::Scan;
pub use scheduling::Scheduling;
pub use screen::Screen;
pub use sieve::{Managesieved, Sieve};
pub use trust::Trust;
pub use units::{ByteSize, Seconds, parse_duration, parse_size};

/// Where programs look when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/facteur/facteur.toml";

/// A configuration error: which file, which key, why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {}{reason}", key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    pub key: Option<String>,
    pub reason: String,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The name this server uses for itself (greetings, Received:, Maildir
    /// file names). Default: the system's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub paths: Paths,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub directory: Directory,
    #[serde(default)]
    pub store: Store,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub lmtpd: Lmtpd,
    #[serde(default)]
    pub smtpd: Smtpd,
    #[serde(default)]
    pub qmgr: Qmgr,
    #[serde(default)]
    pub pop3d: Pop3d,
    #[serde(default)]
    pub imapd: Imapd,
    #[serde(default)]
    pub auth: Auth,
    /// Mail authentication (SPF, DKIM, DMARC, ARC): `[trust]`.
    #[serde(default)]
    pub trust: Trust,
    /// The Sender Rewriting Scheme for forwarded mail: `[srs]`.
    #[serde(default)]
    pub srs: Srs,
    /// Filtering at delivery (Sieve): `[sieve]`.
    #[serde(default)]
    pub sieve: Sieve,
    /// ManageSieve, where users edit their scripts: `[managesieved]`.
    #[serde(default)]
    pub managesieved: Managesieved,
    /// Keeping junk out at smtpd's door: `[screen]`.
    #[serde(default)]
    pub screen: Screen,
    /// Content scanners at the end of the data: `[scan]`.
    #[serde(default)]
    pub scan: Scan,
    /// The daemons' Prometheus endpoints: `[metrics]`.
    #[serde(default)]
    pub metrics: Metrics,
    /// The system's aliases file and Unix users: `[aliases]`.
    #[serde(default)]
    pub aliases: Aliases,
    /// The daily report's recipient: `[report]`.
    #[serde(default)]
    pub report: Report,
    /// The mail collector: `[fetchd]`.
    #[serde(default)]
    pub fetchd: Fetchd,
    /// Mailing lists' one-click unsubscription: `[lists]`.
    #[serde(default)]
    pub lists: Lists,
    /// How the kernel schedules the daemons: `[scheduling]`.
    #[serde(default)]
    pub scheduling: Scheduling,
    /// Set by [`Config::load`]: the file it came from (for messages).
    #[serde(skip)]
    pub source: PathBuf,
}

/// The Sender Rewriting Scheme (`[srs]`, see `facteur_mail::srs`): the
/// envelope sender of a stranger's message that an alias forwards to
/// another domain becomes an address of ours (facteur-qmgr), and bounces to
/// such addresses go back to the original sender (facteur-smtpd accepts
/// them, qmgr resolves them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Srs {
    pub enabled: bool,
    /// The domain of the rewritten addresses; "" = the host name. Its MX
    /// must be this server, its SPF must list it.
    pub domain: String,
    /// How long a rewritten address accepts bounces.
    pub max_age: Seconds,
}

impl Default for Srs {
    fn default() -> Self {
        Srs {
            enabled: true,
            domain: String::new(),
            max_age: Seconds(21 * 86_400),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    /// Queue directories (maildrop/ incoming/ active/ deferred/ hold/ corrupt/).
    pub spool_dir: PathBuf,
    /// Long-lived state that is not mail (temporary delivery files, ...).
    pub state_dir: PathBuf,
    /// Unix sockets (lmtp.sock, qmgr.sock).
    pub run_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            spool_dir: "/var/spool/facteur".into(),
            state_dir: "/var/lib/facteur".into(),
            run_dir: "/run/facteur".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            cert: "/etc/facteur/tls/cert.pem".into(),
            key: "/etc/facteur/tls/key.pem".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryBackend {
    Sqlite,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Directory {
    pub backend: DirectoryBackend,
    /// The SQLite database file.
    pub path: PathBuf,
    /// Characters that separate a detail from the user (`user+tag@dom`).
    /// Empty turns the feature off.
    pub recipient_delimiter: String,
    /// How long (seconds) a daemon remembers a successful login, so that
    /// logging in again with the same password skips the password hash
    /// (see `facteur_directory::LoginCache`). 0 turns it off.
    pub login_cache_seconds: u64,
}

impl Default for Directory {
    fn default() -> Self {
        Directory {
            backend: DirectoryBackend::Sqlite,
            path: "/var/lib/facteur/directory.sqlite".into(),
            recipient_delimiter: "+".into(),
            login_cache_seconds: 600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// Mailboxes live at `<mail_root>/<domain>/<user>/`.
    pub mail_root: PathBuf,
    /// Quota given to new users (0 = unlimited).
    pub default_quota_bytes: ByteSize,
    pub default_quota_messages: u64,
    /// Mailboxes a user may have besides INBOX.
    pub max_mailboxes: u32,
    /// Levels of a mailbox name (`a/b/c` is 3).
    pub max_mailbox_depth: u32,
    /// Names a user may subscribe to.
    pub max_subscriptions: u32,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            mail_root: "/var/lib/facteur/mail".into(),
            default_quota_bytes: ByteSize(0),
            default_quota_messages: 0,
            max_mailboxes: 1000,
            max_mailbox_depth: 16,
            max_subscriptions: 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A tracing filter: `info`, `debug`, `facteur_lmtpd=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// What to answer when a message would put a mailbox over its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverQuota {
    /// `552 5.2.2`: the sender gets a bounce.
    Reject,
    /// `452 4.2.2`: the sending MTA keeps trying.
    Defer,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lmtpd {
    /// Unix socket: a file name (placed in `paths.run_dir`) or an absolute path.
    pub socket: PathBuf,
    /// Permission bits of the socket, octal.
    pub socket_mode: String,
    /// Optional TCP listeners, e.g. `["127.0.0.1:24"]`.
    pub listen: Vec<SocketAddr>,
    pub max_connections: u32,
    pub max_message_size: ByteSize,
    pub max_recipients: u32,
    pub max_line_length: u32,
    /// Idle time allowed between commands, and between reads in DATA.
    pub timeout: Seconds,
    /// Errors (bad commands) before the connection is closed.
    pub max_errors: u32,
    pub over_quota: OverQuota,
}

impl Default for Lmtpd {
    fn default() -> Self {
        Lmtpd {
            socket: "lmtp.sock".into(),
            socket_mode: "0660".into(),
            listen: Vec::new(),
            max_connections: 200,
            max_message_size: ByteSize(50 * 1024 * 1024),
            max_recipients: 1000,
            max_line_length: 4096,
            timeout: Seconds(300),
            max_errors: 20,
            over_quota: OverQuota::Reject,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smtpd {
    /// MX listeners (port 25 in production): mail for local domains from
    /// anyone, relay only for `mynetworks`; no AUTH.
    pub mx: Vec<SocketAddr>,
    /// Submission listeners (587): STARTTLS, then AUTH required before MAIL.
    pub submission: Vec<SocketAddr>,
    /// Submissions listeners (465): implicit TLS, AUTH required.
    pub submissions: Vec<SocketAddr>,
    /// Clients allowed to relay without authentication.
    pub mynetworks: Vec<IpNet>,
    pub max_message_size: ByteSize,
    pub max_recipients: u32,
    pub max_line_length: u32,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    /// Messages accepted per client IP per minute (4xx beyond).
    pub max_messages_per_ip_per_minute: u32,
    pub timeout: Seconds,
    pub max_errors: u32,
    /// Offer AUTH without TLS to clients on loopback (tests, local webmail).
    pub allow_plaintext_auth_on_loopback: bool,
    /// An authenticated user may only use sender addresses they own (their
    /// address and the aliases that reach them).
    pub enforce_sender_ownership: bool,
}

impl Default for Smtpd {
    fn default() -> Self {
        Smtpd {
            mx: Vec::new(),
            submission: Vec::new(),
            submissions: Vec::new(),
            mynetworks: vec![
                IpNet {
                    addr: std::net::Ipv4Addr::new(127, 0, 0, 0).into(),
                    prefix: 8,
                },
                IpNet {
                    addr: std::net::Ipv6Addr::LOCALHOST.into(),
                    prefix: 128,
                },
            ],
            max_message_size: ByteSize(50 * 1024 * 1024),
            max_recipients: 1000,
            max_line_length: 4096,
            max_connections: 500,
            max_connections_per_ip: 20,
            max_messages_per_ip_per_minute: 600,
            timeout: Seconds(300),
            max_errors: 20,
            allow_plaintext_auth_on_loopback: false,
            enforce_sender_ownership: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3d {
    /// Plain POP3 listeners (110): STLS offered, no password before TLS.
    pub listen: Vec<SocketAddr>,
    /// Implicit TLS listeners (995, POP3S).
    pub listen_tls: Vec<SocketAddr>,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    /// Idle time allowed between commands (RFC 1939 §3: at least 10 minutes
    /// once logged in).
    pub timeout: Seconds,
    /// Bad commands tolerated before the connection is closed.
    pub max_errors: u32,
    /// Accept USER/PASS and AUTH without TLS from loopback clients.
    pub allow_plaintext_auth_on_loopback: bool,
}

impl Default for Pop3d {
    fn default() -> Self {
        Pop3d {
            listen: Vec::new(),
            listen_tls: Vec::new(),
            max_connections: 500,
            max_connections_per_ip: 20,
            timeout: Seconds(600),
            max_errors: 20,
            allow_plaintext_auth_on_loopback: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Imapd {
    /// Plain IMAP listeners (143): STARTTLS offered, LOGINDISABLED before TLS.
    pub listen: Vec<SocketAddr>,
    /// Implicit TLS listeners (993, IMAPS).
    pub listen_tls: Vec<SocketAddr>,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    /// Idle time allowed once logged in (RFC 9051 §5.4: at least 30 minutes;
    /// IDLE clients re-issue it every 29).
    pub timeout: Seconds,
    /// The whole time a client has from connecting to logging in.
    pub login_timeout: Seconds,
    /// Bad commands tolerated before the connection is closed.
    pub max_errors: u32,
    /// Accept LOGIN and AUTHENTICATE without TLS, from loopback clients only.
    pub allow_plaintext_auth_on_loopback: bool,
    /// The largest message APPEND accepts (APPENDLIMIT, RFC 7889).
    pub max_append_size: ByteSize,
    /// The longest command, literals other than APPEND's message included.
    pub max_command_size: ByteSize,
    /// Users who may read and set every user's quota over IMAP (GETQUOTA
    /// and SETQUOTA on the root named by the user's address, RFC 9208).
    pub quota_admins: Vec<String>,
}

impl Default for Imapd {
    fn default() -> Self {
        Imapd {
            listen: Vec::new(),
            listen_tls: Vec::new(),
            max_connections: 5000,
            max_connections_per_ip: 50,
            timeout: Seconds(30 * 60),
            login_timeout: Seconds(60),
            max_errors: 20,
            allow_plaintext_auth_on_loopback: false,
            max_append_size: ByteSize(50 << 20),
            max_command_size: ByteSize(1 << 20),
            quota_admins: Vec::new(),
        }
    }
}

impl Config {
    /// Reads, parses and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: None,
            reason: format!("cannot read the file: {e}"),
        })?;
        let mut cfg = Config::parse(&text, &file)?;
        cfg.source = path.to_path_buf();
        Ok(cfg)
    }

    /// Parses and checks configuration text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.span().map(|s| {
                text.as_bytes()[..s.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
                    + 1
            });
            let mut reason = inner.message().trim().to_string();
            if let Some(l) = line {
                reason = format!("{reason} (line {l})");
            }
            ConfigError {
                file: file.to_string(),
                key: (path != "." && !path.is_empty()).then_some(path),
                reason,
            }
        })?;
        cfg.check().map_err(|(key, reason)| ConfigError {
            file: file.to_string(),
            key: Some(key),
            reason,
        })?;
        Ok(cfg)
    }

    /// Checks what types alone cannot.
    fn check(&self) -> Result<(), (String, String)> {
        if let Some(h) = &self.hostname {
            facteur_mail::normalize_domain(h)
                .map_err(|e| ("hostname".into(), format!("{h:?}: {e}")))?;
        }
        let absolute = [
            ("paths.spool_dir", &self.paths.spool_dir),
            ("paths.state_dir", &self.paths.state_dir),
            ("paths.run_dir", &self.paths.run_dir),
            ("tls.cert", &self.tls.cert),
            ("tls.key", &self.tls.key),
            ("directory.path", &self.directory.path),
            ("store.mail_root", &self.store.mail_root),
        ];
        for (key, p) in absolute {
            if !p.is_absolute() {
                return Err((
                    key.into(),
                    format!("{:?} is not an absolute path", p.display().to_string()),
                ));
            }
        }
        if self
            .directory
            .recipient_delimiter
            .chars()
            .any(|c| c.is_alphanumeric() || c.is_whitespace() || c == '@')
        {
            return Err((
                "directory.recipient_delimiter".into(),
                "must be punctuation such as \"+\" or \"+-\" (not letters, digits, spaces or '@')"
                    .into(),
            ));
        }
        parse_mode(&self.lmtpd.socket_mode).map_err(|r| ("lmtpd.socket_mode".to_string(), r))?;
        if self.lmtpd.socket.as_os_str().is_empty() {
            return Err(("lmtpd.socket".into(), "must not be empty".into()));
        }
        let l = &self.lmtpd;
        let sm = &self.smtpd;
        let q = &self.qmgr;
        qmgr::check(q)?;
        auth::check(&self.auth)?;
        trust::check(&self.trust)?;
        sieve::check(&self.sieve)?;
        screen::check(&self.screen)?;
        scan::check(&self.scan)?;
        scheduling::check(&self.scheduling)?;
        if !self.srs.domain.is_empty() {
            facteur_mail::normalize_domain(&self.srs.domain)
                .map_err(|e| ("srs.domain".into(), format!("{:?}: {e}", self.srs.domain)))?;
        }
        if !(1..=1000).contains(&(self.srs.max_age.0 / 86_400)) {
            return Err((
                "srs.max_age".into(),
                "must be between 1 and 1000 days".into(),
            ));
        }
        for (key, v, min) in [
            ("smtpd.max_connections", sm.max_connections as u64, 1),
            (
                "smtpd.max_connections_per_ip",
                sm.max_connections_per_ip as u64,
                1,
            ),
            ("smtpd.max_recipients", sm.max_recipients as u64, 1),
            ("smtpd.max_line_length", sm.max_line_length as u64, 512),
            ("smtpd.timeout", sm.timeout.0, 1),
            ("smtpd.max_errors", sm.max_errors as u64, 1),
            ("smtpd.max_message_size", sm.max_message_size.0, 1024),
        ] {
            if v < min {
                return Err((key.into(), format!("{v} is below the minimum of {min}")));
            }
        }
        let p = &self.pop3d;
        for (key, v, min) in [
            ("pop3d.max_connections", p.max_connections as u64, 1),
            (
                "pop3d.max_connections_per_ip",
                p.max_connections_per_ip as u64,
                1,
            ),
            ("pop3d.timeout", p.timeout.0, 1),
            ("pop3d.max_errors", p.max_errors as u64, 1),
        ] {
            if v < min {
                return Err((key.into(), format!("{v} is below the minimum of {min}")));
            }
        }
        if let Some(a) = p
            .listen
            .iter()
            .find(|a| a.port() != 0 && p.listen_tls.contains(a))
        {
            return Err((
                "pop3d.listen_tls".into(),
                format!("{a} is also in pop3d.listen"),
            ));
        }
        let i = &self.imapd;
        for (key, v, min) in [
            ("imapd.max_connections", i.max_connections as u64, 1),
            (
                "imapd.max_connections_per_ip",
                i.max_connections_per_ip as u64,
                1,
            ),
            ("imapd.timeout", i.timeout.0, 30 * 60),
            ("imapd.login_timeout", i.login_timeout.0, 10),
            ("imapd.max_errors", i.max_errors as u64, 1),
            ("imapd.max_append_size", i.max_append_size.0, 1024),
            ("imapd.max_command_size", i.max_command_size.0, 8192),
        ] {
            if v < min {
                return Err((key.into(), format!("{v} is below the minimum of {min}")));
            }
        }
        if let Some(a) = i
            .listen
            .iter()
            .find(|a| a.port() != 0 && i.listen_tls.contains(a))
        {
            return Err((
                "imapd.listen_tls".into(),
                format!("{a} is also in imapd.listen"),
            ));
        }
        for (key, v, min) in [
            ("lmtpd.max_connections", l.max_connections as u64, 1),
            ("lmtpd.max_recipients", l.max_recipients as u64, 1),
            ("lmtpd.max_line_length", l.max_line_length as u64, 512),
            ("lmtpd.timeout", l.timeout.0, 1),
            ("lmtpd.max_errors", l.max_errors as u64, 1),
            ("lmtpd.max_message_size", l.max_message_size.0, 1024),
        ] {
            if v < min {
                return Err((key.into(), format!("{v} is below the minimum of {min}")));
            }
        }
        Ok(())
    }

    /// The host name to use: the configured one or the system's.
    pub fn hostname(&self) -> String {
        self.hostname.clone().unwrap_or_else(system_hostname)
    }

    /// The system domains `[aliases]` answers for: `aliases.domains`, or
    /// the host name and `localhost`; lower-case, without a final dot.
    pub fn system_domains(&self) -> Vec<String> {
        let mut out: Vec<String> = if self.aliases.domains.is_empty() {
            vec![self.hostname(), "localhost".into()]
        } else {
            self.aliases.domains.clone()
        };
        for d in &mut out {
            *d = d.trim_end_matches('.').to_ascii_lowercase();
        }
        out.dedup();
        out
    }

    /// The SRS domain: `srs.domain`, or the host name.
    pub fn srs_domain(&self) -> String {
        match self.srs.domain.as_str() {
            "" => self.hostname(),
            d => d.trim_end_matches('.').to_ascii_lowercase(),
        }
    }

    /// The file of the SRS secret (made by the first daemon that needs it).
    pub fn srs_secret_file(&self) -> PathBuf {
        self.paths.state_dir.join("srs.secret")
    }

    /// The authserv-id of our `Authentication-Results`: `trust.authserv_id`,
    /// or the host name.
    pub fn authserv_id(&self) -> String {
        match self.trust.authserv_id.as_str() {
            "" => self.hostname(),
            id => id.to_ascii_lowercase(),
        }
    }

    /// The LMTP Unix socket path.
    pub fn lmtp_socket(&self) -> PathBuf {
        if self.lmtpd.socket.is_absolute() {
            self.lmtpd.socket.clone()
        } else {
            self.paths.run_dir.join(&self.lmtpd.socket)
        }
    }

    /// The DKIM key store (`facteurctl dkim`, read by facteur-qmgr).
    pub fn dkim_dir(&self) -> PathBuf {
        self.paths.state_dir.join("dkim")
    }

    /// The queue manager's wake-up socket path.
    pub fn qmgr_socket(&self) -> PathBuf {
        if self.qmgr.socket.is_absolute() {
            self.qmgr.socket.clone()
        } else {
            self.paths.run_dir.join(&self.qmgr.socket)
        }
    }

    /// The queue manager's control socket path (`facteurctl queue`).
    pub fn qmgr_control_socket(&self) -> PathBuf {
        if self.qmgr.control_socket.is_absolute() {
            self.qmgr.control_socket.clone()
        } else {
            self.paths.run_dir.join(&self.qmgr.control_socket)
        }
    }

    /// The socket permission bits (checked at load).
    pub fn lmtp_socket_mode(&self) -> u32 {
        parse_mode(&self.lmtpd.socket_mode).unwrap_or(0o660)
    }
}

/// The shared sections of a setup that keeps everything under one
/// directory `root` (`facteurctl init --dev`, tests), as TOML text:
/// `[paths]` (`spool/`, `state/`, `run/`), `[tls]` (`tls/cert.pem`,
/// `tls/key.pem`), `[directory]` (`state/directory.sqlite`) and `[store]`
/// (`mail/`). Each section ends with a blank line; paths are quoted as TOML
/// strings, so any file name is safe.
pub fn sections_under(root: &Path) -> String {
    let p = |s: &str| toml::Value::String(root.join(s).display().to_string());
    format!(
        "[paths]\nspool_dir = {}\nstate_dir = {}\nrun_dir = {}\n\n\
         [tls]\ncert = {}\nkey = {}\n\n\
         [directory]\npath = {}\n\n\
         [store]\nmail_root = {}\n\n\
         [aliases]\nfile = {}\n\n",
        p("spool"),
        p("state"),
        p("run"),
        p("tls/cert.pem"),
        p("tls/key.pem"),
        p("state/directory.sqlite"),
        p("mail"),
        p("aliases"),
    )
}

/// Parses an octal permission string such as `"0660"`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal mode such as \"0660\""))?;
    if m > 0o777 {
        return Err(format!("{s:?} is more than 0777"));
    }
    Ok(m)
}

/// The system's mail name: Debian's `/etc/mailname` when it holds a valid
/// name, else the kernel's host name, else `localhost`.
pub fn system_hostname() -> String {
    let first_line = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
            .filter(|s| !s.is_empty() && facteur_mail::normalize_domain(s).is_ok())
    };
    first_line("/etc/mailname")
        .or_else(|| first_line("/proc/sys/kernel/hostname"))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests;
