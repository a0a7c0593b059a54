//! Message commands: FETCH with sections, partials, BINARY (RFC 9051
//! §6.4.5, RFC 3516 §4.1) and the CHANGEDSINCE / VANISHED modifiers (RFC
//! 7162 §3.1.4, §3.2.6); STORE with UNCHANGEDSINCE (RFC 9051 §6.4.6, RFC
//! 7162 §3.1.3); COPY, MOVE (RFC 6851); UID EXPUNGE (RFC 4315).
//!
//! Needs the lexer; guarantees what it does (no panic, linear time). The
//! fetch macros ALL, FAST and FULL are expanded here.

use super::lexer::{Parser, Res};
use crate::types::{Command, FetchAttr, Section, SectionText, Store, StoreOp};

/// `FETCH sequence-set SP (macro / fetch-att / "(" fetch-att *(SP
/// fetch-att) ")") [SP "(" fetch-modifier *(SP fetch-modifier) ")"]`.
pub(super) fn fetch(p: &mut Parser<'_>, uid: bool) -> Res<Command> {
    p.arg("missing sequence set")?;
    let set = p.seq_set()?;
    p.arg("missing fetch items")?;
    let attrs = if p.peek() == Some(b'(') {
        p.paren_list(fetch_att)?
    } else {
        let save = p.mark();
        let w = p.name();
        let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
        let fast = [
            FetchAttr::Flags,
            FetchAttr::InternalDate,
            FetchAttr::Rfc822Size,
        ];
        if is("FAST") {
            fast.to_vec()
        } else if is("ALL") {
            let mut v = fast.to_vec();
            v.push(FetchAttr::Envelope);
            v
        } else if is("FULL") {
            let mut v = fast.to_vec();
            v.extend([FetchAttr::Envelope, FetchAttr::Body]);
            v
        } else {
            p.reset(save);
            vec![fetch_att(p)?]
        }
    };
    let mut changed_since = None;
    let mut vanished = false;
    if !p.at_end() {
        p.arg("missing fetch modifiers")?;
        p.paren_list(|p| {
            let w = p.word();
            if w.eq_ignore_ascii_case(b"CHANGEDSINCE") {
                p.sp()?;
                changed_since = Some(p.modseq()?);
            } else if w.eq_ignore_ascii_case(b"VANISHED") {
                vanished = true;
            } else {
                return Err("unknown FETCH modifier");
            }
            Ok(())
        })?;
    }
    // RFC 7162 §3.2.6: VANISHED only in UID FETCH, and with CHANGEDSINCE.
    if vanished && !uid {
        return Err("VANISHED needs UID FETCH");
    }
    if vanished && changed_since.is_none() {
        return Err("VANISHED needs CHANGEDSINCE");
    }
    Ok(Command::Fetch {
        uid,
        set,
        attrs,
        changed_since,
        vanished,
    })
}

