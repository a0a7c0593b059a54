//! POP3 responses: status lines with response codes, multi-line responses,
//! the CAPA list and SASL challenges.
//!
//! Offers [`Response`] (`+OK text` / `-ERR [CODE] text`, RFC 1939 §3 and
//! RFC 2449 §8), [`RespCode`] (RFC 2449 §8.1 IN-USE and LOGIN-DELAY,
//! RFC 3206 SYS/TEMP, SYS/PERM and AUTH), [`write_multiline`] (lines
//! dot-stuffed and terminated by `.CRLF`), [`Capa`] (RFC 2449 §5) and
//! [`write_continuation`] (`+ base64`, RFC 5034 §4).
//!
//! Guarantees: a status line is one CRLF-terminated line of at most 512
//! octets (RFC 2449 §4); CR, LF and other control characters in texts become
//! spaces, so nothing a text holds (a user name, an error from the system)
//! can forge a second response line.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Extended response codes (RFC 2449 §8, RFC 3206).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespCode {
    /// The maildrop is locked by another session (RFC 2449 §8.1.1).
    InUse,
    /// Logged in too recently (RFC 2449 §8.1.2).
    LoginDelay,
    /// A temporary server problem; try later (RFC 3206 §4).
    SysTemp,
    /// A permanent server problem (RFC 3206 §4).
    SysPerm,
    /// The credentials are the problem (RFC 3206 §5).
    Auth,
}

impl RespCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RespCode::InUse => "IN-USE",
            RespCode::LoginDelay => "LOGIN-DELAY",
            RespCode::SysTemp => "SYS/TEMP",
            RespCode::SysPerm => "SYS/PERM",
            RespCode::Auth => "AUTH",
        }
    }
}

/// A status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub ok: bool,
    pub code: Option<RespCode>,
    pub text: String,
}

/// The longest status line, CRLF included (RFC 2449 §4).
const MAX_STATUS: usize = 512;

impl Response {
    pub fn ok(text: impl Into<String>) -> Response {
        Response {
            ok: true,
            code: None,
            text: text.into(),
        }
    }

    pub fn err(text: impl Into<String>) -> Response {
        Response {
            ok: false,
            code: None,
            text: text.into(),
        }
    }

    pub fn err_code(code: RespCode, text: impl Into<String>) -> Response {
        Response {
            ok: false,
            code: Some(code),
            text: text.into(),
        }
    }

    /// Appends the line to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(if self.ok { b"+OK" } else { b"-ERR" });
        if let Some(c) = self.code {
            out.extend_from_slice(b" [");
            out.extend_from_slice(c.as_str().as_bytes());
            out.push(b']');
        }
        if !self.text.is_empty() {
            out.push(b' ');
            let room = MAX_STATUS - 2 - (out.len() - start);
            let mut text = self.text.as_str();
            if text.len() > room {
                let mut end = room;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text = &text[..end];
            }
            out.extend(
                text.bytes()
                    .map(|b| if b.is_ascii_control() { b' ' } else { b }),
            );
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The line as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.to_bytes();
        f.write_str(String::from_utf8_lossy(&b).trim_end())
    }
}

