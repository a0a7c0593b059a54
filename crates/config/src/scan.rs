//! The `[scan]` section: content scanners facteur-smtpd asks at the end of
//! the data, before its 250 — rspamd (`[scan.rspamd]`), ClamAV's clamd
//! (`[scan.clamav]`) and milters (`[[scan.milter]]`). Each has a time-out,
//! a size limit (a bigger message is not scanned: logged and passed) and a
//! choice, when it cannot answer, between failing open (accept, log, and
//! add a field saying so) and failing closed (`451 4.7.1`). Every key is
//! documented in `etc/facteur.toml`.

use crate::units::{ByteSize, Seconds};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where a scanner listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl ScanAddr {
    /// `host:port` (an IP address) or an absolute socket path.
    pub fn parse(s: &str) -> Option<ScanAddr> {
        let s = s.trim();
        let s = s.strip_prefix("unix:").unwrap_or(s);
        if s.starts_with('/') {
            return Some(ScanAddr::Unix(PathBuf::from(s)));
        }
        let s = s.strip_prefix("inet:").unwrap_or(s);
        s.parse().ok().map(ScanAddr::Tcp)
    }
}

impl std::fmt::Display for ScanAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanAddr::Tcp(a) => write!(f, "{a}"),
            ScanAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for ScanAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ScanAddr::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{s:?} is neither an address such as \"127.0.0.1:11333\" nor an absolute socket path"
            ))
        })
    }
}

/// What a scanner that cannot answer (down, too slow, a broken reply)
/// does to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Accept it, log, and add `X-Facteur-Unscanned: NAME; why`.
    Accept,
    /// `451 4.7.1`: the sender tries again later.
    Tempfail,
}

/// What becomes of a message with a virus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VirusAction {
    /// `554 5.7.1 Virus found: NAME`.
    Reject,
    /// Accepted, and the recipients receive a notice in its place (the
    /// virus is not kept).
    Notice,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scan {
    pub rspamd: Rspamd,
    pub clamav: Clamav,
    #[serde(rename = "milter")]
    pub milters: Vec<Milter>,
}

/// `[scan.rspamd]`: rspamd's normal worker, over its HTTP protocol.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rspamd {
    pub enabled: bool,
    /// The normal worker (not the controller, not the proxy).
    pub address: ScanAddr,
    /// Listeners whose mail is scanned; on submission, rspamd is told the
    /// login (`User`) and checks outgoing mail.
    pub listeners: Vec<String>,
    pub timeout: Seconds,
    pub max_size: ByteSize,
    pub on_failure: OnFailure,
}

impl Default for Rspamd {
    fn default() -> Self {
        Rspamd {
            enabled: false,
            address: ScanAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 11333))),
            listeners: vec!["mx".into()],
            timeout: Seconds(20),
            max_size: ByteSize(20 * 1024 * 1024),
            on_failure: OnFailure::Accept,
        }
    }
}

/// `[scan.clamav]`: clamd, over its INSTREAM command.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Clamav {
    pub enabled: bool,
    pub address: ScanAddr,
    /// Listeners whose mail is scanned: incoming and outgoing by default.
    pub listeners: Vec<String>,
    pub timeout: Seconds,
    /// Keep at or under clamd's StreamMaxLength (25M by default): clamd
    /// refuses a longer stream.
    pub max_size: ByteSize,
    pub on_failure: OnFailure,
    pub action: VirusAction,
}

impl Default for Clamav {
    fn default() -> Self {
        Clamav {
            enabled: false,
            address: ScanAddr::Unix("/run/clamav/clamd.ctl".into()),
            listeners: vec!["mx".into(), "submission".into(), "submissions".into()],
            timeout: Seconds(60),
            max_size: ByteSize(25 * 1024 * 1024),
            on_failure: OnFailure::Tempfail,
            action: VirusAction::Reject,
        }
    }
}

/// `[[scan.milter]]`: one milter (Sendmail's protocol, version 6), in
/// order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Milter {
    /// For logs and `X-Facteur-Unscanned`.
    pub name: String,
    pub address: ScanAddr,
    pub listeners: Vec<String>,
    /// Time for each reply of the milter.
    pub timeout: Seconds,
    pub max_size: ByteSize,
    pub on_failure: OnFailure,
}

impl Default for Milter {
    fn default() -> Self {
        Milter {
            name: "milter".into(),
            address: ScanAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 8891))),
            listeners: vec!["mx".into()],
            timeout: Seconds(30),
            max_size: ByteSize(25 * 1024 * 1024),
            on_failure: OnFailure::Accept,
        }
    }
}

/// Checked at load.
pub(crate) fn check(s: &Scan) -> Result<(), (String, String)> {
    let lists = [
        ("scan.rspamd.listeners", &s.rspamd.listeners),
        ("scan.clamav.listeners", &s.clamav.listeners),
    ];
    let milters = s
        .milters
        .iter()
        .map(|m| ("scan.milter.listeners", &m.listeners));
    for (key, list) in lists.into_iter().chain(milters) {
        for l in list {
            if !["mx", "submission", "submissions"].contains(&l.as_str()) {
                return Err((
                    key.into(),
                    format!("{l:?} is not mx, submission or submissions"),
                ));
            }
        }
    }
    for (key, t) in [
        ("scan.rspamd.timeout", s.rspamd.timeout),
        ("scan.clamav.timeout", s.clamav.timeout),
    ]
    .into_iter()
    .chain(s.milters.iter().map(|m| ("scan.milter.timeout", m.timeout)))
    {
        if !(1..=600).contains(&t.0) {
            return Err((key.into(), "must be between 1 second and 10 minutes".into()));
        }
    }
    let mut names = std::collections::HashSet::new();
    for m in &s.milters {
        if m.name.is_empty()
            || !m
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err((
                "scan.milter.name".into(),
                format!("{:?}: letters, digits, - _ . only", m.name),
            ));
        }
        if !names.insert(m.name.clone()) {
            return Err((
                "scan.milter.name".into(),
                format!("{:?} is used twice", m.name),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            ScanAddr::parse("127.0.0.1:11333"),
            Some(ScanAddr::Tcp("127.0.0.1:11333".parse().unwrap()))
        );
        assert_eq!(
            ScanAddr::parse("inet:[::1]:8891"),
            Some(ScanAddr::Tcp("[::1]:8891".parse().unwrap()))
        );
        assert_eq!(
            ScanAddr::parse("unix:/run/clamav/clamd.ctl"),
            Some(ScanAddr::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(ScanAddr::parse("localhost:3310"), None);
        assert_eq!(ScanAddr::parse("relative.sock"), None);
    }
}
