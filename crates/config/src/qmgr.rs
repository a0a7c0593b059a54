//! The `[qmgr]` section: the queue manager, local (LMTP) and remote (SMTP)
//! delivery, the retry schedule, and the per-destination table
//! `[qmgr.destinations."domain"]` (relayhost, TLS policy).
//!
//! Checked at load ([`check`]): durations and limits within range, relayhost
//! syntax, nameserver addresses, absolute paths. Every key is documented in
//! `etc/facteur.toml`.

use crate::units::Seconds;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// TLS policy for outbound SMTP (the names are Postfix's security levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered, any certificate (opportunistic, RFC 3207 §4.1).
    #[default]
    May,
    /// STARTTLS required, any certificate; no TLS = defer.
    Encrypt,
    /// STARTTLS required, chain checked against the CA file and the name
    /// against the MX host (or the relayhost) name.
    Verify,
}

impl TlsPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsPolicy::None => "none",
            TlsPolicy::May => "may",
            TlsPolicy::Encrypt => "encrypt",
            TlsPolicy::Verify => "verify",
        }
    }
}

/// Per destination domain settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Destination {
    /// Send this domain's mail to this host instead of its MX (same syntax
    /// as `qmgr.relayhost`); "" = the global relayhost, or MX lookup.
    pub relayhost: String,
    /// The TLS policy for this domain (default: `qmgr.tls_policy`).
    pub tls_policy: Option<TlsPolicy>,
    /// Hand this domain's mail to an LMTP server instead ("inet:host:port"
    /// or "unix:/path"): a list manager (Mailman 3's LMTP runner) or
    /// another store. smtpd accepts mail for such a domain from anyone,
    /// as for a local one; the LMTP server says which recipients exist.
    pub lmtp: String,
}

impl Destination {
    /// The LMTP address of `lmtp`, checked: `Unix(path)` or `Inet(host:port)`.
    pub fn lmtp_target(&self) -> Option<Result<LmtpAddr, String>> {
        let s = self.lmtp.trim();
        if s.is_empty() {
            return None;
        }
        Some(
            if let Some(p) = s.strip_prefix("unix:").filter(|p| p.starts_with('/')) {
                Ok(LmtpAddr::Unix(PathBuf::from(p)))
            } else if let Some(a) = s.strip_prefix("inet:").filter(|a| {
                a.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            }) {
                Ok(LmtpAddr::Inet(a.to_string()))
            } else {
                Err(format!(
                    "{s:?}: expected \"inet:host:port\" or \"unix:/path\""
                ))
            },
        )
    }
}