/// One `fetch-att`.
pub(super) fn fetch_att(p: &mut Parser<'_>) -> Res<FetchAttr> {
    let w = p.name();
    let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
    Ok(if is("ENVELOPE") {
        FetchAttr::Envelope
    } else if is("FLAGS") {
        FetchAttr::Flags
    } else if is("INTERNALDATE") {
        FetchAttr::InternalDate
    } else if is("RFC822") {
        FetchAttr::Rfc822
    } else if is("RFC822.HEADER") {
        FetchAttr::Rfc822Header
    } else if is("RFC822.SIZE") {
        FetchAttr::Rfc822Size
    } else if is("RFC822.TEXT") {
        FetchAttr::Rfc822Text
    } else if is("BODYSTRUCTURE") {
        FetchAttr::BodyStructure
    } else if is("UID") {
        FetchAttr::Uid
    } else if is("MODSEQ") {
        FetchAttr::ModSeq
    } else if is("EMAILID") {
        FetchAttr::EmailId
    } else if is("THREADID") {
        FetchAttr::ThreadId
    } else if is("SAVEDATE") {
        FetchAttr::SaveDate
    } else if is("PREVIEW") {
        // RFC 8970: `PREVIEW [SP "(" "LAZY" ")"]`.
        let m = p.mark();
        if p.eat(b' ') && p.peek() == Some(b'(') {
            p.paren_list(|p| {
                let w = p.word();
                if w.eq_ignore_ascii_case(b"LAZY") {
                    Ok(())
                } else {
                    Err("unknown PREVIEW modifier")
                }
            })?;
        } else {
            p.reset(m);
        }
        FetchAttr::Preview
    } else if is("BODY") || is("BODY.PEEK") {
        let peek = is("BODY.PEEK");
        if p.peek() != Some(b'[') {
            if peek {
                return Err("BODY.PEEK needs a section");
            }
            return Ok(FetchAttr::Body);
        }
        let section = section(p)?;
        let partial = partial(p)?;
        FetchAttr::BodySection {
            peek,
            section,
            partial,
        }
    } else if is("BINARY") || is("BINARY.PEEK") {
        let part = section_binary(p)?;
        let partial = partial(p)?;
        FetchAttr::Binary {
            peek: is("BINARY.PEEK"),
            part,
            partial,
        }
    } else if is("BINARY.SIZE") {
        FetchAttr::BinarySize(section_binary(p)?)
    } else if w.is_empty() {
        return Err(if p.at_end() {
            "missing fetch item"
        } else {
            "invalid fetch item"
        });
    } else {
        return Err("unknown fetch item");
    })
}

/// `section-part`: nz-number *("." nz-number), stopping before a `.`
/// that is not followed by a digit.
fn part(p: &mut Parser<'_>) -> Res<Vec<u32>> {
    let mut part = vec![p.nz_number()?];
    while p.peek() == Some(b'.') && p.peek_at(1).is_some_and(|b| b.is_ascii_digit()) {
        p.eat(b'.');
        part.push(p.nz_number()?);
    }
    Ok(part)
}

/// `section`: `[` [section-spec] `]`.
pub(super) fn section(p: &mut Parser<'_>) -> Res<Section> {
    p.expect(b'[', "expected '['")?;
    let mut s = Section::default();
    if p.eat(b']') {
        return Ok(s);
    }
    if p.peek().is_some_and(|b| b.is_ascii_digit()) {
        s.part = part(p)?;
        if p.eat(b']') {
            return Ok(s);
        }
        p.expect(b'.', "invalid section")?;
    }
    let w = p.name();
    let is = |x: &str| w.eq_ignore_ascii_case(x.as_bytes());
    s.text = Some(if is("HEADER") {
        SectionText::Header
    } else if is("TEXT") {
        SectionText::Text
    } else if is("MIME") && !s.part.is_empty() {
        SectionText::Mime
    } else if is("HEADER.FIELDS") || is("HEADER.FIELDS.NOT") {
        p.sp()?;
        let names = p.paren_list(|p| p.astring())?;
        if is("HEADER.FIELDS") {
            SectionText::HeaderFields(names)
        } else {
            SectionText::HeaderFieldsNot(names)
        }
    } else {
        return Err("invalid section");
    });
    p.expect(b']', "invalid section")?;
    Ok(s)
}

/// `section-binary`: `[` [section-part] `]`.
fn section_binary(p: &mut Parser<'_>) -> Res<Vec<u32>> {
    p.expect(b'[', "expected '['")?;
    if p.eat(b']') {
        return Ok(Vec::new());
    }
    let v = part(p)?;
    p.expect(b']', "invalid section")?;
    Ok(v)
}

/// `partial`: `<` number64 `.` nz-number64 `>`. Both must fit in 32 bits
/// (no message here is near 4 GiB): a larger one is refused, not
/// saturated, so the response's label always repeats what was asked.
fn partial(p: &mut Parser<'_>) -> Res<Option<(u32, u32)>> {
    if !p.eat(b'<') {
        return Ok(None);
    }
    let origin = p.number_u64().map_err(|_| "invalid partial")?;
    p.expect(b'.', "invalid partial")?;
    let count = p.number_u64().map_err(|_| "invalid partial")?;
    if count == 0 {
        return Err("invalid partial");
    }
    p.expect(b'>', "invalid partial")?;
    let small = |n: u64| u32::try_from(n).map_err(|_| "partial too large");
    Ok(Some((small(origin)?, small(count)?)))
}

