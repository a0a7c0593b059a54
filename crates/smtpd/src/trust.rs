//! Mail authentication at the SMTP core's stages: facteur-trust's checks
//! wired as one [`Check`] on every listener whose `[trust.incoming]`
//! allows it, for clients that are not trusted (no login, not in
//! `mynetworks`, [`checked`]). Each stage does its part and keeps what it
//! learned in the session's notes for the end of data:
//!
//! | stage | what | note |
//! |---|---|---|
//! | connect | iprev (FCrDNS) of the client | [`ClientIprev`]: the verified name goes into `Received:` |
//! | HELO | SPF of the HELO name | [`HeloSpf`] |
//! | MAIL | SPF of MAIL FROM | [`MailSpf`] |
//! | end of data | DKIM, ARC, DMARC; the policy; `Authentication-Results`, `Received-SPF`, the spam mark | — |
//!
//! Nothing is refused before the end of data: SPF alone decides only
//! there, where DKIM can excuse it. A note is used only for what it is
//! about (the same HELO name, the same sender).
//!
//! The message is read whole into memory for DKIM (bounded across all
//! sessions by `trust.incoming.verify_memory`); forged fields were removed
//! while it was received ([`crate::message`]); one that survived (past the
//! 64 KiB that smtpd inspects) makes the message refused.

use crate::Context;
use facteur_smtp_codec::{MailFrom, Reply};
use facteur_smtp_server::{Check, CheckFuture, Message, SessionInfo, Verdict};
use facteur_trust::{Decision, Envelope, Incoming, Iprev, Spf, header, results};
use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;
use tracing::{info, warn};

/// iprev of the client, from connect.
#[derive(Debug)]
pub struct ClientIprev(pub Iprev);
/// SPF of the HELO name, from HELO.
#[derive(Debug)]
pub struct HeloSpf(pub Spf);
/// SPF of the envelope sender, from MAIL.
#[derive(Debug)]
pub struct MailSpf(pub Spf);

/// The queue id of the message being received, for the end of data's
/// checks and log lines (smtpd's sink sets it when the message opens).
#[derive(Debug)]
pub struct QueueId(pub String);

/// The client's address, if the session is checked: the listener runs
/// the checks, nobody logged in, and the address is outside `mynetworks`.
pub fn checked(ctx: &Context, trust: &Incoming, s: &SessionInfo) -> Option<IpAddr> {
    let ip = s.peer.ip()?.to_canonical();
    let trusted = s.auth_user.is_some() || ctx.cfg.get().mynetworks.iter().any(|n| n.contains(ip));
    (!trusted && trust.enabled_on(s.listener)).then_some(ip)
}

/// The client's verified name (for `Received:`), when iprev passed.
pub fn client_name(s: &SessionInfo) -> Option<String> {
    s.notes.get::<ClientIprev>().and_then(|n| n.0.name.clone())
}

/// The check. See the module header.
pub struct TrustCheck {
    pub ctx: Arc<Context>,
    pub trust: Arc<Incoming>,
}

fn accept<'a>() -> CheckFuture<'a> {
    Box::pin(std::future::ready(Verdict::Accept))
}

impl Check for TrustCheck {
    fn name(&self) -> &'static str {
        "trust"
    }

    fn connect<'a>(&'a self, s: &'a SessionInfo) -> CheckFuture<'a> {
        let Some(ip) = checked(&self.ctx, &self.trust, s) else {
            return accept();
        };
        if s.notes.get::<ClientIprev>().is_some_and(|n| n.0.ip == ip) {
            return accept(); // the screen's FCrDNS asked already
        }
        Box::pin(async move {
            let r = self.trust.resolver.iprev(ip).await;
            info!(iprev = %r.outcome, name = r.name.as_deref().unwrap_or(""), "client checked");
            s.notes.set(ClientIprev(r));
            Verdict::Accept
        })
    }

    fn helo<'a>(&'a self, s: &'a SessionInfo, name: &'a str) -> CheckFuture<'a> {
        let Some(ip) = checked(&self.ctx, &self.trust, s) else {
            return accept();
        };
        Box::pin(async move {
            let r = self
                .trust
                .resolver
                .spf_helo(ip, name, &self.trust.hostname)
                .await;
            s.notes.set(HeloSpf(r));
            Verdict::Accept
        })
    }

    fn mail<'a>(&'a self, s: &'a SessionInfo, from: &'a MailFrom) -> CheckFuture<'a> {
        let Some(ip) = checked(&self.ctx, &self.trust, s) else {
            return accept();
        };
        let helo = s.helo.clone().unwrap_or_default();
        Box::pin(async move {
            let r = self
                .trust
                .resolver
                .spf_mail_from(ip, &helo, &self.trust.hostname, &from.address)
                .await;
            s.notes.set(MailSpf(r));
            Verdict::Accept
        })
    }

    fn data<'a>(&'a self, s: &'a SessionInfo, m: Message<'a>) -> CheckFuture<'a> {
        let Some(ip) = checked(&self.ctx, &self.trust, s) else {
            return accept();
        };
        Box::pin(self.end_of_data(s, ip, m))
    }
}

