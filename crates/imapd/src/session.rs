//! One IMAP connection: reading commands with their literals, dispatch by
//! state (RFC 9051 §3), and the untagged updates that keep the client's view
//! of the selected mailbox in step with the store. Generic over the stream,
//! so tests run sessions over in-memory pipes.
//!
//! Reading (RFC 9051 §4.3, RFC 7888): a command is read line by line; a line
//! ending in a literal announcement (`{n}`, `{n+}`, `~{n}`) is followed by
//! the literal's octets (after a `+` continuation for the synchronising
//! form) and more command text. The whole command is bounded by
//! `max_command_size`; an announcement over it is refused before any octet
//! is read (a synchronising one with BAD, a non-synchronising one by closing
//! the connection, as RFC 7888 §4 allows). APPEND's message literal is not
//! part of the command: it is recognised by parsing the text before it, and
//! streamed by session/append.rs.
//!
//! Updates: see the invariants in lib.rs. [`Session::announce`] syncs the
//! view and reports what changed; it runs after every command except FETCH,
//! STORE and SEARCH by sequence number.

mod announce;
mod append;
mod auth;
mod content;
mod context;
mod events;
mod fetch;
mod idle;
mod listing;
mod mailboxes;
mod metadata;
mod modify;
mod names;
mod quota;
mod search;
mod shared;
mod sort;
mod urlauth;

pub(crate) use names::{COMMAND_NAMES, command_name};
#[cfg(test)]
mod tests;

pub(crate) use announce::{expunge_lines, parse_flags, write_flags};

use crate::Context;
use facteur_daemon::conn::Conn;
use facteur_daemon::lineio::{Fill, Input, LineIo};
use facteur_imap_proto::{Command, SeqBound, SequenceSet, Tagged, encode};
use facteur_store::{Mailbox, StoreError, UserStore};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{Instrument, debug, info_span, warn};

/// The longest line of a command (literals apart).
const MAX_LINE: usize = 64 * 1024;
/// Output is written out once this much is batched (FETCH of bodies).
const WRITE_CHUNK: usize = 256 * 1024;

/// Whether the session goes on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
}

/// The logged-in user.
pub(crate) struct User {
    pub address: String,
    pub store: Arc<UserStore>,
}

/// The selected mailbox.
pub(crate) struct Selected {
    pub mb: Mailbox,
    /// Its name as the client knows it (`Shared/bob/Team` for bob's
    /// `Team`; `mb.name()` is the owner's).
    pub name: String,
    /// The user's rights on it as of SELECT (all, for the user's own).
    pub rights: facteur_store::Rights,
    pub read_only: bool,
    /// IMAP4rev1's `\Recent` (RFC 3501 §2.3.2): the UID ranges `[from,
    /// to)` recent in this session — claimed by SELECT and by each sync
    /// that finds new messages, or, under EXAMINE, the unclaimed ones seen
    /// at the start. Always empty for IMAP4rev2, which has no `\Recent`.
    pub recent: Vec<(u32, u32)>,
    /// The count of the last `* n RECENT` sent (sent again when it changes
    /// or new messages come).
    pub announced_recent: usize,
    /// The keywords the last `* FLAGS` response listed. A message showing
    /// another one (a STORE that creates it, a message copied in with it)
    /// makes a new `* FLAGS` go out before it (RFC 9051 §7.3.5: a client
    /// learns the mailbox's flags from it).
    pub keywords: crate::keywords::Keywords,
    /// The searches kept up to date (RFC 5267 `RETURN (UPDATE)`).
    pub contexts: Vec<context::SearchContext>,
}

impl Selected {
    /// The flags this session may change (PERMANENTFLAGS).
    pub(crate) fn permanent(&self) -> facteur_store::FlagMask {
        if self.read_only {
            facteur_store::FlagMask::NONE
        } else {
            shared::flag_mask(self.rights)
        }
    }