/// `STORE sequence-set [SP "(" "UNCHANGEDSINCE" SP modseq ")"] SP
/// (["+" / "-"] "FLAGS" [".SILENT"]) SP (flag-list / flag *(SP flag))`.
pub(super) fn store(p: &mut Parser<'_>, uid: bool) -> Res<Command> {
    p.arg("missing sequence set")?;
    let set = p.seq_set()?;
    p.arg("missing store item")?;
    let mut unchanged_since = None;
    if p.peek() == Some(b'(') {
        p.paren_list(|p| {
            if !p.word().eq_ignore_ascii_case(b"UNCHANGEDSINCE") {
                return Err("unknown STORE modifier");
            }
            p.sp()?;
            unchanged_since = Some(p.modseq()?);
            Ok(())
        })?;
        p.arg("missing store item")?;
    }
    let w = p.word();
    let (op, rest) = match w.first() {
        Some(b'+') => (StoreOp::Add, &w[1..]),
        Some(b'-') => (StoreOp::Remove, &w[1..]),
        _ => (StoreOp::Replace, w),
    };
    let silent = if rest.eq_ignore_ascii_case(b"FLAGS") {
        false
    } else if rest.eq_ignore_ascii_case(b"FLAGS.SILENT") {
        true
    } else {
        return Err("invalid store item");
    };
    p.arg("missing flags")?;
    let flags = if p.peek() == Some(b'(') {
        p.flag_list()?
    } else {
        let mut v = vec![p.flag()?];
        while p.eat(b' ') {
            v.push(p.flag()?);
        }
        v
    };
    Ok(Command::Store(Store {
        uid,
        set,
        unchanged_since,
        op,
        silent,
        flags,
    }))
}

/// `COPY` / `MOVE sequence-set SP mailbox`.
pub(super) fn copy(p: &mut Parser<'_>, uid: bool, is_move: bool) -> Res<Command> {
    p.arg("missing sequence set")?;
    let set = p.seq_set()?;
    p.arg("missing mailbox name")?;
    let mailbox = p.mailbox()?;
    Ok(if is_move {
        Command::Move { uid, set, mailbox }
    } else {
        Command::Copy { uid, set, mailbox }
    })
}

