//! What an SMTP or LMTP client needs besides the reply parser: the EHLO/LHLO
//! keyword list read into [`Extensions`], the MAIL/RCPT command lines with
//! their ESMTP parameters, xtext-encoded where RFC 3461 asks, and the
//! dot-stuffing of DATA ([`DotStuffer`]).
//!
//! Pure code: takes the EHLO reply's text lines (already parsed and bounded
//! by the caller's reply parser) and strings, returns values and lines.
//!
//! Standards: RFC 5321 §4.1.1.1 (EHLO), §4.5.2 (transparency), RFC 2033
//! (LHLO), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC
//! 3461 (DSN: RET, ENVID, NOTIFY, ORCPT, xtext), RFC 3030 (CHUNKING,
//! BINARYMIME), RFC 2920 (PIPELINING), RFC 3207 (STARTTLS), RFC 4954 (AUTH);
//! `XQUEUEID` is facteur's own LMTP extension (the queue id of the message,
//! so lmtpd's log lines carry it).
//!
//! Security: what a peer advertises is only believed within bounds (at most
//! [`MAX_AUTH_MECHS`] mechanisms of at most 20 characters, a SIZE that is a
//! number); addresses and parameter values are never allowed to carry CR, LF
//! or spaces into a command line: [`mail_from`] and [`rcpt_to`] are the one
//! checked path formatter of both dialects, and refuse an address with a
//! control character, a space or an angle bracket (the queue-file reader
//! refuses control characters too, but this module does not rely on it);
//! parameter values are xtext-encoded or checked.

/// Most SASL mechanism names kept from an AUTH line.
pub const MAX_AUTH_MECHS: usize = 16;

/// What a server offered in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    pub pipelining: bool,
    /// `SIZE n`: the largest message it takes (`Some(0)`: no fixed limit).
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub chunking: bool,
    pub binary_mime: bool,
    pub starttls: bool,
    pub enhanced_status_codes: bool,
    /// SASL mechanisms, upper case.
    pub auth: Vec<String>,
    /// `XQUEUEID` (LMTP, facteur-lmtpd): MAIL FROM may carry the queue id.
    pub xqueueid: bool,
}

impl Extensions {
    /// Reads the lines of a 250 EHLO reply (the first line is the server's
    /// name and is skipped). Unknown keywords are ignored.
    pub fn from_ehlo<S: AsRef<str>>(lines: &[S]) -> Extensions {
        let mut x = Extensions::default();
        for line in lines.iter().skip(1) {
            let mut words = line.as_ref().split_ascii_whitespace();
            let Some(kw) = words.next() else { continue };
            match kw.to_ascii_uppercase().as_str() {
                "PIPELINING" => x.pipelining = true,
                "SIZE" => {
                    x.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
                }
                "8BITMIME" => x.eight_bit_mime = true,
                "SMTPUTF8" => x.smtputf8 = true,
                "DSN" => x.dsn = true,
                "CHUNKING" => x.chunking = true,
                "BINARYMIME" => x.binary_mime = true,
                "STARTTLS" => x.starttls = true,
                "ENHANCEDSTATUSCODES" => x.enhanced_status_codes = true,
                "XQUEUEID" => x.xqueueid = true,
                "AUTH" => {
                    for m in words {
                        if x.auth.len() < MAX_AUTH_MECHS && m.len() <= 20 {
                            x.auth.push(m.to_ascii_uppercase());
                        }
                    }
                }
                _ => {}
            }
        }
        x
    }

    /// Whether a message of `size` octets fits the advertised SIZE.
    pub fn fits(&self, size: u64) -> bool {
        match self.size {
            None | Some(0) => true,
            Some(max) => size <= max,
        }
    }
}

/// RFC 3461 §4: xtext. Printable ASCII other than `+` and `=` stays;
/// everything else (and every non-ASCII byte) becomes `+XX`.
pub fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The body type parameter of MAIL (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    BinaryMime,
}

/// The parameters of one MAIL FROM, already decided against the peer's
/// [`Extensions`] (a `None` or `false` is not sent).
#[derive(Debug, Clone, Default)]
pub struct MailParams<'a> {
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    /// RFC 3461 RET: `true` = HDRS, `false` = FULL.
    pub ret_hdrs: Option<bool>,
    pub envid: Option<&'a str>,
    /// `XQUEUEID=<id>`: sent only when the server offered `XQUEUEID`, and
    /// only a valid queue id (1 to 64 ASCII letters and digits).
    pub queue_id: Option<&'a str>,
}

