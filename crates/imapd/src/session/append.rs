//! APPEND (RFC 9051 §6.3.12, UIDPLUS RFC 4315 APPENDUID, APPENDLIMIT RFC
//! 7889, LITERAL+ RFC 7888, BINARY literal8 RFC 3516).
//!
//! Everything that can be refused is refused before the literal is read:
//! state, mailbox name and existence (`[TRYCREATE]`), flags, size over
//! APPENDLIMIT (`[TOOBIG]`), an empty message. A synchronising literal is
//! then simply never asked for; a non-synchronising one is read and dropped
//! (or the connection closed if it is absurdly large). The octets go to
//! memory, then to an unlinked file past 1 MiB (facteur_daemon::body), and
//! the store writes, fsyncs and indexes the message before OK is sent.

use super::{Flow, Session, blocking, parse_flags};
use facteur_daemon::body::Body;
use facteur_daemon::lineio::{Fill, Input};
use facteur_imap_proto::{Command, Tagged};
use std::io::{self, Read};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn append(&mut self, t: Tagged) -> io::Result<Flow> {
        let tag = t.tag;
        let Command::Append {
            mailbox,
            flags,
            date,
            literal,
        } = t.command
        else {
            return Ok(Flow::Continue);
        };
        // Refusals before the literal.
        let refusal: Option<(&str, String)> = if self.user.is_none() {
            Some(("BAD", "APPEND needs a login first".into()))
        } else if literal.len > self.cfg.max_append_size.0 {
            Some((
                "NO",
                format!(
                    "[TOOBIG] Message larger than {} octets",
                    self.cfg.max_append_size.0
                ),
            ))
        } else if literal.len == 0 {
            Some(("NO", "Empty message".into()))
        } else {
            None
        };
        let refusal = match refusal {
            Some(r) => Some(r),
            None => match parse_flags(&flags) {
                Err(e) => Some(("BAD", e)),
                Ok(_) => None,
            },
        };
        let name = self.mailbox_in(&mailbox);
        let refusal = match (refusal, &name) {
            (Some(r), _) => Some(r),
            (None, None) => Some(("NO", "[CANNOT] Invalid mailbox name encoding".into())),
            (None, Some(_)) => None,
        };
        // The target: the selected mailbox itself, or another one opened.
        let mut target = None;
        let refusal = match (refusal, name, &self.user) {
            (Some(r), _, _) => Some(r),
            (None, Some(name), Some(user)) => {
                let same = self.sel.as_ref().is_some_and(|s| {
                    facteur_store::normalize_name(&name).ok().as_deref() == Some(s.mb.name())
                });
                if same {
                    None
                } else {
                    match blocking(|| user.store.select(&name)) {
                        Ok(mb) => {
                            target = Some(mb);
                            None
                        }
                        Err(facteur_store::StoreError::NoSuchMailbox(_)) => {
                            Some(("NO", "[TRYCREATE] No such mailbox".to_string()))
                        }
                        Err(facteur_store::StoreError::InvalidName(_)) => {
                            Some(("NO", "[CANNOT] Invalid mailbox name".to_string()))
                        }
                        Err(e) => {
                            warn!(error = %e, "cannot open the APPEND target");
                            Some(("NO", "[SERVERBUG] Cannot open the mailbox".to_string()))
                        }
                    }
                }
            }
            _ => Some(("BAD", "APPEND needs a login first".into())),
        };
        if let Some((kind, text)) = refusal {
            if !self.skip_literal(literal).await? {
                self.io.write(format!("{tag} {kind} {text}\r\n").as_bytes());
                self.io.write(b"* BYE Literal too large to skip\r\n");
                return Ok(Flow::Close);
            }
            if kind == "BAD" {
                self.bad(Some(&tag), &text);
            } else {
                self.no(&tag, &text);
            }
            return Ok(Flow::Continue);
        }
        if literal.sync {
            self.io.write(b"+ Ready for literal data\r\n");
        }
        let Some(user) = &self.user else {
            return Ok(Flow::Continue);
        };
        let tmp = user.store.dir().join("tmp");
        let mut body = Body::default();
        let mut failed: Option<io::Error> = None;
        match self
            .io
            .read_exact(literal.len, |b| {
                if failed.is_none()
                    && let Err(e) = body.append(b, &tmp)
                {
                    failed = Some(e);
                }
            })
            .await?
        {
            Fill::Data => {}
            _ => return Ok(Flow::Close),
        }
        // The rest of the command line must be empty (no MULTIAPPEND).
        match self.io.next_line(false).await? {
            Input::Line(l) if l == b"\r\n" || l == b"\n" => {}
            Input::Line(_) | Input::TooLong => {
                self.bad(Some(&tag), "Unexpected data after the message literal");
                return Ok(Flow::Continue);
            }
            _ => return Ok(Flow::Close),
        }
        if let Some(e) = failed {
            warn!(error = %e, "cannot buffer an APPEND literal");
            self.no(&tag, "[SERVERBUG] Cannot store the message now");
            return Ok(Flow::Continue);
        }
        let flags = parse_flags(&flags).unwrap_or_default();
        let body = body.freeze();
        let mut reader: Box<dyn io::Read + Send> = Box::new(body.reader(Vec::new()));
        // The append, the announcement and the reply in one blocking call.
        blocking(|| {
            // A literal8 may carry `binary` parts, which the LF form of the
            // store cannot keep octet for octet: they are stored as base64
            // (facteur_imap_message::convert). The message is read whole for
            // that, as big as APPENDLIMIT allows at most.
            if literal.binary {
                match binary_to_base64(&body) {
                    Ok(Some(converted)) => reader = Box::new(io::Cursor::new(converted)),
                    Ok(None) => {}
                    Err(e) => {
                        warn!(error = %e, "cannot read an APPEND literal back");
                        self.no(&tag, "[SERVERBUG] Cannot store the message now");
                        return Ok(Flow::Continue);
                    }
                }
            }
            let result = match (&mut target, &mut self.sel) {
                (Some(mb), _) => mb
                    .append(&mut reader, &flags, date)
                    .map(|u| (u, mb.uidvalidity(), mb.dir().to_path_buf())),
                (None, Some(sel)) => sel
                    .mb
                    .append(&mut reader, &flags, date)
                    .map(|u| (u, sel.mb.uidvalidity(), sel.mb.dir().to_path_buf())),
                (None, None) => return Ok(Flow::Continue),
            };
            match result {
                Ok((uid, validity, dir)) => {
                    self.ctx.notifier.changed(&dir);
                    info!(user = %self.user.as_ref().map_or("", |u| u.address.as_str()), uid, size = literal.len, "message appended");
                    if self.announce() == Flow::Close {
                        return Ok(Flow::Close);
                    }
                    self.ok(
                        &tag,
                        &format!("[APPENDUID {validity} {uid}] APPEND completed"),
                    );
                }
                Err(e) => self.store_error(&tag, &e),
            }
            Ok(Flow::Continue)
        })
    }
}

/// The appended message with its `binary` parts re-encoded; None when it
/// has none.
fn binary_to_base64(body: &Body) -> io::Result<Option<Vec<u8>>> {
    let mut raw = Vec::with_capacity(usize::try_from(body.len()).unwrap_or(0));
    body.read_from_start()?.read_to_end(&mut raw)?;
    Ok(facteur_imap_message::Message::parse(&raw).binary_to_base64())
}
