//! AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms: the
//! exchange on the wire; the handler's [`Authenticator`] checks the login.
//!
//! AUTH is offered (EHLO keyword) and allowed only when the handler gives
//! an authenticator for the session now (smtpd: submission, after TLS);
//! never twice, never inside a transaction. `*` cancels (`501`). A failed
//! login is `535 5.7.8` and counts as an error of the session; the pause
//! that slows guessing is the authenticator's.
//!
//! Security: credentials are never logged; lines of the exchange are
//! bounded by the session's line limit.

use crate::handler::{Authenticator, Handler};
use crate::session::Session;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use facteur_daemon::lineio::Input;
use facteur_smtp_codec::Reply;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

/// The mechanisms offered, as the EHLO keyword lists them.
pub const MECHANISMS: &str = "PLAIN LOGIN";

/// Decodes a base64 SASL response; `None` if it is not base64.
fn decode(b64: &str) -> Option<Vec<u8>> {
    STANDARD.decode(b64.trim().as_bytes()).ok()
}

/// PLAIN: `authzid NUL authcid NUL password`. The authorization identity,
/// when given, must be the authentication identity (no proxy logins).
fn parse_plain(raw: &[u8]) -> Option<(String, String)> {
    let mut parts = raw.split(|&b| b == 0);
    let authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next().is_some() || user.is_empty() {
        return None;
    }
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(user.as_bytes()) {
        return None;
    }
    Some((user.to_string(), pass.to_string()))
}

enum Step {
    Got(String),
    Cancelled,
    Gone,
}

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin> Session<H, S> {
    /// Sends a `334` challenge and reads the client's line.
    async fn challenge(&mut self, text: &str) -> io::Result<Step> {
        self.reply(&Reply::plain(334, text));
        Ok(match self.io.next_line(false).await? {
            Input::Line(l) => {
                let l = String::from_utf8_lossy(&l).trim().to_string();
                if l == "*" {
                    Step::Cancelled
                } else {
                    Step::Got(l)
                }
            }
            Input::TooLong => Step::Got(String::new()),
            Input::Eof | Input::Timeout | Input::Stop => Step::Gone,
        })
    }

    pub(crate) async fn auth(
        &mut self,
        mechanism: String,
        initial: Option<String>,
    ) -> io::Result<()> {
        if self.info.auth_user.is_some() {
            self.error(Reply::new(503, (5, 5, 1), "Already authenticated"));
            return Ok(());
        }
        if self.h.authenticator(&self.info).is_none() {
            self.error(Reply::new(
                503,
                (5, 5, 1),
                "AUTH not available (use STARTTLS first)",
            ));
            return Ok(());
        }
        if self.txn.is_some() {
            self.error(Reply::new(
                503,
                (5, 5, 1),
                "AUTH not allowed during a mail transaction",
            ));
            return Ok(());
        }
        // RFC 4954 §4: "=" is an empty initial response.
        let initial = initial.map(|i| if i == "=" { String::new() } else { i });
        let creds = match mechanism.as_str() {
            "PLAIN" => {
                let resp = match initial {
                    Some(i) => i,
                    None => match self.challenge("").await? {
                        Step::Got(l) => l,
                        Step::Cancelled => return self.cancelled(),
                        Step::Gone => return Ok(()),
                    },
                };
                decode(&resp).as_deref().and_then(parse_plain)
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => i,
                    None => match self.challenge(&STANDARD.encode(b"Username:")).await? {
                        Step::Got(l) => l,
                        Step::Cancelled => return self.cancelled(),
                        Step::Gone => return Ok(()),
                    },
                };
                let pass = match self.challenge(&STANDARD.encode(b"Password:")).await? {
                    Step::Got(l) => l,
                    Step::Cancelled => return self.cancelled(),
                    Step::Gone => return Ok(()),
                };
                let u = decode(&user).and_then(|b| String::from_utf8(b).ok());
                let p = decode(&pass).and_then(|b| String::from_utf8(b).ok());
                u.zip(p)
            }
            _ => {
                self.error(Reply::new(
                    504,
                    (5, 5, 4),
                    "Unrecognized authentication mechanism",
                ));
                return Ok(());
            }
        };
        let Some((user, pass)) = creds else {
            self.error(Reply::new(501, (5, 5, 2), "Cannot decode the credentials"));
            return Ok(());
        };
        let verified = match self.h.authenticator(&self.info) {
            Some(a) => verify(a, &self.info.peer, &user, &pass).await,
            None => None,
        };
        match verified {
            Some(login) => {
                info!(user = %login, mechanism, "authenticated");
                self.info.auth_user = Some(login);
                self.reply(&Reply::new(235, (2, 7, 0), "Authentication successful"));
            }
            None => {
                warn!(user = %user, mechanism, "authentication failed");
                self.error(Reply::new(
                    535,
                    (5, 7, 8),
                    "Authentication credentials invalid",
                ));
            }
        }
        Ok(())
    }

    fn cancelled(&mut self) -> io::Result<()> {
        self.error(Reply::new(501, (5, 0, 0), "Authentication cancelled"));
        Ok(())
    }
}

async fn verify(
    a: &dyn Authenticator,
    peer: &crate::Peer,
    user: &str,
    pass: &str,
) -> Option<String> {
    a.verify(peer, user, pass).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let r = decode(&STANDARD.encode(b"\0alice@example.test\0secret")).unwrap();
        assert_eq!(
            parse_plain(&r),
            Some(("alice@example.test".into(), "secret".into()))
        );
        assert_eq!(
            parse_plain(b"alice@x\0alice@x\0pw"),
            Some(("alice@x".into(), "pw".into()))
        );
        assert_eq!(parse_plain(b"bob@x\0alice@x\0pw"), None);
        assert_eq!(parse_plain(b"\0\0pw"), None);
        assert_eq!(parse_plain(b"\0a\0b\0c"), None);
        assert_eq!(parse_plain(b"\0a"), None);
        assert_eq!(parse_plain(b"\0a\0\xff"), None);
        assert!(decode("not base64!").is_none());
    }
}