    pub(crate) fn is_recent(&self, uid: u32) -> bool {
        in_ranges(&self.recent, uid)
    }

    /// The messages of the view that are recent in this session.
    pub(crate) fn recent_count(&self) -> usize {
        if self.recent.is_empty() {
            return 0;
        }
        self.mb
            .messages()
            .iter()
            .filter(|m| self.is_recent(m.uid))
            .count()
    }
}

/// Whether `uid` is in one of the `[from, to)` ranges.
pub(crate) fn in_ranges(ranges: &[(u32, u32)], uid: u32) -> bool {
    ranges.iter().any(|&(a, b)| uid >= a && uid < b)
}

/// What reading a command brought.
enum Read {
    /// A complete command, literals inline.
    Command(Vec<u8>),
    /// An APPEND whose message literal is next on the wire.
    Append(Tagged),
    /// Refused while reading: BAD with the tag if known.
    Bad(Option<String>, String),
    Eof,
    Timeout,
    Stop,
    /// The connection must close (BYE text).
    Close(String),
}

/// What the session does with what was read (small: it stays in the
/// session's task while the command runs).
enum Step {
    /// Answered already (a BAD).
    Done,
    Idle(String),
    Append(Box<Tagged>),
    Command(Box<Tagged>),
    /// End the connection with this BYE text.
    Bye(String),
}

pub(crate) struct Session<S> {
    pub ctx: Arc<Context>,
    /// `[imapd]` as the session began (a reload applies to later ones).
    pub cfg: Arc<facteur_config::Imapd>,
    pub io: LineIo<Conn<S>>,
    pub ip: IpAddr,
    pub user: Option<User>,
    pub sel: Option<Selected>,
    pub errors: u32,
    /// How the command being answered ended: ok, no, bad (metrics).
    pub result: &'static str,
    /// IMAP4rev2 enabled: UTF-8 mailbox names and strings, ESEARCH replies,
    /// no \Recent.
    pub rev2: bool,
    /// UTF8=ACCEPT enabled (or rev2): mailbox names in UTF-8.
    pub utf8: bool,
    /// CONDSTORE in use (RFC 7162 §3.1): MODSEQ in FETCH replies.
    pub condstore: bool,
    /// QRESYNC enabled: VANISHED instead of EXPUNGE.
    pub qresync: bool,
    /// The SEARCHRES result (`$`), as UIDs.
    pub saved: Vec<u32>,
    /// What NOTIFY watches (RFC 5465), boxed: most sessions never ask.
    pub notify: Option<Box<events::NotifyState>>,
    /// The first line of the next command, read while waiting for NOTIFY
    /// events between commands.
    first_input: Option<Input>,
}

/// Serves one connection. For implicit TLS the caller passes a stream on
/// which TLS is already established (`Conn::Tls`).
pub async fn serve<S>(ctx: Arc<Context>, conn: Conn<S>, ip: IpAddr, stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let span = info_span!("imap", peer = %ip, tls = conn.is_tls());
    async move {
        debug!("connected");
        let cfg = ctx.cfg.get();
        let login_timeout = cfg.login_timeout.duration();
        let mut io = LineIo::new(conn, MAX_LINE, login_timeout, stop);
        // Before login, the whole session has `login_timeout` (issue 14): a
        // client that trickles bytes, or sends a cheap command now and
        // then, cannot hold a connection slot longer than that.
        io.set_deadline(Some(tokio::time::Instant::now() + login_timeout));
        let mut s = Session {
            ctx,
            cfg,
            io,
            ip,
            user: None,
            sel: None,
            errors: 0,
            result: "none",
            rev2: false,
            utf8: false,
            condstore: false,
            qresync: false,
            saved: Vec::new(),
            notify: None,
            first_input: None,
        };
        // (a block: a local kept across `run` would stay for the whole
        // session, a kilobyte per idle connection)
        {
            let caps = s.capabilities();
            s.io.write(
                format!(
                    "* OK [CAPABILITY {caps}] {} IMAP server ready (facteur)\r\n",
                    s.ctx.hostname
                )
                .as_bytes(),
            );
        }
        if let Err(e) = s.run().await {
            debug!(error = %e, "connection ended with an I/O error");
        } else {
            // An orderly end: TLS close_notify (RFC 8446 §6.1), then FIN.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.io.stream.shutdown())
                .await;
        }
        if let Some(u) = &s.user {
            debug!(user = %u.address, "disconnected");
        }
    }
    .instrument(span)
    .await
}

