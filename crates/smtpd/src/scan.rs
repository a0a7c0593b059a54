//! The content scanners of `[scan]` (facteur-scan) as end-of-data checks,
//! before the 250: rspamd ([`RspamdCheck`]) and clamd ([`ClamavCheck`]).
//!
//! rspamd's actions: `reject` → `554 5.7.1` (with rspamd's text when it
//! gives one), `soft reject` and `greylist` → `451 4.7.1`, `add header` →
//! the spam mark (`X-Spam: Yes`, which lmtpd files into Junk), `rewrite
//! subject` → the Subject rspamd wrote and the spam mark; every message
//! gets `X-Spam-Status` (yes or no, the score, the action), and rspamd's
//! `milter.add_headers` / `remove_headers` are applied.
//!
//! clamd: a virus → `554 5.7.1 Virus found: NAME`, or (`action =
//! "notice"`) the message accepted with a notice in its place, so the
//! recipients learn that something was stopped and the virus is never
//! kept.
//!
//! A scanner that cannot answer: `X-Facteur-Unscanned: NAME; why` and the
//! message goes on (fail-open), or `451 4.7.1` (fail-closed), as
//! configured. Messages larger than a scanner's `max_size` are not sent
//! to it (logged). Nothing is ever answered 250 unless the sink commits.

use crate::Context;
use crate::trust::QueueId;
use facteur_config::scan::{OnFailure, VirusAction};
use facteur_scan::rspamd::{self, Action};
use facteur_scan::{ScanError, clamd};
use facteur_smtp_codec::Reply;
use facteur_smtp_server::edit::Edit;
use facteur_smtp_server::{Check, CheckFuture, Message, SessionInfo, Verdict};
use facteur_trust::header::SPAM_MARK;
use std::sync::Arc;
use tracing::{info, warn};

fn queue_id(s: &SessionInfo) -> String {
    s.notes
        .get::<QueueId>()
        .map(|q| q.0.clone())
        .unwrap_or_default()
}

/// What a scanner's failure does: the field and on, or a 451.
fn failed(
    ctx: &Context,
    m: &mut Message<'_>,
    scanner: &str,
    qid: &str,
    e: &ScanError,
    on: OnFailure,
) -> Verdict {
    warn!(queue_id = %qid, scanner, error = %e, "scanner failed");
    ctx.scan_counters.add(scanner, "error");
    match on {
        OnFailure::Accept => {
            m.add_header(&format!("X-Facteur-Unscanned: {scanner}; {}", e.short()));
            Verdict::Accept
        }
        OnFailure::Tempfail => Verdict::Reject(Reply::new(
            451,
            (4, 7, 1),
            "Cannot scan the message now, try again later",
        )),
    }
}

/// rspamd. See the module header.
pub struct RspamdCheck {
    pub ctx: Arc<Context>,
}

impl RspamdCheck {
    async fn run(&self, s: &SessionInfo, mut m: Message<'_>) -> Verdict {
        let cfg = &self.ctx.scan.rspamd;
        let qid = queue_id(s);
        if m.size > cfg.max_size.0 {
            info!(queue_id = %qid, size = m.size, "too large for rspamd: not scanned");
            self.ctx.scan_counters.add("rspamd", "skipped");
            return Verdict::Accept;
        }
        let meta = rspamd::Meta {
            from: m.mail.address.clone(),
            rcpts: m.rcpts.iter().map(|r| r.address.clone()).collect(),
            ip: s.peer.ip(),
            helo: s.helo.clone().unwrap_or_default(),
            hostname: crate::trust::client_name(s),
            queue_id: qid.clone(),
            user: s.auth_user.clone(),
        };
        let result = match m.content_len().and_then(|size| Ok((size, m.reader()?))) {
            Ok((size, mut r)) => {
                rspamd::check(&cfg.address, cfg.timeout.duration(), &meta, &mut *r, size).await
            }
            Err(e) => Err(ScanError::Io(e)),
        };
        let v = match result {
            Ok(v) => v,
            Err(e) => return failed(&self.ctx, &mut m, "rspamd", &qid, &e, cfg.on_failure),
        };
        let top: Vec<String> = v
            .symbols
            .iter()
            .take(8)
            .map(|(n, sc)| format!("{n}({sc:.2})"))
            .collect();
        info!(
            queue_id = %qid,
            action = v.action.as_str(),
            score = v.score,
            required = v.required,
            symbols = %top.join(","),
            "rspamd"
        );
        self.ctx.scan_counters.add("rspamd", v.action.as_str());
        let text = |default: &str| {
            v.smtp_message
                .as_deref()
                .map(|t| t.chars().filter(|c| !c.is_control()).take(200).collect())
                .unwrap_or_else(|| default.to_string())
        };
        match v.action {
            Action::Reject => {
                return Verdict::Reject(Reply::new(554, (5, 7, 1), text("Spam message rejected")));
            }
            Action::SoftReject | Action::Greylist => {
                return Verdict::Reject(Reply::new(451, (4, 7, 1), text("Try again later")));
            }
            Action::NoAction | Action::AddHeader | Action::RewriteSubject => {}
        }
        for (name, nth) in &v.remove_headers {
            m.edit(Edit::Remove {
                name: name.clone(),
                nth: *nth,
            });
        }
        let spam = matches!(v.action, Action::AddHeader | Action::RewriteSubject);
        if v.action == Action::RewriteSubject
            && let Some(subject) = &v.subject
        {
            m.edit(Edit::Change {
                name: "Subject".into(),
                nth: 1,
                value: subject.clone(),
            });
        }
        m.add_header(&format!(
            "X-Spam-Status: {}, score={:.2} required={:.2} action=\"{}\"",
            if spam { "Yes" } else { "No" },
            v.score,
            v.required,
            v.action.as_str()
        ));
        if spam {
            m.add_header(SPAM_MARK);
        }
        for (name, value) in &v.add_headers {
            // Our own mark is ours to write.
            if !name.eq_ignore_ascii_case(facteur_trust::header::SPAM_MARK_NAME) {
                m.add_header(&format!("{name}: {value}"));
            }
        }
        Verdict::Accept
    }
}

