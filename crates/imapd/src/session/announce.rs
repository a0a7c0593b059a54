//! What a session tells its client about the selected mailbox: the
//! changes other sessions made (EXPUNGE or VANISHED, EXISTS, RECENT, FETCH
//! FLAGS, and the keywords announced first; the search contexts' updates
//! and NOTIFY's events ride along), and the flag lists of responses.

use super::{Flow, Session, blocking};
use facteur_imap_proto::encode;
use facteur_store::Flags;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::info;

/// The largest view whose comparison with another session's newer one
/// ([`crate::notify::Subscription::try_shared`], a pass over both views)
/// runs on the async worker; a bigger one is compared on a thread that
/// may block, as a sync of its own would be.
const INLINE_COMPARE_MAX: usize = 20_000;

/// What woke an idling session ([`Session::announce_woken`]): its
/// subscription to the selected mailbox, and the time a verification the
/// store asked for was due at (None: the subscription's counter moved).
pub(crate) type Woken<'a> = (&'a crate::notify::Subscription, Option<std::time::Instant>);

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Announces changes, then OK (or BYE and close if the selected
    /// mailbox vanished).
    pub(crate) fn announce_and_ok(&mut self, tag: &str, text: &str) -> io::Result<Flow> {
        if self.announce() == Flow::Close {
            return Ok(Flow::Close);
        }
        self.ok(tag, text);
        Ok(Flow::Continue)
    }

    /// Syncs the selected mailbox and writes what changed: EXPUNGE (or
    /// VANISHED), EXISTS, FETCH FLAGS.
    pub(crate) fn announce(&mut self) -> Flow {
        self.announce_woken(None)
    }

    /// [`announce`](Self::announce) after `woken` (the selected mailbox's
    /// subscription, and the time a verification was due at, if that is
    /// what woke the session) said the mailbox changed: the sync may be
    /// another session's (`Subscription::sync`).
    pub(crate) fn announce_woken(&mut self, woken: Option<Woken<'_>>) -> Flow {
        let flow = self.announce_selected(woken);
        if flow == Flow::Continue {
            self.notify_check();
        }
        flow
    }

    /// [`announce`](Self::announce) for the selected mailbox (NOTIFY's
    /// other mailboxes apart).
    fn announce_selected(&mut self, woken: Option<Woken<'_>>) -> Flow {
        let Some(sel) = &mut self.sel else {
            return Flow::Continue;
        };
        // Another session's sync taken at once needs no thread that may
        // block: each hand-over to one costs more than the rest of this,
        // unless the view is big enough that comparing it with the new one
        // should not hold up the worker's other sessions.
        let taken = woken
            .filter(|_| sel.mb.messages().len() <= INLINE_COMPARE_MAX)
            .and_then(|(sub, after)| sub.try_shared(&mut sel.mb, after));
        let synced = match taken {
            Some(c) => Ok((c, true)),
            None => blocking(|| match woken {
                Some((sub, after)) => sub.sync(&mut sel.mb, after),
                None => sel.mb.sync().map(|c| (c, false)),
            }),
        };
        let (changes, shared) = match synced {
            Ok(c) => c,
            Err(e) => {
                info!(error = %e, "selected mailbox is gone");
                self.io
                    .write(b"* BYE [CLOSED] The selected mailbox was deleted or rebuilt\r\n");
                return Flow::Close;
            }
        };
        if !changes.expunged.is_empty() {
            // Each expunged message's number in the client's view: the
            // survivors before it plus the expunged before it.
            let msgs = sel.mb.messages();
            let gone: Vec<(u32, usize)> = changes
                .expunged
                .iter()
                .enumerate()
                .map(|(i, &uid)| (uid, msgs.partition_point(|m| m.uid < uid) + i + 1))
                .collect();
            self.contexts_expunged(&gone);
            if self.qresync {
                let set = encode::seq_set(&changes.expunged);
                self.io.write(format!("* VANISHED {set}\r\n").as_bytes());
            } else {
                // Sent highest first, so no announcement shifts a later one.
                self.io
                    .write(&expunge_lines(gone.iter().map(|g| g.1).collect()));
            }
        }
        let Some(sel) = &mut self.sel else {
            return Flow::Continue;
        };
        // New messages are recent in the first session that sees them
        // (read-write, IMAP4rev1): this one, if no other claimed them.
        if !changes.added.is_empty() && !sel.read_only && !self.rev2 && !sel.mb.recent_all_claimed()
        {
            match blocking(|| sel.mb.claim_recent()) {
                Ok(Some(r)) => sel.recent.push(r),
                Ok(None) => {}
                Err(e) => info!(error = %e, "cannot record \\Recent"),
            }
        }
        // The folder's full-text index, if it has one, takes the new
        // messages now (a few: a flood is left to the next search). Once
        // per change: not by the sessions that took another's sync (each
        // would open the index's file to find nothing to add).
        if !changes.added.is_empty()
            && !shared
            && let Err(e) = blocking(|| crate::fts::catch_up(&sel.mb, 100))
        {
            info!(dir = %sel.mb.dir().display(), error = %e, "cannot update the full-text index");
        }
        let msgs = sel.mb.messages();
        {
            let shown = changes.added.iter().chain(&changes.flags_changed);
            let flags = shown
                .filter_map(|uid| msgs.binary_search_by_key(uid, |m| m.uid).ok())
                .map(|i| &msgs[i].flags);
            let mut out = Vec::new();
            let permanent = sel.permanent();
            sel.keywords.announce(permanent, flags, &mut out);
            self.io.write(&out);
        }
        if !changes.added.is_empty() || !changes.expunged.is_empty() {
            self.io
                .write(format!("* {} EXISTS\r\n", msgs.len()).as_bytes());
            let n = sel.recent_count();
            if !self.rev2 && (n != sel.announced_recent || !changes.added.is_empty()) {
                sel.announced_recent = n;
                self.io.write(format!("* {n} RECENT\r\n").as_bytes());
            }
        }
        if !changes.flags_changed.is_empty() {
            let mut out = Vec::new();
            for uid in &changes.flags_changed {
                let Ok(i) = msgs.binary_search_by_key(uid, |m| m.uid) else {
                    continue;
                };
                let m = &msgs[i];
                out.extend_from_slice(
                    format!("* {} FETCH (UID {} FLAGS ", i + 1, m.uid).as_bytes(),
                );
                write_flags(&mut out, &m.flags, sel.is_recent(m.uid));
                if self.condstore {
                    out.extend_from_slice(format!(" MODSEQ ({})", m.modseq).as_bytes());
                }
                out.extend_from_slice(b")\r\n");
            }
            self.io.write(&out);
        }
        let touched: Vec<u32> = changes
            .added
            .iter()
            .chain(&changes.flags_changed)
            .copied()
            .collect();
        self.contexts_touched(&touched);
        if !changes.added.is_empty()
            && let Some(attrs) = self.notify.as_ref().map(|n| n.new_attrs.clone())
            && !attrs.is_empty()
        {
            // NOTIFY's MessageNew with fetch attributes (RFC 5465 §5.2).
            let msgs = self
                .sel
                .as_ref()
                .map(|s| s.mb.messages())
                .unwrap_or_default();
            let positions: Vec<usize> = changes
                .added
                .iter()
                .filter_map(|u| msgs.binary_search_by_key(u, |m| m.uid).ok())
                .collect();
            self.fetch_untagged(&attrs, &positions);
        }
        Flow::Continue
    }
}

