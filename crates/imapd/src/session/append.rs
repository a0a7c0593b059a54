//! APPEND (RFC 9051 §6.3.12, UIDPLUS RFC 4315 APPENDUID, APPENDLIMIT RFC
//! 7889, LITERAL+ RFC 7888, BINARY literal8 RFC 3516, MULTIAPPEND RFC
//! 3502, CATENATE RFC 4469).
//!
//! Everything that can be refused is refused before the literal is read:
//! state, mailbox name and existence (`[TRYCREATE]`), flags, size over
//! APPENDLIMIT (`[TOOBIG]`), an empty message. A synchronising literal is
//! then simply never asked for; a non-synchronising one is read and dropped
//! (or the connection closed if it is absurdly large). The octets go to
//! memory, then to an unlinked file past 1 MiB (facteur_daemon::body), and
//! the store writes, fsyncs and indexes the message before OK is sent.
//!
//! A CATENATE message is put together the same way from its parts: TEXT
//! literals and IMAP URLs of this user's messages or their parts (read as
//! `BODY.PEEK[section]<partial>` would, no \Seen set). A URL that names
//! nothing (no such mailbox, UIDVALIDITY, UID or part) fails the whole
//! APPEND with `[BADURL url]`; the total size counts against APPENDLIMIT.

use super::{Flow, Session, blocking, parse_flags};
use facteur_daemon::body::Body;
use facteur_daemon::lineio::{Fill, Input};
use facteur_imap_proto::{AppendStep, Command, Literal, Tagged, encode};
use std::collections::VecDeque;
use std::io::{self, Read};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

/// A CATENATE message while its parts arrive.
struct Catenated {
    flags: Vec<String>,
    date: Option<i64>,
    body: Body,
}

