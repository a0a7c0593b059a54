//! The TRANSACTION and UPDATE states (RFC 1939 §5, §6, §7): STAT, LIST,
//! UIDL, RETR, TOP, DELE, RSET, NOOP, and QUIT with its UPDATE.
//!
//! RETR and TOP stream the message from the store in 64 KiB chunks, read in
//! a blocking task, cut by the TOP limiter, dot-stuffed on the way out; at
//! most a chunk and its stuffed copy are in memory. RETR announces the size
//! the maildrop computed and checks it against what it actually sent (a
//! mismatch is logged and the cached size dropped; it cannot happen while
//! message files are immutable).
//!
//! QUIT runs UPDATE, then releases the maildrop lock before answering, so a
//! client that logs in again right after the `+OK` finds the mailbox free.

use super::{Flow, Session, State, WRITE_CHUNK, blocking};
use crate::maildrop::Maildrop;
use facteur_pop3_proto::{Command, DotStuffer, RespCode, Response, TopLimiter, write_multiline};
use facteur_store::StoreError;
use std::io::{self, Read};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info, warn};

const CHUNK: usize = 64 * 1024;

fn lost() -> io::Error {
    io::Error::other("maildrop not available")
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn md(&self) -> Option<&Maildrop> {
        match &self.state {
            State::Transaction(Some(md)) => Some(md),
            _ => None,
        }
    }

    fn md_mut(&mut self) -> Option<&mut Maildrop> {
        match &mut self.state {
            State::Transaction(Some(md)) => Some(md),
            _ => None,
        }
    }

    /// Runs `f` on the maildrop in a blocking task.
    async fn with_maildrop<T, F>(&mut self, f: F) -> io::Result<T>
    where
        F: FnOnce(&mut Maildrop) -> T + Send + 'static,
        T: Send + 'static,
    {
        let State::Transaction(slot) = &mut self.state else {
            return Err(lost());
        };
        let mut md = slot.take().ok_or_else(lost)?;
        let (md, t) = blocking(move || {
            let t = f(&mut md);
            (md, t)
        })
        .await?;
        if let State::Transaction(slot) = &mut self.state {
            *slot = Some(md);
        }
        Ok(t)
    }

    pub(super) async fn transaction(&mut self, cmd: Command) -> io::Result<Flow> {
        let Some(md) = self.md() else {
            return Err(lost());
        };
        match cmd {
            Command::Stat => {
                let (n, octets) = md.stat();
                self.reply(&Response::ok(format!("{n} {octets}")));
            }
            Command::List(None) => {
                let (n, octets) = md.stat();
                let lines: Vec<String> = md
                    .visible()
                    .map(|(i, m)| format!("{i} {}", m.size))
                    .collect();
                self.reply(&Response::ok(format!("{n} messages ({octets} octets)")));
                write_multiline(self.io.out(), lines);
            }
            Command::List(Some(i)) => match md.get(i) {
                Some(m) => {
                    let r = Response::ok(format!("{i} {}", m.size));
                    self.reply(&r);
                }
                None => self.no_such_message(i),
            },
            Command::Uidl(None) => {
                let lines: Vec<String> = md
                    .visible()
                    .map(|(i, m)| format!("{i} {}", md.uidl(m)))
                    .collect();
                self.reply(&Response::ok("Unique-ID listing follows"));
                write_multiline(self.io.out(), lines);
            }
            Command::Uidl(Some(i)) => match md.get(i) {
                Some(m) => {
                    let r = Response::ok(format!("{i} {}", md.uidl(m)));
                    self.reply(&r);
                }
                None => self.no_such_message(i),
            },
            Command::Retr(i) => return self.send_message(i, None).await,
            Command::Top { msg, lines } => return self.send_message(msg, Some(lines)).await,
            Command::Dele(i) => {
                let ok = self.md_mut().is_some_and(|md| md.mark_deleted(i));
                if ok {
                    self.reply(&Response::ok(format!("Message {i} deleted")));
                } else {
                    self.no_such_message(i);
                }
            }
            Command::Rset => {
                if let Some(md) = self.md_mut() {
                    md.reset();
                }
                let (n, octets) = self.md().map(|m| m.stat()).unwrap_or_default();
                self.reply(&Response::ok(format!(
                    "Maildrop has {n} messages ({octets} octets)"
                )));
            }
            Command::Noop => self.reply(&Response::ok("")),
            Command::Quit => return self.quit().await,
            Command::User(_) | Command::Pass(_) | Command::Auth { .. } => {
                self.error(Response::err("Already logged in"))
            }
            Command::Capa | Command::Stls => {
                self.error(Response::err("Not allowed now"));
            }
        }
        Ok(Flow::Continue)
    }

    fn no_such_message(&mut self, i: u32) {
        let r = match self.md() {
            Some(md) if (i as usize) <= md.len() => {
                Response::err(format!("Message {i} already deleted"))
            }
            Some(md) => Response::err(format!(
                "No such message, only {} messages in maildrop",
                md.len()
            )),
            None => Response::err("No such message"),
        };
        self.error(r);
    }

    /// RETR (`top` = None) or TOP: streams the message.
    async fn send_message(&mut self, i: u32, top: Option<u64>) -> io::Result<Flow> {
        let Some((uid, size)) = self.md().and_then(|m| m.get(i)).map(|m| (m.uid, m.size)) else {
            self.no_such_message(i);
            return Ok(Flow::Continue);
        };
        let mut reader = match self.with_maildrop(move |md| md.open_message(uid)).await? {
            Ok(r) => r,
            Err(StoreError::NoSuchMessage(_)) => {
                self.error(Response::err_code(
                    RespCode::SysPerm,
                    "Message was removed by another session",
                ));
                return Ok(Flow::Continue);
            }
            Err(e) => {
                warn!(uid, error = %e, "cannot open a message");
                self.reply(&Response::err_code(
                    RespCode::SysTemp,
                    "Cannot read the message, try again later",
                ));
                return Ok(Flow::Continue);
            }
        };
        self.reply(&Response::ok(match top {
            None => format!("{size} octets"),
            Some(_) => "Top of message follows".into(),
        }));
        let mut stuffer = DotStuffer::new();
        let mut limiter = top.map(TopLimiter::new);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let (r, b, res) = blocking(move || {
                let res = loop {
                    match reader.read(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                };
                (reader, buf, res)
            })
            .await?;
            reader = r;
            buf = b;
            let k = match res {
                Ok(0) => break,
                Ok(k) => k,
                Err(e) => {
                    // The +OK is out: the only honest end is to hang up.
                    warn!(uid, error = %e, "read error in the middle of a message");
                    return Err(e);
                }
            };
            let mut chunk = &buf[..k];
            if let Some(l) = limiter.as_mut() {
                chunk = &chunk[..l.take(chunk)];
            }
            stuffer.push(chunk, self.io.out());
            if self.io.out().len() >= WRITE_CHUNK {
                self.flush().await?;
            }
            if limiter.as_ref().is_some_and(TopLimiter::is_done) {
                break;
            }
        }
        let sent = stuffer.finish(self.io.out());
        if top.is_none() {
            if sent != size {
                warn!(
                    uid,
                    announced = size,
                    sent,
                    "message size differs from the one announced"
                );
                self.with_maildrop(move |md| md.forget_size(uid)).await?;
            }
            if let Some(md) = self.md_mut() {
                md.mark_retrieved(i);
            }
            debug!(uid, octets = sent, "RETR");
        }
        Ok(Flow::Continue)
    }

    /// QUIT in TRANSACTION: the UPDATE state.
    async fn quit(&mut self) -> io::Result<Flow> {
        let (user, result) = self
            .with_maildrop(|md| (md.user().to_owned(), md.update()))
            .await?;
        // Drop the maildrop, and with it the lock, before answering.
        self.state = State::Authorization { user: None };
        match result {
            Ok(u) => {
                info!(user = %user, deleted = u.deleted, left = u.left, "logged out");
                self.reply(&Response::ok(format!("Bye, {} messages left", u.left)));
            }
            Err(e) => {
                warn!(user = %user, error = %e, "UPDATE failed");
                self.reply(&Response::err_code(
                    RespCode::SysTemp,
                    "Some deleted messages could not be removed",
                ));
            }
        }
        Ok(Flow::Close)
    }
}
