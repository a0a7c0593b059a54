//! Milters (`[[scan.milter]]`) as a check at every stage: one milter
//! conversation per SMTP session and milter (facteur-scan's `Session`),
//! opened at connect and kept in the session's notes, each stage sent as
//! it happens, so a milter can refuse a client, a sender or a recipient
//! when the client sends it, and the message before the 250.
//!
//! Changes at the end of the message: fields a milter adds go above the
//! message (as `Authentication-Results` does), a field inserted further
//! down goes where asked, changed and removed fields and a replaced body
//! are made by rewriting the message; `quarantine` gives it the spam mark
//! (filed into Junk). A milter's `discard` is taken as a refusal (`550
//! 5.7.1`): facteur never answers 250 for a message it throws away.
//!
//! A milter that cannot be reached or breaks the protocol: with
//! `on_failure = "accept"`, its messages get `X-Facteur-Unscanned` and go
//! on; with `"tempfail"`, every MAIL of the session gets `451 4.7.1`.

use crate::Context;
use crate::trust::QueueId;
use facteur_config::scan::{Milter, OnFailure};
use facteur_scan::ScanError;
use facteur_scan::milter::codec::Response;
use facteur_scan::milter::{Decision, Session};
use facteur_smtp_codec::{MailFrom, RcptTo, Reply};
use facteur_smtp_server::edit::Edit;
use facteur_smtp_server::{Check, CheckFuture, Message, SessionInfo, Verdict};
use std::sync::Arc;
use tokio::sync::Mutex;
use tracing::{info, warn};

/// One milter's side of a session.
enum Slot {
    Open {
        session: Session,
        /// The milter accepted the current message: no more of it.
        done_with_message: bool,
    },
    /// It accepted the whole session, or was not asked (another listener).
    Done,
    Failed(String),
}

/// The conversations of a session, in `[[scan.milter]]` order.
struct Milters(Vec<Mutex<Slot>>);

/// A stage between connect and the message: its argument and macros.
enum Stage<'x> {
    Helo(&'x str, Vec<(&'static str, String)>),
    Mail(String, Vec<(&'static str, String)>),
    Rcpt(String, Vec<(&'static str, String)>),
}

/// The check. See the module header.
pub struct MilterCheck {
    pub ctx: Arc<Context>,
}

/// What a decision does at a stage; `what` names the refused thing.
fn verdict(d: &Decision, what: &str) -> Verdict {
    match d {
        Decision::Continue | Decision::Accept => Verdict::Accept,
        Decision::Reject | Decision::Discard => {
            Verdict::Reject(Reply::new(550, (5, 7, 1), format!("{what} rejected")))
        }
        Decision::Tempfail => Verdict::Reject(Reply::new(
            451,
            (4, 7, 1),
            format!("{what} temporarily rejected, try again later"),
        )),
        Decision::Reply(code, text) => Verdict::Reject(Reply::plain(*code, text.clone())),
    }
}

fn macros_common(ctx: &Context) -> Vec<(&'static str, String)> {
    vec![
        ("j", ctx.hostname.clone()),
        ("{daemon_name}", "facteur-smtpd".into()),
        ("v", "facteur".into()),
    ]
}

fn pairs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, s)| (*k, s.as_str())).collect()
}

