//! Writing IMAP response syntax: strings, flag lists, dates, UID sets.

use std::fmt::Write as _;

/// Characters that may appear in an atom (RFC 9051 `ATOM-CHAR`).
fn atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// True if `s` can be sent as a quoted string: no CR, LF or NUL, and (unless
/// `utf8` is allowed, as with IMAP4rev2 / UTF8=ACCEPT) only ASCII.
fn quotable(s: &[u8], utf8: bool) -> bool {
    s.len() <= 1024
        && s.iter()
            .all(|&b| b != 0 && b != b'\r' && b != b'\n' && (utf8 || b < 0x80))
        && (!utf8 || std::str::from_utf8(s).is_ok())
}

/// A quoted string, or a literal when quoting cannot carry it. NUL, which
/// no string may hold (RFC 9051 §4.3: only literal8 may), goes out as 0x80
/// (a header field with a NUL in it, in ENVELOPE).
pub fn string(out: &mut Vec<u8>, s: &[u8], utf8: bool) {
    if s.contains(&0) {
        let clean: Vec<u8> = s.iter().map(|&b| if b == 0 { 0x80 } else { b }).collect();
        return literal(out, &clean);
    }
    if quotable(s, utf8) {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

/// A synchronising-form literal `{n}\r\n` followed by the octets.
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    let _ = write!(Lossy(out), "{{{}}}\r\n", s.len());
    out.extend_from_slice(s);
}

/// An atom when `s` is one (and not NIL), else a string.
pub fn astring(out: &mut Vec<u8>, s: &str, utf8: bool) {
    let b = s.as_bytes();
    if !b.is_empty() && b.iter().all(|&c| atom_char(c)) && !s.eq_ignore_ascii_case("NIL") {
        out.extend_from_slice(b);
    } else {
        string(out, b, utf8);
    }
}

/// NIL or a string.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>, utf8: bool) {
    match s {
        None => out.extend_from_slice(b"NIL"),
        Some(s) => string(out, s, utf8),
    }
}

/// `(\Seen \Answered $Forwarded)`.
pub fn flag_list<'a>(out: &mut Vec<u8>, flags: impl IntoIterator<Item = &'a str>) {
    out.push(b'(');
    for (i, f) in flags.into_iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(f.as_bytes());
    }
    out.push(b')');
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An INTERNALDATE: `"23-Nov-2026 21:05:09 +0000"` (quotes included), for
/// `unix` seconds shown at `offset_minutes` east of UTC.
pub fn date_time(unix: i64, offset_minutes: i32) -> String {
    let local = unix + i64::from(offset_minutes) * 60;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let secs = local.rem_euclid(86_400);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let off = offset_minutes.unsigned_abs();
    format!(
        "\"{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}\"",
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        sign,
        off / 60,
        off % 60
    )
}

/// Sorted, de-duplicated numbers as a compact set: `1:3,5,9:10`.
/// Input need not be sorted. Empty input gives an empty string.
pub fn seq_set(nums: &[u32]) -> String {
    let mut v = nums.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}:{end}");
        }
        i += 1;
    }
    out
}

/// `fmt::Write` into a byte vector.
struct Lossy<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Lossy<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_never_goes_out_in_a_string() {
        // Found by fuzz/fuzz_targets/imap_encode.rs: a header value holding
        // NUL went out in an ordinary literal (RFC 9051 §4.3 forbids it).
        let mut out = Vec::new();
        string(&mut out, b"a\0b", false);
        assert_eq!(out, b"{3}\r\na\x80b");
        out.clear();
        nstring(&mut out, Some(b"\0"), true);
        assert_eq!(out, b"{1}\r\n\x80");
    }

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap_or_default()
    }

    #[test]
    fn strings() {
        assert_eq!(s(|o| astring(o, "INBOX", false)), "INBOX");
        assert_eq!(s(|o| astring(o, "a b", false)), "\"a b\"");
        assert_eq!(s(|o| astring(o, "nil", false)), "\"nil\"");
        assert_eq!(s(|o| astring(o, "", false)), "\"\"");
        assert_eq!(s(|o| string(o, b"a\"b\\", false)), "\"a\\\"b\\\\\"");
        assert_eq!(s(|o| string(o, b"l1\r\nl2", false)), "{6}\r\nl1\r\nl2");
        assert_eq!(s(|o| string(o, "é".as_bytes(), false)), "{2}\r\né");
        assert_eq!(s(|o| string(o, "é".as_bytes(), true)), "\"é\"");
        assert_eq!(s(|o| nstring(o, None, false)), "NIL");
        assert_eq!(s(|o| flag_list(o, ["\\Seen", "$Junk"])), "(\\Seen $Junk)");
    }

    #[test]
    fn dates() {
        assert_eq!(date_time(0, 0), "\"01-Jan-1970 00:00:00 +0000\"");
        assert_eq!(
            date_time(1_795_467_909, 60),
            "\"23-Nov-2026 22:05:09 +0100\""
        );
        assert_eq!(date_time(0, -150), "\"31-Dec-1969 21:30:00 -0230\"");
        for days in [-800_000, -1, 0, 59, 60, 365, 11_016, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn sets() {
        assert_eq!(seq_set(&[5, 1, 2, 3, 9, 10, 3]), "1:3,5,9:10");
        assert_eq!(seq_set(&[]), "");
        assert_eq!(seq_set(&[u32::MAX]), "4294967295");
    }
}
