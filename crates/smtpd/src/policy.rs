//! Who may send what to whom: relay control, recipient checks, sender
//! ownership, and per-client rates.
//!
//! Relay rule (never an open relay): a recipient in a local domain is
//! accepted from anyone if the directory knows it; a recipient elsewhere only
//! from an authenticated user or a client in `mynetworks`; anything else gets
//! `554 5.7.1`. The classic tricks are refused before any of that:
//! - `u%remote@local`, `a!b!u@local`, `"u@remote"@local`: a local part holding
//!   `%`, `!` or `@` is refused (`550 5.7.1`) when it would land here — we never
//!   re-route on them;
//! - `@local:u@remote`: the source route is dropped by the parser (RFC 5321
//!   §4.1.1.3 says to ignore it), leaving `u@remote`, a relay;
//! - `u@[1.2.3.4]`: an address literal is never a local domain, so a relay.
//!
//! Unknown local recipients are refused at RCPT (`550 5.1.1`), never bounced
//! later. An SRS address of ours (`[srs]`) is accepted from anyone when its
//! hash and age check out, refused (`550 5.1.1`) otherwise. [`MessageRate`]
//! is a check (the SMTP core's MAIL hook): messages per client address per
//! minute.

use crate::Context;
use facteur_directory::{Hop, ResolveError, Target};
use facteur_mail::Address;
use facteur_smtp_codec::{MailFrom, Reply};
use facteur_smtp_server::{Check, CheckFuture, SessionInfo, Verdict};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the session knows about its client, for policy decisions.
#[derive(Debug, Clone)]
pub struct Client {
    /// `None` for a local client (never trusted for relaying by address).
    pub ip: Option<IpAddr>,
    pub auth_user: Option<String>,
}

impl Client {
    pub fn trusted(&self, ctx: &Context) -> bool {
        self.auth_user.is_some()
            || self
                .ip
                .is_some_and(|ip| ctx.cfg.get().mynetworks.iter().any(|n| n.contains(ip)))
    }
}

/// Checks a recipient. `Ok` means accept it.
pub async fn check_rcpt(ctx: &Arc<Context>, client: &Client, raw: &str) -> Result<Address, Reply> {
    let addr = Address::parse(raw)
        .map_err(|e| Reply::new(501, (5, 1, 3), format!("Bad recipient address: {e}")))?;
    // A bounce to a sender we rewrote (SRS): accepted when it reverses
    // (qmgr sends it on), refused otherwise, before any other rule.
    if let Some(srs) = ctx.srs.as_ref().filter(|s| s.is_ours(&addr.to_string())) {
        let day = facteur_util::date::now_unix().div_euclid(86_400);
        return match srs.reverse(&addr.to_string(), day) {
            Ok(_) => Ok(addr),
            Err(e) => Err(Reply::new(550, (5, 1, 1), format!("<{addr}>: {e}"))),
        };
    }
    // A domain handed to another LMTP server (Mailman's): accepted; that
    // server refuses unknown recipients at delivery.
    if ctx.lmtp_domains.contains(addr.domain()) && !addr.local().contains(['%', '!', '@']) {
        return Ok(addr);
    }
    // Is the domain ours, and then who is it: on this thread when no lookup
    // has to wait, else in one blocking call.
    let quick = facteur_directory::without_waiting(|| lookup(ctx, &addr, true)).flatten();
    let found = match quick {
        Some(r) => r,
        None => {
            let c = Arc::clone(ctx);
            let a = addr.clone();
            tokio::task::spawn_blocking(move || lookup(&c, &a, false))
                .await
                .map_err(|_| temp_failure())?
                .ok_or_else(temp_failure)?
        }
    };
    let (local, resolved) = found.map_err(|e| {
        tracing::warn!(error = %e, "directory lookup failed");
        temp_failure()
    })?;
    if local {
        let Some(r) = resolved else {
            return Err(Reply::new(
                550,
                (5, 7, 1),
                format!("<{addr}>: %, ! and @ routing in local parts are not supported"),
            ));
        };
        return match r {
            Ok(_) => Ok(addr),
            Err(ResolveError::UnknownUser | ResolveError::NotLocal) => Err(Reply::new(
                550,
                (5, 1, 1),
                format!("<{addr}>: no such user here"),
            )),
            Err(ResolveError::Loop | ResolveError::TooDeep(_)) => {
                Err(Reply::new(550, (5, 4, 6), format!("<{addr}>: alias loop")))
            }
            Err(ResolveError::Directory(e)) => {
                tracing::warn!(error = %e, "directory lookup failed");
                Err(temp_failure())
            }
        };
    }
    if client.trusted(ctx) {
        Ok(addr)
    } else {
        Err(Reply::new(
            554,
            (5, 7, 1),
            format!("<{addr}>: relay access denied"),
        ))
    }
}

