//! Running the scripts for one mailbox and carrying out what they decided.
//!
//! Order (so that a sender's retry after a temporary failure does not send
//! anything twice): the copies are stored first (fileinto, keep, the
//! implicit keep); a temporary failure there ends the delivery with 4xx
//! before anything is sent. Then redirects and the vacation reply are
//! queued. A redirect that cannot be queued when no copy was kept stores
//! the message in INBOX instead (never lost). Last, the vacation and
//! duplicate records.
//!
//! reject and ereject (RFC 5429): ereject refuses at the protocol level
//! (LMTP answers per recipient: `550 5.7.1` with the reason, which the
//! sending MTA turns into its bounce); reject takes the message and queues
//! a disposition notification to the sender (facteur_sieve::run::reject),
//! falling back to the 550 when the notice cannot be queued.

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::Arc;

use facteur_mail::dsn::BodyType;
use facteur_sieve::run::{Flow, Runtime, redirect};
use facteur_sieve::{Action, Envelope, Host, Outcome, Script};
use facteur_smtp_codec::Reply;
use facteur_spool::{QueueName, Recipient, Spool};
use facteur_store::{Flags, MailboxInfo, Quota, SpecialUse, Store, StoreError};
use tracing::{info, warn};

use super::{Cache, Settings, Source, state::State};

/// The world as a delivery's scripts see it.
pub struct DeliveryHost<'a> {
    pub store: &'a Store,
    pub state: Option<&'a State>,
    pub cache: &'a Cache,
    pub settings: &'a Settings,
    pub user: &'a str,
    pub hostname: &'a str,
    pub addresses: Vec<String>,
    mailboxes: Option<Vec<MailboxInfo>>,
}

impl<'a> DeliveryHost<'a> {
    pub fn new(
        store: &'a Store,
        state: Option<&'a State>,
        cache: &'a Cache,
        settings: &'a Settings,
        user: &'a str,
        hostname: &'a str,
        addresses: Vec<String>,
    ) -> DeliveryHost<'a> {
        DeliveryHost {
            store,
            state,
            cache,
            settings,
            user,
            hostname,
            addresses,
            mailboxes: None,
        }
    }

    fn mailboxes(&mut self) -> &[MailboxInfo] {
        let (store, user) = (self.store, self.user);
        self.mailboxes.get_or_insert_with(|| {
            store
                .open_user(user, Quota::default())
                .and_then(|u| u.list_mailboxes())
                .unwrap_or_default()
        })
    }
}

fn special_use(name: &str) -> Option<SpecialUse> {
    SpecialUse::parse(name)
}

impl Host for DeliveryHost<'_> {
    fn mailbox_exists(&mut self, name: &str) -> bool {
        name.eq_ignore_ascii_case("inbox") || self.mailboxes().iter().any(|m| m.name == name)
    }

    fn special_use_exists(&mut self, mailbox: Option<&str>, uses: &[String]) -> bool {
        let wanted: Vec<Option<SpecialUse>> = uses.iter().map(|u| special_use(u)).collect();
        if wanted.iter().any(Option::is_none) {
            return false;
        }
        let boxes = self.mailboxes();
        wanted.iter().all(|w| {
            boxes
                .iter()
                .any(|m| m.special_use == *w && mailbox.is_none_or(|n| n == m.name))
        })
    }

    fn duplicate_seen(&mut self, handle: &str, id: &str, _period: u64, _last: bool) -> bool {
        self.state
            .is_some_and(|s| s.duplicate_seen(self.user, handle, id))
    }

    fn vacation_sent(&mut self, sender: &str, handle: &str, _period: u64) -> bool {
        self.state
            .is_some_and(|s| s.vacation_sent(self.user, sender, handle))
    }

    fn include(&mut self, global: bool, name: &str) -> Result<Option<Arc<Script>>, String> {
        let text = self
            .store
            .scripts(self.user)
            .and_then(|s| s.include_text(self.settings.global_dir.as_deref(), global, name))
            .map_err(|e| e.to_string())?;
        match text {
            Some(t) => self.cache.compile(&t, &self.settings.options).map(Some),
            None => Ok(None),
        }
    }

    fn environment(&mut self, name: &str) -> Option<String> {
        Some(match name {
            "domain" => self
                .hostname
                .split_once('.')
                .map_or(self.hostname, |(_, d)| d)
                .to_string(),
            "host" => self.hostname.to_string(),
            "location" => "MDA".into(),
            "name" => "facteur".into(),
            "phase" => "during".into(),
            "version" => env!("CARGO_PKG_VERSION").into(),
            _ => return None,
        })
    }

    fn user_addresses(&mut self) -> Vec<String> {
        self.addresses.clone()
    }

    fn hostname(&mut self) -> String {
        self.hostname.to_string()
    }

    fn vacation_period(&mut self) -> (u64, u64, u64) {
        self.settings.vacation
    }
}

