//! vacation (RFC 5230, RFC 6131): whether to answer, and the answer.
//!
//! The checks of RFC 5230 §4.5-§5: no answer to the null sender, to
//! mailing lists and bulk mail (List-*, Precedence), to automatic mail
//! (Auto-Submitted other than "no"), to system senders (MAILER-DAEMON,
//! owner-*, *-request, LISTSERV, majordomo), to the user's own addresses,
//! or to mail that does not name one of the user's addresses in To, Cc,
//! Bcc or their Resent- forms; and not twice to one sender within the
//! period (the host keeps that record). The reply goes out with the null
//! reverse-path (§5.1), `Auto-Submitted: auto-replied` (§5.2),
//! In-Reply-To and References (§5.8), and "Auto: " before the original
//! subject when the script gave none (§4.3).

use super::{Host, RunError, Runtime, address, date};
use crate::ir::Vacation;

/// Longest default subject ("Auto: " and the original's), characters.
pub const MAX_SUBJECT: usize = 256;

/// The answer vacation would send.
#[derive(Debug, Clone, PartialEq)]
pub struct VacationReply {
    /// The original sender: the reply's only recipient.
    pub to: String,
    /// The reply's From address.
    pub from: String,
    pub handle: String,
    /// Seconds within which the same sender gets no second reply.
    pub period: u64,
    /// The reply message (CRLF lines), to be queued with MAIL FROM:<>.
    pub message: Vec<u8>,
    /// Why no reply is sent, when the checks said so.
    pub skip: Option<String>,
    /// The reply's envelope sender: "" (the null path) unless the site
    /// sends from the recipient.
    pub envelope_from: String,
}

/// FNV-1a, 64 bits: a stable short digest for handles and Message-IDs.
pub fn fnv(parts: &[&str]) -> u64 {
    let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    fnv_bytes(&bytes)
}

