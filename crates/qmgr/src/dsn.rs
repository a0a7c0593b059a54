//! Delivery status notifications (bounces), RFC 3464 / RFC 3461 / RFC 6522.
//!
//! Offers [`reported`] (which recipients of a message a DSN must cover,
//! honouring NOTIFY and the null sender), [`read_original`] (the part of the
//! original message to return: whole, or headers only for RET=HDRS or a large
//! message) and [`build`] (the DSN itself, a `multipart/report;
//! report-type=delivery-status` with a human-readable `text/plain` part, a
//! `message/delivery-status` part and the original as `message/rfc822` or
//! `text/rfc822-headers`). Built with mail-builder; pure code apart from
//! reading the original.
//!
//! Guarantees: a message with the null reverse-path never gets a DSN (RFC
//! 5321 §6.1: that is how bounce loops are avoided), nor a recipient with
//! NOTIFY=NEVER or with NOTIFY given without FAILURE (for failures) or
//! without SUCCESS (for deliveries). Memory is bounded: at most
//! [`MAX_RETURNED`] bytes of the original are returned in full, beyond that
//! only its header (itself cut at [`MAX_HEADER`]).
//!
//! The DSN is sent from `MAILER-DAEMON@<hostname>` with the null envelope
//! sender (the queue code does that), and carries `Auto-Submitted:
//! auto-replied` (RFC 3834).
//!
//! Security: every value that comes from the envelope or a peer's reply is
//! put on one line (control characters replaced) and shortened, so it cannot
//! add header fields or DSN fields.

use facteur_mail::dsn::{RcptStatus, Ret};
use facteur_spool::Envelope;
use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use std::io::{self, Read};

/// Originals up to this size are returned whole (RET=FULL or no RET).
pub const MAX_RETURNED: u64 = 1024 * 1024;
/// The returned header is cut here.
pub const MAX_HEADER: usize = 64 * 1024;
/// Longest diagnostic kept in a DSN field.
const MAX_FIELD: usize = 900;

/// What a DSN says about one recipient (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delivered,
    /// Still queued after `delay_warning` (a "delayed" notice).
    Delayed,
}

/// The recipients (indices into `env.recipients`) a DSN must report, with
/// their action. Empty for the null sender.
pub fn reported(env: &Envelope) -> Vec<(usize, Action)> {
    if env.sender.is_empty() {
        return Vec::new();
    }
    env.recipients
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let n = r.notify;
            if n.never {
                return None;
            }
            let given = n.success || n.failure || n.delay;
            match r.status {
                RcptStatus::Bounced if !given || n.failure => Some((i, Action::Failed)),
                RcptStatus::Delivered if n.success => Some((i, Action::Delivered)),
                _ => None,
            }
        })
        .collect()
}

/// The recipients a "delayed" notice covers: not final yet, with NOTIFY
/// not given (our default is FAILURE,DELAY, RFC 3461 §4.1) or holding
/// DELAY. Empty for the null sender.
pub fn reported_delayed(env: &Envelope) -> Vec<(usize, Action)> {
    if env.sender.is_empty() {
        return Vec::new();
    }
    env.recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            let n = r.notify;
            let given = n.success || n.failure || n.delay || n.never;
            !r.status.is_final() && (!given || n.delay)
        })
        .map(|(i, _)| (i, Action::Delayed))
        .collect()
}

/// The returned part of the original message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Original {
    /// The whole message (`message/rfc822`).
    Full(Vec<u8>),
    /// Its header only (`text/rfc822-headers`).
    Headers(Vec<u8>),
}

/// Reads what a DSN returns of a message of `size` bytes.
pub fn read_original(r: impl Read, ret: Option<Ret>, size: u64) -> io::Result<Original> {
    if ret != Some(Ret::Hdrs) && size <= MAX_RETURNED {
        let mut v = Vec::with_capacity(size as usize);
        r.take(MAX_RETURNED + 1).read_to_end(&mut v)?;
        if v.len() as u64 <= MAX_RETURNED {
            return Ok(Original::Full(v));
        }
        return Ok(Original::Headers(header_of(&v)));
    }
    let mut v = Vec::new();
    r.take(MAX_HEADER as u64).read_to_end(&mut v)?;
    Ok(Original::Headers(header_of(&v)))
}