/// What the scripts decided, or why they could not.
pub enum Verdict {
    Filtered(Box<Outcome>),
    /// A script failed: keep the message in INBOX.
    Failed(String),
}

/// Run `sources` in order on `message` (Pigeonhole's multiscript rule: a
/// script runs only while the ones before it kept the message).
pub fn run(
    host: &mut DeliveryHost<'_>,
    sources: &[Source],
    message: &[u8],
    size: u64,
    envelope: Envelope,
) -> Verdict {
    let mut rt = Runtime::new(message, envelope, host.settings.limits.clone());
    rt.message.size = size;
    for src in sources {
        let script = match &src.script {
            Ok(s) => Arc::clone(s),
            Err(e) => return Verdict::Failed(format!("{}: {e}", src.label)),
        };
        match rt.run_script(host, &script) {
            Ok(Flow::Continue | Flow::Return | Flow::Stop) => {}
            Err(e) => return Verdict::Failed(format!("{}: {e}", src.label)),
        }
        let out = rt.outcome();
        let kept =
            out.implicit_keep || out.actions.iter().any(|a| matches!(a, Action::Keep { .. }));
        if !kept {
            break;
        }
    }
    Verdict::Filtered(Box::new(rt.finish()))
}

/// Where outgoing messages go.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub spool_dir: std::path::PathBuf,
    pub qmgr_socket: std::path::PathBuf,
}

impl Outbox {
    /// Queue a new message in maildrop/ (facteur-qmgr sends it).
    pub fn send(
        &self,
        sender: &str,
        to: &str,
        message: &mut dyn std::io::Read,
        eight_bit: bool,
        queue_id: &str,
    ) -> Result<String, String> {
        let spool = Spool::open(&self.spool_dir).map_err(|e| e.to_string())?;
        let env = facteur_spool::Envelope {
            sender: sender.to_string(),
            recipients: vec![Recipient::new(to)],
            body: if eight_bit {
                BodyType::EightBitMime
            } else {
                BodyType::SevenBit
            },
            smtputf8: !sender.is_ascii() || !to.is_ascii(),
            protocol: Some("sieve".into()),
            arrival: facteur_util::date::now_unix(),
            ..facteur_spool::Envelope::default()
        };
        let mut w = spool
            .create(QueueName::Maildrop, &env)
            .map_err(|e| e.to_string())?;
        std::io::copy(message, &mut w).map_err(|e| e.to_string())?;
        let id = w.commit().map_err(|e| e.to_string())?;
        facteur_spool::wake_qmgr(&self.qmgr_socket);
        info!(queue_id, new_queue_id = %id, to, "sieve: message queued");
        Ok(id)
    }
}

/// The result for one mailbox.
pub enum Done {
    /// Stored in these folders (empty: discarded, or only sent on).
    Stored(Vec<String>),
    /// reject/ereject: the recipient's reply.
    Rejected(Reply),
    /// A store failure: the reply the sender acts on.
    Failed(StoreError),
}