/// `UID EXPUNGE sequence-set`.
pub(super) fn uid_expunge(p: &mut Parser<'_>) -> Res<Command> {
    p.arg("missing sequence set")?;
    Ok(Command::UidExpunge(p.seq_set()?))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ok, parses, refused};
    use crate::types::{SeqBound::*, SequenceSet::*, *};

    fn s(x: &str) -> String {
        x.to_owned()
    }

    fn body(
        peek: bool,
        part: &[u32],
        text: Option<SectionText>,
        partial: Option<(u32, u32)>,
    ) -> FetchAttr {
        FetchAttr::BodySection {
            peek,
            section: Section {
                part: part.to_vec(),
                text,
            },
            partial,
        }
    }

    /// The attributes of `a FETCH 1 <items>`.
    fn attrs(items: &str) -> Vec<FetchAttr> {
        match ok(&format!("a FETCH 1 {items}")) {
            Command::Fetch { attrs, .. } => attrs,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fetch_items() {
        use FetchAttr::*;
        let cases = [
            ("FAST", vec![Flags, InternalDate, Rfc822Size]),
            ("all", vec![Flags, InternalDate, Rfc822Size, Envelope]),
            (
                "FULL",
                vec![Flags, InternalDate, Rfc822Size, Envelope, Body],
            ),
            ("FLAGS", vec![Flags]),
            ("PREVIEW", vec![Preview]),
            ("(EMAILID threadid)", vec![EmailId, ThreadId]),
            ("(SAVEDATE UID)", vec![SaveDate, Uid]),
            ("(PREVIEW (LAZY) FLAGS)", vec![Preview, Flags]),
            ("(FLAGS preview)", vec![Flags, Preview]),
            (
                "(ENVELOPE FLAGS INTERNALDATE RFC822 RFC822.HEADER RFC822.SIZE RFC822.TEXT BODY BODYSTRUCTURE UID MODSEQ)",
                vec![
                    Envelope,
                    Flags,
                    InternalDate,
                    Rfc822,
                    Rfc822Header,
                    Rfc822Size,
                    Rfc822Text,
                    Body,
                    BodyStructure,
                    Uid,
                    ModSeq,
                ],
            ),
            ("BODY[]", vec![body(false, &[], None, None)]),
            (
                "body.peek[]<0.1024>",
                vec![body(true, &[], None, Some((0, 1024)))],
            ),
            (
                "BODY[1.MIME]",
                vec![body(false, &[1], Some(SectionText::Mime), None)],
            ),
            ("BODY[1.2]", vec![body(false, &[1, 2], None, None)]),
            (
                "BODY.PEEK[TEXT]<10.20>",
                vec![body(true, &[], Some(SectionText::Text), Some((10, 20)))],
            ),
            (
                "BODY[HEADER]",
                vec![body(false, &[], Some(SectionText::Header), None)],
            ),
            (
                "BODY[4.2.2.HEADER]",
                vec![body(false, &[4, 2, 2], Some(SectionText::Header), None)],
            ),
            (
                "BODY[3.TEXT]",
                vec![body(false, &[3], Some(SectionText::Text), None)],
            ),
            (
                "BODY[1.2.HEADER.FIELDS (From To)]<0.100>",
                vec![body(
                    false,
                    &[1, 2],
                    Some(SectionText::HeaderFields(vec![s("From"), s("To")])),
                    Some((0, 100)),
                )],
            ),
            (
                "(BODY.PEEK[HEADER.FIELDS.NOT (\"Received\" X-Spam)])",
                vec![body(
                    true,
                    &[],
                    Some(SectionText::HeaderFieldsNot(vec![
                        s("Received"),
                        s("X-Spam"),
                    ])),
                    None,
                )],
            ),
            (
                "BODY[]<0.4294967295>",
                vec![body(false, &[], None, Some((0, u32::MAX)))],
            ),
            (
                "BINARY[1]",
                vec![Binary {
                    peek: false,
                    part: vec![1],
                    partial: None,
                }],
            ),
            (
                "BINARY.PEEK[1.2]<0.10>",
                vec![Binary {
                    peek: true,
                    part: vec![1, 2],
                    partial: Some((0, 10)),
                }],
            ),
            (
                "BINARY[]",
                vec![Binary {
                    peek: false,
                    part: vec![],
                    partial: None,
                }],
            ),
            ("(BINARY.SIZE[3] UID)", vec![BinarySize(vec![3]), Uid]),
        ];
        for (items, want) in cases {
            assert_eq!(attrs(items), want, "{items}");
        }
    }

    #[test]
    fn commands() {
        let fetch = |uid, set, attrs, changed_since, vanished| Command::Fetch {
            uid,
            set,
            attrs,
            changed_since,
            vanished,
        };
        let cases = [
            // RFC 9051 §6.4.5, §6.4.9.
            (
                "A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])",
                fetch(
                    false,
                    Ranges(vec![(Num(2), Num(4))]),
                    vec![
                        FetchAttr::Flags,
                        body(
                            false,
                            &[],
                            Some(SectionText::HeaderFields(vec![s("DATE"), s("FROM")])),
                            None,
                        ),
                    ],
                    None,
                    false,
                ),
            ),
            (
                "A999 UID FETCH 4827313:4828442 FLAGS",
                fetch(
                    true,
                    Ranges(vec![(Num(4827313), Num(4828442))]),
                    vec![FetchAttr::Flags],
                    None,
                    false,
                ),
            ),
            (
                "a FETCH $ (UID)",
                fetch(false, Saved, vec![FetchAttr::Uid], None, false),
            ),
            (
                "a FETCH *:4,7 UID",
                fetch(
                    false,
                    Ranges(vec![(Star, Num(4)), (Num(7), Num(7))]),
                    vec![FetchAttr::Uid],
                    None,
                    false,
                ),
            ),
            // RFC 7162 §3.1.4.1, §3.2.6.
            (
                "s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)",
                fetch(
                    true,
                    Ranges(vec![(Num(1), Star)]),
                    vec![FetchAttr::Flags],
                    Some(12345),
                    false,
                ),
            ),
            (
                "s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
                fetch(
                    true,
                    Ranges(vec![(Num(300), Num(500))]),
                    vec![FetchAttr::Flags],
                    Some(12345),
                    true,
                ),
            ),
            (
                "a FETCH 1 FAST (CHANGEDSINCE 0)",
                fetch(
                    false,
                    Ranges(vec![(Num(1), Num(1))]),
                    vec![
                        FetchAttr::Flags,
                        FetchAttr::InternalDate,
                        FetchAttr::Rfc822Size,
                    ],
                    Some(0),
                    false,
                ),
            ),
            // RFC 9051 §6.4.6, RFC 7162 §3.1.3.
            (
                "A003 STORE 2:4 +FLAGS (\\Deleted)",
                Command::Store(Store {
                    uid: false,
                    set: Ranges(vec![(Num(2), Num(4))]),
                    unchanged_since: None,
                    op: StoreOp::Add,
                    silent: false,
                    flags: vec![s("\\Deleted")],
                }),
            ),
            (
                "d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)",
                Command::Store(Store {
                    uid: false,
                    set: Ranges(vec![(Num(7), Num(7)), (Num(5), Num(5)), (Num(9), Num(9))]),
                    unchanged_since: Some(320162338),
                    op: StoreOp::Add,
                    silent: true,
                    flags: vec![s("\\Deleted")],
                }),
            ),
            (
                "a UID STORE 1 -flags.silent \\Seen $Junk",
                Command::Store(Store {
                    uid: true,
                    set: Ranges(vec![(Num(1), Num(1))]),
                    unchanged_since: None,
                    op: StoreOp::Remove,
                    silent: true,
                    flags: vec![s("\\Seen"), s("$Junk")],
                }),
            ),
            (
                "a STORE 1 FLAGS ()",
                Command::Store(Store {
                    uid: false,
                    set: Ranges(vec![(Num(1), Num(1))]),
                    unchanged_since: None,
                    op: StoreOp::Replace,
                    silent: false,
                    flags: vec![],
                }),
            ),
            (
                "A003 COPY 2:4 MEETING",
                Command::Copy {
                    uid: false,
                    set: Ranges(vec![(Num(2), Num(4))]),
                    mailbox: s("MEETING"),
                },
            ),
            (
                "a UID COPY $ \"a b\"",
                Command::Copy {
                    uid: true,
                    set: Saved,
                    mailbox: s("a b"),
                },
            ),
            // RFC 6851 §4.
            (
                "a UID MOVE 42:69 foo",
                Command::Move {
                    uid: true,
                    set: Ranges(vec![(Num(42), Num(69))]),
                    mailbox: s("foo"),
                },
            ),
            (
                "a move 1 Trash",
                Command::Move {
                    uid: false,
                    set: Ranges(vec![(Num(1), Num(1))]),
                    mailbox: s("Trash"),
                },
            ),
            // RFC 4315 §2.1.
            (
                "A003 UID EXPUNGE 3000:3002",
                Command::UidExpunge(Ranges(vec![(Num(3000), Num(3002))])),
            ),
        ];
        parses(&cases);
    }

    #[test]
    fn errors() {
        refused(&[
            (&b"a FETCH"[..], "missing sequence set"),
            (b"a FETCH 1", "missing fetch items"),
            (b"a FETCH 1 (PREVIEW (FUZZY))", "unknown PREVIEW modifier"),
            (b"a FETCH 0 FLAGS", "0 is not a valid message number"),
            (b"a FETCH 1:0 FLAGS", "0 is not a valid message number"),
            (b"a FETCH 4294967296 FLAGS", "message number too large"),
            (
                b"a FETCH 18446744073709551615 FLAGS",
                "message number too large",
            ),
            (b"a FETCH 18446744073709551616 FLAGS", "number too large"),
            (
                b"a FETCH 999999999999999999999999 FLAGS",
                "number too large",
            ),
            (
                b"a UID FETCH 1:9999999999999999999999999999999999999999 UID",
                "number too large",
            ),
            (
                b"a FETCH 1 BODY[]<99999999999999999999.1>",
                "invalid partial",
            ),
            (b"a FETCH 1 BODY[]<5000000000.1>", "partial too large"),
            (b"a FETCH 1 BODY[]<0.99999999999>", "partial too large"),
            (
                b"a FETCH 1 (FLAGS) (CHANGEDSINCE 9223372036854775808)",
                "mod-sequence too large",
            ),
            (b"a FETCH 99999999999999999999999 FLAGS", "number too large"),
            (b"a FETCH 1, FLAGS", "invalid sequence set"),
            (
                b"a FETCH 1,$ FLAGS",
                "$ cannot be combined with other numbers",
            ),
            (b"a FETCH x FLAGS", "invalid sequence set"),
            (b"a FETCH 1 FOO", "unknown fetch item"),
            (b"a FETCH 1 ()", "invalid fetch item"),
            (b"a FETCH 1 (FLAGS", "expected ')'"),
            (b"a FETCH 1 (FAST)", "unknown fetch item"),
            (b"a FETCH 1 BODY.PEEK", "BODY.PEEK needs a section"),
            (b"a FETCH 1 BODY[", "invalid section"),
            (b"a FETCH 1 BODY[0]", "zero is not a valid number here"),
            (b"a FETCH 1 BODY[MIME]", "invalid section"),
            (b"a FETCH 1 BODY[1.FOO]", "invalid section"),
            (b"a FETCH 1 BODY[HEADER.FIELDS]", "expected a space"),
            (b"a FETCH 1 BODY[HEADER.FIELDS ()]", "expected a string"),
            (b"a FETCH 1 BODY[]<0>", "invalid partial"),
            (b"a FETCH 1 BODY[]<0.0>", "invalid partial"),
            (b"a FETCH 1 BODY[]<x.1>", "invalid partial"),
            (b"a FETCH 1 BINARY[TEXT]", "expected a number"),
            (b"a FETCH 1 BINARY.SIZE[1]<0.1>", "expected a space"),
            (b"a FETCH 1 FLAGS (FOO)", "unknown FETCH modifier"),
            (
                b"a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",
                "VANISHED needs UID FETCH",
            ),
            (
                b"a UID FETCH 1 FLAGS (VANISHED)",
                "VANISHED needs CHANGEDSINCE",
            ),
            (
                b"a FETCH 1 FLAGS (CHANGEDSINCE 9223372036854775808)",
                "mod-sequence too large",
            ),
            (b"a STORE 1", "missing store item"),
            (b"a STORE 1 FLAGS", "missing flags"),
            (b"a STORE 1 *FLAGS (\\Seen)", "invalid store item"),
            (b"a STORE 1 FLAGS.NOISY (\\Seen)", "invalid store item"),
            (b"a STORE 1 FLAGS (\\Seen", "unterminated flag list"),
            (b"a STORE 1 FLAGS (\\)", "invalid flag"),
            (b"a STORE 1 FLAGS \\*", "invalid flag"),
            (b"a STORE 1 (UNCHANGEDSINCE) FLAGS x", "expected a space"),
            (b"a STORE 1 (FOO 1) FLAGS x", "unknown STORE modifier"),
            (b"a COPY 1", "missing mailbox name"),
            (b"a MOVE", "missing sequence set"),
            (b"a UID EXPUNGE", "missing sequence set"),
        ]);
    }
}
