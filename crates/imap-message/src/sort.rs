//! What SORT and THREAD need of one message (RFC 5256, RFC 5957): the base
//! subject, the first address of a field, the display name, and the ids
//! threads are built from.
//!
//! Pure; nothing panics; each function reads the header block only.
//! Comparators: RFC 5256's keys compare with i;ascii-casemap, so the keys
//! here come ASCII-uppercased; RFC 5957's display keys compare with
//! i;unicode-casemap, approximated by Unicode lower-casing.

use crate::envelope::{Item, decode_text, parse_addresses};
use crate::{Message, header};

/// The base subject (RFC 5256 §2.1), ASCII-uppercased, and whether the
/// extraction removed a reply or forward marker (`Re:`, `Fwd:`, `(fwd)`,
/// `[fwd: ...]`), which THREAD=REFERENCES needs (§4 step 5).
pub fn base_subject(decoded: &str) -> (String, bool) {
    // (1) Encoded words are decoded by the caller; runs of white space
    // (folding included) become one space.
    let mut s = String::with_capacity(decoded.len());
    for w in decoded.split([' ', '\t', '\r', '\n']) {
        if w.is_empty() {
            continue;
        }
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(w);
    }
    let mut reply = false;
    loop {
        // (2) Trailers: "(fwd)" and white space, repeatedly.
        loop {
            let t = s.trim_end_matches(' ').len();
            if t != s.len() {
                s.truncate(t);
            } else if s.len() >= 5 && s.as_bytes()[s.len() - 5..].eq_ignore_ascii_case(b"(fwd)") {
                s.truncate(s.len() - 5);
                reply = true;
            } else {
                break;
            }
        }
        // (3)-(5) Leaders and blobs, until neither matches.
        loop {
            let before = s.len();
            loop {
                if s.starts_with(' ') {
                    s.remove(0);
                } else if let Some(n) = refwd_leader(s.as_bytes()) {
                    s.drain(..n);
                    reply = true;
                } else {
                    break;
                }
            }
            if let Some(n) = blob(s.as_bytes(), 0)
                && n < s.len()
                && !s[n..].trim_matches(' ').is_empty()
            {
                s.drain(..n);
            }
            if s.len() == before {
                break;
            }
        }
        // (6) "[fwd:" ... "]": unwrap and start again at (2).
        if s.len() >= 6 && s.as_bytes()[..5].eq_ignore_ascii_case(b"[fwd:") && s.ends_with(']') {
            s = s[5..s.len() - 1].to_string();
            reply = true;
            continue;
        }
        break;
    }
    s.make_ascii_uppercase();
    (s, reply)
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP` at `at`: the position after it.
fn blob(s: &[u8], at: usize) -> Option<usize> {
    if s.get(at) != Some(&b'[') {
        return None;
    }
    let close = s[at + 1..].iter().position(|&b| b == b']' || b == b'[')?;
    if s[at + 1 + close] != b']' {
        return None;
    }
    let mut i = at + close + 2;
    while s.get(i) == Some(&b' ') {
        i += 1;
    }
    Some(i)
}

/// `*subj-blob subj-refwd`, `subj-refwd = ("re" / ("fw" ["d"])) *WSP
/// [subj-blob] ":"`: its length when `s` starts with one.
fn refwd_leader(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(n) = blob(s, i) {
        i = n;
    }
    let rest = &s[i..];
    let word = if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"fwd") {
        3
    } else if rest.len() >= 2
        && (rest[..2].eq_ignore_ascii_case(b"re") || rest[..2].eq_ignore_ascii_case(b"fw"))
    {
        2
    } else {
        return None;
    };
    i += word;
    while s.get(i) == Some(&b' ') {
        i += 1;
    }
    if let Some(n) = blob(s, i) {
        i = n;
    }
    (s.get(i) == Some(&b':')).then_some(i + 1)
}

/// The ids a message is threaded by (RFC 5256 §4 step 1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadIds {
    /// The first msg-id of Message-ID, if any.
    pub message_id: Option<String>,
    /// References' msg-ids in order, or else the first of In-Reply-To.
    pub references: Vec<String>,
}

/// Most references kept per message (a hostile header with thousands costs
/// no more than this).
const MAX_REFERENCES: usize = 256;

/// The `<...>` msg-ids of a field value, white space inside removed.
fn msg_ids(value: &[u8], max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while out.len() < max {
        let Some(open) = rest.iter().position(|&b| b == b'<') else {
            break;
        };
        let Some(len) = rest[open + 1..].iter().position(|&b| b == b'>') else {
            break;
        };
        let inner = &rest[open + 1..open + 1 + len];
        let id: Vec<u8> = inner
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if !id.is_empty() && !id.contains(&b'<') {
            out.push(String::from_utf8_lossy(&id).into_owned());
        }
        rest = &rest[open + 1 + len + 1..];
    }
    out
}

