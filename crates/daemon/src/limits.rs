//! Connections per client address, the limit the accept loop
//! ([`crate::accept`]) applies in every daemon that serves clients.
//!
//! Offers [`Limits`]: [`Limits::connect`] hands out a [`ConnSlot`]
//! (released on drop) while an address is under its daemon's
//! `max_connections_per_ip`; [`Limits::connections`] tells how many an
//! address holds.
//!
//! Guarantees: an address never holds more slots than the limit asked at
//! each [`Limits::connect`]; the table holds only addresses with a
//! connection open, so its memory follows the connections.
//!
//! The slow-down of failed logins and the bound on password hashing are
//! facteur-auth's (`facteur_auth::penalty`, `facteur_auth::limiter`), in
//! one place for every protocol.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connection counts per client address.
#[derive(Debug, Default)]
pub struct Limits {
    conns: Mutex<HashMap<IpAddr, u32>>,
}

/// One connection slot of an address; released on drop.
#[derive(Debug)]
pub struct ConnSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.limits.conns.lock()
            && let Some(n) = m.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    /// Takes a connection slot for `ip`, or `None` at `max` already.
    pub fn connect(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<ConnSlot> {
        let mut m = self.conns.lock().ok()?;
        let n = m.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            limits: Arc::clone(self),
            ip,
        })
    }

    /// How many connections `ip` holds now.
    pub fn connections(&self, ip: IpAddr) -> u32 {
        self.conns
            .lock()
            .map(|m| m.get(&ip).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots() {
        let l = Arc::new(Limits::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = l.connect(ip, 2).unwrap();
        let _b = l.connect(ip, 2).unwrap();
        assert_eq!(l.connections(ip), 2);
        assert!(l.connect(ip, 2).is_none());
        assert!(l.connect("192.0.2.2".parse().unwrap(), 2).is_some());
        drop(a);
        assert!(l.connect(ip, 2).is_some());
    }
}
