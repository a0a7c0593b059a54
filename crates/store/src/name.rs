//! Maildir file names: making unique names, parsing and formatting flags.
//!
//! Offers [`UniqueNames`] (the generator of new unique names, following the
//! Maildir naming rules of cr.yp.to/proto/maildir.html:
//! `<secs>.M<usecs>P<pid>Q<counter>R<random hex>.<hostname>`), the parser
//! [`parse_file_name`] (pure, total, fuzzable: any `&str` gives `Some` or
//! `None`, never a panic) and [`cur_name`], which puts flags back on a name.
//!
//! File name layout (see docs/store-format.md):
//! `<unique>,S=<disk size>,W=<CRLF size>:2,<flags>`. The *base* of a name is
//! everything before the first `:`; it never changes for the life of a
//! message, whatever its flags, and is the key the index matches files by.
//! Flag letters are kept in ASCII order; D F R S T are the system flags (Draft,
//! Flagged, Replied = \Answered, Seen, Trashed = \Deleted); other letters set by
//! other tools are kept as they are. IMAP keywords are not in file names.
//!
//! Security: the hostname is escaped (`/` -> `\057`, `:` -> `\072`, and `,`
//! -> `\054` since `,` starts our fields), so a generated name never holds a
//! path separator. The parser refuses names with `/`, NUL or a leading `.`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// \Seen (`S`).
pub const SEEN: u8 = 1;
/// \Answered (`R`).
pub const ANSWERED: u8 = 2;
/// \Flagged (`F`).
pub const FLAGGED: u8 = 4;
/// \Deleted (`T`).
pub const DELETED: u8 = 8;
/// \Draft (`D`).
pub const DRAFT: u8 = 16;

/// System flag bits and their Maildir letters, in ASCII order of the letters.
const LETTERS: [(u8, u8); 5] = [
    (DRAFT, b'D'),
    (FLAGGED, b'F'),
    (ANSWERED, b'R'),
    (SEEN, b'S'),
    (DELETED, b'T'),
];

/// A Maildir file name, split into its parts. Borrows from the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedName<'a> {
    /// Everything before the first `:` (the unique part and the `,X=` fields).
    pub base: &'a str,
    /// The unique part: before the first `,` of the base.
    pub unique: &'a str,
    /// `S=`: the size on disk, if present.
    pub disk_size: Option<u64>,
    /// `W=`: the size in CRLF form, if present.
    pub crlf_size: Option<u64>,
    /// Whether the name has an info part in the `:2,` form.
    pub has_info: bool,
    /// System flag bits from the letters D F R S T.
    pub flags: u8,
    /// The span of the info part from the first to the last letter that is
    /// no system flag (letters set by other tools; may hold system letters
    /// found between them, which [`cur_name`] ignores).
    pub other_flags: &'a str,
}

/// Parses a file name found in `cur/` or `new/`. `None` for names that are no
/// messages (dot files, names with `/` or NUL, empty unique parts).
pub fn parse_file_name(name: &str) -> Option<ParsedName<'_>> {
    if name.is_empty() || name.starts_with('.') || name.bytes().any(|b| b == b'/' || b == 0) {
        return None;
    }
    let (base, info) = match name.find(':') {
        Some(i) => (&name[..i], Some(&name[i + 1..])),
        None => (name, None),
    };
    let mut fields = base.split(',');
    let unique = fields.next().unwrap_or("");
    if unique.is_empty() {
        return None;
    }
    let mut disk_size = None;
    let mut crlf_size = None;
    for f in fields {
        if let Some(v) = f.strip_prefix("S=") {
            disk_size = v.parse().ok();
        } else if let Some(v) = f.strip_prefix("W=") {
            crlf_size = v.parse().ok();
        }
    }
    let mut flags = 0;
    let mut other_start = None;
    let mut other_end = 0;
    let mut has_info = false;
    if let Some(letters) = info.and_then(|i| i.strip_prefix("2,")) {
        has_info = true;
        // `letters` is a suffix of `name`: compute its offset to borrow the
        // non-system letters as one slice (they are contiguous in sane names;
        // scattered ones are collected as the span from first to last).
        let off = name.len() - letters.len();
        for (i, c) in letters.char_indices() {
            match LETTERS.iter().find(|(_, l)| char::from(*l) == c) {
                Some((bit, _)) => flags |= bit,
                None => {
                    other_start.get_or_insert(off + i);
                    other_end = off + i + c.len_utf8();
                }
            }
        }
    }
    let other_flags = match other_start {
        Some(s) => &name[s..other_end],
        None => "",
    };
    Some(ParsedName {
        base,
        unique,
        disk_size,
        crlf_size,
        has_info,
        flags,
        other_flags,
    })
}

