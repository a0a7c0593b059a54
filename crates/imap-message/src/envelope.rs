//! ENVELOPE (RFC 9051 §7.5.2, grammar §9 `envelope`).
//!
//! `(date subject from sender reply-to to cc bcc in-reply-to message-id)`,
//! from the first occurrence of each field. Sender and Reply-To are the
//! From list when absent or empty. Addresses are `(name adl mailbox host)`;
//! a group is `(NIL NIL "group" NIL)` ... `(NIL NIL NIL NIL)`. An address
//! with no mailbox or host gets "" there (never NIL, which would read as a
//! group marker).
//!
//! Strings: date, in-reply-to and message-id are the raw values unfolded
//! (CR/LF dropped, blanks trimmed), as Dovecot sends them. Subject: raw
//! when `utf8` is false (encoded words left for the client), RFC 2047
//! decoded to UTF-8 when true. Display names come decoded from
//! mail-parser's address parser (quotes and escapes removed, encoded words
//! decoded); without `utf8` a non-ASCII name is re-encoded as one RFC 2047
//! encoded word, which every client decodes the same way as the original.
//! Anything that cannot be a quoted string (8-bit without `utf8`, CR, LF)
//! goes as a literal.

use std::ops::Range;

use facteur_imap_proto::encode::{nstring, string};
use mail_parser::{Addr, Address, HeaderValue, parsers::MessageStream};

use crate::decode::encoded_word;
use crate::header;

/// Fields of the envelope, in order.
const FIELDS: [&[u8]; 10] = [
    b"date",
    b"subject",
    b"from",
    b"sender",
    b"reply-to",
    b"to",
    b"cc",
    b"bcc",
    b"in-reply-to",
    b"message-id",
];

pub(crate) fn write(out: &mut Vec<u8>, raw: &[u8], header: Range<usize>, utf8: bool) {
    let mut vals: [Option<&[u8]>; 10] = [None; 10];
    let mut missing = FIELDS.len();
    for f in header::fields(raw, header) {
        if let Some(i) = FIELDS.iter().position(|n| f.is(n))
            && vals[i].is_none()
        {
            vals[i] = Some(f.value);
            missing -= 1;
            if missing == 0 {
                break;
            }
        }
    }
    let raw_value = |v: Option<&[u8]>| v.map(header::unfold);
    out.push(b'(');
    nstring(out, raw_value(vals[0]).as_deref(), utf8);
    out.push(b' ');
    match vals[1] {
        None => out.extend_from_slice(b"NIL"),
        Some(v) if utf8 => string(out, decode_text(v).as_bytes(), utf8),
        Some(v) => string(out, &header::unfold(v), utf8),
    }
    out.push(b' ');
    // from, then sender and reply-to (From when absent or empty), to, cc, bcc.
    let from = vals[2].map(parse_addresses).unwrap_or_default();
    address_list(out, &from, utf8);
    for (i, v) in vals.iter().enumerate().take(8).skip(3) {
        out.push(b' ');
        match v.map(parse_addresses) {
            Some(l) if !l.is_empty() => address_list(out, &l, utf8),
            _ if i <= 4 => address_list(out, &from, utf8),
            _ => out.extend_from_slice(b"NIL"),
        }
    }
    for v in &vals[8..] {
        out.push(b' ');
        nstring(out, raw_value(*v).as_deref(), utf8);
    }
    out.push(b')');
}

/// An unstructured field value with encoded words decoded.
pub(crate) fn decode_text(value: &[u8]) -> String {
    match MessageStream::new(value).parse_unstructured() {
        HeaderValue::Text(t) => t.into_owned(),
        HeaderValue::TextList(l) => l.join(" "),
        _ => String::new(),
    }
}