/// Whether `id` may go into `XQUEUEID=`: what a queue id is.
fn valid_queue_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether `s` can stand between `<` and `>` as-is: no control characters,
/// spaces or angle brackets.
fn clean_path(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || c == ' ' || c == '<' || c == '>')
}

/// `MAIL FROM:<sender> params\r\n`, or `None` when the sender cannot be
/// written safely.
pub fn mail_from(sender: &str, p: &MailParams<'_>) -> Option<String> {
    if !clean_path(sender) {
        return None;
    }
    let mut l = format!("MAIL FROM:<{sender}>");
    if let Some(n) = p.size {
        l.push_str(&format!(" SIZE={n}"));
    }
    match p.body {
        Some(Body::EightBitMime) => l.push_str(" BODY=8BITMIME"),
        Some(Body::BinaryMime) => l.push_str(" BODY=BINARYMIME"),
        Some(Body::SevenBit) => l.push_str(" BODY=7BIT"),
        None => {}
    }
    if p.smtputf8 {
        l.push_str(" SMTPUTF8");
    }
    match p.ret_hdrs {
        Some(true) => l.push_str(" RET=HDRS"),
        Some(false) => l.push_str(" RET=FULL"),
        None => {}
    }
    if let Some(e) = p.envid {
        l.push_str(&format!(" ENVID={}", xtext(e)));
    }
    if let Some(id) = p.queue_id.filter(|i| valid_queue_id(i)) {
        l.push_str(&format!(" XQUEUEID={id}"));
    }
    l.push_str("\r\n");
    Some(l)
}

/// `RCPT TO:<addr> [NOTIFY=...] [ORCPT=rfc822;xtext]\r\n`, or `None` when
/// the address cannot be written safely. `notify` is the list already
/// formatted (`SUCCESS,FAILURE` or `NEVER`); `orcpt` the original address,
/// with or without its `rfc822;` type.
pub fn rcpt_to(addr: &str, notify: Option<&str>, orcpt: Option<&str>) -> Option<String> {
    if !clean_path(addr) {
        return None;
    }
    let mut l = format!("RCPT TO:<{addr}>");
    if let Some(n) =
        notify.filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_uppercase() || b == b','))
    {
        l.push_str(&format!(" NOTIFY={n}"));
    }
    if let Some(o) = orcpt {
        let bare = match o.split_once(';') {
            Some((t, a)) if t.eq_ignore_ascii_case("rfc822") => a,
            _ => o,
        };
        if !bare.is_empty() {
            l.push_str(&format!(" ORCPT=rfc822;{}", xtext(bare)));
        }
    }
    l.push_str("\r\n");
    Some(l)
}

/// Dot-stuffing (RFC 5321 §4.5.2) across chunk boundaries: a line that
/// starts with `.` gets another `.` in front; [`DotStuffer::finish`] ends
/// the data with `.` (after a CRLF when the message did not end with one).
#[derive(Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    /// The last two bytes seen, to know whether the message ends in CRLF.
    tail: [u8; 2],
    empty: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            tail: [0; 2],
            empty: true,
        }
    }
}

