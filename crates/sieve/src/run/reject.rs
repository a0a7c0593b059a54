//! The notice `reject` sends back (RFC 5429 §2.1, §6): a message
//! disposition notification (RFC 8098) saying the message was deleted
//! automatically, with the script's reason as its human-readable part and
//! the refused message's header as its third part. It goes to the envelope
//! sender, from the null reverse-path; nothing is sent for a null sender.
//!
//! Pure: the caller gives the time, its host name and a unique token for
//! the boundary and Message-ID, and queues the bytes.

use super::date;
use super::message::fold_value;

/// What the notice is built from.
#[derive(Debug)]
pub struct Rejected<'a> {
    /// The refused message.
    pub message: &'a [u8],
    /// Its envelope recipient (Final-Recipient) and sender (To).
    pub recipient: &'a str,
    pub sender: &'a str,
    pub reason: &'a str,
    /// The notice's From (the postmaster, or the mailer daemon).
    pub from: &'a str,
    pub hostname: &'a str,
    pub now: i64,
    /// Unique per notice (a queue id): boundary and Message-ID.
    pub token: &'a str,
}

/// The notice, CRLF lines; None when the sender is null (never answer
/// `<>`, RFC 5429 §2.1).
pub fn mdn(r: &Rejected<'_>) -> Option<Vec<u8>> {
    if r.sender.is_empty() {
        return None;
    }
    let header_end = facteur_imap_message::fields::body_start(r.message);
    let mut header = &r.message[..header_end];
    // without the blank line that ends it
    if header.ends_with(b"\r\n\r\n") {
        header = &header[..header.len() - 2];
    } else if header.ends_with(b"\n\n") {
        header = &header[..header.len() - 1];
    }
    let subject = facteur_imap_message::fields::header_fields(r.message)
        .find(|(n, _)| n.eq_ignore_ascii_case(b"subject"))
        .map(|(_, v)| facteur_imap_message::fields::decode(v).trim().to_string())
        .unwrap_or_default();
    let msgid = facteur_imap_message::fields::header_fields(r.message)
        .find(|(n, _)| n.eq_ignore_ascii_case(b"message-id"))
        .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string());
    let boundary = format!("reject-{}", r.token);
    let when = date::part(
        date::Moment {
            epoch: r.now,
            offset: 0,
        },
        "std11",
    )
    .unwrap_or_default();
    let subj = facteur_imap_message::fields::encode(&format!("Rejected: {subject}"));
    let mut out = String::new();
    out.push_str(&format!("From: {}\r\n", r.from));
    out.push_str(&format!("To: <{}>\r\n", r.sender));
    out.push_str(&format!("Subject: {}\r\n", fold_value(&subj)));
    out.push_str(&format!("Date: {when}\r\n"));
    out.push_str(&format!(
        "Message-ID: <{}.reject@{}>\r\n",
        r.token, r.hostname
    ));
    if let Some(id) = &msgid {
        out.push_str(&format!("In-Reply-To: {id}\r\n"));
    }
    out.push_str("Auto-Submitted: auto-replied (rejected)\r\n");
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!(
        "Content-Type: multipart/report; report-type=disposition-notification;\r\n boundary=\"{boundary}\"\r\n\r\n"
    ));
    out.push_str("This is a MIME-encapsulated message.\r\n\r\n");
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    );
    out.push_str(&format!(
        "Your message to <{}> was refused by the recipient's filter:\r\n\r\n",
        r.recipient
    ));
    out.push_str(&r.reason.replace("\r\n", "\n").replace('\n', "\r\n"));
    out.push_str("\r\n\r\n");
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str("Content-Type: message/disposition-notification\r\n\r\n");
    out.push_str(&format!("Reporting-UA: {}; facteur Sieve\r\n", r.hostname));
    out.push_str(&format!("Final-Recipient: rfc822; {}\r\n", r.recipient));
    if let Some(id) = &msgid {
        out.push_str(&format!("Original-Message-ID: {id}\r\n"));
    }
    out.push_str("Disposition: automatic-action/MDN-sent-automatically; deleted\r\n\r\n");
    out.push_str(&format!("--{boundary}\r\n"));
    out.push_str("Content-Type: text/rfc822-headers\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(header);
    if !header.ends_with(b"\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice() {
        let r = Rejected {
            message: b"From: a@x.example\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n",
            recipient: "bob@y.example",
            sender: "a@x.example",
            reason: "No thanks.\nBye.",
            from: "Mail Delivery System <MAILER-DAEMON@mx.y.example>",
            hostname: "mx.y.example",
            now: 1_700_000_000,
            token: "Q1",
        };
        let m = String::from_utf8(mdn(&r).expect("a notice")).expect("utf-8");
        assert!(m.contains("To: <a@x.example>\r\n"));
        assert!(m.contains("Subject: Rejected: hi\r\n"));
        assert!(m.contains("report-type=disposition-notification"));
        assert!(m.contains("No thanks.\r\nBye."));
        assert!(m.contains("Disposition: automatic-action/MDN-sent-automatically; deleted"));
        assert!(m.contains("Original-Message-ID: <1@x>"));
        assert!(m.contains("Subject: hi\r\nMessage-ID: <1@x>\r\n\r\n--reject-Q1--"));
        assert!(!m.contains("body\r\n"));
        assert_eq!(mdn(&Rejected { sender: "", ..r }), None);
    }
}