/// The literal a line of APPEND ends with (the last of its steps), and
/// whether a CATENATE's parts are still open there.
fn line_end(steps: &VecDeque<AppendStep>, mut catenate: bool) -> (Option<Literal>, bool) {
    for s in steps {
        match s {
            AppendStep::Catenate { .. } => catenate = true,
            AppendStep::EndCatenate => catenate = false,
            _ => {}
        }
    }
    match steps.back() {
        Some(AppendStep::Message(m)) => (Some(m.literal), false),
        Some(AppendStep::Text(l)) => (Some(*l), true),
        _ => (None, catenate),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn append(&mut self, t: Tagged) -> io::Result<Flow> {
        let tag = t.tag;
        let Command::Append { mailbox, steps } = t.command else {
            return Ok(Flow::Continue);
        };
        let mut steps: VecDeque<AppendStep> = steps.into();
        // Refusals before the literal.
        let refusal: Option<(&str, String)> = if self.user.is_none() {
            Some(("BAD", "APPEND needs a login first".into()))
        } else {
            match steps.front() {
                Some(AppendStep::Message(m)) => self.message_refusal(&m.literal, &m.flags),
                Some(AppendStep::Catenate { flags, .. }) => {
                    parse_flags(flags).err().map(|e| ("BAD", e))
                }
                _ => Some(("BAD", "APPEND needs a message".into())),
            }
        };
        let name = self.mailbox_in(&mailbox);
        let refusal = match (refusal, &name) {
            (Some(r), _) => Some(r),
            (None, None) => Some(("NO", "[CANNOT] Invalid mailbox name encoding".into())),
            (None, Some(_)) => None,
        };
        // The target: the selected mailbox itself, or another one opened.
        let mut target = None;
        // The flags the user may set there (all, but in a shared mailbox):
        // the others are dropped, the APPEND does not fail (RFC 4314 §4).
        let mut mask = facteur_store::FlagMask::ALL;
        let refusal = match (refusal, name, &self.user) {
            (Some(r), _, _) => Some(r),
            (None, Some(name), Some(_)) => {
                let same = self.sel.as_ref().filter(|s| {
                    facteur_store::normalize_name(&name).ok().as_deref() == Some(s.name.as_str())
                });
                if let Some(s) = same {
                    mask = super::shared::flag_mask(s.rights);
                    (!s.rights.has('i')).then(|| {
                        (
                            "NO",
                            "[NOPERM] Needs the right \"i\" on this mailbox".to_string(),
                        )
                    })
                } else {
                    match self
                        .target(&name, "i")
                        .and_then(|t| Ok((blocking(|| t.store.select(&t.name))?, t.rights)))
                    {
                        Ok((mb, rights)) => {
                            target = Some(mb);
                            mask = super::shared::flag_mask(rights);
                            None
                        }
                        Err(facteur_store::StoreError::NoPermission(why)) => {
                            Some(("NO", format!("[NOPERM] {why}")))
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
            return self.refuse_rest(&tag, kind, &text, &steps, false).await;
        }
        // Each message (several with MULTIAPPEND, RFC 3502) is read,
        // stored and fsynced in turn, so memory holds one at a time; if a
        // later one cannot be stored or is refused, the ones stored before
        // are expunged again: all or none (a crash in between can leave the
        // first ones, each whole).
        let mut uids: Vec<u32> = Vec::new();
        let mut total: u64 = 0;
        let mut cat: Option<Catenated> = None;
        while let Some(step) = steps.pop_front() {
            // A refusal of this step: (kind, text).
            let mut refusal: Option<(&str, String)> = None;
            let mut literal = None;
            match step {
                AppendStep::Message(m) => {
                    refusal = self
                        .count_refusal(uids.len())
                        .or_else(|| self.message_refusal(&m.literal, &m.flags));
                    if refusal.is_none() {
                        literal = Some((m.literal, None));
                        cat = Some(Catenated {
                            flags: m.flags,
                            date: m.date,
                            body: Body::default(),
                        });
                    } else {
                        steps.push_front(AppendStep::Message(m));
                    }
                }
                AppendStep::Catenate { flags, date } => {
                    refusal = self
                        .count_refusal(uids.len())
                        .or_else(|| parse_flags(&flags).err().map(|e| ("BAD", e)));
                    cat = Some(Catenated {
                        flags,
                        date,
                        body: Body::default(),
                    });
                }
                AppendStep::Url(url) => {
                    let c = cat.as_mut().ok_or_else(lost)?;
                    match self.url_part(&url) {
                        Ok(part) => {
                            refusal = self.size_refusal(c.body.len(), part.len() as u64);
                            if refusal.is_none()
                                && let Err(e) = c.body.append(&part, &self.tmp_dir())
                            {
                                warn!(error = %e, "cannot buffer a CATENATE part");
                                refusal =
                                    Some(("NO", "[SERVERBUG] Cannot store the message now".into()));
                            }
                        }
                        Err(why) => {
                            info!(url = %url, reason = %why, "CATENATE: bad URL");
                            refusal = Some(("NO", format!("[BADURL {}] {why}", resp_text(&url))));
                        }
                    }
                }
                AppendStep::Text(l) => {
                    let c = cat.as_ref().ok_or_else(lost)?;
                    refusal = self.size_refusal(c.body.len(), l.len);
                    if refusal.is_none() {
                        literal = Some((l, Some(())));
                    } else {
                        steps.push_front(AppendStep::Text(l));
                    }
                }
                AppendStep::EndCatenate => {
                    let c = cat.take().ok_or_else(lost)?;
                    if c.body.is_empty() {
                        refusal = Some(("NO", "Empty message".into()));
                    } else {
                        total = total.saturating_add(c.body.len());
                        match self.store_appended(
                            &mut target,
                            c.body,
                            false,
                            &c.flags,
                            c.date,
                            mask,
                        ) {
                            Ok(uid) => uids.push(uid),
                            Err(e) => {
                                self.undo_appends(&mut target, &uids);
                                self.store_error(&tag, &e);
                                return self.drain_append(&steps, false).await;
                            }
                        }
                    }
                }
            }
            if let Some((kind, text)) = refusal {
                self.undo_appends(&mut target, &uids);
                let open = cat.is_some();
                return self.refuse_rest(&tag, kind, &text, &steps, open).await;
            }
            // A literal ends the line: the message's octets, or a TEXT
            // part of the CATENATE being put together.
            let Some((lit, text_part)) = literal else {
                continue;
            };
            if lit.sync {
                self.io.write(b"+ Ready for literal data\r\n");
            }
            let c = cat.as_mut().ok_or_else(lost)?;
            match self.read_into(&mut c.body, lit).await? {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    warn!(error = %e, "cannot buffer an APPEND literal");
                    self.undo_appends(&mut target, &uids);
                    self.no(&tag, "[SERVERBUG] Cannot store the message now");
                    // The rest of the command: its end, or more announced,
                    // too much to read through.
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
            }
            let mut stored = None;
            if text_part.is_none() {
                let c = cat.take().ok_or_else(lost)?;
                total = total.saturating_add(lit.len);
                stored = Some(self.store_appended(
                    &mut target,
                    c.body,
                    lit.binary,
                    &c.flags,
                    c.date,
                    mask,
                ));
            }
            let rest = match self.io.next_line(false).await? {
                Input::Line(l) => Some(l),
                Input::TooLong => None,
                _ => {
                    // The command never ended: nothing of it stays.
                    if let Some(Ok(uid)) = stored {
                        uids.push(uid);
                    }
                    self.undo_appends(&mut target, &uids);
                    return Ok(Flow::Close);
                }
            };
            let next = rest
                .as_deref()
                .map(|r| facteur_imap_proto::append_next(r, text_part.is_some()));
            match stored {
                Some(Ok(uid)) => uids.push(uid),
                Some(Err(e)) => {
                    self.undo_appends(&mut target, &uids);
                    self.store_error(&tag, &e);
                    return match next {
                        Some(Ok(n)) => self.drain_append(&n.into(), false).await,
                        _ => {
                            // More announced that cannot be followed: too
                            // much to read through; end the connection.
                            self.io
                                .write(b"* BYE Cannot read the rest of this APPEND\r\n");
                            Ok(Flow::Close)
                        }
                    };
                }
                None => {}
            }
            steps = match next {
                Some(Ok(n)) => n.into(),
                Some(Err(why)) => {
                    self.undo_appends(&mut target, &uids);
                    self.bad(Some(&tag), &format!("After a literal of APPEND: {why}"));
                    return Ok(Flow::Continue);
                }
                None => {
                    self.undo_appends(&mut target, &uids);
                    self.bad(Some(&tag), "Unexpected data after the message literal");
                    return Ok(Flow::Continue);
                }
            };
        }
        let (validity, dir) = match (&target, &self.sel) {
            (Some(mb), _) => (mb.uidvalidity(), mb.dir().to_path_buf()),
            (None, Some(sel)) => (sel.mb.uidvalidity(), sel.mb.dir().to_path_buf()),
            (None, None) => return Ok(Flow::Continue),
        };
        self.ctx.notifier.changed(&dir);
        // Into another folder than the selected one: its full-text index,
        // if it has one, takes the messages now (the selected one's does
        // when the announcement below syncs it).
        if let Some(mb) = &target
            && let Err(e) = blocking(|| crate::fts::catch_up(mb, 100))
        {
            info!(dir = %dir.display(), error = %e, "cannot update the full-text index");
        }
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

    /// Answers an APPEND refused at `steps` (what is left of the line,
    /// the refused step first), then reads through what the client still
    /// sends of it: a synchronising literal is never asked for, a
    /// non-synchronising one is read and dropped with the lines after it.
    async fn refuse_rest(
        &mut self,
        tag: &str,
        kind: &str,
        text: &str,
        steps: &VecDeque<AppendStep>,
        catenate: bool,
    ) -> io::Result<Flow> {
        if kind == "BAD" {
            self.bad(Some(tag), text);
        } else {
            self.no(tag, text);
        }
        self.drain_append(steps, catenate).await
    }

    /// Reads through the rest of a refused APPEND (see [`Self::refuse_rest`]);
    /// closes the connection when a literal is too large to read through or
    /// what follows cannot be followed.
    async fn drain_append(
        &mut self,
        steps: &VecDeque<AppendStep>,
        catenate: bool,
    ) -> io::Result<Flow> {
        let (mut last, mut open) = line_end(steps, catenate);
        loop {
            let lit = match last {
                Some(l) if !l.sync => l,
                // The line ended the command, or the client waits for a
                // go-ahead it will not get.
                _ => return Ok(Flow::Continue),
            };
            if lit.len > 2 * self.cfg.max_append_size.0
                || self.io.read_exact(lit.len, |_| {}).await? != Fill::Data
            {
                self.io.write(b"* BYE Literal too large to skip\r\n");
                return Ok(Flow::Close);
            }
            let steps: VecDeque<AppendStep> = match self.io.next_line(false).await? {
                Input::Line(l) => match facteur_imap_proto::append_next(&l, open) {
                    Ok(s) => s.into(),
                    Err(_) => return Ok(Flow::Continue),
                },
                _ => return Ok(Flow::Close),
            };
            (last, open) = line_end(&steps, open);
        }
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

    /// Over MULTIAPPEND's count.
    fn count_refusal(&self, stored: usize) -> Option<(&'static str, String)> {
        (stored >= MAX_MULTIAPPEND).then(|| {
            (
                "NO",
                format!("[LIMIT] At most {MAX_MULTIAPPEND} messages in one APPEND"),
            )
        })
    }

    /// A CATENATE part of `more` octets after `have` would make the message
    /// larger than APPENDLIMIT.
    fn size_refusal(&self, have: u64, more: u64) -> Option<(&'static str, String)> {
        (have.saturating_add(more) > self.cfg.max_append_size.0).then(|| {
            (
                "NO",
                format!(
                    "[TOOBIG] Message larger than {} octets",
                    self.cfg.max_append_size.0
                ),
            )
        })
    }

    /// Where a message being received spills past 1 MiB: the user's tmp/.
    fn tmp_dir(&self) -> std::path::PathBuf {
        self.user
            .as_ref()
            .map(|u| u.store.dir().join("tmp"))
            .unwrap_or_default()
    }

    /// The octets a CATENATE URL names (RFC 4469 §5, RFC 5092): a message
    /// of this user, or a part of it, or a range of either, or what a
    /// URLAUTH URL authorizes (RFC 4469 §5: of any user); the error says
    /// why it names nothing.
    fn url_part(&mut self, url: &str) -> Result<Vec<u8>, String> {
        let u = facteur_imap_proto::parse_imap_url(url).map_err(str::to_string)?;
        if u.urlauth.is_some() {
            let raw = self
                .authorized_message(&u)
                .ok_or("the URL authorizes nothing")?;
            let msg = facteur_imap_message::Message::parse(&raw);
            return super::urlauth::part_bytes(&msg, &raw, &u).ok_or_else(|| "no such part".into());
        }
        let Some(user) = &self.user else {
            return Err("not logged in".into());
        };
        if u.user
            .as_ref()
            .is_some_and(|n| !n.eq_ignore_ascii_case(&user.address))
        {
            return Err("another user's mailbox".into());
        }
        let norm = facteur_store::normalize_name(&u.mailbox).map_err(|e| e.to_string())?;
        let read = |mb: &facteur_store::Mailbox| -> Result<facteur_store::Content, String> {
            if u.uidvalidity.is_some_and(|v| v != mb.uidvalidity()) {
                return Err("UIDVALIDITY differs".into());
            }
            if !mb.messages().iter().any(|m| m.uid == u.uid) {
                return Err("no such message".into());
            }
            mb.read_message(u.uid).map_err(|e| e.to_string())
        };
        let raw = blocking(|| match &self.sel {
            Some(sel) if sel.name == norm => read(&sel.mb),
            _ => match user.store.select(&u.mailbox) {
                Ok(mb) => read(&mb),
                Err(facteur_store::StoreError::NoSuchMailbox(_)) => Err("no such mailbox".into()),
                Err(e) => Err(e.to_string()),
            },
        })?;
        let msg = facteur_imap_message::Message::parse(&raw);
        super::urlauth::part_bytes(&msg, &raw, &u).ok_or_else(|| "no such part".into())
    }

    /// Reads a literal into `body`: memory, then a file past 1 MiB
    /// (facteur_daemon::body). None: the connection ended.
    async fn read_into(
        &mut self,
        body: &mut Body,
        literal: Literal,
    ) -> io::Result<Option<io::Result<()>>> {
        if self.user.is_none() {
            return Ok(None);
        }
        let tmp = self.tmp_dir();
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
                None => Ok(()),
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
        mask: facteur_store::FlagMask,
    ) -> Result<u32, facteur_store::StoreError> {
        let flags = mask.filter(&parse_flags(flags).unwrap_or_default());
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

/// A CATENATE part without its CATENATE: the parser never gives one, so
/// this ends the connection rather than guess.
fn lost() -> io::Error {
    io::Error::other("APPEND: a CATENATE part outside a CATENATE")
}

/// `url` as text of a response code: a `]` or a control character would
/// end or break it.
fn resp_text(url: &str) -> String {
    url.chars()
        .map(|c| if c == ']' || c.is_control() { '?' } else { c })
        .take(1000)
        .collect()
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