/// One item of an address list, flattened: a mailbox, or a group's start
/// or end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    /// `route`: an obsolete source route (`<@a,@b:user@host>`), the
    /// envelope's "adl" field (RFC 3501 §7.4.2).
    Mailbox {
        name: Option<String>,
        route: Option<String>,
        addr: String,
    },
    GroupStart(String),
    GroupEnd,
}

/// Parse an address-list field value.
pub(crate) fn parse_addresses(value: &[u8]) -> Vec<Item> {
    let mut out = Vec::new();
    // `in_group`: a group's member without an address is a comment the
    // parser kept (`group: (foo) ;`), not a mailbox.
    let push = |a: &Addr<'_>, out: &mut Vec<Item>, in_group: bool| {
        let name = a.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        let addr = a.address.as_deref().map(str::trim).unwrap_or_default();
        let (route, addr) = match addr.split_once(':') {
            Some((r, a)) if r.starts_with('@') => (Some(r.to_string()), a),
            _ => (None, addr),
        };
        if (name.is_some() && !in_group) || !addr.is_empty() {
            out.push(Item::Mailbox {
                name: name.map(str::to_string),
                route,
                addr: addr.to_string(),
            });
        }
    };
    match MessageStream::new(value).parse_address() {
        HeaderValue::Address(Address::List(l)) => l.iter().for_each(|a| push(a, &mut out, false)),
        HeaderValue::Address(Address::Group(groups)) => {
            for g in &groups {
                match g.name.as_deref() {
                    Some(n) => {
                        out.push(Item::GroupStart(n.to_string()));
                        g.addresses.iter().for_each(|a| push(a, &mut out, true));
                        out.push(Item::GroupEnd);
                    }
                    None => g.addresses.iter().for_each(|a| push(a, &mut out, false)),
                }
            }
        }
        _ => {}
    }
    out
}

fn name_string(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if utf8 || name.is_ascii() {
        string(out, name.as_bytes(), utf8);
    } else {
        string(out, encoded_word(name).as_bytes(), utf8);
    }
}