/// The header block: up to the first empty line (exclusive), cut at a line
/// end within [`MAX_HEADER`].
fn header_of(msg: &[u8]) -> Vec<u8> {
    let end = memchr::memmem::find(msg, b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| memchr::memmem::find(msg, b"\n\n").map(|p| p + 1))
        .unwrap_or(msg.len())
        .min(MAX_HEADER);
    let mut h = msg[..end].to_vec();
    if !h.ends_with(b"\n") {
        // Cut mid-line: drop the partial line.
        let keep = memchr::memrchr(b'\n', &h).map(|p| p + 1).unwrap_or(0);
        h.truncate(keep);
    }
    h
}

/// One line, no control characters, at most `max` bytes (on a char boundary).
fn one_line(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// The RFC 3463 status in a reply (`550 5.1.1 ...` or `4.4.7 ...`), or the
/// default for the action.
pub fn status_of(reply: Option<&str>, action: Action) -> String {
    let found = reply.and_then(|r| {
        r.split_whitespace()
            .take(2)
            .find_map(|w| facteur_smtp_codec::reply::parse_enhanced(w.as_bytes()))
    });
    match (found, action) {
        (Some((c, s, d)), Action::Failed) if c != 2 => format!("{c}.{s}.{d}"),
        (Some((2, s, d)), Action::Delivered) => format!("2.{s}.{d}"),
        (Some((4, s, d)), Action::Delayed) => format!("4.{s}.{d}"),
        (_, Action::Failed) => "5.0.0".into(),
        (_, Action::Delivered) => "2.0.0".into(),
        (_, Action::Delayed) => "4.0.0".into(),
    }
}

/// The inputs of a DSN besides the envelope.
#[derive(Debug)]
pub struct DsnContext<'a> {
    pub hostname: &'a str,
    /// The original's queue id (for the text and the logs).
    pub queue_id: &'a str,
    /// Unix seconds, for Date:.
    pub now: i64,
    /// A unique Message-ID left part.
    pub unique: &'a str,
}

/// Builds the DSN for `env`, or `None` when [`reported`] is empty.
pub fn build(ctx: &DsnContext<'_>, env: &Envelope, original: Original) -> Option<Vec<u8>> {
    build_report(ctx, env, original, reported(env), None)
}

/// Builds the "delayed" notice for `env` (RFC 3464 `Action: delayed`, with
/// `Will-Retry-Until`), or `None` when [`reported_delayed`] is empty.
pub fn build_delayed(
    ctx: &DsnContext<'_>,
    env: &Envelope,
    original: Original,
    retry_until: i64,
) -> Option<Vec<u8>> {
    build_report(ctx, env, original, reported_delayed(env), Some(retry_until))
}

