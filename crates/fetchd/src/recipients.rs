//! Whom a fetched message is for, when one remote mailbox collects mail
//! for several people ("multidrop", a provider's catch-all): the addresses
//! in `Delivered-To:`, `X-Original-To:`, `Envelope-To:` and the first
//! `Received: ... for <addr>` that are local and reach someone here; the
//! fallback mailbox when none does. And the envelope sender a fetched
//! message keeps (its `Return-Path:`).
//!
//! Pure over the header section (read up to 256 KiB) and the directory.

use facteur_directory::{Directory, Hop, resolve_for};
use facteur_mail::Address;

const MAX_HEADER: usize = 256 * 1024;
/// At most this many recipients are taken from one message.
pub const MAX_RECIPIENTS: usize = 50;

/// The header fields (name lower-case, value unfolded).
fn header(msg: &[u8]) -> Vec<(String, String)> {
    let head = &msg[..msg.len().min(MAX_HEADER)];
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// Addresses written as `<a@b>` or bare `a@b` in a field value.
fn addresses(v: &str) -> Vec<String> {
    v.split([',', ' ', '\t', ';'])
        .map(|w| w.trim().trim_start_matches('<').trim_end_matches('>'))
        .filter(|w| w.contains('@'))
        .filter_map(|w| Address::parse(w).ok())
        .map(|a| a.key())
        .collect()
}

/// The address of `Received: ... for <addr>`.
fn received_for(v: &str) -> Option<String> {
    let i = v.to_ascii_lowercase().find(" for ")?;
    let rest = v[i + 5..].trim_start();
    let end = rest.find([';', ' ', '\t']).unwrap_or(rest.len());
    addresses(&rest[..end]).into_iter().next()
}

/// The local recipients a message names (see the module), else
/// `fallback`. `mailbox` (the remote login, which the remote server may
/// have written in Delivered-To:) is never one of them.
pub fn multidrop(msg: &[u8], dir: &dyn Directory, fallback: &str, mailbox: &str) -> Vec<String> {
    let mut candidates = Vec::new();
    let mut first_received = true;
    for (name, value) in header(msg) {
        match name.as_str() {
            "delivered-to" | "x-original-to" | "envelope-to" => {
                candidates.extend(addresses(&value));
            }
            "received" if first_received => {
                first_received = false;
                candidates.extend(received_for(&value));
            }
            _ => {}
        }
    }
    let mut out: Vec<String> = Vec::new();
    for c in candidates {
        if out.len() >= MAX_RECIPIENTS || out.contains(&c) || c.eq_ignore_ascii_case(mailbox) {
            continue;
        }
        let Ok(a) = Address::parse(&c) else { continue };
        let local = dir.is_local_domain(a.domain()).unwrap_or(false);
        if local && resolve_for(dir, &a, "+", Hop::Accept).is_ok() {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push(fallback.to_string());
    }
    out
}

/// The address of the message's `Return-Path:` (`None` for `<>` or none).
pub fn return_path(msg: &[u8]) -> Option<String> {
    let (_, v) = header(msg).into_iter().find(|(n, _)| n == "return-path")?;
    addresses(&v).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use facteur_directory::SqliteDirectory;

    fn dir() -> SqliteDirectory {
        let d = SqliteDirectory::open_in_memory().unwrap();
        d.add_domain("example.org").unwrap();
        for u in ["alice", "bob", "carol"] {
            d.add_user(&format!("{u}@example.org"), "x", 0, 0).unwrap();
        }
        d
    }

    #[test]
    fn recipients_from_the_header() {
        let d = dir();
        let msg = b"Return-Path: <sender@far.test>\r\nReceived: from mx.provider.test\r\n\tby pop.provider.test for <carol@example.org>; Mon, 1 Jan 2026\r\n\
Received: from x by y for <bob@example.org>;\r\nDelivered-To: Alice@example.org\r\nX-Original-To: stranger@other.test, nobody@example.org\r\n\
Envelope-To: alice@example.org\r\nSubject: hi\r\n\r\nDelivered-To: bob@example.org\r\n";
        assert_eq!(
            multidrop(msg, &d, "catchall@example.org", "x@provider.test"),
            ["carol@example.org", "alice@example.org"]
        );
        assert_eq!(
            multidrop(msg, &d, "catchall@example.org", "Alice@example.org"),
            ["carol@example.org"]
        );
        assert_eq!(return_path(msg).as_deref(), Some("sender@far.test"));
        let none = b"Subject: no one\r\nX-Original-To: x@other.test\r\n\r\nbody";
        assert_eq!(
            multidrop(none, &d, "alice@example.org", ""),
            ["alice@example.org"]
        );
        assert_eq!(return_path(b"Return-Path: <>\r\n\r\n"), None);
        assert_eq!(multidrop(b"", &d, "f@example.org", ""), ["f@example.org"]);
    }
}