fn address_list(out: &mut Vec<u8>, list: &[Item], utf8: bool) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for item in list {
        match item {
            Item::Mailbox { name, route, addr } => {
                out.push(b'(');
                match name {
                    Some(n) => name_string(out, n, utf8),
                    None => out.extend_from_slice(b"NIL"),
                }
                out.push(b' ');
                match route {
                    Some(r) => string(out, r.as_bytes(), utf8),
                    None => out.extend_from_slice(b"NIL"),
                }
                out.push(b' ');
                let (mailbox, host) = addr.rsplit_once('@').unwrap_or((addr, ""));
                string(out, mailbox.as_bytes(), utf8);
                out.push(b' ');
                string(out, host.as_bytes(), utf8);
                out.push(b')');
            }
            Item::GroupStart(g) => {
                out.extend_from_slice(b"(NIL NIL ");
                name_string(out, g, utf8);
                out.extend_from_slice(b" NIL)");
            }
            Item::GroupEnd => out.extend_from_slice(b"(NIL NIL NIL NIL)"),
        }
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use crate::Message;

    fn env(raw: &str, utf8: bool) -> String {
        let mut out = Vec::new();
        Message::parse(raw.as_bytes()).envelope(&mut out, utf8);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn envelopes() {
        let cases: &[(&str, bool, &str)] = &[
            // RFC 9051 §7.5.2 / RFC 3501 §7.4.2 example message.
            (
                "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n\
From: Terry Gray <gray@cac.washington.edu>\r\n\
Subject: IMAP4rev2 WG mtg summary and minutes\r\n\
To: imap@cac.washington.edu\r\n\
cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n\
Message-Id: <B27397-0100000@cac.washington.edu>\r\n\
\r\nbody\r\n",
                false,
                "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev2 WG mtg summary and minutes\" \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((NIL NIL \"imap\" \"cac.washington.edu\")) \
((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) \
NIL NIL \"<B27397-0100000@cac.washington.edu>\")",
            ),
            // Missing everything.
            (
                "X: y\r\n\r\n",
                false,
                "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)",
            ),
            ("", false, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"),
            // Encoded words: raw without utf8, decoded with it.
            (
                "Subject: =?UTF-8?B?w6l0w6k=?=\r\nFrom: =?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>\r\n\r\n",
                false,
                "(NIL \"=?UTF-8?B?w6l0w6k=?=\" ((\"=?utf-8?b?QW5kcsOp?=\" NIL \"andre\" \"example.fr\")) \
((\"=?utf-8?b?QW5kcsOp?=\" NIL \"andre\" \"example.fr\")) ((\"=?utf-8?b?QW5kcsOp?=\" NIL \"andre\" \"example.fr\")) NIL NIL NIL NIL NIL)",
            ),
            (
                "Subject: =?UTF-8?B?w6l0w6k=?=\r\nFrom: =?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>\r\n\r\n",
                true,
                "(NIL \"été\" ((\"André\" NIL \"andre\" \"example.fr\")) \
((\"André\" NIL \"andre\" \"example.fr\")) ((\"André\" NIL \"andre\" \"example.fr\")) NIL NIL NIL NIL NIL)",
            ),
            (
                "Subject: =?iso-8859-1?q?caf=E9?= au lait\r\n\r\n",
                true,
                "(NIL \"café au lait\" NIL NIL NIL NIL NIL NIL NIL NIL)",
            ),
            // Groups, sender and reply-to present, folded subject, quoted name.
            (
                "From: \"Smith, John\" <js@a.example>\r\n\
Sender: sec@a.example\r\n\
Reply-To: list@b.example\r\n\
To: Team: ann@a.example, Bob <bob@a.example>;, solo@c.example\r\n\
Bcc: undisclosed-recipients:;\r\n\
Subject: folded\r\n  line\r\n\
In-Reply-To: <x@y>\r\n\r\n",
                false,
                "(NIL \"folded  line\" ((\"Smith, John\" NIL \"js\" \"a.example\")) \
((NIL NIL \"sec\" \"a.example\")) ((NIL NIL \"list\" \"b.example\")) \
((NIL NIL \"Team\" NIL)(NIL NIL \"ann\" \"a.example\")(\"Bob\" NIL \"bob\" \"a.example\")(NIL NIL NIL NIL)(NIL NIL \"solo\" \"c.example\")) \
NIL ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) \"<x@y>\" NIL)",
            ),
            // imaptest's fetch-envelope: empty groups, a comment in a group,
            // a source route.
            (
                "From: user@domain (Real Name)\r\nCc: group:;, group2: (foo) ;\r\n\r\n",
                false,
                "(NIL NIL ((\"Real Name\" NIL \"user\" \"domain\")) ((\"Real Name\" NIL \"user\" \"domain\")) \
((\"Real Name\" NIL \"user\" \"domain\")) NIL \
((NIL NIL \"group\" NIL)(NIL NIL NIL NIL)(NIL NIL \"group2\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)",
            ),
            (
                "From: <@route:user@domain>\r\n\r\n",
                false,
                "(NIL NIL ((NIL \"@route\" \"user\" \"domain\")) ((NIL \"@route\" \"user\" \"domain\")) \
((NIL \"@route\" \"user\" \"domain\")) NIL NIL NIL NIL NIL)",
            ),
            // Raw 8-bit subject without utf8: a literal.
            (
                "Subject: \u{e9}\r\n\r\n",
                false,
                "(NIL {2}\r\n\u{e9} NIL NIL NIL NIL NIL NIL NIL NIL)",
            ),
            // Empty Reply-To falls back to From.
            (
                "From: a@b\r\nReply-To:\r\n\r\n",
                false,
                "(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL)",
            ),
        ];
        for (raw, utf8, want) in cases {
            assert_eq!(&env(raw, *utf8), want, "{raw:?}");
        }
    }
}
