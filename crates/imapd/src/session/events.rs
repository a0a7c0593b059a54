//! NOTIFY (RFC 5465): the client names mailboxes and events, and the
//! session tells it of them without being asked — at the end of every
//! command, in IDLE, and between commands while the client is silent.
//!
//! - Message events (MessageNew, MessageExpunge, FlagChange) of mailboxes
//!   other than the selected one: `* STATUS name (MESSAGES n UIDNEXT n
//!   UIDVALIDITY n)`, with HIGHESTMODSEQ when FlagChange is asked (§5.2-5.4),
//!   sent when that state differs from the last one said. Each watched
//!   mailbox has a notifier subscription (inotify for other processes), so
//!   only a mailbox that moved is opened again.
//! - The selected mailbox keeps its usual EXISTS/EXPUNGE/FETCH; MessageNew
//!   with fetch attributes adds a FETCH of them for each new message (read
//!   as PEEK: a notification never sets `\Seen`).
//! - MailboxName and SubscriptionChange (§5.5-5.6): `* LIST` of a mailbox
//!   created (`()`), deleted (`(\NonExistent)`) or whose subscription
//!   changed (`(\Subscribed)` or `()`); a rename shows as a deletion and a
//!   creation. Only this process changes mailbox lists, and says so on the
//!   notifier ([`names_key`]).
//! - `NOTIFY SET STATUS` sends the watched mailboxes' STATUS at once (§3).
//!
//! A mailbox matched by several event groups takes the first group's
//! events. The filters PERSONAL, SUBSCRIBED and SUBTREE follow the mailbox
//! list: a mailbox created later is watched from then on. Events facteur
//! does not produce (AnnotationChange and the METADATA ones) are refused
//! with `NO [BADEVENT (...)]`, as §3 says. A session watches at most
//! `MAX_WATCHED` mailboxes.

use super::{Flow, Session, blocking};
use crate::notify::{Subscription, any_changed, names_key};
use facteur_imap_proto::{
    FetchAttr, NotifyEvent, NotifyFilter, NotifyGroup, NotifySet, StatusItem,
};
use facteur_store::{MailboxInfo, StoreError};
use std::collections::HashMap;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

/// The most mailboxes one session watches.
pub(crate) const MAX_WATCHED: usize = 1000;

/// What `NOTIFY SET` asked for, and what was last said.
pub(crate) struct NotifyState {
    groups: Vec<NotifyGroup>,
    /// Mailboxes watched for message events, by name.
    watched: HashMap<String, Watched>,
    /// The mailbox list as last seen, and its change signal.
    names: Subscription,
    list: Vec<MailboxInfo>,
    /// MessageNew's fetch attributes for the selected mailbox.
    pub(super) new_attrs: Vec<FetchAttr>,
    /// Events of the selected mailbox are asked for: between commands,
    /// the session watches it too (with this subscription, for the
    /// mailbox in this directory).
    selected_events: bool,
    selected: Option<(std::path::PathBuf, Subscription)>,
}

struct Watched {
    /// HIGHESTMODSEQ is said too (FlagChange asked).
    flags: bool,
    sub: Subscription,
    /// MESSAGES, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ as last said or seen.
    last: Option<(usize, u32, u32, u64)>,
}

/// The events facteur reports, as `NO [BADEVENT]` lists them.
const SUPPORTED: &str = "MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange";

fn supported(e: &NotifyEvent) -> bool {
    matches!(
        e,
        NotifyEvent::MessageNew(_)
            | NotifyEvent::MessageExpunge
            | NotifyEvent::FlagChange
            | NotifyEvent::MailboxName
            | NotifyEvent::SubscriptionChange
    )
}

fn is_selected(f: &NotifyFilter) -> bool {
    matches!(f, NotifyFilter::Selected | NotifyFilter::SelectedDelayed)
}

/// Whether `filter` (names already in the store's terms) takes `mb`.
fn takes(filter: &NotifyFilter, mb: &MailboxInfo) -> bool {
    match filter {
        NotifyFilter::Selected | NotifyFilter::SelectedDelayed => false,
        NotifyFilter::Inboxes => mb.name == "INBOX",
        NotifyFilter::Personal => true,
        NotifyFilter::Subscribed => mb.subscribed,
        NotifyFilter::Subtree(roots) => roots.iter().any(|r| {
            mb.name == *r
                || mb
                    .name
                    .strip_prefix(r.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }),
        NotifyFilter::Mailboxes(names) => names.contains(&mb.name),
    }
}

/// The events of the first group that takes `mb`.
fn events_of<'g>(groups: &'g [NotifyGroup], mb: &MailboxInfo) -> &'g [NotifyEvent] {
    groups
        .iter()
        .find(|g| takes(&g.filter, mb))
        .map_or(&[], |g| &g.events)
}

