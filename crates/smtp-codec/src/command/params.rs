//! The ESMTP parameters of MAIL FROM and RCPT TO, and the numbers commands
//! carry (SIZE, BDAT chunk sizes).
//!
//! MAIL: SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531),
//! RET and ENVID (RFC 3461), AUTH (RFC 4954 §5: accepted and ignored, we
//! do not trust another server's word on who submitted), XQUEUEID (ours:
//! the queue id of the message a facteur-qmgr is delivering over LMTP, so
//! that lmtpd's log lines carry it). RCPT: NOTIFY and ORCPT (RFC 3461).
//!
//! Numbers: [`parse_number`] takes 1 to 20 ASCII digits and refuses any
//! value that does not fit a `u64` — never a wrap, never a saturation
//! (smtp-proto 0.2.5, which parsed these before, restarts from the next
//! digit after saturating, so `BDAT 99999999999999999999999` read as a
//! 999-byte chunk and the rest of the data ran as commands).
//!
//! A parameter given twice, a value where none is allowed (or none where
//! one is needed), an unknown keyword, or a value outside the grammar is an
//! error that names the parameter.

use facteur_mail::dsn::{BodyType, Notify, Ret};

/// Why a parameter was refused; the string is the keyword as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// Unknown keyword (`555 5.5.4`).
    Unsupported(String),
    /// Known keyword, bad or repeated value (`501 5.5.4`).
    Invalid(String),
}

/// The parameters of one MAIL FROM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<BodyType>,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// RFC 3461 ENVID, xtext-decoded.
    pub envid: Option<String>,
    /// The sending qmgr's queue id (XQUEUEID).
    pub queue_id: Option<String>,
}

/// The parameters of one RCPT TO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    pub notify: Notify,
    /// RFC 3461 ORCPT without its address type, xtext-decoded.
    pub orcpt: Option<String>,
}

/// A decimal number of at most 20 digits that fits a `u64`; `None` for
/// anything else (empty, a sign, a non-digit, an overflow).
pub fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| {
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Splits the parameter list (after the path) into `(KEYWORD, value)`.
fn params(s: &str) -> Result<Vec<(String, Option<&str>)>, ParamError> {
    let mut out = Vec::new();
    for p in s.split(' ').filter(|p| !p.is_empty()) {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        let keyword_ok = k.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !keyword_ok || v.is_some_and(|v| v.is_empty() || v.chars().any(|c| c.is_control())) {
            return Err(ParamError::Invalid(k.to_string()));
        }
        let k = k.to_ascii_uppercase();
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(ParamError::Invalid(k));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// RFC 3461 §4: xtext, `+XX` hexadecimal escapes. `None` when malformed or
/// when the decoded bytes are not UTF-8.
pub fn xtext_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = s.get(i + 1..i + 3)?;
                if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c if (b'!'..=b'~').contains(&c) && c != b'=' => {
                out.push(c);
                i += 1;
            }
            // UTF-8 (RFC 6533 allows it in ORCPT with SMTPUTF8).
            c if c >= 0x80 => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    let v = String::from_utf8(out).ok()?;
    (!v.chars().any(|c| c.is_control())).then_some(v)
}

fn need<'a>(k: &str, v: Option<&'a str>) -> Result<&'a str, ParamError> {
    v.ok_or_else(|| ParamError::Invalid(k.to_string()))
}

fn none(k: &str, v: Option<&str>) -> Result<(), ParamError> {
    match v {
        None => Ok(()),
        Some(_) => Err(ParamError::Invalid(k.to_string())),
    }
}

/// Parses the parameters of MAIL FROM.
pub fn mail_params(s: &str) -> Result<MailParams, ParamError> {
    let mut m = MailParams::default();
    for (k, v) in params(s)? {
        let bad = || ParamError::Invalid(k.clone());
        match k.as_str() {
            "SIZE" => m.size = Some(parse_number(need(&k, v)?).ok_or_else(bad)?),
            "BODY" => {
                let v = need(&k, v)?;
                m.body = Some(if v.eq_ignore_ascii_case("7BIT") {
                    BodyType::SevenBit
                } else if v.eq_ignore_ascii_case("8BITMIME") {
                    BodyType::EightBitMime
                } else if v.eq_ignore_ascii_case("BINARYMIME") {
                    BodyType::BinaryMime
                } else {
                    return Err(bad());
                });
            }
            "SMTPUTF8" => {
                none(&k, v)?;
                m.smtputf8 = true;
            }
            "RET" => {
                let v = need(&k, v)?;
                m.ret = Some(if v.eq_ignore_ascii_case("FULL") {
                    Ret::Full
                } else if v.eq_ignore_ascii_case("HDRS") {
                    Ret::Hdrs
                } else {
                    return Err(bad());
                });
            }
            "ENVID" => {
                let v = xtext_decode(need(&k, v)?).ok_or_else(bad)?;
                if v.len() > 100 {
                    return Err(bad());
                }
                m.envid = Some(v);
            }
            "AUTH" => {
                need(&k, v)?;
            }
            "XQUEUEID" => {
                let v = need(&k, v)?;
                if v.len() > 64 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(bad());
                }
                m.queue_id = Some(v.to_string());
            }
            _ => return Err(ParamError::Unsupported(k)),
        }
    }
    Ok(m)
}

