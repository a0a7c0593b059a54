//! APPEND (RFC 9051 §6.3.12, UIDPLUS RFC 4315 APPENDUID, APPENDLIMIT RFC
//! 7889, LITERAL+ RFC 7888, BINARY literal8 RFC 3516, MULTIAPPEND RFC
//! 3502).
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
use facteur_imap_proto::{Command, Literal, Tagged, encode};
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
        } else {
            self.message_refusal(&literal, &flags)
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
            return self.refuse_message(&tag, kind, &text, literal).await;
        }
        // Each message (several with MULTIAPPEND, RFC 3502) is read,
        // stored and fsynced in turn, so memory holds one at a time; if a
        // later one cannot be stored or is refused, the ones stored before
        // are expunged again: all or none (a crash in between can leave the
        // first ones, each whole).
        let (mut literal, mut flags, mut date) = (literal, flags, date);
        let mut uids: Vec<u32> = Vec::new();
        let mut total: u64 = 0;
        loop {
            if literal.sync {
                self.io.write(b"+ Ready for literal data\r\n");
            }
            let body = match self.read_message(literal).await? {
                Some(Ok(b)) => b,
                Some(Err(e)) => {
                    warn!(error = %e, "cannot buffer an APPEND literal");
                    self.undo_appends(&mut target, &uids);
                    self.no(&tag, "[SERVERBUG] Cannot store the message now");
                    // The rest of the command: its end, or more messages
                    // announced, too much to read through.
                    return Ok(match self.io.next_line(false).await? {
                        Input::Line(l) if l == b"\r\n" || l == b"\n" => Flow::Continue,
                        _ => {
                            self.io
                                .write(b"* BYE Cannot read the rest of this APPEND\r\n");
                            Flow::Close
                        }
                    });
                }
                None => {
                    // The client went away mid-command: nothing of it stays.
                    self.undo_appends(&mut target, &uids);
                    return Ok(Flow::Close);
                }
            };
            total = total.saturating_add(literal.len);
            let stored = self.store_appended(&mut target, body, literal.binary, &flags, date);
            let rest = match self.io.next_line(false).await? {
                Input::Line(l) => Some(l),
                Input::TooLong => None,
                _ => {
                    // The command never ended: nothing of it stays.
                    if let Ok(uid) = stored {
                        uids.push(uid);
                    }
                    self.undo_appends(&mut target, &uids);
                    return Ok(Flow::Close);
                }
            };
            match stored {
                Ok(uid) => uids.push(uid),
                Err(e) => {
                    self.undo_appends(&mut target, &uids);
                    self.store_error(&tag, &e);
                    if rest.as_deref().is_some_and(|r| r != b"\r\n" && r != b"\n") {
                        // More messages announced: their literals follow,
                        // too much to read through; end the connection.
                        self.io
                            .write(b"* BYE Cannot read the rest of this APPEND\r\n");
                        return Ok(Flow::Close);
                    }
                    return Ok(Flow::Continue);
                }
            }
            let next = match rest.as_deref().map(facteur_imap_proto::append_next) {
                Some(Ok(None)) => break,
                Some(Ok(Some(n))) => n,
                Some(Err(why)) => {
                    self.undo_appends(&mut target, &uids);
                    self.bad(Some(&tag), &format!("After a message literal: {why}"));
                    return Ok(Flow::Continue);
                }
                None => {
                    self.undo_appends(&mut target, &uids);
                    self.bad(Some(&tag), "Unexpected data after the message literal");
                    return Ok(Flow::Continue);
                }
            };
            let refusal = if uids.len() >= MAX_MULTIAPPEND {
                Some((
                    "NO",
                    format!("[LIMIT] At most {MAX_MULTIAPPEND} messages in one APPEND"),
                ))
            } else {
                self.message_refusal(&next.literal, &next.flags)
            };
            if let Some((kind, text)) = refusal {
                self.undo_appends(&mut target, &uids);
                return self.refuse_message(&tag, kind, &text, next.literal).await;
            }
            (literal, flags, date) = (next.literal, next.flags, next.date);
        }
        let (validity, dir) = match (&target, &self.sel) {
            (Some(mb), _) => (mb.uidvalidity(), mb.dir().to_path_buf()),
            (None, Some(sel)) => (sel.mb.uidvalidity(), sel.mb.dir().to_path_buf()),
            (None, None) => return Ok(Flow::Continue),
        };
        self.ctx.notifier.changed(&dir);
        info!(user = %self.user.as_ref().map_or("", |u| u.address.as_str()), uids = %encode::seq_set(&uids), size = total, "message appended");
        blocking(|| {
            if self.announce() == Flow::Close {
                return Ok(Flow::Close);
            }
            self.ok(
                &tag,
                &format!(
                    "[APPENDUID {validity} {}] APPEND completed",
                    encode::seq_set(&uids)
                ),
            );
            Ok(Flow::Continue)
        })
    }

    /// Answers a message refused before its literal: the literal is
    /// skipped (never asked for when synchronising), or the connection
    /// closed when it is too large to read through.
    async fn refuse_message(
        &mut self,
        tag: &str,
        kind: &str,
        text: &str,
        literal: Literal,
    ) -> io::Result<Flow> {
        if !self.skip_literal(literal).await? {
            self.io.write(format!("{tag} {kind} {text}\r\n").as_bytes());
            self.io.write(b"* BYE Literal too large to skip\r\n");
            return Ok(Flow::Close);
        }
        if kind == "BAD" {
            self.bad(Some(tag), text);
        } else {
            self.no(tag, text);
        }
        Ok(Flow::Continue)
    }

    /// Why one message of an APPEND is refused before its literal: size
    /// over APPENDLIMIT (`[TOOBIG]`), empty, flags we cannot store.
    fn message_refusal(
        &self,
        literal: &Literal,
        flags: &[String],
    ) -> Option<(&'static str, String)> {
        if literal.len > self.cfg.max_append_size.0 {
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
            parse_flags(flags).err().map(|e| ("BAD", e))
        }
    }

    /// Reads a message literal into memory, then a file past 1 MiB
    /// (facteur_daemon::body). None: the connection ended.
    async fn read_message(&mut self, literal: Literal) -> io::Result<Option<io::Result<Body>>> {
        let Some(user) = &self.user else {
            return Ok(None);
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
            Fill::Data => Ok(Some(match failed {
                Some(e) => Err(e),
                None => Ok(body),
            })),
            _ => Ok(None),
        }
    }

    /// Stores one appended message in the target (another mailbox, or the
    /// selected one): written, fsynced and indexed before this returns.
    fn store_appended(
        &mut self,
        target: &mut Option<facteur_store::Mailbox>,
        body: Body,
        binary: bool,
        flags: &[String],
        date: Option<i64>,
    ) -> Result<u32, facteur_store::StoreError> {
        let flags = parse_flags(flags).unwrap_or_default();
        let body = body.freeze();
        let mut reader: Box<dyn io::Read + Send> = Box::new(body.reader(Vec::new()));
        blocking(|| {
            // A literal8 may carry `binary` parts, which the LF form of the
            // store cannot keep octet for octet: they are stored as base64
            // (facteur_imap_message::convert). The message is read whole for
            // that, as big as APPENDLIMIT allows at most.
            if binary {
                match binary_to_base64(&body) {
                    Ok(Some(converted)) => reader = Box::new(io::Cursor::new(converted)),
                    Ok(None) => {}
                    Err(e) => return Err(facteur_store::StoreError::Io(e)),
                }
            }
            match (target, &mut self.sel) {
                (Some(mb), _) => mb.append(&mut reader, &flags, date),
                (None, Some(sel)) => sel.mb.append(&mut reader, &flags, date),
                (None, None) => Err(facteur_store::StoreError::Index("no APPEND target".into())),
            }
        })
    }

    /// Expunges the messages of an APPEND that cannot complete (best
    /// effort: logged if it fails).
    fn undo_appends(&mut self, target: &mut Option<facteur_store::Mailbox>, uids: &[u32]) {
        if uids.is_empty() {
            return;
        }
        let deleted = facteur_store::Flags::system(facteur_store::DELETED);
        let result = blocking(|| {
            let mb = match (target, &mut self.sel) {
                (Some(mb), _) => mb,
                (None, Some(sel)) => &mut sel.mb,
                (None, None) => return Ok(()),
            };
            mb.store_flags(uids, facteur_store::FlagOp::Add, &deleted, None)?;
            mb.expunge(Some(uids)).map(|_| ())
        });
        if let Err(e) = result {
            warn!(error = %e, uids = %encode::seq_set(uids), "cannot take back the messages of a failed APPEND");
        }
    }
}

/// Most messages in one MULTIAPPEND.
const MAX_MULTIAPPEND: usize = 1000;

/// The appended message with its `binary` parts re-encoded; None when it
/// has none.
fn binary_to_base64(body: &Body) -> io::Result<Option<Vec<u8>>> {
    let mut raw = Vec::with_capacity(usize::try_from(body.len()).unwrap_or(0));
    body.read_from_start()?.read_to_end(&mut raw)?;
    Ok(facteur_imap_message::Message::parse(&raw).binary_to_base64())
}
