//! Not-authenticated state and session options: CAPABILITY's list,
//! STARTTLS (RFC 9051 §6.2.1), LOGIN (§6.2.3), AUTHENTICATE (§6.2.2) with
//! SCRAM-SHA-256, PLAIN and LOGIN (facteur-sasl, driven by facteur-auth;
//! SASL-IR RFC 4959), ENABLE (RFC 5161).
//!
//! SCRAM's server-final (`v=...`) goes out as a last `+` continuation,
//! answered by an empty line, before the tagged OK (IMAP has no success
//! data). A cancelled exchange (`*`) ends with BAD, as RFC 9051 asks.
//!
//! Security: before TLS (outside the loopback exception) LOGIN and every
//! AUTHENTICATE mechanism are refused before their arguments are looked at,
//! no AUTH= is listed and LOGINDISABLED is. SCRAM would not reveal the
//! password, but it is held to the same rule as PLAIN (one rule, and RFC
//! 7677 §4 recommends TLS: without it the user name and the session are in
//! clear). Wrong credentials of any kind get the same reply after the same
//! pauses (facteur-auth). Passwords are never logged.

use super::{Flow, Session, User, blocking};
use facteur_auth::{Answer, Channel, Outcome};
use facteur_daemon::lineio::Input;
use facteur_sasl::{Failure, Mechanism};
use facteur_store::Quota;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, warn};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn login_allowed(&self) -> bool {
        self.io.stream.is_tls()
            || (self.cfg.allow_plaintext_auth_on_loopback && self.ip.is_loopback())
    }

    /// The CAPABILITY list for the current state.
    pub(crate) fn capabilities(&self) -> String {
        let mut c = String::from("IMAP4rev1 IMAP4rev2");
        if self.user.is_none() {
            if !self.io.stream.is_tls() && self.ctx.tls.get().is_some() {
                c.push_str(" STARTTLS");
            }
            if self.login_allowed() {
                for m in Mechanism::ALL {
                    c.push_str(" AUTH=");
                    c.push_str(m.name());
                }
                c.push_str(" SASL-IR");
            } else {
                c.push_str(" LOGINDISABLED");
            }
        }
        c.push_str(
            " LITERAL+ ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN \
             SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES \
             CONDSTORE QRESYNC QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE STATUS=SIZE \
             BINARY UTF8=ACCEPT SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT \
             THREAD=REFERENCES CONTEXT=SEARCH CONTEXT=SORT PARTIAL NOTIFY METADATA SAVEDATE \
             PREVIEW MULTIAPPEND CATENATE COMPRESS=DEFLATE OBJECTID ACL RIGHTS=texk \
             LIST-MYRIGHTS URLAUTH URLAUTH=BINARY",
        );
        c.push_str(&format!(" APPENDLIMIT={}", self.cfg.max_append_size.0));
        if self.quota_admin() {
            c.push_str(" QUOTASET");
        }
        c
    }

    pub(super) async fn starttls(&mut self, tag: &str) -> io::Result<Flow> {
        if self.io.stream.is_tls() {
            self.bad(Some(tag), "TLS is already active");
            return Ok(Flow::Continue);
        }
        if self.user.is_some() {
            self.bad(Some(tag), "STARTTLS is only allowed before login");
            return Ok(Flow::Continue);
        }
        let Some(tls) = self.ctx.tls.get() else {
            self.no(tag, "TLS is not available");
            return Ok(Flow::Continue);
        };
        self.ok(tag, "Begin TLS negotiation now");
        if self.io.start_tls(tls).await? {
            Ok(Flow::Continue)
        } else {
            Ok(Flow::Close)
        }
    }

    /// COMPRESS DEFLATE (RFC 4978): after login, once; the OK goes out
    /// uncompressed, everything after it deflated both ways.
    pub(super) async fn compress(&mut self, tag: &str, mechanism: &str) -> io::Result<Flow> {
        if self.user.is_none() {
            self.bad(Some(tag), "COMPRESS needs a login first");
        } else if !mechanism.eq_ignore_ascii_case("DEFLATE") {
            self.bad(Some(tag), "Unknown compression mechanism");
        } else if self.io.is_deflating() {
            self.no(tag, "[COMPRESSIONACTIVE] DEFLATE is already active");
        } else {
            self.ok(tag, "DEFLATE active");
            self.io.start_deflate().await?;
            debug!("COMPRESS=DEFLATE started");
        }
        Ok(Flow::Continue)
    }

    /// Whether LOGIN or AUTHENTICATE may go on: not twice, and not in
    /// clear text (see `login_allowed`); answers the client if not, with
    /// `before_tls` as the reason in clear text.
    fn may_log_in(&mut self, tag: &str, before_tls: &str) -> bool {
        if self.user.is_some() {
            self.bad(Some(tag), "Already logged in");
            return false;
        }
        if !self.login_allowed() {
            self.no(tag, &format!("[PRIVACYREQUIRED] {before_tls}"));
            self.errors += 1;
            return false;
        }
        true
    }

    pub(super) async fn login(
        &mut self,
        tag: &str,
        user: String,
        pass: String,
    ) -> io::Result<Flow> {
        if !self.may_log_in(tag, "Plaintext login disallowed: use STARTTLS first") {
            return Ok(Flow::Continue);
        }
        let logins = Arc::clone(&self.ctx.logins);
        let outcome = logins.password(self.ip, &user, &pass).await;
        self.finish_login(tag, outcome)
    }

    pub(super) async fn authenticate(
        &mut self,
        tag: &str,
        mechanism: String,
        initial: Option<Vec<u8>>,
    ) -> io::Result<Flow> {
        if !self.may_log_in(tag, "Authentication disallowed before STARTTLS") {
            return Ok(Flow::Continue);
        }
        let Some(mechanism) = Mechanism::from_name(&mechanism) else {
            self.no(tag, "[CANNOT] Unsupported authentication mechanism");
            self.errors += 1;
            return Ok(Flow::Continue);
        };
        let logins = Arc::clone(&self.ctx.logins);
        let outcome = logins
            .sasl(self.ip, self, mechanism, initial.as_deref())
            .await?;
        self.finish_login(tag, outcome)
    }

    /// The tagged reply to a login, and the user's store on success.
    fn finish_login(&mut self, tag: &str, outcome: Outcome) -> io::Result<Flow> {
        let record = match outcome {
            Outcome::Success(u) => u,
            Outcome::Failed => {
                self.no(tag, "[AUTHENTICATIONFAILED] Authentication failed");
                self.errors += 1;
                return Ok(Flow::Continue);
            }
            Outcome::Refused(Failure::Cancelled) => {
                // RFC 9051 §6.2.2: a cancelled exchange ends with BAD.
                self.bad(Some(tag), "Authentication cancelled");
                return Ok(Flow::Continue);
            }
            Outcome::Refused(Failure::Base64) => {
                self.bad(Some(tag), "Invalid base64");
                return Ok(Flow::Continue);
            }
            Outcome::Refused(Failure::TooLong) => {
                self.bad(Some(tag), "Response too long");
                return Ok(Flow::Continue);
            }
            Outcome::Refused(why) => {
                self.no(tag, &format!("[AUTHENTICATIONFAILED] {}", why.sentence()));
                self.errors += 1;
                return Ok(Flow::Continue);
            }
            Outcome::Unavailable => {
                self.no(tag, "[UNAVAILABLE] Temporary failure, try again later");
                return Ok(Flow::Continue);
            }
            Outcome::Closed => return Ok(Flow::Close),
        };
        let quota = Quota {
            bytes: record.quota_bytes,
            messages: record.quota_messages,
        };
        let ctx = Arc::clone(&self.ctx);
        let address = record.address.clone();
        // Open already (the user's other sessions, a recent login): no
        // hand-off to another thread; else the index is opened there.
        let opened = match ctx.user_store_if_open(&address, quota) {
            Some(s) => Ok(s),
            None => blocking(|| ctx.user_store(&address, quota)),
        };
        match opened {
            Ok(store) => {
                info!(user = %record.address, "logged in");
                self.user = Some(User {
                    address: record.address,
                    store,
                });
                self.io.set_timeout(self.cfg.timeout.duration());
                // The login phase's hard end is lifted (see `serve`).
                self.io.set_deadline(None);
                let caps = self.capabilities();
                self.ok(tag, &format!("[CAPABILITY {caps}] Logged in"));
            }
            Err(e) => {
                warn!(user = %record.address, error = %e, "cannot open the mail store");
                self.no(
                    tag,
                    "[UNAVAILABLE] Cannot open the mailbox, try again later",
                );
            }
        }
        Ok(Flow::Continue)
    }

    pub(super) fn enable(&mut self, tag: &str, caps: Vec<String>) -> io::Result<Flow> {
        let mut enabled = Vec::new();
        for c in caps {
            let on = match c.to_ascii_uppercase().as_str() {
                "IMAP4REV2" => {
                    let new = !self.rev2;
                    self.rev2 = true;
                    self.utf8 = true;
                    new
                }
                "UTF8=ACCEPT" => {
                    let new = !self.utf8;
                    self.utf8 = true;
                    new
                }
                "CONDSTORE" => {
                    let new = !self.condstore;
                    self.condstore = true;
                    new
                }
                "QRESYNC" => {
                    let new = !self.qresync;
                    self.qresync = true;
                    self.condstore = true;
                    new
                }
                _ => false,
            };
            if on {
                enabled.push(c);
            }
        }
        if !enabled.is_empty() {
            self.io
                .write(format!("* ENABLED {}\r\n", enabled.join(" ")).as_bytes());
        }
        self.ok(tag, "ENABLE completed");
        Ok(Flow::Continue)
    }
}

/// IMAP's side of a SASL exchange (RFC 9051 §6.2.2): a challenge is a
/// `+ ` continuation with base64 text, the answer one line.
impl<S: AsyncRead + AsyncWrite + Unpin> Channel for Session<S> {
    async fn challenge(&mut self, data: &[u8]) -> io::Result<Answer> {
        self.io
            .write(format!("+ {}\r\n", facteur_sasl::encode(data)).as_bytes());
        // next_line flushes the continuation before it waits.
        Ok(match self.io.next_line(false).await? {
            Input::Line(l) => Answer::Line(super::strip_eol(&l).to_vec()),
            Input::TooLong => Answer::TooLong,
            Input::Eof | Input::Timeout | Input::Stop => Answer::Closed,
        })
    }
}
