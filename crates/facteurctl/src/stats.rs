//! `facteurctl stats` and `facteurctl report`: mail traffic counted from
//! the daemons' own log lines (the journal, or the log files of `--dir`).
//!
//! Why the log and not a statistics database: every event that matters is
//! already written once, durably (journald's persistent journal), with its
//! queue id — smtpd's `queued` and refusals, qmgr's `picked up`,
//! `resolved`, `delivered` / `deferred` / `bounced` with the relay and the
//! reply, lmtpd's `delivered` with the mailbox. Indexing them when asked
//! costs the mail path nothing (workload 1's CPU is unchanged), and the
//! journal's retention is the administrator's one setting for both.
//!
//! [`Event::from_line`] reads one line into an event; [`Tally`] adds them
//! up by the chosen key; both pure.

use crate::log::{Filter, Line};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// Queues `report` (the text of [`report`] for `day`) for `[report]
/// mail_to` as the invoking user would with sendmail; the recipient as
/// completed (a bare name takes the host name) and the queue id.
pub fn mail_report(
    cfg: &facteur_config::Config,
    day: &str,
    report: &str,
) -> anyhow::Result<(String, String)> {
    use facteur_sendmail::{Context, Submission, enqueue, message::Message, normalize_address};
    let ctx = Context::from_config(cfg);
    let to = normalize_address(cfg.report.mail_to.trim(), &ctx.hostname)
        .map_err(|e| anyhow::anyhow!("[report] mail_to: {e}"))?;
    let mut text = format!(
        "To: {to}\r\nSubject: facteur daily report: {day} on {host}\r\n\
         Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        host = ctx.hostname
    );
    for line in report.lines() {
        text.push_str(line);
        text.push_str("\r\n");
    }
    let sub = Submission {
        sender: format!("{}@{}", ctx.user, ctx.hostname),
        recipients: vec![facteur_spool::Recipient::new(to.clone())],
        ret: None,
        envid: None,
        smtputf8: false,
        message: Message::parse(text.as_bytes()),
        full_name: Some("facteur daily report".into()),
    };
    let id =
        enqueue(&ctx, sub).map_err(|e| anyhow::anyhow!("queueing the report: {}", e.message))?;
    facteur_spool::wake_qmgr(&ctx.qmgr_socket);
    Ok((to, id))
}

/// The `key=value` fields of a line's text, after its spans and message:
/// values quoted as tracing quotes strings (`"..."` with `\"` and `\\`)
/// or up to the next space.
pub fn fields(text: &str) -> (String, HashMap<String, String>) {
    let mut rest = text;
    let mut out = HashMap::new();
    // Spans: `name{k=v ...}: `, their fields kept too.
    while let Some(open) = rest.find('{') {
        let head = &rest[..open];
        if head.contains(' ') || head.contains('=') {
            break;
        }
        let Some(close) = rest[open..].find("}: ") else {
            break;
        };
        let (_, inner) = fields_of(&rest[open + 1..open + close]);
        out.extend(inner);
        rest = &rest[open + close + 3..];
    }
    let (message, f) = fields_of(rest);
    out.extend(f);
    (message, out)
}

/// The leading words up to the first `key=`, then the fields.
fn fields_of(s: &str) -> (String, HashMap<String, String>) {
    let mut out = HashMap::new();
    let b = s.as_bytes();
    let is_key_start = |i: usize| {
        let word_end = s[i..].find([' ', '=']).map(|e| i + e);
        matches!(word_end, Some(e) if e > i && b[e] == b'=' && s[i..e].bytes().all(|c| c.is_ascii_lowercase() || c == b'_' || c.is_ascii_digit()))
    };
    // The message: words until one is `key=`.
    let message_end = (0..s.len())
        .find(|&p| (p == 0 || b[p - 1] == b' ') && is_key_start(p))
        .unwrap_or(s.len());
    let message = s[..message_end].trim().to_string();
    let mut i = message_end;
    while i < s.len() {
        while i < s.len() && b[i] == b' ' {
            i += 1;
        }
        let Some(eq) = s[i..].find('=').map(|e| i + e) else {
            break;
        };
        let key = s[i..eq].to_string();
        let mut j = eq + 1;
        let value = if b.get(j) == Some(&b'"') {
            let mut v = String::new();
            j += 1;
            let mut chars = s[j..].char_indices();
            let mut end = s.len();
            while let Some((k, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(match n {
                                'n' => '\n',
                                't' => '\t',
                                x => x,
                            });
                        }
                    }
                    '"' => {
                        end = j + k + 1;
                        break;
                    }
                    x => v.push(x),
                }
            }
            j = end;
            v
        } else {
            let e = s[j..].find(' ').map_or(s.len(), |e| j + e);
            let v = s[j..e].to_string();
            j = e;
            v
        };
        out.insert(key, value);
        i = j;
    }
    (message, out)
}