/// The message without a leading `Return-Path:` field (it belongs to the
/// final delivery, not to a message sent on).
fn without_return_path(m: &[u8]) -> &[u8] {
    if m.len() >= 12 && m[..12].eq_ignore_ascii_case(b"return-path:") {
        let mut i = 0;
        while let Some(n) = memchr(b'\n', &m[i..]) {
            i += n + 1;
            if !matches!(m.get(i), Some(b' ' | b'\t')) {
                return &m[i..];
            }
        }
    }
    m
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

/// Flags from their IMAP names (`\Seen` ... and keywords).
fn to_flags(names: &[String]) -> Flags {
    let mut f = Flags::default();
    for n in names {
        match n.to_ascii_lowercase().as_str() {
            "\\seen" => f.system |= facteur_store::SEEN,
            "\\answered" => f.system |= facteur_store::ANSWERED,
            "\\flagged" => f.system |= facteur_store::FLAGGED,
            "\\deleted" => f.system |= facteur_store::DELETED,
            "\\draft" => f.system |= facteur_store::DRAFT,
            k if !k.starts_with('\\') && !k.is_empty() => {
                f.keywords.insert(n.clone());
            }
            _ => {}
        }
    }
    f
}

/// The message as delivered, for the actions that store or send it.
pub struct Original<'a> {
    /// What the scripts saw: the whole message when `complete`, else its
    /// start.
    pub seen: &'a [u8],
    pub complete: bool,
    pub eight_bit: bool,
    /// The whole message as stored (with Return-Path and Delivered-To).
    pub stored: &'a dyn Fn() -> Box<dyn Read + Send + 'a>,
    /// The whole message as sent on (Delivered-To, no Return-Path).
    pub sent: &'a dyn Fn() -> Box<dyn Read + Send + 'a>,
}

impl<'a> Original<'a> {
    /// The bytes of message version `v` when the scripts edited the
    /// header before the action (only for a message seen whole: an edit of
    /// a partly read message is dropped, with a warning).
    fn version<'o>(&self, out: &'o Outcome, v: Option<usize>, queue_id: &str) -> Option<&'o [u8]> {
        let bytes = v
            .and_then(|i| out.message_versions.get(i))
            .map(|(_, m)| m.as_slice())?;
        if self.complete {
            Some(bytes)
        } else {
            warn!(
                queue_id,
                "sieve: header edits of a message too large to read whole are not kept"
            );
            None
        }
    }
}

/// Everything the carrying out needs about the delivery.
pub struct Delivery<'a> {
    pub store: &'a Store,
    pub state: Option<&'a State>,
    pub outbox: &'a Outbox,
    pub settings: &'a Settings,
    pub queue_id: &'a str,
    pub sender: &'a str,
    pub user: &'a str,
    pub quota: Quota,
    /// The recipient's own `Delivered-To:` value (loop detection).
    pub delivered_to: &'a str,
    /// The implicit keep of a message with the spam mark goes to Junk.
    pub junk: bool,
    /// Our name, for the notices reject sends.
    pub hostname: &'a str,
    /// The delivery's envelope (a redirect's sender and loop check).
    pub envelope: facteur_sieve::Envelope,
}