impl MilterCheck {
    fn configs<'a>(&'a self, s: &'a SessionInfo) -> impl Iterator<Item = (usize, &'a Milter)> {
        self.ctx
            .scan
            .milters
            .iter()
            .enumerate()
            .filter(|(_, m)| m.listeners.iter().any(|l| l == s.listener))
    }

    async fn connect_stage(&self, s: &SessionInfo) -> Verdict {
        let mut slots = Vec::new();
        let mut verdict_out = Verdict::Accept;
        for m in &self.ctx.scan.milters {
            if !m.listeners.iter().any(|l| l == s.listener) || verdict_out != Verdict::Accept {
                slots.push(Mutex::new(Slot::Done));
                continue;
            }
            let ip = s.peer.ip();
            let name = crate::trust::client_name(s).unwrap_or_else(|| match ip {
                Some(ip) => format!("[{ip}]"),
                None => "localhost".into(),
            });
            let mut mac = macros_common(&self.ctx);
            mac.push(("_", format!("{name} [{}]", s.peer)));
            mac.push((
                "{client_addr}",
                ip.map(|i| i.to_string()).unwrap_or_default(),
            ));
            mac.push(("{client_name}", name.clone()));
            let opened = async {
                let mut session = Session::open(&m.address, m.timeout.duration()).await?;
                let d = session.connect(&name, ip, 0, &pairs(&mac)).await?;
                Ok::<_, ScanError>((session, d))
            }
            .await;
            let slot = match opened {
                Ok((session, Decision::Continue)) => Slot::Open {
                    session,
                    done_with_message: false,
                },
                Ok((session, Decision::Accept)) => {
                    session.quit().await;
                    Slot::Done
                }
                Ok((session, d)) => {
                    info!(milter = m.name, decision = ?d, "milter refused the client");
                    session.quit().await;
                    // A refusal at connect is a 554 greeting (RFC 5321
                    // §3.1); a temporary one ends the connection.
                    verdict_out = match verdict(&d, "Connection") {
                        Verdict::Reject(r) if r.code / 100 == 4 => Verdict::Disconnect(Reply::new(
                            421,
                            (4, 7, 0),
                            "Service temporarily unavailable",
                        )),
                        Verdict::Reject(r) => Verdict::Reject(Reply::plain(554, r.lines.join(" "))),
                        v => v,
                    };
                    Slot::Done
                }
                Err(e) => {
                    warn!(milter = m.name, error = %e, "milter unavailable");
                    self.ctx
                        .scan_counters
                        .add(&format!("milter:{}", m.name), "error");
                    Slot::Failed(e.short())
                }
            };
            slots.push(Mutex::new(slot));
        }
        s.notes.set(Milters(slots));
        verdict_out
    }

    /// Sends `stage` to each open conversation of this listener's
    /// milters, in order, until one refuses.
    async fn each(&self, s: &SessionInfo, what: &str, stage: Stage<'_>) -> Verdict {
        let Some(all) = s.notes.get::<Milters>() else {
            return Verdict::Accept;
        };
        for (i, m) in self.configs(s) {
            let Some(slot) = all.0.get(i) else { continue };
            let mut slot = slot.lock().await;
            let Slot::Open {
                session,
                done_with_message,
            } = &mut *slot
            else {
                continue;
            };
            if *done_with_message {
                continue;
            }
            let answer = match &stage {
                Stage::Helo(name, mac) => session.helo(name, &pairs(mac)).await,
                Stage::Mail(arg, mac) => session.mail(&[arg], &pairs(mac)).await,
                Stage::Rcpt(arg, mac) => session.rcpt(&[arg], &pairs(mac)).await,
            };
            match answer {
                Ok(Decision::Continue) => {}
                Ok(Decision::Accept) => *done_with_message = true,
                Ok(d) => {
                    info!(milter = m.name, decision = ?d, what, "milter refused");
                    return verdict(&d, what);
                }
                Err(e) => {
                    warn!(milter = m.name, error = %e, what, "milter failed");
                    self.ctx
                        .scan_counters
                        .add(&format!("milter:{}", m.name), "error");
                    *slot = Slot::Failed(e.short());
                }
            }
        }
        Verdict::Accept
    }

    async fn data_stage(&self, s: &SessionInfo, mut m: Message<'_>) -> Verdict {
        let Some(all) = s.notes.get::<Milters>() else {
            return Verdict::Accept;
        };
        let qid = s
            .notes
            .get::<QueueId>()
            .map(|q| q.0.clone())
            .unwrap_or_default();
        let mac = [("i", qid.as_str())];
        for (i, cfg) in self.configs(s) {
            let Some(slot) = all.0.get(i) else { continue };
            let mut slot = slot.lock().await;
            let session = match &mut *slot {
                Slot::Open {
                    session,
                    done_with_message: false,
                } => session,
                Slot::Failed(why) if cfg.on_failure == OnFailure::Accept => {
                    m.add_header(&format!("X-Facteur-Unscanned: milter {}; {why}", cfg.name));
                    continue;
                }
                _ => continue,
            };
            if m.size > cfg.max_size.0 {
                info!(queue_id = %qid, milter = cfg.name, size = m.size, "too large for the milter: not sent");
                let _ = session.abort().await;
                continue;
            }
            let result = match m.reader() {
                Ok(mut r) => {
                    session
                        .message(&mut *r, &mac, facteur_smtp_server::edit::MAX_HEADER_SECTION)
                        .await
                }
                Err(e) => Err(ScanError::Io(e)),
            };
            let eom = match result {
                Ok(eom) => eom,
                Err(e) => {
                    warn!(queue_id = %qid, milter = cfg.name, error = %e, "milter failed");
                    self.ctx
                        .scan_counters
                        .add(&format!("milter:{}", cfg.name), "error");
                    let why = e.short();
                    *slot = Slot::Failed(why.clone());
                    match cfg.on_failure {
                        OnFailure::Accept => {
                            m.add_header(&format!(
                                "X-Facteur-Unscanned: milter {}; {why}",
                                cfg.name
                            ));
                            continue;
                        }
                        OnFailure::Tempfail => {
                            return Verdict::Reject(Reply::new(
                                451,
                                (4, 7, 1),
                                "Cannot scan the message now, try again later",
                            ));
                        }
                    }
                }
            };
            info!(queue_id = %qid, milter = cfg.name, decision = ?eom.decision, changes = eom.changes.len(), "milter");
            let v = verdict(&eom.decision, "Message");
            let result = match &v {
                Verdict::Accept => "accept",
                _ => "reject",
            };
            self.ctx
                .scan_counters
                .add(&format!("milter:{}", cfg.name), result);
            if v != Verdict::Accept {
                return v;
            }
            apply_changes(&mut m, eom.changes, cfg.max_size.0, &qid, &cfg.name);
        }
        Verdict::Accept
    }
}