/// `* n EXPUNGE` for each of `seqs` (numbers in the client's view before
/// any of them went), highest first, so that no announcement shifts a
/// later one (RFC 9051 §7.5.1).
pub(crate) fn expunge_lines(mut seqs: Vec<usize>) -> Vec<u8> {
    seqs.sort_unstable();
    let mut out = String::new();
    for s in seqs.iter().rev() {
        out.push_str(&format!("* {s} EXPUNGE\r\n"));
    }
    out.into_bytes()
}

/// A message's flags, `(\Seen \Flagged kw)`, without allocating (FETCH
/// 1:* FLAGS on a big mailbox writes this 100,000 times); `recent`: with
/// IMAP4rev1's `\Recent`.
pub(crate) fn write_flags(out: &mut Vec<u8>, f: &Flags, recent: bool) {
    let system = SYSTEM_FLAGS
        .iter()
        .filter(|(bit, _)| f.system & bit != 0)
        .map(|(_, name)| *name)
        .chain(recent.then_some("\\Recent"));
    encode::flag_list(out, system.chain(f.keywords.iter().map(String::as_str)));
}

const SYSTEM_FLAGS: [(u8, &str); 5] = [
    (facteur_store::SEEN, "\\Seen"),
    (facteur_store::ANSWERED, "\\Answered"),
    (facteur_store::FLAGGED, "\\Flagged"),
    (facteur_store::DELETED, "\\Deleted"),
    (facteur_store::DRAFT, "\\Draft"),
];

/// Flags from a client's list; `Err` names a flag we cannot store.
pub(crate) fn parse_flags(list: &[String]) -> Result<Flags, String> {
    let mut f = Flags::default();
    for name in list {
        if let Some(&(bit, _)) = SYSTEM_FLAGS
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
        {
            f.system |= bit;
        } else if name.eq_ignore_ascii_case("\\Recent") {
            return Err("\\Recent cannot be set".into());
        } else if name.starts_with('\\') {
            return Err(format!("Unknown system flag {name}"));
        } else if name.is_empty() || name.len() > 128 {
            return Err("Invalid keyword".into());
        } else {
            f.keywords.insert(name.clone());
        }
    }
    Ok(f)
}