/// What RCPT learns of an address: whether its domain is ours, and then
/// whom it reaches (None for a local part with `%`, `!` or `@` routing; no
/// one for a list's addresses, which the qmgr acts on).
type Found = (bool, Option<Result<Vec<Target>, ResolveError>>);

/// Looks `a` up in the directory and the lists. With `now` (under
/// `without_waiting`), `None` when the lists' database would have made it
/// wait; without, always `Some`.
fn lookup(
    c: &Context,
    a: &Address,
    now: bool,
) -> Option<Result<Found, facteur_directory::DirectoryError>> {
    // The domain, then who the address is: one read of the directory.
    facteur_directory::read_together(c.directory.as_ref(), || lookup_in(c, a, now))
}

fn lookup_in(
    c: &Context,
    a: &Address,
    now: bool,
) -> Option<Result<Found, facteur_directory::DirectoryError>> {
    // An address literal is never a local domain (and the directory
    // refuses to be asked about one).
    let local = if a.domain().starts_with('[') {
        false
    } else {
        match c.directory.is_local_domain(a.domain()) {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        }
    };
    // A list's addresses (qmgr acts on them), before aliases.
    if local && let Some(lists) = c.lists.as_ref() {
        let shown = a.to_string();
        let role = if now {
            lists.is_role_address_now(&shown)?
        } else {
            lists.role(&shown).map(|r| r.is_some())
        };
        let list = role
            .inspect_err(|e| tracing::warn!(error = %e, "list lookup failed"))
            .unwrap_or(false);
        if list {
            return Some(Ok((true, Some(Ok(Vec::new())))));
        }
    }
    let resolved = (local && !a.local().contains(['%', '!', '@'])).then(|| {
        facteur_directory::resolve_for(c.directory.as_ref(), a, &c.delimiters, Hop::Accept)
    });
    Some(Ok((local, resolved)))
}

fn temp_failure() -> Reply {
    Reply::new(
        451,
        (4, 3, 0),
        "Directory temporarily unavailable, try again later",
    )
}

/// Checks that an authenticated user may use `sender` (their own address, or
/// an alias that reaches them).
pub async fn check_sender(ctx: &Arc<Context>, user: &str, sender: &str) -> Result<(), Reply> {
    if sender.is_empty() || !ctx.cfg.get().enforce_sender_ownership {
        return Ok(());
    }
    let addr = Address::parse(sender)
        .map_err(|e| Reply::new(501, (5, 1, 7), format!("Bad sender address: {e}")))?;
    if addr.key() == user {
        return Ok(());
    }
    let c = Arc::clone(ctx);
    let a = addr.clone();
    let r = tokio::task::spawn_blocking(move || {
        facteur_directory::resolve(c.directory.as_ref(), &a, &c.delimiters)
    })
    .await
    .map_err(|_| temp_failure())?;
    match r {
        Ok(targets)
            if targets
                .iter()
                .any(|t| matches!(t, Target::Local { user: u, .. } if u.address == user)) =>
        {
            Ok(())
        }
        Err(ResolveError::Directory(_)) => Err(temp_failure()),
        _ => Err(Reply::new(
            553,
            (5, 7, 1),
            format!("<{addr}>: sender address not owned by {user}"),
        )),
    }
}

