//! What an SMTP client needs besides the reply parser: the EHLO keyword list
//! read into [`Extensions`], and the MAIL/RCPT command lines with their ESMTP
//! parameters, xtext-encoded where RFC 3461 asks.
//!
//! Pure code: takes the EHLO reply's text lines (already parsed and bounded
//! by the caller's reply parser) and strings, returns values and lines.
//!
//! Standards: RFC 5321 §4.1.1.1 (EHLO), RFC 1870 (SIZE), RFC 6152
//! (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN: RET, ENVID, NOTIFY, ORCPT,
//! xtext), RFC 3030 (CHUNKING, BINARYMIME), RFC 2920 (PIPELINING), RFC 3207
//! (STARTTLS), RFC 4954 (AUTH).
//!
//! Security: what a peer advertises is only believed within bounds (at most
//! [`MAX_AUTH_MECHS`] mechanisms of at most 20 characters, a SIZE that is a
//! number); addresses and parameter values are never allowed to carry CR, LF
//! or spaces into a command line (the caller passes queue-file values, which
//! smtpd checked, but this module does not rely on it: xtext encodes them).

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
}
