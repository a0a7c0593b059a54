//! Modified UTF-7 for mailbox names (RFC 3501 §5.1.3), as used by IMAP4rev1
//! clients that have not enabled UTF8=ACCEPT.
//!
//! Printable US-ASCII except `&` stands for itself; `&` is `&-`; anything
//! else is UTF-16BE in a modified base64 (`,` for `/`, no padding) between
//! `&` and `-`.
//!
//! [`decode`] is strict: it accepts exactly what [`encode`] produces, so
//! each name has one spelling and two spellings never reach the same
//! mailbox. Refused: bytes outside printable ASCII, an unterminated or
//! empty `&...-` (other than `&-`), a bad base64 character, leftover bits
//! that are not zero or make a whole extra byte, an odd number of bytes,
//! unpaired surrogates, printable ASCII encoded in base64, and two encoded
//! runs next to each other (the encoder makes one). The encoders of the
//! common clients (Thunderbird, Outlook) and servers (Dovecot) produce this
//! canonical form as far as we know; if one turns out not to, relax the
//! check here and fold names before comparing. No panics; linear time.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn printable(c: u32) -> bool {
    (0x20..=0x7e).contains(&c)
}

fn b64_value(b: u8) -> Option<u32> {
    Some(u32::from(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b',' => 63,
        _ => return None,
    }))
}

/// Encodes a mailbox name in modified UTF-7.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut units: Vec<u16> = Vec::new();
    for c in s.chars() {
        if printable(u32::from(c)) {
            flush(&mut units, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut units, &mut out);
    out
}

/// Writes pending UTF-16 units as one `&...-` run.
fn flush(units: &mut Vec<u16>, out: &mut String) {
    if units.is_empty() {
        return;
    }
    out.push('&');
    let mut acc: u32 = 0;
    let mut bits = 0;
    for u in units.drain(..) {
        acc = (acc << 16) | u32::from(u);
        bits += 16;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(B64[((acc >> bits) & 0x3f) as usize]));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(B64[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out.push('-');
}

/// Decodes a modified UTF-7 name; None if it is not canonical modified
/// UTF-7 (see the module notes).
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    let mut prev_run_end = usize::MAX;
    while i < b.len() {
        let c = b[i];
        if !printable(u32::from(c)) {
            return None;
        }
        if c != b'&' {
            out.push(char::from(c));
            i += 1;
            continue;
        }
        let start = i + 1;
        let len = b[start..].iter().position(|&x| x == b'-')?;
        let end = start + len;
        if len == 0 {
            out.push('&');
            i = end + 1;
            continue;
        }
        if prev_run_end == i {
            // Two encoded runs in a row: the encoder would have made one.
            return None;
        }
        let mut units = Vec::with_capacity(len * 6 / 16);
        let mut acc: u32 = 0;
        let mut bits = 0;
        for &x in &b[start..end] {
            acc = (acc << 6) | b64_value(x)?;
            bits += 6;
            if bits >= 16 {
                bits -= 16;
                units.push(((acc >> bits) & 0xffff) as u16);
                acc &= (1 << bits) - 1;
            }
        }
        // Leftover bits: fewer than 6 and all zero (else a wasted character
        // or a dropped half unit).
        if bits >= 6 || acc != 0 {
            return None;
        }
        for c in char::decode_utf16(units) {
            let c = c.ok()?;
            if printable(u32::from(c)) {
                return None;
            }
            out.push(c);
        }
        i = end + 1;
        prev_run_end = i;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        // RFC 3501 §5.1.3.
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        assert_eq!(decode("&Jjo!"), None);
        assert_eq!(decode("&U,BTF2XlZyyKng-"), Some("台北日本語".to_owned()));
    }

    #[test]
    fn table() {
        let cases = [
            ("", ""),
            ("INBOX", "INBOX"),
            ("a&b", "a&-b"),
            ("&", "&-"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("Éléments envoyés", "&AMk-l&AOk-ments envoy&AOk-s"),
            ("Корзина", "&BBoEPgRABDcEOAQ9BDA-"),
            ("😀", "&2D3eAA-"),
            ("tab\there", "tab&AAk-here"),
            ("~", "~"),
        ];
        for (plain, enc) in cases {
            assert_eq!(encode(plain), enc, "{plain}");
            assert_eq!(decode(enc).as_deref(), Some(plain), "{enc}");
        }
    }

    #[test]
    fn refused() {
        for bad in [
            "&",          // unterminated
            "&AOk",       // unterminated
            "&AOk-&AOk-", // two runs in a row
            "&AGE-",      // 'a' encoded
            "&AOl-",      // non-zero leftover bits
            "&AOkA-",     // a whole wasted character
            "&AO-",       // half a unit
            "&2D0-",      // unpaired high surrogate
            "&3gA-",      // unpaired low surrogate
            "&AO/-",      // '/' is not modified base64
            "&AO=-",      // padding
            "caf\u{e9}",  // raw 8-bit
            "a\tb",       // control character
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trip_all_kinds() {
        let s: String = (0u32..0x3000)
            .step_by(7)
            .filter_map(char::from_u32)
            .collect();
        assert_eq!(decode(&encode(&s)).as_deref(), Some(s.as_str()));
    }
}