impl TrustCheck {
    async fn end_of_data(&self, s: &SessionInfo, ip: IpAddr, mut m: Message<'_>) -> Verdict {
        let t = &self.trust;
        let helo = s.helo.clone().unwrap_or_default();
        let sender = m.mail.address.clone();
        // Notes about what this message is: the same HELO name, sender
        // and client.
        let iprev = s.notes.get::<ClientIprev>().filter(|n| n.0.ip == ip);
        let helo_spf = s
            .notes
            .get::<HeloSpf>()
            .filter(|n| n.0.helo == helo && n.0.ip == ip);
        let mail_spf = s
            .notes
            .get::<MailSpf>()
            .filter(|n| n.0.sender == sender && n.0.helo == helo && n.0.ip == ip);
        let qid = s
            .notes
            .get::<QueueId>()
            .map(|q| q.0.clone())
            .unwrap_or_default();
        let Some(_memory) = t.reserve(m.size).await else {
            warn!(queue_id = %qid, size = m.size, "no memory to verify the message now");
            return Verdict::Reject(Reply::new(
                451,
                (4, 7, 5),
                "Cannot verify the message now, try again later",
            ));
        };
        let mut raw = Vec::with_capacity(m.size as usize);
        if let Err(e) = m.reader().and_then(|mut r| r.read_to_end(&mut raw)) {
            warn!(queue_id = %qid, error = %e, "cannot read the message back");
            return Verdict::Reject(Reply::new(451, (4, 3, 0), "Local error in processing"));
        }
        if header::forged_count(&raw, &t.authserv_id) > 0 {
            return Verdict::Reject(Reply::new(
                550,
                (5, 7, 1),
                "Authentication-Results or spam mark in a header section too large to check",
            ));
        }
        let spf = mail_spf.as_ref().map(|n| &n.0);
        let env = Envelope {
            ip,
            helo: &helo,
            sender: &sender,
            spf,
        };
        let r = t.resolver.verify_message(&raw, &env).await;
        drop(raw);
        let domains: Vec<String> = m
            .rcpts
            .iter()
            .filter_map(|r| {
                r.address
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_ascii_lowercase())
            })
            .collect();
        let decision = t.decide(s.listener, domains.iter().map(String::as_str), spf, &r);
        info!(
            queue_id = %qid,
            spf = %spf.map(|s| s.outcome.as_str()).unwrap_or("-"),
            dkim = %r.dkim.iter().map(|d| format!("{}:{}", d.domain, d.outcome)).collect::<Vec<_>>().join(","),
            arc = %r.arc.outcome,
            dmarc = %r.dmarc.outcome,
            from_domain = %r.dmarc.from_domain,
            decision = ?decision,
            "message checked"
        );
        let dkim: Vec<&str> = r.dkim.iter().map(|d| d.outcome.as_str()).collect();
        crate::metrics::authentication(
            spf.map(|s| s.outcome.as_str()),
            &dkim,
            r.dmarc.outcome.as_str(),
        );
        let verdict = match &decision {
            Decision::Reject(why) => {
                return Verdict::Reject(Reply::new(550, (5, 7, 1), why.clone()));
            }
            Decision::Defer(why) => {
                return Verdict::Reject(Reply::new(451, (4, 7, 5), why.clone()));
            }
            Decision::Quarantine(_) => {
                m.add_header(header::SPAM_MARK);
                Verdict::Accept
            }
            Decision::Accept => Verdict::Accept,
        };
        let report = results::Report {
            iprev: iprev.as_ref().map(|n| &n.0),
            spf_helo: helo_spf.as_ref().map(|n| &n.0),
            spf_mail: spf,
            message: Some(&r),
        };
        m.add_header(&results::authentication_results(&t.authserv_id, &report));
        if let Some(spf) = spf {
            m.add_header(&results::received_spf(spf, &t.hostname));
        }
        verdict
    }
}

#[cfg(test)]
mod tests;
