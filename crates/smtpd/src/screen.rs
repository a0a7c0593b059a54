//! Screening (`[screen]`, facteur-screen) as a check at the SMTP core's
//! hook points, for clients of a screened listener that are neither logged
//! in nor in `mynetworks`:
//!
//! | stage | what |
//! |---|---|
//! | before the greeting | the pregreet test ([`pregreet`], [`pregreet_done`]: the core's handler hooks) |
//! | connect | allow/deny lists, DNS lists (`554 5.7.1 ... blocked using ZONE`), FCrDNS when required |
//! | HELO | syntax, an address literal that is not the client's, our own name |
//! | MAIL | senders on the deny list (`550 5.7.1`) or the allow list |
//! | RCPT | recipients per client per minute (`450 4.7.0`), greylisting (`451 4.7.1`) |
//! | end of data | greylisting of the null sender, when it waits for the data |
//!
//! A client on the allow list, or vouched for by the DNS allow lists, is
//! spared the rest (no greylisting, no FCrDNS, no HELO checks); an
//! allowlisted sender or recipient is not greylisted.

use crate::Context;
use crate::trust::{ClientIprev, MailSpf};
use facteur_config::screen::{NullSenderAt, PregreetAction};
use facteur_screen::access::Listed;
use facteur_screen::db::GreyOutcome;
use facteur_screen::{ClientVerdict, Screen};
use facteur_smtp_codec::{MailFrom, RcptTo, Reply};
use facteur_smtp_server::{Check, CheckFuture, Message, SessionInfo, Verdict};
use facteur_trust::Outcome;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// What the connect stage made of the client.
#[derive(Debug)]
pub struct ScreenedClient(pub ClientVerdict);
/// The current transaction's sender is on the allow list.
#[derive(Debug)]
struct SenderAllowed(bool);
/// The current transaction waits for greylisting (null sender, judged
/// after the data).
#[derive(Debug)]
struct GreyDeferred(Option<i64>);

/// The client's address, if this session is screened.
pub fn screened(ctx: &Context, screen: &Screen, s: &SessionInfo) -> Option<IpAddr> {
    let ip = s.peer.ip()?.to_canonical();
    let trusted = s.auth_user.is_some() || ctx.cfg.get().mynetworks.iter().any(|n| n.contains(ip));
    (!trusted && screen.cfg.screens(s.listener)).then_some(ip)
}

fn spared(s: &SessionInfo) -> bool {
    s.notes
        .get::<ScreenedClient>()
        .is_some_and(|v| v.0.spared())
}

/// The handler's pregreet hook (after the connect checks): the wait, for
/// a screened client that did not pass the test lately and that the
/// lists do not vouch for.
pub async fn pregreet(ctx: &Context, s: &SessionInfo) -> Option<Duration> {
    let screen = ctx.screen.as_ref()?;
    let ip = screened(ctx, screen, s)?;
    if spared(s) {
        return None;
    }
    screen
        .pregreet_due(ip)
        .await
        .then(|| screen.cfg.pregreet_wait.duration())
}

/// The handler's hook after the test: the configured fate of an early
/// talker; a patient client is remembered.
pub fn pregreet_done(ctx: &Context, s: &SessionInfo) -> Verdict {
    let (Some(screen), Some(ip)) = (ctx.screen.as_ref(), s.peer.ip()) else {
        return Verdict::Accept;
    };
    match screen.pregreet_result(ip.to_canonical(), s.early_talker) {
        PregreetAction::Ignore => Verdict::Accept,
        PregreetAction::Drop => Verdict::Disconnect(Reply::new(521, (5, 5, 1), "Protocol error")),
        PregreetAction::Enforce => Verdict::Reject(Reply::new(
            550,
            (5, 5, 1),
            "Protocol error: you talked before my greeting; say QUIT",
        )),
    }
}

/// The check. See the module header.
pub struct ScreenCheck {
    pub ctx: Arc<Context>,
    pub screen: Arc<Screen>,
    /// For FCrDNS (`require_fcrdns`).
    pub iprev: Option<facteur_trust::Resolver>,
}

fn accept<'a>() -> CheckFuture<'a> {
    Box::pin(std::future::ready(Verdict::Accept))
}

impl ScreenCheck {
    fn ip(&self, s: &SessionInfo) -> Option<IpAddr> {
        screened(&self.ctx, &self.screen, s)
    }

    async fn connect_stage(&self, s: &SessionInfo, ip: IpAddr) -> Verdict {
        let v = self.screen.client(ip).await;
        let verdict = match &v {
            ClientVerdict::Denied => Verdict::Reject(Reply::new(
                554,
                (5, 7, 1),
                format!("Service unavailable; client [{ip}] is on the deny list"),
            )),
            ClientVerdict::Listed { blamed, score } => {
                info!(client = %ip, score, list = blamed, "client refused by the DNS lists");
                Verdict::Reject(Reply::new(
                    554,
                    (5, 7, 1),
                    format!("Service unavailable; client [{ip}] blocked using {blamed}"),
                ))
            }
            ClientVerdict::Trusted { .. } => {
                self.screen.remember_pass(ip);
                Verdict::Accept
            }
            _ => Verdict::Accept,
        };
        let spared = v.spared();
        s.notes.set(ScreenedClient(v));
        let required = self
            .screen
            .cfg
            .require_fcrdns
            .iter()
            .any(|l| l == s.listener);
        if verdict != Verdict::Accept || spared || !required {
            return verdict;
        }
        let Some(resolver) = &self.iprev else {
            return verdict;
        };
        let r = resolver.iprev(ip).await;
        let outcome = r.outcome;
        info!(iprev = %outcome, name = r.name.as_deref().unwrap_or(""), "client checked");
        s.notes.set(ClientIprev(r));
        match outcome {
            Outcome::Pass => Verdict::Accept,
            Outcome::TempError => {
                self.screen.counters.add("fcrdns", "refused");
                Verdict::Disconnect(Reply::new(
                    421,
                    (4, 7, 25),
                    format!("Cannot verify the name of [{ip}] now; try again later"),
                ))
            }
            _ => {
                self.screen.counters.add("fcrdns", "refused");
                Verdict::Reject(Reply::new(
                    554,
                    (5, 7, 25),
                    format!(
                        "Service unavailable; client [{ip}] has no name that resolves back to it"
                    ),
                ))
            }
        }
    }

