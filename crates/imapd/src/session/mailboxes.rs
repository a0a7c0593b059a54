//! Authenticated-state commands on mailboxes: SELECT and EXAMINE (RFC 9051
//! §6.3.2–3, with CONDSTORE and QRESYNC parameters, RFC 7162 §3.1.8, §3.2.5),
//! CREATE (with USE, RFC 6154 §3), DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE,
//! LIST (RFC 9051 §6.3.9 with LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819,
//! SPECIAL-USE), LSUB (RFC 3501), STATUS (with SIZE RFC 8438, HIGHESTMODSEQ,
//! APPENDLIMIT RFC 7889), GETQUOTA and GETQUOTAROOT (RFC 9208).
//!
//! The hierarchy delimiter is `/`; there is one personal namespace with an
//! empty prefix. Names are checked by the store (`folders::normalize`), which
//! keeps every mailbox inside the user's directory.

use super::listing::listing;
use super::shared::{Place, place};
use super::{Flow, Selected, Session, blocking, write_flags};
use crate::keywords::Keywords;
use facteur_imap_proto::{ListReturn, ListSelect, QresyncParams, StatusItem, encode};
use facteur_store::{DELETED, FlagMask, Rights, SEEN, SpecialUse, StoreError};
use std::collections::BTreeSet;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// The name in store terms, or NO sent and None.
    pub(super) fn name_or_no(&mut self, tag: &str, name: &str) -> Option<String> {
        match self.mailbox_in(name) {
            Some(n) => Some(n),
            None => {
                self.no(tag, "[CANNOT] Invalid mailbox name encoding");
                None
            }
        }
    }

    pub(super) fn select(
        &mut self,
        tag: &str,
        name: &str,
        read_only: bool,
        condstore: bool,
        qresync: Option<QresyncParams>,
    ) -> io::Result<Flow> {
        if qresync.is_some() && !self.qresync {
            self.bad(Some(tag), "QRESYNC must be enabled first");
            return Ok(Flow::Continue);
        }
        // Any SELECT leaves the previous mailbox first (RFC 9051 §6.3.2).
        if self.sel.take().is_some() {
            self.io.write(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        let Some(name) = self.name_or_no(tag, name) else {
            return Ok(Flow::Continue);
        };
        let target = match self.target(&name, "r") {
            Ok(t) => t,
            Err(e) => {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        };
        // The name as the client knows it, normalized (`Shared/bob/INBOX`).
        let name = if target.owner == self.me_address() {
            target.name.clone()
        } else {
            super::shared::shown(&target.owner, &target.name)
        };
        // READ-ONLY without a right to change anything (RFC 4314 §5.2;
        // every flag is shared here).
        let forced = !target.rights.any("iestw");
        let asked_read_only = read_only;
        let read_only = read_only || forced;
        // \Recent (IMAP4rev1 only): SELECT claims the unclaimed messages
        // for this session; EXAMINE sees them without taking them (RFC 3501
        // §6.3.2). In the same blocking call as the opening.
        let rev2 = self.rev2;
        let opened = blocking(|| {
            if !rev2 && !read_only {
                let (mb, claimed) = target.store.select_claiming(&target.name)?;
                return Ok((mb, claimed.into_iter().collect()));
            }
            let mb = target.store.select(&target.name)?;
            let recent: Vec<(u32, u32)> = if rev2 {
                Vec::new()
            } else {
                vec![(mb.recent_from()?, u32::MAX)]
            };
            Ok::<_, StoreError>((mb, recent))
        });
        let (mb, recent) = match opened {
            Ok(o) => o,
            Err(e) => {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        };
        if condstore {
            self.condstore = true;
        }
        let msgs = mb.messages();
        let keywords = Keywords::new(
            self.ctx.keywords.get(mb.dir()),
            msgs.iter().map(|m| &m.flags),
        );
        let mut out = Vec::with_capacity(512);
        keywords.write(
            &mut out,
            if read_only {
                FlagMask::NONE
            } else {
                super::shared::flag_mask(target.rights)
            },
        );
        out.extend_from_slice(format!("* {} EXISTS\r\n", msgs.len()).as_bytes());
        let announced_recent = if recent.is_empty() {
            0
        } else {
            msgs.iter()
                .filter(|m| super::in_ranges(&recent, m.uid))
                .count()
        };
        if !self.rev2 {
            out.extend_from_slice(format!("* {announced_recent} RECENT\r\n").as_bytes());
            if let Some(i) = msgs.iter().position(|m| m.flags.system & SEEN == 0) {
                out.extend_from_slice(
                    format!("* OK [UNSEEN {}] First unseen\r\n", i + 1).as_bytes(),
                );
            }
        }
        out.extend_from_slice(
            format!(
                "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n\
                 * OK [HIGHESTMODSEQ {}] Highest\r\n* OK [MAILBOXID ({})] Ok\r\n",
                mb.uidvalidity(),
                mb.uidnext(),
                mb.highest_modseq(),
                mb.mailbox_id()
            )
            .as_bytes(),
        );
        if self.rev2 {
            out.extend_from_slice(b"* LIST () \"/\" ");
            self.mailbox_out(&mut out, &name);
            out.extend_from_slice(b"\r\n");
        }
        if let Some(q) = qresync
            && q.uidvalidity == mb.uidvalidity()
        {
            let largest = mb.uidnext().saturating_sub(1);
            let known = |uid: u32| {
                q.known_uids
                    .as_ref()
                    .is_none_or(|k| k.contains(uid, largest))
            };
            match blocking(|| mb.vanished_since(q.modseq)) {
                Ok(gone) => {
                    let gone: Vec<u32> = gone.into_iter().filter(|&u| known(u)).collect();
                    if !gone.is_empty() {
                        out.extend_from_slice(
                            format!("* VANISHED (EARLIER) {}\r\n", encode::seq_set(&gone))
                                .as_bytes(),
                        );
                    }
                }
                Err(e) => {
                    self.sel = None;
                    self.store_error(tag, &e);
                    return Ok(Flow::Continue);
                }
            }
            for (i, m) in mb.messages().iter().enumerate() {
                if m.modseq > q.modseq {
                    out.extend_from_slice(
                        format!("* {} FETCH (UID {} FLAGS ", i + 1, m.uid).as_bytes(),
                    );
                    write_flags(&mut out, &m.flags, super::in_ranges(&recent, m.uid));
                    out.extend_from_slice(format!(" MODSEQ ({}))\r\n", m.modseq).as_bytes());
                }
            }
        }
        self.io.write(&out);
        self.sel = Some(Selected {
            mb,
            name,
            rights: target.rights,
            read_only,
            recent,
            announced_recent,
            keywords,
            contexts: Vec::new(),
        });
        if forced && !asked_read_only {
            self.ok(tag, "[READ-ONLY] SELECT completed");
        } else if read_only {
            self.ok(tag, "[READ-ONLY] EXAMINE completed");
        } else {
            self.ok(tag, "[READ-WRITE] SELECT completed");
        }
        Ok(Flow::Continue)
    }

    pub(super) fn create(&mut self, tag: &str, name: &str, uses: &[String]) -> io::Result<Flow> {
        let Some(name) = self.name_or_no(tag, name) else {
            return Ok(Flow::Continue);
        };
        // A trailing delimiter only says the name will have children.
        let name = name.trim_end_matches('/').to_string();
        let special = match uses {
            [] => None,
            [u] => match SpecialUse::parse(u) {
                Some(s) => Some(s),
                None => {
                    self.no(tag, "[USEATTR] Unsupported special-use attribute");
                    return Ok(Flow::Continue);
                }
            },
            _ => {
                self.no(tag, "[USEATTR] Only one special-use attribute per mailbox");
                return Ok(Flow::Continue);
            }
        };
        let Some(user) = &self.user else {
            return Ok(Flow::Continue);
        };
        let created = match place(&user.address, &name) {
            Place::Own(_) => blocking(|| {
                user.store.create_mailbox(&name, special)?;
                // The new mailbox's MAILBOXID goes in the OK (RFC 8474 §4.1).
                user.store.select(&name).map(|mb| mb.mailbox_id())
            }),
            Place::Level => Err(StoreError::NoPermission(
                "Mailboxes are made below an existing shared mailbox".into(),
            )),
            Place::Other { .. } => self.create_shared(&name, special),
        };
        match created {
            Ok(id) => {
                self.list_changed();
                self.announce_and_ok(tag, &format!("[MAILBOXID ({id})] CREATE completed"))
            }
            Err(e) => {
                self.store_error(tag, &e);
                Ok(Flow::Continue)
            }
        }
    }

    /// CREATE of `Shared/<owner>/<name>`: the `k` right on the nearest
    /// existing parent (RFC 4314 §4), whose ACL the new mailbox inherits.
    fn create_shared(&self, name: &str, special: Option<SpecialUse>) -> Result<String, StoreError> {
        let mut parent = name;
        let found = loop {
            let Some((p, _)) = parent.rsplit_once('/') else {
                break None;
            };
            parent = p;
            // `Shared/<owner>` and `Shared` are no mailboxes (unless the
            // user had folders of those names before).
            match self.target(parent, "") {
                Ok(t) if t.store.exists(&t.name)? => break Some(t),
                Ok(_) | Err(StoreError::NoSuchMailbox(_)) => continue,
                Err(e) => return Err(e),
            }
        };
        let Some(p) = found else {
            return Err(StoreError::NoPermission(
                "Mailboxes are made below an existing shared mailbox".into(),
            ));
        };
        if !p.rights.has('k') {
            return Err(StoreError::NoPermission(
                "Needs the right \"k\" on the parent mailbox".into(),
            ));
        }
        // The new mailbox in the parent's store: the parent's name there,
        // then the rest of the name given.
        let child =
            facteur_store::normalize_name(&format!("{}/{}", p.name, &name[parent.len() + 1..]))?;
        p.store.create_mailbox(&child, special)?;
        let store = &self.ctx.store;
        for (id, rights) in store.acl(&p.owner, &p.name)? {
            store.set_acl(&p.owner, &child, &id, rights)?;
        }
        p.store.select(&child).map(|mb| mb.mailbox_id())
    }

    pub(super) fn delete(&mut self, tag: &str, name: &str) -> io::Result<Flow> {
        let Some(name) = self.name_or_no(tag, name) else {
            return Ok(Flow::Continue);
        };
        if name.eq_ignore_ascii_case("INBOX") {
            self.no(tag, "[CANNOT] INBOX cannot be deleted");
            return Ok(Flow::Continue);
        }
        let target = match self.target(&name, "x") {
            Ok(t) => t,
            Err(e) => {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        };
        if target.name == "INBOX" {
            self.no(tag, "[CANNOT] INBOX cannot be deleted");
            return Ok(Flow::Continue);
        }
        match blocking(|| target.store.delete_mailbox(&target.name)) {
            Ok(()) => {
                self.list_changed();
                self.announce_and_ok(tag, "DELETE completed")
            }
            Err(e) => {
                self.store_error(tag, &e);
                Ok(Flow::Continue)
            }
        }
    }

    pub(super) fn rename(&mut self, tag: &str, from: &str, to: &str) -> io::Result<Flow> {
        let (Some(from), Some(to)) = (self.mailbox_in(from), self.mailbox_in(to)) else {
            self.no(tag, "[CANNOT] Invalid mailbox name encoding");
            return Ok(Flow::Continue);
        };
        let to = to.trim_end_matches('/').to_string();
        // Within one owner's mailboxes: `x` on the old name, `k` on the new
        // name's parent (RFC 4314 §4); the user's own have every right.
        let renamed = self.target(&from, "x").and_then(|src| {
            let to_place = place(self.me_address(), &to);
            let to_name = match (&to_place, src.owner == self.me_address()) {
                (Place::Own(n), true) => n.clone(),
                (Place::Other { owner, name }, false) if *owner == src.owner => {
                    let parent = to.rsplit_once('/').map_or("", |(p, _)| p);
                    let can = parent.matches('/').count() >= 2
                        && self
                            .target(parent, "k")
                            .and_then(|t| t.store.exists(&t.name))
                            .unwrap_or(false);
                    if !can {
                        return Err(StoreError::NoPermission(
                            "Needs the right \"k\" on the new parent mailbox".into(),
                        ));
                    }
                    name.clone()
                }
                _ => {
                    return Err(StoreError::NoPermission(
                        "A mailbox cannot move between users".into(),
                    ));
                }
            };
            blocking(|| src.store.rename_mailbox(&src.name, &to_name))
        });
        match renamed {
            Ok(()) => {
                self.list_changed();
                self.announce_and_ok(tag, "RENAME completed")
            }
            Err(e) => {
                self.store_error(tag, &e);
                Ok(Flow::Continue)
            }
        }
    }

    pub(super) fn subscribe(&mut self, tag: &str, name: &str, on: bool) -> io::Result<Flow> {
        let Some(name) = self.name_or_no(tag, name) else {
            return Ok(Flow::Continue);
        };
        let Some(user) = &self.user else {
            return Ok(Flow::Continue);
        };
        match blocking(|| user.store.subscribe(&name, on)) {
            Ok(()) => {
                self.list_changed();
                self.announce_and_ok(
                    tag,
                    if on {
                        "SUBSCRIBE completed"
                    } else {
                        "UNSUBSCRIBE completed"
                    },
                )
            }
            Err(e) => {
                self.store_error(tag, &e);
                Ok(Flow::Continue)
            }
        }
    }

    pub(super) fn list(
        &mut self,
        tag: &str,
        reference: &str,
        patterns: &[String],
        select: ListSelect,
        ret: ListReturn,
        lsub: bool,
    ) -> io::Result<Flow> {
        let what = if lsub { "LSUB" } else { "LIST" };
        // LIST "" "": the delimiter and root (RFC 9051 §6.3.9).
        if patterns.len() == 1 && patterns[0].is_empty() && !lsub {
            self.io.write(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
            return self.announce_and_ok(tag, "LIST completed");
        }
        let Some(user) = &self.user else {
            return Ok(Flow::Continue);
        };
        let by_subscription = lsub || select.subscribed || ret.subscribed;
        let listed = blocking(|| {
            let mut boxes = user.store.list_mailboxes()?;
            // Other users' mailboxes shared with this one (`l` right).
            let (shared, rights) = self.shared_boxes()?;
            boxes.extend(shared);
            let subs: BTreeSet<String> = if by_subscription {
                user.store.subscriptions()?.into_iter().collect()
            } else {
                BTreeSet::new()
            };
            Ok::<_, StoreError>((boxes, subs, rights))
        });
        let (boxes, subs, rights) = match listed {
            Ok(b) => b,
            Err(e) => {
                self.store_error(tag, &e);
                return Ok(Flow::Continue);
            }
        };
        // A pattern that is not valid modified UTF-7 names no mailbox: it
        // matches nothing (RFC 9051 §6.3.9 lists what matches; refusing
        // the command would break clients that send one).
        let pats: Vec<String> = patterns
            .iter()
            .filter_map(|p| self.mailbox_in(&format!("{reference}{p}")))
            .collect();
        let entries = listing(&boxes, &subs, &pats, &select, lsub);
        let mut out = Vec::new();
        let mut status_for = Vec::new();
        for e in &entries {
            let mut attrs: Vec<&str> = Vec::new();
            match e.info {
                _ if e.lsub_noselect => attrs.push("\\Noselect"),
                // LIST-EXTENDED's word for a subscription without a mailbox
                // (RFC 5258 §3), and IMAP4rev2's for a placeholder.
                None if select.subscribed || self.rev2 => attrs.push("\\NonExistent"),
                None if !lsub => attrs.push("\\Noselect"),
                None => {}
                Some(i) => {
                    if let Some(u) = i.special_use {
                        attrs.push(u.as_str());
                    }
                }
            }
            if !lsub {
                attrs.push(if e.has_children {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
            }
            // \Subscribed is LIST-EXTENDED's (RFC 5258 §3.1), not LSUB's.
            if e.subscribed && !lsub && (ret.subscribed || select.subscribed) {
                attrs.push("\\Subscribed");
            }
            out.extend_from_slice(format!("* {what} (").as_bytes());
            out.extend_from_slice(attrs.join(" ").as_bytes());
            out.extend_from_slice(b") \"/\" ");
            self.mailbox_out(&mut out, &e.name);
            if e.childinfo {
                out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            out.extend_from_slice(b"\r\n");
            // RFC 8440: the rights on each mailbox listed that exists.
            if ret.myrights && e.info.is_some() {
                let r = rights.get(&e.name).copied().unwrap_or(Rights::ALL);
                self.write_myrights(&mut out, &e.name, r);
            }
            if e.info.is_some() && ret.status.is_some() {
                status_for.push(e.name.clone());
            }
        }
        self.io.write(&out);
        if let Some(items) = &ret.status {
            for name in status_for {
                // A mailbox that cannot be opened just gets no STATUS.
                let _ = self.write_status(&name, items);
            }
        }
        self.announce_and_ok(tag, &format!("{what} completed"))
    }

    /// Writes `* STATUS name (...)`.
    pub(super) fn write_status(
        &mut self,
        name: &str,
        items: &[StatusItem],
    ) -> Result<(), StoreError> {
        if self.user.is_none() {
            return Ok(());
        }
        let want_recent = items.contains(&StatusItem::Recent);
        let target = self.target(name, "r")?;
        let (mb, recent_from) = blocking(|| {
            let mb = target.store.select(&target.name)?;
            let from = if want_recent { mb.recent_from()? } else { 0 };
            Ok::<_, StoreError>((mb, from))
        })?;
        let msgs = mb.messages();
        let mut parts = Vec::new();
        for it in items {
            parts.push(match it {
                StatusItem::Messages => format!("MESSAGES {}", msgs.len()),
                StatusItem::Recent => format!(
                    "RECENT {}",
                    msgs.iter().filter(|m| m.uid >= recent_from).count()
                ),
                StatusItem::UidNext => format!("UIDNEXT {}", mb.uidnext()),
                StatusItem::UidValidity => format!("UIDVALIDITY {}", mb.uidvalidity()),
                StatusItem::Unseen => format!(
                    "UNSEEN {}",
                    msgs.iter().filter(|m| m.flags.system & SEEN == 0).count()
                ),
                StatusItem::Deleted => format!(
                    "DELETED {}",
                    msgs.iter()
                        .filter(|m| m.flags.system & DELETED != 0)
                        .count()
                ),
                StatusItem::Size => format!("SIZE {}", msgs.iter().map(|m| m.size).sum::<u64>()),
                StatusItem::HighestModSeq => format!("HIGHESTMODSEQ {}", mb.highest_modseq()),
                StatusItem::AppendLimit => {
                    format!("APPENDLIMIT {}", self.cfg.max_append_size.0)
                }
                StatusItem::MailboxId => format!("MAILBOXID ({})", mb.mailbox_id()),
            });
        }
        let mut out = b"* STATUS ".to_vec();
        self.mailbox_out(&mut out, name);
        out.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        self.io.write(&out);
        Ok(())
    }

    pub(super) fn status(
        &mut self,
        tag: &str,
        name: &str,
        items: &[StatusItem],
    ) -> io::Result<Flow> {
        let Some(name) = self.name_or_no(tag, name) else {
            return Ok(Flow::Continue);
        };
        match self.write_status(&name, items) {
            Ok(()) => self.announce_and_ok(tag, "STATUS completed"),
            Err(e) => {
                self.store_error(tag, &e);
                Ok(Flow::Continue)
            }
        }
    }
}

/// LIST pattern matching (RFC 9051 §6.3.9): `*` matches anything, `%`
/// anything but the delimiter; INBOX matches case-insensitively. Iterative
/// with backtracking on the last wildcard: no exponential blow-up.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let fold = |s: &str| -> String {
        if s.len() >= 5
            && s.as_bytes()[..5].eq_ignore_ascii_case(b"INBOX")
            && (s.len() == 5 || s.as_bytes()[5] == b'/')
        {
            format!("INBOX{}", &s[5..])
        } else {
            s.to_string()
        }
    };
    let (p, n) = (fold(pattern), fold(name));
    let (p, n): (Vec<char>, Vec<char>) = (p.chars().collect(), n.chars().collect());
    // Dynamic programming over (pattern position, name position).
    let mut cur = vec![false; n.len() + 1];
    cur[0] = true;
    for &pc in &p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' => {
                let mut any = false;
                for j in 0..=n.len() {
                    any |= cur[j];
                    next[j] = any;
                }
            }
            '%' => {
                let mut any = false;
                for j in 0..=n.len() {
                    if j > 0 && n[j - 1] == '/' {
                        any = false;
                    }
                    any |= cur[j];
                    next[j] = any;
                }
            }
            c => {
                for j in 1..=n.len() {
                    next[j] = cur[j - 1] && n[j - 1] == c;
                }
            }
        }
        cur = next;
    }
    cur[n.len()]
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn list_patterns() {
        for (p, n, want) in [
            ("*", "INBOX", true),
            ("*", "a/b/c", true),
            ("%", "a/b", false),
            ("%", "a", true),
            ("a/%", "a/b", true),
            ("a/%", "a/b/c", false),
            ("a/*", "a/b/c", true),
            ("inbox", "INBOX", true),
            ("Inbox/%", "INBOX/x", true),
            ("Sent", "sent", false),
            ("S%t", "Sent", true),
            ("%/%", "a/b", true),
            ("", "", true),
            ("x", "", false),
        ] {
            assert_eq!(matches(p, n), want, "{p} vs {n}");
        }
        // No blow-up on hostile patterns.
        let p = "*a".repeat(200);
        assert!(!matches(&p, &"a".repeat(100)));
    }
}