/// [`fnv`] of byte strings (each part followed by a NUL).
pub fn fnv_bytes(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in p.iter().chain(std::iter::once(&0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn system_sender(addr: &str) -> bool {
    let (local, _) = address::split(addr);
    let l = local.to_ascii_lowercase();
    l == "mailer-daemon"
        || l == "listserv"
        || l == "majordomo"
        || l.starts_with("owner-")
        || l.ends_with("-request")
        || l.starts_with("mailer-daemon")
}

impl Runtime<'_> {
    fn skip_reason(&mut self, user: &[String]) -> Option<String> {
        let sender = self.envelope.from.clone();
        if sender.is_empty() {
            return Some("the sender is the null address".into());
        }
        if system_sender(&sender) {
            return Some(format!("{sender} is a system address"));
        }
        if user.iter().any(|u| u.eq_ignore_ascii_case(&sender)) {
            return Some("the message comes from the user".into());
        }
        if let Some(a) = self.message.values("auto-submitted").first()
            && !a.trim().eq_ignore_ascii_case("no")
        {
            return Some("the message is automatic (Auto-Submitted)".into());
        }
        for p in self.message.values("precedence") {
            if ["bulk", "list", "junk"]
                .iter()
                .any(|x| p.trim().eq_ignore_ascii_case(x))
            {
                return Some(format!("Precedence: {}", p.trim()));
            }
        }
        // Microsoft's way of asking for no automatic replies
        for v in self.message.values("x-auto-response-suppress") {
            if v.split(',')
                .any(|x| matches!(x.trim().to_ascii_lowercase().as_str(), "all" | "oof"))
            {
                return Some("the sender asked for no automatic replies".into());
            }
        }
        let list = [
            "list-id",
            "list-help",
            "list-subscribe",
            "list-unsubscribe",
            "list-post",
            "list-owner",
            "list-archive",
        ];
        if list.iter().any(|h| self.message.exists(h)) {
            return Some("the message comes from a mailing list".into());
        }
        if !self.limits.vacation.dont_check_recipient && self.named_address(user).is_none() {
            return Some("none of the user's addresses is in To, Cc or Bcc".into());
        }
        None
    }

    /// The first of the user's addresses (in the order given) that the
    /// message's To, Cc, Bcc or Resent- fields name.
    fn named_address(&mut self, user: &[String]) -> Option<String> {
        let mut named: Vec<String> = Vec::new();
        for h in ["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"] {
            let fields: Vec<_> = self.message.named(h);
            for f in fields {
                named.extend(f.addresses().iter().cloned());
            }
        }
        user.iter()
            .find(|u| named.iter().any(|a| a.eq_ignore_ascii_case(u)))
            .cloned()
    }

    /// The reply's To: the sender's own From (or Sender) field when its
    /// address is the envelope sender (so the reply shows their name),
    /// else the bare envelope sender.
    fn reply_to_field(&mut self) -> String {
        let sender = self.envelope.from.clone();
        // ignoring the envelope, Sender (who sent it) before From (Pigeonhole)
        let any = self.limits.vacation.to_header_ignore_envelope;
        let order = if any {
            ["sender", "from"]
        } else {
            ["from", "sender"]
        };
        for h in order {
            let fields: Vec<_> = self.message.named(h);
            for f in fields {
                if let [a] = f.addresses()
                    && (any || a.eq_ignore_ascii_case(&sender))
                {
                    return f.text().to_string();
                }
            }
        }
        format!("<{sender}>")
    }

    pub(crate) fn vacation(&mut self, host: &mut dyn Host, v: &Vacation) -> Result<(), RunError> {
        let reason = self.expand(&v.reason);
        let subject = v.subject.as_ref().map(|s| self.expand(s));
        let from = match &v.from {
            Some(f) => {
                let f = self.expand(f);
                if address::parse_one(&f).is_none() {
                    return Err(self.fail(format!("vacation: invalid :from address \"{f}\"")));
                }
                Some(f)
            }
            None => None,
        };
        // the recipient first, then :addresses, :from and the host's list
        // (the original recipient is not one: mail to an alias or a list
        // the user is on is not personal mail)
        let mut user: Vec<String> = vec![self.envelope.to.clone()];
        if self.limits.vacation.use_original_recipient
            && let Some(o) = self.envelope.orig_to.clone()
        {
            user.push(o);
        }
        user.extend(self.expand_list(&v.addresses));
        if let Some(f) = from.as_deref().and_then(address::parse_one) {
            user.push(f);
        }
        user.extend(host.user_addresses());
        user.retain(|u| !u.is_empty());
        let handle = match &v.handle {
            Some(h) => self.expand(h),
            None => format!(
                "{:016x}",
                fnv(&[
                    &reason,
                    subject.as_deref().unwrap_or(""),
                    from.as_deref().unwrap_or(""),
                    if v.mime { "mime" } else { "" }
                ])
            ),
        };
        let (default, min, max) = host.vacation_period();
        let period = match v.period {
            Some(0) => 0,
            Some(p) => p.clamp(min, max),
            None => default,
        };
        let sender = self.envelope.from.clone();
        let mut skip = self.skip_reason(&user);
        if skip.is_none() && host.vacation_sent(&sender, &handle, period) {
            skip = Some(format!("{sender} was answered within the period"));
        }
        let from_addr = from
            .clone()
            .or_else(|| self.named_address(&user))
            .unwrap_or_else(|| self.envelope.to.clone());
        let message = self.reply(host, &reason, subject, &from_addr, v.mime);
        self.add_action(super::Action::Vacation(Box::new(VacationReply {
            to: sender,
            from: address::parse_one(&from_addr).unwrap_or(from_addr),
            handle,
            period,
            message,
            skip,
            envelope_from: if self.limits.vacation.send_from_recipient {
                self.envelope.to.clone()
            } else {
                String::new()
            },
        })))
    }

    fn reply(
        &mut self,
        host: &mut dyn Host,
        reason: &str,
        subject: Option<String>,
        from: &str,
        mime: bool,
    ) -> Vec<u8> {
        use facteur_imap_message::fields::encode;
        let now = host.now();
        let offset = host.local_offset();
        let hostname = host.hostname();
        let orig_subject = self
            .message
            .values("subject")
            .into_iter()
            .next()
            .unwrap_or_default();
        let opts = &self.limits.vacation;
        let subject = subject.unwrap_or_else(|| {
            let s = if orig_subject.trim().is_empty() {
                opts.default_subject.clone()
            } else {
                opts.default_subject_template
                    .replace("%{subject}", &orig_subject)
                    .replace("%$", &orig_subject)
            };
            // at most max_subject_codepoints characters
            let max = opts.max_subject_codepoints.clamp(1, MAX_SUBJECT * 4);
            if s.chars().count() > max {
                let mut cut: String = s.chars().take(max - 1).collect();
                cut.push('\u{2026}');
                cut
            } else {
                s
            }
        });
        let to_field = self.reply_to_field();
        let msgid = self.message.values("message-id").into_iter().next();
        let refs = self.message.values("references").into_iter().next();
        let mut h = String::new();
        let mut field = |name: &str, value: &str| {
            h.push_str(name);
            h.push_str(": ");
            h.push_str(&super::message::fold_value(value));
            h.push_str("\r\n");
        };
        field("From", &encode(from));
        field("To", &to_field);
        field("Subject", &encode(&subject));
        let d = date::part(date::Moment { epoch: now, offset }, "std11").unwrap_or_default();
        field("Date", &d);
        let id = fnv(&[&now.to_string(), &self.envelope.from, reason]);
        field("Message-ID", &format!("<vacation.{id:016x}@{hostname}>"));
        if let Some(m) = &msgid {
            field("In-Reply-To", m);
            let r = match &refs {
                Some(r) => format!("{r} {m}"),
                None => m.clone(),
            };
            field("References", &r);
        }
        field("Auto-Submitted", "auto-replied (vacation)");
        field("Precedence", "bulk");
        field("MIME-Version", "1.0");
        let mut out = h.into_bytes();
        if mime {
            // the reason is a whole MIME entity: its header, a blank line, its body
            let r = reason.replace("\r\n", "\n").replace('\n', "\r\n");
            out.extend_from_slice(r.as_bytes());
        } else {
            let cte = if reason.is_ascii() { "7bit" } else { "8bit" };
            out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
            out.extend_from_slice(format!("Content-Transfer-Encoding: {cte}\r\n\r\n").as_bytes());
            let r = reason.replace("\r\n", "\n").replace('\n', "\r\n");
            out.extend_from_slice(r.as_bytes());
        }
        if !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}