/// Where an LMTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpAddr {
    Unix(PathBuf),
    Inet(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Qmgr {
    /// The wake-up socket: a file name in `paths.run_dir`, or an absolute path.
    pub socket: PathBuf,
    /// The control socket of `facteurctl queue ...`: same rules.
    pub control_socket: PathBuf,
    /// Where local mail goes: "" = this configuration's lmtpd socket;
    /// otherwise "unix:/path" or "inet:host:port".
    pub lmtp: String,
    /// Queue directories are scanned this often even without wake-ups.
    pub scan_interval: Seconds,
    /// Retry backoff: starts at min, doubles up to max.
    pub min_backoff: Seconds,
    pub max_backoff: Seconds,
    /// After this long in the queue a message is bounced.
    pub max_lifetime: Seconds,
    /// After this long undelivered, the sender gets a "delayed" notice
    /// (once; 0 = never).
    pub delay_warning: Seconds,
    /// Deliveries to lmtpd at once (messages handled at once).
    pub lmtp_concurrency: u32,
    /// Recipients per LMTP transaction.
    pub lmtp_max_recipients: u32,

    // --- remote delivery (SMTP) ---
    /// "" = look up the MX of each domain. Otherwise every remote message
    /// goes to this host: `[host]:port` (no MX lookup) or `host:port`
    /// (MX lookup of host), port default 25.
    pub relayhost: String,
    /// Credentials for relayhosts: lines `relayhost username password`
    /// (the relayhost exactly as configured). Must be readable only by the
    /// daemon's user; "" = none.
    pub relay_password_file: PathBuf,
    /// Nameservers, "ip:port"; empty = the system's /etc/resolv.conf.
    pub dns_servers: Vec<SocketAddr>,
    /// TEST ONLY: the port to connect to on looked-up addresses (25).
    pub smtp_port: u16,
    /// Default TLS policy.
    pub tls_policy: TlsPolicy,
    /// CA certificates (PEM) for the `verify` policy.
    pub tls_ca_file: PathBuf,
    /// Per destination domain: relayhost and TLS policy.
    pub destinations: BTreeMap<String, Destination>,
    /// Honour MTA-STS policies (RFC 8461) of destination domains.
    pub mta_sts: bool,
    /// TEST ONLY: the HTTPS port of MTA-STS policy hosts (443).
    pub mta_sts_https_port: u16,
    /// SMTP connections at once, in total and per destination.
    pub smtp_concurrency: u32,
    pub smtp_destination_concurrency: u32,
    /// Recipients per SMTP transaction (RFC 5321 §4.5.3.1.8: at least 100).
    pub smtp_max_recipients: u32,
    /// A destination that failed this many times in a row (no connection,
    /// no greeting) is not tried again for `smtp_destination_backoff`.
    pub smtp_destination_failures: u32,
    pub smtp_destination_backoff: Seconds,
    /// An idle connection is kept this long for the next message to the
    /// same destination (0 = one message per connection).
    pub smtp_connection_reuse_time: Seconds,
    /// Time-outs (RFC 5321 §4.5.3.2 defaults).
    pub smtp_connect_timeout: Seconds,
    pub smtp_greeting_timeout: Seconds,
    /// EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET.
    pub smtp_command_timeout: Seconds,
    pub smtp_data_init_timeout: Seconds,
    pub smtp_data_block_timeout: Seconds,
    pub smtp_data_done_timeout: Seconds,
}

impl Default for Qmgr {
    fn default() -> Self {
        Qmgr {
            socket: "qmgr.sock".into(),
            control_socket: "qmgr-control.sock".into(),
            lmtp: String::new(),
            scan_interval: Seconds(60),
            min_backoff: Seconds(300),
            max_backoff: Seconds(3600),
            max_lifetime: Seconds(5 * 86400),
            delay_warning: Seconds(4 * 3600),
            lmtp_concurrency: 10,
            lmtp_max_recipients: 50,
            relayhost: String::new(),
            relay_password_file: PathBuf::new(),
            dns_servers: Vec::new(),
            smtp_port: 25,
            tls_policy: TlsPolicy::May,
            tls_ca_file: "/etc/ssl/certs/ca-certificates.crt".into(),
            destinations: BTreeMap::new(),
            mta_sts: false,
            mta_sts_https_port: 443,
            smtp_concurrency: 20,
            smtp_destination_concurrency: 5,
            smtp_max_recipients: 100,
            smtp_destination_failures: 5,
            smtp_destination_backoff: Seconds(300),
            smtp_connection_reuse_time: Seconds(10),
            smtp_connect_timeout: Seconds(30),
            smtp_greeting_timeout: Seconds(300),
            smtp_command_timeout: Seconds(300),
            smtp_data_init_timeout: Seconds(120),
            smtp_data_block_timeout: Seconds(180),
            smtp_data_done_timeout: Seconds(600),
        }
    }
}

/// A parsed relayhost: `[host]:port` (no MX lookup) or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayhost {
    pub host: String,
    pub port: u16,
    /// Look up the MX of `host` (no brackets).
    pub mx: bool,
}

/// Parses `[host]:port`, `[host]`, `host:port`, `host`.
pub fn parse_relayhost(s: &str) -> Result<Relayhost, String> {
    let bad = || format!("{s:?}: expected \"[host]:port\" or \"host:port\"");
    let s = s.trim();
    let (host, rest, mx) = if let Some(r) = s.strip_prefix('[') {
        let (h, rest) = r.split_once(']').ok_or_else(bad)?;
        (h, rest, false)
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) => (h, &s[h.len()..], true),
            None => (s, "", true),
        }
    };
    let port = match rest.strip_prefix(':') {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
        None if rest.is_empty() => 25,
        None => return Err(bad()),
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/' || c == '@') {
        return Err(bad());
    }
    Ok(Relayhost {
        host: host.to_string(),
        port,
        mx,
    })
}

