//! GETMETADATA and SETMETADATA (RFC 5464 §4.2-4.3, with the grammar of §5).
//!
//! Entry names are checked here (§3.2: under `/private` or `/shared`, no
//! `*` or `%`, no empty component, 7-bit printable) and lower-cased, since
//! they compare without case; a wrong one is a syntax error (BAD).
//!
//! Needs the lexer; guarantees what it does (no panic, linear time).

use super::lexer::{Parser, Res};
use crate::types::{Command, MetadataDepth};

/// The longest entry name taken.
pub const MAX_ENTRY_NAME: usize = 1024;
/// The most entries one command names (each costs an index lookup).
pub const MAX_ENTRIES: usize = 1000;

/// `GETMETADATA [SP "(" option *(SP option) ")"] SP mailbox SP entries`.
pub(super) fn get(p: &mut Parser<'_>) -> Res<Command> {
    p.arg("missing mailbox name")?;
    let mut max_size = None;
    let mut depth = MetadataDepth::Zero;
    if p.peek() == Some(b'(') {
        p.paren_list(|p| {
            let w = p.word();
            if w.eq_ignore_ascii_case(b"MAXSIZE") {
                p.sp()?;
                max_size = Some(p.number_u64()?);
            } else if w.eq_ignore_ascii_case(b"DEPTH") {
                p.sp()?;
                let d = p.word();
                depth = if d == b"0" {
                    MetadataDepth::Zero
                } else if d == b"1" {
                    MetadataDepth::One
                } else if d.eq_ignore_ascii_case(b"infinity") {
                    MetadataDepth::Infinity
                } else {
                    return Err("DEPTH is 0, 1 or infinity");
                };
            } else {
                return Err("unknown GETMETADATA option");
            }
            Ok(())
        })?;
        p.arg("missing mailbox name")?;
    }
    let mailbox = p.mailbox()?;
    p.arg("missing entry names")?;
    let entries = if p.peek() == Some(b'(') {
        p.paren_list(|p| entry(p, true))?
    } else {
        vec![entry(p, true)?]
    };
    if entries.len() > MAX_ENTRIES {
        return Err("too many entry names");
    }
    Ok(Command::GetMetadata {
        mailbox,
        max_size,
        depth,
        entries,
    })
}

/// `SETMETADATA SP mailbox SP "(" entry SP value *(SP entry SP value) ")"`.
pub(super) fn set(p: &mut Parser<'_>) -> Res<Command> {
    p.arg("missing mailbox name")?;
    let mailbox = p.mailbox()?;
    p.arg("missing entry list")?;
    let entries = p.paren_list(|p| {
        let e = entry(p, false)?;
        p.sp()?;
        Ok((e, p.value()?))
    })?;
    if entries.len() > MAX_ENTRIES {
        return Err("too many entry names");
    }
    Ok(Command::SetMetadata { mailbox, entries })
}

/// One entry name (an astring), checked and lower-cased; `top`: the bare
/// `/private` and `/shared` are taken (GETMETADATA of a whole tree).
fn entry(p: &mut Parser<'_>, top: bool) -> Res<String> {
    let name = p.astring()?.to_ascii_lowercase();
    if !valid_entry(&name, top) {
        return Err("invalid entry name");
    }
    Ok(name)
}

fn valid_entry(name: &str, top: bool) -> bool {
    let under = |root: &str| {
        name == root && top || name.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
    };
    name.len() <= MAX_ENTRY_NAME
        && (under("/private") || under("/shared"))
        && name
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b'*' && b != b'%')
        && !name.ends_with('/')
        && !name.contains("//")
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ok_bytes, refused};
    use crate::types::*;

    #[test]
    fn getmetadata() {
        let get = |m: &str, max: Option<u64>, depth, e: &[&str]| Command::GetMetadata {
            mailbox: m.into(),
            max_size: max,
            depth,
            entries: e.iter().map(|x| x.to_string()).collect(),
        };
        let cases: &[(&[u8], Command)] = &[
            // RFC 5464 §4.2's examples.
            (
                b"a GETMETADATA \"\" /shared/comment",
                get("", None, MetadataDepth::Zero, &["/shared/comment"]),
            ),
            (
                b"a GETMETADATA INBOX (/shared/Comment /private/comment)",
                get(
                    "INBOX",
                    None,
                    MetadataDepth::Zero,
                    &["/shared/comment", "/private/comment"],
                ),
            ),
            (
                b"a GETMETADATA (MAXSIZE 1024) INBOX /shared/comment",
                get(
                    "INBOX",
                    Some(1024),
                    MetadataDepth::Zero,
                    &["/shared/comment"],
                ),
            ),
            (
                b"a GETMETADATA (DEPTH 1) INBOX (/private/filters/values)",
                get(
                    "INBOX",
                    None,
                    MetadataDepth::One,
                    &["/private/filters/values"],
                ),
            ),
            (
                b"a GETMETADATA (DEPTH infinity MAXSIZE 0) \"\" /shared",
                get("", Some(0), MetadataDepth::Infinity, &["/shared"]),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&ok_bytes(input), want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn setmetadata() {
        let mut too_many = b"a GETMETADATA INBOX (".to_vec();
        for i in 0..=super::MAX_ENTRIES {
            too_many.extend_from_slice(format!("/shared/e{i} ").as_bytes());
        }
        too_many.pop();
        too_many.push(b')');
        let set = |m: &str, e: Vec<(&str, Option<&[u8]>)>| Command::SetMetadata {
            mailbox: m.into(),
            entries: e
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
        };
        let cases: &[(&[u8], Command)] = &[
            (
                b"a SETMETADATA INBOX (/private/comment \"My own comment\")",
                set("INBOX", vec![("/private/comment", Some(b"My own comment"))]),
            ),
            (
                b"a SETMETADATA INBOX (/private/comment NIL /shared/x {3}\r\na\r\n)",
                set(
                    "INBOX",
                    vec![("/private/comment", None), ("/shared/x", Some(b"a\r\n"))],
                ),
            ),
            (
                b"a SETMETADATA \"\" (/shared/Bin ~{3}\r\na\0b)",
                set("", vec![("/shared/bin", Some(b"a\0b"))]),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&ok_bytes(input), want, "{}", String::from_utf8_lossy(input));
        }
        refused(&[
            (
                &b"a SETMETADATA INBOX (/comment \"x\")"[..],
                "invalid entry name",
            ),
            (b"a SETMETADATA INBOX (/shared \"x\")", "invalid entry name"),
            (
                b"a SETMETADATA INBOX (/shared/a/ \"x\")",
                "invalid entry name",
            ),
            (
                b"a SETMETADATA INBOX (/shared//a \"x\")",
                "invalid entry name",
            ),
            (
                b"a SETMETADATA INBOX (\"/shared/a*\" \"x\")",
                "invalid entry name",
            ),
            (b"a SETMETADATA INBOX (/shared/a)", "expected a space"),
            (
                b"a SETMETADATA INBOX (/shared/a {3}\r\na\0b)",
                "NUL in literal",
            ),
            (b"a GETMETADATA INBOX /privatex", "invalid entry name"),
            (
                b"a GETMETADATA (DEPTH 2) INBOX /shared",
                "DEPTH is 0, 1 or infinity",
            ),
            (
                b"a GETMETADATA (FOO 2) INBOX /shared",
                "unknown GETMETADATA option",
            ),
            (b"a GETMETADATA INBOX", "missing entry names"),
            (&too_many[..], "too many entry names"),
        ]);
    }
}
