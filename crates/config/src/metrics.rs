//! The `[metrics]` section: where each daemon serves its Prometheus
//! metrics.

use serde::Deserialize;
use std::net::SocketAddr;

/// `[metrics]`: each daemon's Prometheus endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Where facteur-smtpd serves `GET /metrics`; the other daemons take
    /// the next ports (qmgr +1, lmtpd +2, imapd +3, pop3d +4,
    /// managesieved +5; port 0: each its own free port). Unset: no
    /// endpoint. Keep it on loopback or a management network: it tells
    /// how much mail flows.
    pub listen: Option<SocketAddr>,
}

impl Metrics {
    /// The address of `daemon`'s endpoint (`facteur-smtpd`, ...).
    pub fn address_of(&self, daemon: &str) -> Option<SocketAddr> {
        let base = self.listen?;
        let offset = match daemon {
            "facteur-smtpd" => 0,
            "facteur-qmgr" => 1,
            "facteur-lmtpd" => 2,
            "facteur-imapd" => 3,
            "facteur-pop3d" => 4,
            "facteur-managesieved" => 5,
            _ => return None,
        };
        let port = match base.port() {
            0 => 0,
            p => p.checked_add(offset)?,
        };
        Some(SocketAddr::new(base.ip(), port))
    }
}
