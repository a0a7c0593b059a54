//! Fuzz target for what content scanners send back to smtpd (facteur-scan)
//! and for the changes they ask (facteur-smtp-server's `edit`): milter
//! packets read in a loop as a session reads them, an HTTP reply and
//! rspamd's JSON, clamd's reply, a milter's reply code; and a message
//! edited as the changes say. Checks: no panic; a packet decoded never
//! claims more bytes than there are; a reply code is 4xx/5xx and one
//! line; the edited message keeps the body when no body change is asked.

#![no_main]

use facteur_scan::milter::codec;
use facteur_smtp_server::edit::{Edit, apply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 4 {
        0 => {
            let mut buf = rest;
            while let Ok(Some((_r, n))) = codec::decode(buf) {
                assert!(n > 4 && n <= buf.len());
                buf = &buf[n..];
            }
            if let Ok(t) = std::str::from_utf8(rest)
                && let Some((code, text)) = codec::reply_code(t)
            {
                assert!((400..600).contains(&code));
                assert!(!text.contains(['\r', '\n']));
            }
        }
        1 => {
            if let Ok(r) = facteur_scan::http::parse_reply(rest) {
                let _ = facteur_scan::rspamd::parse_reply(&r.body);
            }
            let _ = facteur_scan::rspamd::parse_reply(rest);
        }
        2 => {
            let _ = facteur_scan::clamd::parse_reply(rest);
        }
        _ => {
            // The first bytes choose the edits; the rest is the message.
            let (head, msg) = rest.split_at(rest.len().min(4));
            let name = ["Subject", "X-Spam", "Received", "x-a"][usize::from(head.first().copied().unwrap_or(0) % 4)];
            let nth = usize::from(head.get(1).copied().unwrap_or(0) % 4);
            let edits = vec![
                Edit::Remove { name: name.into(), nth },
                Edit::Change { name: "Subject".into(), nth: 1, value: "new".into() },
                Edit::Insert { index: usize::from(head.get(2).copied().unwrap_or(0)), field: "X-New: 1".into() },
            ];
            let mut out = Vec::new();
            if apply(&mut &msg[..], &mut out, &edits).is_ok() {
                // Whatever the header section, the body survives: the
                // header ends at or before the first CRLF CRLF, so what
                // follows it ends the output.
                if let Some(p) = msg.windows(4).position(|w| w == b"\r\n\r\n") {
                    assert!(out.ends_with(&msg[p + 4..]));
                }
            }
        }
    }
});