/// Appends the body of a multi-line response: each line dot-stuffed (a line
/// starting with `.` gets one more), CRLF after each, then `.CRLF`. Control
/// characters in lines become spaces.
pub fn write_multiline<I, S>(out: &mut Vec<u8>, lines: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    for l in lines {
        let l = l.as_ref();
        if l.starts_with('.') {
            out.push(b'.');
        }
        out.extend(
            l.bytes()
                .map(|b| if b.is_ascii_control() { b' ' } else { b }),
        );
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// A SASL challenge: `+ ` and the base64 of `challenge` (RFC 5034 §4; PLAIN's
/// empty challenge is `+ ` alone).
pub fn write_continuation(out: &mut Vec<u8>, challenge: &[u8]) {
    out.extend_from_slice(b"+ ");
    out.extend_from_slice(STANDARD.encode(challenge).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// What CAPA lists (RFC 2449 §6). TOP, UIDL, RESP-CODES, AUTH-RESP-CODE and
/// PIPELINING are always there; the login methods and STLS depend on the
/// state and the connection.
#[derive(Debug, Clone, Default)]
pub struct Capa<'a> {
    /// USER/PASS allowed now.
    pub user: bool,
    /// SASL mechanisms allowed now (empty: no SASL line).
    pub sasl: &'a [&'a str],
    /// STLS possible now.
    pub stls: bool,
    /// The IMPLEMENTATION line (RFC 2449 §6.9), if any.
    pub implementation: Option<&'a str>,
}

impl Capa<'_> {
    /// The capability lines, without the status line.
    pub fn lines(&self) -> Vec<String> {
        let mut v: Vec<String> = vec!["TOP".into()];
        if self.user {
            v.push("USER".into());
        }
        if !self.sasl.is_empty() {
            v.push(format!("SASL {}", self.sasl.join(" ")));
        }
        v.extend(
            ["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "UIDL"]
                .iter()
                .map(|s| s.to_string()),
        );
        if self.stls {
            v.push("STLS".into());
        }
        if let Some(i) = self.implementation {
            v.push(format!("IMPLEMENTATION {i}"));
        }
        v
    }

    /// The whole CAPA response.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        Response::ok("Capability list follows").write_to(out);
        write_multiline(out, self.lines());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let cases: &[(Response, &str)] = &[
            (Response::ok(""), "+OK\r\n"),
            (Response::ok("2 320"), "+OK 2 320\r\n"),
            (Response::err("no such message"), "-ERR no such message\r\n"),
            (
                Response::err_code(RespCode::InUse, "maildrop locked"),
                "-ERR [IN-USE] maildrop locked\r\n",
            ),
            (
                Response::err_code(RespCode::Auth, "bad credentials"),
                "-ERR [AUTH] bad credentials\r\n",
            ),
            (
                Response::err_code(RespCode::SysTemp, ""),
                "-ERR [SYS/TEMP]\r\n",
            ),
            (
                Response::err_code(RespCode::SysPerm, "x"),
                "-ERR [SYS/PERM] x\r\n",
            ),
            (
                Response::err_code(RespCode::LoginDelay, "x"),
                "-ERR [LOGIN-DELAY] x\r\n",
            ),
            // No injected second line.
            (Response::err("a\r\n+OK b"), "-ERR a  +OK b\r\n"),
        ];
        for (r, want) in cases {
            assert_eq!(String::from_utf8(r.to_bytes()).unwrap(), *want);
        }
        let long = Response::ok("é".repeat(600)).to_bytes();
        assert!(long.len() <= 512 && long.ends_with(b"\r\n"));
        assert!(std::str::from_utf8(&long).is_ok());
        assert_eq!(
            Response::err_code(RespCode::InUse, "x").to_string(),
            "-ERR [IN-USE] x"
        );
    }

    #[test]
    fn multiline_and_capa() {
        let mut out = Vec::new();
        write_multiline(&mut out, ["1 120", ".hidden", ""]);
        assert_eq!(out, b"1 120\r\n..hidden\r\n\r\n.\r\n");
        let mut out = Vec::new();
        Capa {
            user: true,
            sasl: &["PLAIN"],
            stls: true,
            implementation: Some("facteur"),
        }
        .write_to(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "+OK Capability list follows\r\nTOP\r\nUSER\r\nSASL PLAIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nUIDL\r\nSTLS\r\nIMPLEMENTATION facteur\r\n.\r\n"
        );
        let bare = Capa::default().lines();
        assert_eq!(
            bare,
            ["TOP", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "UIDL"]
        );
        let mut out = Vec::new();
        write_continuation(&mut out, b"");
        assert_eq!(out, b"+ \r\n");
        out.clear();
        write_continuation(&mut out, b"hi");
        assert_eq!(out, b"+ aGk=\r\n");
    }
}