/// What one line tells.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// smtpd accepted a message, or qmgr picked up one from sendmail.
    Received {
        qid: String,
        sender: String,
        size: u64,
    },
    /// qmgr picked a message up (sendmail's too): its sender.
    PickedUp {
        qid: String,
        sender: String,
        size: u64,
    },
    /// A recipient's outcome (qmgr).
    Outcome {
        qid: String,
        rcpt: String,
        status: String,
        relay: String,
        reply: String,
    },
    /// lmtpd stored a message in a mailbox.
    Stored { mailbox: String, size: u64 },
    /// smtpd refused a sender, a recipient or a message.
    Rejected { what: String, reply: String },
}

impl Event {
    pub fn from_line(l: &Line) -> Option<Event> {
        let (message, f) = fields(&l.text);
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let num = |k: &str| f.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
        Some(match (l.daemon.as_str(), message.as_str()) {
            ("facteur-smtpd", "queued") => Event::Received {
                qid: get("queue_id"),
                sender: get("from"),
                size: num("size"),
            },
            // From maildrop/: submitted with sendmail, which smtpd never
            // saw; received here.
            ("facteur-qmgr", "picked up") if get("queue") == "maildrop" => Event::Received {
                qid: get("queue_id"),
                sender: get("from").trim_matches(['<', '>']).to_string(),
                size: num("size"),
            },
            ("facteur-qmgr", "picked up") => Event::PickedUp {
                qid: get("queue_id"),
                sender: get("from").trim_matches(['<', '>']).to_string(),
                size: num("size"),
            },
            ("facteur-qmgr", "delivered" | "deferred" | "bounced") => Event::Outcome {
                qid: get("queue_id"),
                rcpt: get("rcpt"),
                status: get("status"),
                relay: get("relay"),
                reply: get("reply"),
            },
            ("facteur-lmtpd", "delivered") => Event::Stored {
                mailbox: get("mailbox"),
                size: num("size"),
            },
            ("facteur-smtpd", "recipient refused" | "sender refused" | "message refused") => {
                Event::Rejected {
                    what: message.replace(" refused", ""),
                    reply: get("result"),
                }
            }
            _ => return None,
        })
    }
}

/// Counts of one row.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub received: u64,
    pub received_bytes: u64,
    pub delivered: u64,
    pub deferred: u64,
    pub bounced: u64,
    pub rejected: u64,
    /// The last reply of a deferral or bounce (deliverability).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_error: String,
}

/// How rows are keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    SenderDomain,
    RecipientDomain,
    Mailbox,
    Hour,
    Day,
    Month,
    RemoteHost,
    Total,
}

impl By {
    pub fn parse(s: &str) -> Option<By> {
        Some(match s {
            "sender-domain" => By::SenderDomain,
            "recipient-domain" => By::RecipientDomain,
            "mailbox" => By::Mailbox,
            "hour" => By::Hour,
            "day" => By::Day,
            "month" => By::Month,
            "remote-host" => By::RemoteHost,
            "total" => By::Total,
            _ => return None,
        })
    }
}

fn domain(addr: &str) -> String {
    match addr.rsplit_once('@') {
        Some((_, d)) => d.to_ascii_lowercase(),
        None if addr.is_empty() => "<>".into(),
        None => addr.to_ascii_lowercase(),
    }
}

