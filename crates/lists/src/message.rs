//! The list copy of a post, and what a delivery report says failed: pure
//! functions over a message in network form (CRLF; LF alone is read too).
//!
//! [`list_copy`] keeps the body and every field the author's DKIM
//! signature may cover as they are, and adds the list's fields on top
//! (List-Id, List-Post, List-Help, List-Owner, Precedence), so a signature
//! of the author survives the list. What breaks one is opt-in per list: a
//! subject tag, a Reply-To: to the list; then, with `munge_from` (the
//! default), From: becomes the list's address with the author's name
//! ("Alice via team") and the author goes to Reply-To:, as Mailman does
//! for DMARC, so the copy passes DMARC as the list's mail. List fields of
//! another list the post came through are replaced by ours.
//!
//! Bounds: the header section is read up to [`MAX_HEADER`] bytes; a
//! report is read for at most [`MAX_REPORTED`] recipients.

use crate::List;

/// The largest header section looked at.
pub const MAX_HEADER: usize = 256 * 1024;
/// At most this many failed recipients are taken from one report.
pub const MAX_REPORTED: usize = 100;

/// List fields we set (those of another list are removed).
const LIST_FIELDS: [&str; 8] = [
    "list-id",
    "list-post",
    "list-help",
    "list-owner",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-subscribe",
    "list-archive",
];

/// The header section split into fields (each with its continuation
/// lines and line ends), and where the body starts.
fn fields(msg: &[u8]) -> (Vec<&[u8]>, usize) {
    let limit = msg.len().min(MAX_HEADER);
    let mut out: Vec<&[u8]> = Vec::new();
    let mut pos = 0;
    let mut start = 0;
    while pos < limit {
        let end = msg[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(msg.len(), |e| pos + e + 1);
        let line = &msg[pos..end];
        if line == b"\r\n" || line == b"\n" {
            if pos > start {
                out.push(&msg[start..pos]);
            }
            return (out, end);
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) && pos > start {
            out.push(&msg[start..pos]);
            start = pos;
        }
        pos = end;
    }
    if pos > start {
        out.push(&msg[start..pos]);
    }
    (out, pos.min(msg.len()))
}

fn name_of(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == b':').unwrap_or(0);
    String::from_utf8_lossy(&field[..end])
        .trim()
        .to_ascii_lowercase()
}