/// Runs blocking store work (SQLite, fsync) without stalling the other
/// sessions on this worker thread. Each call hands the worker's other
/// tasks to another thread (a wake-up and context switches, several
/// microseconds), so a command that works on the store runs whole in one
/// call (see `dispatch`); calls nested in it cost nothing.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Sessions doing CPU-heavy work at once (reading and formatting message
/// content for FETCH, SEARCH): one per core less one, at least one. Such
/// work costs what a client chooses (how many messages, how many items, how
/// big their headers), so it queues here (fairly: the semaphore is FIFO)
/// instead of taking every core, and a core stays free for the other
/// sessions' cheap commands (issue 14: another session's NOOP is answered
/// at once while FETCHes of huge headers run).
fn heavy_gate() -> &'static tokio::sync::Semaphore {
    static GATE: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))
    })
}

/// Runs `f`, heavy work on memory alone (no file, no lock another
/// process may hold), when [`heavy_gate`] lets it, on this worker: it
/// waits for nothing, and a batch of it costs less than a hand-off to
/// another thread (see `fetch.rs`).
pub(crate) async fn heavy_inline<T>(f: impl FnOnce() -> T) -> T {
    // The semaphore is never closed: acquire cannot fail.
    let _permit = heavy_gate().acquire().await.ok();
    f()
}

