//! Changes end-of-data checks ask of a message beyond adding fields above
//! it: removing or changing header fields (rspamd's `remove_headers`, its
//! rewritten Subject, a milter's `chgheader`), inserting one at a place, or
//! replacing the body or the whole message (a milter's `replbody`, a virus
//! notice). The sink applies them once every check accepted, by rewriting
//! the message ([`apply`]: the header section read into memory, bounded by
//! [`MAX_HEADER_SECTION`], the body copied as it is).
//!
//! Field names and values come from peers: each new field is checked as
//! [`Message::add_header`](crate::Message::add_header) checks, and refused
//! when it is not one well-formed field.

use std::io::{self, BufRead, Read, Write};

/// The largest header section a message may have for its fields to be
/// edited.
pub const MAX_HEADER_SECTION: usize = 256 * 1024;

/// One change. Field names compare without regard to case; `nth` counts
/// the fields of that name from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Removes the `nth` field named `name`, or every one when `nth` is 0.
    Remove { name: String, nth: usize },
    /// Gives the `nth` field named `name` this value (a new field at the
    /// end of the header section if there is no such field).
    Change {
        name: String,
        nth: usize,
        value: String,
    },
    /// Inserts a whole field (`Name: value`, without CRLF) before the
    /// `index`th field (0 = first; past the end = last).
    Insert { index: usize, field: String },
    /// Replaces everything after the header section's empty line.
    ReplaceBody(Vec<u8>),
    /// Replaces the whole message (network form, CRLF lines).
    ReplaceAll(Vec<u8>),
}

/// One field of the header section: its whole bytes (lines with their
/// CRLF) and its name.
struct Field {
    raw: Vec<u8>,
    name: String,
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

/// Reads the header section of `r`: its fields, and whether it ended with
/// an empty line (read too).
fn read_fields(r: &mut impl BufRead) -> io::Result<(Vec<Field>, bool)> {
    let mut fields: Vec<Field> = Vec::new();
    let mut total = 0usize;
    loop {
        let mut line = Vec::new();
        let n = r
            .by_ref()
            .take(MAX_HEADER_SECTION as u64 + 1)
            .read_until(b'\n', &mut line)?;
        total += n;
        if total > MAX_HEADER_SECTION {
            return Err(invalid("header section too large to edit"));
        }
        if n == 0 {
            return Ok((fields, false));
        }
        if line == b"\r\n" || line == b"\n" {
            return Ok((fields, true));
        }
        match (line[0], fields.last_mut()) {
            (b' ' | b'\t', Some(f)) => f.raw.extend_from_slice(&line),
            _ => {
                let name = line
                    .iter()
                    .position(|&b| b == b':')
                    .map(|p| {
                        String::from_utf8_lossy(&line[..p])
                            .trim()
                            .to_ascii_lowercase()
                    })
                    .unwrap_or_default();
                fields.push(Field { raw: line, name });
            }
        }
    }
}

fn field_bytes(name: &str, value: &str) -> Vec<u8> {
    let sep = if value.starts_with([' ', '\t']) {
        ":"
    } else {
        ": "
    };
    format!("{name}{sep}{value}\r\n").into_bytes()
}

/// The position in `fields` of the `nth` (from 1) field named `name`.
fn position(fields: &[Field], name: &str, nth: usize) -> Option<usize> {
    let name = name.to_ascii_lowercase();
    fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name == name)
        .nth(nth.checked_sub(1)?)
        .map(|(i, _)| i)
}

/// The edits that would change a message whose header section is read
/// from `input`: a removal of a field the message does not have changes
/// nothing (rspamd asks to remove `X-Spam` from every message, a milter
/// that replaces its fields removes them first), and dropping it spares
/// rewriting the message.
pub fn effective(input: &mut dyn Read, edits: &[Edit]) -> io::Result<Vec<Edit>> {
    let (fields, _) = read_fields(&mut io::BufReader::new(input))?;
    let count = |name: &str| {
        let name = name.to_ascii_lowercase();
        fields.iter().filter(|f| f.name == name).count()
    };
    Ok(edits
        .iter()
        .filter(|e| match e {
            Edit::Remove { name, nth: 0 } => count(name) > 0,
            Edit::Remove { name, nth } => count(name) >= *nth,
            _ => true,
        })
        .cloned()
        .collect())
}

