//! The name under which a FETCH response returns a data item (RFC 9051
//! §7.5.2, RFC 3516 §4.2): [`section_label`].
//!
//! `BODY.PEEK[...]` answers as `BODY[...]`, `BINARY.PEEK[...]` as
//! `BINARY[...]`; a partial shows only its origin (`BODY[]<0>`). Header
//! field names are echoed as the client sent them (case kept): clients
//! compare them ignoring case, and echoing avoids surprising the few that
//! do not; a name that is not an atom is quoted. Pure, no panics.

use crate::encode;
use crate::types::{FetchAttr, Section, SectionText};

fn part(out: &mut String, part: &[u32]) {
    for (i, n) in part.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(&n.to_string());
    }
}

fn fields(out: &mut String, names: &[String]) {
    out.push_str(" (");
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let mut v = Vec::new();
        encode::astring(&mut v, n, true);
        out.push_str(&String::from_utf8_lossy(&v));
    }
    out.push(')');
}

fn section(out: &mut String, s: &Section) {
    out.push('[');
    part(out, &s.part);
    if let Some(t) = &s.text {
        if !s.part.is_empty() {
            out.push('.');
        }
        match t {
            SectionText::Header => out.push_str("HEADER"),
            SectionText::Text => out.push_str("TEXT"),
            SectionText::Mime => out.push_str("MIME"),
            SectionText::HeaderFields(n) => {
                out.push_str("HEADER.FIELDS");
                fields(out, n);
            }
            SectionText::HeaderFieldsNot(n) => {
                out.push_str("HEADER.FIELDS.NOT");
                fields(out, n);
            }
        }
    }
    out.push(']');
}

fn origin(out: &mut String, partial: Option<(u32, u32)>) {
    if let Some((o, _)) = partial {
        out.push('<');
        out.push_str(&o.to_string());
        out.push('>');
    }
}

/// The item name for `attr` in a FETCH response (see the module notes).
pub fn section_label(attr: &FetchAttr) -> String {
    let simple = match attr {
        FetchAttr::Envelope => "ENVELOPE",
        FetchAttr::Flags => "FLAGS",
        FetchAttr::InternalDate => "INTERNALDATE",
        FetchAttr::Rfc822 => "RFC822",
        FetchAttr::Rfc822Header => "RFC822.HEADER",
        FetchAttr::Rfc822Size => "RFC822.SIZE",
        FetchAttr::Rfc822Text => "RFC822.TEXT",
        FetchAttr::Body => "BODY",
        FetchAttr::BodyStructure => "BODYSTRUCTURE",
        FetchAttr::Uid => "UID",
        FetchAttr::ModSeq => "MODSEQ",
        FetchAttr::Preview => "PREVIEW",
        FetchAttr::EmailId => "EMAILID",
        FetchAttr::ThreadId => "THREADID",
        FetchAttr::SaveDate => "SAVEDATE",
        FetchAttr::BodySection {
            section: s,
            partial,
            ..
        } => {
            let mut out = String::from("BODY");
            section(&mut out, s);
            origin(&mut out, *partial);
            return out;
        }
        FetchAttr::Binary {
            part: p, partial, ..
        } => {
            let mut out = String::from("BINARY[");
            part(&mut out, p);
            out.push(']');
            origin(&mut out, *partial);
            return out;
        }
        FetchAttr::BinarySize(p) => {
            let mut out = String::from("BINARY.SIZE[");
            part(&mut out, p);
            out.push(']');
            return out;
        }
    };
    simple.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_command;
    use crate::types::Command;

    /// Labels of the items of `a FETCH 1 (<items>)`.
    fn labels(items: &str) -> Vec<String> {
        let cmd = parse_command(format!("a FETCH 1 ({items})").as_bytes()).map(|t| t.command);
        match cmd {
            Ok(Command::Fetch { attrs, .. }) => attrs.iter().map(section_label).collect(),
            other => panic!("{items}: {other:?}"),
        }
    }

    #[test]
    fn table() {
        let cases = [
            (
                "BODY.PEEK[HEADER.FIELDS (From To)]<0.100>",
                "BODY[HEADER.FIELDS (From To)]<0>",
            ),
            ("body[1.2]", "BODY[1.2]"),
            ("BODY[]", "BODY[]"),
            ("BODY[]<10.5>", "BODY[]<10>"),
            ("BODY[1.MIME]", "BODY[1.MIME]"),
            ("BODY.PEEK[TEXT]<10.20>", "BODY[TEXT]<10>"),
            (
                "BODY[2.1.HEADER.FIELDS.NOT (\"X Y\" Received)]",
                "BODY[2.1.HEADER.FIELDS.NOT (\"X Y\" Received)]",
            ),
            ("BODY[4.2.2.HEADER]", "BODY[4.2.2.HEADER]"),
            ("BINARY[1]", "BINARY[1]"),
            ("BINARY.PEEK[1.3]<5.10>", "BINARY[1.3]<5>"),
            ("BINARY[]", "BINARY[]"),
            ("BINARY.SIZE[1]", "BINARY.SIZE[1]"),
            ("rfc822.size", "RFC822.SIZE"),
            ("RFC822.HEADER", "RFC822.HEADER"),
            ("RFC822.TEXT", "RFC822.TEXT"),
            ("RFC822", "RFC822"),
            ("BODY", "BODY"),
            ("BODYSTRUCTURE", "BODYSTRUCTURE"),
            ("ENVELOPE", "ENVELOPE"),
            ("FLAGS", "FLAGS"),
            ("INTERNALDATE", "INTERNALDATE"),
            ("UID", "UID"),
            ("MODSEQ", "MODSEQ"),
        ];
        for (item, want) in cases {
            assert_eq!(labels(item), vec![want.to_owned()], "{item}");
        }
    }
}
