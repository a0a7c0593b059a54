//! AUTH (RFC 4954): the exchange on the wire — `334 <base64>` challenges,
//! one response line each — driven by facteur-auth's one login driver, so
//! SMTP offers and checks exactly what IMAP and POP3 do: SCRAM-SHA-256
//! (RFC 7677), PLAIN (RFC 4616) and LOGIN, with the same pause, failure
//! count and log line for every wrong credential.
//!
//! AUTH is offered (EHLO keyword) and allowed only when the handler gives
//! its `facteur_auth::Logins` for the session now (smtpd: submission, after TLS or to
//! loopback clients when configured); never twice, never inside a
//! transaction. `*` cancels (`501 5.0.0`). A failed login is `535 5.7.8`
//! and counts as an error of the session. SCRAM's server signature goes
//! out as a last `334` before the `235`.
//!
//! Security: credentials are never logged; response lines are bounded by
//! the session's line limit and by facteur-sasl's own.

use crate::handler::Handler;
use crate::session::Session;
use facteur_auth::{Answer, Channel, Outcome};
use facteur_daemon::lineio::Input;
use facteur_sasl::{Failure, Mechanism};
use facteur_smtp_codec::Reply;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

/// The EHLO keyword's list of mechanisms.
pub fn mechanisms() -> String {
    Mechanism::list()
}

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin> Channel for Session<H, S> {
    async fn challenge(&mut self, data: &[u8]) -> io::Result<Answer> {
        self.reply(&Reply::plain(334, facteur_sasl::encode(data)));
        // next_line flushes the challenge before it waits.
        Ok(match self.io.next_line(false).await? {
            Input::Line(l) => {
                let l = l.strip_suffix(b"\n").unwrap_or(&l);
                Answer::Line(l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            }
            Input::TooLong => Answer::TooLong,
            Input::Eof | Input::Timeout | Input::Stop => Answer::Closed,
        })
    }
}

/// What the session does after an exchange.
pub(crate) enum AuthEnd {
    Continue,
    Close,
}

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin> Session<H, S> {
    pub(crate) async fn auth(
        &mut self,
        mechanism: String,
        initial: Option<String>,
    ) -> io::Result<AuthEnd> {
        if self.info.auth_user.is_some() {
            self.error(Reply::new(503, (5, 5, 1), "Already authenticated"));
            return Ok(AuthEnd::Continue);
        }
        let Some(logins) = self.h.logins(&self.info).map(Arc::clone) else {
            self.error(Reply::new(
                503,
                (5, 5, 1),
                "AUTH not available (use STARTTLS first)",
            ));
            return Ok(AuthEnd::Continue);
        };
        if self.txn.is_some() {
            self.error(Reply::new(
                503,
                (5, 5, 1),
                "AUTH not allowed during a mail transaction",
            ));
            return Ok(AuthEnd::Continue);
        }
        let Some(mech) = Mechanism::from_name(&mechanism) else {
            self.error(Reply::new(
                504,
                (5, 5, 4),
                "Unrecognized authentication mechanism",
            ));
            return Ok(AuthEnd::Continue);
        };
        // RFC 4954 §4: "=" is an empty initial response.
        let initial = match initial.map(|i| facteur_sasl::decode_initial(i.as_bytes())) {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(why)) => {
                self.error(refusal(why));
                return Ok(AuthEnd::Continue);
            }
        };
        let ip = self
            .info
            .peer
            .ip()
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        match logins.sasl(ip, self, mech, initial.as_deref()).await? {
            Outcome::Success(user) => {
                self.info.auth_user = Some(user.address);
                self.reply(&Reply::new(235, (2, 7, 0), "Authentication successful"));
            }
            Outcome::Failed => self.error(Reply::new(
                535,
                (5, 7, 8),
                "Authentication credentials invalid",
            )),
            Outcome::Refused(why) => self.error(refusal(why)),
            Outcome::Unavailable => self.reply(&Reply::new(
                454,
                (4, 7, 0),
                "Temporary authentication failure, try again later",
            )),
            Outcome::Closed => return Ok(AuthEnd::Close),
        }
        Ok(AuthEnd::Continue)
    }
}

/// The reply to an exchange that broke off (not a wrong password).
fn refusal(why: Failure) -> Reply {
    match why {
        Failure::Cancelled => Reply::new(501, (5, 0, 0), "Authentication cancelled"),
        why => Reply::new(501, (5, 5, 2), why.sentence()),
    }
}