/// Checks what types alone cannot: `(key, reason)` on error.
pub fn check(q: &Qmgr) -> Result<(), (String, String)> {
    if !(q.lmtp.is_empty() || q.lmtp.starts_with("unix:/") || q.lmtp.starts_with("inet:")) {
        return Err((
            "qmgr.lmtp".into(),
            format!(
                "{:?}: expected \"\", \"unix:/path\" or \"inet:host:port\"",
                q.lmtp
            ),
        ));
    }
    if q.min_backoff > q.max_backoff {
        return Err((
            "qmgr.min_backoff".into(),
            "is larger than qmgr.max_backoff".into(),
        ));
    }
    if !q.relayhost.is_empty() {
        parse_relayhost(&q.relayhost).map_err(|r| ("qmgr.relayhost".to_string(), r))?;
    }
    for (dom, d) in &q.destinations {
        if dom.is_empty() || dom.contains(['@', ' ', '[']) {
            return Err((
                format!("qmgr.destinations.{dom:?}"),
                "expected a domain name such as \"example.org\"".into(),
            ));
        }
        if !d.relayhost.is_empty() {
            parse_relayhost(&d.relayhost)
                .map_err(|r| (format!("qmgr.destinations.{dom:?}.relayhost"), r))?;
        }
        if let Some(Err(r)) = d.lmtp_target() {
            return Err((format!("qmgr.destinations.{dom:?}.lmtp"), r));
        }
        if !d.lmtp.is_empty() && !d.relayhost.is_empty() {
            return Err((
                format!("qmgr.destinations.{dom:?}"),
                "lmtp and relayhost cannot both be set".into(),
            ));
        }
    }
    for (key, p) in [
        ("qmgr.tls_ca_file", &q.tls_ca_file),
        ("qmgr.relay_password_file", &q.relay_password_file),
    ] {
        if !p.as_os_str().is_empty() && !p.is_absolute() {
            return Err((
                key.into(),
                format!("{:?} is not an absolute path", p.display().to_string()),
            ));
        }
    }
    for (key, v, min) in [
        ("qmgr.scan_interval", q.scan_interval.0, 1),
        ("qmgr.min_backoff", q.min_backoff.0, 1),
        ("qmgr.max_lifetime", q.max_lifetime.0, 1),
        ("qmgr.lmtp_concurrency", q.lmtp_concurrency as u64, 1),
        ("qmgr.lmtp_max_recipients", q.lmtp_max_recipients as u64, 1),
        ("qmgr.smtp_port", q.smtp_port as u64, 1),
        ("qmgr.mta_sts_https_port", q.mta_sts_https_port as u64, 1),
        ("qmgr.smtp_concurrency", q.smtp_concurrency as u64, 1),
        (
            "qmgr.smtp_destination_concurrency",
            q.smtp_destination_concurrency as u64,
            1,
        ),
        ("qmgr.smtp_max_recipients", q.smtp_max_recipients as u64, 1),
        (
            "qmgr.smtp_destination_failures",
            q.smtp_destination_failures as u64,
            1,
        ),
        ("qmgr.smtp_connect_timeout", q.smtp_connect_timeout.0, 1),
        ("qmgr.smtp_greeting_timeout", q.smtp_greeting_timeout.0, 1),
        ("qmgr.smtp_command_timeout", q.smtp_command_timeout.0, 1),
        ("qmgr.smtp_data_init_timeout", q.smtp_data_init_timeout.0, 1),
        (
            "qmgr.smtp_data_block_timeout",
            q.smtp_data_block_timeout.0,
            1,
        ),
        ("qmgr.smtp_data_done_timeout", q.smtp_data_done_timeout.0, 1),
    ] {
        if v < min {
            return Err((key.into(), format!("{v} is below the minimum of {min}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayhost_syntax() {
        let r = parse_relayhost("[smtp.example.net]:587").unwrap();
        assert_eq!(
            (r.host.as_str(), r.port, r.mx),
            ("smtp.example.net", 587, false)
        );
        let r = parse_relayhost("example.net").unwrap();
        assert_eq!((r.host.as_str(), r.port, r.mx), ("example.net", 25, true));
        let r = parse_relayhost("example.net:2525").unwrap();
        assert_eq!((r.host.as_str(), r.port, r.mx), ("example.net", 2525, true));
        let r = parse_relayhost("[127.0.0.1]").unwrap();
        assert_eq!((r.host.as_str(), r.port, r.mx), ("127.0.0.1", 25, false));
        for bad in ["", "[x", "[x]:0", "[x]:y", "a b:25", "[x]25"] {
            assert!(parse_relayhost(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destinations_lmtp() {
        let key = |t: &str| crate::Config::parse(t, "t").unwrap_err().key;
        let c = crate::Config::parse(
            "[qmgr.destinations.\"lists.example.org\"]\nlmtp = \"inet:127.0.0.1:8024\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            c.qmgr.destinations["lists.example.org"].lmtp_target(),
            Some(Ok(LmtpAddr::Inet("127.0.0.1:8024".into())))
        );
        assert!(
            key("[qmgr.destinations.\"a.test\"]\nlmtp = \"127.0.0.1:8024\"\n")
                .is_some_and(|k| k.ends_with(".lmtp"))
        );
        assert!(
            key("[qmgr.destinations.\"a.test\"]\nlmtp = \"unix:/x\"\nrelayhost = \"h\"\n")
                .is_some()
        );
    }

    #[test]
    fn destinations_table_and_errors() {
        let c = crate::Config::parse(
            "[qmgr]\nrelayhost = \"[smarthost.test]:587\"\ndns_servers = [\"127.0.0.1:5353\"]\n\
             [qmgr.destinations.\"example.org\"]\ntls_policy = \"verify\"\n",
            "t",
        )
        .unwrap();
        let d = &c.qmgr.destinations["example.org"];
        assert_eq!(d.tls_policy, Some(TlsPolicy::Verify));
        assert_eq!(c.qmgr.tls_policy, TlsPolicy::May);
        assert_eq!(c.qmgr.dns_servers.len(), 1);
        let key = |t: &str| crate::Config::parse(t, "t").unwrap_err().key;
        assert_eq!(
            key("[qmgr]\nrelayhost = \"[x\"\n").as_deref(),
            Some("qmgr.relayhost")
        );
        assert_eq!(
            key("[qmgr.destinations.\"a.test\"]\nrelayhost = \"a b\"\n").as_deref(),
            Some("qmgr.destinations.\"a.test\".relayhost")
        );
        assert!(key("[qmgr]\ntls_policy = \"maybe\"\n").is_some());
        assert_eq!(
            key("[qmgr]\nrelay_password_file = \"pw\"\n").as_deref(),
            Some("qmgr.relay_password_file")
        );
    }
}