    async fn rcpt_stage(
        &self,
        s: &SessionInfo,
        ip: IpAddr,
        from: &MailFrom,
        to: &RcptTo,
    ) -> Verdict {
        let cfg = &self.screen.cfg;
        let max = cfg.max_recipients_per_ip_per_minute;
        if max > 0 && !self.ctx.rcpt_rates.allowed(ip, max) {
            self.screen.counters.add("recipient_rate", "refused");
            return Verdict::Reject(Reply::new(
                450,
                (4, 7, 0),
                "Too many recipients from your address, slow down",
            ));
        }
        let g = &cfg.greylist;
        let sender_allowed = s.notes.get::<SenderAllowed>().is_some_and(|n| n.0);
        if !g.enabled
            || spared(s)
            || sender_allowed
            || self.screen.address(&to.address) == Some(Listed::Allow)
        {
            if g.enabled {
                self.screen.counters.add("greylist", "skipped");
            }
            return Verdict::Accept;
        }
        // SPF's word on the sender's domain, from MAIL.
        let spf_domain = s
            .notes
            .get::<MailSpf>()
            .filter(|n| n.0.outcome == Outcome::Pass && n.0.sender == from.address)
            .map(|n| n.0.domain.to_ascii_lowercase());
        match self
            .screen
            .greylist(ip, &from.address, &to.address, spf_domain)
            .await
        {
            GreyOutcome::Defer(secs) => {
                if from.address.is_empty() && g.null_sender_at == NullSenderAt::Data {
                    let longest = s.notes.get::<GreyDeferred>().and_then(|n| n.0).unwrap_or(0);
                    s.notes.set(GreyDeferred(Some(longest.max(secs))));
                    return Verdict::Accept;
                }
                info!(rcpt = %to.address, secs, "greylisted");
                Verdict::Reject(Reply::new(
                    451,
                    (4, 7, 1),
                    format!("<{}>: greylisted, try again in {secs} seconds", to.address),
                ))
            }
            _ => Verdict::Accept,
        }
    }
}

impl Check for ScreenCheck {
    fn name(&self) -> &'static str {
        "screen"
    }

    fn connect<'a>(&'a self, s: &'a SessionInfo) -> CheckFuture<'a> {
        let Some(ip) = self.ip(s) else {
            return accept();
        };
        Box::pin(self.connect_stage(s, ip))
    }

    fn helo<'a>(&'a self, s: &'a SessionInfo, name: &'a str) -> CheckFuture<'a> {
        let v = match self.ip(s) {
            Some(ip) if !spared(s) => {
                match self
                    .screen
                    .helo(name, ip, std::slice::from_ref(&self.ctx.hostname))
                {
                    Ok(()) => Verdict::Accept,
                    Err(why) => Verdict::Reject(Reply::new(
                        550,
                        (5, 7, 1),
                        format!("<{name}>: Helo command rejected: the name {why}"),
                    )),
                }
            }
            _ => Verdict::Accept,
        };
        Box::pin(std::future::ready(v))
    }

    fn mail<'a>(&'a self, s: &'a SessionInfo, from: &'a MailFrom) -> CheckFuture<'a> {
        let v = match self.ip(s) {
            Some(_) => {
                s.notes.set(GreyDeferred(None));
                let listed = (!from.address.is_empty())
                    .then(|| self.screen.address(&from.address))
                    .flatten();
                s.notes.set(SenderAllowed(listed == Some(Listed::Allow)));
                match listed {
                    Some(Listed::Deny)
                        if !matches!(
                            s.notes.get::<ScreenedClient>().as_deref(),
                            Some(ScreenedClient(ClientVerdict::Allowlisted))
                        ) =>
                    {
                        self.screen.counters.add("sender", "denied");
                        Verdict::Reject(Reply::new(
                            550,
                            (5, 7, 1),
                            format!("<{}>: Sender address rejected: Access denied", from.address),
                        ))
                    }
                    Some(Listed::Allow) => {
                        self.screen.counters.add("sender", "allowlisted");
                        Verdict::Accept
                    }
                    _ => Verdict::Accept,
                }
            }
            None => Verdict::Accept,
        };
        Box::pin(std::future::ready(v))
    }

    fn rcpt<'a>(
        &'a self,
        s: &'a SessionInfo,
        from: &'a MailFrom,
        to: &'a RcptTo,
    ) -> CheckFuture<'a> {
        let Some(ip) = self.ip(s) else {
            return accept();
        };
        Box::pin(self.rcpt_stage(s, ip, from, to))
    }

    fn data<'a>(&'a self, s: &'a SessionInfo, m: Message<'a>) -> CheckFuture<'a> {
        let deferred = self.ip(s).and_then(|_| s.notes.get::<GreyDeferred>()?.0);
        let v = match deferred {
            Some(secs) if m.mail.address.is_empty() => {
                info!(secs, "greylisted after the data (null sender)");
                Verdict::Reject(Reply::new(
                    451,
                    (4, 7, 1),
                    format!("Greylisted, try again in {secs} seconds"),
                ))
            }
            _ => Verdict::Accept,
        };
        Box::pin(std::future::ready(v))
    }
}