impl Message<'_> {
    fn field(&self, name: &[u8]) -> Option<&[u8]> {
        header::fields(self.raw(), self.header_range())
            .find(|f| f.is(name))
            .map(|f| f.value)
    }

    /// The decoded Subject field ("" when absent).
    pub fn subject(&self) -> String {
        self.field(b"subject").map(decode_text).unwrap_or_default()
    }

    /// SORT FROM/TO/CC (RFC 5256 §3): the local part of the first address
    /// of the field (a group's name for a group), ASCII-uppercased; "" when
    /// there is none.
    pub fn sort_address(&self, field: &str) -> String {
        let Some(v) = self.field(field.as_bytes()) else {
            return String::new();
        };
        let mut s = match parse_addresses(v).into_iter().next() {
            Some(Item::Mailbox { addr, .. }) => match addr.rsplit_once('@') {
                Some((local, _)) => local.to_string(),
                None => addr,
            },
            Some(Item::GroupStart(g)) => g,
            _ => String::new(),
        };
        s.make_ascii_uppercase();
        s
    }

    /// SORT DISPLAYFROM/DISPLAYTO (RFC 5957 §3): the display name of the
    /// first address, or its address when it has none, decoded and
    /// lower-cased; "" when there is none.
    pub fn display_address(&self, field: &str) -> String {
        let Some(v) = self.field(field.as_bytes()) else {
            return String::new();
        };
        match parse_addresses(v).into_iter().next() {
            Some(Item::Mailbox { name: Some(n), .. }) => n.to_lowercase(),
            Some(Item::Mailbox { addr, .. }) => addr.to_lowercase(),
            Some(Item::GroupStart(g)) => g.to_lowercase(),
            _ => String::new(),
        }
    }

    /// Message-ID, References and In-Reply-To, for THREAD=REFERENCES.
    pub fn thread_ids(&self) -> ThreadIds {
        let message_id = self
            .field(b"message-id")
            .and_then(|v| msg_ids(v, 1).into_iter().next());
        let mut references = self
            .field(b"references")
            .map(|v| msg_ids(v, MAX_REFERENCES))
            .unwrap_or_default();
        if references.is_empty() {
            references = self
                .field(b"in-reply-to")
                .map(|v| msg_ids(v, 1))
                .unwrap_or_default();
        }
        ThreadIds {
            message_id,
            references,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects_as_rfc_5256_extracts_them() {
        let cases = [
            ("", "", false),
            ("Hello", "HELLO", false),
            ("Re: hello", "HELLO", true),
            ("RE:  Re: re:hello", "HELLO", true),
            ("Fwd: hello (fwd)", "HELLO", true),
            ("fw: hello", "HELLO", true),
            ("[list] Re: hello", "HELLO", true),
            ("Re[2]: hello", "HELLO", true),
            ("Re [list]: hello", "HELLO", true),
            ("[list] hello", "HELLO", false),
            ("[only a blob]", "[ONLY A BLOB]", false),
            ("[fwd: Re: hello]", "HELLO", true),
            ("  hello \t  world  ", "HELLO WORLD", false),
            ("Rebuild: the plan", "REBUILD: THE PLAN", false),
            ("Re: (fwd) (fwd)", "", true),
            ("café", "CAFé", false),
            ("[a][b] re: [c] fwd: x", "X", true),
            ("[unclosed hello", "[UNCLOSED HELLO", false),
        ];
        for (subject, base, reply) in cases {
            assert_eq!(
                base_subject(subject),
                (base.to_string(), reply),
                "{subject:?}"
            );
        }
    }

    #[test]
    fn a_base_subject_is_its_own_base_subject() {
        // Every string of up to four of these tokens.
        let tokens = [
            "re:", "Fwd", ":", "[x]", "[fwd:", "]", " ", "(fwd)", "a", "[", "re",
        ];
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for i in &inputs {
                for t in tokens {
                    next.push(format!("{i}{t}"));
                }
            }
            inputs.extend(next);
            inputs.dedup();
        }
        for i in inputs {
            let (base, _) = base_subject(&i);
            assert_eq!(base_subject(&base).0, base, "{i:?}");
        }
    }

    #[test]
    fn sort_keys_come_from_the_first_address() {
        let m = Message::parse(
            b"From: \"Foo Bar\" <Alice@example.org>, bob@example.org\r\n\
To: grp: x@y.z;\r\nCc: =?iso-8859-1?q?J=E9r=F4me?= <j@e.r>\r\n\
Subject: =?utf-8?q?Re=3A_caf=C3=A9?=\r\n\r\nbody",
        );
        assert_eq!(m.sort_address("from"), "ALICE");
        assert_eq!(m.sort_address("to"), "GRP");
        assert_eq!(m.sort_address("bcc"), "");
        assert_eq!(m.display_address("from"), "foo bar");
        assert_eq!(m.display_address("cc"), "jérôme");
        assert_eq!(base_subject(&m.subject()), ("CAFé".to_string(), true));
        let plain = Message::parse(b"From: d\r\nTo: <b@c.d>\r\n\r\n");
        assert_eq!(plain.display_address("from"), "d");
        assert_eq!(plain.display_address("to"), "b@c.d");
    }

    #[test]
    fn thread_ids_prefer_references_to_in_reply_to() {
        let m = Message::parse(
            b"Message-ID: <a@b> (comment)\r\nReferences: <r1@x>\r\n  <r2\r\n @x> junk <>\r\n\
In-Reply-To: <irt@x>\r\n\r\n",
        );
        let ids = m.thread_ids();
        assert_eq!(ids.message_id.as_deref(), Some("a@b"));
        assert_eq!(ids.references, ["r1@x", "r2@x"]);
        let m = Message::parse(b"In-Reply-To: <irt@x> <other@x>\r\n\r\n");
        let ids = m.thread_ids();
        assert_eq!(ids.message_id, None);
        assert_eq!(ids.references, ["irt@x"]);
    }
}
