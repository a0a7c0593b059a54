//! smtpd on the SMTP core: what a listener accepts and where its mail goes.
//!
//! One [`Listener`] per kind of listener (MX, submission, submissions)
//! answers the core's questions: AUTH is offered on submission only, after
//! TLS (or to loopback clients when configured), and MAIL needs it there;
//! the sender must be the login's own address or an alias of it; a
//! recipient goes through relay control and the directory ([`policy`]);
//! the message streams into a queue file in `incoming/` ([`Incoming`]) and
//! the 250 comes only after its commit (fsynced, linked, directory
//! fsynced), then qmgr is woken.
//!
//! [`policy`]: crate::policy

use crate::message::{Incoming, Trace};
use crate::policy::{self, Client};
use crate::{Context, Mode};
use facteur_mail::dsn::RcptStatus;
use facteur_smtp_codec::{MailFrom, RcptTo, Reply};
use facteur_smtp_server::{
    BareLineEndings, Check, Dialect, Handler, Limits, ReplyFuture, SessionInfo, Txn,
};
use facteur_spool::{Envelope, QueueName, Recipient};
use std::sync::Arc;
use tracing::{info, warn};

/// One kind of listener.
pub struct Listener {
    pub ctx: Arc<Context>,
    pub mode: Mode,
    checks: Vec<Arc<dyn Check>>,
}

impl Listener {
    pub fn new(ctx: Arc<Context>, mode: Mode) -> Listener {
        let mut checks: Vec<Arc<dyn Check>> = Vec::new();
        if let Some(screen) = &ctx.screen
            && screen.cfg.screens(mode.as_str())
        {
            checks.push(Arc::new(crate::screen::ScreenCheck {
                ctx: Arc::clone(&ctx),
                screen: Arc::clone(screen),
                iprev: ctx.fcrdns.clone(),
            }));
        }
        checks.push(Arc::new(policy::MessageRate {
            ctx: Arc::clone(&ctx),
        }));
        if let Some(t) = &ctx.trust
            && t.enabled_on(mode.as_str())
        {
            checks.push(Arc::new(crate::trust::TrustCheck {
                ctx: Arc::clone(&ctx),
                trust: Arc::clone(t),
            }));
        }
        // The scanners last: they read the whole message, so they run
        // only for what every other check let through.
        if ctx
            .scan
            .milters
            .iter()
            .any(|m| m.listeners.iter().any(|l| l == mode.as_str()))
        {
            checks.push(Arc::new(crate::milter::MilterCheck {
                ctx: Arc::clone(&ctx),
            }));
        }
        if ctx.scan.rspamd.enabled {
            checks.push(Arc::new(crate::scan::RspamdCheck {
                ctx: Arc::clone(&ctx),
            }));
        }
        if ctx.scan.clamav.enabled {
            checks.push(Arc::new(crate::scan::ClamavCheck {
                ctx: Arc::clone(&ctx),
            }));
        }
        Listener { ctx, mode, checks }
    }

    fn client(&self, s: &SessionInfo) -> Client {
        Client {
            ip: s.peer.ip(),
            auth_user: s.auth_user.clone(),
        }
    }
}

impl Handler for Listener {
    type Rcpt = ();
    type Sink = Incoming;

    fn dialect(&self) -> Dialect {
        Dialect::Smtp
    }

    fn greeting(&self) -> String {
        format!("{} ESMTP facteur", self.ctx.hostname)
    }

    fn hostname(&self) -> &str {
        &self.ctx.hostname
    }

    fn limits(&self) -> Arc<Limits> {
        let c = self.ctx.cfg.get();
        Arc::new(Limits {
            max_line_length: c.max_line_length as usize,
            max_message_size: c.max_message_size.0,
            max_recipients: c.max_recipients as usize,
            max_errors: c.max_errors,
            timeout: c.timeout.duration(),
            bare_line_endings: BareLineEndings::Refuse,
        })
    }

    fn extensions(&self, _s: &SessionInfo) -> Vec<String> {
        vec!["DSN".into()]
    }

    fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.ctx.tls.get()
    }

    fn logins(&self, s: &SessionInfo) -> Option<&Arc<facteur_auth::Logins>> {
        let loopback = s.peer.ip().is_some_and(|ip| ip.is_loopback());
        let allowed = self.mode != Mode::Mx
            && (s.tls.is_some()
                || (self.ctx.cfg.get().allow_plaintext_auth_on_loopback && loopback));
        allowed.then_some(&self.ctx.logins)
    }

    fn requires_auth(&self, _s: &SessionInfo) -> bool {
        self.mode != Mode::Mx
    }

    fn checks(&self) -> &[Arc<dyn Check>] {
        &self.checks
    }

    async fn pregreet(&self, s: &SessionInfo) -> Option<std::time::Duration> {
        crate::screen::pregreet(&self.ctx, s).await
    }

    fn pregreet_done(&self, s: &SessionInfo) -> facteur_smtp_server::Verdict {
        crate::screen::pregreet_done(&self.ctx, s)
    }

    async fn mail(&self, s: &SessionInfo, from: &MailFrom) -> Result<(), Reply> {
        match &s.auth_user {
            Some(user) => policy::check_sender(&self.ctx, user, &from.address).await,
            None => Ok(()),
        }
    }

    async fn rcpt(&self, s: &SessionInfo, _t: &Txn<()>, to: &RcptTo) -> Result<((), Reply), Reply> {
        policy::check_rcpt(&self.ctx, &self.client(s), &to.address).await?;
        Ok(((), Reply::new(250, (2, 1, 5), "Recipient OK")))
    }

    fn open(&self, s: &SessionInfo, t: &Txn<()>) -> Result<Incoming, Reply> {
        let mut env = envelope(s, t);
        // The client's name only when iprev verified it; forged results
        // removed only from clients the checks judge.
        let client_name = crate::trust::client_name(s);
        env.client_name = client_name.clone();
        let strip =
            self.ctx.trust.as_ref().and_then(|tr| {
                crate::trust::checked(&self.ctx, tr, s).map(|_| tr.authserv_id.clone())
            });
        let protocol = env.protocol.clone().unwrap_or_default();
        let writer = self
            .ctx
            .spool
            .create(QueueName::Incoming, &env)
            .map_err(|e| {
                warn!(error = %e, "cannot create a queue file");
                Reply::new(451, (4, 3, 0), "Local error in processing, try again later")
            })?;
        let qid = writer.queue_id().to_string();
        s.notes.set(crate::trust::QueueId(qid.clone()));
        let trace = Trace {
            helo: s.helo.clone().unwrap_or_default(),
            client_name,
            client_ip: s.peer.to_string(),
            hostname: self.ctx.hostname.clone(),
            protocol,
            queue_id: qid.clone(),
            tls: s.tls.clone(),
            single_rcpt: (t.rcpts.len() == 1).then(|| t.rcpts[0].0.address.clone()),
            date: facteur_util::date::rfc5322_now(),
        };
        let add = (self.mode != Mode::Mx)
            .then(|| (format!("<{qid}@{}>", self.ctx.hostname), trace.date.clone()));
        Ok(Incoming::new(writer, &trace, add).strip_forged(strip))
    }

    async fn finish(
        &self,
        s: &SessionInfo,
        txn: Txn<()>,
        incoming: Incoming,
        size: u64,
    ) -> Vec<ReplyFuture> {
        let qid = incoming.queue_id().to_string();
        let from = txn.mail.address;
        let nrcpt = txn.rcpts.len();
        let reply = match tokio::task::spawn_blocking(move || incoming.commit()).await {
            Ok(Ok(id)) => {
                info!(queue_id = %id, from = %from, nrcpt, size, user = s.auth_user.as_deref().unwrap_or(""), "queued");
                facteur_spool::wake_qmgr(&self.ctx.qmgr_socket);
                Reply::new(250, (2, 0, 0), format!("OK: queued as {id}"))
            }
            Ok(Err(e)) => {
                warn!(queue_id = %qid, error = %e, "cannot commit the queue file");
                facteur_smtp_server::write_failure(&e)
            }
            Err(_) => Reply::new(451, (4, 3, 0), "Local error in processing, try again later"),
        };
        vec![Box::pin(std::future::ready(reply))]
    }
}

/// RFC 3848 / RFC 6531 protocol names for Received: `with`.
pub fn protocol(esmtp: bool, tls: bool, auth: bool, utf8: bool) -> String {
    if !esmtp {
        return "SMTP".into();
    }
    let base = if utf8 { "UTF8SMTP" } else { "ESMTP" };
    format!(
        "{base}{}{}",
        if tls { "S" } else { "" },
        if auth { "A" } else { "" }
    )
}

/// The queue file's envelope for a transaction.
fn envelope(s: &SessionInfo, t: &Txn<()>) -> Envelope {
    let p = &t.mail.params;
    Envelope {
        queue_id: String::new(),
        sender: t.mail.address.clone(),
        recipients: t
            .rcpts
            .iter()
            .map(|(r, ())| Recipient {
                address: r.address.clone(),
                orcpt: r.params.orcpt.clone(),
                notify: r.params.notify,
                status: RcptStatus::Pending,
                last_reply: None,
            })
            .collect(),
        ret: p.ret,
        envid: p.envid.clone(),
        body: p.body.unwrap_or_default(),
        smtputf8: p.smtputf8,
        client_addr: Some(s.peer.to_string()),
        client_name: None,
        helo: s.helo.clone(),
        protocol: Some(protocol(
            s.esmtp,
            s.tls.is_some(),
            s.auth_user.is_some(),
            p.smtputf8,
        )),
        auth_user: s.auth_user.clone(),
        local_user: None,
        arrival: facteur_util::date::now_unix(),
        attempts: 0,
        next_attempt: 0,
        delay_notified: false,
    }
}

#[cfg(test)]
pub(crate) mod tests;