impl Delivery<'_> {
    fn store_one<'m>(
        &self,
        mailbox: &str,
        flags: &[String],
        create: bool,
        make: &dyn Fn() -> Box<dyn Read + Send + 'm>,
    ) -> Result<String, StoreError> {
        let inbox = mailbox.eq_ignore_ascii_case("inbox");
        let target = if inbox { None } else { Some(mailbox) };
        let put = |target: Option<&str>| -> Result<(), StoreError> {
            if flags.is_empty() {
                self.store
                    .deliver(self.user, target, &mut make(), self.quota)
                    .map(|_| ())
            } else {
                let us = self.store.open_user(self.user, self.quota)?;
                let mut mb = us.select(target.unwrap_or("INBOX"))?;
                mb.append(&mut make(), &to_flags(flags), None).map(|_| ())
            }
        };
        match put(target) {
            Err(StoreError::NoSuchMailbox(_)) if create => {
                let us = self.store.open_user(self.user, Quota::default())?;
                match us.create_mailbox(mailbox, None) {
                    Ok(()) | Err(StoreError::MailboxExists(_)) => {}
                    Err(e) => return Err(e),
                }
                us.subscribe(mailbox, true)?;
                info!(
                    queue_id = self.queue_id,
                    user = self.user,
                    folder = mailbox,
                    "sieve: folder created"
                );
                put(target).map(|()| mailbox.to_string())
            }
            Err(StoreError::NoSuchMailbox(_) | StoreError::InvalidName(_)) => {
                warn!(
                    queue_id = self.queue_id,
                    user = self.user,
                    folder = mailbox,
                    "sieve: no such folder, delivered into INBOX"
                );
                put(None).map(|()| "INBOX".to_string())
            }
            r => r.map(|()| {
                if inbox {
                    "INBOX".to_string()
                } else {
                    mailbox.to_string()
                }
            }),
        }
    }

    /// The user's folder with the special-use `role` (RFC 6154).
    fn role_folder(&self, role: SpecialUse) -> Option<String> {
        let boxes = self
            .store
            .open_user(self.user, Quota::default())
            .and_then(|u| u.list_mailboxes())
            .ok()?;
        boxes
            .into_iter()
            .find(|m| m.special_use == Some(role))
            .map(|m| m.name)
    }

    /// Carry out `out` for the message `original`.
    pub fn carry_out(&self, out: &Outcome, original: &Original<'_>) -> Done {
        crate::metrics::sieve_actions(out);
        if let Some(Action::Reject { reason, extended }) = out
            .actions
            .iter()
            .find(|a| matches!(a, Action::Reject { .. }))
        {
            let one_line: String = reason
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .take(200)
                .collect();
            if *extended {
                info!(queue_id = self.queue_id, user = self.user, reason = %one_line, "sieve: refused (ereject)");
                return Done::Rejected(Reply::new(550, (5, 7, 1), one_line.trim().to_string()));
            }
            // reject: the message is taken (250) and a notice goes back to
            // the sender through the queue; when it cannot be queued, a 550
            // makes the sending MTA tell the sender instead
            let notice = facteur_sieve::run::reject::mdn(&facteur_sieve::run::reject::Rejected {
                message: original.seen,
                recipient: self.delivered_to,
                sender: self.sender,
                reason,
                from: &format!("Mail Delivery System <MAILER-DAEMON@{}>", self.hostname),
                hostname: self.hostname,
                now: facteur_util::date::now_unix(),
                token: &facteur_util::new_id(),
            });
            if let Some(n) = notice
                && let Err(e) =
                    self.outbox
                        .send("", self.sender, &mut &n[..], !n.is_ascii(), self.queue_id)
            {
                warn!(queue_id = self.queue_id, user = self.user, error = %e, "sieve: reject notice not queued: refused instead");
                return Done::Rejected(Reply::new(550, (5, 7, 1), one_line.trim().to_string()));
            }
            info!(queue_id = self.queue_id, user = self.user, reason = %one_line, "sieve: rejected, notice sent");
            return Done::Stored(Vec::new());
        }
        let mut stored = Vec::new();
        // explicit stores first, then the implicit keep
        for a in &out.actions {
            let (mailbox, flags, create, special, version) = match a {
                Action::Keep { flags, message } => {
                    ("INBOX".to_string(), flags, false, None, *message)
                }
                Action::FileInto {
                    mailbox,
                    flags,
                    create,
                    special_use,
                    message,
                    ..
                } => (
                    mailbox.clone(),
                    flags,
                    *create,
                    special_use.as_deref(),
                    *message,
                ),
                _ => continue,
            };
            let mailbox = match special.and_then(special_use) {
                Some(role) => self.role_folder(role).unwrap_or(mailbox),
                None => mailbox,
            };
            let edited = original.version(out, version, self.queue_id);
            let make = || -> Box<dyn Read + Send + '_> {
                match edited {
                    Some(b) => Box::new(b),
                    None => (original.stored)(),
                }
            };
            if mailbox.eq_ignore_ascii_case("inbox") && stored.iter().any(|s: &String| s == "INBOX")
            {
                continue;
            }
            match self.store_one(&mailbox, flags, create, &make) {
                Ok(f) => stored.push(f),
                Err(e) => return Done::Failed(e),
            }
        }
        if out.implicit_keep && !stored.iter().any(|s| s == "INBOX") {
            let edited = out.edited_message.as_deref().filter(|_| original.complete);
            let make = || -> Box<dyn Read + Send + '_> {
                match edited {
                    Some(b) => Box::new(b),
                    None => (original.stored)(),
                }
            };
            let folder = if self.junk {
                self.role_folder(SpecialUse::Junk)
                    .unwrap_or_else(|| crate::deliver::JUNK.to_string())
            } else {
                "INBOX".to_string()
            };
            match self.store_one(&folder, &out.implicit_keep_flags, self.junk, &make) {
                Ok(f) => stored.push(f),
                Err(e) => return Done::Failed(e),
            }
        }
        let mut sent_ok = true;
        let seen_here = has_delivered_to(original.seen, self.delivered_to);
        for a in &out.actions {
            match a {
                Action::Redirect {
                    address, message, ..
                } => {
                    let looped = seen_here
                        || redirect::loops(original.seen, &self.envelope, Some(self.user));
                    if looped {
                        warn!(queue_id = self.queue_id, user = self.user, to = %address, "sieve: redirect loop (the message was delivered or redirected here before): not sent");
                        sent_ok = false;
                        continue;
                    }
                    let reader: Box<dyn Read + Send + '_> =
                        match original.version(out, *message, self.queue_id) {
                            Some(b) => Box::new(without_return_path(b)),
                            None => (original.sent)(),
                        };
                    let fields = redirect::prepended_fields(&self.envelope, Some(self.user));
                    let mut reader = fields.as_bytes().chain(reader);
                    let from = self.settings.redirect_from.envelope_from(
                        &self.envelope,
                        Some(self.user),
                        &format!("postmaster@{}", self.hostname),
                    );
                    if let Err(e) = self.outbox.send(
                        &from,
                        address,
                        &mut reader,
                        original.eight_bit,
                        self.queue_id,
                    ) {
                        warn!(queue_id = self.queue_id, user = self.user, to = %address, error = %e, "sieve: redirect not queued");
                        sent_ok = false;
                    }
                }
                Action::Vacation(v) => {
                    if let Some(why) = &v.skip {
                        info!(queue_id = self.queue_id, user = self.user, to = %v.to, reason = %why, "sieve: vacation not sent");
                        continue;
                    }
                    let claimed = match self.state {
                        Some(st) => st.claim_vacation(self.user, &v.to, &v.handle, v.period).unwrap_or_else(|e| {
                            warn!(queue_id = self.queue_id, user = self.user, error = %e, "sieve: vacation record unavailable: not sent");
                            false
                        }),
                        None => true,
                    };
                    if !claimed {
                        info!(queue_id = self.queue_id, user = self.user, to = %v.to, "sieve: vacation not sent: answered within the period");
                        continue;
                    }
                    if let Err(e) = self.outbox.send(
                        &v.envelope_from,
                        &v.to,
                        &mut &v.message[..],
                        !v.message.is_ascii(),
                        self.queue_id,
                    ) {
                        warn!(queue_id = self.queue_id, user = self.user, error = %e, "sieve: vacation reply not queued");
                        if let Some(st) = self.state {
                            let _ = st.release_vacation(self.user, &v.to, &v.handle);
                        }
                    }
                }
                _ => {}
            }
        }
        if !sent_ok && stored.is_empty() {
            match self.store_one("INBOX", &[], false, original.stored) {
                Ok(f) => stored.push(f),
                Err(e) => return Done::Failed(e),
            }
        }
        if let Some(st) = self.state {
            let mut done = BTreeSet::new();
            for d in &out.duplicates {
                if !done.insert((d.handle.clone(), d.id.clone())) {
                    continue;
                }
                let period = if d.period == 0 {
                    self.settings.duplicate_period
                } else {
                    d.period
                };
                if let Err(e) = st.record_duplicate(self.user, &d.handle, &d.id, period, d.last) {
                    warn!(queue_id = self.queue_id, user = self.user, error = %e, "sieve: duplicate record not written");
                }
            }
        }
        Done::Stored(stored)
    }
}

/// Does the header of `m` hold a `Delivered-To:` equal to `to`, below the
/// first one (ours, just added)?
fn has_delivered_to(m: &[u8], to: &str) -> bool {
    facteur_imap_message::fields::header_fields(m)
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"delivered-to"))
        .skip(1)
        .any(|(_, v)| String::from_utf8_lossy(v).trim().eq_ignore_ascii_case(to))
}