/// The name a message with `base` and these flags has in `cur/`. Letters
/// are sorted in ASCII order; `other` letters that are no system flags are
/// kept (D F R S T among them are ignored: `flags` decides those).
pub fn cur_name(base: &str, flags: u8, other: &str) -> String {
    let mut letters: Vec<char> = LETTERS
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, l)| char::from(*l))
        .collect();
    letters.extend(
        other
            .chars()
            .filter(|c| !matches!(c, 'D' | 'F' | 'R' | 'S' | 'T' | ',' | ':' | '/')),
    );
    letters.sort_unstable();
    letters.dedup();
    let mut s = String::with_capacity(base.len() + 3 + letters.len());
    s.push_str(base);
    s.push_str(":2,");
    s.extend(letters);
    s
}

/// The base name of a new message: the unique part plus its two sizes.
pub fn base_with_sizes(unique: &str, disk_size: u64, crlf_size: u64) -> String {
    format!("{unique},S={disk_size},W={crlf_size}")
}

/// Makes unique names for one process. Shared by all threads (the counter is
/// atomic); processes are told apart by the pid, hosts by the hostname, and a
/// random part guards against pid reuse within one microsecond.
#[derive(Debug)]
pub struct UniqueNames {
    host: String,
    counter: AtomicU64,
}

impl UniqueNames {
    /// A generator for this host.
    pub fn new(hostname: &str) -> UniqueNames {
        UniqueNames {
            host: escape_host(hostname),
            counter: AtomicU64::new(0),
        }
    }

    /// A new unique name.
    pub fn next(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let q = self.counter.fetch_add(1, Ordering::Relaxed);
        let r: u32 = rand::random();
        format!(
            "{}.M{}P{}Q{}R{:08x}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            q,
            r,
            self.host
        )
    }
}

/// Escapes a hostname for use in a unique name.
fn escape_host(h: &str) -> String {
    let mut s = String::with_capacity(h.len());
    for c in h.chars() {
        match c {
            '/' => s.push_str("\\057"),
            ':' => s.push_str("\\072"),
            ',' => s.push_str("\\054"),
            c if c.is_control() => {
                let _ = write!(s, "\\{:03o}", u32::from(c) & 0o377);
            }
            c => s.push(c),
        }
    }
    if s.is_empty() {
        s.push_str("localhost");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_name() {
        let p = parse_file_name("1700000000.M1P2Q3R0a.host,S=10,W=12:2,FRS").unwrap();
        assert_eq!(p.base, "1700000000.M1P2Q3R0a.host,S=10,W=12");
        assert_eq!(p.unique, "1700000000.M1P2Q3R0a.host");
        assert_eq!(p.disk_size, Some(10));
        assert_eq!(p.crlf_size, Some(12));
        assert!(p.has_info);
        assert_eq!(p.flags, FLAGGED | ANSWERED | SEEN);
        assert_eq!(p.other_flags, "");
    }

    #[test]
    fn parses_plain_and_foreign_names() {
        let p = parse_file_name("12345.abc.example").unwrap();
        assert_eq!(
            (p.base, p.disk_size, p.has_info, p.flags),
            ("12345.abc.example", None, false, 0)
        );
        let p = parse_file_name("x:2,DPTa").unwrap();
        assert_eq!(p.flags, DRAFT | DELETED);
        assert_eq!(cur_name("x", p.flags, p.other_flags), "x:2,DPTa");
        let p = parse_file_name("x:2,Sab").unwrap();
        assert_eq!(p.other_flags, "ab");
        let p = parse_file_name("x,S=abc:1,foo").unwrap();
        assert_eq!((p.disk_size, p.has_info, p.flags), (None, false, 0));
        for bad in ["", ".hidden", "a/b", "a\0b", ",S=1", ":2,S"] {
            assert!(parse_file_name(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn formats_flags_in_ascii_order() {
        assert_eq!(
            cur_name("b", SEEN | DRAFT | DELETED | FLAGGED | ANSWERED, ""),
            "b:2,DFRST"
        );
        assert_eq!(cur_name("b", 0, ""), "b:2,");
        assert_eq!(cur_name("b", SEEN, "aPS"), "b:2,PSa");
        let n = cur_name("b,S=1", SEEN | FLAGGED, "");
        let p = parse_file_name(&n).unwrap();
        assert_eq!((p.base, p.flags), ("b,S=1", SEEN | FLAGGED));
    }

    #[test]
    fn unique_names_differ_and_escape_host() {
        let g = UniqueNames::new("mx/1:2,x");
        let a = g.next();
        let b = g.next();
        assert_ne!(a, b);
        assert!(a.ends_with(".mx\\0571\\0722\\054x"), "{a}");
        assert!(!a.contains('/') && !a.contains(':') && !a.contains(','));
        let p = parse_file_name(&a).unwrap();
        assert_eq!(p.unique, a);
    }

    #[test]
    fn parser_never_panics_on_odd_input() {
        let alphabet = ["a", ":", "2", ",", "S=", "W=", "9", "é", "T", ".", "/"];
        let mut seed = 7u32;
        for _ in 0..2000 {
            let mut s = String::new();
            for _ in 0..(seed % 12) {
                seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
                s.push_str(alphabet[(seed >> 16) as usize % alphabet.len()]);
            }
            let _ = parse_file_name(&s);
        }
    }
}