fn build_report(
    ctx: &DsnContext<'_>,
    env: &Envelope,
    original: Original,
    report: Vec<(usize, Action)>,
    retry_until: Option<i64>,
) -> Option<Vec<u8>> {
    if report.is_empty() {
        return None;
    }
    let failed = report.iter().any(|(_, a)| *a == Action::Failed);
    let delayed = retry_until.is_some();
    let host = one_line(ctx.hostname, 255);

    // The human-readable part.
    let mut text = format!("This is the mail system at host {host}.\r\n\r\n",);
    if failed {
        text.push_str(
            "I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients. It's attached below.\r\n\r\n",
        );
    } else if delayed {
        text.push_str(
            "Your message could not be delivered yet to the recipients below.\r\n\
             It is still queued, and delivery will be retried; you do not need\r\n\
             to send it again. You will be told if it finally fails.\r\n\r\n",
        );
    } else {
        text.push_str("Your message was successfully delivered to the recipients below.\r\n\r\n");
    }
    for &(i, action) in &report {
        let r = &env.recipients[i];
        let what = match action {
            Action::Failed => "failed",
            Action::Delivered => "delivered",
            Action::Delayed => "delayed",
        };
        text.push_str(&format!(
            "<{}>: {what}: {}\r\n",
            one_line(&r.address, 300),
            one_line(
                r.last_reply.as_deref().unwrap_or("no further information"),
                MAX_FIELD
            )
        ));
    }
    text.push_str(&format!(
        "\r\n(queue id {})\r\n",
        one_line(ctx.queue_id, 64)
    ));

    // The machine-readable part (RFC 3464 §2.2, §2.3).
    let mut ds = format!("Reporting-MTA: dns; {host}\r\n");
    if let Some(envid) = &env.envid {
        ds.push_str(&format!(
            "Original-Envelope-Id: {}\r\n",
            one_line(envid, 100)
        ));
    }
    ds.push_str(&format!(
        "Arrival-Date: {}\r\n",
        Date::new(env.arrival).to_rfc822()
    ));
    for &(i, action) in &report {
        let r = &env.recipients[i];
        ds.push_str("\r\n");
        ds.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            one_line(&r.address, 300)
        ));
        if let Some(o) = &r.orcpt {
            let o = one_line(o, 300);
            // ORCPT is "addr-type;xtext" already; add the type if missing.
            if o.contains(';') {
                ds.push_str(&format!("Original-Recipient: {o}\r\n"));
            } else {
                ds.push_str(&format!("Original-Recipient: rfc822;{o}\r\n"));
            }
        }
        let act = match action {
            Action::Failed => "failed",
            Action::Delivered => "delivered",
            Action::Delayed => "delayed",
        };
        let status = status_of(r.last_reply.as_deref(), action);
        ds.push_str(&format!("Action: {act}\r\nStatus: {status}\r\n"));
        if let Some(u) = retry_until {
            ds.push_str(&format!(
                "Will-Retry-Until: {}\r\n",
                Date::new(u).to_rfc822()
            ));
        }
        if let Some(reply) = &r.last_reply {
            let reply = one_line(reply, MAX_FIELD);
            let is_smtp = reply
                .as_bytes()
                .get(..3)
                .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
            let kind = if is_smtp { "smtp" } else { "x-facteur" };
            ds.push_str(&format!("Diagnostic-Code: {kind}; {reply}\r\n"));
        }
    }

    let returned = match original {
        // message/rfc822 may only be 7bit, 8bit or binary (RFC 2046
        // §5.2.1); 8bit covers 7bit content too.
        Original::Full(m) => {
            MimePart::new(ContentType::new("message/rfc822"), m).transfer_encoding("8bit")
        }
        Original::Headers(h) => {
            MimePart::new(ContentType::new("text/rfc822-headers"), h).transfer_encoding("8bit")
        }
    };
    let report_part = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new(
                ContentType::new("text/plain").attribute("charset", "utf-8"),
                text,
            ),
            MimePart::new(ContentType::new("message/delivery-status"), ds.into_bytes())
                .transfer_encoding("7bit"),
            returned,
        ],
    );
    let subject = if failed {
        "Undelivered Mail Returned to Sender"
    } else if delayed {
        "Delayed Mail (still being retried)"
    } else {
        "Successful Mail Delivery Report"
    };
    let from = format!("MAILER-DAEMON@{host}");
    let msg = MessageBuilder::new()
        .from(("Mail Delivery System".to_string(), from))
        // The queue-file reader refuses a sender with a control character;
        // this does not rely on it (found by fuzz/fuzz_targets/dsn.rs).
        .to(one_line(&env.sender, 300))
        .subject(subject)
        .date(Date::new(ctx.now))
        .message_id(format!("{}@{host}", one_line(ctx.unique, 64)))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report_part);
    msg.write_to_vec().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests;