/// Adds events up.
#[derive(Debug, Default)]
pub struct Tally {
    pub rows: BTreeMap<String, Counts>,
    /// queue id → sender (from `queued` / `picked up`).
    senders: HashMap<String, String>,
    /// Refusal replies, counted (the report's top reasons).
    pub reject_reasons: BTreeMap<String, u64>,
    /// Deferral and bounce replies, counted.
    pub failure_reasons: BTreeMap<String, u64>,
}

/// A reply shortened to what groups alike: its codes and first words.
fn reason(reply: &str) -> String {
    let words: Vec<&str> = reply.split_whitespace().take(6).collect();
    words.join(" ")
}

impl Tally {
    /// Adds `lines` (in time order) keyed by `by`.
    pub fn add(&mut self, lines: &[Line], by: By) {
        for l in lines {
            let Some(e) = Event::from_line(l) else {
                continue;
            };
            let time_key = |n: usize| l.time.get(..n).unwrap_or(&l.time).replace('T', " ");
            let key = |this: &Tally, who: Option<&str>| -> Option<String> {
                Some(match by {
                    By::Hour => time_key(13) + ":00",
                    By::Day => time_key(10),
                    By::Month => time_key(7),
                    By::Total => "total".into(),
                    _ => who?.to_string(),
                })
                .filter(|_| this.rows.len() < 100_000)
            };
            match e {
                Event::Received { qid, sender, size } => {
                    self.senders.insert(qid, sender.clone());
                    let who = (by == By::SenderDomain).then(|| domain(&sender));
                    if let Some(k) = key(self, who.as_deref()) {
                        let c = self.rows.entry(k).or_default();
                        c.received += 1;
                        c.received_bytes += size;
                    }
                }
                Event::PickedUp { qid, sender, .. } => {
                    self.senders.entry(qid).or_insert(sender);
                }
                Event::Outcome {
                    qid,
                    rcpt,
                    status,
                    relay,
                    reply,
                } => {
                    let who = match by {
                        By::SenderDomain => self.senders.get(&qid).map(|s| domain(s)),
                        By::RecipientDomain => Some(domain(&rcpt)),
                        By::RemoteHost => Some(relay.clone()),
                        _ => None,
                    };
                    if status != "delivered" {
                        *self.failure_reasons.entry(reason(&reply)).or_default() += 1;
                    }
                    if let Some(k) = key(self, who.as_deref()) {
                        let c = self.rows.entry(k).or_default();
                        match status.as_str() {
                            "delivered" => c.delivered += 1,
                            "bounced" => {
                                c.bounced += 1;
                                c.last_error = reply;
                            }
                            _ => {
                                c.deferred += 1;
                                c.last_error = reply;
                            }
                        }
                    }
                }
                Event::Stored { mailbox, size } => {
                    if by == By::Mailbox
                        && let Some(k) = key(self, Some(&mailbox))
                    {
                        let c = self.rows.entry(k).or_default();
                        c.delivered += 1;
                        c.received_bytes += size;
                    }
                }
                Event::Rejected { reply, .. } => {
                    *self.reject_reasons.entry(reason(&reply)).or_default() += 1;
                    if let Some(k) = key(self, None) {
                        self.rows.entry(k).or_default().rejected += 1;
                    }
                }
            }
        }
    }
}