impl DotStuffer {
    /// Appends the stuffed form of `chunk` to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut start = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if self.at_line_start && b == b'.' {
                out.extend_from_slice(&chunk[start..i]);
                out.push(b'.');
                start = i;
            }
            self.at_line_start = b == b'\n';
        }
        out.extend_from_slice(&chunk[start..]);
        match chunk {
            [] => {}
            [b] => self.tail = [self.tail[1], *b],
            [.., a, b] => self.tail = [*a, *b],
        }
        self.empty &= chunk.is_empty();
    }

    /// Ends the data: a CRLF if the message did not end with one, then `.`.
    pub fn finish(&self, out: &mut Vec<u8>) {
        if !self.empty && self.tail != *b"\r\n" {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehlo_keywords() {
        let x = Extensions::from_ehlo(&[
            "mx.example.org Hello",
            "PIPELINING",
            "SIZE 10240000",
            "8bitmime",
            "SMTPUTF8",
            "DSN",
            "CHUNKING",
            "STARTTLS",
            "AUTH PLAIN login",
            "ENHANCEDSTATUSCODES",
            "X-UNKNOWN foo",
        ]);
        assert!(x.pipelining && x.eight_bit_mime && x.smtputf8 && x.dsn && x.chunking);
        assert!(x.starttls && x.enhanced_status_codes && !x.binary_mime);
        assert_eq!(x.size, Some(10_240_000));
        assert_eq!(x.auth, vec!["PLAIN", "LOGIN"]);
        assert!(x.fits(10_240_000) && !x.fits(10_240_001));
        // The first line is the name, never a keyword.
        assert!(!Extensions::from_ehlo(&["PIPELINING"]).pipelining);
        // SIZE without a number: no limit announced.
        let x = Extensions::from_ehlo(&["h", "SIZE"]);
        assert_eq!(x.size, Some(0));
        assert!(x.fits(u64::MAX));
    }

    #[test]
    fn hostile_auth_list_is_bounded() {
        let long = format!("AUTH {}", "X ".repeat(10_000));
        let x = Extensions::from_ehlo(&["h".to_string(), long]);
        assert_eq!(x.auth.len(), MAX_AUTH_MECHS);
    }

    #[test]
    fn xtext_rfc3461() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext("Bob@Example.COM"), "Bob@Example.COM");
        assert_eq!(xtext("é"), "+C3+A9");
    }

    #[test]
    fn mail_and_rcpt_lines() {
        let p = MailParams {
            size: Some(1234),
            body: Some(Body::EightBitMime),
            smtputf8: true,
            ret_hdrs: Some(true),
            envid: Some("QQ+1"),
            queue_id: None,
        };
        assert_eq!(
            mail_from("a@b.example", &p).unwrap(),
            "MAIL FROM:<a@b.example> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B1\r\n"
        );
        assert_eq!(
            mail_from("", &MailParams::default()).unwrap(),
            "MAIL FROM:<>\r\n"
        );
        assert_eq!(mail_from("a\r\nRCPT TO:<x>", &p), None);
        assert_eq!(
            rcpt_to(
                "c@d.example",
                Some("SUCCESS,FAILURE"),
                Some("rfc822;x+y@e.example")
            )
            .unwrap(),
            "RCPT TO:<c@d.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2By@e.example\r\n"
        );
        assert_eq!(
            rcpt_to("c@d.example", Some("bad value"), Some("plain@e.example")).unwrap(),
            "RCPT TO:<c@d.example> ORCPT=rfc822;plain@e.example\r\n"
        );
        assert_eq!(rcpt_to("a b@c", None, None), None);
    }

    #[test]
    fn xqueueid_parameter() {
        let x = Extensions::from_ehlo(&["lmtp.example", "PIPELINING", "XQUEUEID"]);
        assert!(x.xqueueid);
        assert!(!Extensions::from_ehlo(&["lmtp.example", "PIPELINING"]).xqueueid);
        let p = MailParams {
            queue_id: Some("4F2A9C1B"),
            ..MailParams::default()
        };
        assert_eq!(
            mail_from("a@b.example", &p).unwrap(),
            "MAIL FROM:<a@b.example> XQUEUEID=4F2A9C1B\r\n"
        );
        // Not a queue id: not sent (it could carry anything).
        for bad in ["", "a b", "x\r\nRSET", "a=b", &"A".repeat(65)] {
            let p = MailParams {
                queue_id: Some(bad),
                ..MailParams::default()
            };
            assert_eq!(mail_from("", &p).unwrap(), "MAIL FROM:<>\r\n", "{bad:?}");
        }
    }

    #[test]
    fn dot_stuffing_at_every_split() {
        let msg = b".a\r\n.\r\nb.c\r\n..\r\n.";
        let want = b"..a\r\n..\r\nb.c\r\n...\r\n..\r\n.\r\n";
        for cut in 0..=msg.len() {
            let mut d = DotStuffer::default();
            let mut out = Vec::new();
            d.push(&msg[..cut], &mut out);
            d.push(&msg[cut..], &mut out);
            d.finish(&mut out);
            assert_eq!(out, want, "cut at {cut}");
        }
        let mut out = Vec::new();
        let d = DotStuffer::default();
        d.finish(&mut out);
        assert_eq!(out, b".\r\n");
        let mut d = DotStuffer::default();
        let mut out = Vec::new();
        d.push(b"x\r", &mut out);
        d.push(b"\n", &mut out);
        d.finish(&mut out);
        assert_eq!(out, b"x\r\n.\r\n");
    }
}