fn has(events: &[NotifyEvent], f: impl Fn(&NotifyEvent) -> bool) -> bool {
    events.iter().any(f)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// NOTIFY NONE / NOTIFY SET.
    pub(super) fn notify(&mut self, tag: &str, set: Option<NotifySet>) -> io::Result<Flow> {
        let Some(mut set) = set else {
            self.notify = None;
            self.ok(tag, "NOTIFY completed");
            return Ok(Flow::Continue);
        };
        if set
            .groups
            .iter()
            .any(|g| g.events.iter().any(|e| !supported(e)))
        {
            self.no(tag, &format!("[BADEVENT ({SUPPORTED})] Unsupported event"));
            return Ok(Flow::Continue);
        }
        let mut new_attrs = Vec::new();
        if let Some(g) = set.groups.iter().find(|g| is_selected(&g.filter)) {
            for e in &g.events {
                if let NotifyEvent::MessageNew(a) = e {
                    new_attrs = a.clone();
                }
            }
        }
        if let Err(why) = super::fetch::within_limits(&new_attrs) {
            self.bad(Some(tag), &why);
            return Ok(Flow::Continue);
        }
        // The client's names, in the store's terms.
        for g in &mut set.groups {
            if let NotifyFilter::Subtree(v) | NotifyFilter::Mailboxes(v) = &mut g.filter {
                let mut names = Vec::with_capacity(v.len());
                for n in v.iter() {
                    match self
                        .mailbox_in(n)
                        .and_then(|n| facteur_store::normalize_name(&n).ok())
                    {
                        Some(n) => names.push(n),
                        None => {
                            self.no(tag, "[NONEXISTENT] Invalid mailbox name");
                            return Ok(Flow::Continue);
                        }
                    }
                }
                *v = names;
            }
        }
        let Some(user) = &self.user else {
            return Ok(Flow::Continue);
        };
        let list = match blocking(|| user.store.list_mailboxes()) {
            Ok(l) => l,
            Err(e) => {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        };
        let names = self
            .ctx
            .notifier
            .subscribe_local(&names_key(user.store.dir()));
        let selected_events = set
            .groups
            .iter()
            .any(|g| is_selected(&g.filter) && !g.events.is_empty());
        let mut st = NotifyState {
            groups: set.groups,
            watched: HashMap::new(),
            names,
            list,
            new_attrs,
            selected_events,
            selected: None,
        };
        if let Err(e) = self.watch(&mut st) {
            self.no(tag, &e);
            return Ok(Flow::Continue);
        }
        if set.status {
            let selected = self.sel.as_ref().map(|s| s.name.clone());
            let mut names: Vec<&String> = st.watched.keys().collect();
            names.sort();
            for name in names {
                if Some(name) != selected.as_ref() {
                    let flags = st.watched[name].flags;
                    self.write_notify_status(name, flags);
                }
            }
        }
        self.notify = Some(Box::new(st));
        self.announce_and_ok(tag, "NOTIFY completed")
    }

    /// Watches the mailboxes of `st.list` that have message events (and
    /// only those), keeping what was watched already; records the state
    /// of the new ones.
    fn watch(&self, st: &mut NotifyState) -> Result<(), String> {
        let Some(user) = &self.user else {
            return Ok(());
        };
        let wanted: Vec<(&MailboxInfo, bool)> = st
            .list
            .iter()
            .filter_map(|mb| {
                let ev = events_of(&st.groups, mb);
                has(ev, |e| matches!(e, NotifyEvent::MessageNew(_)))
                    .then(|| (mb, has(ev, |e| *e == NotifyEvent::FlagChange)))
            })
            .collect();
        if wanted.len() > MAX_WATCHED {
            return Err(format!(
                "[LIMIT] At most {MAX_WATCHED} mailboxes are watched by one session"
            ));
        }
        let mut watched = HashMap::with_capacity(wanted.len());
        for (mb, flags) in wanted {
            if let Some(mut w) = st.watched.remove(&mb.name) {
                w.flags = flags;
                watched.insert(mb.name.clone(), w);
                continue;
            }
            let Ok(dir) = user.store.mailbox_dir(&mb.name) else {
                continue;
            };
            let last = blocking(|| box_state(&user.store, &mb.name)).ok();
            watched.insert(
                mb.name.clone(),
                Watched {
                    flags,
                    sub: self.ctx.notifier.subscribe(&dir),
                    last,
                },
            );
        }
        st.watched = watched;
        Ok(())
    }

    /// Before waiting between commands: the selected mailbox is watched
    /// if NOTIFY asked for its events.
    pub(super) fn notify_follow_selected(&mut self) {
        let Some(st) = &mut self.notify else { return };
        let dir = self
            .sel
            .as_ref()
            .filter(|_| st.selected_events)
            .map(|s| s.mb.dir().to_path_buf());
        if st.selected.as_ref().map(|(d, _)| d) != dir.as_ref() {
            st.selected = dir.map(|d| {
                let sub = self.ctx.notifier.subscribe(&d);
                (d, sub)
            });
        }
    }

    /// Says to NOTIFY's watchers (this session's included) that the
    /// user's mailbox list changed.
    pub(super) fn list_changed(&self) {
        if let Some(u) = &self.user {
            self.ctx.notifier.changed(&names_key(u.store.dir()));
        }
    }

    /// `* STATUS` of a watched mailbox (nothing if it cannot be opened).
    fn write_notify_status(&mut self, name: &str, flags: bool) {
        let mut items = vec![
            StatusItem::Messages,
            StatusItem::UidNext,
            StatusItem::UidValidity,
        ];
        if flags {
            items.push(StatusItem::HighestModSeq);
        }
        let _ = self.write_status(name, &items);
    }

    /// Says what changed since the last call in the mailboxes and the
    /// mailbox list NOTIFY watches.
    pub(super) fn notify_check(&mut self) {
        let Some(mut st) = self.notify.take() else {
            return;
        };
        if st.names.take_change() {
            self.names_changed(&mut st);
        }
        let selected = self.sel.as_ref().map(|s| s.name.clone());
        let mut said: Vec<(String, bool)> = Vec::new();
        if let Some(user) = &self.user {
            for (name, w) in &mut st.watched {
                if !w.sub.take_change() || Some(name) == selected.as_ref() {
                    continue;
                }
                let Ok(now) = blocking(|| box_state(&user.store, name)) else {
                    continue;
                };
                let moved = match w.last {
                    None => true,
                    Some(l) => {
                        (l.0, l.1, l.2) != (now.0, now.1, now.2) || (w.flags && l.3 != now.3)
                    }
                };
                w.last = Some(now);
                if moved {
                    said.push((name.clone(), w.flags));
                }
            }
        }
        said.sort();
        for (name, flags) in said {
            self.write_notify_status(&name, flags);
        }
        self.notify = Some(st);
    }

    /// The mailbox list changed: LIST lines for MailboxName and
    /// SubscriptionChange, and the watched set follows.
    fn names_changed(&mut self, st: &mut NotifyState) {
        let Some(user) = &self.user else { return };
        let Ok(now) = blocking(|| user.store.list_mailboxes()) else {
            return;
        };
        let old: HashMap<&str, &MailboxInfo> =
            st.list.iter().map(|m| (m.name.as_str(), m)).collect();
        let new: HashMap<&str, &MailboxInfo> = now.iter().map(|m| (m.name.as_str(), m)).collect();
        let mut lines: Vec<(&str, &str)> = Vec::new();
        for m in &st.list {
            let ev = events_of(&st.groups, m);
            if !new.contains_key(m.name.as_str()) && has(ev, |e| *e == NotifyEvent::MailboxName) {
                lines.push((&m.name, "\\NonExistent"));
            }
        }
        for m in &now {
            let ev = events_of(&st.groups, m);
            match old.get(m.name.as_str()) {
                None if has(ev, |e| *e == NotifyEvent::MailboxName) => {
                    lines.push((&m.name, if m.subscribed { "\\Subscribed" } else { "" }));
                }
                Some(o)
                    if o.subscribed != m.subscribed
                        && has(ev, |e| *e == NotifyEvent::SubscriptionChange) =>
                {
                    lines.push((&m.name, if m.subscribed { "\\Subscribed" } else { "" }));
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (name, attr) in lines {
            out.extend_from_slice(format!("* LIST ({attr}) \"/\" ").as_bytes());
            self.mailbox_out(&mut out, name);
            out.extend_from_slice(b"\r\n");
        }
        self.io.write(&out);
        st.list = now;
        if let Err(e) = self.watch(st) {
            // More mailboxes than a session watches: the client is told
            // (RFC 5465 §5.8) and notifications stop.
            self.io
                .write(format!("* OK [NOTIFICATIONOVERFLOW] {e}\r\n").as_bytes());
            st.watched.clear();
        }
    }
}

/// Waits until something NOTIFY watches may have changed (forever
/// without NOTIFY).
pub(super) async fn notify_wait(notify: &mut Option<Box<NotifyState>>) {
    match notify {
        Some(st) => {
            let subs = st.watched.values_mut().map(|w| &mut w.sub);
            let selected = st.selected.as_mut().map(|(_, s)| s);
            any_changed(subs.chain(std::iter::once(&mut st.names)).chain(selected)).await;
        }
        None => std::future::pending().await,
    }
}

/// (MESSAGES, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ) of a mailbox.
fn box_state(
    store: &facteur_store::UserStore,
    name: &str,
) -> Result<(usize, u32, u32, u64), StoreError> {
    let mb = store.select(name)?;
    Ok((
        mb.messages().len(),
        mb.uidnext(),
        mb.uidvalidity(),
        mb.highest_modseq(),
    ))
}