impl Check for RspamdCheck {
    fn name(&self) -> &'static str {
        "rspamd"
    }

    fn data<'a>(&'a self, s: &'a SessionInfo, m: Message<'a>) -> CheckFuture<'a> {
        if !self
            .ctx
            .scan
            .rspamd
            .listeners
            .iter()
            .any(|l| l == s.listener)
        {
            return Box::pin(std::future::ready(Verdict::Accept));
        }
        Box::pin(self.run(s, m))
    }
}

/// clamd. See the module header.
pub struct ClamavCheck {
    pub ctx: Arc<Context>,
}

impl ClamavCheck {
    async fn run(&self, s: &SessionInfo, mut m: Message<'_>) -> Verdict {
        let cfg = &self.ctx.scan.clamav;
        let qid = queue_id(s);
        if m.size > cfg.max_size.0 {
            info!(queue_id = %qid, size = m.size, "too large for clamd: not scanned");
            self.ctx.scan_counters.add("clamav", "skipped");
            return Verdict::Accept;
        }
        let result = match m.reader() {
            Ok(mut r) => clamd::scan(&cfg.address, cfg.timeout.duration(), &mut *r).await,
            Err(e) => Err(ScanError::Io(e)),
        };
        let name = match result {
            Ok(clamd::Finding::Clean) => {
                self.ctx.scan_counters.add("clamav", "clean");
                return Verdict::Accept;
            }
            Ok(clamd::Finding::Virus(name)) => name,
            Err(e) => return failed(&self.ctx, &mut m, "clamav", &qid, &e, cfg.on_failure),
        };
        self.ctx.scan_counters.add("clamav", "virus");
        info!(queue_id = %qid, virus = %name, from = %m.mail.address, action = ?cfg.action, "virus found");
        match cfg.action {
            VirusAction::Reject => {
                Verdict::Reject(Reply::new(554, (5, 7, 1), format!("Virus found: {name}")))
            }
            VirusAction::Notice => {
                let notice = virus_notice(&self.ctx.hostname, &qid, &m.mail.address, &name);
                if m.edit(Edit::ReplaceAll(notice)) {
                    Verdict::Accept
                } else {
                    Verdict::Reject(Reply::new(554, (5, 7, 1), format!("Virus found: {name}")))
                }
            }
        }
    }
}

impl Check for ClamavCheck {
    fn name(&self) -> &'static str {
        "clamav"
    }

    fn data<'a>(&'a self, s: &'a SessionInfo, m: Message<'a>) -> CheckFuture<'a> {
        if !self
            .ctx
            .scan
            .clamav
            .listeners
            .iter()
            .any(|l| l == s.listener)
        {
            return Box::pin(std::future::ready(Verdict::Accept));
        }
        Box::pin(self.run(s, m))
    }
}

/// The message the recipients get in place of one with a virus.
pub fn virus_notice(hostname: &str, qid: &str, sender: &str, virus: &str) -> Vec<u8> {
    let sender = if sender.is_empty() { "<>" } else { sender };
    let clean = |s: &str| s.chars().filter(|c| !c.is_control()).collect::<String>();
    let date = facteur_util::date::rfc5322_now();
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: undisclosed-recipients:;\r\n\
         Subject: A message to you contained a virus and was stopped\r\n\
         Date: {date}\r\n\
         Message-ID: <{qid}.virus@{hostname}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         A message sent to you was found to contain a virus and was not\r\n\
         delivered. Nothing of it was kept.\r\n\
         \r\n\
         Sender (envelope): {}\r\n\
         Virus: {}\r\n\
         Queue ID: {qid}\r\n\
         \r\n\
         If you expected this message, ask the sender to check their computer\r\n\
         and send it again.\r\n",
        clean(sender),
        clean(virus),
    )
    .into_bytes()
}