/// The rows as a table, JSON or CSV.
pub fn render(rows: &BTreeMap<String, Counts>, format: &str, errors: bool) -> String {
    let mut out = String::new();
    match format {
        "json" => {
            let v: Vec<serde_json::Value> = rows
                .iter()
                .map(|(k, c)| {
                    let mut o = serde_json::to_value(c).unwrap_or_default();
                    if let Some(m) = o.as_object_mut() {
                        m.insert("key".into(), k.clone().into());
                    }
                    o
                })
                .collect();
            out = serde_json::to_string_pretty(&v).unwrap_or_default();
            out.push('\n');
        }
        "csv" => {
            out.push_str("key,received,received_bytes,delivered,deferred,bounced,rejected\n");
            for (k, c) in rows {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{}",
                    k.replace(',', " "),
                    c.received,
                    c.received_bytes,
                    c.delivered,
                    c.deferred,
                    c.bounced,
                    c.rejected
                );
            }
        }
        _ => {
            let w = rows.keys().map(String::len).max().unwrap_or(3).max(3);
            let _ = writeln!(
                out,
                "{:<w$}  {:>8} {:>12} {:>9} {:>8} {:>7} {:>8}{}",
                "key",
                "received",
                "bytes",
                "delivered",
                "deferred",
                "bounced",
                "rejected",
                if errors { "  last error" } else { "" }
            );
            for (k, c) in rows {
                let _ = writeln!(
                    out,
                    "{k:<w$}  {:>8} {:>12} {:>9} {:>8} {:>7} {:>8}{}",
                    c.received,
                    c.received_bytes,
                    c.delivered,
                    c.deferred,
                    c.bounced,
                    c.rejected,
                    if errors && !c.last_error.is_empty() {
                        format!("  {}", c.last_error)
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    out
}

/// The lines of the journal or of `dir`, filtered and in time order.
pub fn lines(filter: &Filter, dir: Option<&std::path::Path>) -> anyhow::Result<Vec<Line>> {
    crate::log::collect(filter, dir)
}

/// `facteurctl report --day`: a pflogsumm-style summary of one day.
pub fn report(lines: &[Line], day: &str) -> String {
    let mut total = Tally::default();
    total.add(lines, By::Total);
    let t = total.rows.get("total").cloned().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "facteur: mail of {day} (UTC)\n");
    let _ = writeln!(
        out,
        "  received   {:>8}  ({} bytes)",
        t.received, t.received_bytes
    );
    let _ = writeln!(out, "  delivered  {:>8}", t.delivered);
    let _ = writeln!(out, "  deferred   {:>8}", t.deferred);
    let _ = writeln!(out, "  bounced    {:>8}", t.bounced);
    let _ = writeln!(out, "  rejected   {:>8}", t.rejected);
    let mut hours = Tally::default();
    hours.add(lines, By::Hour);
    let _ = writeln!(out, "\nPer hour (received / delivered):");
    for (k, c) in &hours.rows {
        let _ = writeln!(out, "  {k}  {:>6} / {:<6}", c.received, c.delivered);
    }
    let top = |by: By, field: fn(&Counts) -> u64, title: &str, out: &mut String| {
        let mut t = Tally::default();
        t.add(lines, by);
        let mut v: Vec<(&String, u64)> = t
            .rows
            .iter()
            .map(|(k, c)| (k, field(c)))
            .filter(|(_, n)| *n > 0)
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let _ = writeln!(out, "\n{title}:");
        if v.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for (k, n) in v.into_iter().take(10) {
            let _ = writeln!(out, "  {n:>6}  {k}");
        }
    };
    top(
        By::SenderDomain,
        |c| c.received,
        "Top sender domains (messages received)",
        &mut out,
    );
    top(
        By::RecipientDomain,
        |c| c.delivered,
        "Top recipient domains (recipients delivered)",
        &mut out,
    );
    top(
        By::Mailbox,
        |c| c.delivered,
        "Top mailboxes (messages stored)",
        &mut out,
    );
    let reasons = |m: &BTreeMap<String, u64>, title: &str, out: &mut String| {
        let mut v: Vec<(&String, &u64)> = m.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let _ = writeln!(out, "\n{title}:");
        if v.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for (k, n) in v.into_iter().take(10) {
            let _ = writeln!(out, "  {n:>6}  {k}");
        }
    };
    reasons(&total.reject_reasons, "Top reasons for refusals", &mut out);
    reasons(
        &total.failure_reasons,
        "Deferrals and bounces by reason",
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(daemon: &str, time: &str, text: &str) -> Line {
        Line {
            time: time.into(),
            daemon: daemon.into(),
            level: "INFO".into(),
            text: text.into(),
        }
    }

    #[test]
    fn fields_with_spans_and_quoted_values() {
        let (m, f) = fields(
            r#"session{listener=mx peer=127.0.0.1}: recipient refused rcpt=x@y.test result="550 5.1.1 <x@y.test>: no \"such\" user""#,
        );
        assert_eq!(m, "recipient refused");
        assert_eq!(f["listener"], "mx");
        assert_eq!(f["result"], r#"550 5.1.1 <x@y.test>: no "such" user"#);
        let (m, f) = fields("picked up from=<a@b.test> nrcpt=2 queue=incoming");
        assert_eq!(
            (m.as_str(), f["from"].as_str(), f["nrcpt"].as_str()),
            ("picked up", "<a@b.test>", "2")
        );
    }

    #[test]
    fn a_day_tallied() {
        let lines = vec![
            line(
                "facteur-smtpd",
                "2026-12-05T08:10:00Z",
                "session{listener=mx}: queued from=a@news.test nrcpt=2 queue_id=Q1 size=100 user=\"\"",
            ),
            line(
                "facteur-qmgr",
                "2026-12-05T08:10:01Z",
                "delivered queue_id=Q1 rcpt=u@local.test status=delivered relay=unix:/run/lmtp.sock reply=\"250 2.0.0 ok\"",
            ),
            line(
                "facteur-qmgr",
                "2026-12-05T08:10:02Z",
                "deferred queue_id=Q1 rcpt=v@far.test status=deferred relay=mx.far.test reply=\"451 4.7.1 try later\"",
            ),
            line(
                "facteur-lmtpd",
                "2026-12-05T08:10:01Z",
                "delivered queue_id=Q1 mailbox=u@local.test folder=INBOX size=120",
            ),
            line(
                "facteur-smtpd",
                "2026-12-05T09:00:00Z",
                "session{listener=mx}: recipient refused rcpt=nobody@local.test result=\"550 5.1.1 <nobody@local.test>: unknown\"",
            ),
        ];
        let mut t = Tally::default();
        t.add(&lines, By::SenderDomain);
        let c = &t.rows["news.test"];
        assert_eq!(
            (c.received, c.received_bytes, c.delivered, c.deferred),
            (1, 100, 1, 1)
        );
        let mut t = Tally::default();
        t.add(&lines, By::RecipientDomain);
        assert_eq!(t.rows["far.test"].last_error, "451 4.7.1 try later");
        let mut t = Tally::default();
        t.add(&lines, By::Hour);
        assert_eq!(t.rows["2026-12-05 08:00"].received, 1);
        assert_eq!(t.rows["2026-12-05 09:00"].rejected, 1);
        let mut t = Tally::default();
        t.add(&lines, By::Mailbox);
        assert_eq!(t.rows["u@local.test"].delivered, 1);
        let r = report(&lines, "2026-12-05");
        assert!(
            r.contains("received          1") && r.contains("rejected          1"),
            "{r}"
        );
        assert!(r.contains("550 5.1.1 <nobody@local.test>: unknown"), "{r}");
        assert!(r.contains("451 4.7.1 try later"), "{r}");
    }

    #[test]
    fn sendmail_pickups_are_received_smtpd_ones_counted_once() {
        let lines = vec![
            line(
                "facteur-qmgr",
                "2026-12-05T08:00:00Z",
                "picked up queue_id=S1 from=<root@host.test> size=151 nrcpt=1 queue=\"maildrop\" user=\"root\"",
            ),
            line(
                "facteur-smtpd",
                "2026-12-05T08:10:00Z",
                "session{listener=mx}: queued from=a@news.test nrcpt=1 queue_id=Q1 size=100 user=\"\"",
            ),
            line(
                "facteur-qmgr",
                "2026-12-05T08:10:00Z",
                "picked up queue_id=Q1 from=<a@news.test> size=100 nrcpt=1 queue=\"incoming\"",
            ),
        ];
        let mut t = Tally::default();
        t.add(&lines, By::SenderDomain);
        assert_eq!(t.rows["host.test"].received, 1);
        assert_eq!(t.rows["news.test"].received, 1);
        assert_eq!(t.rows.len(), 2);
    }
}