/// Writes `input` with `edits` applied to `out`.
pub fn apply(input: &mut dyn Read, out: &mut dyn Write, edits: &[Edit]) -> io::Result<()> {
    if let Some(Edit::ReplaceAll(all)) = edits
        .iter()
        .rev()
        .find(|e| matches!(e, Edit::ReplaceAll(_)))
    {
        return out.write_all(all);
    }
    let mut r = io::BufReader::new(input);
    let (mut fields, had_end) = read_fields(&mut r)?;
    for e in edits {
        match e {
            Edit::Remove { name, nth: 0 } => {
                let name = name.to_ascii_lowercase();
                fields.retain(|f| f.name != name);
            }
            Edit::Remove { name, nth } => {
                if let Some(i) = position(&fields, name, *nth) {
                    fields.remove(i);
                }
            }
            Edit::Change { name, nth, value } => {
                match position(&fields, name, *nth) {
                    Some(i) => {
                        // The field keeps its name as written.
                        let f = &mut fields[i];
                        let colon = f.raw.iter().position(|&b| b == b':').unwrap_or(0);
                        let written = String::from_utf8_lossy(&f.raw[..colon]).trim().to_string();
                        f.raw = field_bytes(&written, value);
                    }
                    None => fields.push(Field {
                        raw: field_bytes(name, value),
                        name: name.to_ascii_lowercase(),
                    }),
                }
            }
            Edit::Insert { index, field } => {
                let name = field
                    .split_once(':')
                    .map(|(n, _)| n.trim().to_ascii_lowercase())
                    .unwrap_or_default();
                let mut raw = field.as_bytes().to_vec();
                raw.extend_from_slice(b"\r\n");
                fields.insert((*index).min(fields.len()), Field { raw, name });
            }
            Edit::ReplaceBody(_) | Edit::ReplaceAll(_) => {}
        }
    }
    for f in &fields {
        out.write_all(&f.raw)?;
    }
    let body = edits.iter().rev().find_map(|e| match e {
        Edit::ReplaceBody(b) => Some(b),
        _ => None,
    });
    match body {
        Some(b) => {
            out.write_all(b"\r\n")?;
            out.write_all(b)
        }
        None => {
            if had_end {
                out.write_all(b"\r\n")?;
            }
            io::copy(&mut r, out).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(msg: &str, edits: &[Edit]) -> String {
        let mut out = Vec::new();
        apply(&mut msg.as_bytes(), &mut out, edits).unwrap();
        String::from_utf8(out).unwrap()
    }

    const MSG: &str =
        "Received: from a\r\n\tby b\r\nSubject: hi\r\nX-Spam: no\r\nx-spam: again\r\n\r\nbody\r\n";

    #[test]
    fn header_fields_removed_changed_inserted() {
        let out = run(
            MSG,
            &[
                Edit::Remove {
                    name: "X-SPAM".into(),
                    nth: 2,
                },
                Edit::Change {
                    name: "subject".into(),
                    nth: 1,
                    value: "[SPAM] hi".into(),
                },
                Edit::Change {
                    name: "X-New".into(),
                    nth: 1,
                    value: "appended".into(),
                },
                Edit::Insert {
                    index: 0,
                    field: "X-First: 1".into(),
                },
                Edit::Insert {
                    index: 99,
                    field: "X-Last: 2".into(),
                },
            ],
        );
        assert_eq!(
            out,
            "X-First: 1\r\nReceived: from a\r\n\tby b\r\nSubject: [SPAM] hi\r\nX-Spam: no\r\n\
             X-New: appended\r\nX-Last: 2\r\n\r\nbody\r\n"
        );
        let out = run(
            MSG,
            &[Edit::Remove {
                name: "x-spam".into(),
                nth: 0,
            }],
        );
        assert_eq!(
            out,
            "Received: from a\r\n\tby b\r\nSubject: hi\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn removals_of_absent_fields_are_no_edits() {
        let edits = [
            Edit::Remove {
                name: "X-Absent".into(),
                nth: 0,
            },
            Edit::Remove {
                name: "x-spam".into(),
                nth: 3,
            },
            Edit::Remove {
                name: "X-Spam".into(),
                nth: 2,
            },
        ];
        let left = effective(&mut MSG.as_bytes(), &edits).unwrap();
        assert_eq!(left, [edits[2].clone()]);
    }

    #[test]
    fn body_and_whole_message_replaced() {
        let out = run(MSG, &[Edit::ReplaceBody(b"new body\r\n".to_vec())]);
        assert!(out.ends_with("x-spam: again\r\n\r\nnew body\r\n"), "{out}");
        let out = run(
            MSG,
            &[Edit::ReplaceAll(b"Subject: notice\r\n\r\nx\r\n".to_vec())],
        );
        assert_eq!(out, "Subject: notice\r\n\r\nx\r\n");
    }

    #[test]
    fn no_empty_line_and_oversized_headers() {
        assert_eq!(run("Subject: x\r\n", &[]), "Subject: x\r\n");
        let huge = format!("X-Big: {}\r\n\r\nb", "a".repeat(MAX_HEADER_SECTION));
        let mut out = Vec::new();
        assert!(apply(&mut huge.as_bytes(), &mut out, &[]).is_err());
    }
}
