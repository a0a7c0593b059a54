//! Content-Transfer-Encoding decoders (RFC 2045 §6.7 quoted-printable,
//! §6.8 base64), lenient the way mail readers are: base64 skips every byte
//! outside its alphabet and stops at padding; quoted-printable keeps a
//! malformed `=` sequence as it is. Output is at most the input's size; no
//! failure, no panic.

/// How a body is transfer-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cte {
    /// 7bit, 8bit, binary, or absent: the octets are the content.
    Identity,
    Base64,
    QuotedPrintable,
    /// Anything else (x-uuencode, garbage): RFC 3516 UNKNOWN-CTE.
    Unknown,
}

impl Cte {
    pub fn of(value: Option<&str>) -> Cte {
        match value.map(str::trim) {
            None | Some("" | "7bit" | "8bit" | "binary") => Cte::Identity,
            Some("base64") => Cte::Base64,
            Some("quoted-printable") => Cte::QuotedPrintable,
            Some(_) => Cte::Unknown,
        }
    }
}

fn b64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decode base64, skipping line ends and any byte outside the alphabet;
/// stops at the first `=`.
pub(crate) fn base64(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut n = 0;
    for &b in input {
        if b == b'=' {
            break;
        }
        let Some(v) = b64_value(b) else { continue };
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
            n = 0;
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Decode quoted-printable: `=XX` escapes, soft line breaks (`=` then
/// optional blanks then the line end), trailing blanks of a line dropped.
/// Line ends are kept as they are.
pub(crate) fn quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        match b {
            b'=' => {
                if let (Some(h), Some(l)) = (
                    input.get(i + 1).copied().and_then(hex),
                    input.get(i + 2).copied().and_then(hex),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                // Soft line break?
                let mut j = i + 1;
                while j < input.len() && matches!(input[j], b' ' | b'\t') {
                    j += 1;
                }
                if input[j..].starts_with(b"\r\n") {
                    i = j + 2;
                } else if input[j..].starts_with(b"\n") {
                    i = j + 1;
                } else if j == input.len() {
                    i = j;
                } else {
                    out.push(b'=');
                    i += 1;
                }
            }
            b' ' | b'\t' => {
                // Trailing blanks before a line end are padding.
                let mut j = i;
                while j < input.len() && matches!(input[j], b' ' | b'\t') {
                    j += 1;
                }
                if !(j == input.len() || input[j] == b'\n' || input[j..].starts_with(b"\r\n")) {
                    out.extend_from_slice(&input[i..j]);
                }
                i = j;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Undo `cte` on `body`; None for [`Cte::Unknown`].
pub(crate) fn decode(cte: Cte, body: &[u8]) -> Option<Vec<u8>> {
    match cte {
        Cte::Identity => Some(body.to_vec()),
        Cte::Base64 => Some(base64(body)),
        Cte::QuotedPrintable => Some(quoted_printable(body)),
        Cte::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_cases() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"aGVsbG8=", b"hello"),
            (b"aGVs\r\nbG8gd29y\r\nbGQ=\r\n", b"hello world"),
            (b"aGVsbG8", b"hello"),
            (b"", b""),
            (b"!!aG Vs*bG8=junk", b"hello"),
            (b"YQ", b"a"),
            (b"Y", b""),
        ];
        for (i, o) in cases {
            assert_eq!(base64(i), *o, "{:?}", String::from_utf8_lossy(i));
        }
    }

    #[test]
    fn qp_cases() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"caf=C3=A9", "café".as_bytes()),
            (b"soft=\r\nbreak", b"softbreak"),
            (b"soft= \nbreak", b"softbreak"),
            (b"trail  \r\nx", b"trail\r\nx"),
            (b"a = b", b"a = b"),
            (b"end=", b"end"),
            (b"=4", b"=4"),
            (b"=zz", b"=zz"),
            (b"in  side", b"in  side"),
        ];
        for (i, o) in cases {
            assert_eq!(quoted_printable(i), *o, "{:?}", String::from_utf8_lossy(i));
        }
        assert_eq!(Cte::of(Some("x-uuencode")), Cte::Unknown);
        assert_eq!(Cte::of(None), Cte::Identity);
    }
}

/// `s` as one RFC 2047 encoded word (`=?utf-8?b?...?=`), for sending a
/// decoded non-ASCII display name to a client that did not enable UTF-8.
pub(crate) fn encoded_word(s: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(s.len() * 4 / 3 + 16);
    out.push_str("=?utf-8?b?");
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out.push_str("?=");
    out
}

#[cfg(test)]
mod word_tests {
    #[test]
    fn words() {
        assert_eq!(super::encoded_word("é"), "=?utf-8?b?w6k=?=");
        assert_eq!(super::encoded_word("abc"), "=?utf-8?b?YWJj?=");
        assert_eq!(super::encoded_word("ab"), "=?utf-8?b?YWI=?=");
        assert_eq!(super::base64(b"w6k="), "é".as_bytes());
    }
}