/// Parses the parameters of RCPT TO.
pub fn rcpt_params(s: &str) -> Result<RcptParams, ParamError> {
    let mut r = RcptParams::default();
    for (k, v) in params(s)? {
        let bad = || ParamError::Invalid(k.clone());
        match k.as_str() {
            "NOTIFY" => r.notify = Notify::parse(need(&k, v)?).ok_or_else(bad)?,
            "ORCPT" => {
                let v = need(&k, v)?;
                let (kind, addr) = v.split_once(';').ok_or_else(bad)?;
                let kind_ok = !kind.is_empty()
                    && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                let addr = xtext_decode(addr).ok_or_else(bad)?;
                if !kind_ok || addr.is_empty() || addr.len() > 500 {
                    return Err(bad());
                }
                r.orcpt = Some(addr);
            }
            _ => return Err(ParamError::Unsupported(k)),
        }
    }
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_never_wrap() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "18446744073709551616",
            "99999999999999999999999",
            "",
            "-1",
            "+1",
            "1e3",
            " 1",
            "١",
        ] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mail_parameters() {
        let m = mail_params(
            " SIZE=1000 body=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ+2B1 AUTH=<> XQUEUEID=0AB12",
        )
        .unwrap();
        assert_eq!(m.size, Some(1000));
        assert_eq!(m.body, Some(BodyType::EightBitMime));
        assert!(m.smtputf8);
        assert_eq!(m.ret, Some(Ret::Hdrs));
        assert_eq!(m.envid.as_deref(), Some("QQ+1"));
        assert_eq!(m.queue_id.as_deref(), Some("0AB12"));
        assert_eq!(mail_params("").unwrap(), MailParams::default());
        let invalid = |s: &str, k: &str| {
            assert_eq!(mail_params(s), Err(ParamError::Invalid(k.into())), "{s}");
        };
        invalid(" SIZE=99999999999999999999999", "SIZE");
        invalid(" SIZE=", "SIZE");
        invalid(" SIZE", "SIZE");
        invalid(" SIZE=1 SIZE=2", "SIZE");
        invalid(" BODY=9BIT", "BODY");
        invalid(" SMTPUTF8=yes", "SMTPUTF8");
        invalid(" ENVID=a+zz", "ENVID");
        invalid(" XQUEUEID=../x", "XQUEUEID");
        invalid(" X=\u{7}", "X");
        assert_eq!(
            mail_params(" FOO=BAR"),
            Err(ParamError::Unsupported("FOO".into()))
        );
    }

    #[test]
    fn rcpt_parameters() {
        let r = rcpt_params(" NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2By@e.example").unwrap();
        assert_eq!(r.notify.to_string(), "SUCCESS,FAILURE");
        assert_eq!(r.orcpt.as_deref(), Some("x+y@e.example"));
        assert_eq!(
            rcpt_params(" NOTIFY=NEVER,SUCCESS"),
            Err(ParamError::Invalid("NOTIFY".into()))
        );
        assert_eq!(
            rcpt_params(" ORCPT=nosemicolon"),
            Err(ParamError::Invalid("ORCPT".into()))
        );
        assert_eq!(
            rcpt_params(" ORCPT=rfc822;a+0Db"),
            Err(ParamError::Invalid("ORCPT".into()))
        );
        assert_eq!(
            rcpt_params(" SIZE=1"),
            Err(ParamError::Unsupported("SIZE".into()))
        );
    }

    #[test]
    fn xtext() {
        assert_eq!(xtext_decode("a+2Bb+3Dc").as_deref(), Some("a+b=c"));
        assert_eq!(xtext_decode("+C3+A9").as_deref(), Some("é"));
        assert_eq!(xtext_decode("+"), None);
        assert_eq!(xtext_decode("+4"), None);
        assert_eq!(xtext_decode("a=b"), None);
        assert_eq!(xtext_decode("+FF"), None);
    }
}
