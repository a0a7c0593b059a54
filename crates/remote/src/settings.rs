//! What remote delivery is configured to do: the [`Settings`] read from
//! `[qmgr]` (HELO name, relayhost, per-domain destinations and TLS
//! policies, time-outs, limits), [`Settings::destination`] (where one
//! domain's mail goes: a [`Dest`]), and the relayhost credentials file
//! ([`load_credentials`]).
//!
//! Security: the credentials file is refused when anyone but its owner may
//! read or write it; a refused file makes relayhost deliveries wait (see
//! `deliver.rs`), it never makes them go unauthenticated.

use facteur_config::{Config, Relayhost, TlsPolicy, parse_relayhost};
use facteur_smtp_client::Timeouts;
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// One `[qmgr.destinations."domain"]` entry: the relayhost (as written,
/// and parsed) and the TLS policy.
pub type DestSetting = (Option<(String, Relayhost)>, Option<TlsPolicy>);

/// Where one domain's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// The name in logs, limits, backoff and the cache.
    pub key: String,
    /// The domain (MX lookup), or the relayhost's host.
    pub host: String,
    pub mx: bool,
    pub port: u16,
    pub policy: TlsPolicy,
    /// The policy was set for this domain (MTA-STS is then not asked).
    pub explicit_tls: bool,
    /// The relayhost as configured (the key of its credentials).
    pub relay: Option<String>,
}

/// The settings of remote delivery, from `[qmgr]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub helo_name: String,
    pub relayhost: Option<(String, Relayhost)>,
    pub destinations: BTreeMap<String, DestSetting>,
    pub tls_policy: TlsPolicy,
    pub smtp_port: u16,
    pub timeouts: Timeouts,
    pub max_recipients: usize,
    pub failure_limit: u32,
    pub backoff: Duration,
    pub reuse: Duration,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        let q = &cfg.qmgr;
        let relay = |s: &str| {
            (!s.is_empty())
                .then(|| parse_relayhost(s).ok().map(|r| (s.to_string(), r)))
                .flatten()
        };
        Settings {
            helo_name: cfg.hostname(),
            relayhost: relay(&q.relayhost),
            destinations: q
                .destinations
                .iter()
                .map(|(d, v)| (d.to_ascii_lowercase(), (relay(&v.relayhost), v.tls_policy)))
                .collect(),
            tls_policy: q.tls_policy,
            smtp_port: q.smtp_port,
            timeouts: Timeouts {
                connect: q.smtp_connect_timeout.duration(),
                greeting: q.smtp_greeting_timeout.duration(),
                command: q.smtp_command_timeout.duration(),
                data_init: q.smtp_data_init_timeout.duration(),
                data_block: q.smtp_data_block_timeout.duration(),
                data_done: q.smtp_data_done_timeout.duration(),
            },
            max_recipients: (q.smtp_max_recipients as usize).max(1),
            failure_limit: q.smtp_destination_failures.max(1),
            backoff: q.smtp_destination_backoff.duration(),
            reuse: q.smtp_connection_reuse_time.duration(),
        }
    }

    /// Where mail for `domain` goes.
    pub fn destination(&self, domain: &str) -> Dest {
        let d = domain.to_ascii_lowercase();
        let (relay, policy) = match self.destinations.get(&d) {
            Some((r, p)) => (r.clone().or(self.relayhost.clone()), *p),
            None => (self.relayhost.clone(), None),
        };
        let explicit_tls = policy.is_some();
        let policy = policy.unwrap_or(self.tls_policy);
        match relay {
            Some((s, r)) => Dest {
                key: format!("relay:{s}"),
                host: r.host,
                mx: r.mx,
                port: r.port,
                policy,
                explicit_tls,
                relay: Some(s),
            },
            None => Dest {
                key: d.clone(),
                host: d,
                mx: true,
                port: self.smtp_port,
                policy,
                explicit_tls,
                relay: None,
            },
        }
    }
}

/// relayhost → (user, password), or why the file was refused.
pub type Credentials = Result<HashMap<String, (String, String)>, String>;

/// Reads `relayhost user password` lines. Refuses a file that anyone but
/// its owner may read or write.
pub fn load_credentials(path: &Path) -> Result<HashMap<String, (String, String)>, String> {
    let mut out = HashMap::new();
    if path.as_os_str().is_empty() {
        return Ok(out);
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: mode {mode:04o} lets other users read or change it; refusing to use it (chmod 0600, owned by the facteur user)",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(h), Some(u), Some(p), None) => {
                out.insert(h.to_string(), (u.to_string(), p.to_string()));
            }
            _ => {
                return Err(format!(
                    "{} line {}: expected \"relayhost username password\"",
                    path.display(),
                    n + 1
                ));
            }
        }
    }
    Ok(out)
}