/// Counts of events (messages, recipients) per client address over the
/// last minute, estimated from two fixed one-minute windows (the current
/// one's count plus the previous one's, weighted by how much of it is
/// still within the minute): a few bytes per address whatever the limit.
/// Memory is bounded: past [`MAX_RATE_ENTRIES`] addresses, those idle for
/// two minutes are dropped, and if all are busy the table starts again.
#[derive(Debug, Default)]
pub struct Rates {
    inner: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    /// The current window's start.
    start: Instant,
    current: u32,
    previous: u32,
}

/// Addresses whose rates are tracked at most.
pub const MAX_RATE_ENTRIES: usize = 100_000;

impl Rates {
    /// Records an event from `ip`; false (and not recorded) when the last
    /// minute's count is at `per_minute` already.
    pub fn allowed(&self, ip: IpAddr, per_minute: u32) -> bool {
        self.allowed_at(ip, per_minute, Instant::now())
    }

    fn allowed_at(&self, ip: IpAddr, per_minute: u32, now: Instant) -> bool {
        let Ok(mut m) = self.inner.lock() else {
            return true;
        };
        let minute = Duration::from_secs(60);
        if m.len() >= MAX_RATE_ENTRIES && !m.contains_key(&ip) {
            m.retain(|_, w| now.duration_since(w.start) < 2 * minute);
            if m.len() >= MAX_RATE_ENTRIES {
                m.clear();
            }
        }
        let w = m.entry(ip).or_insert(Window {
            start: now,
            current: 0,
            previous: 0,
        });
        let age = now.duration_since(w.start);
        if age >= 2 * minute {
            *w = Window {
                start: now,
                current: 0,
                previous: 0,
            };
        } else if age >= minute {
            *w = Window {
                start: w.start + minute,
                current: 0,
                previous: w.current,
            };
        }
        let into = now.duration_since(w.start).as_secs_f64() / 60.0;
        let estimate = f64::from(w.previous) * (1.0 - into) + f64::from(w.current);
        if estimate >= f64::from(per_minute) {
            return false;
        }
        w.current = w.current.saturating_add(1);
        true
    }
}

/// The check at MAIL: `max_messages_per_ip_per_minute` (`450 4.7.0`
/// beyond). Local clients (no address) are not counted.
pub struct MessageRate {
    pub ctx: Arc<Context>,
}

impl Check for MessageRate {
    fn name(&self) -> &'static str {
        "message-rate"
    }

    fn mail<'a>(&'a self, s: &'a SessionInfo, _from: &'a MailFrom) -> CheckFuture<'a> {
        let allowed = s.peer.ip().is_none_or(|ip| {
            self.ctx
                .rates
                .allowed(ip, self.ctx.cfg.get().max_messages_per_ip_per_minute)
        });
        let v = if allowed {
            Verdict::Accept
        } else {
            Verdict::Reject(Reply::new(
                450,
                (4, 7, 0),
                "Too many messages from your address, slow down",
            ))
        };
        Box::pin(std::future::ready(v))
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn a_minute_s_worth_then_refused_then_allowed_again() {
        let r = Rates::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert!(r.allowed_at(ip, 10, t0));
        }
        assert!(!r.allowed_at(ip, 10, t0 + Duration::from_secs(30)));
        assert!(r.allowed_at(other, 10, t0 + Duration::from_secs(30)));
        // Half a minute into the next window, half the old count weighs.
        let t1 = t0 + Duration::from_secs(90);
        for _ in 0..5 {
            assert!(r.allowed_at(ip, 10, t1));
        }
        assert!(!r.allowed_at(ip, 10, t1));
        // Two quiet minutes: a clean slate.
        assert!(r.allowed_at(ip, 1, t0 + Duration::from_secs(300)));
        assert!(!r.allowed_at(ip, 1, t0 + Duration::from_secs(301)));
    }
}