/// Runs `f`, heavy work, when [`heavy_gate`] lets it, then as [`blocking`].
pub(crate) async fn heavy<T>(f: impl FnOnce() -> T) -> T {
    // The semaphore is never closed: acquire cannot fail.
    let _permit = heavy_gate().acquire().await.ok();
    blocking(f)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A CONDSTORE-enabling command (RFC 7162 §3.1): the first one in a
    /// selected mailbox announces its HIGHESTMODSEQ before its reply.
    fn enable_condstore(&mut self) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        if let Some(sel) = &self.sel {
            let m = sel.mb.highest_modseq();
            self.io
                .write(format!("* OK [HIGHESTMODSEQ {m}] Highest\r\n").as_bytes());
        }
    }

    async fn run(&mut self) -> io::Result<()> {
        loop {
            if self.io.stopping() {
                self.io
                    .write(b"* BYE [UNAVAILABLE] Server shutting down\r\n");
                return self.io.flush().await;
            }
            if self.errors >= self.cfg.max_errors {
                self.io.write(b"* BYE Too many errors\r\n");
                return self.io.flush().await;
            }
            if self.notify.is_some() && !self.io.has_input() {
                // NOTIFY: events are told while the client is silent. Only
                // the wait for a command's first line is cut short, and
                // that read keeps what it read.
                self.io.flush().await?;
                self.notify_follow_selected();
                let input = tokio::select! {
                    i = self.io.next_line(true) => Some(i?),
                    _ = events::notify_wait(&mut self.notify) => None,
                };
                match input {
                    Some(i) => self.first_input = Some(i),
                    None => {
                        if blocking(|| self.announce()) == Flow::Close {
                            return self.io.flush().await;
                        }
                        continue;
                    }
                }
            }
            // What was read, made small before anything else is awaited:
            // every session's task is sized for its largest state all its
            // life, so a command's state is boxed (but IDLE's, where idle
            // sessions spend their time) and no parsed command stays in
            // the frame across an await.
            let step = match self.read_command().await? {
                Read::Eof => return Ok(()),
                Read::Stop => continue,
                Read::Timeout => Step::Bye("Autologout: idle for too long".into()),
                Read::Close(why) => Step::Bye(why),
                Read::Bad(tag, why) => {
                    self.bad(tag.as_deref(), &why);
                    Step::Done
                }
                Read::Append(t) => Step::Append(Box::new(t)),
                Read::Command(bytes) => match facteur_imap_proto::parse_command(&bytes) {
                    // A CATENATE of URLs only: no literal ends its line.
                    Ok(t) if matches!(t.command, Command::Append { .. }) => {
                        Step::Append(Box::new(t))
                    }
                    Ok(t) if matches!(t.command, Command::Idle) => Step::Idle(t.tag),
                    Ok(t) => Step::Command(Box::new(t)),
                    Err(e) => {
                        self.bad(e.tag.as_deref(), &e.message);
                        Step::Done
                    }
                },
            };
            let started = std::time::Instant::now();
            let flow = match step {
                Step::Bye(why) => {
                    self.io.write(format!("* BYE {why}\r\n").as_bytes());
                    return self.io.flush().await;
                }
                Step::Done => Flow::Continue,
                // Boxed: APPEND's state (the target mailbox, the messages
                // stored so far) lives only while it runs.
                Step::Append(t) => {
                    let flow = Box::pin(self.append(*t)).await?;
                    facteur_access::metrics::command("APPEND", self.result, started.elapsed());
                    flow
                }
                Step::Idle(tag) => {
                    self.result = "none";
                    let flow = self.idle(&tag).await?;
                    facteur_access::metrics::command("IDLE", self.result, started.elapsed());
                    flow
                }
                Step::Command(t) => {
                    let name = command_name(&t.command);
                    self.result = "none";
                    let flow = Box::pin(self.dispatch(*t)).await?;
                    facteur_access::metrics::command(name, self.result, started.elapsed());
                    flow
                }
            };
            if self.io.out().len() > WRITE_CHUNK || !self.io.has_input() {
                self.io.flush().await?;
            }
            if flow == Flow::Close {
                return self.io.flush().await;
            }
        }
    }

    /// Reads one command and its literals (see the module comment).
    async fn read_command(&mut self) -> io::Result<Read> {
        let max = self.cfg.max_command_size.0 as usize;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let next = match self.first_input.take() {
                Some(i) if buf.is_empty() => i,
                _ => self.io.next_line(buf.is_empty()).await?,
            };
            let line = match next {
                Input::Line(l) => l,
                Input::TooLong => {
                    // The tag of the command (the line may continue one
                    // that began with literals), so that a client waiting
                    // for it gets its answer.
                    let tag = tag_of(&buf).or_else(|| tag_of(self.io.overlong_head()));
                    return Ok(Read::Bad(tag, "Command line too long".into()));
                }
                Input::Eof => return Ok(Read::Eof),
                Input::Timeout => return Ok(Read::Timeout),
                Input::Stop => {
                    if buf.is_empty() {
                        return Ok(Read::Stop);
                    }
                    continue;
                }
            };
            let line = strip_eol(&line);
            if buf.len() + line.len() > max {
                return Ok(Read::Bad(
                    tag_of(&buf).or_else(|| tag_of(line)),
                    "Command too long".into(),
                ));
            }
            buf.extend_from_slice(line);
            let lit = match facteur_imap_proto::literal_at_end(line) {
                Ok(None) => return Ok(Read::Command(buf)),
                // The parser says what is wrong with it.
                Err(_) => return Ok(Read::Command(buf)),
                Ok(Some(l)) => l,
            };
            if let Ok(t) = facteur_imap_proto::parse_command(&buf)
                && matches!(t.command, Command::Append { .. })
            {
                return Ok(Read::Append(t));
            }
            if lit.len > (max - buf.len()) as u64 {
                if lit.sync {
                    return Ok(Read::Bad(tag_of(&buf), "Literal too long".into()));
                }
                // The octets are on their way and we will not read them.
                return Ok(Read::Close("Literal too long".into()));
            }
            if lit.sync {
                self.io.write(b"+ Ready for literal data\r\n");
            }
            buf.extend_from_slice(b"\r\n");
            match self
                .io
                .read_exact(lit.len, |b| buf.extend_from_slice(b))
                .await?
            {
                Fill::Data => {}
                Fill::Timeout => return Ok(Read::Timeout),
                Fill::Eof | Fill::Stop => return Ok(Read::Eof),
            }
        }
    }

    async fn dispatch(&mut self, t: Tagged) -> io::Result<Flow> {
        let tag = t.tag;
        let name = command_name(&t.command);
        debug!(command = name, "command");
        match t.command {
            Command::Capability => {
                let caps = self.capabilities();
                self.io.write(format!("* CAPABILITY {caps}\r\n").as_bytes());
                self.announce_and_ok(&tag, "CAPABILITY completed")
            }
            Command::Noop => blocking(|| self.announce_and_ok(&tag, "NOOP completed")),
            Command::Logout => {
                self.io.write(b"* BYE Logging out\r\n");
                self.ok(&tag, "LOGOUT completed");
                Ok(Flow::Close)
            }
            Command::Id(_) => {
                // RFC 2971: who we are, for the client's logs and bug
                // reports.
                self.io.write(
                    format!(
                        "* ID (\"name\" \"facteur\" \"version\" \"{}\")\r\n",
                        env!("CARGO_PKG_VERSION")
                    )
                    .as_bytes(),
                );
                self.ok(&tag, "ID completed");
                Ok(Flow::Continue)
            }
            Command::StartTls => self.starttls(&tag).await,
            Command::Login { user, password } => self.login(&tag, user, password).await,
            Command::Authenticate { mechanism, initial } => {
                self.authenticate(&tag, mechanism, initial).await
            }
            c if self.user.is_none() => {
                self.bad(
                    Some(&tag),
                    &format!("{} needs a login first", command_name(&c)),
                );
                Ok(Flow::Continue)
            }
            Command::Enable(caps) => self.enable(&tag, caps),
            Command::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => blocking(|| self.select(&tag, &mailbox, read_only, condstore, qresync)),
            Command::Create {
                mailbox,
                special_use,
            } => blocking(|| self.create(&tag, &mailbox, &special_use)),
            Command::Delete(m) => blocking(|| self.delete(&tag, &m)),
            Command::Rename { from, to } => blocking(|| self.rename(&tag, &from, &to)),
            Command::Subscribe(m) => blocking(|| self.subscribe(&tag, &m, true)),
            Command::Unsubscribe(m) => blocking(|| self.subscribe(&tag, &m, false)),
            Command::List {
                reference,
                patterns,
                select,
                ret,
            } => blocking(|| self.list(&tag, &reference, &patterns, select, ret, false)),
            Command::Lsub { reference, pattern } => {
                let select = facteur_imap_proto::ListSelect {
                    subscribed: true,
                    ..Default::default()
                };
                blocking(|| {
                    self.list(
                        &tag,
                        &reference,
                        &[pattern],
                        select,
                        Default::default(),
                        true,
                    )
                })
            }
            Command::Namespace => {
                // Personal, other users' (shared.rs), no public one.
                self.io.write(
                    format!(
                        "* NAMESPACE ((\"\" \"/\")) ((\"{}/\" \"/\")) NIL\r\n",
                        shared::PREFIX
                    )
                    .as_bytes(),
                );
                self.announce_and_ok(&tag, "NAMESPACE completed")
            }
            Command::Status { mailbox, items } => blocking(|| self.status(&tag, &mailbox, &items)),
            Command::Notify(set) => blocking(|| self.notify(&tag, set)),
            Command::GetMetadata {
                mailbox,
                max_size,
                depth,
                entries,
            } => blocking(|| self.get_metadata(&tag, &mailbox, max_size, depth, &entries)),
            Command::SetMetadata { mailbox, entries } => {
                blocking(|| self.set_metadata(&tag, &mailbox, &entries))
            }
            Command::SetAcl {
                mailbox,
                identifier,
                rights,
            } => blocking(|| self.set_acl(&tag, &mailbox, &identifier, Some(&rights))),
            Command::DeleteAcl {
                mailbox,
                identifier,
            } => blocking(|| self.set_acl(&tag, &mailbox, &identifier, None)),
            Command::GetAcl(mailbox) => blocking(|| self.get_acl(&tag, &mailbox)),
            Command::ListRights {
                mailbox,
                identifier,
            } => blocking(|| self.list_rights(&tag, &mailbox, &identifier)),
            Command::MyRights(mailbox) => blocking(|| self.my_rights(&tag, &mailbox)),
            Command::GenUrlAuth(items) => blocking(|| self.gen_url_auth(&tag, &items)),
            Command::UrlFetch(items) => blocking(|| self.url_fetch(&tag, &items)),
            Command::ResetKey {
                mailbox,
                mechanisms,
            } => blocking(|| self.reset_key(&tag, mailbox.as_deref(), &mechanisms)),
            Command::GetQuota(root) => self.get_quota(&tag, &root),
            Command::GetQuotaRoot(m) => self.get_quota_root(&tag, &m),
            Command::SetQuota { root, limits } => blocking(|| self.set_quota(&tag, &root, &limits)),
            Command::Compress(mechanism) => self.compress(&tag, &mechanism).await,
            Command::Idle => self.idle(&tag).await,
            Command::Append { .. } => {
                // Never here: read_command hands APPEND to append().
                self.bad(Some(&tag), "APPEND needs a message literal");
                Ok(Flow::Continue)
            }
            c if self.sel.is_none() => {
                self.bad(
                    Some(&tag),
                    &format!("{} needs a selected mailbox", command_name(&c)),
                );
                Ok(Flow::Continue)
            }
            Command::Check => blocking(|| self.announce_and_ok(&tag, "CHECK completed")),
            Command::CancelUpdate(tags) => self.cancel_update(&tag, &tags),
            Command::Close => blocking(|| self.close(&tag, true)),
            Command::Unselect => blocking(|| self.close(&tag, false)),
            Command::Expunge => blocking(|| self.expunge(&tag, None)),
            Command::UidExpunge(set) => blocking(|| self.expunge(&tag, Some(set))),
            Command::Search {
                uid,
                ret,
                charset,
                key,
            } => heavy(|| self.search(&tag, uid, ret, charset, key)).await,
            Command::Sort {
                uid,
                ret,
                criteria,
                charset,
                key,
            } => heavy(|| self.sort(&tag, uid, ret, criteria, charset, key)).await,
            Command::Thread {
                uid,
                algorithm,
                charset,
                key,
            } => heavy(|| self.thread(&tag, uid, algorithm, charset, key)).await,
            Command::Fetch {
                uid,
                set,
                attrs,
                changed_since,
                vanished,
            } => {
                self.fetch(&tag, uid, &set, attrs, changed_since, vanished)
                    .await
            }
            Command::Store(args) => blocking(|| self.store(&tag, &args)),
            Command::Copy { uid, set, mailbox } => {
                blocking(|| self.copy(&tag, uid, &set, &mailbox, false))
            }
            Command::Move { uid, set, mailbox } => {
                blocking(|| self.copy(&tag, uid, &set, &mailbox, true))
            }
        }
    }

    // ---- replies ----

    pub(crate) fn ok(&mut self, tag: &str, text: &str) {
        self.result = "ok";
        self.io.write(format!("{tag} OK {text}\r\n").as_bytes());
    }

    pub(crate) fn no(&mut self, tag: &str, text: &str) {
        self.result = "no";
        self.io.write(format!("{tag} NO {text}\r\n").as_bytes());
    }

    /// BAD, counted towards `max_errors`.
    pub(crate) fn bad(&mut self, tag: Option<&str>, text: &str) {
        self.result = "bad";
        self.errors += 1;
        let tag = tag.unwrap_or("*");
        self.io.write(format!("{tag} BAD {text}\r\n").as_bytes());
    }

    /// NO for a store error, with the response code that fits.
    pub(crate) fn store_error(&mut self, tag: &str, e: &StoreError) {
        let text = match e {
            StoreError::OverQuota => "[OVERQUOTA] Quota exceeded".to_string(),
            StoreError::NoSuchMailbox(_) => "[NONEXISTENT] No such mailbox".to_string(),
            StoreError::MailboxExists(_) => "[ALREADYEXISTS] Mailbox already exists".to_string(),
            StoreError::InvalidName(_) => "[CANNOT] Invalid mailbox name".to_string(),
            StoreError::HasChildren(_) => {
                "[INUSE] Mailbox has children: delete them first".to_string()
            }
            StoreError::NoSuchMessage(_) => {
                "[EXPUNGEISSUED] Some messages were expunged".to_string()
            }
            StoreError::Limit(why) => format!("[LIMIT] {why}"),
            StoreError::NoPermission(why) => format!("[NOPERM] {why}"),
            e => {
                warn!(error = %e, "store error");
                "[SERVERBUG] Internal error, try again later".to_string()
            }
        };
        self.no(tag, &text);
    }

    // ---- names and sets ----

    /// A mailbox name from the client, in the store's terms.
    pub(crate) fn mailbox_in(&self, name: &str) -> Option<String> {
        if self.utf8 {
            Some(name.to_string())
        } else {
            facteur_imap_proto::utf7::decode(name)
        }
    }

    /// A mailbox name for the client (astring).
    pub(crate) fn mailbox_out(&self, out: &mut Vec<u8>, name: &str) {
        if self.utf8 {
            encode::astring(out, name, true);
        } else {
            encode::astring(out, &facteur_imap_proto::utf7::encode(name), false);
        }
    }

    /// The positions (0-based, ascending, distinct) of the messages `set`
    /// names in the selected mailbox, by sequence number or by UID.
    pub(crate) fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<usize> {
        let Some(sel) = &self.sel else {
            return Vec::new();
        };
        let msgs = sel.mb.messages();
        let mut out = Vec::new();
        match set {
            SequenceSet::Saved => {
                for u in &self.saved {
                    if let Ok(i) = msgs.binary_search_by_key(u, |m| m.uid) {
                        out.push(i);
                    }
                }
            }
            _ if !uid => {
                for (lo, hi) in set.ranges(msgs.len() as u32) {
                    let hi = (hi as usize).min(msgs.len());
                    let lo = (lo as usize).max(1);
                    if lo <= hi {
                        out.extend(lo - 1..hi);
                    }
                }
            }
            _ => {
                let largest = msgs.last().map_or(0, |m| m.uid);
                for (lo, hi) in set.ranges(largest) {
                    let a = msgs.partition_point(|m| m.uid < lo);
                    let b = msgs.partition_point(|m| m.uid <= hi);
                    out.extend(a..b);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// True if `set` uses `*` (so an empty mailbox gives an empty result, not an
/// error).
pub(crate) fn uses_star(set: &SequenceSet) -> bool {
    match set {
        SequenceSet::Ranges(r) => r
            .iter()
            .any(|(a, b)| *a == SeqBound::Star || *b == SeqBound::Star),
        SequenceSet::Saved => false,
    }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let l = line.strip_suffix(b"\n").unwrap_or(line);
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// The tag at the start of a command, if it looks like one.
fn tag_of(buf: &[u8]) -> Option<String> {
    let end = buf.iter().position(|&b| b == b' ')?;
    let tag = &buf[..end];
    (!tag.is_empty()
        && tag.len() <= 64
        && tag
            .iter()
            .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\+".contains(&b)))
    .then(|| String::from_utf8_lossy(tag).into_owned())
}