/// A field's value, unfolded, without its name.
fn value_of(field: &[u8]) -> String {
    let start = field.iter().position(|&b| b == b':').map_or(0, |p| p + 1);
    let v = String::from_utf8_lossy(&field[start..]);
    v.split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn first_value(msg: &[u8], name: &str) -> Option<String> {
    fields(msg)
        .0
        .into_iter()
        .find(|f| name_of(f) == name)
        .map(value_of)
}

/// The Subject: as written (unfolded, at most 200 characters), for the
/// moderation list.
pub fn subject(msg: &[u8]) -> String {
    let s = first_value(msg, "subject").unwrap_or_default();
    s.chars().take(200).collect()
}

/// The From: field's first address, lower-case; "" when none.
pub fn from_address(msg: &[u8]) -> String {
    let (f, _) = fields(msg);
    let head: Vec<u8> = f.concat();
    let parsed = mail_parser::MessageParser::new().parse_headers(&head[..]);
    parsed
        .as_ref()
        .and_then(|m| m.from())
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

/// The author's display name in From:, else the address's local part.
fn author_name(msg: &[u8]) -> String {
    let (f, _) = fields(msg);
    let head: Vec<u8> = f.concat();
    let parsed = mail_parser::MessageParser::new().parse_headers(&head[..]);
    let first = parsed
        .as_ref()
        .and_then(|m| m.from())
        .and_then(|a| a.first());
    let name = first.and_then(|a| a.name()).map(str::to_string);
    let addr = first.and_then(|a| a.address()).unwrap_or("");
    name.filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| addr.split('@').next().unwrap_or("").to_string())
}

/// Whether the post already went through this list (its List-Id names it).
pub fn carries_list_id(msg: &[u8], list_id: &str) -> bool {
    let want = format!("<{}>", list_id.to_ascii_lowercase());
    fields(msg)
        .0
        .into_iter()
        .filter(|f| name_of(f) == "list-id")
        .any(|f| value_of(f).to_ascii_lowercase().contains(&want))
}

/// A string made safe for a quoted display name.
fn quoted(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
        .take(100)
        .collect();
    format!("\"{clean}\"")
}

/// The copy of `msg` the members get (see the module).
pub fn list_copy(list: &List, msg: &[u8]) -> Vec<u8> {
    let (fs, body_at) = fields(msg);
    let crlf = !msg
        .windows(2)
        .take(MAX_HEADER)
        .any(|w| w[1] == b'\n' && w[0] != b'\r');
    let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let tag = list.subject_tag.trim();
    let subject = first_value(msg, "subject").unwrap_or_default();
    let retag = !tag.is_empty() && !subject.contains(&format!("[{tag}]"));
    let munge = list.munge_from && (retag || list.reply_to_list);
    let author = first_value(msg, "from").unwrap_or_default();

    let mut out = Vec::with_capacity(msg.len() + 512);
    let mut add = |name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(nl);
    };
    add("List-Id", &format!("<{}>", list.list_id()));
    add("List-Post", &format!("<mailto:{}>", list.address));
    add(
        "List-Help",
        &format!("<mailto:{}?subject=help>", list.role_address("request")),
    );
    if !list.owner.is_empty() {
        add(
            "List-Owner",
            &format!("<mailto:{}>", list.role_address("owner")),
        );
    }
    add("Precedence", "list");
    if retag {
        add("Subject", &format!("[{tag}] {subject}"));
    }
    if munge {
        add(
            "From",
            &format!(
                "{} <{}>",
                quoted(&format!("{} via {}", author_name(msg), list.name())),
                list.address
            ),
        );
    }
    if list.reply_to_list {
        add("Reply-To", &format!("<{}>", list.address));
    } else if munge && !author.is_empty() {
        add("Reply-To", &author);
    }
    for f in fs {
        let n = name_of(f);
        let replaced = LIST_FIELDS.contains(&n.as_str())
            || n == "precedence"
            || (retag && n == "subject")
            || (munge && n == "from")
            || ((list.reply_to_list || munge) && n == "reply-to");
        if !replaced {
            out.extend_from_slice(f);
        }
    }
    out.extend_from_slice(nl);
    out.extend_from_slice(&msg[body_at.min(msg.len())..]);
    out
}

/// The recipients a delivery report (RFC 3464) says failed: for each
/// per-recipient group with `Action: failed`, its Final-Recipient and
/// Original-Recipient addresses, lower-case (the caller matches either).
pub fn failed_recipients(report: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(report);
    let mut out: Vec<String> = Vec::new();
    let mut recipient: Vec<String> = Vec::new();
    let mut failed = false;
    let flush = |recipient: &mut Vec<String>, failed: &mut bool, out: &mut Vec<String>| {
        for r in recipient.drain(..) {
            if *failed && !out.contains(&r) && out.len() < MAX_REPORTED {
                out.push(r);
            }
        }
        *failed = false;
    };
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            flush(&mut recipient, &mut failed, &mut out);
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "final-recipient" | "original-recipient" => {
                let addr = value
                    .split_once(';')
                    .map_or(value, |(_, a)| a)
                    .trim()
                    .trim_matches(['<', '>'])
                    .to_ascii_lowercase();
                if facteur_mail::Address::parse(&addr).is_ok() && recipient.len() < 2 {
                    recipient.push(addr);
                }
            }
            "action" => failed = value.eq_ignore_ascii_case("failed"),
            _ => {}
        }
    }
    flush(&mut recipient, &mut failed, &mut out);
    out
}