/// Folded values come from milters with LF line ends (Sendmail's form).
fn crlf(value: &str) -> String {
    value.replace("\r\n", "\n").replace('\n', "\r\n")
}

fn apply_changes(
    m: &mut Message<'_>,
    changes: Vec<Response>,
    max_body: u64,
    qid: &str,
    milter: &str,
) {
    let mut body: Option<Vec<u8>> = None;
    for c in changes {
        match c {
            Response::AddHeader { name, value }
            | Response::InsHeader {
                index: 0,
                name,
                value,
            } => {
                m.add_header(&format!("{name}: {}", crlf(&value)));
            }
            Response::InsHeader { index, name, value } => {
                m.edit(Edit::Insert {
                    index: index as usize,
                    field: format!("{name}: {}", crlf(&value)),
                });
            }
            Response::ChgHeader { index, name, value } => {
                let nth = (index as usize).max(1);
                if value.is_empty() {
                    m.edit(Edit::Remove { name, nth });
                } else {
                    m.edit(Edit::Change {
                        name,
                        nth,
                        value: crlf(&value),
                    });
                }
            }
            Response::ReplBody(chunk) => {
                let b = body.get_or_insert_with(Vec::new);
                if (b.len() + chunk.len()) as u64 <= max_body {
                    b.extend_from_slice(&chunk);
                } else {
                    warn!(queue_id = %qid, milter, "replaced body too large: kept the original");
                    body = None;
                    break;
                }
            }
            Response::Quarantine(reason) => {
                info!(queue_id = %qid, milter, reason, "quarantined: the spam mark");
                m.add_header(facteur_trust::header::SPAM_MARK);
            }
            _ => {}
        }
    }
    if let Some(b) = body {
        m.edit(Edit::ReplaceBody(b));
    }
}

impl Check for MilterCheck {
    fn name(&self) -> &'static str {
        "milter"
    }

    fn connect<'a>(&'a self, s: &'a SessionInfo) -> CheckFuture<'a> {
        Box::pin(self.connect_stage(s))
    }

    fn helo<'a>(&'a self, s: &'a SessionInfo, name: &'a str) -> CheckFuture<'a> {
        let mut mac = Vec::new();
        if let Some(t) = &s.tls {
            mac.push((
                "{tls_version}",
                t.split_whitespace().next().unwrap_or_default().to_string(),
            ));
        }
        Box::pin(self.each(s, "Helo command", Stage::Helo(name, mac)))
    }

    fn mail<'a>(&'a self, s: &'a SessionInfo, from: &'a MailFrom) -> CheckFuture<'a> {
        Box::pin(async move {
            // A milter that failed, when failures are temporary refusals.
            if let Some(all) = s.notes.get::<Milters>() {
                for (i, cfg) in self.configs(s) {
                    if cfg.on_failure == OnFailure::Tempfail
                        && let Some(slot) = all.0.get(i)
                        && matches!(*slot.lock().await, Slot::Failed(_))
                    {
                        return Verdict::Reject(Reply::new(
                            451,
                            (4, 7, 1),
                            "Service temporarily unavailable, try again later",
                        ));
                    }
                }
                // A new message: every milter hears of it again.
                for slot in &all.0 {
                    if let Slot::Open {
                        done_with_message, ..
                    } = &mut *slot.lock().await
                    {
                        *done_with_message = false;
                    }
                }
            }
            let arg = format!("<{}>", from.address);
            let mut mac = vec![("{mail_addr}", from.address.clone())];
            if let Some(u) = &s.auth_user {
                mac.push(("{auth_authen}", u.clone()));
                mac.push(("{auth_type}", "PLAIN".into()));
            }
            self.each(s, "Sender address", Stage::Mail(arg, mac)).await
        })
    }

    fn rcpt<'a>(
        &'a self,
        s: &'a SessionInfo,
        _from: &'a MailFrom,
        to: &'a RcptTo,
    ) -> CheckFuture<'a> {
        Box::pin(async move {
            let arg = format!("<{}>", to.address);
            let mac = vec![("{rcpt_addr}", to.address.clone())];
            self.each(s, "Recipient address", Stage::Rcpt(arg, mac))
                .await
        })
    }

    fn data<'a>(&'a self, s: &'a SessionInfo, m: Message<'a>) -> CheckFuture<'a> {
        Box::pin(self.data_stage(s, m))
    }
}
